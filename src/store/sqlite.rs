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
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::db::route_code;
use crate::db::sqlite::{anonymous, open_sqlite, statement_chunks};
use crate::domain::{LetterId, LetterState};

use super::blobs::{BlobError, BlobLog, BlobRef};
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
            for chunk in statement_chunks(uuids, UUID_CHUNK) {
                let sql = format!(
                    "SELECT message_uuid FROM letters WHERE sender_cvr = ? AND message_uuid IN ({})",
                    anonymous(chunk.len())
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
}

/// Where a letter's ciphertext is.
enum Content {
    /// In the row: letters stored before segments.
    Inline(Vec<u8>),
    Segment(BlobRef),
}

fn content_of(row: &SqliteRow) -> Result<Content, StoreError> {
    let segment: Option<i64> = row.try_get("blob_segment")?;
    let Some(segment) = segment else {
        return Ok(Content::Inline(row.try_get("ciphertext")?));
    };
    let offset: i64 = row.try_get("blob_offset")?;
    let len: i64 = row.try_get("blob_len")?;
    Ok(Content::Segment(BlobRef {
        segment: u32::try_from(segment).map_err(|_| corrupt("blob segment"))?,
        offset: u64::try_from(offset).map_err(|_| corrupt("blob offset"))?,
        len: u64::try_from(len).map_err(|_| corrupt("blob length"))?,
    }))
}

/// Most letters per insert statement (19 values each; see `statement_chunks`). Through sqlx
/// every statement is a round trip to the connection's thread; one per row, and the events of
/// a batch in one huge statement, were what capped the store at about 14 k letters/s.
const INSERT_ROWS: usize = 32;

/// Most letter ids per delivery statement.
const ID_CHUNK: usize = 256;

/// Most message uuids per duplicate lookup.
const UUID_CHUNK: usize = 512;

/// Inserts `rows` letters (19 values each, in the column order below, the inline ciphertext
/// left empty: content is in the segments), skipping those whose (sender, uuid) is taken, and
/// returns the ids of those that went in.
/// Runs blocking file work (a segment write and its `fdatasync`) on this thread, telling a
/// multi-threaded runtime first so it moves its other tasks elsewhere. Unlike
/// `spawn_blocking`, the work may borrow: the letters' ciphertexts are written from where they
/// lie. A current-thread runtime (a test, a one-shot command) has nothing to move: the work
/// just runs.
fn blocking_here<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn insert_statement(rows: usize) -> String {
    let row = format!("({}, X'', {})", anonymous(12), anonymous(7));
    let values = vec![row; rows];
    format!(
        "INSERT INTO letters (letter_id, sender_cvr, message_uuid, recipient_tag, \
         fingerprint, content_sha256, route, priority, state, kek_id, wrapped_key, nonce, \
         ciphertext, accepted_at, not_before, blob_segment, blob_offset, blob_len, \
         batch_id, sender_reference) VALUES {} \
         ON CONFLICT (sender_cvr, message_uuid) DO NOTHING RETURNING letter_id",
        values.join(", ")
    )
}

/// Reads two statements in one snapshot: in WAL mode a deferred transaction sees the database as
/// of its first read until it ends.
const SNAPSHOT: &str = "BEGIN";

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;
    // IMMEDIATE takes the write lock up front: a deferred transaction that reads first could
    // not wait for it when an admin command writes at the same moment (see the module doc).
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_SNAPSHOT: &'static str = SNAPSHOT;
    // Letters stored before segments keep their content inline.
    const CONTENT_LEN: &'static str = "COALESCE(blob_len, length(ciphertext))";
    const IDS_PER_STATEMENT: usize = ID_CHUNK;
    const NUMBERED: bool = false;

    async fn insert_batch(&self, letters: &[NewLetter]) -> Result<Vec<InsertOutcome>, StoreError> {
        // Content first, durable, then the rows that point at it; a resend's content is not
        // written again (its row exists: the insert below finds it).
        let known = self.known_letters(letters).await?;
        let fresh = || letters.iter().zip(&known).filter(|(_, k)| !**k);
        let pieces: Vec<&[u8]> = fresh().map(|(l, _)| &l.sealed.ciphertext[..]).collect();
        let appended = blocking_here(|| self.blobs.append(&pieces))?;
        let mut appended = appended.into_iter();
        // A letter known to be stored offers no content: its insert must conflict.
        let none = BlobRef {
            segment: 0,
            offset: 0,
            len: 0,
        };
        let refs: Vec<BlobRef> = known
            .iter()
            .map(|k| if *k { None } else { appended.next() })
            .map(|r| r.unwrap_or(none))
            .collect();
        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
        // Many rows a statement (see `INSERT_ROWS`); the letters that went in come back by id,
        // every other one conflicted with a letter stored before or earlier in this batch (a
        // later row of one statement sees the earlier ones).
        let rows: Vec<(&NewLetter, &BlobRef)> = letters.iter().zip(&refs).collect();
        let mut inserted: HashSet<String> = HashSet::with_capacity(letters.len());
        for chunk in statement_chunks(&rows, INSERT_ROWS) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_statement(chunk.len())));
            for (l, blob) in chunk {
                let state = if l.not_before_ms.is_some() {
                    LetterState::Scheduled
                } else {
                    LetterState::Accepted
                };
                q = q
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
                    .bind(l.sender_reference.as_str());
            }
            for row in q.fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get("letter_id")?);
            }
        }
        let mut out = Vec::with_capacity(letters.len());
        let mut events = Vec::with_capacity(letters.len());
        for (l, blob) in letters.iter().zip(&refs) {
            // Taken out on first sight: the very same letter twice in a batch went in once.
            if inserted.remove(&l.letter_id.to_string()) {
                if blob.len == 0 && !l.sealed.ciphertext.is_empty() {
                    // Only this process writes letters to this database, so a letter found
                    // stored a moment ago cannot be missing now; if it is, store nothing rather
                    // than a row without its content.
                    return Err(corrupt("a letter found stored before the insert was not"));
                }
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
        let mut out = Vec::with_capacity(ids.len());
        for chunk in statement_chunks(ids, ID_CHUNK) {
            let mut keys: Vec<String> = chunk.iter().map(LetterId::to_string).collect();
            keys.sort();
            keys.dedup();
            let statement = format!(
                "SELECT {}, recipient_tag, kek_id, wrapped_key, nonce, ciphertext, blob_segment, \
                 blob_offset, blob_len FROM letters WHERE letter_id IN ({})",
                rows::record_columns!(),
                anonymous(keys.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(statement));
            for k in &keys {
                q = q.bind(k.as_str());
            }
            let found = q.fetch_all(&self.pool).await?;
            // Every segment read of the chunk in one blocking task, not one task a letter.
            let places: Vec<Content> = found.iter().map(content_of).collect::<Result<_, _>>()?;
            let blobs = self.blobs.clone();
            let contents = tokio::task::spawn_blocking(move || {
                let refs: Vec<BlobRef> = places
                    .iter()
                    .filter_map(|p| match p {
                        Content::Segment(r) => Some(*r),
                        Content::Inline(_) => None,
                    })
                    .collect();
                let mut read = blobs.read_many(&refs)?.into_iter();
                places
                    .into_iter()
                    .map(|p| match p {
                        Content::Inline(bytes) => Ok(bytes),
                        Content::Segment(r) => read.next().ok_or(BlobError::Read {
                            segment: r.segment,
                            offset: r.offset,
                            len: r.len,
                            source: std::io::ErrorKind::UnexpectedEof.into(),
                        }),
                    })
                    .collect::<Result<Vec<_>, BlobError>>()
            })
            .await?
            .map_err(|e| StoreError::Corrupt {
                what: "letter content missing",
                source: Some(Cause::Blobs(e)),
            })?;
            let mut by_id: HashMap<LetterId, StoredLetter> = HashMap::with_capacity(found.len());
            for (row, ciphertext) in found.iter().zip(contents) {
                let letter = rows::stored_from(row, ciphertext)?;
                by_id.insert(letter.record.letter_id, letter);
            }
            // In the order asked for; an id asked for twice is answered twice, moved out on
            // its last mention rather than copied.
            let mut mentions: HashMap<LetterId, usize> = HashMap::with_capacity(chunk.len());
            for id in chunk {
                *mentions.entry(*id).or_default() += 1;
            }
            for id in chunk {
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
        }
        Ok(out)
    }

    async fn deliver_batch(&self, m: Mark<'_>) -> Result<Vec<LetterId>, StoreError> {
        let mut keys: Vec<String> = m.ids.iter().map(LetterId::to_string).collect();
        keys.sort();
        keys.dedup();
        let mut tx = self.pool.begin_with(Self::BEGIN_WRITE).await?;
        let mut changed: HashMap<String, i64> = HashMap::with_capacity(keys.len());
        for chunk in statement_chunks(&keys, ID_CHUNK) {
            // The waiting condition a recall has too (`follow_sql::CANCEL_ONE`): of a delivery
            // and a recall racing for one letter exactly one changes it. Attempts were counted
            // before the work (`begin_attempts`), not here.
            let statement = format!(
                "UPDATE letters SET state = ?, delivered_at = ?, print_batch = ? \
                 WHERE state IN (?, ?) AND (print_batch IS NULL OR print_batch = ?) \
                 AND letter_id IN ({}) RETURNING letter_id, sender_cvr",
                anonymous(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(m.state.code())
                .bind(m.at_ms)
                .bind(m.print_batch)
                .bind(WAITING[0].code())
                .bind(WAITING[1].code())
                .bind(m.print_batch);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let mut now_changed = Vec::with_capacity(rows.len());
            for row in &rows {
                let id: String = row.try_get("letter_id")?;
                now_changed.push(id.clone());
                changed.insert(id, row.try_get("sender_cvr")?);
            }
            if m.state == LetterState::Delivered {
                // In power-of-two pieces like every multi-row statement: one text per count
                // of changed letters would fill each connection's statement cache.
                for piece in statement_chunks(&now_changed, ID_CHUNK) {
                    let statement = format!(
                        "INSERT INTO mailbox (letter_id, recipient_tag, delivered_at) \
                         SELECT letter_id, recipient_tag, ? FROM letters WHERE letter_id IN ({})",
                        anonymous(piece.len())
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(m.at_ms);
                    for id in piece {
                        q = q.bind(id.as_str());
                    }
                    q.execute(&mut *tx).await?;
                }
            }
        }
        // In the order asked for, each letter once.
        let mut out = Vec::with_capacity(changed.len());
        let mut events = Vec::with_capacity(changed.len());
        for id in m.ids {
            if let Some(sender) = changed.remove(&id.to_string()) {
                events.push(NewEvent {
                    sender: cvr_from(sender, "sender cvr")?,
                    letter_id: *id,
                    state: m.state,
                    at_ms: m.at_ms,
                });
                out.push(*id);
            }
        }
        let written = write_events_sqlite(&mut tx, &events, "").await?;
        tx.commit().await?;
        signal_all(written);
        Ok(out)
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
