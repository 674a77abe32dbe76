//! Conversions between the wire types and the pipeline's types, in one place.

use crate::domain::{Document, IdType, LetterState, RejectReason, Route};
use crate::pipeline::{Outcome, Receipt};
use crate::route::Decision;
use crate::store::LetterRecord;
use crate::validate::Draft;

use super::pb;

pub fn draft_from_letter(l: pb::Letter) -> Draft {
    let (recipient_type, recipient_id) = match l.recipient {
        Some(r) => (
            match pb::IdType::try_from(r.r#type) {
                Ok(pb::IdType::Cpr) => Some(IdType::Cpr),
                Ok(pb::IdType::Cvr) => Some(IdType::Cvr),
                _ => None,
            },
            r.id,
        ),
        None => (None, String::new()),
    };
    Draft {
        message_uuid: l.message_uuid,
        recipient_type,
        recipient_id,
        title: l.title,
        main_document: l.main_document.map(document),
        attachments: l.attachments.into_iter().map(document).collect(),
        print_fallback: l.print_fallback,
        priority: l.priority,
        sender_reference: l.sender_reference,
        memo_xml: l.memo_xml,
        batch_id: l.batch_id,
    }
}

/// A domain letter in wire form (the sender side: load generator, demo, tests).
pub fn letter_to_pb(l: &crate::domain::Letter) -> pb::Letter {
    let doc = |d: &Document| pb::Document {
        filename: d.filename.clone(),
        media_type: d.media_type.clone(),
        content: d.content.clone(),
    };
    pb::Letter {
        message_uuid: l.message_uuid.to_string(),
        recipient: Some(pb::RecipientId {
            r#type: match l.recipient.id_type() {
                IdType::Cpr => pb::IdType::Cpr as i32,
                IdType::Cvr => pb::IdType::Cvr as i32,
            },
            id: l.recipient.number(),
        }),
        title: l.title.clone(),
        main_document: Some(doc(&l.main_document)),
        attachments: l.attachments.iter().map(doc).collect(),
        print_fallback: l.print_fallback,
        priority: match l.priority {
            crate::domain::Priority::Bulk => pb::Priority::Bulk as i32,
            crate::domain::Priority::Normal => pb::Priority::Normal as i32,
            crate::domain::Priority::Urgent => pb::Priority::Urgent as i32,
        },
        sender_reference: l.sender_reference.clone(),
        memo_xml: Vec::new(),
        batch_id: String::new(),
    }
}

fn document(d: pb::Document) -> Document {
    Document {
        filename: d.filename,
        media_type: d.media_type,
        content: d.content,
    }
}

pub fn reason_to_pb(r: RejectReason) -> pb::RejectReason {
    match r {
        RejectReason::InvalidRecipientId => pb::RejectReason::InvalidRecipientId,
        RejectReason::InvalidLetter => pb::RejectReason::InvalidLetter,
        RejectReason::TooLarge => pb::RejectReason::TooLarge,
        RejectReason::NotReachable => pb::RejectReason::NotReachable,
        RejectReason::RecipientClosed => pb::RejectReason::RecipientClosed,
        RejectReason::DuplicateConflict => pb::RejectReason::DuplicateConflict,
    }
}

pub fn outcome_to_pb(route: Route) -> pb::Outcome {
    match route {
        Route::Mailbox => pb::Outcome::AcceptedMailbox,
        Route::Print => pb::Outcome::AcceptedPrint,
    }
}

pub fn receipt_to_pb(r: Receipt) -> pb::Receipt {
    let (outcome, reason) = match r.outcome {
        Outcome::Accepted(route) => (outcome_to_pb(route), pb::RejectReason::Unspecified),
        Outcome::Rejected(reason) => (pb::Outcome::Rejected, reason_to_pb(reason)),
    };
    pb::Receipt {
        message_uuid: r.message_uuid,
        letter_id: r.letter_id.map(|i| i.to_string()).unwrap_or_default(),
        outcome: outcome as i32,
        reason: reason as i32,
        detail: r.detail,
        duplicate: r.duplicate,
        content_sha256: r.content_sha256.map(|d| d.to_hex()).unwrap_or_default(),
        accepted_at_unix_ms: r.accepted_at_ms,
    }
}

pub fn state_to_pb(s: LetterState) -> pb::LetterState {
    match s {
        LetterState::Accepted => pb::LetterState::Accepted,
        LetterState::Scheduled => pb::LetterState::Scheduled,
        LetterState::Delivered => pb::LetterState::Delivered,
        LetterState::PrintSpooled => pb::LetterState::PrintSpooled,
        LetterState::Failed => pb::LetterState::Failed,
        LetterState::Cancelled => pb::LetterState::Cancelled,
    }
}

/// The wire state as the domain's; unspecified is `None` (no filter).
pub fn state_from_pb(v: i32) -> Option<LetterState> {
    match pb::LetterState::try_from(v).ok()? {
        pb::LetterState::Unspecified => None,
        pb::LetterState::Accepted => Some(LetterState::Accepted),
        pb::LetterState::Scheduled => Some(LetterState::Scheduled),
        pb::LetterState::Delivered => Some(LetterState::Delivered),
        pb::LetterState::PrintSpooled => Some(LetterState::PrintSpooled),
        pb::LetterState::Failed => Some(LetterState::Failed),
        pb::LetterState::Cancelled => Some(LetterState::Cancelled),
    }
}

pub fn status_to_pb(r: LetterRecord) -> pb::LetterStatus {
    let state = state_to_pb(r.state);
    pb::LetterStatus {
        letter_id: r.letter_id.to_string(),
        message_uuid: r.message_uuid.to_string(),
        state: state as i32,
        outcome: outcome_to_pb(r.route) as i32,
        content_sha256: r.content_sha256.to_hex(),
        accepted_at_unix_ms: r.accepted_at_ms,
        delivered_at_unix_ms: r.delivered_at_ms.unwrap_or(0),
        attempts: r.attempts,
        detail: r.detail,
        sender_reference: r.sender_reference,
        batch_id: r.batch_id.map(|b| b.to_string()).unwrap_or_default(),
    }
}

pub fn reach_to_pb(d: Decision) -> pb::Reachability {
    let (reach, reason) = match d {
        Decision::Deliver(Route::Mailbox) => (pb::Reach::Mailbox, pb::RejectReason::Unspecified),
        Decision::Deliver(Route::Print) => (pb::Reach::Print, pb::RejectReason::Unspecified),
        Decision::Reject(r) => (pb::Reach::None, reason_to_pb(r)),
    };
    pb::Reachability {
        reach: reach as i32,
        reason: reason as i32,
    }
}
