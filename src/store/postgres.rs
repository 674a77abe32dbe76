//! The production store: PostgreSQL through sqlx, shared by several gateway instances.
//!
//! Same tables and meaning as the SQLite store (see `migrations/postgres`). A commit is durable
//! when it returns because PostgreSQL's default `synchronous_commit = on` waits for the WAL
//! flush; nothing here changes that. Every write is one transaction per call, and every batch is
//! one statement over arrays (`UNNEST`), not a statement per row: a round trip per letter is
//! what would otherwise cap throughput at a couple of thousand letters a second.
//!
//! Several processes write at once, so the rules they could race on are the database's: the
//! idempotency key is a UNIQUE constraint (a concurrent second insert waits for the first to
//! commit, then does nothing), state changes are conditional updates (the row lock makes the
//! second one see the first's result), and the change counters are bumped with
//! `value = value + 1` under the row lock. Batches take their row locks in a sorted order, so
//! two gateways with overlapping batches wait for each other instead of deadlocking.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};

use crate::domain::{
    Cvr, LetterId, LetterState, MessageUuid, Priority, SenderInfo, SenderKind, SenderLimits,
};
use crate::seal::{ContentDigest, KekId, RecipientTag, Sealed};

use super::follow_sql::{NewEvent, batch_from, signal_all, write_events_pg};
use super::{
    Generations, InsertOutcome, LetterKey, LetterRecord, NewLetter, PendingDelivery, RecipientRow,
    StateCounts, Store, StoreError, StoredLetter, StoredRegistry, SubscriptionRow, corrupt,
    digest_from, route_code, route_from_code, status_code, status_from, tag_from,
};

/// Connections per gateway instance unless the caller says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// How long opening a connection or waiting for a free one may take before the store answers
/// `Unavailable`: a database that is down must turn into a retryable error the sender sees
/// quickly, not a request that hangs.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows per registry statement: large enough that a six-million-row import is a few hundred
/// round trips, small enough that one statement's arrays stay a few megabytes.
const REGISTRY_CHUNK: usize = 50_000;

/// Key of the transaction-level advisory lock that serialises registry imports across gateway
/// processes (SQLite gets the same from its single writer).
const REGISTRY_IMPORT_LOCK: i64 = 0x6272_6576_6475_6501;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects with the default pool size and runs the migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, DEFAULT_POOL_SIZE).await
    }

    /// Connects with at most `pool_size` connections and brings the schema up to date. Several
    /// instances may do this at once: sqlx holds an advisory lock while it migrates.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(without_password(url)))?
            .application_name("brevdue");
        // Errors name the server but never the URL, which may carry a password.
        let server = format!(
            "PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            // A connection whose COMMIT failed midway is closed rather than reused.
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{server}: {e}")))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("{server}: migration failed: {e}")))?;
        Ok(PostgresStore { pool })
    }
}

/// The URL as it may appear in an error message: everything before the host (user and
/// password) left out.
pub(crate) fn without_password(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_string(),
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

fn cvr_from(value: i64) -> Result<Cvr, StoreError> {
    u32::try_from(value)
        .ok()
        .and_then(|v| Cvr::from_value(v).ok())
        .ok_or_else(|| corrupt("sender cvr"))
}

fn record_from(row: &PgRow) -> Result<LetterRecord, StoreError> {
    let letter_id: String = row.try_get("letter_id")?;
    let message_uuid: String = row.try_get("message_uuid")?;
    let content: String = row.try_get("content_sha256")?;
    let state: i64 = row.try_get("state")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(LetterRecord {
        letter_id: letter_id.parse().map_err(|_| corrupt("letter id"))?,
        sender: cvr_from(row.try_get("sender_cvr")?)?,
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

impl PostgresStore {
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::follow_sql::follow_store!(
    PostgresStore,
    sqlx::Postgres,
    "BEGIN",
    record_from,
    RECORD_COLUMNS,
    write_events_pg
);

async fn bump(tx: &mut PgConnection, key: &'static str) -> Result<(), StoreError> {
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = $1")
        .bind(key)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Reads in one snapshot, so a change committed between two of the queries is either wholly
/// in the result or wholly out of it.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

#[async_trait]
impl Store for PostgresStore {
    async fn insert_letters(
        &self,
        letters: &[NewLetter],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        if letters.is_empty() {
            return Ok(Vec::new());
        }
        // Only the first letter with a given (sender, uuid) is offered to the database; a later
        // one in the same batch is `Existing` of it, as it would be one batch later.
        let mut first = HashMap::with_capacity(letters.len());
        let mut offered: Vec<&NewLetter> = letters
            .iter()
            .enumerate()
            .filter(|(i, l)| *first.entry((l.sender, l.message_uuid)).or_insert(*i) == *i)
            .map(|(_, l)| l)
            .collect();
        // Insert in key order: two gateways inserting overlapping batches then lock the
        // conflicting keys in the same order and one waits for the other, never a deadlock.
        offered.sort_by_key(|l| (l.sender, l.message_uuid));

        let n = offered.len();
        let mut letter_id = Vec::with_capacity(n);
        let mut sender = Vec::with_capacity(n);
        let mut message_uuid = Vec::with_capacity(n);
        let mut recipient_tag = Vec::with_capacity(n);
        let mut fingerprint = Vec::with_capacity(n);
        let mut content_sha256 = Vec::with_capacity(n);
        let mut route = Vec::with_capacity(n);
        let mut priority = Vec::with_capacity(n);
        let mut state = Vec::with_capacity(n);
        let mut kek_id = Vec::with_capacity(n);
        let mut wrapped_key = Vec::with_capacity(n);
        let mut nonce = Vec::with_capacity(n);
        let mut ciphertext = Vec::with_capacity(n);
        let mut accepted_at = Vec::with_capacity(n);
        let mut not_before = Vec::with_capacity(n);
        let mut batch_id = Vec::with_capacity(n);
        let mut sender_reference = Vec::with_capacity(n);
        for l in &offered {
            batch_id.push(l.batch_id.as_ref().map(|b| b.as_str()));
            sender_reference.push(l.sender_reference.as_str());
            letter_id.push(l.letter_id.to_string());
            sender.push(i64::from(l.sender.value()));
            message_uuid.push(l.message_uuid.to_string());
            recipient_tag.push(&l.recipient_tag[..]);
            fingerprint.push(&l.fingerprint.0[..]);
            content_sha256.push(l.content_sha256.to_hex());
            route.push(route_code(l.route));
            priority.push(l.priority.code());
            state.push(
                if l.not_before_ms.is_some() {
                    LetterState::Scheduled
                } else {
                    LetterState::Accepted
                }
                .code(),
            );
            kek_id.push(i64::from(l.sealed.kek_id.0));
            wrapped_key.push(&l.sealed.wrapped_key[..]);
            nonce.push(&l.sealed.nonce[..]);
            ciphertext.push(&l.sealed.ciphertext[..]);
            accepted_at.push(l.accepted_at_ms);
            not_before.push(l.not_before_ms);
        }

        let mut tx = self.pool.begin().await?;
        let inserted_ids: HashSet<String> = sqlx::query(
            "INSERT INTO letters (letter_id, sender_cvr, message_uuid, recipient_tag, fingerprint, \
             content_sha256, route, priority, state, kek_id, wrapped_key, nonce, ciphertext, \
             accepted_at, not_before, batch_id, sender_reference) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bytea[], $5::bytea[], \
             $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[], \
             $12::bytea[], $13::bytea[], $14::bigint[], $15::bigint[], $16::text[], $17::text[]) \
             ON CONFLICT (sender_cvr, message_uuid) DO NOTHING RETURNING letter_id",
        )
        .bind(&letter_id)
        .bind(&sender)
        .bind(&message_uuid)
        .bind(&recipient_tag)
        .bind(&fingerprint)
        .bind(&content_sha256)
        .bind(&route)
        .bind(&priority)
        .bind(&state)
        .bind(&kek_id)
        .bind(&wrapped_key)
        .bind(&nonce)
        .bind(&ciphertext)
        .bind(&accepted_at)
        .bind(&not_before)
        .bind(&batch_id)
        .bind(&sender_reference)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("letter_id"))
        .collect::<Result<_, _>>()?;

        // Inserted: the first of its key in this batch, and its own row went in.
        let inserted: Vec<bool> = letters
            .iter()
            .enumerate()
            .map(|(i, l)| {
                first.get(&(l.sender, l.message_uuid)) == Some(&i)
                    && inserted_ids.contains(&l.letter_id.to_string())
            })
            .collect();
        // Every other letter is `Existing`: read those records in one query. A conflicting row
        // from another gateway is committed by now (the insert waited for it), and this
        // statement's fresh snapshot sees it.
        let mut wanted: Vec<(Cvr, MessageUuid)> = letters
            .iter()
            .zip(&inserted)
            .filter(|(_, inserted)| !**inserted)
            .map(|(l, _)| (l.sender, l.message_uuid))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut existing = HashMap::with_capacity(wanted.len());
        if !wanted.is_empty() {
            let senders: Vec<i64> = wanted.iter().map(|k| i64::from(k.0.value())).collect();
            let uuids: Vec<String> = wanted.iter().map(|k| k.1.to_string()).collect();
            let rows = sqlx::query(
                "SELECT l.letter_id, l.sender_cvr, l.message_uuid, l.fingerprint, l.content_sha256, \
                 l.route, l.priority, l.state, l.accepted_at, l.not_before, l.delivered_at, \
                 l.attempts, l.detail, l.batch_id, l.sender_reference \
                 FROM UNNEST($1::bigint[], $2::text[]) AS k (sender_cvr, message_uuid) \
                 JOIN letters l ON l.sender_cvr = k.sender_cvr AND l.message_uuid = k.message_uuid",
            )
            .bind(&senders)
            .bind(&uuids)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let record = record_from(row)?;
                existing.insert((record.sender, record.message_uuid), record);
            }
        }
        // The acceptance events, in this transaction: a receipt's letter always has its event.
        let events: Vec<NewEvent> = letters
            .iter()
            .zip(&inserted)
            .filter(|(_, inserted)| **inserted)
            .map(|(l, _)| NewEvent::accepted(l))
            .collect();
        let written = write_events_pg(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);

        letters
            .iter()
            .zip(inserted)
            .map(|(l, inserted)| {
                if inserted {
                    return Ok(InsertOutcome::Inserted);
                }
                existing
                    .get(&(l.sender, l.message_uuid))
                    .cloned()
                    .map(InsertOutcome::Existing)
                    .ok_or_else(|| {
                        StoreError::Unavailable(
                            "a letter that conflicted on insert could not be read back; retry"
                                .into(),
                        )
                    })
            })
            .collect()
    }

    async fn letter(
        &self,
        sender: Cvr,
        key: LetterKey,
    ) -> Result<Option<LetterRecord>, StoreError> {
        let (query, value) = match key {
            LetterKey::LetterId(id) => (
                "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, \
                 priority, state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference \
                 FROM letters WHERE letter_id = $1 AND sender_cvr = $2",
                id.to_string(),
            ),
            LetterKey::MessageUuid(uuid) => (
                "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, \
                 priority, state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference \
                 FROM letters WHERE message_uuid = $1 AND sender_cvr = $2",
                uuid.to_string(),
            ),
        };
        let row = sqlx::query(query)
            .bind(value)
            .bind(i64::from(sender.value()))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record_from).transpose()
    }

    async fn load_for_delivery(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        let rows = sqlx::query(
            "SELECT letter_id, sender_cvr, message_uuid, fingerprint, content_sha256, route, \
             priority, state, accepted_at, not_before, delivered_at, attempts, detail, batch_id, sender_reference, \
             recipient_tag, kek_id, wrapped_key, nonce, ciphertext \
             FROM letters WHERE letter_id = ANY($1::text[])",
        )
        .bind(&keys)
        .fetch_all(&self.pool)
        .await?;
        let mut by_id: HashMap<LetterId, StoredLetter> = HashMap::with_capacity(rows.len());
        for row in rows {
            let kek: i64 = row.try_get("kek_id")?;
            let nonce: Vec<u8> = row.try_get("nonce")?;
            let record = record_from(&row)?;
            by_id.insert(
                record.letter_id,
                StoredLetter {
                    recipient_tag: tag_from(row.try_get("recipient_tag")?)?,
                    sealed: Sealed {
                        kek_id: KekId(u32::try_from(kek).map_err(|_| corrupt("kek id"))?),
                        wrapped_key: row.try_get("wrapped_key")?,
                        nonce: nonce.try_into().map_err(|_| corrupt("nonce length"))?,
                        ciphertext: row.try_get("ciphertext")?,
                    },
                    record,
                },
            );
        }
        // In the order asked for, an id asked for twice answered twice, as the SQLite store
        // answers; a letter is moved out on its last mention rather than copied.
        let mut mentions: HashMap<LetterId, usize> = HashMap::with_capacity(ids.len());
        for id in ids {
            *mentions.entry(*id).or_default() += 1;
        }
        let mut out = Vec::with_capacity(by_id.len());
        for id in ids {
            let Some(left) = mentions.get_mut(id) else {
                continue;
            };
            *left -= 1;
            let letter = if *left == 0 {
                by_id.remove(id)
            } else {
                by_id.get(id).cloned()
            };
            out.extend(letter);
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted, so two workers marking overlapping sets lock rows in the same order.
        let mut keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        keys.sort();
        keys.dedup();
        let mut tx = self.pool.begin().await?;
        // `state IN (1, 2)` is re-checked after waiting for a concurrent update of the same row,
        // so of two workers delivering one letter only the first changes it.
        let rows = sqlx::query(
            "UPDATE letters SET state = $1, delivered_at = $2, print_batch = $3, \
             attempts = attempts + 1 \
             WHERE letter_id = ANY($4::text[]) AND state IN (1, 2) RETURNING letter_id, sender_cvr",
        )
        .bind(state.code())
        .bind(at_ms)
        .bind(print_batch)
        .bind(&keys)
        .fetch_all(&mut *tx)
        .await?;
        let mut changed: HashSet<String> = HashSet::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("letter_id")?;
            events.push(NewEvent {
                sender: cvr_from(r.try_get("sender_cvr")?)?,
                letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
                state,
                at_ms,
            });
            changed.insert(id);
        }
        if state == LetterState::Delivered && !changed.is_empty() {
            let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
            sqlx::query(
                "INSERT INTO mailbox (letter_id, recipient_tag, delivered_at) \
                 SELECT letter_id, recipient_tag, $1 FROM letters WHERE letter_id = ANY($2::text[])",
            )
            .bind(at_ms)
            .bind(&changed)
            .execute(&mut *tx)
            .await?;
        }
        let written = write_events_pg(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        let mut reported = HashSet::with_capacity(changed.len());
        Ok(ids
            .iter()
            .filter(|id| changed.contains(&id.to_string()) && reported.insert(**id))
            .copied()
            .collect())
    }

    async fn record_attempt(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE letters SET attempts = attempts + 1, detail = $1 WHERE letter_id = $2")
            .bind(detail)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_failed(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let sender: Option<i64> = sqlx::query_scalar(
            "UPDATE letters SET state = 5, detail = $1, attempts = attempts + 1 \
             WHERE letter_id = $2 AND state IN (1, 2) RETURNING sender_cvr",
        )
        .bind(detail)
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        if let Some(sender) = sender {
            let event = NewEvent::now(cvr_from(sender)?, id, LetterState::Failed);
            written = write_events_pg(&mut tx, &[event], detail).await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(())
    }

    async fn reopen(&self, id: LetterId) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let sender: Option<i64> = sqlx::query_scalar(
            "UPDATE letters SET state = 1, detail = '' WHERE letter_id = $1 AND state = 5 \
             RETURNING sender_cvr",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        if let Some(sender) = sender {
            let event = NewEvent::now(cvr_from(sender)?, id, LetterState::Accepted);
            written = write_events_pg(&mut tx, &[event], "reopened by an operator").await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(sender.is_some())
    }

    async fn undelivered(&self) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT letter_id, sender_cvr, route, priority, not_before, accepted_at FROM letters \
             WHERE state IN (1, 2)",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("letter_id")?;
                let not_before: Option<i64> = r.try_get("not_before")?;
                Ok(PendingDelivery {
                    sender: cvr_from(r.try_get("sender_cvr")?)?,
                    letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
                    route: route_from_code(r.try_get("route")?),
                    priority: Priority::from_code(r.try_get("priority")?),
                    not_before_ms: not_before.unwrap_or(0),
                    accepted_at_ms: r.try_get("accepted_at")?,
                })
            })
            .collect()
    }

    async fn print_batch_letters(&self, batch: &str) -> Result<Vec<LetterId>, StoreError> {
        let rows = sqlx::query("SELECT letter_id FROM letters WHERE print_batch = $1")
            .bind(batch)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("letter_id")?;
                id.parse()
                    .map_err(|_| StoreError::Corrupt("letter id".into()))
            })
            .collect()
    }

    async fn mailbox_count(&self, tag: &RecipientTag) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM mailbox WHERE recipient_tag = $1")
            .bind(&tag[..])
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n.unsigned_abs())
    }

    async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM letters GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut c = StateCounts::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            let n = n.unsigned_abs();
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
        let mut tx = self.pool.begin().await?;
        let now = crate::clock::now_ms();
        // A concurrent add of the same CVR waits here for the first to commit, then inserts
        // nothing: exactly one of them succeeds, the other is told `SenderExists`.
        let n = sqlx::query(
            "INSERT INTO senders (cvr, name, kind, suspended, created_at, weight, rate_per_s, burst, max_in_flight, max_letter_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (cvr) DO NOTHING",
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
        sqlx::query("INSERT INTO sender_certs (fingerprint, cvr, issued_at) VALUES ($1, $2, $3)")
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
        let mut tx = self.pool.begin().await?;
        // Senders are never deleted, so a sender seen here is still there at commit.
        let known = sqlx::query("SELECT 1 FROM senders WHERE cvr = $1")
            .bind(i64::from(cvr.value()))
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::UnknownSender(cvr));
        }
        sqlx::query("INSERT INTO sender_certs (fingerprint, cvr, issued_at) VALUES ($1, $2, $3)")
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE senders SET suspended = $1 WHERE cvr = $2")
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE senders SET weight = $1, rate_per_s = $2, burst = $3, max_in_flight = $4, \
             max_letter_bytes = $5 WHERE cvr = $6",
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
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let rows = sqlx::query("SELECT cvr, name, kind, suspended, weight, rate_per_s, burst, max_in_flight, max_letter_bytes FROM senders")
            .fetch_all(&mut *tx)
            .await?;
        let mut senders = Vec::with_capacity(rows.len());
        for r in rows {
            let kind: String = r.try_get("kind")?;
            senders.push(SenderInfo {
                cvr: cvr_from(r.try_get("cvr")?)?,
                name: r.try_get("name")?,
                kind: SenderKind::from_str(&kind).map_err(|_| corrupt("sender kind"))?,
                suspended: r.try_get("suspended")?,
                limits: super::LimitColumns::read(&r)?,
            });
        }
        let rows = sqlx::query("SELECT fingerprint, cvr FROM sender_certs")
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut certs = Vec::with_capacity(rows.len());
        for r in rows {
            let fp: Vec<u8> = r.try_get("fingerprint")?;
            certs.push((
                fp.try_into().map_err(|_| corrupt("fingerprint"))?,
                cvr_from(r.try_get("cvr")?)?,
            ));
        }
        Ok((senders, certs))
    }

    async fn import_registry(
        &self,
        recipients: &[RecipientRow],
        subscriptions: &[SubscriptionRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // One import at a time across all gateways: two interleaved imports replacing the same
        // recipient's subscriptions would otherwise leave the union of both.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REGISTRY_IMPORT_LOCK)
            .execute(&mut *tx)
            .await?;

        // A tag listed twice ends as SQLite's row-by-row upsert leaves it: the first sealed key
        // (an equal id either way) and the last status. One statement may not update a row
        // twice, so duplicates are folded here; sorted for a stable lock order.
        let mut folded: HashMap<RecipientTag, (&[u8], i64)> =
            HashMap::with_capacity(recipients.len());
        for r in recipients {
            folded
                .entry(r.tag)
                .and_modify(|e| e.1 = status_code(r.status))
                .or_insert((&r.sealed_key[..], status_code(r.status)));
        }
        let mut folded: Vec<(RecipientTag, &[u8], i64)> =
            folded.into_iter().map(|(t, (k, s))| (t, k, s)).collect();
        folded.sort_unstable_by_key(|r| r.0);
        for chunk in folded.chunks(REGISTRY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|r| &r.0[..]).collect();
            let keys: Vec<&[u8]> = chunk.iter().map(|r| r.1).collect();
            let statuses: Vec<i64> = chunk.iter().map(|r| r.2).collect();
            sqlx::query(
                "INSERT INTO recipients (tag, sealed_key, status) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[]) \
                 ON CONFLICT (tag) DO UPDATE SET status = excluded.status",
            )
            .bind(&tags)
            .bind(&keys)
            .bind(&statuses)
            .execute(&mut *tx)
            .await?;
        }

        // Every subscriber must now be a known recipient (recipients are never deleted).
        let mut subscribers: Vec<RecipientTag> = subscriptions.iter().map(|s| s.tag).collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        let mut unknown_tags = HashSet::new();
        for chunk in subscribers.chunks(REGISTRY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|t| &t[..]).collect();
            let rows = sqlx::query(
                "SELECT t.tag FROM UNNEST($1::bytea[]) AS t (tag) \
                 WHERE NOT EXISTS (SELECT 1 FROM recipients r WHERE r.tag = t.tag)",
            )
            .bind(&tags)
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                unknown_tags.insert(tag_from(r.try_get("tag")?)?);
            }
        }
        if !unknown_tags.is_empty() {
            let lines = subscriptions
                .iter()
                .filter(|s| unknown_tags.contains(&s.tag))
                .map(|s| s.line)
                .collect();
            return Err(StoreError::UnknownSubscribers(lines));
        }

        // Replace: first clear every named recipient's subscriptions, then add those listed.
        for chunk in subscribers.chunks(REGISTRY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|t| &t[..]).collect();
            sqlx::query("DELETE FROM subscriptions WHERE tag = ANY($1::bytea[])")
                .bind(&tags)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in subscriptions.chunks(REGISTRY_CHUNK) {
            let tags: Vec<&[u8]> = chunk.iter().map(|s| &s.tag[..]).collect();
            let senders: Vec<i64> = chunk.iter().map(|s| i64::from(s.sender.value())).collect();
            sqlx::query(
                "INSERT INTO subscriptions (tag, sender_cvr) \
                 SELECT * FROM UNNEST($1::bytea[], $2::bigint[]) ON CONFLICT DO NOTHING",
            )
            .bind(&tags)
            .bind(&senders)
            .execute(&mut *tx)
            .await?;
        }
        bump(&mut tx, "registry_generation").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load_registry(&self) -> Result<StoredRegistry, StoreError> {
        let mut tx = self.pool.begin_with(SNAPSHOT).await?;
        let mut reg = StoredRegistry::default();
        // Streamed: millions of rows are decoded as they arrive, never held twice.
        {
            let mut rows =
                sqlx::query("SELECT tag, sealed_key, status FROM recipients").fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                reg.recipients.push((
                    tag_from(r.try_get("tag")?)?,
                    r.try_get("sealed_key")?,
                    status_from(r.try_get("status")?)?,
                ));
            }
        }
        {
            let mut rows = sqlx::query(
                "SELECT r.tag, r.sealed_key, s.sender_cvr \
                 FROM subscriptions s JOIN recipients r ON r.tag = s.tag",
            )
            .fetch(&mut *tx);
            while let Some(r) = rows.try_next().await? {
                reg.subscriptions.push((
                    tag_from(r.try_get("tag")?)?,
                    r.try_get("sealed_key")?,
                    cvr_from(r.try_get("sender_cvr")?)?,
                ));
            }
        }
        tx.commit().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_never_carry_the_password() {
        assert_eq!(
            without_password("postgres://brevdue:s3cret@db:5432/brevdue"),
            "postgres://…@db:5432/brevdue"
        );
        assert_eq!(without_password("postgres://db/x"), "postgres://db/x");
    }
}
