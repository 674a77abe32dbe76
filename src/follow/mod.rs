//! Following letters: the per-sender event stream, batch progress, recall and listing, between
//! `ingest` (which converts to and from the wire) and the store (which keeps events in the
//! transactions of the state changes they report). Knows nothing of gRPC.

pub mod cursor;
mod rejections;
mod retention;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::clock::now_ms;
use crate::domain::{BatchId, BatchIdError, Cvr, LetterState};
use crate::store::{BatchCounts, LetterKey, LetterRecord, ListQuery, Store, StoreError};

pub use cursor::TokenError;
pub use rejections::RejectionLog;
pub use retention::spawn_pruner;
pub use watch::{EventStream, StreamLimits};

/// `[events]` in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowConfig {
    /// How long events are kept; a cursor older than this is OUT_OF_RANGE.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Open WatchEvents streams one sender may have at once.
    pub max_streams_per_sender: usize,
    /// Events read from the store per query, and the most a stream holds for a slow reader:
    /// a stream's memory is bounded by this, never by how far behind its reader is.
    pub page_events: u32,
    /// How often a `follow` stream looks for events another gateway instance wrote (events
    /// this instance writes wake it at once).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            max_streams_per_sender: 16,
            page_events: 256,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl FollowConfig {
    /// Every problem with the values, for `Config::validate`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        // Seconds are allowed so a trial or a test can see a cursor expire; a production
        // retention is days (integrators resume after outages of that length).
        if self.retention < Duration::from_secs(1) {
            p.push("events.retention must be at least 1 second".to_string());
        }
        if self.max_streams_per_sender == 0 {
            p.push("events.max_streams_per_sender must be at least 1".to_string());
        }
        if !(1..=10_000).contains(&self.page_events) {
            p.push("events.page_events must be between 1 and 10000".to_string());
        }
        if self.poll_interval < Duration::from_millis(10) {
            p.push("events.poll_interval must be at least 10ms".to_string());
        }
        p
    }
}

/// Largest ListLetters page; a bigger page_size is cut to this.
pub const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 100;

/// Why a follow request is refused.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    BadBatchId(#[from] BatchIdError),
    /// The cursor's events were pruned: `kept_from_ms` is the oldest time still kept.
    #[error("events after this cursor are no longer kept")]
    Expired {
        kept_from_ms: i64,
        retention: Duration,
    },
    #[error("this sender already has {limit} open event streams")]
    TooManyStreams { limit: usize },
    #[error("no batch {0} from this sender")]
    UnknownBatch(BatchId),
    #[error("no such letter from this sender")]
    UnknownLetter,
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// A letter recall's answer: the letter as it is now, and whether this call cancelled it.
#[derive(Debug)]
pub struct Recall {
    pub record: LetterRecord,
    pub cancelled_now: bool,
}

/// A ListLetters request, parsed.
#[derive(Debug, Default)]
pub struct ListRequest {
    pub batch_id: String,
    pub state: Option<LetterState>,
    pub accepted_from_ms: i64,
    pub accepted_to_ms: i64,
    pub page_size: u32,
    pub page_token: String,
}

pub struct Follow {
    store: Arc<dyn Store>,
    config: FollowConfig,
    streams: StreamLimits,
}

impl Follow {
    pub fn new(store: Arc<dyn Store>, config: FollowConfig) -> Arc<Follow> {
        let streams = StreamLimits::new(config.max_streams_per_sender);
        Arc::new(Follow {
            store,
            config,
            streams,
        })
    }

    pub fn config(&self) -> &FollowConfig {
        &self.config
    }

    /// The sender's events after `after_cursor`; see [`watch`].
    pub async fn watch(
        &self,
        sender: Cvr,
        after_cursor: &str,
        terminal_only: bool,
        follow: bool,
    ) -> Result<EventStream, FollowError> {
        let after = cursor::decode_cursor(after_cursor)?;
        let slot = self.streams.open(sender)?;
        watch::open(
            self.store.clone(),
            &self.config,
            slot,
            watch::Position {
                sender,
                after,
                terminal_only,
                follow,
            },
        )
        .await
    }

    pub async fn batch(
        &self,
        sender: Cvr,
        batch: &str,
    ) -> Result<(BatchId, BatchCounts), FollowError> {
        let id: BatchId = batch.parse()?;
        let counts = self.store.batch_counts(sender, &id).await?;
        if counts.is_empty() {
            return Err(FollowError::UnknownBatch(id));
        }
        Ok((id, counts))
    }

    pub async fn cancel_letter(&self, sender: Cvr, key: LetterKey) -> Result<Recall, FollowError> {
        let before = self
            .store
            .letter(sender, key)
            .await?
            .ok_or(FollowError::UnknownLetter)?;
        let after = self
            .store
            .cancel_letter(sender, key, now_ms())
            .await?
            .ok_or(FollowError::UnknownLetter)?;
        let cancelled_now = !before.state.is_terminal() && after.state == LetterState::Cancelled;
        if cancelled_now {
            tracing::info!(letter = %after.letter_id, sender = %sender, "letter recalled by its sender");
        }
        Ok(Recall {
            record: after,
            cancelled_now,
        })
    }

    /// Recalls what is still waiting of a batch; the counts afterwards.
    pub async fn cancel_batch(
        &self,
        sender: Cvr,
        batch: &str,
    ) -> Result<(BatchId, BatchCounts, u64), FollowError> {
        let id: BatchId = batch.parse()?;
        let cancelled = self.store.cancel_batch(sender, &id, now_ms()).await?;
        tracing::info!(batch = %id, sender = %sender, cancelled, "batch recalled by its sender");
        let counts = self.store.batch_counts(sender, &id).await?;
        if counts.is_empty() {
            return Err(FollowError::UnknownBatch(id));
        }
        Ok((id, counts, cancelled))
    }

    /// One page of the sender's letters and the token of the next (`None` on the last).
    pub async fn list(
        &self,
        sender: Cvr,
        req: ListRequest,
    ) -> Result<(Vec<LetterRecord>, Option<String>), FollowError> {
        let batch_id = if req.batch_id.is_empty() {
            None
        } else {
            Some(req.batch_id.parse()?)
        };
        let limit = match req.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let query = ListQuery {
            sender,
            batch_id,
            state: req.state,
            accepted_from_ms: (req.accepted_from_ms > 0).then_some(req.accepted_from_ms),
            accepted_to_ms: (req.accepted_to_ms > 0).then_some(req.accepted_to_ms),
            before: cursor::decode_page_token(&req.page_token)?,
            // One more than the page: whether it exists says if there is a next page, without
            // an empty last page for the client to fetch.
            limit: limit + 1,
        };
        let mut letters = self.store.list_letters(&query).await?;
        let next = if letters.len() > limit as usize {
            letters.truncate(limit as usize);
            letters
                .last()
                .map(|l| cursor::encode_page_token(l.accepted_at_ms, l.letter_id))
        } else {
            None
        };
        Ok((letters, next))
    }
}

/// The oldest time whose events are still kept.
fn kept_from(retention: Duration) -> i64 {
    now_ms().saturating_sub(retention.as_millis() as i64)
}
