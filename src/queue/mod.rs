//! The delivery queue: which accepted letters still have to go to a mailbox or to print.
//!
//! Messages are letter references (id, route, priority, when due), never content. One small
//! trait, one file per backend, chosen once at start-up from a URL.

mod embedded;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{LetterId, Priority};
use crate::route::Route;

pub use embedded::EmbeddedQueue;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    #[error("queued data is damaged: {0}")]
    Corrupt(String),
    #[error("queue URL {0:?} is not supported (use embedded://PATH)")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Unavailable(e.to_string())
    }
}

/// One letter waiting for delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub letter_id: LetterId,
    pub route: Route,
    pub priority: Priority,
    /// Not to be delivered before this time (unix ms); 0 for at once.
    pub not_before_ms: i64,
    /// When the letter was accepted: the retry deadline counts from here.
    pub enqueued_at_ms: i64,
}

/// A delivery handed to a worker, with the attempts made so far.
#[derive(Clone, Debug)]
pub struct Leased {
    pub delivery: Delivery,
    pub attempts: u32,
}

/// A delivery whose retries are spent, kept for operators.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub delivery: Delivery,
    pub attempts: u32,
    pub failed_at_ms: i64,
    pub last_error: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub mailbox: u64,
    pub print: u64,
    pub dead: u64,
}

#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Records deliveries. Durable on return. Idempotent per letter id: a letter already queued
    /// (or dead-lettered) is left as it is.
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError>;

    /// Hands out up to `max` due deliveries of `route`, most urgent first, each leased for
    /// `lease`: a delivery neither acknowledged nor retried within it is handed out again.
    async fn lease(
        &self,
        route: Route,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError>;

    /// Removes delivered letters from the queue.
    async fn ack(&self, ids: &[LetterId]) -> Result<(), QueueError>;

    /// Puts a delivery back, due again at `not_before_ms`, counting one more attempt.
    async fn retry(&self, id: LetterId, not_before_ms: i64, error: &str) -> Result<(), QueueError>;

    /// Moves a delivery whose retries are spent to the dead letters.
    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError>;

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError>;

    /// Puts a dead letter back in the queue for a fresh round of attempts.
    async fn revive(&self, id: LetterId) -> Result<bool, QueueError>;

    /// Drops a dead letter for good.
    async fn purge(&self, id: LetterId) -> Result<bool, QueueError>;

    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Waits until work may be available or `max_wait` has passed.
    async fn wait_for_work(&self, max_wait: Duration);
}

/// Opens the queue a URL names: `embedded://PATH` (or empty for the data directory's own).
/// `owner` is true for the serving gateway (it may clear leases a crash left behind) and false
/// for admin commands running beside it.
pub async fn open(url: &str, data_dir: &Path, owner: bool) -> Result<Arc<dyn Queue>, QueueError> {
    if let Some(path) = url.strip_prefix("embedded://") {
        let path = if path.is_empty() {
            data_dir.join("queue.db")
        } else {
            path.into()
        };
        Ok(Arc::new(EmbeddedQueue::open(&path, owner).await?))
    } else {
        Err(QueueError::UnsupportedUrl(url.to_string()))
    }
}
