//! The following-letters methods of `LetterGateway`: authenticate, extract, call
//! [`crate::follow`], convert. `service.rs` delegates each method here in one line.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::domain::{LetterState, RejectReason, Route};
use crate::follow::{self, ListRequest};
use crate::pipeline::Gateway;
use crate::store::{BatchCounts, LetterKey, StoredEvent};

use super::convert::{outcome_to_pb, reason_to_pb, state_from_pb, state_to_pb, status_to_pb};
use super::identity::authenticate;
use super::pb;
use super::status::RequestError;

pub type EventStream = Pin<Box<dyn Stream<Item = Result<pb::LetterEvent, Status>> + Send>>;

pub async fn watch_events(
    gateway: &Gateway,
    shutdown: &CancellationToken,
    request: Request<pb::WatchRequest>,
) -> Result<Response<EventStream>, Status> {
    let sender = authenticate(&gateway.directory, &request)?;
    let r = request.into_inner();
    let events = gateway
        .follow
        .watch(sender.cvr, &r.after_cursor, r.terminal_only, r.follow)
        .await?;
    // On shutdown an open stream ends (the client resumes from its last cursor elsewhere or
    // after the restart) instead of holding the drain until its deadline.
    let stop = shutdown.clone().cancelled_owned();
    let stream = events
        .take_until(stop)
        .map(|e| e.map(event_to_pb).map_err(Status::from));
    Ok(Response::new(Box::pin(stream)))
}

pub async fn get_batch(
    gateway: &Gateway,
    request: Request<pb::BatchRequest>,
) -> Result<Response<pb::BatchStatus>, Status> {
    let sender = authenticate(&gateway.directory, &request)?;
    let (id, counts) = gateway
        .follow
        .batch(sender.cvr, &request.into_inner().batch_id)
        .await?;
    Ok(Response::new(batch_to_pb(id.as_str(), counts)))
}

pub async fn cancel_letter(
    gateway: &Gateway,
    request: Request<pb::CancelRequest>,
) -> Result<Response<pb::LetterStatus>, Status> {
    let sender = authenticate(&gateway.directory, &request)?;
    let key = match request.into_inner().key {
        Some(pb::cancel_request::Key::LetterId(id)) => {
            LetterKey::LetterId(id.parse().map_err(|_| RequestError::BadLetterId(id))?)
        }
        Some(pb::cancel_request::Key::MessageUuid(u)) => {
            LetterKey::MessageUuid(u.parse().map_err(|_| RequestError::BadMessageUuid(u))?)
        }
        None => return Err(RequestError::MissingKey.into()),
    };
    let recall = gateway.follow.cancel_letter(sender.cvr, key).await?;
    Ok(Response::new(status_to_pb(recall.record)))
}

pub async fn cancel_batch(
    gateway: &Gateway,
    request: Request<pb::BatchRequest>,
) -> Result<Response<pb::BatchStatus>, Status> {
    let sender = authenticate(&gateway.directory, &request)?;
    let (id, counts, _) = gateway
        .follow
        .cancel_batch(sender.cvr, &request.into_inner().batch_id)
        .await?;
    Ok(Response::new(batch_to_pb(id.as_str(), counts)))
}

pub async fn list_letters(
    gateway: &Gateway,
    request: Request<pb::ListRequest>,
) -> Result<Response<pb::ListResponse>, Status> {
    let sender = authenticate(&gateway.directory, &request)?;
    let r = request.into_inner();
    let (letters, next) = gateway
        .follow
        .list(
            sender.cvr,
            ListRequest {
                batch_id: r.batch_id,
                state: state_from_pb(r.state),
                accepted_from_ms: r.accepted_from_unix_ms,
                accepted_to_ms: r.accepted_to_unix_ms,
                page_size: r.page_size,
                page_token: r.page_token,
            },
        )
        .await?;
    Ok(Response::new(pb::ListResponse {
        letters: letters.into_iter().map(status_to_pb).collect(),
        next_page_token: next.unwrap_or_default(),
    }))
}

fn event_to_pb(e: StoredEvent) -> pb::LetterEvent {
    pb::LetterEvent {
        cursor: follow::cursor::encode_cursor(e.seq),
        letter_id: e.letter_id.to_string(),
        message_uuid: e.message_uuid.to_string(),
        batch_id: e.batch_id.map(|b| b.to_string()).unwrap_or_default(),
        sender_reference: e.sender_reference,
        state: state_to_pb(e.state) as i32,
        outcome: outcome_to_pb(e.route) as i32,
        at_unix_ms: e.at_ms,
        detail: e.detail,
    }
}

fn batch_to_pb(id: &str, c: BatchCounts) -> pb::BatchStatus {
    let mut by_outcome = std::collections::HashMap::new();
    for (route, n) in &c.by_route {
        let key = match route {
            Route::Mailbox => pb::Outcome::AcceptedMailbox,
            Route::Print => pb::Outcome::AcceptedPrint,
        };
        by_outcome.insert(key.as_str_name().to_string(), *n);
    }
    let rejected: u64 = c.rejected.iter().map(|(_, n)| n).sum();
    if rejected > 0 {
        by_outcome.insert(pb::Outcome::Rejected.as_str_name().to_string(), rejected);
    }
    pb::BatchStatus {
        batch_id: id.to_string(),
        letters: c.letters,
        by_state: c
            .by_state
            .iter()
            .map(|(s, n)| (state_name(*s), *n))
            .collect(),
        by_outcome,
        by_reason: c
            .rejected
            .iter()
            .map(|(r, n)| (reason_name(*r), *n))
            .collect(),
        first_accepted_unix_ms: c.first_accepted_ms.unwrap_or(0),
        last_accepted_unix_ms: c.last_accepted_ms.unwrap_or(0),
        last_delivered_unix_ms: c.last_delivered_ms.unwrap_or(0),
    }
}

fn state_name(s: LetterState) -> String {
    state_to_pb(s).as_str_name().to_string()
}

fn reason_name(r: RejectReason) -> String {
    reason_to_pb(r).as_str_name().to_string()
}
