//! The operator console: what the operator services call. It holds what operator actions need
//! and is the one place those actions are carried out (each written to the audit trail), so
//! the gRPC service (in `ingest`) and the dashboard only extract, call and convert.

use std::sync::Arc;

use crate::directory::Directory;
use crate::domain::{Cvr, LetterId, Route, SenderInfo};
use crate::store::{
    AuditEntry, JobKind, JobRecord, NewJob, OperatorLetter, RouteHold, Selection, SenderActivity,
    Store, StoreError,
};

use super::{Holds, JobRunner, Roster, audit};

/// Why an operator action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no sender with CVR {0} is registered")]
    UnknownSender(Cvr),
    #[error("no job with id {0:?}")]
    UnknownJob(String),
    /// The request itself is wrong; the text says how.
    #[error("{0}")]
    Invalid(String),
}

/// One sender in detail.
#[derive(Clone, Debug)]
pub struct SenderReport {
    pub info: SenderInfo,
    pub activity: SenderActivity,
}

/// The largest page of letters one listing returns.
pub const MAX_PAGE: u32 = 1000;

pub struct Console {
    pub store: Arc<dyn Store>,
    pub directory: Arc<Directory>,
    pub roster: Arc<Roster>,
    pub holds: Arc<Holds>,
    pub jobs: Arc<JobRunner>,
}

impl Console {
    /// Letters a selection names (dead letters when it names no state), oldest first, and how
    /// many it names in all.
    pub async fn letters(
        &self,
        mut selection: Selection,
        after: Option<(i64, LetterId)>,
        limit: u32,
    ) -> Result<(Vec<OperatorLetter>, u64), ConsoleError> {
        if selection.states.is_empty() {
            selection.states = JobKind::Retry.default_states();
        }
        let page = self
            .store
            .select_letters(&selection, after, limit.clamp(1, MAX_PAGE))
            .await?;
        let total = self.store.count_letters(&selection).await?;
        Ok((page, total))
    }

    /// Starts a bulk job over the letters the selection names now. With a `request_id`, the
    /// same operator's same id again returns the job it started and starts nothing.
    pub async fn start_job(
        &self,
        operator: &str,
        kind: JobKind,
        mut selection: Selection,
        request_id: Option<&str>,
    ) -> Result<JobRecord, ConsoleError> {
        let allowed = kind.default_states();
        if selection.states.is_empty() {
            selection.states = allowed.clone();
        }
        let action = format!("{} started", kind.as_str());
        if let Some(bad) = selection.states.iter().find(|s| !allowed.contains(s)) {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            let problem = format!(
                "a {} job acts on {} letters only, not {}",
                kind.as_str(),
                names.join(" or "),
                bad.as_str()
            );
            audit::record(
                &*self.store,
                operator,
                &action,
                &selection.describe(),
                0,
                &format!("refused: {problem}"),
            )
            .await?;
            return Err(ConsoleError::Invalid(problem));
        }
        let job = NewJob {
            job_id: uuid::Uuid::now_v7().to_string(),
            request_key: request_id
                .filter(|r| !r.is_empty())
                .map(|r| format!("{operator}/{r}")),
            kind,
            operator: operator.to_string(),
            selection,
            created_at_ms: crate::clock::now_ms(),
        };
        let (id, created) = self.store.create_job(&job).await?;
        let record = self
            .store
            .job(&id)
            .await?
            .ok_or_else(|| ConsoleError::UnknownJob(id.clone()))?;
        if created {
            audit::record(
                &*self.store,
                operator,
                &action,
                &record.selection.describe(),
                record.total,
                &format!("started job {id}"),
            )
            .await?;
            self.jobs.wake();
        }
        Ok(record)
    }

    pub async fn job(&self, id: &str) -> Result<JobRecord, ConsoleError> {
        self.store
            .job(id)
            .await?
            .ok_or_else(|| ConsoleError::UnknownJob(id.to_string()))
    }

    pub async fn jobs(&self, limit: u32) -> Result<Vec<JobRecord>, ConsoleError> {
        Ok(self.store.jobs(limit.clamp(1, 200)).await?)
    }

    /// Suspends or resumes a sender; this gateway applies it at once, the others within their
    /// refresh interval.
    pub async fn suspend(
        &self,
        operator: &str,
        cvr: Cvr,
        suspended: bool,
    ) -> Result<SenderReport, ConsoleError> {
        let action = if suspended { "suspend" } else { "resume" };
        match self.store.set_suspended(cvr, suspended).await {
            Ok(()) => {}
            Err(StoreError::UnknownSender(c)) => {
                audit::record(
                    &*self.store,
                    operator,
                    action,
                    &format!("sender={cvr}"),
                    0,
                    "refused: no such sender",
                )
                .await?;
                return Err(ConsoleError::UnknownSender(c));
            }
            Err(e) => return Err(e.into()),
        }
        audit::record(
            &*self.store,
            operator,
            action,
            &format!("sender={cvr}"),
            0,
            "ok",
        )
        .await?;
        if let Err(e) = self.directory.refresh().await {
            tracing::warn!(error = %e, "could not refresh the sender directory after a suspension; it is picked up at the next refresh");
        }
        self.sender(cvr).await
    }

    /// Holds a route (idempotent); this gateway stops taking its letters at once.
    pub async fn hold(
        &self,
        operator: &str,
        route: Route,
        reason: &str,
    ) -> Result<Vec<RouteHold>, ConsoleError> {
        let reason = reason.trim();
        if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
            return Err(ConsoleError::Invalid(
                "the reason for a hold is one line of at most 200 characters".into(),
            ));
        }
        let hold = RouteHold {
            route,
            operator: operator.to_string(),
            reason: reason.to_string(),
            since_ms: crate::clock::now_ms(),
        };
        let new = self.store.hold_route(&hold).await?;
        let selection = format!(
            "route={} reason={reason:?}",
            crate::telemetry::route_label(route)
        );
        let result = if new { "ok" } else { "ok: held already" };
        audit::record(&*self.store, operator, "hold", &selection, 0, result).await?;
        self.holds.refresh().await?;
        crate::telemetry::route_held(route, true);
        Ok(self.holds.current())
    }

    /// Releases a route (idempotent); its letters are delivered again.
    pub async fn release(
        &self,
        operator: &str,
        route: Route,
    ) -> Result<Vec<RouteHold>, ConsoleError> {
        let ended = self
            .store
            .release_route(route, crate::clock::now_ms())
            .await?;
        let selection = format!("route={}", crate::telemetry::route_label(route));
        let result = match &ended {
            Some(h) => format!(
                "ok: held {} by {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    u64::try_from((crate::clock::now_ms() - h.since_ms) / 1000).unwrap_or(0)
                )),
                h.operator
            ),
            None => "ok: not held".to_string(),
        };
        audit::record(&*self.store, operator, "release", &selection, 0, &result).await?;
        self.holds.refresh().await?;
        crate::telemetry::route_held(route, false);
        Ok(self.holds.current())
    }

    pub fn holds(&self) -> Vec<RouteHold> {
        self.holds.current()
    }

    /// One sender in detail.
    pub async fn sender(&self, cvr: Cvr) -> Result<SenderReport, ConsoleError> {
        // The store, not the directory: a suspension just made elsewhere shows at once.
        let (senders, _) = self.store.senders().await?;
        let info = senders
            .into_iter()
            .find(|s| s.cvr == cvr)
            .ok_or(ConsoleError::UnknownSender(cvr))?;
        let activity = self
            .store
            .sender_activity(cvr, crate::clock::now_ms())
            .await?;
        Ok(SenderReport { info, activity })
    }

    pub async fn audit(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, ConsoleError> {
        Ok(self.store.audit(before, limit.clamp(1, 1000)).await?)
    }
}
