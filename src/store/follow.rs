//! What the store keeps for senders that follow their letters: the per-sender event log,
//! batch counts, recall and listing. The types here and the [`FollowStore`] contract; the SQL
//! is in `follow_sql`, once for both backends.
//!
//! Event numbers (`seq`) are per sender, start at 1, and are allocated under the lock of the
//! sender's `event_seq` row, taken in the transaction that writes the state change: a sender's
//! events therefore commit in number order on every backend and with any number of gateway
//! instances, which is what makes "resume after the last cursor" gap-free.

use async_trait::async_trait;

use crate::domain::{BatchId, Cvr, LetterId, LetterState, MessageUuid, RejectReason, Route};

use super::{LetterKey, LetterRecord, StoreError};

/// One state change of one letter, as a sender reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: u64,
    pub letter_id: LetterId,
    pub message_uuid: MessageUuid,
    pub batch_id: Option<BatchId>,
    pub sender_reference: String,
    pub state: LetterState,
    pub route: Route,
    pub at_ms: i64,
    pub detail: String,
}

/// A page of a sender's events after a cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventPage {
    /// The events after the cursor, in order (empty at the present).
    Events(Vec<StoredEvent>),
    /// Events after the cursor were pruned by retention: the oldest event still kept is
    /// `pruned_through + 1`.
    Expired { pruned_through: u64 },
}

/// Which events a reader wants.
#[derive(Clone, Copy, Debug)]
pub struct EventQuery {
    pub sender: Cvr,
    /// Events with a number above this (0: from the oldest kept).
    pub after: u64,
    /// Only events into a terminal state.
    pub terminal_only: bool,
    pub limit: u32,
}

/// One batch of one sender, counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Letters stored for the batch (accepted ones).
    pub letters: u64,
    pub by_state: Vec<(LetterState, u64)>,
    pub by_route: Vec<(Route, u64)>,
    /// Refused letters of the batch by reason (each message uuid once).
    pub rejected: Vec<(RejectReason, u64)>,
    pub first_accepted_ms: Option<i64>,
    pub last_accepted_ms: Option<i64>,
    pub last_delivered_ms: Option<i64>,
}

impl BatchCounts {
    /// Whether the gateway has seen any letter of this batch, accepted or refused.
    pub fn is_empty(&self) -> bool {
        self.letters == 0 && self.rejected.is_empty()
    }
}

/// A refused letter that named a batch.
#[derive(Clone, Debug)]
pub struct BatchRejection {
    pub sender: Cvr,
    pub batch_id: BatchId,
    pub message_uuid: String,
    pub reason: RejectReason,
    pub at_ms: i64,
}

/// Filters and position of one page of a sender's letters, newest accepted first.
#[derive(Clone, Debug)]
pub struct ListQuery {
    pub sender: Cvr,
    pub batch_id: Option<BatchId>,
    pub state: Option<LetterState>,
    /// Accepted at or after.
    pub accepted_from_ms: Option<i64>,
    /// Accepted before.
    pub accepted_to_ms: Option<i64>,
    /// Strictly older than this (accepted_at, letter_id) position: where the last page ended.
    pub before: Option<(i64, LetterId)>,
    pub limit: u32,
}

#[async_trait]
pub trait FollowStore: Send + Sync {
    /// A page of the sender's events after `query.after`, in number order. Never returns an
    /// event of another sender; never skips an event that a later call could return.
    async fn events(&self, query: EventQuery) -> Result<EventPage, StoreError>;

    /// Deletes events written before `before_ms` and records, per sender, up to which number
    /// they are gone (so an older cursor is known to be expired). Returns the events deleted.
    async fn prune_events(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Counts of one of the sender's batches (empty when the gateway never saw the batch).
    async fn batch_counts(&self, sender: Cvr, batch: &BatchId) -> Result<BatchCounts, StoreError>;

    /// Recalls one of the sender's letters: when it is still waiting (ACCEPTED or SCHEDULED) it
    /// becomes CANCELLED, its data key is destroyed (the ciphertext can never be opened again)
    /// and a CANCELLED event is written, all in one transaction, conditional on the state, so a
    /// delivery committing at the same moment wins or loses as a whole. Returns the record as it
    /// is afterwards (`None`: no such letter of this sender). Durable on return.
    async fn cancel_letter(
        &self,
        sender: Cvr,
        key: LetterKey,
        at_ms: i64,
    ) -> Result<Option<LetterRecord>, StoreError>;

    /// [`FollowStore::cancel_letter`] for every waiting letter of the batch; returns how many
    /// were cancelled. Durable on return.
    async fn cancel_batch(
        &self,
        sender: Cvr,
        batch: &BatchId,
        at_ms: i64,
    ) -> Result<u64, StoreError>;

    /// One page of the sender's letters, newest accepted first.
    async fn list_letters(&self, query: &ListQuery) -> Result<Vec<LetterRecord>, StoreError>;

    /// Records refused letters that named a batch (idempotent per message uuid).
    async fn record_rejections(&self, rejections: &[BatchRejection]) -> Result<(), StoreError>;
}

/// Wakes the gateway's own `follow` streams when events of a sender have committed here.
/// Streams also poll (`events.poll_interval`) for events another instance wrote; this only
/// saves them the wait for what this process wrote.
pub mod signal {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};

    use tokio::sync::watch;

    use crate::domain::Cvr;

    static SENDERS: LazyLock<Mutex<HashMap<Cvr, watch::Sender<u64>>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));

    /// A receiver that changes whenever events of `sender` commit in this process.
    pub fn subscribe(sender: Cvr) -> watch::Receiver<u64> {
        let mut map = SENDERS.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(sender)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Called by a backend after a transaction that wrote `n` events of `sender` committed.
    pub fn committed(sender: Cvr, n: usize) {
        crate::telemetry::events_written(n);
        let mut map = SENDERS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&sender) {
            if tx.receiver_count() == 0 {
                // Nobody follows this sender any more: forget it, so the map stays as small as
                // the set of senders being followed.
                map.remove(&sender);
            } else {
                tx.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }
}
