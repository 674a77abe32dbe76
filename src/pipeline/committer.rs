//! Group commit: many letters, one transaction, one fsync.
//!
//! Every stream hands its sealed letters to one committer task through a bounded channel. The
//! committer takes whatever has gathered (up to a batch limit), stores it in one transaction,
//! records the deliveries in the queue, and only then answers each letter. While one batch is
//! on disk the next one gathers, so the fsync cost is shared by every letter waiting for it; a
//! full channel makes the streams wait (back-pressure) instead of buffering without bound.

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
        let flag = needs_resync.clone();
        tracker.spawn(run(
            store,
            queue,
            config,
            Jobs {
                urgent: urgent_rx,
                normal: rx,
            },
            flag,
            cancel,
        ));
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

async fn run(
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    config: CommitterConfig,
    mut jobs: Jobs,
    needs_resync: Arc<AtomicBool>,
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
        commit_batch(&*store, &*queue, &mut batch, &needs_resync).await;
        batch.clear();
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

async fn commit_batch(
    store: &dyn Store,
    queue: &dyn Queue,
    batch: &mut Vec<Job>,
    needs_resync: &AtomicBool,
) {
    // The letters move out of their jobs (no copy of their ciphertext); the waiters stay.
    let (letters, waiters): (Vec<NewLetter>, Vec<(Instant, Reply)>) = batch
        .drain(..)
        .map(|j| (j.letter, (j.queued_at, j.reply)))
        .unzip();
    let fail_all = |waiters: Vec<(Instant, Reply)>, why: CommitError| {
        for (_, reply) in waiters {
            // A submitter that gave up waiting (its stream closed) needs no answer.
            let _ = reply.send(Err(why.clone()));
        }
    };
    let outcomes = match store.insert_letters(&letters).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %crate::error_report::chain(&e), letters = letters.len(), "storing a batch failed; no letter of it was accepted");
            fail_all(waiters, CommitError::Store(Arc::new(e)));
            return;
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
    let enqueued = queue.enqueue(&deliveries).await;
    telemetry::stage_batch(Stage::Queue, stored_at.elapsed(), letters.len());
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
