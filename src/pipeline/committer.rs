//! Group commit: many letters, one transaction, one fsync.
//!
//! Every stream hands its sealed letters to one committer task through a bounded channel. The
//! committer takes whatever has gathered (up to a batch limit), stores it in one transaction,
//! records the deliveries in the queue, and only then answers each letter. While one batch is
//! on disk the next one gathers, so the fsync cost is shared by every letter waiting for it; a
//! full channel makes the streams wait (back-pressure) instead of buffering without bound.
//!
//! Storing and queueing are two stages with a task each, joined by a channel that holds one
//! stored batch: batch N+1 is stored while batch N is queued, so the store's sync and the
//! queue's (a second database, or the broker's confirms) overlap instead of taking turns.
//! Batches are queued in the order they were stored, so urgent-first survives it, and a
//! stored batch has already given back its ciphertext, so what waits between the stages is
//! the letters' ids and their waiters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::LetterState;
use crate::queue::{Delivery, Queue, QueueError};
use crate::telemetry::{self, Stage};

use crate::store::{InsertOutcome, LetterRecord, NewLetter, Store, StoreError};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommitterConfig {
    /// Most letters in one transaction.
    pub max_batch_letters: usize,
    /// Most ciphertext bytes in one transaction.
    pub max_batch_bytes: bytesize::ByteSize,
    /// Letters waiting for the committer before submitters wait.
    pub queue_capacity: usize,
}

impl Default for CommitterConfig {
    fn default() -> Self {
        CommitterConfig {
            max_batch_letters: 1024,
            max_batch_bytes: bytesize::ByteSize::mib(64),
            queue_capacity: 4096,
        }
    }
}

/// The result of committing one letter.
#[derive(Debug)]
pub enum Committed {
    /// Stored and queued durably.
    Stored,
    /// The sender already had this message uuid; the stored record is returned unchanged.
    Existing(Box<LetterRecord>),
}

/// Why a letter could not be committed. One batch's failure is every letter's in it, so the
/// cause is shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("storing the batch failed")]
    Store(#[source] Arc<StoreError>),
    /// Stored, but the deliveries were not recorded: no accepted receipt may go out.
    #[error("queueing the stored batch failed")]
    Queue(#[source] Arc<QueueError>),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

type Reply = oneshot::Sender<Result<Committed, CommitError>>;

struct Job {
    letter: NewLetter,
    /// When the submitter handed the letter over: the store stage's latency counts from here,
    /// so the wait for the group commit is part of it.
    queued_at: Instant,
    reply: oneshot::Sender<Result<Committed, CommitError>>,
}

/// The handle submitters use. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
    /// URGENT letters skip the queue: each batch takes them first, so under a flood an urgent
    /// letter waits for at most the commit in progress, not for every letter queued before it.
    urgent: mpsc::Sender<Job>,
    /// Set when letters were stored but their queue entries may be missing; the caller's
    /// resync task re-queues from the store.
    pub needs_resync: Arc<AtomicBool>,
}

impl Committer {
    pub fn spawn(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        config: CommitterConfig,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Committer {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (urgent_tx, urgent_rx) = mpsc::channel(config.queue_capacity.max(1));
        let needs_resync = Arc::new(AtomicBool::new(false));
        // One stored batch waits while another is queued: enough to overlap the two stages,
        // and the store stage waits (back-pressure) when the queue falls behind.
        let (stored_tx, stored_rx) = mpsc::channel(1);
        tracker.spawn(run(
            store,
            config,
            Jobs {
                urgent: urgent_rx,
                normal: rx,
            },
            stored_tx,
            cancel,
        ));
        tracker.spawn(queue_stage(queue, stored_rx, needs_resync.clone()));
        Committer {
            jobs: tx,
            urgent: urgent_tx,
            needs_resync,
        }
    }

    /// Stores and queues one letter, waiting for the batch it joins to be durable.
    pub async fn commit(&self, letter: NewLetter) -> Result<Committed, CommitError> {
        let (reply, answer) = oneshot::channel();
        let jobs = if letter.priority == crate::domain::Priority::Urgent {
            &self.urgent
        } else {
            &self.jobs
        };
        jobs.send(Job {
            letter,
            queued_at: Instant::now(),
            reply,
        })
        .await
        .map_err(|_| CommitError::ShuttingDown)?;
        answer.await.map_err(|_| CommitError::ShuttingDown)?
    }
}

/// The store stage: gathers batches, stores each in one transaction and hands it to the queue
/// stage. Ends when cancelled with nothing left waiting; dropping `stored` then ends the queue
/// stage once it has queued what it holds.
async fn run(
    store: Arc<dyn Store>,
    config: CommitterConfig,
    mut jobs: Jobs,
    stored: mpsc::Sender<Stored>,
    cancel: CancellationToken,
) {
    let max_letters = config.max_batch_letters.max(1);
    let max_bytes = config.max_batch_bytes.as_u64() as usize;
    let mut batch: Vec<Job> = Vec::with_capacity(max_letters);
    loop {
        // Cancellation comes after the gRPC server has drained; whatever is still in the
        // channel has a submitter waiting for its receipt, so it is committed before exiting.
        let first = tokio::select! {
            biased;
            Some(job) = jobs.urgent.recv() => Some(job),
            Some(job) = jobs.normal.recv() => Some(job),
            () = cancel.cancelled() => jobs.try_next(),
            else => None,
        };
        let Some(first) = first else { break };
        let mut bytes = first.letter.sealed.ciphertext.len();
        batch.push(first);
        while batch.len() < max_letters && bytes < max_bytes {
            match jobs.try_next() {
                Some(job) => {
                    bytes += job.letter.sealed.ciphertext.len();
                    batch.push(job);
                }
                None => break,
            }
        }
        // Recorded before committing: committing drains the batch.
        telemetry::record_commit_batch(batch.len());
        if let Some(done) = store_batch(&*store, &mut batch).await
            && let Err(mpsc::error::SendError(lost)) = stored.send(done).await
        {
            // The queue stage ends only after this one; should it be gone, the stored letters
            // are left to the outbox sweep and their senders get no receipt.
            tracing::error!(
                letters = lost.waiters.len(),
                "the queue stage is gone; a stored batch is left to the outbox sweep"
            );
            fail_all(lost.waiters, CommitError::ShuttingDown);
        }
        batch.clear();
    }
}

/// The queue stage: records each stored batch's deliveries, in the order they were stored,
/// then answers its letters.
async fn queue_stage(
    queue: Arc<dyn Queue>,
    mut stored: mpsc::Receiver<Stored>,
    needs_resync: Arc<AtomicBool>,
) {
    while let Some(batch) = stored.recv().await {
        queue_batch(&*queue, batch, &needs_resync).await;
    }
}

/// Letters waiting for the committer: urgent ones apart.
struct Jobs {
    urgent: mpsc::Receiver<Job>,
    normal: mpsc::Receiver<Job>,
}

impl Jobs {
    /// The next waiting letter, urgent first, without waiting.
    fn try_next(&mut self) -> Option<Job> {
        self.urgent
            .try_recv()
            .ok()
            .or_else(|| self.normal.try_recv().ok())
    }
}

/// A batch the store holds, on its way to the queue: what the queue needs and who waits.
struct Stored {
    deliveries: Vec<Delivery>,
    outcomes: Vec<InsertOutcome>,
    waiters: Vec<(Instant, Reply)>,
    stored_at: Instant,
}

fn fail_all(waiters: Vec<(Instant, Reply)>, why: CommitError) {
    for (_, reply) in waiters {
        // A submitter that gave up waiting (its stream closed) needs no answer.
        let _ = reply.send(Err(why.clone()));
    }
}

/// Stores one batch in one transaction. On failure every letter of it is answered with the
/// error here and nothing goes on to the queue.
async fn store_batch(store: &dyn Store, batch: &mut Vec<Job>) -> Option<Stored> {
    // The letters move out of their jobs (no copy of their ciphertext); the waiters stay.
    let (letters, waiters): (Vec<NewLetter>, Vec<(Instant, Reply)>) = batch
        .drain(..)
        .map(|j| (j.letter, (j.queued_at, j.reply)))
        .unzip();
    let outcomes = match store.insert_letters(&letters).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %crate::error_report::chain(&e), letters = letters.len(), "storing a batch failed; no letter of it was accepted");
            fail_all(waiters, CommitError::Store(Arc::new(e)));
            return None;
        }
    };
    let stored_at = Instant::now();
    for (queued_at, _) in &waiters {
        telemetry::stage(Stage::Store, stored_at.duration_since(*queued_at));
    }
    // New letters, and resent ones still waiting: enqueueing is idempotent, and re-recording a
    // waiting letter's delivery is what lets its duplicate receipt promise delivery too.
    let deliveries: Vec<Delivery> = letters
        .iter()
        .zip(&outcomes)
        .filter_map(|(l, o)| match o {
            InsertOutcome::Inserted => Some(Delivery {
                letter_id: l.letter_id,
                sender: l.sender,
                route: l.route,
                priority: l.priority,
                not_before_ms: l.not_before_ms.unwrap_or(0),
                enqueued_at_ms: l.accepted_at_ms,
            }),
            InsertOutcome::Existing(r)
                if matches!(r.state, LetterState::Accepted | LetterState::Scheduled) =>
            {
                Some(Delivery {
                    letter_id: r.letter_id,
                    sender: r.sender,
                    route: r.route,
                    priority: r.priority,
                    not_before_ms: r.not_before_ms.unwrap_or(0),
                    enqueued_at_ms: r.accepted_at_ms,
                })
            }
            InsertOutcome::Existing(_) => None,
        })
        .collect();
    // `letters` (the ciphertext) goes here: the store has it.
    Some(Stored {
        deliveries,
        outcomes,
        waiters,
        stored_at,
    })
}

/// Queues a stored batch's deliveries and answers its letters.
async fn queue_batch(queue: &dyn Queue, batch: Stored, needs_resync: &AtomicBool) {
    let Stored {
        deliveries,
        outcomes,
        waiters,
        stored_at,
    } = batch;
    let enqueued = queue.enqueue(&deliveries).await;
    telemetry::stage_batch(Stage::Queue, stored_at.elapsed(), waiters.len());
    if let Err(e) = enqueued {
        // The letters are stored but their deliveries are not recorded: no accepted receipt may
        // go out. The senders retry (their resends find the stored letters and get receipts
        // once the queue is back); the resync task re-queues from the store.
        needs_resync.store(true, Ordering::SeqCst);
        tracing::error!(error = %crate::error_report::chain(&e), letters = deliveries.len(), "queueing a stored batch failed; receipts withheld, resync scheduled");
        fail_all(waiters, CommitError::Queue(Arc::new(e)));
        return;
    }
    for ((_, reply), outcome) in waiters.into_iter().zip(outcomes) {
        let answer = match outcome {
            InsertOutcome::Inserted => Committed::Stored,
            InsertOutcome::Existing(rec) => Committed::Existing(Box::new(rec)),
        };
        // A submitter that gave up waiting needs no answer; its letter is stored either way and a
        // resend gets the duplicate receipt.
        let _ = reply.send(Ok(answer));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::Connection;

    use super::*;
    use crate::backend::DatabaseOptions;
    use crate::domain::{Cvr, Document, Letter, LetterId, MessageUuid, Priority, Route};
    use crate::queue::EmbeddedQueue;
    use crate::seal::{Binding, KekId, KeyRing, body, seal};
    use crate::store::{LetterKey, SqliteStore};

    const SENDER: &str = "29403473";

    fn sealed(text: &str) -> NewLetter {
        let sender: Cvr = SENDER.parse().unwrap();
        let ring = KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])]).unwrap();
        let letter = Letter {
            message_uuid: MessageUuid::random(),
            recipient: "0101901234".parse().unwrap(),
            title: text.into(),
            main_document: Document {
                filename: "a.pdf".into(),
                media_type: "application/pdf".into(),
                content: format!("%PDF-1.4\n{text}\n").into_bytes(),
            },
            attachments: vec![],
            print_fallback: false,
            priority: Priority::Normal,
            sender_reference: String::new(),
        };
        let letter_id = LetterId::new();
        let id = letter_id.to_string();
        let tag = [1u8; 32];
        let content = body::content_digest(&letter);
        let sealed = seal(
            &ring,
            &Binding {
                letter_id: &id,
                sender,
                recipient: &tag,
            },
            body::encode(&letter),
        )
        .unwrap();
        NewLetter {
            letter_id,
            sender,
            message_uuid: letter.message_uuid,
            recipient_tag: tag,
            fingerprint: body::fingerprint(&letter, &content),
            content_sha256: content,
            route: Route::Mailbox,
            priority: Priority::Normal,
            sealed,
            accepted_at_ms: crate::clock::now_ms(),
            not_before_ms: None,
            batch_id: None,
            sender_reference: String::new(),
        }
    }

    /// Waits (with a generous deadline, not a timing claim) until the store holds the letter.
    async fn until_stored(store: &dyn Store, l: &NewLetter) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = store
                .letter(l.sender, LetterKey::LetterId(l.letter_id))
                .await
                .unwrap();
            if found.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "letter {} was never stored",
                l.letter_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// While the queue is held up, the next batch is stored anyway, and no letter gets its
    /// receipt before the queue holds its delivery.
    #[tokio::test]
    async fn the_next_batch_is_stored_while_the_previous_one_waits_for_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("store.db"))
                .await
                .unwrap(),
        );
        let queue_path = dir.path().join("queue.db");
        let options = DatabaseOptions {
            busy_timeout: Duration::from_secs(120),
            ..DatabaseOptions::default()
        };
        let queue: Arc<dyn Queue> = Arc::new(
            EmbeddedQueue::open_with(&queue_path, true, &options)
                .await
                .unwrap(),
        );
        // Another connection holds the queue database's write lock: the queue stage's commit
        // waits for it, as it would for a slow broker.
        let mut holder =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}", queue_path.display()))
                .await
                .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut holder)
            .await
            .unwrap();

        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let config = CommitterConfig {
            max_batch_letters: 1,
            ..CommitterConfig::default()
        };
        let committer = Committer::spawn(
            store.clone(),
            queue.clone(),
            config,
            &tracker,
            cancel.clone(),
        );
        let (a, b) = (sealed("first"), sealed("second"));
        let first = tokio::spawn({
            let c = committer.clone();
            let a = a.clone();
            async move { c.commit(a).await }
        });
        until_stored(&*store, &a).await;
        let second = tokio::spawn({
            let c = committer.clone();
            let b = b.clone();
            async move { c.commit(b).await }
        });
        // Stored while the first batch still waits for the queue.
        until_stored(&*store, &b).await;
        assert!(
            !first.is_finished(),
            "a receipt went out before its letter was queued"
        );
        assert!(
            !second.is_finished(),
            "a receipt went out before its letter was queued"
        );
        assert_eq!(queue.depth().await.unwrap().mailbox, 0);

        sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
        assert!(matches!(first.await.unwrap(), Ok(Committed::Stored)));
        assert!(matches!(second.await.unwrap(), Ok(Committed::Stored)));
        let leased = queue
            .lease(Route::Mailbox, 10, Duration::from_secs(60))
            .await
            .unwrap();
        let mut ids: Vec<LetterId> = leased.iter().map(|l| l.delivery.letter_id).collect();
        ids.sort();
        let mut want = vec![a.letter_id, b.letter_id];
        want.sort();
        assert_eq!(ids, want);

        cancel.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
