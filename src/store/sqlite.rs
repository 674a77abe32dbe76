//! The embedded default store: SQLite in the data directory, through sqlx.
//!
//! WAL journal with `synchronous = FULL`, so a commit is on disk when it returns; one writer at a
//! time (SQLite's rule), readers alongside. Write transactions begin IMMEDIATE: a deferred one
//! that reads first cannot wait for the write lock and fails with "database is locked" when an
//! admin command writes at the same moment. Writes come in batches from the committer, one
//! transaction per batch: that is what turns ~110 µs fsyncs into thousands of letters a second.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::domain::{Cvr, LetterId, LetterState, Priority, SenderInfo, SenderKind, SenderLimits};
use crate::seal::{ContentDigest, KekId, RecipientTag, Sealed};

use super::blobs::{BlobLog, BlobRef};
use super::follow_sql::{NewEvent, batch_from, signal_all, write_events_sqlite};
use super::{
    Generations, InsertOutcome, LetterKey, LetterRecord, NewLetter, PendingDelivery, RecipientRow,
    StateCounts, Store, StoreError, StoredLetter, StoredRegistry, SubscriptionRow, corrupt,
    digest_from, route_code, route_from_code, status_code, status_from, tag_from,
};

pub struct SqliteStore {
    pool: SqlitePool,
    /// Letter ciphertext, written once to append-only segments (see `blobs`).
    blobs: Arc<BlobLog>,
}

/// Opens (creating if needed) a SQLite database with the durability settings every SQLite file
/// of the gateway uses, and runs `migrator`.
pub(crate) async fn open_sqlite(
    path: &Path,
    migrator: &sqlx::migrate::Migrator,
) -> Result<SqlitePool, StoreError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", dir.display())))?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // A COMMIT that failed (disk full, I/O error) can leave the connection's transaction
        // open as far as sqlx knows; reused, it would refuse every later transaction. Such a
        // connection is closed instead and the pool opens a fresh one.
        .after_release(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
    migrator.run(&pool).await.map_err(|e| {
        StoreError::Unavailable(format!("{}: migration failed: {e}", path.display()))
    })?;
    restrict_permissions(path);
    Ok(pool)
}

/// The database holds sealed letters only, but there is no reason for anyone else to read it.
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let blob_dir = path.with_extension("blobs");
        let blobs = BlobLog::open(&blob_dir)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", blob_dir.display())))?;
        Ok(SqliteStore {
            pool: open_sqlite(path, &MIGRATOR).await?,
            blobs: Arc::new(blobs),
        })
    }
}

fn record_from(row: &SqliteRow) -> Result<LetterRecord, StoreError> {
    let letter_id: String = row.try_get("letter_id")?;
    let message_uuid: String = row.try_get("message_uuid")?;
    let sender: i64 = row.try_get("sender_cvr")?;
    let content: String = row.try_get("content_sha256")?;
    let state: i64 = row.try_get("state")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(LetterRecord {
        letter_id: letter_id.parse().map_err(|_| corrupt("letter id"))?,
        sender: Cvr::from_value(u32::try_from(sender).map_err(|_| corrupt("sender"))?)
            .map_err(|_| corrupt("sender"))?,
        message_uuid: message_uuid.parse().map_err(|_| corrupt("message uuid"))?,
        fingerprint: digest_from(row.try_get("fingerprint")?)?,
        content_sha256: ContentDigest::from_hex(&content)
            .ok_or_else(|| corrupt("content digest"))?,
        route: route_from_code(row.try_get("route")?),
        priority: Priority::from_code(row.try_get("priority")?),
        state: LetterState::from_code(state).ok_or_else(|| corrupt("state"))?,
        accepted_at_ms: row.try_get("accepted_at")?,
        not_before_ms: row.try_get("not_before")?,
        delivered_at_ms: row.try_get("delivered_at")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        detail: row.try_get("detail")?,
        batch_id: batch_from(row.try_get("batch_id")?)?,
        sender_reference: row.try_get("sender_reference")?,
    })
}

/// The columns `record_from` reads, for statements written elsewhere (`follow_sql`).
const RECORD_COLUMNS: &str = "letter_id, sender_cvr, message_uuid, fingerprint, \
     content_sha256, route, priority, state, accepted_at, not_before, delivered_at, attempts, \
     detail, batch_id, sender_reference";

impl SqliteStore {
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

super::follow_sql::follow_store!(
    SqliteStore,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    record_from,
    RECORD_COLUMNS,
    write_events_sqlite
);

fn cvr_of(v: i64) -> Result<Cvr, StoreError> {
    u32::try_from(v)
        .ok()
        .and_then(|v| Cvr::from_value(v).ok())
        .ok_or_else(|| corrupt("sender"))
}

async fn bump(tx: &mut sqlx::SqliteConnection, key: &'static str) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = ?")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl SqliteStore {
    /// A letter's ciphertext: from its segment, or inline for letters stored before segments.
    async fn read_ciphertext(&self, row: &SqliteRow) -> Result<Vec<u8>, StoreError> {
        let segment: Option<i64> = row.try_get("blob_segment")?;
        let Some(segment) = segment else {
            return Ok(row.try_get("ciphertext")?);
        };
        let offset: i64 = row.try_get("blob_offset")?;
        let len: i64 = row.try_get("blob_len")?;
        let blob = BlobRef {
            segment: u32::try_from(segment).map_err(|_| corrupt("blob segment"))?,
            offset: u64::try_from(offset).map_err(|_| corrupt("blob offset"))?,
            len: u64::try_from(len).map_err(|_| corrupt("blob length"))?,
        };
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.read(&blob))
            .await
            .map_err(|e| StoreError::Unavailable(format!("blob reader: {e}")))?
            .map_err(|e| StoreError::Corrupt(format!("letter content missing: {e}")))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert_letters(
        &self,
        letters: &[NewLetter],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        // Content first, durable, then the rows that point at it.
        let lens: Vec<usize> = letters.iter().map(|l| l.sealed.ciphertext.len()).collect();
        let mut data = Vec::with_capacity(lens.iter().sum());
        for l in letters {
            data.extend_from_slice(&l.sealed.ciphertext);
        }
        let blobs = self.blobs.clone();
        let refs = tokio::task::spawn_blocking(move || blobs.append(&data, &lens))
            .await
            .map_err(|e| StoreError::Unavailable(format!("blob writer: {e}")))?
            .map_err(|e| StoreError::Unavailable(format!("writing letter content: {e}")))?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut out = Vec::with_capacity(letters.len());
        let mut events = Vec::with_capacity(letters.len());
        for (l, blob) in letters.iter().zip(&refs) {
            let inserted = sqlx::query(
                "INSERT INTO letters (letter_id, sender_cvr, message_uuid, recipient_tag, fingerprint, \
                 content_sha256, route, priority, state, kek_id, wrapped_key, nonce, ciphertext, \
                 accepted_at, not_before, blob_segment, blob_offset, blob_len, batch_id, sender_reference) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, X'', ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (sender_cvr, message_uuid) DO NOTHING",
            )
            .bind(l.letter_id.to_string())
            .bind(i64::from(l.sender.value()))
            .bind(l.message_uuid.to_string())
            .bind(&l.recipient_tag[..])
            .bind(&l.fingerprint.0[..])
            .bind(l.content_sha256.to_hex())
            .bind(route_code(l.route))
            .bind(l.priority.code())
            .bind(if l.not_before_ms.is_some() { LetterState::Scheduled } else { LetterState::Accepted }.code())
            .bind(i64::from(l.sealed.kek_id.0))
            .bind(&l.sealed.wrapped_key[..])
            .bind(&l.sealed.nonce[..])
            .bind(l.accepted_at_ms)
            .bind(l.not_before_ms)
            .bind(i64::from(blob.segment))
            .bind(blob.offset as i64)
            .bind(blob.len as i64)
            .bind(l.batch_id.as_ref().map(|b| b.as_str()))
            .bind(l.sender_reference.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                events.push(NewEvent::accepted(l));
                out.push(InsertOutcome::Inserted);
            } else {
                let row = sqlx::query(
                    "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, priority, \
                     state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference \
                     FROM letters WHERE sender_cvr = ? AND message_uuid = ?",
                )
                .bind(i64::from(l.sender.value()))
                .bind(l.message_uuid.to_string())
                .fetch_one(&mut *tx)
                .await?;
                out.push(InsertOutcome::Existing(record_from(&row)?));
            }
        }
        // The acceptance events, in this transaction: a receipt's letter always has its event.
        let written = write_events_sqlite(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        Ok(out)
    }

    async fn letter(
        &self,
        sender: Cvr,
        key: LetterKey,
    ) -> Result<Option<LetterRecord>, StoreError> {
        let row = match key {
            LetterKey::LetterId(id) => {
                sqlx::query(
                    "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, priority, \
                     state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference \
                     FROM letters WHERE letter_id = ? AND sender_cvr = ?",
                )
                .bind(id.to_string())
                .bind(i64::from(sender.value()))
                .fetch_optional(&self.pool)
                .await?
            }
            LetterKey::MessageUuid(uuid) => {
                sqlx::query(
                    "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, priority, \
                     state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference \
                     FROM letters WHERE message_uuid = ? AND sender_cvr = ?",
                )
                .bind(uuid.to_string())
                .bind(i64::from(sender.value()))
                .fetch_optional(&self.pool)
                .await?
            }
        };
        row.as_ref().map(record_from).transpose()
    }

    async fn load_for_delivery(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, priority, \
                 state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference, \
                 recipient_tag, kek_id, wrapped_key, nonce, ciphertext, blob_segment, blob_offset, blob_len \
                 FROM letters WHERE letter_id = ?",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else { continue };
            let kek: i64 = row.try_get("kek_id")?;
            let nonce: Vec<u8> = row.try_get("nonce")?;
            out.push(StoredLetter {
                record: record_from(&row)?,
                recipient_tag: tag_from(row.try_get("recipient_tag")?)?,
                sealed: Sealed {
                    kek_id: KekId(u32::try_from(kek).map_err(|_| corrupt("kek id"))?),
                    wrapped_key: row.try_get("wrapped_key")?,
                    nonce: nonce.try_into().map_err(|_| corrupt("nonce length"))?,
                    ciphertext: self.read_ciphertext(&row).await?,
                },
            });
        }
        Ok(out)
    }

    async fn mark_delivered(
        &self,
        ids: &[LetterId],
        state: LetterState,
        at_ms: i64,
        print_batch: Option<&str>,
    ) -> Result<Vec<LetterId>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut changed = Vec::with_capacity(ids.len());
        let mut events = Vec::with_capacity(ids.len());
        for id in ids {
            let sender: Option<i64> = sqlx::query_scalar(
                "UPDATE letters SET state = ?, delivered_at = ?, print_batch = ?, \
                 attempts = attempts + 1 \
                 WHERE letter_id = ? AND state IN (1, 2) RETURNING sender_cvr",
            )
            .bind(state.code())
            .bind(at_ms)
            .bind(print_batch)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(sender) = sender {
                events.push(NewEvent {
                    sender: cvr_of(sender)?,
                    letter_id: *id,
                    state,
                    at_ms,
                });
                if state == LetterState::Delivered {
                    sqlx::query(
                        "INSERT INTO mailbox (letter_id, recipient_tag, delivered_at) \
                         SELECT letter_id, recipient_tag, ? FROM letters WHERE letter_id = ?",
                    )
                    .bind(at_ms)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                }
                changed.push(*id);
            }
        }
        let written = write_events_sqlite(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        Ok(changed)
    }

    async fn record_attempt(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE letters SET attempts = attempts + 1, detail = ? WHERE letter_id = ?")
            .bind(detail)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_failed(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sender: Option<i64> = sqlx::query_scalar(
            "UPDATE letters SET state = 5, detail = ?, attempts = attempts + 1 \
             WHERE letter_id = ? AND state IN (1, 2) RETURNING sender_cvr",
        )
        .bind(detail)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        if let Some(sender) = sender {
            let event = NewEvent::now(cvr_of(sender)?, id, LetterState::Failed);
            written = write_events_sqlite(&mut tx, &[event], detail).await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(())
    }

    async fn reopen(&self, id: LetterId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sender: Option<i64> = sqlx::query_scalar(
            "UPDATE letters SET state = 1, detail = '' WHERE letter_id = ? AND state = 5 \
             RETURNING sender_cvr",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        if let Some(sender) = sender {
            let event = NewEvent::now(cvr_of(sender)?, id, LetterState::Accepted);
            written = write_events_sqlite(&mut tx, &[event], "reopened by an operator").await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(sender.is_some())
    }

    async fn undelivered(&self) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT letter_id, sender_cvr, route, priority, not_before, accepted_at FROM letters WHERE state IN (1, 2)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("letter_id")?;
                let not_before: Option<i64> = r.try_get("not_before")?;
                let sender: i64 = r.try_get("sender_cvr")?;
                Ok(PendingDelivery {
                    letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
                    sender: u32::try_from(sender)
                        .ok()
                        .and_then(|v| Cvr::from_value(v).ok())
                        .ok_or_else(|| corrupt("sender"))?,
                    route: route_from_code(r.try_get("route")?),
                    priority: Priority::from_code(r.try_get("priority")?),
                    not_before_ms: not_before.unwrap_or(0),
                    accepted_at_ms: r.try_get("accepted_at")?,
                })
            })
            .collect()
    }

    async fn print_batch_letters(&self, batch: &str) -> Result<Vec<LetterId>, StoreError> {
        let rows = sqlx::query("SELECT letter_id FROM letters WHERE print_batch = ?")
            .bind(batch)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("letter_id")?;
                id.parse().map_err(|_| corrupt("letter id"))
            })
            .collect()
    }

    async fn mailbox_count(&self, tag: &RecipientTag) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM mailbox WHERE recipient_tag = ?")
            .bind(&tag[..])
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n as u64)
    }

    async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM letters GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut c = StateCounts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            let n = n as u64;
            match LetterState::from_code(r.try_get("state")?) {
                Some(LetterState::Accepted) => c.accepted = n,
                Some(LetterState::Scheduled) => c.scheduled = n,
                Some(LetterState::Delivered) => c.delivered = n,
                Some(LetterState::PrintSpooled) => c.print_spooled = n,
                Some(LetterState::Failed) => c.failed = n,
                Some(LetterState::Cancelled) => c.cancelled = n,
                None => return Err(corrupt("state")),
            }
        }
        Ok(c)
    }

    async fn add_sender(
        &self,
        sender: &SenderInfo,
        cert_fingerprint: [u8; 32],
    ) -> Result<(), StoreError> {
        let limits = super::LimitColumns::from_limits(&sender.limits);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let now = crate::clock::now_ms();
        let n = sqlx::query(
            "INSERT INTO senders (cvr, name, kind, suspended, created_at, weight, rate_per_s, burst, max_in_flight, max_letter_bytes) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cvr) DO NOTHING",
        )
        .bind(i64::from(sender.cvr.value()))
        .bind(&sender.name)
        .bind(sender.kind.to_string())
        .bind(sender.suspended)
        .bind(now)
        .bind(limits.weight)
        .bind(limits.rate_per_s)
        .bind(limits.burst)
        .bind(limits.max_in_flight)
        .bind(limits.max_letter_bytes)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::SenderExists(sender.cvr));
        }
        sqlx::query("INSERT INTO sender_certs (fingerprint, cvr, issued_at) VALUES (?, ?, ?)")
            .bind(&cert_fingerprint[..])
            .bind(i64::from(sender.cvr.value()))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, "senders_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_sender_cert(
        &self,
        cvr: Cvr,
        cert_fingerprint: [u8; 32],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let known = sqlx::query("SELECT 1 FROM senders WHERE cvr = ?")
            .bind(i64::from(cvr.value()))
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::UnknownSender(cvr));
        }
        sqlx::query("INSERT INTO sender_certs (fingerprint, cvr, issued_at) VALUES (?, ?, ?)")
            .bind(&cert_fingerprint[..])
            .bind(i64::from(cvr.value()))
            .bind(crate::clock::now_ms())
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, "senders_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_suspended(&self, cvr: Cvr, suspended: bool) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query("UPDATE senders SET suspended = ? WHERE cvr = ?")
            .bind(suspended)
            .bind(i64::from(cvr.value()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::UnknownSender(cvr));
        }
        bump(&mut tx, "senders_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_sender_limits(&self, cvr: Cvr, limits: &SenderLimits) -> Result<(), StoreError> {
        let c = super::LimitColumns::from_limits(limits);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(
            "UPDATE senders SET weight = ?, rate_per_s = ?, burst = ?, max_in_flight = ?, \
             max_letter_bytes = ? WHERE cvr = ?",
        )
        .bind(c.weight)
        .bind(c.rate_per_s)
        .bind(c.burst)
        .bind(c.max_in_flight)
        .bind(c.max_letter_bytes)
        .bind(i64::from(cvr.value()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::UnknownSender(cvr));
        }
        bump(&mut tx, "senders_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn senders(&self) -> Result<(Vec<SenderInfo>, Vec<([u8; 32], Cvr)>), StoreError> {
        let rows = sqlx::query("SELECT cvr, name, kind, suspended, weight, rate_per_s, burst, max_in_flight, max_letter_bytes FROM senders")
            .fetch_all(&self.pool)
            .await?;
        let mut senders = Vec::with_capacity(rows.len());
        for r in rows {
            let cvr: i64 = r.try_get("cvr")?;
            let kind: String = r.try_get("kind")?;
            senders.push(SenderInfo {
                cvr: Cvr::from_value(cvr as u32).map_err(|_| corrupt("sender cvr"))?,
                name: r.try_get("name")?,
                kind: SenderKind::from_str(&kind).map_err(|_| corrupt("sender kind"))?,
                suspended: r.try_get("suspended")?,
                limits: super::LimitColumns::read(&r)?,
            });
        }
        let rows = sqlx::query("SELECT fingerprint, cvr FROM sender_certs")
            .fetch_all(&self.pool)
            .await?;
        let mut certs = Vec::with_capacity(rows.len());
        for r in rows {
            let fp: Vec<u8> = r.try_get("fingerprint")?;
            let cvr: i64 = r.try_get("cvr")?;
            certs.push((
                fp.try_into().map_err(|_| corrupt("fingerprint"))?,
                Cvr::from_value(cvr as u32).map_err(|_| corrupt("sender cvr"))?,
            ));
        }
        Ok((senders, certs))
    }

    async fn import_registry(
        &self,
        recipients: &[RecipientRow],
        subscriptions: &[SubscriptionRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for r in recipients {
            sqlx::query(
                "INSERT INTO recipients (tag, sealed_key, status) VALUES (?, ?, ?) \
                 ON CONFLICT (tag) DO UPDATE SET status = excluded.status",
            )
            .bind(&r.tag[..])
            .bind(&r.sealed_key[..])
            .bind(status_code(r.status))
            .execute(&mut *tx)
            .await?;
        }
        let mut unknown = Vec::new();
        let mut cleared = std::collections::HashSet::new();
        for s in subscriptions {
            let known = sqlx::query("SELECT 1 FROM recipients WHERE tag = ?")
                .bind(&s.tag[..])
                .fetch_optional(&mut *tx)
                .await?;
            if known.is_none() {
                unknown.push(s.line);
                continue;
            }
            if cleared.insert(s.tag) {
                sqlx::query("DELETE FROM subscriptions WHERE tag = ?")
                    .bind(&s.tag[..])
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT OR IGNORE INTO subscriptions (tag, sender_cvr) VALUES (?, ?)")
                .bind(&s.tag[..])
                .bind(i64::from(s.sender.value()))
                .execute(&mut *tx)
                .await?;
        }
        if !unknown.is_empty() {
            return Err(StoreError::UnknownSubscribers(unknown));
        }
        bump(&mut tx, "registry_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_registry(&self) -> Result<StoredRegistry, StoreError> {
        let rows = sqlx::query("SELECT tag, sealed_key, status FROM recipients")
            .fetch_all(&self.pool)
            .await?;
        let mut reg = StoredRegistry::default();
        reg.recipients.reserve(rows.len());
        for r in rows {
            reg.recipients.push((
                tag_from(r.try_get("tag")?)?,
                r.try_get("sealed_key")?,
                status_from(r.try_get("status")?)?,
            ));
        }
        let rows = sqlx::query(
            "SELECT r.tag, r.sealed_key, s.sender_cvr FROM subscriptions s JOIN recipients r ON r.tag = s.tag",
        )
        .fetch_all(&self.pool)
        .await?;
        reg.subscriptions.reserve(rows.len());
        for r in rows {
            let cvr: i64 = r.try_get("sender_cvr")?;
            reg.subscriptions.push((
                tag_from(r.try_get("tag")?)?,
                r.try_get("sealed_key")?,
                Cvr::from_value(cvr as u32).map_err(|_| corrupt("subscription sender"))?,
            ));
        }
        Ok(reg)
    }

    async fn generations(&self) -> Result<Generations, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM meta")
            .fetch_all(&self.pool)
            .await?;
        let mut g = Generations::default();
        for r in rows {
            let key: String = r.try_get("key")?;
            let value: i64 = r.try_get("value")?;
            match key.as_str() {
                "senders_generation" => g.senders = value,
                "registry_generation" => g.registry = value,
                _ => {}
            }
        }
        Ok(g)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
