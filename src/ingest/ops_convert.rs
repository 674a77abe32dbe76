//! Conversions between the operator API's wire types and the console's types, in one place.
//! What an operator sends is checked here: a bad field is a clear INVALID_ARGUMENT that
//! changes nothing.

use crate::domain::{Cvr, LetterId, Route};
use crate::operators::SenderReport;
use crate::store::{AuditEntry, JobKind, JobRecord, OperatorLetter, RouteHold, Selection};

use super::convert::{state_from_pb, state_to_pb};
use super::pb;
use super::status::RequestError;

fn bad(field: &str, problem: impl std::fmt::Display) -> RequestError {
    RequestError::BadField(format!("{field}: {problem}"))
}

pub fn cvr_from(field: &str, s: &str) -> Result<Cvr, RequestError> {
    s.trim().parse().map_err(|e| bad(field, e))
}

pub fn route_from(field: &str, v: i32) -> Result<Option<Route>, RequestError> {
    match pb::DeliveryRoute::try_from(v) {
        Ok(pb::DeliveryRoute::Unspecified) => Ok(None),
        Ok(pb::DeliveryRoute::Mailbox) => Ok(Some(Route::Mailbox)),
        Ok(pb::DeliveryRoute::Print) => Ok(Some(Route::Print)),
        Err(_) => Err(bad(field, format!("{v} is not a route (MAILBOX or PRINT)"))),
    }
}

/// A route that must be named (hold, release).
pub fn route_required(v: i32) -> Result<Route, RequestError> {
    route_from("route", v)?.ok_or_else(|| bad("route", "name a route: MAILBOX or PRINT"))
}

pub fn route_to_pb(r: Route) -> i32 {
    match r {
        Route::Mailbox => pb::DeliveryRoute::Mailbox as i32,
        Route::Print => pb::DeliveryRoute::Print as i32,
    }
}

/// The selection as asked, with "older than" fixed against `now_ms`.
pub fn selection_from(s: Option<pb::Selection>, now_ms: i64) -> Result<Selection, RequestError> {
    let s = s.unwrap_or_default();
    let sender = match s.sender_cvr.trim() {
        "" => None,
        c => Some(cvr_from("selection.sender_cvr", c)?),
    };
    let states = s
        .states
        .iter()
        .map(|v| {
            state_from_pb(*v)
                .ok_or_else(|| bad("selection.states", format!("{v} is not a letter state")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let batch_id = match s.batch_id.trim() {
        "" => None,
        b => Some(b.parse().map_err(|e| bad("selection.batch_id", e))?),
    };
    if s.older_than_ms < 0 {
        return Err(bad("selection.older_than_ms", "an age cannot be negative"));
    }
    Ok(Selection {
        sender,
        route: route_from("selection.route", s.route)?,
        states,
        batch_id,
        accepted_before_ms: (s.older_than_ms > 0).then(|| now_ms - s.older_than_ms),
    })
}

pub fn selection_to_pb(s: &Selection, at_ms: i64) -> pb::Selection {
    pb::Selection {
        sender_cvr: s.sender.map(|c| c.to_string()).unwrap_or_default(),
        route: s.route.map(route_to_pb).unwrap_or(0),
        states: s.states.iter().map(|st| state_to_pb(*st) as i32).collect(),
        batch_id: s
            .batch_id
            .as_ref()
            .map(|b| b.as_str().to_string())
            .unwrap_or_default(),
        older_than_ms: s
            .accepted_before_ms
            .map(|b| (at_ms - b).max(0))
            .unwrap_or(0),
    }
}

pub fn kind_from(v: i32) -> Result<JobKind, RequestError> {
    match pb::JobKind::try_from(v) {
        Ok(pb::JobKind::JobRetry) => Ok(JobKind::Retry),
        Ok(pb::JobKind::JobCancel) => Ok(JobKind::Cancel),
        Ok(pb::JobKind::JobPurge) => Ok(JobKind::Purge),
        _ => Err(bad("kind", "name a job kind: RETRY, CANCEL or PURGE")),
    }
}

fn kind_to_pb(k: JobKind) -> i32 {
    match k {
        JobKind::Retry => pb::JobKind::JobRetry as i32,
        JobKind::Cancel => pb::JobKind::JobCancel as i32,
        JobKind::Purge => pb::JobKind::JobPurge as i32,
    }
}

pub fn job_to_pb(j: JobRecord) -> pb::Job {
    pb::Job {
        selection: Some(selection_to_pb(&j.selection, j.created_at_ms)),
        job_id: j.job_id,
        kind: kind_to_pb(j.kind),
        state: if j.running {
            pb::JobState::JobRunning as i32
        } else {
            pb::JobState::JobDone as i32
        },
        operator: j.operator,
        total: j.total,
        done: j.done,
        failed: j.failed,
        failures: j
            .failures
            .into_iter()
            .map(|(id, reason)| pb::JobFailure {
                letter_id: id.to_string(),
                reason,
            })
            .collect(),
        created_at_unix_ms: j.created_at_ms,
        finished_at_unix_ms: j.finished_at_ms.unwrap_or(0),
    }
}

pub fn letter_to_pb(l: OperatorLetter, now_ms: i64) -> pb::OperatorLetter {
    pb::OperatorLetter {
        letter_id: l.letter_id.to_string(),
        sender_cvr: l.sender.to_string(),
        route: route_to_pb(l.route),
        state: state_to_pb(l.state) as i32,
        attempts: l.attempts,
        last_error: l.detail,
        accepted_at_unix_ms: l.accepted_at_ms,
        age_ms: (now_ms - l.accepted_at_ms).max(0),
        batch_id: l
            .batch_id
            .map(|b| b.as_str().to_string())
            .unwrap_or_default(),
    }
}

/// A page position as the client carries it: `<accepted_at>:<letter_id>`.
pub fn page_token(l: &OperatorLetter) -> String {
    format!("{}:{}", l.accepted_at_ms, l.letter_id)
}

pub fn page_from(token: &str) -> Result<Option<(i64, LetterId)>, RequestError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad_token = || bad("page_token", "not a token this gateway gave out");
    let (at, id) = token.split_once(':').ok_or_else(bad_token)?;
    Ok(Some((
        at.parse().map_err(|_| bad_token())?,
        id.parse().map_err(|_| bad_token())?,
    )))
}

pub fn holds_to_pb(holds: Vec<RouteHold>) -> pb::RouteHolds {
    pb::RouteHolds {
        holds: holds
            .into_iter()
            .map(|h| pb::RouteHold {
                route: route_to_pb(h.route),
                operator: h.operator,
                reason: h.reason,
                held_since_unix_ms: h.since_ms,
            })
            .collect(),
    }
}

pub fn sender_to_pb(r: SenderReport, now_ms: i64) -> pb::SenderReport {
    let a = r.activity;
    pb::SenderReport {
        sender_cvr: r.info.cvr.to_string(),
        name: r.info.name,
        kind: r.info.kind.to_string(),
        suspended: r.info.suspended,
        letters_by_state: a
            .by_state
            .into_iter()
            .map(|(s, n)| pb::CountByName {
                name: s.as_str().to_string(),
                count: n,
            })
            .collect(),
        oldest_waiting_ms: a
            .oldest_waiting_since_ms
            .map(|t| (now_ms - t).max(0))
            .unwrap_or(0),
        accepted_last_minute: a.accepted_last_minute,
        accepted_last_hour: a.accepted_last_hour,
        rejections_by_reason: a
            .rejections
            .into_iter()
            .map(|(r, n)| pb::CountByName {
                name: r.as_str().to_string(),
                count: n,
            })
            .collect(),
        last_error: a.last_error.unwrap_or_default(),
    }
}

pub fn audit_to_pb(entries: Vec<AuditEntry>) -> pb::AuditPage {
    pb::AuditPage {
        entries: entries
            .into_iter()
            .map(|a| pb::AuditEntry {
                id: a.id,
                at_unix_ms: a.entry.at_ms,
                operator: a.entry.operator,
                action: a.entry.action,
                selection: a.entry.selection,
                letters: a.entry.letters,
                result: a.entry.result,
            })
            .collect(),
    }
}
