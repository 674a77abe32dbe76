//! The SQL of [`JobStore`], one text for both backends, as one impl for every [`Backend`].
//!
//! A selection is one `WHERE` clause with its optional filters bound as NULL when absent
//! (`$n IS NULL OR …`); its states are written into the text from the enum's codes, so that
//! `state = 5` (dead letters) can use the partial index `letters_failed` and the waiting
//! states the index `letters_undelivered`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Database, Encode, Executor, IntoArguments, Type};

use crate::db::{route_code, route_from_code};
use crate::domain::{LetterId, LetterState};

use super::follow_sql::{NewEvent, signal_all};
use super::jobs::{JobKind, JobRecord, JobStep, JobStore, NewJob, OperatorLetter, Selection};
use super::rows::{self, StoreRow, corrupt, count_from, cvr_code};
use super::shared::{Backend, RowsAffected};
use super::{Rule, StoreError};

/// Job rows' states.
const RUNNING: i64 = 1;
const DONE: i64 = 2;
/// Job letters' states.
const PENDING: i64 = 0;
const CHANGED: i64 = 1;
const FAILED: i64 = 2;

/// The most failures a job record lists (all are counted).
const FAILURES_LISTED: i64 = 100;

/// What senders read in the events of letters a job changed: the gateway operator, never
/// which one.
const RETRIED: &str = "retried by the gateway operator";
const CANCELLED: &str = "cancelled by the gateway operator";

/// `state = 5` or `state IN (1, 2)`: the selection's states as text (codes of our own enum).
fn states_clause(states: &[LetterState]) -> String {
    let codes: Vec<String> = states.iter().map(|s| s.code().to_string()).collect();
    match codes.as_slice() {
        [one] => format!("state = {one}"),
        _ => format!("state IN ({})", codes.join(", ")),
    }
}

/// The selection's `WHERE` clause; its four filters are bound at `$first` to `$first + 3`
/// (sender, route, batch, accepted before), see [`bind_selection`].
fn where_clause(sel: &Selection, first: usize) -> String {
    let (a, b, c, d) = (first, first + 1, first + 2, first + 3);
    format!(
        "{} AND (${a} IS NULL OR sender_cvr = ${a}) AND (${b} IS NULL OR route = ${b}) \
         AND (${c} IS NULL OR batch_id = ${c}) AND (${d} IS NULL OR accepted_at < ${d})",
        states_clause(&sel.states)
    )
}

/// The values of [`where_clause`]'s filters, in its order.
fn selection_values(sel: &Selection) -> (Option<i64>, Option<i64>, Option<String>, Option<i64>) {
    (
        sel.sender.map(cvr_code),
        sel.route.map(route_code),
        sel.batch_id.as_ref().map(|b| b.as_str().to_string()),
        sel.accepted_before_ms,
    )
}

macro_rules! bind_selection {
    ($q:expr, $sel:expr) => {{
        let (sender, route, batch, before) = selection_values($sel);
        $q.bind(sender).bind(route).bind(batch).bind(before)
    }};
}

/// `$first, $first+1, …`
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A selection as the job row keeps it.
fn selection_json(sel: &Selection) -> String {
    serde_json::json!({
        "sender": sel.sender.map(|c| c.value()),
        "route": sel.route.map(route_code),
        "states": sel.states.iter().map(|s| s.code()).collect::<Vec<_>>(),
        "batch": sel.batch_id.as_ref().map(|b| b.as_str()),
        "accepted_before": sel.accepted_before_ms,
    })
    .to_string()
}

fn selection_from_json(text: &str) -> Result<Selection, StoreError> {
    let bad = || corrupt("job selection");
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
    let sender = match v.get("sender").and_then(|s| s.as_u64()) {
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .and_then(|n| crate::domain::Cvr::from_value(n).ok())
                .ok_or_else(bad)?,
        ),
        None => None,
    };
    let states = v
        .get("states")
        .and_then(|s| s.as_array())
        .ok_or_else(bad)?
        .iter()
        .map(|c| c.as_i64().and_then(LetterState::from_code).ok_or_else(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let batch_id = match v.get("batch").and_then(|b| b.as_str()) {
        Some(b) => Some(b.parse().map_err(|_| bad())?),
        None => None,
    };
    Ok(Selection {
        sender,
        route: v.get("route").and_then(|r| r.as_i64()).map(route_from_code),
        states,
        batch_id,
        accepted_before_ms: v.get("accepted_before").and_then(|t| t.as_i64()),
    })
}

fn letter_from(row: &impl StoreRow) -> Result<OperatorLetter, StoreError> {
    Ok(OperatorLetter {
        letter_id: rows::letter_id_from(row)?,
        sender: rows::cvr_from(row.int("sender_cvr")?, "sender cvr")?,
        route: route_from_code(row.int("route")?),
        state: rows::state_from(row.int("state")?)?,
        attempts: u32::try_from(row.int("attempts")?.max(0)).unwrap_or(u32::MAX),
        detail: row.text("detail")?,
        accepted_at_ms: row.int("accepted_at")?,
        batch_id: rows::batch_from(row.opt_text("batch_id")?)?,
    })
}

/// Why a job could not change a letter, from what the letter is now.
fn why_not(kind: JobKind, state: Option<LetterState>, claimed: bool, purged: bool) -> String {
    match (kind, state) {
        (_, None) => "no such letter".to_string(),
        (JobKind::Cancel, Some(s)) if s.is_terminal() => {
            format!(
                "it is {} already: only waiting letters can be cancelled",
                s.as_str()
            )
        }
        (JobKind::Cancel, Some(_)) if claimed => {
            "it is being handed to print and cannot be cancelled any more".to_string()
        }
        (JobKind::Purge, Some(LetterState::Failed)) if purged => {
            "its content was purged already".to_string()
        }
        (JobKind::Retry, Some(LetterState::Failed)) if purged => {
            "its content was purged: it can never be delivered".to_string()
        }
        (_, Some(s)) => format!("it is {}, not a dead letter (FAILED)", s.as_str()),
    }
}

#[async_trait]
impl<B: Backend> JobStore for B
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::Row: StoreRow,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    <B::Db as Database>::QueryResult: RowsAffected,
{
    async fn select_letters(
        &self,
        sel: &Selection,
        after: Option<(i64, LetterId)>,
        limit: u32,
    ) -> Result<Vec<OperatorLetter>, StoreError> {
        let statement = format!(
            "SELECT letter_id, sender_cvr, route, state, attempts, detail, accepted_at, batch_id \
             FROM letters WHERE {} \
             AND ($5 IS NULL OR accepted_at > $5 OR (accepted_at = $5 AND letter_id > $6)) \
             ORDER BY accepted_at, letter_id LIMIT $7",
            where_clause(sel, 1)
        );
        let q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
        let rows = bind_selection!(q, sel)
            .bind(after.map(|(at, _)| at))
            .bind(after.map(|(_, id)| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(letter_from).collect()
    }

    async fn count_letters(&self, sel: &Selection) -> Result<u64, StoreError> {
        let statement = format!(
            "SELECT COUNT(*) AS n FROM letters WHERE {}",
            where_clause(sel, 1)
        );
        let q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
        let row = bind_selection!(q, sel).fetch_one(self.pool()).await?;
        count_from(row.int("n")?)
    }

    async fn create_job(&self, job: &NewJob) -> Result<(String, bool), StoreError> {
        match self.create_job_tx(job).await {
            // Two starts with one key at once: the other committed first; its job is the one.
            Err(StoreError::Constraint {
                rule: Rule::Unique, ..
            }) if job.request_key.is_some() => {
                let key = job.request_key.as_deref().unwrap_or_default();
                match job_by_key::<B>(self, key).await? {
                    Some(id) => Ok((id, false)),
                    None => Err(StoreError::Corrupt {
                        what: "a job's request key is taken but its job is missing",
                        source: None,
                    }),
                }
            }
            other => other,
        }
    }

    async fn pending_job_letters(
        &self,
        job_id: &str,
        limit: u32,
    ) -> Result<Vec<LetterId>, StoreError> {
        let rows = sqlx::query::<B::Db>(
            "SELECT letter_id FROM job_letters WHERE job_id = $1 AND status = $2 \
             ORDER BY letter_id LIMIT $3",
        )
        .bind(job_id)
        .bind(PENDING)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rows::letter_id_from).collect()
    }

    async fn run_job_step(
        &self,
        job_id: &str,
        kind: JobKind,
        ids: &[LetterId],
    ) -> Result<JobStep, StoreError> {
        if ids.is_empty() {
            return Ok(JobStep::default());
        }
        let mut attempt = 0;
        let (step, written) = loop {
            attempt += 1;
            match self.job_step_tx(job_id, kind, ids).await {
                // A deadlock or busy database against a delivery: the step is tried again,
                // whole; its conditions on states make that safe.
                Err(e) if e.is_conflict() && attempt < super::follow_sql::CANCEL_ATTEMPTS => {
                    tokio::time::sleep(super::follow_sql::conflict_backoff(attempt)).await;
                }
                other => break other?,
            }
        };
        signal_all(written);
        Ok(step)
    }

    async fn finish_job(&self, job_id: &str, at_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query::<B::Db>(
            "UPDATE jobs SET state = $1, finished_at = $2 WHERE job_id = $3 AND state = $4 \
             AND NOT EXISTS (SELECT 1 FROM job_letters WHERE job_id = $3 AND status = $5)",
        )
        .bind(DONE)
        .bind(at_ms)
        .bind(job_id)
        .bind(RUNNING)
        .bind(PENDING)
        .execute(self.pool())
        .await?;
        Ok(n.rows_affected() > 0)
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_SNAPSHOT).await?;
        let row = sqlx::query::<B::Db>(
            "SELECT job_id, kind, operator, selection, state, total, created_at, finished_at \
             FROM jobs WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(None);
        };
        let counts = sqlx::query::<B::Db>(
            "SELECT status, COUNT(*) AS n FROM job_letters WHERE job_id = $1 GROUP BY status",
        )
        .bind(job_id)
        .fetch_all(&mut *tx)
        .await?;
        let failures = sqlx::query::<B::Db>(
            "SELECT letter_id, reason FROM job_letters WHERE job_id = $1 AND status = $2 \
             ORDER BY letter_id LIMIT $3",
        )
        .bind(job_id)
        .bind(FAILED)
        .bind(FAILURES_LISTED)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let (mut done, mut failed) = (0, 0);
        for c in &counts {
            let n = count_from(c.int("n")?)?;
            match c.int("status")? {
                CHANGED => done += n,
                FAILED => {
                    done += n;
                    failed += n;
                }
                _ => {}
            }
        }
        Ok(Some(JobRecord {
            job_id: row.text("job_id")?,
            kind: JobKind::from_code(row.int("kind")?).ok_or_else(|| corrupt("job kind"))?,
            running: row.int("state")? == RUNNING,
            operator: row.text("operator")?,
            selection: selection_from_json(&row.text("selection")?)?,
            total: count_from(row.int("total")?)?,
            done,
            failed,
            failures: failures
                .iter()
                .map(|f| Ok((rows::letter_id_from(f)?, f.text("reason")?)))
                .collect::<Result<_, StoreError>>()?,
            created_at_ms: row.int("created_at")?,
            finished_at_ms: row.opt_int("finished_at")?,
        }))
    }

    async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError> {
        let ids = sqlx::query::<B::Db>(
            "SELECT job_id FROM jobs ORDER BY created_at DESC, job_id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::with_capacity(ids.len());
        for r in ids {
            if let Some(j) = self.job(&r.text("job_id")?).await? {
                out.push(j);
            }
        }
        Ok(out)
    }

    async fn running_jobs(&self) -> Result<Vec<(String, JobKind, String)>, StoreError> {
        let rows = sqlx::query::<B::Db>(
            "SELECT job_id, kind, operator FROM jobs WHERE state = $1 ORDER BY created_at",
        )
        .bind(RUNNING)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.text("job_id")?,
                    JobKind::from_code(r.int("kind")?).ok_or_else(|| corrupt("job kind"))?,
                    r.text("operator")?,
                ))
            })
            .collect()
    }
}

async fn job_by_key<B: Backend>(store: &B, key: &str) -> Result<Option<String>, StoreError>
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::Row: StoreRow,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
{
    let row = sqlx::query::<B::Db>("SELECT job_id FROM jobs WHERE request_key = $1")
        .bind(key)
        .fetch_optional(store.pool())
        .await?;
    row.map(|r| r.text("job_id")).transpose()
}

/// The transactions of [`JobStore`], each one attempt.
trait JobTransactions {
    async fn create_job_tx(&self, job: &NewJob) -> Result<(String, bool), StoreError>;
    async fn job_step_tx(
        &self,
        job_id: &str,
        kind: JobKind,
        ids: &[LetterId],
    ) -> Result<(JobStep, Vec<(crate::domain::Cvr, usize)>), StoreError>;
}

impl<B: Backend> JobTransactions for B
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    <B::Db as Database>::Row: StoreRow,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<i64>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> String: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<String>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> Option<&'q str>: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q [u8]: Encode<'q, B::Db> + Type<B::Db>,
    <B::Db as Database>::QueryResult: RowsAffected,
{
    async fn create_job_tx(&self, job: &NewJob) -> Result<(String, bool), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        if let Some(key) = &job.request_key {
            let existing = sqlx::query::<B::Db>("SELECT job_id FROM jobs WHERE request_key = $1")
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = existing {
                tx.commit().await?;
                return Ok((row.text("job_id")?, false));
            }
        }
        sqlx::query::<B::Db>(
            "INSERT INTO jobs (job_id, request_key, kind, operator, selection, state, total, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
        )
        .bind(job.job_id.as_str())
        .bind(job.request_key.as_deref())
        .bind(job.kind.code())
        .bind(job.operator.as_str())
        .bind(selection_json(&job.selection))
        .bind(RUNNING)
        .bind(job.created_at_ms)
        .execute(&mut *tx)
        .await?;
        let statement = format!(
            "INSERT INTO job_letters (job_id, letter_id, status) \
             SELECT $1, letter_id, {PENDING} FROM letters WHERE {}",
            where_clause(&job.selection, 2)
        );
        let q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement)).bind(job.job_id.as_str());
        let listed = bind_selection!(q, &job.selection)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query::<B::Db>("UPDATE jobs SET total = $1 WHERE job_id = $2")
            .bind(i64::try_from(listed).unwrap_or(i64::MAX))
            .bind(job.job_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((job.job_id.clone(), true))
    }

    async fn job_step_tx(
        &self,
        job_id: &str,
        kind: JobKind,
        asked: &[LetterId],
    ) -> Result<(JobStep, Vec<(crate::domain::Cvr, usize)>), StoreError> {
        let mut tx = self.pool().begin_with(B::BEGIN_WRITE).await?;
        // Of the letters asked for, those still pending in this transaction: another gateway
        // may have done some since they were read.
        let statement = format!(
            "SELECT letter_id FROM job_letters WHERE job_id = $1 AND status = {PENDING} \
             AND letter_id IN ({}) ORDER BY letter_id",
            placeholders(2, asked.len())
        );
        let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement)).bind(job_id);
        for id in asked {
            q = q.bind(id.to_string());
        }
        let pending = q.fetch_all(&mut *tx).await?;
        let ids: Vec<String> = pending
            .iter()
            .map(|r| r.text("letter_id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok((JobStep::default(), Vec::new()));
        }
        // The change, conditional on what the job may act on, so a letter that moved on
        // since the job started is left alone (and marked failed below, with why).
        let (set, condition, event) = match kind {
            JobKind::Retry => (
                // A fresh maximum age from the retry: the letter becomes due now.
                "state = 1, detail = '', interrupted = 0, print_batch = NULL, not_before = $1",
                // A purged letter cannot be opened any more: it is not retried.
                "state = 5 AND length(wrapped_key) > 0",
                Some((LetterState::Accepted, RETRIED)),
            ),
            JobKind::Cancel => (
                "state = 6, wrapped_key = $1, detail = 'cancelled by the gateway operator'",
                "state IN (1, 2) AND print_batch IS NULL",
                Some((LetterState::Cancelled, CANCELLED)),
            ),
            JobKind::Purge => (
                "wrapped_key = $1, detail = detail || ' (content purged by the gateway operator)'",
                "state = 5 AND length(wrapped_key) > 0",
                None,
            ),
        };
        let statement = format!(
            "UPDATE letters SET {set} WHERE {condition} AND letter_id IN ({}) \
             RETURNING letter_id, sender_cvr, route, priority, not_before, accepted_at",
            placeholders(2, ids.len())
        );
        let now = crate::clock::now_ms();
        let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
        q = match kind {
            JobKind::Retry => q.bind(now),
            JobKind::Cancel | JobKind::Purge => q.bind(&[][..] as &[u8]),
        };
        for id in &ids {
            q = q.bind(id.as_str());
        }
        let changed_rows = q.fetch_all(&mut *tx).await?;
        let changed: Vec<super::PendingDelivery> = changed_rows
            .iter()
            .map(rows::pending_from)
            .collect::<Result<_, _>>()?;
        let changed_ids: std::collections::HashSet<String> =
            changed.iter().map(|c| c.letter_id.to_string()).collect();
        mark::<B>(
            &mut tx,
            job_id,
            CHANGED,
            "",
            &changed_ids.iter().cloned().collect::<Vec<_>>(),
        )
        .await?;
        // The rest: why each could not be changed.
        let rest: Vec<&String> = ids.iter().filter(|id| !changed_ids.contains(*id)).collect();
        let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if !rest.is_empty() {
            let statement = format!(
                "SELECT letter_id, state, print_batch, CAST(length(wrapped_key) AS BIGINT) AS key_len \
                 FROM letters WHERE letter_id IN ({})",
                placeholders(1, rest.len())
            );
            let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement));
            for id in &rest {
                q = q.bind(id.as_str());
            }
            let found = q.fetch_all(&mut *tx).await?;
            let mut seen = std::collections::HashMap::new();
            for r in &found {
                seen.insert(
                    r.text("letter_id")?,
                    (
                        rows::state_from(r.int("state")?)?,
                        r.opt_text("print_batch")?.is_some(),
                        r.opt_int("key_len")?.unwrap_or(0) == 0,
                    ),
                );
            }
            for id in rest {
                let reason = match seen.get(id) {
                    Some((state, claimed, purged)) => {
                        why_not(kind, Some(*state), *claimed, *purged)
                    }
                    None => why_not(kind, None, false, false),
                };
                reasons.entry(reason).or_default().push(id.clone());
            }
        }
        let mut failed = 0;
        for (reason, ids) in &reasons {
            failed += ids.len() as u64;
            mark::<B>(&mut tx, job_id, FAILED, reason, ids).await?;
        }
        let mut written = Vec::new();
        if let Some((state, detail)) = event {
            let events: Vec<NewEvent> = changed
                .iter()
                .map(|c| NewEvent {
                    sender: c.sender,
                    letter_id: c.letter_id,
                    state,
                    at_ms: now,
                })
                .collect();
            written = B::write_events(&mut tx, &events, detail).await?;
        }
        tx.commit().await?;
        Ok((
            JobStep {
                taken: ids.len() as u64,
                changed,
                failed,
            },
            written,
        ))
    }
}

/// Marks job letters `status` (with `reason`), in the caller's transaction.
async fn mark<B: Backend>(
    conn: &mut <B::Db as Database>::Connection,
    job_id: &str,
    status: i64,
    reason: &str,
    ids: &[String],
) -> Result<(), StoreError>
where
    for<'c> &'c mut <B::Db as Database>::Connection: Executor<'c, Database = B::Db>,
    <B::Db as Database>::Arguments: IntoArguments<B::Db>,
    for<'q> i64: Encode<'q, B::Db> + Type<B::Db>,
    for<'q> &'q str: Encode<'q, B::Db> + Type<B::Db>,
{
    for chunk in ids.chunks(512) {
        let statement = format!(
            "UPDATE job_letters SET status = $1, reason = $2 \
             WHERE job_id = $3 AND status = {PENDING} AND letter_id IN ({})",
            placeholders(4, chunk.len())
        );
        let mut q = sqlx::query::<B::Db>(sqlx::AssertSqlSafe(statement))
            .bind(status)
            .bind(reason)
            .bind(job_id);
        for id in chunk {
            q = q.bind(id.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_selected_by_the_partial_index_predicate() {
        let sel = Selection {
            states: vec![LetterState::Failed],
            ..Selection::default()
        };
        assert!(where_clause(&sel, 1).starts_with("state = 5 AND"));
        for migration in [
            include_str!("../../migrations/sqlite/0091_operations.sql"),
            include_str!("../../migrations/postgres/0091_operations.sql"),
        ] {
            assert!(migration.contains("WHERE state = 5;"));
        }
        let waiting = Selection {
            states: JobKind::Cancel.default_states(),
            ..Selection::default()
        };
        assert!(where_clause(&waiting, 1).starts_with("state IN (1, 2) AND"));
    }

    #[test]
    fn a_selection_survives_the_job_row() {
        let sel = Selection {
            sender: Some("29403473".parse().unwrap()),
            route: Some(crate::domain::Route::Print),
            states: vec![LetterState::Failed],
            batch_id: Some("b-1".parse().unwrap()),
            accepted_before_ms: Some(1_700_000_000_000),
        };
        assert_eq!(selection_from_json(&selection_json(&sel)).unwrap(), sel);
        let empty = Selection {
            states: vec![LetterState::Accepted],
            ..Selection::default()
        };
        assert_eq!(selection_from_json(&selection_json(&empty)).unwrap(), empty);
    }
}
