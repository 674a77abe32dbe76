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

//!
//! The statements both backends share are in `shared`; here are only those that differ: the
//! batches over arrays, the lock order and the advisory lock of registry imports.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::backend::DatabaseOptions;
use sqlx::{PgPool, Row};

use crate::db::route_code;
use crate::domain::{Cvr, LetterId, LetterState, MessageUuid};

use super::follow_sql::{NewEvent, signal_all, write_events_pg};
use super::rows::{self, WAITING, corrupt, cvr_code, cvr_from, record_columns};
use super::shared::{Backend, Mark};
use super::{Cause, InsertOutcome, NewLetter, StoreError, StoredLetter};

/// Connections per gateway instance unless the caller says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

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
        let options = DatabaseOptions {
            max_connections: pool_size,
            ..DatabaseOptions::default()
        };
        Self::connect_with(url, &options).await
    }

    /// Connects with the configured pool size and deadlines and brings the schema up to date.
    pub async fn connect_with(url: &str, db: &DatabaseOptions) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(without_password(url)))?
            .application_name("brevdue");
        if !db.statement_timeout.is_zero() {
            let ms = db.statement_timeout.as_millis().to_string();
            options = options.options([("statement_timeout", ms.as_str())]);
        }
        let pool_size = db.max_connections;
        // The cause of a failure names the server (for the log) but never the URL, which may
        // carry a password.
        let server = format!(
            "PostgreSQL at {}:{}/{}",
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or(options.get_username())
        );
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            // A connection whose COMMIT failed midway is closed rather than reused. One that
            // is kept gives back the buffer space its statements needed: a round of letters (a
            // multi-row insert, a load of their ciphertext) grows a connection's buffers to
            // megabytes, which sqlx otherwise keeps for good, so every connection of the pool
            // would in time hold as much as the largest round it ever carried. Over two million
            // letters the gateways' memory grew 10.3 % from the second quarter to the last
            // without this, 4.9 % shrinking at every 16th release and fell 7.6 % shrinking at
            // every one; the CPU a letter did not differ beyond noise.
            .after_release(|conn, _| {
                Box::pin(async move {
                    if sqlx::Connection::is_in_transaction(conn) {
                        return Ok(false);
                    }
                    sqlx::Connection::shrink_buffers(conn);
                    Ok(true)
                })
            })
            .acquire_timeout(db.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(|source| {
                StoreError::Unavailable(Cause::Connect {
                    server: server.clone(),
                    source,
                })
            })?;
        MIGRATOR.run(&pool).await.map_err(|source| {
            StoreError::Unavailable(Cause::Migrate {
                server: server.clone(),
                source,
            })
        })?;
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

/// Reads in one snapshot, so a change committed between two of the queries is either wholly
/// in the result or wholly out of it.
const SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// A letter as delivery reads it: the record columns and the sealing, content included.
const SELECT_FOR_DELIVERY: &str = concat!(
    "SELECT ",
    record_columns!(),
    ", recipient_tag, kek_id, wrapped_key, nonce, ciphertext FROM letters \
     WHERE letter_id = ANY($1::text[])"
);

impl Backend for PostgresStore {
    type Db = sqlx::Postgres;
    // READ COMMITTED is enough: every rule two gateways could race on is a constraint, a
    // conditional update under the row lock or the import's advisory lock.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const BEGIN_SNAPSHOT: &'static str = SNAPSHOT;
    const CONTENT_LEN: &'static str = "octet_length(ciphertext)::bigint";
    // One round trip to the server a statement: as many as stay well under the limit.
    const IDS_PER_STATEMENT: usize = 512;
    const NUMBERED: bool = true;

    async fn insert_batch(&self, letters: &[NewLetter]) -> Result<Vec<InsertOutcome>, StoreError> {
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
            sender.push(cvr_code(l.sender));
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

        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
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
            let senders: Vec<i64> = wanted.iter().map(|k| cvr_code(k.0)).collect();
            let uuids: Vec<String> = wanted.iter().map(|k| k.1.to_string()).collect();
            let rows = sqlx::query(concat!(
                "SELECT ",
                record_columns!(),
                " FROM letters WHERE (sender_cvr, message_uuid) IN \
                 (SELECT * FROM UNNEST($1::bigint[], $2::text[]))"
            ))
            .bind(&senders)
            .bind(&uuids)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let record = rows::record_from(row)?;
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
                    .ok_or(StoreError::Unavailable(Cause::ConflictNotVisible))
            })
            .collect()
    }

    async fn write_events(
        conn: &mut <Self::Db as sqlx::Database>::Connection,
        events: &[NewEvent],
        detail: &str,
    ) -> Result<Vec<(crate::domain::Cvr, usize)>, StoreError> {
        write_events_pg(conn, events, detail).await
    }

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn stored_bytes(&self) -> Result<u64, StoreError> {
        super::compact::postgres_bytes(&self.pool).await
    }

    async fn purge_content(
        &self,
        delivered_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        super::compact::purge(
            &self.pool,
            super::compact::PURGE_POSTGRES,
            delivered_before_ms,
            limit,
        )
        .await
    }

    async fn compact(&self) -> Result<u64, StoreError> {
        // Freed pages are reused by autovacuum; nothing to move by hand.
        Ok(0)
    }

    async fn load_batch(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        let rows = sqlx::query(SELECT_FOR_DELIVERY)
            .bind(&keys)
            .fetch_all(&self.pool)
            .await?;
        let mut by_id: HashMap<LetterId, StoredLetter> = HashMap::with_capacity(rows.len());
        for row in rows {
            let letter = rows::stored_from(&row, row.try_get("ciphertext")?)?;
            by_id.insert(letter.record.letter_id, letter);
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

    async fn deliver_batch(&self, m: Mark<'_>) -> Result<Vec<LetterId>, StoreError> {
        if m.ids.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted, so two workers marking overlapping sets lock rows in the same order.
        let mut keys: Vec<String> = m.ids.iter().map(LetterId::to_string).collect();
        keys.sort();
        keys.dedup();
        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
        // Rows locked in letter_id order first: an UPDATE over `= ANY(array)` locks rows in
        // whatever order its plan visits them, so without this a delivery and a batch recall
        // (which locks in the same order, `follow_sql::LOCK_BATCH_PG`) can deadlock.
        sqlx::query("SELECT letter_id FROM letters WHERE letter_id = ANY($1::text[]) ORDER BY letter_id FOR UPDATE")
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
        // The waiting states are re-checked after waiting for a concurrent update of the same
        // row, so of two workers delivering one letter only the first changes it.
        // The waiting condition a recall has too (`follow_sql::CANCEL_ONE`): of a delivery and
        // a recall racing for one letter exactly one changes it. Attempts were counted before
        // the work (`begin_attempts`), not here.
        let rows = sqlx::query(
            "UPDATE letters SET state = $1, delivered_at = $2, print_batch = $3 \
             WHERE letter_id = ANY($4::text[]) AND state IN ($5, $6) \
                 AND (print_batch IS NULL OR print_batch = $3) \
             RETURNING letter_id, sender_cvr",
        )
        .bind(m.state.code())
        .bind(m.at_ms)
        .bind(m.print_batch)
        .bind(&keys)
        .bind(WAITING[0].code())
        .bind(WAITING[1].code())
        .fetch_all(&mut *tx)
        .await?;
        let mut changed: HashSet<String> = HashSet::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get("letter_id")?;
            events.push(NewEvent {
                sender: cvr_from(r.try_get("sender_cvr")?, "sender cvr")?,
                letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
                state: m.state,
                at_ms: m.at_ms,
            });
            changed.insert(id);
        }
        if m.state == LetterState::Delivered && !changed.is_empty() {
            let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
            sqlx::query(
                "INSERT INTO mailbox (letter_id, recipient_tag, delivered_at) \
                 SELECT letter_id, recipient_tag, $1 FROM letters WHERE letter_id = ANY($2::text[])",
            )
            .bind(m.at_ms)
            .bind(&changed)
            .execute(&mut *tx)
            .await?;
        }
        let written = write_events_pg(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        let mut reported = HashSet::with_capacity(changed.len());
        Ok(m.ids
            .iter()
            .filter(|id| changed.contains(&id.to_string()) && reported.insert(**id))
            .copied()
            .collect())
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

super::follow_sql::follow_store!(
    PostgresStore,
    sqlx::Postgres,
    PostgresStore::BEGIN_WRITE,
    Some(super::follow_sql::LOCK_BATCH_PG),
    rows::record_from,
    rows::record_columns!(),
    write_events_pg
);
