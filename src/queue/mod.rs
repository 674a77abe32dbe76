//! The delivery queue: which accepted letters still have to go to a mailbox or to print.
//!
//! Messages are letter references (id, route, priority, when due), never content. One small
//! trait, one file per backend, chosen once at start-up from a URL.

mod embedded;
mod fair;
mod rabbitmq;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{BrokerOptions, DatabaseOptions, QueueUrl};

use crate::domain::{Cvr, LetterId, Priority, Route};

pub use embedded::EmbeddedQueue;
pub use fair::FairClock;

pub use rabbitmq::RabbitQueue;

/// Why a queue operation failed. Only `Unavailable` is worth retrying as is. The message is
/// short and names no host (it may reach a client's error text); the cause is `source()`.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable")]
    Unavailable(#[source] QueueCause),
    #[error("queued data is damaged: {0}")]
    Corrupt(String),
    #[error("queue URL: {0}")]
    InvalidUrl(String),
}

/// What lies behind an unavailable queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueCause {
    #[error("embedded queue database")]
    Sqlite(#[source] sqlx::Error),
    #[error("opening the embedded queue")]
    Open(#[source] crate::db::sqlite::OpenError),
    /// A broker call failed; `what` says which (connecting, publishing, consuming, ...).
    #[error("RabbitMQ {what}")]
    Broker {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("RabbitMQ {what}: no answer within {limit:?}")]
    Timeout { what: String, limit: Duration },
    /// The broker answered, but not as a stored message needs (unroutable, negative confirm,
    /// acknowledgements lost with the connection).
    #[error("RabbitMQ {0}")]
    Refused(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Unavailable(QueueCause::Sqlite(e))
    }
}

/// One letter waiting for delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub letter_id: LetterId,
    /// Whose letter: delivery capacity is shared fairly between senders.
    pub sender: Cvr,
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

/// A sender's share of delivery capacity, from the sender registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderShare {
    pub sender: Cvr,
    /// Relative share while several senders have letters waiting (1 = the default).
    pub weight: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub mailbox: u64,
    pub print: u64,
    pub dead: u64,
}

/// What every backend guarantees. Where RabbitMQ differs from the embedded queue the method
/// says so; delivery copes with both (it skips letters the store already has delivered).
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Records deliveries. Durable on return. Embedded: idempotent per letter id, a letter
    /// already queued (or dead-lettered) is left as it is. RabbitMQ: not idempotent, the same
    /// letter enqueued twice is two messages (and a duplicate receipt re-enqueues).
    async fn enqueue(&self, items: &[Delivery]) -> Result<(), QueueError>;

    /// Hands out up to `max` due deliveries of `route`, most urgent first and, within a
    /// priority, shared between senders by weight; each leased for
    /// `lease`: a delivery neither acknowledged nor retried within it is handed out again.
    /// Returns at once, or after a short wait for the first delivery, with what is there.
    /// RabbitMQ: most urgent first among what this gateway's consumers have received (one
    /// queue per priority); a gateway that dies gives its leases back when its connection
    /// closes.
    async fn lease(
        &self,
        route: Route,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Leased>, QueueError>;

    /// Removes delivered letters from the queue. Ids this handle did not lease (or whose lease
    /// ran out) are ignored by RabbitMQ.
    async fn ack(&self, ids: &[LetterId]) -> Result<(), QueueError>;

    /// Puts a leased delivery back, due again at `not_before_ms`, counting one more attempt.
    async fn retry(&self, id: LetterId, not_before_ms: i64, error: &str) -> Result<(), QueueError>;

    /// Moves a leased delivery whose retries are spent to the dead letters.
    async fn dead_letter(&self, id: LetterId, error: &str) -> Result<(), QueueError>;

    async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError>;

    /// Puts a dead letter back in the queue for a fresh round of attempts.
    async fn revive(&self, id: LetterId) -> Result<bool, QueueError>;

    /// Drops a dead letter for good.
    async fn purge(&self, id: LetterId) -> Result<bool, QueueError>;

    /// Takes many letters off the dead letters at once (an operator's bulk job), without
    /// queueing them again; returns those that were there. Idempotent. The default takes
    /// them one at a time; a backend that must read its whole dead queue for each does it
    /// once for all.
    async fn take_dead_letters(&self, ids: &[LetterId]) -> Result<Vec<LetterId>, QueueError> {
        let mut taken = Vec::new();
        for id in ids {
            if self.purge(*id).await? {
                taken.push(*id);
            }
        }
        Ok(taken)
    }

    /// Embedded: every queued delivery, leased or not yet due included. RabbitMQ: messages
    /// ready in the work queues (not those out with consumers or waiting in delay queues).
    async fn depth(&self) -> Result<QueueDepth, QueueError>;

    /// Tells the queue every registered sender and its weight: called at start and whenever
    /// the sender registry changes. Senders not listed have weight 1.
    async fn set_senders(&self, shares: &[SenderShare]) -> Result<(), QueueError>;

    /// Periodic upkeep, called by the serving gateway every refresh interval. RabbitMQ: learns
    /// the lanes other gateways granted and removes lanes idle for `broker.lane_idle`. The
    /// embedded queue has nothing to do.
    async fn tidy(&self) -> Result<(), QueueError> {
        Ok(())
    }

    /// True once after the queue found itself empty of everything it held before (RabbitMQ: a
    /// connect found none of the prefix's queues, so a broker that lost them, or a new
    /// prefix): every waiting letter must be queued again, publish markers or not. The
    /// embedded queue is idempotent and re-queued from the store as it is.
    fn take_reset(&self) -> bool {
        false
    }

    /// Waits until work may be available or `max_wait` has passed.
    async fn wait_for_work(&self, max_wait: Duration);
}

/// Opens the queue a URL names: `embedded://PATH` (or empty for the data directory's own), or
/// RabbitMQ at `amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME]` (see [`RabbitQueue`]).
/// `owner` is true for the serving gateway (it may clear leases a crash left behind) and false
/// for admin commands running beside it.
pub async fn open(url: &QueueUrl, owner: bool) -> Result<Arc<dyn Queue>, QueueError> {
    open_with(
        url,
        owner,
        &DatabaseOptions::default(),
        BrokerOptions::default(),
    )
    .await
}

/// [`open`] with the configured connection and broker deadlines.
pub async fn open_with(
    url: &QueueUrl,
    owner: bool,
    db: &DatabaseOptions,
    broker: BrokerOptions,
) -> Result<Arc<dyn Queue>, QueueError> {
    match url {
        QueueUrl::Embedded(path) => Ok(Arc::new(EmbeddedQueue::open_with(path, owner, db).await?)),
        QueueUrl::Rabbit(u) => Ok(Arc::new(RabbitQueue::open_with(u, broker).await?)),
    }
}
