//! Operators' bulk jobs, run in the background by every gateway: a retry, cancel or purge of
//! the letters a job listed when it started, a step of `operations.job_step` letters at a
//! time, with progress in the store (`GetJob`).
//!
//! Order of one step, chosen so that a crash between any two of its parts loses nothing and
//! does nothing twice:
//! 1. read the next pending letters;
//! 2. (retry, purge; once per job, for all its pending letters, before the first step) take
//!    them off the queue's dead letters: a letter there would keep the embedded queue from
//!    taking it again, and a purged one is gone for good;
//! 3. the store step: each letter changed (or marked failed, with why), its event and its
//!    mark in one transaction, conditional on the letter still being pending;
//! 4. (retry) queue the retried letters. A crash before this leaves them ACCEPTED in the
//!    store, and start-up re-queues every waiting letter.
//!
//! A job interrupted anywhere resumes at step 1 with exactly the letters still pending, on
//! this gateway after a restart or on any other one sharing the store.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error_report::chain;
use crate::queue::{Delivery, Queue, QueueError};
use crate::store::{JobKind, Store, StoreError};

use super::audit;

/// `[operations]` in the configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationsConfig {
    /// Letters per job step (one store transaction): 1 to 500.
    pub job_step: u32,
    /// At most this many letters a second per job, so a bulk job yields to live traffic
    /// (none: as fast as the store allows).
    pub job_letters_per_second: Option<u32>,
}

impl Default for OperationsConfig {
    fn default() -> Self {
        OperationsConfig {
            job_step: 500,
            job_letters_per_second: None,
        }
    }
}

impl OperationsConfig {
    /// Every problem with the values, for `Config::validate`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=500).contains(&self.job_step) {
            p.push(format!(
                "operations.job_step = {}: give 1 to 500 letters",
                self.job_step
            ));
        }
        if self.job_letters_per_second == Some(0) {
            p.push(
                "operations.job_letters_per_second = 0: give a rate above 0, or leave it out"
                    .into(),
            );
        }
        p
    }
}

#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Letters taken off the dead letters per queue call (one read of RabbitMQ's dead queue each).
const DEAD_CHUNK: usize = 100_000;

/// How long to wait between looks for jobs another gateway started.
const POLL: Duration = Duration::from_secs(1);

pub struct JobRunner {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    config: OperationsConfig,
    wake: Notify,
}

impl JobRunner {
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        config: OperationsConfig,
    ) -> Arc<Self> {
        Arc::new(JobRunner {
            store,
            queue,
            config,
            wake: Notify::new(),
        })
    }

    /// Starts working on a job started on this gateway at once, rather than at the next look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Works on running jobs until cancelled: those this gateway starts, those left running
    /// by a crash, those another gateway started.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            match self.store.running_jobs().await {
                Ok(jobs) => {
                    crate::telemetry::jobs_running(jobs.len());
                    for (id, kind, operator) in jobs {
                        if cancel.is_cancelled() {
                            return;
                        }
                        if let Err(e) = self.work(&id, kind, &operator, &cancel).await {
                            tracing::warn!(job = %id, error = %chain(&e), "a job step failed; it is tried again");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %chain(&e), "could not look for running jobs"),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Steps through one job until nothing is pending (then marks it done) or until cancelled.
    async fn work(
        &self,
        job_id: &str,
        kind: JobKind,
        operator: &str,
        cancel: &CancellationToken,
    ) -> Result<(), StepError> {
        // Off the dead letters once for the whole job, not per step: RabbitMQ reads its whole
        // dead queue for it, and messages one pass gives back may not be visible to the next
        // pass at once. Idempotent, so a resumed job does it again for what is still pending.
        if matches!(kind, JobKind::Retry | JobKind::Purge) {
            let pending = self.store.pending_job_letters(job_id, u32::MAX).await?;
            for chunk in pending.chunks(DEAD_CHUNK) {
                let taken = self.queue.take_dead_letters(chunk).await?;
                tracing::debug!(job = %job_id, asked = chunk.len(), taken = taken.len(), "job letters taken off the dead letters");
            }
        }
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let ids = self
                .store
                .pending_job_letters(job_id, self.config.job_step)
                .await?;
            if ids.is_empty() {
                return self.finish(job_id, kind, operator).await;
            }
            let step = self.store.run_job_step(job_id, kind, &ids).await?;
            crate::telemetry::job_letters(kind.as_str(), step.changed.len() as u64, step.failed);
            if kind == JobKind::Retry && !step.changed.is_empty() {
                let deliveries: Vec<Delivery> = step
                    .changed
                    .iter()
                    .map(|p| Delivery {
                        letter_id: p.letter_id,
                        sender: p.sender,
                        route: p.route,
                        priority: p.priority,
                        not_before_ms: 0,
                        enqueued_at_ms: crate::clock::now_ms(),
                    })
                    .collect();
                self.enqueue(&deliveries, cancel).await;
            }
            if let Some(rate) = self.config.job_letters_per_second {
                let pause = Duration::from_secs_f64(ids.len() as f64 / f64::from(rate.max(1)));
                tokio::select! {
                    () = cancel.cancelled() => return Ok(()),
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// Queues retried letters, trying again while the queue is away: they are ACCEPTED in the
    /// store already, so on shutdown the next start re-queues them instead.
    async fn enqueue(&self, deliveries: &[Delivery], cancel: &CancellationToken) {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.queue.enqueue(deliveries).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), letters = deliveries.len(), "could not queue retried letters; trying again");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    async fn finish(&self, job_id: &str, kind: JobKind, operator: &str) -> Result<(), StepError> {
        if !self
            .store
            .finish_job(job_id, crate::clock::now_ms())
            .await?
        {
            return Ok(());
        }
        let Some(job) = self.store.job(job_id).await? else {
            return Ok(());
        };
        let changed = job.done.saturating_sub(job.failed);
        tracing::info!(job = %job_id, kind = kind.as_str(), changed, failed = job.failed, "job done");
        audit::record(
            &*self.store,
            operator,
            &format!("{} finished", kind.as_str()),
            &format!("job={job_id} {}", job.selection.describe()),
            changed,
            &format!("done: {changed} changed, {} failed", job.failed),
        )
        .await?;
        Ok(())
    }
}
