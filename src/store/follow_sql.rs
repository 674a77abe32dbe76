//! The SQL of [`FollowStore`], one text for both backends (`$n` placeholders work on SQLite
//! and PostgreSQL alike), and the event writes the backends call inside the transactions of
//! their state changes.
//!
//! The `impl FollowStore` is generated once per backend by `follow_store!` rather than written
//! generically over `sqlx::Database`: the statements are shared, only the pool type differs.

use std::collections::BTreeMap;

use crate::domain::{Cvr, LetterId, LetterState};

use super::StoreError;

/// A state change to record, in the transaction that makes it.
#[derive(Clone, Debug)]
pub(crate) struct NewEvent {
    pub sender: Cvr,
    pub letter_id: LetterId,
    pub state: LetterState,
    pub at_ms: i64,
}

impl NewEvent {
    /// The event of a letter being stored: ACCEPTED, or SCHEDULED when it waits for a time.
    pub fn accepted(l: &super::NewLetter) -> NewEvent {
        NewEvent {
            sender: l.sender,
            letter_id: l.letter_id,
            state: if l.not_before_ms.is_some() {
                LetterState::Scheduled
            } else {
                LetterState::Accepted
            },
            at_ms: l.accepted_at_ms,
        }
    }

    pub fn now(sender: Cvr, letter_id: LetterId, state: LetterState) -> NewEvent {
        NewEvent {
            sender,
            letter_id,
            state,
            at_ms: crate::clock::now_ms(),
        }
    }
}

/// After commit: wakes the streams following these senders.
pub(crate) fn signal_all(written: Vec<(Cvr, usize)>) {
    for (sender, n) in written {
        super::signal::committed(sender, n);
    }
}

/// Events per sender, senders in CVR order: locks on `event_seq` rows are always taken in
/// that order, so two transactions writing events of the same senders cannot deadlock on them.
pub(crate) fn by_sender(events: &[NewEvent]) -> BTreeMap<Cvr, Vec<&NewEvent>> {
    let mut map: BTreeMap<Cvr, Vec<&NewEvent>> = BTreeMap::new();
    for e in events {
        map.entry(e.sender).or_default().push(e);
    }
    map
}

/// Takes `n` event numbers for a sender, holding its `event_seq` row lock until commit; the
/// first number taken is the result minus `n` plus one.
pub(crate) const ALLOCATE: &str = "INSERT INTO event_seq (sender_cvr, last_seq) VALUES ($1, $2) \
     ON CONFLICT (sender_cvr) DO UPDATE SET last_seq = event_seq.last_seq + excluded.last_seq \
     RETURNING last_seq";

pub(crate) const SELECT_EVENTS: &str = "SELECT e.seq, e.state, e.at, e.detail, l.letter_id, \
     l.message_uuid, l.batch_id, l.sender_reference, l.route \
     FROM events e JOIN letters l ON l.letter_id = e.letter_id \
     WHERE e.sender_cvr = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3";
pub(crate) const SELECT_TERMINAL_EVENTS: &str = "SELECT e.seq, e.state, e.at, e.detail, \
     l.letter_id, l.message_uuid, l.batch_id, l.sender_reference, l.route \
     FROM events e JOIN letters l ON l.letter_id = e.letter_id \
     WHERE e.sender_cvr = $1 AND e.seq > $2 AND e.state IN (3, 4, 5, 6) ORDER BY e.seq LIMIT $3";
pub(crate) const SELECT_PRUNED: &str = "SELECT pruned_through FROM event_seq WHERE sender_cvr = $1";

/// Per sender, the newest event older than the cut-off: everything up to it goes.
pub(crate) const PRUNE_MARKS: &str =
    "SELECT sender_cvr, MAX(seq) AS upto FROM events WHERE at < $1 GROUP BY sender_cvr";
pub(crate) const PRUNE_MARK: &str = "UPDATE event_seq SET pruned_through = $1 \
     WHERE sender_cvr = $2 AND pruned_through < $1";
pub(crate) const PRUNE_DELETE: &str = "DELETE FROM events WHERE sender_cvr = $1 AND seq <= $2";

pub(crate) const BATCH_COUNTS: &str = "SELECT state, route, COUNT(*) AS n, \
     MIN(accepted_at) AS first_at, MAX(accepted_at) AS last_at, MAX(delivered_at) AS delivered \
     FROM letters WHERE sender_cvr = $1 AND batch_id = $2 GROUP BY state, route";
pub(crate) const BATCH_REJECTIONS: &str = "SELECT reason, COUNT(*) AS n FROM batch_rejections \
     WHERE sender_cvr = $1 AND batch_id = $2 GROUP BY reason";
pub(crate) const RECORD_REJECTION: &str = "INSERT INTO batch_rejections \
     (sender_cvr, batch_id, message_uuid, reason, at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (sender_cvr, batch_id, message_uuid) \
     DO UPDATE SET reason = excluded.reason, at = excluded.at";

/// Cancelling: conditional on the letter still waiting and not claimed by a print batch
/// (`claim_print`: its print copy is being published, so it is being handed over), which is
/// the condition delivery's update has, so of a cancel and a delivery racing for one letter
/// exactly one changes it (the other's update matches no row once the first has committed). The wrapped data key is
/// emptied: without it the ciphertext can never be opened again (content purged, also where it
/// sits in an append-only segment).
pub(crate) const CANCEL_ONE: &str = "UPDATE letters SET state = 6, wrapped_key = $1, \
     detail = 'recalled by the sender' \
     WHERE letter_id = $2 AND sender_cvr = $3 AND state IN (1, 2) AND print_batch IS NULL \
     RETURNING letter_id";
pub(crate) const CANCEL_BATCH: &str = "UPDATE letters SET state = 6, wrapped_key = $1, \
     detail = 'recalled by the sender' \
     WHERE sender_cvr = $2 AND batch_id = $3 AND state IN (1, 2) AND print_batch IS NULL \
     RETURNING letter_id";
pub(crate) const CANCEL_DETAIL: &str = "recalled by the sender";

/// PostgreSQL: the waiting letters of a batch locked in `letter_id` order before they are
/// cancelled. Delivery locks its letters in that order too (an explicit `FOR UPDATE` in
/// `letter_id` order before its update), so a batch recall and a delivery of overlapping
/// letters queue behind each other instead of each holding a row the other wants. SQLite has one writer at
/// a time and needs no such lock.
pub(crate) const LOCK_BATCH_PG: &str = "SELECT letter_id FROM letters \
     WHERE sender_cvr = $1 AND batch_id = $2 AND state IN (1, 2) AND print_batch IS NULL \
     ORDER BY letter_id FOR UPDATE";

/// A recall that lost a deadlock or serialisation conflict is tried again this many times in
/// all: the conflict says only that another transaction touched the same rows first, and the
/// recall's condition on the state makes trying again safe.
pub(crate) const CANCEL_ATTEMPTS: u32 = 5;

/// The pause before the `attempt`-th retry: short, growing, and different per caller so two
/// recalls that conflicted do not meet again at once.
pub(crate) fn conflict_backoff(attempt: u32) -> std::time::Duration {
    use rand::{Rng, SeedableRng};
    let base = 5u64 << attempt.min(6);
    let jitter = rand::rngs::SmallRng::from_os_rng().random_range(0..base);
    std::time::Duration::from_millis(base + jitter)
}

/// The listing, newest first; `(accepted_at, letter_id)` is the page position. Optional
/// filters are bound as NULL when absent (`$n IS NULL OR …`), so one statement serves all.
pub(crate) fn list_statement(record_columns: &str) -> String {
    format!(
        "SELECT {record_columns} FROM letters WHERE sender_cvr = $1 \
         AND ($2 IS NULL OR batch_id = $2) \
         AND ($3 IS NULL OR state = $3) \
         AND ($4 IS NULL OR accepted_at >= $4) \
         AND ($5 IS NULL OR accepted_at < $5) \
         AND ($6 IS NULL OR accepted_at < $6 OR (accepted_at = $6 AND letter_id < $7)) \
         ORDER BY accepted_at DESC, letter_id DESC LIMIT $8"
    )
}

pub(crate) fn seq_from(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| super::rows::corrupt("event number"))
}

/// Generates `impl FollowStore` for a backend with a `pool()` accessor and a `record_from`
/// row decoder, given the backend's `write_events` (its batched event insert).
macro_rules! follow_store {
    ($store:ty, $db:ty, $begin:expr, $lock_batch:expr, $record_from:path, $record_columns:expr, $write_events:path) => {
        #[async_trait::async_trait]
        impl $crate::store::FollowStore for $store {
            async fn events(
                &self,
                q: $crate::store::EventQuery,
            ) -> Result<$crate::store::EventPage, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::follow_sql as f;
                let statement = if q.terminal_only {
                    f::SELECT_TERMINAL_EVENTS
                } else {
                    f::SELECT_EVENTS
                };
                let sender = i64::from(q.sender.value());
                let rows = sqlx::query::<$db>(statement)
                    .bind(sender)
                    .bind(i64::try_from(q.after).unwrap_or(i64::MAX))
                    .bind(i64::from(q.limit))
                    .fetch_all(self.pool())
                    .await?;
                // Read after the events: had pruning run between the two, the events read
                // could start past a hole; checked afterwards, such a hole is always seen.
                let pruned: Option<i64> = sqlx::query_scalar::<$db, i64>(f::SELECT_PRUNED)
                    .bind(sender)
                    .fetch_optional(self.pool())
                    .await?;
                let pruned = f::seq_from(pruned.unwrap_or(0))?;
                if q.after < pruned && q.after > 0 {
                    return Ok($crate::store::EventPage::Expired {
                        pruned_through: pruned,
                    });
                }
                let corrupt = super::rows::corrupt;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let id: String = r.try_get("letter_id")?;
                    let uuid: String = r.try_get("message_uuid")?;
                    let batch: Option<String> = r.try_get("batch_id")?;
                    out.push($crate::store::StoredEvent {
                        seq: f::seq_from(r.try_get("seq")?)?,
                        letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
                        message_uuid: uuid.parse().map_err(|_| corrupt("message uuid"))?,
                        batch_id: batch
                            .map(|b| b.parse().map_err(|_| corrupt("batch id")))
                            .transpose()?,
                        sender_reference: r.try_get("sender_reference")?,
                        state: $crate::domain::LetterState::from_code(r.try_get("state")?)
                            .ok_or_else(|| corrupt("state"))?,
                        route: $crate::db::route_from_code(r.try_get("route")?),
                        at_ms: r.try_get("at")?,
                        detail: r.try_get("detail")?,
                    });
                }
                Ok($crate::store::EventPage::Events(out))
            }

            async fn prune_events(&self, before_ms: i64) -> Result<u64, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::follow_sql as f;
                let marks = sqlx::query::<$db>(f::PRUNE_MARKS)
                    .bind(before_ms)
                    .fetch_all(self.pool())
                    .await?;
                let mut deleted = 0;
                for m in marks {
                    let sender: i64 = m.try_get("sender_cvr")?;
                    let upto: i64 = m.try_get("upto")?;
                    // Mark and delete together: a reader sees either both or neither.
                    let mut tx = self.pool().begin().await?;
                    sqlx::query::<$db>(f::PRUNE_MARK)
                        .bind(upto)
                        .bind(sender)
                        .execute(&mut *tx)
                        .await?;
                    deleted += sqlx::query::<$db>(f::PRUNE_DELETE)
                        .bind(sender)
                        .bind(upto)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    tx.commit().await?;
                }
                Ok(deleted)
            }

            async fn batch_counts(
                &self,
                sender: $crate::domain::Cvr,
                batch: &$crate::domain::BatchId,
            ) -> Result<$crate::store::BatchCounts, $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::follow_sql as f;
                let corrupt = super::rows::corrupt;
                let cvr = i64::from(sender.value());
                let rows = sqlx::query::<$db>(f::BATCH_COUNTS)
                    .bind(cvr)
                    .bind(batch.as_str())
                    .fetch_all(self.pool())
                    .await?;
                let mut c = $crate::store::BatchCounts::default();
                let mut by_state = std::collections::BTreeMap::new();
                let mut by_route = std::collections::BTreeMap::new();
                for r in rows {
                    let n =
                        u64::try_from(r.try_get::<i64, _>("n")?).map_err(|_| corrupt("count"))?;
                    let state = $crate::domain::LetterState::from_code(r.try_get("state")?)
                        .ok_or_else(|| corrupt("state"))?;
                    let route = r.try_get::<i64, _>("route")?;
                    *by_state.entry(state.code()).or_insert(0) += n;
                    *by_route.entry(route).or_insert(0) += n;
                    c.letters += n;
                    let first: Option<i64> = r.try_get("first_at")?;
                    let last: Option<i64> = r.try_get("last_at")?;
                    let delivered: Option<i64> = r.try_get("delivered")?;
                    c.first_accepted_ms = min_of(c.first_accepted_ms, first);
                    c.last_accepted_ms = c.last_accepted_ms.max(last);
                    c.last_delivered_ms = c.last_delivered_ms.max(delivered);
                }
                c.by_state = by_state
                    .into_iter()
                    .filter_map(|(s, n)| $crate::domain::LetterState::from_code(s).map(|s| (s, n)))
                    .collect();
                c.by_route = by_route
                    .into_iter()
                    .map(|(r, n)| ($crate::db::route_from_code(r), n))
                    .collect();
                let rejected = sqlx::query::<$db>(f::BATCH_REJECTIONS)
                    .bind(cvr)
                    .bind(batch.as_str())
                    .fetch_all(self.pool())
                    .await?;
                for r in rejected {
                    let n =
                        u64::try_from(r.try_get::<i64, _>("n")?).map_err(|_| corrupt("count"))?;
                    let reason = $crate::domain::RejectReason::from_code(r.try_get("reason")?)
                        .ok_or_else(|| corrupt("reject reason"))?;
                    c.rejected.push((reason, n));
                }
                Ok(c)
            }

            async fn cancel_letter(
                &self,
                sender: $crate::domain::Cvr,
                key: $crate::store::LetterKey,
                at_ms: i64,
            ) -> Result<Option<$crate::store::LetterRecord>, $crate::store::StoreError> {
                use $crate::store::follow_sql as f;
                let Some(before) = $crate::store::Store::letter(self, sender, key).await? else {
                    return Ok(None);
                };
                if before.state.is_terminal() {
                    return Ok(Some(before));
                }
                let id = before.letter_id;
                let mut attempt = 0;
                let written = loop {
                    attempt += 1;
                    match self.cancel_one_tx(sender, id, at_ms).await {
                        Err(e) if e.is_conflict() && attempt < f::CANCEL_ATTEMPTS => {
                            tokio::time::sleep(f::conflict_backoff(attempt)).await;
                        }
                        other => break other?,
                    }
                };
                for (s, n) in written {
                    $crate::store::signal::committed(s, n);
                }
                $crate::store::Store::letter(self, sender, $crate::store::LetterKey::LetterId(id))
                    .await
            }

            async fn cancel_batch(
                &self,
                sender: $crate::domain::Cvr,
                batch: &$crate::domain::BatchId,
                at_ms: i64,
            ) -> Result<u64, $crate::store::StoreError> {
                use $crate::store::follow_sql as f;
                // A conflict with a delivery (or another recall) is the database's to resolve,
                // not the sender's: the recall is tried again, whole, and only a store that
                // stays unavailable reaches the caller.
                let mut attempt = 0;
                let (cancelled, written) = loop {
                    attempt += 1;
                    match self.cancel_batch_tx(sender, batch, at_ms).await {
                        Err(e) if e.is_conflict() && attempt < f::CANCEL_ATTEMPTS => {
                            tracing::debug!(
                                attempt,
                                "a batch recall met a concurrent update; trying again"
                            );
                            tokio::time::sleep(f::conflict_backoff(attempt)).await;
                        }
                        other => break other?,
                    }
                };
                for (s, n) in written {
                    $crate::store::signal::committed(s, n);
                }
                Ok(cancelled)
            }

            async fn list_letters(
                &self,
                q: &$crate::store::ListQuery,
            ) -> Result<Vec<$crate::store::LetterRecord>, $crate::store::StoreError> {
                use $crate::store::follow_sql as f;
                static LIST: std::sync::LazyLock<String> =
                    std::sync::LazyLock::new(|| f::list_statement($record_columns));
                let rows = sqlx::query::<$db>(LIST.as_str())
                    .bind(i64::from(q.sender.value()))
                    .bind(q.batch_id.as_ref().map(|b| b.as_str().to_string()))
                    .bind(q.state.map(|s| s.code()))
                    .bind(q.accepted_from_ms)
                    .bind(q.accepted_to_ms)
                    .bind(q.before.map(|(at, _)| at))
                    .bind(q.before.map(|(_, id)| id.to_string()))
                    .bind(i64::from(q.limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter().map($record_from).collect()
            }

            async fn record_rejections(
                &self,
                rejections: &[$crate::store::BatchRejection],
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::follow_sql as f;
                if rejections.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool().begin_with($begin).await?;
                for r in rejections {
                    sqlx::query::<$db>(f::RECORD_REJECTION)
                        .bind(i64::from(r.sender.value()))
                        .bind(r.batch_id.as_str())
                        .bind(r.message_uuid.as_str())
                        .bind(r.reason.code())
                        .bind(r.at_ms)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }

        impl $store {
            /// One attempt at recalling one letter: the conditional update and its event in
            /// one transaction. Returns the events written per sender, for the wake-up.
            async fn cancel_one_tx(
                &self,
                sender: $crate::domain::Cvr,
                id: $crate::domain::LetterId,
                at_ms: i64,
            ) -> Result<Vec<($crate::domain::Cvr, usize)>, $crate::store::StoreError> {
                use $crate::store::follow_sql as f;
                let mut tx = self.pool().begin_with($begin).await?;
                let changed = sqlx::query::<$db>(f::CANCEL_ONE)
                    .bind(&[][..] as &[u8])
                    .bind(id.to_string())
                    .bind(i64::from(sender.value()))
                    .fetch_optional(&mut *tx)
                    .await?;
                let mut written = Vec::new();
                if changed.is_some() {
                    let event = f::NewEvent {
                        sender,
                        letter_id: id,
                        state: $crate::domain::LetterState::Cancelled,
                        at_ms,
                    };
                    written =
                        $write_events(&mut tx, std::slice::from_ref(&event), f::CANCEL_DETAIL)
                            .await?;
                }
                tx.commit().await?;
                Ok(written)
            }

            /// One attempt at recalling a batch: locks (where the backend needs it), the
            /// conditional update and the events in one transaction. Returns how many letters
            /// it cancelled and the events written per sender.
            async fn cancel_batch_tx(
                &self,
                sender: $crate::domain::Cvr,
                batch: &$crate::domain::BatchId,
                at_ms: i64,
            ) -> Result<(u64, Vec<($crate::domain::Cvr, usize)>), $crate::store::StoreError> {
                use sqlx::Row;
                use $crate::store::follow_sql as f;
                let cvr = i64::from(sender.value());
                let mut tx = self.pool().begin_with($begin).await?;
                let lock: Option<&str> = $lock_batch;
                if let Some(lock) = lock {
                    sqlx::query::<$db>(lock)
                        .bind(cvr)
                        .bind(batch.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                }
                let rows = sqlx::query::<$db>(f::CANCEL_BATCH)
                    .bind(&[][..] as &[u8])
                    .bind(cvr)
                    .bind(batch.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                let mut events = Vec::with_capacity(rows.len());
                for r in &rows {
                    let id: String = r.try_get("letter_id")?;
                    events.push(f::NewEvent {
                        sender,
                        letter_id: id.parse().map_err(|_| super::rows::corrupt("letter id"))?,
                        state: $crate::domain::LetterState::Cancelled,
                        at_ms,
                    });
                }
                let written = $write_events(&mut tx, &events, f::CANCEL_DETAIL).await?;
                tx.commit().await?;
                Ok((events.len() as u64, written))
            }
        }

        fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, None) => a,
                (None, b) => b,
            }
        }
    };
}

pub(crate) use follow_store;

/// SQLite's batched event insert: multi-row statements (a round trip to SQLite's worker thread
/// per statement is what costs, not the rows). Returns the events written per sender, for the
/// wake-up signal after commit.
pub(crate) async fn write_events_sqlite(
    conn: &mut sqlx::SqliteConnection,
    events: &[NewEvent],
    detail: &str,
) -> Result<Vec<(Cvr, usize)>, StoreError> {
    // Most rows a statement, 6 values each, anonymous placeholders (see
    // `db::sqlite::statement_chunks`).
    const ROWS: usize = 128;
    let mut written = Vec::new();
    for (sender, evs) in by_sender(events) {
        let cvr = i64::from(sender.value());
        let n = evs.len() as i64;
        let last: i64 = sqlx::query_scalar(ALLOCATE)
            .bind(cvr)
            .bind(n)
            .fetch_one(&mut *conn)
            .await?;
        let mut seq = last - n;
        for chunk in crate::db::sqlite::statement_chunks(&evs, ROWS) {
            let row = format!("({})", crate::db::sqlite::anonymous(6));
            let sql = format!(
                "INSERT INTO events (sender_cvr, seq, letter_id, state, at, detail) VALUES {}",
                vec![row; chunk.len()].join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                seq += 1;
                q = q
                    .bind(cvr)
                    .bind(seq)
                    .bind(e.letter_id.to_string())
                    .bind(e.state.code())
                    .bind(e.at_ms)
                    .bind(detail);
            }
            q.execute(&mut *conn).await?;
        }
        written.push((sender, evs.len()));
    }
    Ok(written)
}

/// PostgreSQL's batched event insert: one statement per sender over arrays.
pub(crate) async fn write_events_pg(
    conn: &mut sqlx::PgConnection,
    events: &[NewEvent],
    detail: &str,
) -> Result<Vec<(Cvr, usize)>, StoreError> {
    let mut written = Vec::new();
    for (sender, evs) in by_sender(events) {
        let cvr = i64::from(sender.value());
        let n = evs.len() as i64;
        let last: i64 = sqlx::query_scalar(ALLOCATE)
            .bind(cvr)
            .bind(n)
            .fetch_one(&mut *conn)
            .await?;
        let ids: Vec<String> = evs.iter().map(|e| e.letter_id.to_string()).collect();
        let states: Vec<i64> = evs.iter().map(|e| e.state.code()).collect();
        let ats: Vec<i64> = evs.iter().map(|e| e.at_ms).collect();
        sqlx::query(
            "INSERT INTO events (sender_cvr, seq, letter_id, state, at, detail) \
             SELECT $1, $2 + t.ord, t.id, t.state, t.at, $3 \
             FROM UNNEST($4::text[], $5::bigint[], $6::bigint[]) WITH ORDINALITY AS t(id, state, at, ord)",
        )
        .bind(cvr)
        .bind(last - n)
        .bind(detail)
        .bind(&ids)
        .bind(&states)
        .bind(&ats)
        .execute(&mut *conn)
        .await?;
        written.push((sender, evs.len()));
    }
    Ok(written)
}
