//! The outbox: the store is the record of every accepted letter, the queue of those still to
//! deliver; this keeps the two in step while the gateway runs and across restarts.
//!
//! Every delivery the queue confirmed gets a publish marker in the store (`outbox_marks`):
//! [`Marked`] wraps the queue the committer enqueues through and writes the markers of what it
//! enqueued in one statement a second, off the letters' path. The sweep ([`sweep`], every
//! `outbox.sweep_every`, and once at start-up) re-queues the waiting letters that have no
//! marker (a crash between a batch's commit and its publish, a publish that failed) or whose
//! marker is older than `outbox.stale_after` while they were due (a message the broker lost),
//! and marks them. A restart therefore publishes only what is not known to be queued, instead
//! of the whole backlog: with RabbitMQ, which is not idempotent, the whole backlog again would
//! be a second message for every waiting letter. Markers lost with a crash (at most a second's
//! worth) only mean those letters are queued twice; delivery skips the second copy.
//!
//! What it costs: one small row per letter while it waits, written a second after its commit
//! in one multi-row statement, and dropped by the sweep once the letter is delivered; a sweep
//! reads the waiting letters (the `letters_undelivered` index), not the history.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::domain::{LetterId, Route};
use crate::queue::{DeadLetter, Delivery, Leased, Queue, QueueDepth, QueueError, SenderShare};
use crate::store::{Store, StoreError};

/// `[outbox]`: how the store and the queue are kept in step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// How often the running gateway looks for waiting letters the queue may not hold.
    #[serde(with = "humantime_serde")]
    pub sweep_every: Duration,
    /// A letter accepted less than this long ago is left to the committer, which may still be
    /// publishing it.
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
    /// A letter marked as queued this long ago, due all that time and still waiting, is queued
    /// again (its message may be lost). Longer than the longest a letter waits in the queue
    /// when all is well; a copy queued needlessly is skipped by delivery.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Letters re-queued per statement of a sweep.
    pub batch: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            sweep_every: Duration::from_secs(300),
            grace: Duration::from_secs(60),
            stale_after: Duration::from_secs(6 * 3600),
            batch: 10_000,
        }
    }
}

impl OutboxConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.sweep_every.is_zero() {
            p.push("outbox.sweep_every must be above 0".into());
        }
        if self.batch == 0 {
            p.push("outbox.batch must be at least 1".into());
        }
        if self.grace < 2 * MARK_EVERY {
            p.push(format!(
                "outbox.grace must be at least {:?}: markers are written every {MARK_EVERY:?}",
                2 * MARK_EVERY
            ));
        }
        if self.stale_after < self.grace {
            p.push("outbox.stale_after must be at least outbox.grace".into());
        }
        p
    }
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// How often [`Marked`] writes the markers of what it enqueued.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// The queue the committer enqueues through: the real queue, and a marker for every letter it
/// confirmed.
pub struct Marked {
    inner: Arc<dyn Queue>,
    store: Arc<dyn Store>,
    /// Enqueued and confirmed, marker not yet written.
    unmarked: StdMutex<Vec<LetterId>>,
}

impl Marked {
    pub fn new(inner: Arc<dyn Queue>, store: Arc<dyn Store>) -> Arc<Marked> {
        Arc::new(Marked {
            inner,
            store,
            unmarked: StdMutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Vec<LetterId> {
        std::mem::take(&mut *self.unmarked.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Writes the markers of everything enqueued so far. On failure they are kept for the
    /// next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ids = self.take();
        if ids.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.mark_queued(&ids, now_ms()).await {
            self.unmarked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(ids);
            return Err(e);
        }
        Ok(())
    }

    /// Writes markers every second until cancelled, then once more.
    async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(MARK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %crate::error_report::chain(&e), "could not write publish markers; trying again");
            }
        }
    }
}

#[async_trait]
impl Queue for Marked {
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError> {
        self.inner.enqueue(items).await?;
        self.unmarked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(items.iter().map(|d| d.letter_id));
        Ok(())
    }

    async fn lease(
        &self,
        route: Route,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError> {
        self.inner.lease(route, max, lease).await
    }

    async fn ack(&self, ids: &[LetterId]) -> Result<(), QueueError> {
        self.inner.ack(ids).await
    }

    async fn retry(&self, id: LetterId, not_before_ms: i64, error: &str) -> Result<(), QueueError> {
        self.inner.retry(id, not_before_ms, error).await
    }

    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(id, error).await
    }

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters().await
    }

    async fn revive(&self, id: LetterId) -> Result<bool, QueueError> {
        self.inner.revive(id).await
    }

    async fn purge(&self, id: LetterId) -> Result<bool, QueueError> {
        self.inner.purge(id).await
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        self.inner.depth().await
    }

    async fn set_senders(&self, shares: &[SenderShare]) -> Result<(), QueueError> {
        self.inner.set_senders(shares).await
    }

    async fn tidy(&self) -> Result<(), QueueError> {
        self.inner.tidy().await
    }

    fn take_reset(&self) -> bool {
        self.inner.take_reset()
    }

    async fn wait_for_work(&self, max_wait: Duration) {
        self.inner.wait_for_work(max_wait).await
    }
}

/// Re-queues the waiting letters accepted by `accepted_by_ms` that are not known to be queued
/// (see the module comment) and marks them; returns how many. Idempotent.
pub async fn sweep(
    store: &dyn Store,
    queue: &dyn Queue,
    accepted_by_ms: i64,
    stale_before_ms: i64,
    batch: usize,
) -> Result<usize, SweepError> {
    let mut total = 0;
    loop {
        let pending = store
            .unqueued(accepted_by_ms, stale_before_ms, batch)
            .await?;
        if pending.is_empty() {
            return Ok(total);
        }
        let items: Vec<Delivery> = pending
            .iter()
            .map(|p| Delivery {
                letter_id: p.letter_id,
                sender: p.sender,
                route: p.route,
                priority: p.priority,
                not_before_ms: p.not_before_ms,
                enqueued_at_ms: p.accepted_at_ms,
            })
            .collect();
        queue.enqueue(&items).await?;
        let ids: Vec<LetterId> = items.iter().map(|d| d.letter_id).collect();
        // Marked now, so the next round (and sweep) does not find them again.
        store.mark_queued(&ids, now_ms()).await?;
        total += items.len();
        if items.len() < batch {
            return Ok(total);
        }
    }
}

/// The sweep as start-up (and resync after a queue outage) runs it: every waiting letter not
/// known to be queued is re-queued, and every waiting letter at all when the queue lost what it
/// held ([`Queue::take_reset`]).
pub async fn recover(
    store: &dyn Store,
    queue: &dyn Queue,
    config: &OutboxConfig,
) -> Result<usize, SweepError> {
    if queue.take_reset() {
        tracing::warn!("the queue holds none of its queues; every waiting letter is queued again");
        store.forget_all_marks().await?;
    }
    let now = now_ms();
    sweep(store, queue, now, stale_cutoff(now, config), config.batch).await
}

fn stale_cutoff(now: i64, config: &OutboxConfig) -> i64 {
    now.saturating_sub(i64::try_from(config.stale_after.as_millis()).unwrap_or(i64::MAX))
}

/// Drops the markers of letters no longer waiting, a batch at a time.
async fn forget_finished(store: &dyn Store, batch: usize) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.forget_finished_marks(batch).await?;
        total += n;
        if n < batch as u64 {
            return Ok(total);
        }
    }
}

/// Starts the marker writer and the periodic sweep.
pub fn spawn(
    marked: Arc<Marked>,
    store: Arc<dyn Store>,
    config: OutboxConfig,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    tracker.spawn(marked.clone().run(cancel.clone()));
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(config.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once; start-up has just swept.
        tick.tick().await;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if marked.inner.take_reset() {
                tracing::warn!("the queue lost its queues while running; every waiting letter is queued again");
                if let Err(e) = store.forget_all_marks().await {
                    tracing::warn!(error = %crate::error_report::chain(&e), "could not drop the publish markers");
                }
            }
            let now = now_ms();
            let grace = i64::try_from(config.grace.as_millis()).unwrap_or(i64::MAX);
            let swept = sweep(
                &*store,
                &*marked.inner,
                now.saturating_sub(grace),
                stale_cutoff(now, &config),
                config.batch,
            )
            .await;
            match swept {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    letters = n,
                    "the sweep found waiting letters the queue may not hold, and queued them"
                ),
                Err(e) => {
                    tracing::warn!(error = %crate::error_report::chain(&e), "outbox sweep failed; trying again at the next");
                }
            }
            if let Err(e) = forget_finished(&*store, config.batch).await {
                tracing::warn!(error = %crate::error_report::chain(&e), "could not drop publish markers of delivered letters");
            }
        }
    });
}
