//! What the store keeps for operators' bulk jobs: the selection of letters a job acts on, the
//! job with the letters it named when it started, and each step's changes. The types here and
//! the [`JobStore`] contract; the SQL is in `jobs_sql`, once for both backends.
//!
//! A job lists its letters in its own transaction when it starts, and each step changes a
//! letter, writes its event and marks it done in one transaction: a job interrupted at any
//! moment (a SIGKILL included) resumes with exactly the letters still pending.

use async_trait::async_trait;

use crate::domain::{BatchId, Cvr, LetterId, LetterState, Route};

use super::{PendingDelivery, StoreError};

/// Which letters an operator means: every field given must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub sender: Option<Cvr>,
    pub route: Option<Route>,
    /// Never empty once a job or listing has applied its default.
    pub states: Vec<LetterState>,
    pub batch_id: Option<BatchId>,
    /// Only letters accepted before this time (unix ms): "older than", fixed when asked.
    pub accepted_before_ms: Option<i64>,
}

impl Selection {
    /// The selection in words for the audit trail and listings, e.g.
    /// `sender=29403473 route=print state=FAILED`. Names no recipient and no content.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.sender {
            parts.push(format!("sender={s}"));
        }
        if let Some(r) = self.route {
            parts.push(format!("route={}", crate::telemetry::route_label(r)));
        }
        if !self.states.is_empty() {
            let names: Vec<&str> = self.states.iter().map(|s| s.as_str()).collect();
            parts.push(format!("state={}", names.join(",")));
        }
        if let Some(b) = &self.batch_id {
            parts.push(format!("batch={}", b.as_str()));
        }
        if let Some(t) = self.accepted_before_ms {
            parts.push(format!("accepted_before_ms={t}"));
        }
        if parts.is_empty() {
            "all letters".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// What a bulk job does to each letter of its selection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// FAILED back to ACCEPTED, for the queue to deliver again.
    Retry,
    /// ACCEPTED or SCHEDULED (not being handed to print) to CANCELLED, data key destroyed.
    Cancel,
    /// A FAILED letter's data key destroyed; it stays FAILED on record.
    Purge,
}

impl JobKind {
    pub fn code(self) -> i64 {
        match self {
            JobKind::Retry => 1,
            JobKind::Cancel => 2,
            JobKind::Purge => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<JobKind> {
        [JobKind::Retry, JobKind::Cancel, JobKind::Purge]
            .into_iter()
            .find(|k| k.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Retry => "retry",
            JobKind::Cancel => "cancel",
            JobKind::Purge => "purge",
        }
    }

    /// The states the job acts on when the selection names none, and the only ones it may
    /// act on at all.
    pub fn default_states(self) -> Vec<LetterState> {
        match self {
            JobKind::Retry | JobKind::Purge => vec![LetterState::Failed],
            JobKind::Cancel => vec![LetterState::Accepted, LetterState::Scheduled],
        }
    }
}

/// A job to start.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub job_id: String,
    /// The operator's idempotency key; the same key returns the job it started.
    pub request_key: Option<String>,
    pub kind: JobKind,
    pub operator: String,
    pub selection: Selection,
    pub created_at_ms: i64,
}

/// A job and its progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRecord {
    pub job_id: String,
    pub kind: JobKind,
    pub running: bool,
    pub operator: String,
    pub selection: Selection,
    /// Letters the selection named when the job started.
    pub total: u64,
    /// Letters finished (changed, or failed with a reason).
    pub done: u64,
    pub failed: u64,
    /// Up to 100 of the failed letters with why.
    pub failures: Vec<(LetterId, String)>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// What one step of a job did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStep {
    /// Letters of the step that were still pending.
    pub taken: u64,
    /// The letters it changed, as the queue needs them (a retry queues these).
    pub changed: Vec<PendingDelivery>,
    pub failed: u64,
}

/// A letter as an operator sees it: no content, no title, no recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorLetter {
    pub letter_id: LetterId,
    pub sender: Cvr,
    pub route: Route,
    pub state: LetterState,
    pub attempts: u32,
    /// The last delivery error (a fixed text with an error id), or empty.
    pub detail: String,
    pub accepted_at_ms: i64,
    pub batch_id: Option<BatchId>,
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Letters a selection names (`states` must not be empty), oldest accepted first, after
    /// the `(accepted_at, letter_id)` position `after`.
    async fn select_letters(
        &self,
        selection: &Selection,
        after: Option<(i64, LetterId)>,
        limit: u32,
    ) -> Result<Vec<OperatorLetter>, StoreError>;

    /// How many letters a selection names.
    async fn count_letters(&self, selection: &Selection) -> Result<u64, StoreError>;

    /// Starts a job: the job and the letters its selection names now, in one transaction.
    /// Returns the job id and whether it was created; a request key already used returns its
    /// job (`false`) and starts nothing. Durable on return.
    async fn create_job(&self, job: &NewJob) -> Result<(String, bool), StoreError>;

    /// Up to `limit` of a job's letters still pending, in letter id order: what its next step
    /// works on.
    async fn pending_job_letters(
        &self,
        job_id: &str,
        limit: u32,
    ) -> Result<Vec<LetterId>, StoreError>;

    /// One step of a running job over `ids` (from `pending_job_letters`): each still pending
    /// is changed as the job's kind says, or marked failed with why (it no longer matches);
    /// each letter's change, its event and its mark commit in one transaction. A letter is
    /// never changed twice by a job, however often this is called, from however many
    /// gateways. Durable on return.
    async fn run_job_step(
        &self,
        job_id: &str,
        kind: JobKind,
        ids: &[LetterId],
    ) -> Result<JobStep, StoreError>;

    /// Marks a job done when nothing is pending any more; true if this call marked it.
    async fn finish_job(&self, job_id: &str, at_ms: i64) -> Result<bool, StoreError>;

    async fn job(&self, job_id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// The newest jobs, newest first.
    async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, StoreError>;

    /// The ids and kinds (with operator) of jobs still running: what a gateway resumes.
    async fn running_jobs(&self) -> Result<Vec<(String, JobKind, String)>, StoreError>;
}
