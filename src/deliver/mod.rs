//! Delivery: workers that take queued letters to the recipient's mailbox or to the print spool.
//!
//! A worker leases a batch from the queue, loads the sealed letters, opens each (which also
//! proves it was not altered), delivers, records the delivery in the store and only then
//! acknowledges the queue. The store's state change is conditional, so a letter handed out twice
//! (a lease that ran out, a queue entry written twice after a crash) is delivered once. Failures
//! go back to the queue with exponential back-off until the letter's maximum age, then to the
//! dead letters, where operators can see, retry or purge them.
//!
//! Both routes hand over MeMo: the print spool keeps each letter's MeMo message beside its
//! documents, and the mailbox outbox keeps the MeMo message of every letter handed to a
//! mailbox, sealed. A letter that came as MeMo goes on byte for byte as it came; one sent as
//! fields gets a message in `memo.produce_version`.

pub mod mailbox;
pub mod print;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::directory::Directory;
use crate::domain::{LetterId, LetterState};
use crate::queue::{Leased, Queue};
use crate::route::Route;
use crate::seal::{Binding, body, open};
use crate::store::{Store, StoredLetter};
use crate::telemetry;

pub use mailbox::{MailboxOutbox, OutboxEntry, OutboxError};
pub use print::{PrintLetter, PrintSpool};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// False: this instance only accepts letters, and their deliveries wait in the queue for an
    /// instance that delivers (separate intake and delivery instances, or delivery held while
    /// the print side is under maintenance).
    pub enabled: bool,
    /// Letters a worker takes from the queue at once (and the largest print batch).
    pub batch: usize,
    /// How long a taken letter stays with its worker before it is handed out again.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// First retry delay; doubled each attempt.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// After this long since acceptance a failing letter ends FAILED and is dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long an idle worker waits before looking at the queue again.
    #[serde(with = "humantime_serde")]
    pub idle_poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            enabled: true,
            batch: 256,
            lease: Duration::from_secs(120),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(600),
            max_age: Duration::from_secs(72 * 3600),
            idle_poll: Duration::from_millis(250),
        }
    }
}

/// A stored letter opened for delivery: the letter and the MeMo message it came as, if any.
type Opened = (StoredLetter, (crate::domain::Letter, Option<Vec<u8>>));

/// What delivery needs, shared by its workers.
pub struct Deliverer {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub directory: Arc<Directory>,
    pub spool: PrintSpool,
    /// Where mailbox hand-offs keep their MeMo messages.
    pub mailbox: MailboxOutbox,
    pub config: DeliveryConfig,
    /// The MeMo version written for letters sent as fields.
    pub memo: crate::memo::MemoConfig,
}

#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("{0}")]
    Spool(#[from] print::SpoolError),
    #[error("{0}")]
    Outbox(#[from] OutboxError),
}

impl Deliverer {
    /// Finishes what a crash left half-done in the print spool. Run before the workers start.
    pub async fn recover_spool(&self) -> Result<(), String> {
        let unfinished = self.spool.unfinished().map_err(|e| e.to_string())?;
        for u in unfinished {
            let recorded = self
                .store
                .print_batch_letters(&u.batch)
                .await
                .map_err(|e| e.to_string())?;
            if recorded.is_empty() {
                self.spool
                    .discard_unfinished(&u)
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    batch = u.batch,
                    "discarded an unrecorded print batch; its letters are still queued"
                );
            } else {
                let keep = recorded.into_iter().collect();
                self.spool
                    .publish_unfinished(&u, &keep)
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    batch = u.batch,
                    "published a print batch a crash left unfinished"
                );
            }
        }
        for u in self.mailbox.unfinished().map_err(|e| e.to_string())? {
            let recorded = self
                .store
                .print_batch_letters(&u.batch)
                .await
                .map_err(|e| e.to_string())?;
            let keep = recorded.into_iter().collect();
            self.mailbox
                .finish_unfinished(&u, &keep)
                .map_err(|e| e.to_string())?;
            tracing::info!(
                batch = u.batch,
                "finished a mailbox batch a crash left unpublished"
            );
        }
        Ok(())
    }

    /// Starts one worker per route.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        for route in [Route::Mailbox, Route::Print] {
            let me = self.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move { me.run(route, cancel).await });
        }
    }

    async fn run(self: Arc<Self>, route: Route, cancel: CancellationToken) {
        while !cancel.is_cancelled() {
            let leased = match self
                .queue
                .lease(route, self.config.batch, self.config.lease)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, route = telemetry::route_label(route), "queue unavailable; delivery paused");
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if leased.is_empty() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = self.queue.wait_for_work(self.config.idle_poll) => continue,
                }
            }
            if let Err(e) = self.deliver_batch(route, &leased).await {
                tracing::warn!(error = %e, route = telemetry::route_label(route), letters = leased.len(), "delivery attempt failed");
                for l in &leased {
                    self.fail_one(l, &e.to_string()).await;
                }
            }
        }
    }

    async fn deliver_batch(&self, route: Route, leased: &[Leased]) -> Result<(), DeliveryError> {
        let ids: Vec<LetterId> = leased.iter().map(|l| l.delivery.letter_id).collect();
        let stored = self.store.load_for_delivery(&ids).await?;
        // Letters already delivered or failed (a duplicate queue entry) need only an ack.
        let mut done: Vec<LetterId> = ids
            .iter()
            .filter(|id| !stored.iter().any(|s| s.record.letter_id == **id))
            .copied()
            .collect();
        let mut waiting = Vec::new();
        for s in stored {
            match s.record.state {
                LetterState::Accepted | LetterState::Scheduled => waiting.push(s),
                _ => done.push(s.record.letter_id),
            }
        }
        let keyring = self.directory.keyring();
        let mut ready = Vec::with_capacity(waiting.len());
        for s in waiting {
            let id = s.record.letter_id.to_string();
            let binding = Binding {
                letter_id: &id,
                sender: s.record.sender,
                recipient: &s.recipient_tag,
            };
            let opened = open(&keyring, &binding, &s.sealed)
                .map_err(|e| e.to_string())
                .and_then(|plain| body::decode_with_memo(&plain).map_err(|e| e.to_string()));
            match opened {
                Ok(letter) => ready.push((s, letter)),
                Err(problem) => {
                    if let Some(l) = leased
                        .iter()
                        .find(|l| l.delivery.letter_id == s.record.letter_id)
                    {
                        self.fail_one(
                            l,
                            &format!("the sealed letter could not be opened: {problem}"),
                        )
                        .await;
                    }
                }
            }
        }
        let now = now_ms();
        let ready_ids: Vec<LetterId> = ready.iter().map(|(s, _)| s.record.letter_id).collect();
        let accepted_at: HashMap<LetterId, i64> = ready
            .iter()
            .map(|(s, _)| (s.record.letter_id, s.record.accepted_at_ms))
            .collect();
        match route {
            Route::Mailbox => {
                if !ready.is_empty() {
                    // The MeMo messages are in the outbox (synced) before the store says
                    // delivered; the batch id in the store lets recovery finish the outbox.
                    let batch = format!("{}", LetterId::new());
                    // Writing MeMo, sealing and the fsync are blocking work: off the runtime.
                    let outbox = self.mailbox.clone();
                    let directory = self.directory.clone();
                    let memo_config = self.memo.clone();
                    let b = batch.clone();
                    tokio::task::spawn_blocking(move || {
                        let entries = mailbox_entries(&directory, &memo_config, ready)?;
                        outbox.write_batch(&b, &entries)
                    })
                    .await
                    .map_err(|e| OutboxError::Task(e.to_string()))??;
                    let changed = self
                        .store
                        .mark_delivered(&ready_ids, LetterState::Delivered, now, Some(&batch))
                        .await?;
                    self.mailbox.publish(
                        &batch,
                        &changed.iter().copied().collect(),
                        ready_ids.len(),
                    )?;
                    record_delivered(route, &changed, &accepted_at, now);
                }
            }
            Route::Print => {
                if !ready.is_empty() {
                    let batch = format!("{}", LetterId::new());
                    let letters: Vec<PrintLetter> = ready
                        .into_iter()
                        .map(|(s, (letter, memo))| {
                            print_letter(&self.directory, s, letter, memo, &self.memo)
                        })
                        .collect();
                    let spool = self.spool.clone();
                    let b = batch.clone();
                    tokio::task::spawn_blocking(move || spool.write_batch(&b, &letters))
                        .await
                        .map_err(print::SpoolError::from_join)??;
                    let changed = self
                        .store
                        .mark_delivered(&ready_ids, LetterState::PrintSpooled, now, Some(&batch))
                        .await?;
                    // Letters another gateway delivered meanwhile are pruned from this batch.
                    self.spool
                        .publish(&batch, &changed.iter().copied().collect())?;
                    record_delivered(route, &changed, &accepted_at, now);
                }
            }
        }
        done.extend(ready_ids);
        self.queue.ack(&done).await?;
        Ok(())
    }

    /// Schedules a retry with back-off, or ends the letter FAILED once it is too old.
    async fn fail_one(&self, leased: &Leased, problem: &str) {
        let d = leased.delivery;
        let now = now_ms();
        let age = Duration::from_millis((now - d.enqueued_at_ms).max(0) as u64);
        let result = if age >= self.config.max_age {
            telemetry::delivery_failed(d.route);
            let detail = format!(
                "delivery failed after {} attempts over {}: {problem}",
                leased.attempts + 1,
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            );
            match self.store.mark_failed(d.letter_id, &detail).await {
                Ok(()) => self
                    .queue
                    .dead_letter(d.letter_id, problem)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            telemetry::delivery_retry(d.route);
            let delay = backoff(&self.config, leased.attempts);
            let _ = self.store.record_attempt(d.letter_id, problem).await;
            self.queue
                .retry(d.letter_id, now + delay.as_millis() as i64, problem)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = result {
            // The lease runs out and the letter is handed out again: nothing is lost.
            tracing::warn!(error = %e, letter = %d.letter_id, "could not record a failed delivery");
        }
    }
}

/// Counts the letters that changed state now (not those a duplicate queue entry handed out
/// again) and how long each waited since it was accepted.
fn record_delivered(
    route: Route,
    changed: &[LetterId],
    accepted_at: &HashMap<LetterId, i64>,
    now: i64,
) {
    telemetry::delivered(route, changed.len());
    for id in changed {
        if let Some(at) = accepted_at.get(id) {
            let waited = Duration::from_millis((now - at).max(0) as u64);
            telemetry::delivery_lag(route, waited);
        }
    }
}

/// Exponential back-off: initial × 2^attempts, capped.
pub fn backoff(config: &DeliveryConfig, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
    config
        .retry_initial
        .saturating_mul(factor)
        .min(config.retry_max)
}

/// The sealed MeMo message of each letter for its mailbox.
fn mailbox_entries(
    directory: &Directory,
    memo_config: &crate::memo::MemoConfig,
    ready: Vec<Opened>,
) -> Result<Vec<OutboxEntry>, OutboxError> {
    let keyring = directory.keyring();
    ready
        .into_iter()
        .map(|(s, (letter, memo))| {
            let memo = memo.unwrap_or_else(|| produce_memo(directory, &s, &letter, memo_config));
            OutboxEntry::seal(
                &keyring,
                s.record.letter_id,
                s.record.sender,
                &s.recipient_tag,
                memo,
            )
        })
        .collect()
}

fn sender_of(directory: &Directory, cvr: crate::domain::Cvr) -> crate::registry::SenderInfo {
    directory
        .sender(cvr)
        .unwrap_or(crate::registry::SenderInfo {
            cvr,
            name: String::new(),
            kind: crate::domain::SenderKind::Public,
            suspended: false,
            limits: Default::default(),
        })
}

/// The MeMo message for a letter sent as fields, in the configured version. `createdDateTime`
/// is the acceptance time, so the same letter always gives the same message.
fn produce_memo(
    directory: &Directory,
    s: &StoredLetter,
    letter: &crate::domain::Letter,
    memo_config: &crate::memo::MemoConfig,
) -> Vec<u8> {
    let sender = sender_of(directory, s.record.sender);
    let created = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(s.record.accepted_at_ms) * 1_000_000,
    )
    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    crate::memo::write(&crate::memo::MemoMessage::from_letter(
        letter,
        &sender,
        created,
        memo_config.produce_version,
    ))
}

/// A letter for the print spool, with its MeMo form: the message as the sender submitted it,
/// or one made from the letter.
fn print_letter(
    directory: &Directory,
    s: StoredLetter,
    letter: crate::domain::Letter,
    memo: Option<Vec<u8>>,
    memo_config: &crate::memo::MemoConfig,
) -> PrintLetter {
    let memo = memo.unwrap_or_else(|| produce_memo(directory, &s, &letter, memo_config));
    PrintLetter {
        letter_id: s.record.letter_id,
        sender: s.record.sender,
        sender_name: sender_of(directory, s.record.sender).name,
        letter,
        memo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let c = DeliveryConfig {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            ..DeliveryConfig::default()
        };
        assert_eq!(backoff(&c, 0), Duration::from_secs(1));
        assert_eq!(backoff(&c, 3), Duration::from_secs(8));
        assert_eq!(backoff(&c, 10), Duration::from_secs(60));
        assert_eq!(backoff(&c, 1000), Duration::from_secs(60));
    }
}
