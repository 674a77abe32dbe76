//! One WatchEvents stream: a task that reads the sender's events from the store a page at a
//! time and hands them to the client through a bounded channel.
//!
//! Back-pressure is the channel: when the client reads slowly the channel fills, the task waits
//! in `send` and reads no further page, so a stream holds at most one page plus the channel
//! (both `events.page_events`) whatever the backlog. The store is the buffer, not memory. A
//! stream that falls behind the retention sees OUT_OF_RANGE when it next reads, as a new one
//! would.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;

use crate::domain::Cvr;
use crate::store::{EventPage, EventQuery, Store, StoredEvent, signal};
use crate::telemetry;

use super::{FollowConfig, FollowError, kept_from};

/// After being woken, a follow stream waits this long before reading, so that the many small
/// commits of a busy sender become one read per stream instead of one per commit.
const COALESCE: Duration = Duration::from_millis(50);

/// How many streams each sender has open, against the limit.
#[derive(Clone)]
pub struct StreamLimits {
    limit: usize,
    open: Arc<Mutex<HashMap<Cvr, usize>>>,
}

/// One open stream's place under its sender's limit; freed on drop, however the stream ends.
pub struct StreamSlot {
    sender: Cvr,
    open: Arc<Mutex<HashMap<Cvr, usize>>>,
}

impl StreamLimits {
    pub fn new(limit: usize) -> Self {
        StreamLimits {
            limit,
            open: Arc::default(),
        }
    }

    pub fn open(&self, sender: Cvr) -> Result<StreamSlot, FollowError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(sender).or_insert(0);
        if *n >= self.limit {
            return Err(FollowError::TooManyStreams { limit: self.limit });
        }
        *n += 1;
        telemetry::watch_stream_opened();
        Ok(StreamSlot {
            sender,
            open: self.open.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        telemetry::watch_stream_closed();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.sender) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.sender);
            }
        }
    }
}

/// Where a stream starts and what it wants.
#[derive(Clone, Copy, Debug)]
pub struct Position {
    pub sender: Cvr,
    pub after: u64,
    pub terminal_only: bool,
    pub follow: bool,
}

/// The events of one stream, in order; ends at the present without `follow`, on the first
/// error, or when the client goes away (the task notices the closed channel).
pub struct EventStream {
    events: mpsc::Receiver<Result<StoredEvent, FollowError>>,
}

impl Stream for EventStream {
    type Item = Result<StoredEvent, FollowError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

/// Checks the cursor with a first read (so an expired cursor is the call's error, not a
/// stream that ends at once), then starts the stream's task.
pub(super) async fn open(
    store: Arc<dyn Store>,
    config: &FollowConfig,
    slot: StreamSlot,
    at: Position,
) -> Result<EventStream, FollowError> {
    // Subscribed before the first read: an event committed between that read and the
    // subscription would otherwise wait for the next poll.
    let woken = signal::subscribe(at.sender);
    let first = read(&*store, config, at).await?;
    let (tx, rx) = mpsc::channel(config.page_events as usize);
    let config = config.clone();
    tokio::spawn(async move {
        let _slot = slot;
        run(store, config, at, first, woken, tx).await;
    });
    Ok(EventStream { events: rx })
}

async fn read(
    store: &dyn Store,
    config: &FollowConfig,
    at: Position,
) -> Result<Vec<StoredEvent>, FollowError> {
    let page = store
        .events(EventQuery {
            sender: at.sender,
            after: at.after,
            terminal_only: at.terminal_only,
            limit: config.page_events,
        })
        .await?;
    match page {
        EventPage::Events(events) => Ok(events),
        EventPage::Expired { .. } => Err(FollowError::Expired {
            kept_from_ms: kept_from(config.retention),
            retention: config.retention,
        }),
    }
}

async fn run(
    store: Arc<dyn Store>,
    config: FollowConfig,
    mut at: Position,
    mut page: Vec<StoredEvent>,
    mut woken: tokio::sync::watch::Receiver<u64>,
    tx: mpsc::Sender<Result<StoredEvent, FollowError>>,
) {
    loop {
        let full = page.len() >= config.page_events as usize;
        for event in page.drain(..) {
            at.after = event.seq;
            // Waits while the client is behind: this is the pacing.
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        if !full {
            // At the present.
            if !at.follow {
                return;
            }
            // Marked seen before waiting: a commit from here on wakes the stream.
            woken.borrow_and_update();
            tokio::select! {
                () = tx.closed() => return,
                changed = woken.changed() => {
                    if changed.is_err() {
                        // The signal is gone (never, in practice): fall back to polling.
                        tokio::time::sleep(config.poll_interval).await;
                    } else {
                        tokio::time::sleep(COALESCE).await;
                    }
                }
                () = tokio::time::sleep(config.poll_interval) => {}
            }
        }
        page = match read(&*store, &config, at).await {
            Ok(p) => p,
            Err(e) => {
                if matches!(e, FollowError::Store(_)) {
                    tracing::warn!(error = %crate::error_report::chain(&e), "an event stream ended: reading events failed");
                }
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
    }
}
