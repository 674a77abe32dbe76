//! `/api/ops/*`: the operator actions of the dashboard pages (dead letters and bulk jobs, route
//! holds, the sender page, the audit trail) as JSON, behind the admin token like the rest of
//! `/api/*`. Each call goes to the operator console, which checks it and writes the audit
//! trail; actions taken here are recorded as done by `dashboard`.
//!
//! Changes are POSTs with a JSON body: a browser sends those cross-site only after a CORS
//! preflight this port never answers, and the token cookie is SameSite=Strict besides.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::domain::{Cvr, Route};
use crate::operators::{ConsoleError, SenderReport};
use crate::store::{AuditEntry, JobKind, JobRecord, OperatorLetter, Selection};

use super::AdminState;

/// Who the audit trail says acted through the dashboard.
const ACTOR: &str = "dashboard";

/// A refused or failed call: the status and one sentence.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<ConsoleError> for ApiError {
    fn from(e: ConsoleError) -> Self {
        match e {
            ConsoleError::Invalid(p) => ApiError(StatusCode::BAD_REQUEST, p),
            e @ (ConsoleError::UnknownSender(_) | ConsoleError::UnknownJob(_)) => {
                ApiError(StatusCode::NOT_FOUND, e.to_string())
            }
            ConsoleError::Store(s) => {
                let id = crate::error_report::ErrorId::new();
                tracing::warn!(error_id = %id, error = %crate::error_report::chain(&s), "an operator action failed in the store");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the store could not be read or changed; try again (error id {id})"),
                )
            }
        }
    }
}

fn bad(problem: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, problem.into())
}

fn route_from(s: &str) -> Result<Option<Route>, ApiError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "mailbox" => Ok(Some(Route::Mailbox)),
        "print" => Ok(Some(Route::Print)),
        _ => Err(bad(format!("{s:?} is not a route: mailbox or print"))),
    }
}

fn sender_from(s: &str) -> Result<Option<Cvr>, ApiError> {
    match s.trim() {
        "" => Ok(None),
        c => c.parse().map(Some).map_err(|e| bad(format!("sender: {e}"))),
    }
}

fn label(r: Route) -> &'static str {
    crate::telemetry::route_label(r)
}

/// Which letters, as the pages ask (empty strings: any).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SelectionQuery {
    sender: String,
    route: String,
    limit: u32,
}

impl SelectionQuery {
    fn selection(&self) -> Result<Selection, ApiError> {
        Ok(Selection {
            sender: sender_from(&self.sender)?,
            route: route_from(&self.route)?,
            ..Selection::default()
        })
    }
}

#[derive(Serialize)]
pub struct LetterView {
    letter_id: String,
    sender: String,
    route: &'static str,
    state: &'static str,
    attempts: u32,
    last_error: String,
    age_ms: i64,
}

fn letter_view(l: OperatorLetter, now: i64) -> LetterView {
    LetterView {
        letter_id: l.letter_id.to_string(),
        sender: l.sender.to_string(),
        route: label(l.route),
        state: l.state.as_str(),
        attempts: l.attempts,
        last_error: l.detail,
        age_ms: (now - l.accepted_at_ms).max(0),
    }
}

/// GET /api/ops/dead: the dead letters a selection names, oldest first, and how many in all.
pub async fn dead(
    State(s): State<AdminState>,
    Query(q): Query<SelectionQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = if q.limit == 0 { 50 } else { q.limit };
    let (letters, total) = s.console.letters(q.selection()?, None, limit).await?;
    let now = crate::clock::now_ms();
    Ok(Json(serde_json::json!({
        "total": total,
        "letters": letters.into_iter().map(|l| letter_view(l, now)).collect::<Vec<_>>(),
    })))
}

#[derive(Serialize)]
pub struct JobView {
    job_id: String,
    kind: &'static str,
    state: &'static str,
    operator: String,
    selection: String,
    total: u64,
    done: u64,
    failed: u64,
    failures: Vec<(String, String)>,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
}

fn job_view(j: JobRecord) -> JobView {
    JobView {
        kind: j.kind.as_str(),
        state: if j.running { "running" } else { "done" },
        selection: j.selection.describe(),
        failures: j
            .failures
            .into_iter()
            .take(20)
            .map(|(id, why)| (id.to_string(), why))
            .collect(),
        job_id: j.job_id,
        operator: j.operator,
        total: j.total,
        done: j.done,
        failed: j.failed,
        created_at_ms: j.created_at_ms,
        finished_at_ms: j.finished_at_ms,
    }
}

#[derive(Deserialize)]
pub struct StartJob {
    kind: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    route: String,
    /// The page's id for this click: a second click's request returns the same job.
    #[serde(default)]
    request_id: String,
}

/// POST /api/ops/jobs: starts a bulk retry, cancel or purge.
pub async fn start_job(
    State(s): State<AdminState>,
    Json(b): Json<StartJob>,
) -> Result<impl IntoResponse, ApiError> {
    let kind = match b.kind.as_str() {
        "retry" => JobKind::Retry,
        "cancel" => JobKind::Cancel,
        "purge" => JobKind::Purge,
        other => {
            return Err(bad(format!(
                "{other:?} is not a job: retry, cancel or purge"
            )));
        }
    };
    let selection = Selection {
        sender: sender_from(&b.sender)?,
        route: route_from(&b.route)?,
        ..Selection::default()
    };
    let job = s
        .console
        .start_job(ACTOR, kind, selection, Some(b.request_id.as_str()))
        .await?;
    Ok((StatusCode::CREATED, Json(job_view(job))))
}

/// GET /api/ops/jobs: the newest jobs.
pub async fn jobs(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let jobs = s.console.jobs(20).await?;
    Ok(Json(jobs.into_iter().map(job_view).collect::<Vec<_>>()))
}

/// GET /api/ops/jobs/{id}: one job's progress.
pub async fn job(
    State(s): State<AdminState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(job_view(s.console.job(&id).await?)))
}

#[derive(Serialize)]
pub struct RouteView {
    route: &'static str,
    held: bool,
    held_by: String,
    reason: String,
    held_since_ms: Option<i64>,
    /// Age of the oldest letter waiting (and due) on the route.
    oldest_waiting_ms: Option<i64>,
}

/// GET /api/ops/routes: per route, whether it is held and its oldest waiting letter's age.
pub async fn routes(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let now = crate::clock::now_ms();
    let oldest = s
        .store
        .oldest_waiting(now)
        .await
        .map_err(ConsoleError::from)?;
    let holds = s.console.holds();
    let views: Vec<RouteView> = [Route::Mailbox, Route::Print]
        .into_iter()
        .map(|route| {
            let hold = holds.iter().find(|h| h.route == route);
            RouteView {
                route: label(route),
                held: hold.is_some(),
                held_by: hold.map(|h| h.operator.clone()).unwrap_or_default(),
                reason: hold.map(|h| h.reason.clone()).unwrap_or_default(),
                held_since_ms: hold.map(|h| h.since_ms),
                oldest_waiting_ms: oldest
                    .iter()
                    .find(|(r, _)| *r == route)
                    .map(|(_, due)| (now - due).max(0)),
            }
        })
        .collect();
    Ok(Json(views))
}

#[derive(Deserialize)]
pub struct HoldChange {
    route: String,
    held: bool,
    #[serde(default)]
    reason: String,
}

/// POST /api/ops/holds: holds or releases a route.
pub async fn hold(
    State(s): State<AdminState>,
    Json(b): Json<HoldChange>,
) -> Result<impl IntoResponse, ApiError> {
    let route = route_from(&b.route)?.ok_or_else(|| bad("name a route: mailbox or print"))?;
    if b.held {
        s.console.hold(ACTOR, route, &b.reason).await?;
    } else {
        s.console.release(ACTOR, route).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct SenderView {
    cvr: String,
    name: String,
    kind: String,
    suspended: bool,
    by_state: Vec<(&'static str, u64)>,
    oldest_waiting_ms: Option<i64>,
    accepted_last_minute: u64,
    accepted_last_hour: u64,
    rejections: Vec<(&'static str, u64)>,
    last_error: String,
}

fn sender_view(r: SenderReport) -> SenderView {
    let now = crate::clock::now_ms();
    let a = r.activity;
    SenderView {
        cvr: r.info.cvr.to_string(),
        name: r.info.name,
        kind: r.info.kind.to_string(),
        suspended: r.info.suspended,
        by_state: a
            .by_state
            .into_iter()
            .map(|(s, n)| (s.as_str(), n))
            .collect(),
        oldest_waiting_ms: a.oldest_waiting_since_ms.map(|t| (now - t).max(0)),
        accepted_last_minute: a.accepted_last_minute,
        accepted_last_hour: a.accepted_last_hour,
        rejections: a
            .rejections
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect(),
        last_error: a.last_error.unwrap_or_default(),
    }
}

#[derive(Deserialize)]
pub struct SenderQuery {
    cvr: String,
}

/// GET /api/ops/sender?cvr=: the sender page's drill-down.
pub async fn sender(
    State(s): State<AdminState>,
    Query(q): Query<SenderQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let cvr = sender_from(&q.cvr)?.ok_or_else(|| bad("give a sender's CVR"))?;
    Ok(Json(sender_view(s.console.sender(cvr).await?)))
}

#[derive(Deserialize)]
pub struct SuspendChange {
    cvr: String,
    suspended: bool,
}

/// POST /api/ops/sender: suspends or resumes a sender.
pub async fn suspend(
    State(s): State<AdminState>,
    Json(b): Json<SuspendChange>,
) -> Result<impl IntoResponse, ApiError> {
    let cvr = sender_from(&b.cvr)?.ok_or_else(|| bad("give a sender's CVR"))?;
    Ok(Json(sender_view(
        s.console.suspend(ACTOR, cvr, b.suspended).await?,
    )))
}

#[derive(Serialize)]
pub struct AuditView {
    id: i64,
    at_ms: i64,
    operator: String,
    action: String,
    selection: String,
    letters: u64,
    result: String,
}

fn audit_view(a: AuditEntry) -> AuditView {
    AuditView {
        id: a.id,
        at_ms: a.entry.at_ms,
        operator: a.entry.operator,
        action: a.entry.action,
        selection: a.entry.selection,
        letters: a.entry.letters,
        result: a.entry.result,
    }
}

/// GET /api/ops/audit: the newest entries of the audit trail.
pub async fn audit(State(s): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    let entries = s.console.audit(None, 30).await?;
    Ok(Json(
        entries.into_iter().map(audit_view).collect::<Vec<_>>(),
    ))
}
