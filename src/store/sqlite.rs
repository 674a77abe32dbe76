//! The embedded default store: SQLite in the data directory, through sqlx.
//!
//! WAL journal with `synchronous = FULL`, so a commit is on disk when it returns; one writer at a
//! time (SQLite's rule), readers alongside. Write transactions begin IMMEDIATE: a deferred one
//! that reads first cannot wait for the write lock and fails with "database is locked" when an
//! admin command writes at the same moment. Writes come in batches from the committer, one
//! transaction per batch: that is what turns ~110 µs fsyncs into thousands of letters a second.
//!
//! The statements both backends share are in `shared`; here are only those that differ:
//! letter content in segment files (`blobs`) and row-by-row batches, which with one local
//! writer cost no round trip to a server.

use crate::backend::DatabaseOptions;
use std::path::Path;
use std::sync::Arc;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::db::route_code;
use crate::db::sqlite::open_sqlite;
use crate::domain::{LetterId, LetterState};

use super::blobs::{BlobLog, BlobRef};
use super::follow_sql::{NewEvent, signal_all, write_events_sqlite};
use super::rows::{self, WAITING, corrupt, cvr_code, cvr_from};
use super::shared::{self, Backend, Mark};
use super::{Cause, InsertOutcome, NewLetter, StoreError, StoredLetter};

pub struct SqliteStore {
    pool: SqlitePool,
    /// The database file (its size, and its journal's, count in `stored_bytes`).
    path: std::path::PathBuf,
    /// Letter ciphertext, written once to append-only segments (see `blobs`).
    blobs: Arc<BlobLog>,
    /// Whether storing letters writes their acceptance events; always true in the gateway.
    /// Off only through [`SqliteStore::without_intake_events_for_bench`].
    intake_events: bool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &DatabaseOptions::default()).await
    }

    /// Opens with the configured connection count and busy timeout.
    pub async fn open_with(path: &Path, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let blobs = BlobLog::open(&path.with_extension("blobs"))?;
        let pool = open_sqlite(path, &MIGRATOR, options)
            .await
            .map_err(|e| StoreError::Unavailable(Cause::Sqlite(e)))?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            blobs: Arc::new(blobs),
            intake_events: true,
        })
    }

    /// The same store storing letters without their acceptance events: breaks the guarantee
    /// that every accepted letter has its event, and exists only so `benches/events.rs` can
    /// put the intake cost of events beside intake without them in the same run.
    #[doc(hidden)]
    pub fn without_intake_events_for_bench(mut self) -> Self {
        self.intake_events = false;
        self
    }
}

impl SqliteStore {
    /// Per letter of a batch: whether its (sender, uuid) is already stored, or repeats one
    /// earlier in the batch. Those get no content written: a duplicate resend must not grow
    /// the segments.
    async fn known_letters(&self, letters: &[NewLetter]) -> Result<Vec<bool>, StoreError> {
        // Per sender, so each lookup is a search of the (sender_cvr, message_uuid) index; a
        // row-value IN over pairs would scan it.
        let mut by_sender: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for l in letters {
            by_sender
                .entry(cvr_code(l.sender))
                .or_default()
                .push(l.message_uuid.to_string());
        }
        let mut stored = std::collections::HashSet::new();
        for (sender, uuids) in &by_sender {
            for chunk in uuids.chunks(500) {
                let sql = format!(
                    "SELECT message_uuid FROM letters WHERE sender_cvr = $1 AND message_uuid IN ({})",
                    (0..chunk.len())
                        .map(|i| format!("${}", i + 2))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(*sender);
                for u in chunk {
                    q = q.bind(u.as_str());
                }
                for row in q.fetch_all(&self.pool).await? {
                    let uuid: String = row.try_get("message_uuid")?;
                    stored.insert((*sender, uuid));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        Ok(letters
            .iter()
            .map(|l| {
                let key = (cvr_code(l.sender), l.message_uuid.to_string());
                stored.contains(&key) || !seen.insert(key)
            })
            .collect())
    }

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
            .await?
            .map_err(|e| StoreError::Corrupt {
                what: "letter content missing",
                source: Some(Cause::Blobs(e)),
            })
    }
}

/// Reads two statements in one snapshot: in WAL mode a deferred transaction sees the database as
/// of its first read until it ends.
const SNAPSHOT: &str = "BEGIN";

/// A letter as delivery reads it: the record columns, the sealing and where its content is.
const SELECT_FOR_DELIVERY: &str = concat!(
    "SELECT ",
    rows::record_columns!(),
    ", recipient_tag, kek_id, wrapped_key, nonce, ciphertext, blob_segment, blob_offset, \
     blob_len FROM letters WHERE letter_id = $1"
);

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first could
    // not wait for it when an admin command writes at the same moment (see the module doc).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_SNAPSHOT: &'static str = SNAPSHOT;

    async fn insert_batch(&self, letters: &[NewLetter]) -> Result<Vec<InsertOutcome>, StoreError> {
        // Content first, durable, then the rows that point at it; a resend's content is not
        // written again (its row exists: the insert below finds it).
        let known = self.known_letters(letters).await?;
        let fresh = || letters.iter().zip(&known).filter(|(_, k)| !**k);
        let lens: Vec<usize> = fresh().map(|(l, _)| l.sealed.ciphertext.len()).collect();
        let mut data = Vec::with_capacity(lens.iter().sum());
        for (l, _) in fresh() {
            data.extend_from_slice(&l.sealed.ciphertext);
        }
        let blobs = self.blobs.clone();
        let appended = tokio::task::spawn_blocking(move || blobs.append(&data, &lens)).await??;
        let mut appended = appended.into_iter();
        let refs: Vec<Option<BlobRef>> = known
            .iter()
            .map(|k| if *k { None } else { appended.next() })
            .collect();
        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
        let mut out = Vec::with_capacity(letters.len());
        let mut events = Vec::with_capacity(letters.len());
        for (l, blob) in letters.iter().zip(&refs) {
            // A letter known to be stored offers no content: its insert must conflict.
            let blob = blob.unwrap_or(BlobRef {
                segment: 0,
                offset: 0,
                len: 0,
            });
            let state = if l.not_before_ms.is_some() {
                LetterState::Scheduled
            } else {
                LetterState::Accepted
            };
            let inserted = sqlx::query(
                "INSERT INTO letters (letter_id, sender_cvr, message_uuid, recipient_tag, \
                 fingerprint, content_sha256, route, priority, state, kek_id, wrapped_key, nonce, \
                 ciphertext, accepted_at, not_before, blob_segment, blob_offset, blob_len, \
                 batch_id, sender_reference) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, X'', $13, $14, $15, \
                 $16, $17, $18, $19) ON CONFLICT (sender_cvr, message_uuid) DO NOTHING",
            )
            .bind(l.letter_id.to_string())
            .bind(cvr_code(l.sender))
            .bind(l.message_uuid.to_string())
            .bind(&l.recipient_tag[..])
            .bind(&l.fingerprint.0[..])
            .bind(l.content_sha256.to_hex())
            .bind(route_code(l.route))
            .bind(l.priority.code())
            .bind(state.code())
            .bind(i64::from(l.sealed.kek_id.0))
            .bind(&l.sealed.wrapped_key[..])
            .bind(&l.sealed.nonce[..])
            .bind(l.accepted_at_ms)
            .bind(l.not_before_ms)
            .bind(i64::from(blob.segment))
            .bind(i64::try_from(blob.offset).map_err(|_| corrupt("blob offset"))?)
            .bind(i64::try_from(blob.len).map_err(|_| corrupt("blob length"))?)
            .bind(l.batch_id.as_ref().map(|b| b.as_str()))
            .bind(l.sender_reference.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 && blob.len == 0 && !l.sealed.ciphertext.is_empty() {
                // Only this process writes letters to this database, so a letter found stored
                // a moment ago cannot be missing now; if it is, store nothing rather than a row
                // without its content.
                return Err(corrupt("a letter found stored before the insert was not"));
            }
            if inserted == 1 {
                if self.intake_events {
                    events.push(NewEvent::accepted(l));
                }
                out.push(InsertOutcome::Inserted);
            } else {
                // The sender's earlier letter with this uuid, stored before or earlier in
                // this batch (this transaction sees its own rows).
                let row = sqlx::query(shared::SELECT_BY_MESSAGE_UUID)
                    .bind(l.message_uuid.to_string())
                    .bind(cvr_code(l.sender))
                    .fetch_one(&mut *tx)
                    .await?;
                out.push(InsertOutcome::Existing(rows::record_from(&row)?));
            }
        }
        // The acceptance events, in this transaction: a receipt's letter always has its event.
        let written = write_events_sqlite(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        Ok(out)
    }

    async fn write_events(
        conn: &mut <Self::Db as sqlx::Database>::Connection,
        events: &[NewEvent],
        detail: &str,
    ) -> Result<Vec<(crate::domain::Cvr, usize)>, StoreError> {
        write_events_sqlite(conn, events, detail).await
    }

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn stored_bytes(&self) -> Result<u64, StoreError> {
        super::compact::sqlite_bytes(&self.path, &self.blobs).await
    }

    async fn purge_content(
        &self,
        delivered_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        super::compact::purge(
            &self.pool,
            super::compact::PURGE_SQLITE,
            delivered_before_ms,
            limit,
        )
        .await
    }

    async fn compact(&self) -> Result<u64, StoreError> {
        super::compact::segments(&self.pool, &self.blobs).await
    }

    async fn load_batch(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(SELECT_FOR_DELIVERY)
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else { continue };
            let ciphertext = self.read_ciphertext(&row).await?;
            out.push(rows::stored_from(&row, ciphertext)?);
        }
        Ok(out)
    }

    async fn deliver_batch(&self, m: Mark<'_>) -> Result<Vec<LetterId>, StoreError> {
        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
        let mut changed = Vec::with_capacity(m.ids.len());
        let mut events = Vec::with_capacity(m.ids.len());
        for id in m.ids {
            // The waiting condition a recall has too (`follow_sql::CANCEL_ONE`): of a delivery
            // and a recall racing for one letter exactly one changes it. Attempts were counted
            // before the work (`begin_attempts`), not here.
            let sender: Option<i64> = sqlx::query_scalar(
                "UPDATE letters SET state = $1, delivered_at = $2, print_batch = $3 \
                 WHERE letter_id = $4 AND state IN ($5, $6) \
                 AND (print_batch IS NULL OR print_batch = $3) RETURNING sender_cvr",
            )
            .bind(m.state.code())
            .bind(m.at_ms)
            .bind(m.print_batch)
            .bind(id.to_string())
            .bind(WAITING[0].code())
            .bind(WAITING[1].code())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(sender) = sender {
                events.push(NewEvent {
                    sender: cvr_from(sender, "sender cvr")?,
                    letter_id: *id,
                    state: m.state,
                    at_ms: m.at_ms,
                });
                if m.state == LetterState::Delivered {
                    sqlx::query(
                        "INSERT INTO mailbox (letter_id, recipient_tag, delivered_at) \
                         SELECT letter_id, recipient_tag, $1 FROM letters WHERE letter_id = $2",
                    )
                    .bind(m.at_ms)
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
}

super::follow_sql::follow_store!(
    SqliteStore,
    sqlx::Sqlite,
    SqliteStore::BEGIN_WRITE,
    None,
    rows::record_from,
    rows::record_columns!(),
    write_events_sqlite
);
