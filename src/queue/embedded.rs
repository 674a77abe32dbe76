//! The embedded durable queue: a SQLite file of its own in the data directory.
//!
//! Same durability settings as the store (WAL, synchronous FULL). Only one gateway process uses
//! a data directory at a time, so leases left by a killed process are cleared on open.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::db::sqlite::{anonymous, statement_chunks};
use crate::db::{route_code, route_from_code};
use crate::domain::{Cvr, LetterId, Priority, Route};

use super::fair::FairClock;
use super::{DeadLetter, Delivery, Leased, Queue, QueueCause, QueueDepth, QueueError, SenderShare};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/queue-sqlite");

/// Most deliveries per enqueue statement (7 values each, anonymous placeholders; see
/// `statement_chunks`).
const ENQUEUE_ROWS: usize = 64;
/// Most letter ids per lease or acknowledgement statement.
const ID_CHUNK: usize = 256;

/// Inserts `rows` deliveries (7 values each, in the order of the columns below) that are
/// neither queued already nor dead-lettered: a letter enqueued again keeps its place and a dead
/// letter stays dead until an operator revives it.
fn enqueue_statement(rows: usize) -> String {
    let row = format!("({})", anonymous(7));
    // `WHERE` is required before `ON CONFLICT` in an INSERT … SELECT (SQLite's parsing rule).
    format!(
        "INSERT INTO deliveries (letter_id, route, priority, not_before, enqueued_at, sender, vtime) \
         SELECT * FROM (VALUES {}) AS v \
         WHERE NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.letter_id = v.column1) \
         ON CONFLICT (letter_id) DO NOTHING",
        vec![row; rows].join(", ")
    )
}

pub struct EmbeddedQueue {
    pool: SqlitePool,
    work: Notify,
    fair: Mutex<FairClock>,
}

impl EmbeddedQueue {
    pub async fn open(path: &Path, owner: bool) -> Result<Self, QueueError> {
        Self::open_with(path, owner, &Default::default()).await
    }

    /// Opens with the configured connection count and busy timeout.
    pub async fn open_with(
        path: &Path,
        owner: bool,
        db: &crate::backend::DatabaseOptions,
    ) -> Result<Self, QueueError> {
        let pool = crate::db::sqlite::open_sqlite(path, &MIGRATOR, db)
            .await
            .map_err(|e| QueueError::Unavailable(QueueCause::Open(e)))?;
        if owner {
            sqlx::query("UPDATE deliveries SET lease_until = 0 WHERE lease_until > 0")
                .execute(&pool)
                .await?;
        }
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(vtime) FROM deliveries")
            .fetch_one(&pool)
            .await?;
        let latest = sqlx::query("SELECT sender, MAX(vtime) AS v FROM deliveries GROUP BY sender")
            .fetch_all(&pool)
            .await?
            .iter()
            .filter_map(|r| {
                let sender: i64 = r.try_get("sender").ok()?;
                let v: i64 = r.try_get("v").ok()?;
                Some((cvr_from(sender).ok()?, v))
            })
            .collect::<Vec<_>>();
        Ok(EmbeddedQueue {
            pool,
            work: Notify::new(),
            fair: Mutex::new(FairClock::resume(oldest.unwrap_or(0), latest)),
        })
    }

    fn fair(&self) -> std::sync::MutexGuard<'_, FairClock> {
        self.fair.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn corrupt(what: &str) -> QueueError {
    QueueError::Corrupt(what.to_string())
}

fn cvr_from(value: i64) -> Result<Cvr, QueueError> {
    u32::try_from(value)
        .ok()
        .and_then(|v| Cvr::from_value(v).ok())
        .ok_or_else(|| corrupt("sender"))
}

fn delivery_from(r: &sqlx::sqlite::SqliteRow) -> Result<Delivery, QueueError> {
    let id: String = r.try_get("letter_id")?;
    Ok(Delivery {
        letter_id: id.parse().map_err(|_| corrupt("letter id"))?,
        sender: cvr_from(r.try_get("sender")?)?,
        route: route_from_code(r.try_get("route")?),
        priority: Priority::from_code(r.try_get("priority")?),
        not_before_ms: r.try_get("not_before").unwrap_or(0),
        enqueued_at_ms: r.try_get("enqueued_at")?,
    })
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        // A letter enqueued again (a resend, a restart's resync) gets a new stamp that is
        // ignored: the row already there keeps its place.
        let stamps: Vec<i64> = {
            let mut fair = self.fair();
            items.iter().map(|d| fair.stamp(d.sender)).collect()
        };
        let rows: Vec<(&Delivery, i64)> = items.iter().zip(stamps).collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Several rows a statement: through sqlx every statement is a round trip to the
        // connection's thread, which one statement per row pays a thousand times a batch.
        for chunk in statement_chunks(&rows, ENQUEUE_ROWS) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(enqueue_statement(chunk.len())));
            for (d, vtime) in chunk {
                q = q
                    .bind(d.letter_id.to_string())
                    .bind(route_code(d.route))
                    .bind(d.priority.code())
                    .bind(d.not_before_ms)
                    .bind(d.enqueued_at_ms)
                    .bind(i64::from(d.sender.value()))
                    .bind(*vtime);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.work.notify_waiters();
        Ok(())
    }

    async fn lease(
        &self,
        route: Route,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        let now = now_ms();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "SELECT letter_id, sender, route, priority, not_before, enqueued_at, attempts, vtime FROM deliveries \
             WHERE route = ? AND not_before <= ? AND lease_until <= ? \
             ORDER BY priority DESC, vtime LIMIT ?",
        )
        .bind(route_code(route))
        .bind(now)
        .bind(now)
        .bind(max as i64)
        .fetch_all(&mut *tx)
        .await?;
        let until = now + lease.as_millis() as i64;
        let mut out = Vec::with_capacity(rows.len());
        let mut latest = i64::MIN;
        for r in &rows {
            let d = delivery_from(r)?;
            latest = latest.max(r.try_get("vtime")?);
            let attempts: i64 = r.try_get("attempts")?;
            out.push(Leased {
                delivery: d,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            });
        }
        let ids: Vec<String> = out
            .iter()
            .map(|l| l.delivery.letter_id.to_string())
            .collect();
        for chunk in statement_chunks(&ids, ID_CHUNK) {
            let statement = format!(
                "UPDATE deliveries SET lease_until = ? WHERE letter_id IN ({})",
                anonymous(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(statement)).bind(until);
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if !out.is_empty() {
            self.fair().served(latest);
        }
        Ok(out)
    }

    async fn ack(&self, ids: &[LetterId]) -> Result<(), QueueError> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = ids.iter().map(LetterId::to_string).collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in statement_chunks(&keys, ID_CHUNK) {
            let statement = format!(
                "DELETE FROM deliveries WHERE letter_id IN ({})",
                anonymous(chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(statement));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retry(&self, id: LetterId, not_before_ms: i64, error: &str) -> Result<(), QueueError> {
        sqlx::query(
            "UPDATE deliveries SET attempts = attempts + 1, not_before = ?, lease_until = 0, last_error = ? \
             WHERE letter_id = ?",
        )
        .bind(not_before_ms)
        .bind(error)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT OR REPLACE INTO dead_letters (letter_id, sender, route, priority, enqueued_at, attempts, failed_at, last_error) \
             SELECT letter_id, sender, route, priority, enqueued_at, attempts + 1, ?, ? FROM deliveries WHERE letter_id = ?",
        )
        .bind(now_ms())
        .bind(error)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM deliveries WHERE letter_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let rows = sqlx::query(
            "SELECT letter_id, sender, route, priority, 0 AS not_before, enqueued_at, attempts, failed_at, last_error \
             FROM dead_letters ORDER BY failed_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let attempts: i64 = r.try_get("attempts")?;
                Ok(DeadLetter {
                    delivery: delivery_from(r)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    failed_at_ms: r.try_get("failed_at")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    async fn revive(&self, id: LetterId) -> Result<bool, QueueError> {
        let sender: Option<i64> =
            sqlx::query_scalar("SELECT sender FROM dead_letters WHERE letter_id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        let Some(sender) = sender else {
            return Ok(false);
        };
        let vtime = self.fair().stamp(cvr_from(sender)?);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let n = sqlx::query(
            "INSERT OR IGNORE INTO deliveries (letter_id, sender, route, priority, not_before, enqueued_at, vtime) \
             SELECT letter_id, sender, route, priority, 0, ?, ? FROM dead_letters WHERE letter_id = ?",
        )
        .bind(now_ms())
        .bind(vtime)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM dead_letters WHERE letter_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.work.notify_waiters();
        Ok(n == 1)
    }

    async fn purge(&self, id: LetterId) -> Result<bool, QueueError> {
        let n = sqlx::query("DELETE FROM dead_letters WHERE letter_id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let rows = sqlx::query("SELECT route, COUNT(*) AS n FROM deliveries GROUP BY route")
            .fetch_all(&self.pool)
            .await?;
        let mut d = QueueDepth::default();
        for r in rows {
            let n: i64 = r.try_get("n")?;
            match route_from_code(r.try_get("route")?) {
                Route::Mailbox => d.mailbox = n as u64,
                Route::Print => d.print = n as u64,
            }
        }
        let dead: i64 = sqlx::query("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        d.dead = dead as u64;
        Ok(d)
    }

    async fn set_senders(&self, shares: &[SenderShare]) -> Result<(), QueueError> {
        self.fair()
            .set_weights(shares.iter().map(|s| (s.sender, s.weight)));
        Ok(())
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        let _ = tokio::time::timeout(max_wait, self.work.notified()).await;
    }
}
