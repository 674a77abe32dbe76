//! The `Store` methods whose SQL is the same on SQLite and PostgreSQL, written once.
//!
//! Both schemas have the same tables, columns and codes, and `$1` placeholders work on both, so
//! most statements are one text for both backends. A backend implements [`Backend`]: its pool,
//! how it begins a write and a snapshot read, and the four operations whose SQL really differs
//! (batched inserts and updates over arrays on PostgreSQL, letter content in segment files on
//! SQLite, registry imports in bulk). Every `Backend` is a [`Store`] through the one impl here.

use std::future::Future;
use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::db::sqlite::statement_chunks;
use crate::domain::{Cvr, LetterId, LetterState, SenderInfo, SenderLimits};
use crate::seal::RecipientTag;

use super::follow_sql::{NewEvent, signal_all};
use super::rows::{self, LimitColumns, StoreRow, WAITING, count_from, cvr_code, record_columns};
use super::{
    AttemptCount, CertRecord, Generations, InsertOutcome, LetterKey, LetterRecord, Loaded,
    NewLetter, PendingDelivery, Revocation, StateCounts, Store, StoreError, StoredLetter,
};

/// What a SQL backend does its own way. Each method keeps the guarantee of the `Store` method
/// of the same purpose (see there). Plain `impl Future + Send` methods, not `async_trait`: the
/// one `Store` impl awaits them without another box.
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Database;
    /// How a write transaction begins.
    const BEGIN_WRITE: &'static str;
    /// How a read of several statements begins so that it sees one snapshot: a change committed
    /// between two of them is either wholly in the result or wholly out of it.
    const BEGIN_SNAPSHOT: &'static str;

    /// SQL for the length of a letter's ciphertext in bytes, read without the content.
    const CONTENT_LEN: &'static str;
    /// Most letter ids bound in one statement of the shared delivery updates.
    const IDS_PER_STATEMENT: usize;
    /// True where placeholders are numbered (`$1`, PostgreSQL); false where the hot statements
    /// use anonymous `?`, bound in the order they appear (SQLite: sqlx looks every numbered
    /// placeholder up by name, a scan of the statement's names, so binding n of them costs n²).
    const NUMBERED: bool;

    fn pool(&self) -> &Pool<Self::Db>;

    /// [`Store::insert_letters`].
    fn insert_batch(
        &self,
        letters: &[NewLetter],
    ) -> impl Future<Output = Result<Vec<InsertOutcome>, StoreError>> + Send;

    /// [`Store::load_for_delivery`].
    fn load_batch(
        &self,
        ids: &[LetterId],
    ) -> impl Future<Output = Result<Vec<StoredLetter>, StoreError>> + Send;

    /// [`Store::mark_delivered`].
    fn deliver_batch(
        &self,
        mark: Mark<'_>,
    ) -> impl Future<Output = Result<Vec<LetterId>, StoreError>> + Send;

    /// Writes events in the caller's transaction (batched as the backend does best); returns
    /// the events written per sender, for the wake-up signal after commit.
    fn write_events(
        conn: &mut <Self::Db as Database>::Connection,
        events: &[NewEvent],
        detail: &str,
    ) -> impl Future<Output = Result<Vec<(Cvr, usize)>, StoreError>> + Send;

    /// [`Store::stored_bytes`].
    fn stored_bytes(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Store::purge_content`].
    fn purge_content(
        &self,
        delivered_before_ms: i64,
        limit: usize,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// [`Store::compact`].
    fn compact(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Most letter ids delivery reads in one go (`load_within`).
const LOAD_WINDOW: usize = 512;

/// `$first, $first+1, …`: `n` numbered placeholders, which both backends take.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders `first..first + n` of a statement whose values are bound in the order they
/// appear: numbered where the backend numbers them, anonymous `?` on SQLite (see
/// [`Backend::NUMBERED`]). Every placeholder of such a statement must come from here.
fn in_order<B: Backend>(first: usize, n: usize) -> String {
    if B::NUMBERED {
        placeholders(first, n)
    } else {
        crate::db::sqlite::anonymous(n)
    }
}

/// The waiting states as SQL literals (our own codes, never input): a statement that names
/// them binds nothing for them, so its only values are bound in order.
static WAITING_SQL: LazyLock<String> =
    LazyLock::new(|| format!("{}, {}", WAITING[0].code(), WAITING[1].code()));

/// The letters [`Store::mark_delivered`] moves, and what it records on each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark<'a> {
    pub ids: &'a [LetterId],
    pub state: LetterState,
    pub at_ms: i64,
    pub print_batch: Option<&'a str>,
}

/// A change counter in `meta`, bumped in the transaction of the change it announces.
#[derive(Clone, Copy)]
pub(crate) enum Generation {
    Senders,
}

impl Generation {
    fn key(self) -> &'static str {
        match self {
            Generation::Senders => "senders_generation",
        }
    }
}

/// Bumps a change counter. `value = value + 1` under the row lock, so concurrent bumps from
/// several processes add up instead of overwriting each other.
pub(crate) async fn bump<DB>(conn: &mut DB::Connection, which: Generation) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>("UPDATE meta SET value = value + 1 WHERE key = $1")
        .bind(which.key())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `UnknownSender` unless `cvr` is registered. Senders are never deleted, so a sender seen here
/// is still there when the transaction commits.
async fn require_sender<DB>(tx: &mut Transaction<'_, DB>, cvr: Cvr) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let known = sqlx::query::<DB>("SELECT 1 FROM senders WHERE cvr = $1")
        .bind(cvr_code(cvr))
        .fetch_optional(&mut **tx)
        .await?;
    match known {
        Some(_) => Ok(()),
        None => Err(StoreError::UnknownSender(cvr)),
    }
}

/// Ends an update of one sender's row: `UnknownSender` (and nothing changed) when no row
/// matched, else the senders counter is bumped in the same transaction and it commits.
async fn commit_sender_change<DB>(
    mut tx: Transaction<'_, DB>,
    rows_changed: u64,
    cvr: Cvr,
) -> Result<(), StoreError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    if rows_changed == 0 {
        return Err(StoreError::UnknownSender(cvr));
    }
    bump::<DB>(&mut tx, Generation::Senders).await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) const SELECT_BY_LETTER_ID: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM letters WHERE letter_id = $1 AND sender_cvr = $2"
);
pub(crate) const SELECT_BY_MESSAGE_UUID: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM letters WHERE message_uuid = $1 AND sender_cvr = $2"
);

const INSERT_SENDER_CERT: &str =
    "INSERT INTO sender_certs (fingerprint, cvr, issued_at) VALUES ($1, $2, $3)";

/// Every letter still waiting. The waiting states are written into the text (from
/// [`WAITING`], not by hand) rather than bound: the partial index `letters_undelivered` is only
/// usable when the query names the constants of its predicate, and SQLite plans a statement
/// before it sees the bound values.
static UNDELIVERED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT letter_id, sender_cvr, route, priority, not_before, accepted_at FROM letters \
         WHERE {}",
        waiting_predicate()
    )
});

/// Waiting letters without a fresh publish marker (see `Store::unqueued`): found through the
/// `letters_undelivered` partial index, so a sweep reads the waiting letters, not the history.
static UNQUEUED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT l.letter_id, l.sender_cvr, l.route, l.priority, l.not_before, l.accepted_at \
         FROM letters l LEFT JOIN outbox_marks m ON m.letter_id = l.letter_id \
         WHERE l.{} AND l.accepted_at <= $1 \
         AND (m.letter_id IS NULL OR (m.marked_at < $2 AND COALESCE(l.not_before, 0) < $2)) \
         ORDER BY l.accepted_at LIMIT $3",
        waiting_predicate()
    )
});

/// Marks of letters that are no longer waiting (delivered, failed, cancelled) or gone.
static FORGET_FINISHED_MARKS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM outbox_marks WHERE letter_id IN (\
         SELECT m.letter_id FROM outbox_marks m LEFT JOIN letters l ON l.letter_id = m.letter_id \
         WHERE l.letter_id IS NULL OR NOT (l.{}) LIMIT $1)",
        waiting_predicate()
    )
});

/// `state IN (1, 2)`, the predicate of the `letters_undelivered` index in both migrations.
fn waiting_predicate() -> String {
    let codes: Vec<String> = WAITING.iter().map(|s| s.code().to_string()).collect();
    format!("state IN ({})", codes.join(", "))
}

#[async_trait]
impl<
    B: Backend + super::FollowStore + super::RegistryStore + super::OperatorStore + super::JobStore,
> Store for B
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::Row: StoreRow,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> bool: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    <B::Db as Database>::QueryResult: RowsAffected,
{
    async fn insert_letters(
        &self,
        letters: &[NewLetter],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        self.insert_batch(letters).await
    }

    async fn letter(
        &self,
        sender: Cvr,
        key: LetterKey,
    ) -> Result<Option<LetterRecord>, StoreError> {
        let (statement, value) = match key {
            LetterKey::LetterId(id) => (SELECT_BY_LETTER_ID, id.to_string()),
            LetterKey::MessageUuid(uuid) => (SELECT_BY_MESSAGE_UUID, uuid.to_string()),
        };
        let row = sqlx::query::<B::Db>(statement)
            .bind(value)
            .bind(cvr_code(sender))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::record_from).transpose()
    }

    async fn load_for_delivery(&self, ids: &[LetterId]) -> Result<Vec<StoredLetter>, StoreError> {
        self.load_batch(ids).await
    }

    async fn load_within(&self, ids: &[LetterId], max_bytes: u64) -> Result<Loaded, StoreError> {
        let window = &ids[..ids.len().min(LOAD_WINDOW)];
        if window.is_empty() {
            return Ok(Loaded::default());
        }
        // The sizes first (no content), so only what fits is read.
        let mut sizes = std::collections::HashMap::with_capacity(window.len());
        for chunk in statement_chunks(window, B::IDS_PER_STATEMENT) {
            let statement = format!(
                "SELECT letter_id, {} AS n FROM letters WHERE letter_id IN ({})",
                B::CONTENT_LEN,
                in_order::<B>(1, chunk.len())
            );
            let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for row in q.fetch_all(self.pool()).await? {
                sizes.insert(rows::letter_id_from(&row)?, row.int("n")?.max(0) as u64);
            }
        }
        let (mut take, mut bytes) = (0, 0u64);
        for id in window {
            let n = sizes.get(id).copied().unwrap_or(0);
            if take > 0 && bytes + n > max_bytes {
                break;
            }
            bytes += n;
            take += 1;
        }
        Ok(Loaded {
            letters: self.load_batch(&window[..take]).await?,
            consumed: take,
        })
    }

    async fn mark_delivered(
        &self,
        ids: &[LetterId],
        state: LetterState,
        at_ms: i64,
        print_batch: Option<&str>,
    ) -> Result<Vec<LetterId>, StoreError> {
        let mark = Mark {
            ids,
            state,
            at_ms,
            print_batch,
        };
        self.deliver_batch(mark).await
    }

    async fn begin_attempts(&self, ids: &[LetterId]) -> Result<Vec<AttemptCount>, StoreError> {
        let mut keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::with_capacity(keys.len());
        // One statement per chunk, not per letter, and one commit for the round: this runs
        // before every delivery round, and a commit per chunk was sixteen syncs of the
        // database for a round of 1,024.
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        for chunk in statement_chunks(&keys, B::IDS_PER_STATEMENT) {
            let statement = format!(
                "UPDATE letters SET attempts = attempts + 1, interrupted = interrupted + 1 \
                 WHERE state IN ({}) AND letter_id IN ({}) \
                 RETURNING letter_id, attempts, interrupted",
                *WAITING_SQL,
                in_order::<B>(1, chunk.len())
            );
            let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
            for k in chunk {
                q = q.bind(k.as_str());
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let count = |v: i64| u32::try_from(v.max(0)).unwrap_or(u32::MAX);
            for row in &rows {
                out.push(AttemptCount {
                    letter_id: rows::letter_id_from(row)?,
                    attempts: count(row.int("attempts")?),
                    interrupted: count(row.int("interrupted")? - 1),
                });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn record_failure(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        sqlx::query::<B::Db>(
            "UPDATE letters SET detail = $1, interrupted = 0 WHERE letter_id = $2",
        )
        .bind(detail)
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn claim_print(
        &self,
        ids: &[LetterId],
        batch: &str,
    ) -> Result<Vec<LetterId>, StoreError> {
        let mut keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        keys.sort();
        keys.dedup();
        let mut claimed = std::collections::HashSet::with_capacity(keys.len());
        // One commit for the whole claim, as for attempts.
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        for chunk in statement_chunks(&keys, B::IDS_PER_STATEMENT) {
            let statement = format!(
                "UPDATE letters SET print_batch = {} WHERE state IN ({}) \
                 AND (print_batch IS NULL OR print_batch = {}) AND letter_id IN ({}) \
                 RETURNING letter_id",
                in_order::<B>(1, 1),
                *WAITING_SQL,
                in_order::<B>(2, 1),
                in_order::<B>(3, chunk.len())
            );
            let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement))
                .bind(batch)
                .bind(batch);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for row in &q.fetch_all(&mut *tx).await? {
                claimed.insert(rows::letter_id_from(row)?);
            }
        }
        tx.commit().await?;
        Ok(ids
            .iter()
            .filter(|id| claimed.contains(id))
            .copied()
            .collect())
    }

    async fn release_print(&self, batch: &str) -> Result<(), StoreError> {
        sqlx::query::<B::Db>(
            "UPDATE letters SET print_batch = NULL WHERE print_batch = $1 AND state IN ($2, $3)",
        )
        .bind(batch)
        .bind(WAITING[0].code())
        .bind(WAITING[1].code())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn claimed_print_batches(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query::<B::Db>(
            "SELECT DISTINCT print_batch FROM letters \
             WHERE print_batch IS NOT NULL AND state IN ($1, $2)",
        )
        .bind(WAITING[0].code())
        .bind(WAITING[1].code())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.text("print_batch")).collect()
    }

    async fn mark_failed(&self, id: LetterId, detail: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        // The attempts were counted as they began (`begin_attempts`).
        let row = sqlx::query::<B::Db>(
            "UPDATE letters SET state = $1, detail = $2 \
             WHERE letter_id = $3 AND state IN ($4, $5) RETURNING sender_cvr",
        )
        .bind(LetterState::Failed.code())
        .bind(detail)
        .bind(id.to_string())
        .bind(WAITING[0].code())
        .bind(WAITING[1].code())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        if let Some(row) = row {
            let sender = rows::cvr_from(row.int("sender_cvr")?, "sender cvr")?;
            let event = NewEvent::now(sender, id, LetterState::Failed);
            written = B::write_events(&mut tx, &[event], detail).await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(())
    }

    async fn reopen(&self, id: LetterId) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let row = sqlx::query::<B::Db>(
            "UPDATE letters SET state = $1, detail = '', interrupted = 0, print_batch = NULL \
             WHERE letter_id = $2 AND state = $3 RETURNING sender_cvr",
        )
        .bind(LetterState::Accepted.code())
        .bind(id.to_string())
        .bind(LetterState::Failed.code())
        .fetch_optional(&mut *tx)
        .await?;
        let mut written = Vec::new();
        let reopened = row.is_some();
        if let Some(row) = row {
            let sender = rows::cvr_from(row.int("sender_cvr")?, "sender cvr")?;
            let event = NewEvent::now(sender, id, LetterState::Accepted);
            written = B::write_events(&mut tx, &[event], "reopened by an operator").await?;
        }
        tx.commit().await?;
        signal_all(written);
        Ok(reopened)
    }

    async fn undelivered(&self) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query::<B::Db>(UNDELIVERED.as_str())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rows::pending_from).collect()
    }

    // ---- publish markers of the outbox sweep (src/outbox/); separate from the letter paths

    async fn mark_queued(&self, ids: &[LetterId], at_ms: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tx = self.pool().begin().await?;
        for chunk in statement_chunks(&ids, B::IDS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", in_order::<B>(1 + 2 * i, 2)))
                .collect();
            let sql = format!(
                "INSERT INTO outbox_marks (letter_id, marked_at) VALUES {} \
                 ON CONFLICT (letter_id) DO UPDATE SET marked_at = excluded.marked_at",
                values.join(", ")
            );
            let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str()).bind(at_ms);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unqueued(
        &self,
        accepted_by_ms: i64,
        stale_before_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let rows = sqlx::query::<B::Db>(UNQUEUED.as_str())
            .bind(accepted_by_ms)
            .bind(stale_before_ms)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rows::pending_from).collect()
    }

    async fn forget_finished_marks(&self, limit: usize) -> Result<u64, StoreError> {
        let done = sqlx::query::<B::Db>(FORGET_FINISHED_MARKS.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn forget_all_marks(&self) -> Result<(), StoreError> {
        sqlx::query::<B::Db>("DELETE FROM outbox_marks")
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn stored_bytes(&self) -> Result<u64, StoreError> {
        Backend::stored_bytes(self).await
    }

    async fn purge_content(
        &self,
        delivered_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        Backend::purge_content(self, delivered_before_ms, limit).await
    }

    async fn compact(&self) -> Result<u64, StoreError> {
        Backend::compact(self).await
    }

    async fn print_batch_letters(&self, batch: &str) -> Result<Vec<LetterId>, StoreError> {
        let rows = sqlx::query::<B::Db>("SELECT letter_id FROM letters WHERE print_batch = $1")
            .bind(batch)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rows::letter_id_from).collect()
    }

    async fn mailbox_count(&self, tag: &RecipientTag) -> Result<u64, StoreError> {
        let row =
            sqlx::query::<B::Db>("SELECT COUNT(*) AS n FROM mailbox WHERE recipient_tag = $1")
                .bind(&tag[..])
                .fetch_one(self.pool())
                .await?;
        count_from(row.int("n")?)
    }

    async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query::<B::Db>("SELECT state, COUNT(*) AS n FROM letters GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        let mut c = StateCounts::default();
        for r in rows {
            let n = count_from(r.int("n")?)?;
            match rows::state_from(r.int("state")?)? {
                LetterState::Accepted => c.accepted = n,
                LetterState::Scheduled => c.scheduled = n,
                LetterState::Delivered => c.delivered = n,
                LetterState::PrintSpooled => c.print_spooled = n,
                LetterState::Failed => c.failed = n,
                LetterState::Cancelled => c.cancelled = n,
            }
        }
        Ok(c)
    }

    async fn add_sender(
        &self,
        sender: &SenderInfo,
        cert_fingerprint: [u8; 32],
    ) -> Result<(), StoreError> {
        let limits = LimitColumns::from_limits(&sender.limits);
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let now = crate::clock::now_ms();
        // A concurrent add of the same CVR waits here for the first to commit, then inserts
        // nothing: exactly one of them succeeds, the other is told `SenderExists`.
        let n = sqlx::query::<B::Db>(
            "INSERT INTO senders (cvr, name, kind, suspended, created_at, weight, rate_per_s, \
             burst, max_in_flight, max_letter_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (cvr) DO NOTHING",
        )
        .bind(cvr_code(sender.cvr))
        .bind(sender.name.as_str())
        .bind(sender.kind.to_string())
        .bind(sender.suspended)
        .bind(now)
        .bind(limits.weight)
        .bind(limits.rate_per_s)
        .bind(limits.burst)
        .bind(limits.max_in_flight)
        .bind(limits.max_letter_bytes)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(StoreError::SenderExists(sender.cvr));
        }
        sqlx::query::<B::Db>(INSERT_SENDER_CERT)
            .bind(&cert_fingerprint[..])
            .bind(cvr_code(sender.cvr))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        bump::<B::Db>(&mut tx, Generation::Senders).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_sender_cert(
        &self,
        cvr: Cvr,
        cert_fingerprint: [u8; 32],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        require_sender::<B::Db>(&mut tx, cvr).await?;
        sqlx::query::<B::Db>(INSERT_SENDER_CERT)
            .bind(&cert_fingerprint[..])
            .bind(cvr_code(cvr))
            .bind(crate::clock::now_ms())
            .execute(&mut *tx)
            .await?;
        bump::<B::Db>(&mut tx, Generation::Senders).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_suspended(&self, cvr: Cvr, suspended: bool) -> Result<(), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let n = sqlx::query::<B::Db>("UPDATE senders SET suspended = $1 WHERE cvr = $2")
            .bind(suspended)
            .bind(cvr_code(cvr))
            .execute(&mut *tx)
            .await?;
        commit_sender_change(tx, n.rows_affected(), cvr).await
    }

    async fn set_sender_limits(&self, cvr: Cvr, limits: &SenderLimits) -> Result<(), StoreError> {
        let c = LimitColumns::from_limits(limits);
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        let n = sqlx::query::<B::Db>(
            "UPDATE senders SET weight = $1, rate_per_s = $2, burst = $3, max_in_flight = $4, \
             max_letter_bytes = $5 WHERE cvr = $6",
        )
        .bind(c.weight)
        .bind(c.rate_per_s)
        .bind(c.burst)
        .bind(c.max_in_flight)
        .bind(c.max_letter_bytes)
        .bind(cvr_code(cvr))
        .execute(&mut *tx)
        .await?;
        commit_sender_change(tx, n.rows_affected(), cvr).await
    }

    async fn senders(&self) -> Result<(Vec<SenderInfo>, Vec<([u8; 32], Cvr)>), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_SNAPSHOT).await?;
        let senders = sqlx::query::<B::Db>(
            "SELECT cvr, name, kind, suspended, weight, rate_per_s, burst, max_in_flight, \
             max_letter_bytes FROM senders",
        )
        .fetch_all(&mut *tx)
        .await?;
        // A revoked certificate is not in the directory the door checks: it is refused.
        let certs = sqlx::query::<B::Db>(
            "SELECT fingerprint, cvr FROM sender_certs WHERE revoked_at IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            senders
                .iter()
                .map(rows::sender_from)
                .collect::<Result<_, _>>()?,
            certs
                .iter()
                .map(rows::cert_from)
                .collect::<Result<_, _>>()?,
        ))
    }

    async fn record_cert_expiry(
        &self,
        fingerprint: [u8; 32],
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query::<B::Db>("UPDATE sender_certs SET expires_at = $1 WHERE fingerprint = $2")
            .bind(expires_at_ms)
            .bind(&fingerprint[..])
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn revoke_certs(&self, cvr: Cvr, which: Revocation) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        require_sender::<B::Db>(&mut tx, cvr).await?;
        let rows = sqlx::query::<B::Db>(
            "SELECT fingerprint, cvr, issued_at, expires_at, revoked_at FROM sender_certs \
             WHERE cvr = $1 ORDER BY issued_at DESC, fingerprint",
        )
        .bind(cvr_code(cvr))
        .fetch_all(&mut *tx)
        .await?;
        let certs: Vec<CertRecord> = rows
            .iter()
            .map(rows::cert_record_from)
            .collect::<Result<_, _>>()?;
        let chosen: Vec<[u8; 32]> = match which {
            Revocation::Fingerprint(fp) => {
                if !certs.iter().any(|c| c.fingerprint == fp) {
                    return Err(StoreError::UnknownCertificate(cvr));
                }
                vec![fp]
            }
            // The newest is the first row; ties on issued_at are broken by fingerprint, the
            // same way every time.
            Revocation::AllButNewest => certs.iter().skip(1).map(|c| c.fingerprint).collect(),
        };
        let now = crate::clock::now_ms();
        let mut revoked = Vec::new();
        for fp in chosen {
            let n = sqlx::query::<B::Db>(
                "UPDATE sender_certs SET revoked_at = $1 WHERE fingerprint = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&fp[..])
            .execute(&mut *tx)
            .await?;
            if n.rows_affected() > 0 {
                revoked.push(fp);
            }
        }
        bump::<B::Db>(&mut tx, Generation::Senders).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    async fn certificates(&self) -> Result<Vec<CertRecord>, StoreError> {
        let rows = sqlx::query::<B::Db>(
            "SELECT fingerprint, cvr, issued_at, expires_at, revoked_at FROM sender_certs \
             ORDER BY cvr, issued_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rows::cert_record_from).collect()
    }

    async fn generations(&self) -> Result<Generations, StoreError> {
        let rows = sqlx::query::<B::Db>("SELECT value FROM meta WHERE key = 'senders_generation'")
            .fetch_all(self.pool())
            .await?;
        let mut g = Generations::default();
        for r in rows {
            g.senders = r.int("value")?;
        }
        Ok(g)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query::<B::Db>("SELECT 1")
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// The one method `SqliteQueryResult` and `PgQueryResult` share, which sqlx puts in no trait.
pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The undelivered query names exactly the predicate of the partial index both migrations
    /// create; if either changed alone, recovery after a crash would scan every letter.
    #[test]
    fn the_undelivered_query_can_use_the_partial_index() {
        let index = format!(
            "letters_undelivered ON letters (state) WHERE {}",
            waiting_predicate()
        );
        for migration in [
            include_str!("../../migrations/sqlite/0001_init.sql"),
            include_str!("../../migrations/postgres/0001_init.sql"),
        ] {
            assert!(migration.contains(&index), "{index}");
        }
        assert!(UNDELIVERED.ends_with(&waiting_predicate()));
    }
}
