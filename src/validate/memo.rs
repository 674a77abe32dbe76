//! MeMo at the door: a `memo_xml` submission becomes the same validated [`Letter`] as any other,
//! plus what only MeMo carries (the original message, kept sealed beside the letter so nothing
//! is lost on hand-off, and `doNotDeliverUntilDate`).

use time::{OffsetDateTime, Time};

use super::{Draft, Limits, Rejection, validate};
use crate::domain::{Letter, RejectReason, SenderInfo};
use crate::memo::{self, ParseLimits};

/// A MeMo submission, accepted at the door.
pub struct MemoLetter {
    pub letter: Letter,
    /// Not to be delivered before this time (unix ms): the start of `doNotDeliverUntilDate`.
    pub not_before_ms: Option<i64>,
    /// The message as submitted.
    pub xml: Vec<u8>,
}

fn invalid(detail: impl Into<String>) -> Rejection {
    Rejection::new(RejectReason::InvalidLetter, detail)
}

/// Parses and validates a MeMo message sent by `sender`. `claimed_uuid` is the `message_uuid`
/// field of the gRPC letter, which must be empty or equal to the message's `messageUUID`.
pub fn accept(
    sender: &SenderInfo,
    claimed_uuid: &str,
    xml: Vec<u8>,
    limits: &Limits,
) -> Result<MemoLetter, Rejection> {
    let parse_limits = ParseLimits {
        // Base64 makes documents a third larger; the rest is headroom for the header.
        max_input_bytes: (limits.max_letter_size.as_u64() as usize).saturating_mul(4) / 3
            + (1 << 20),
        ..ParseLimits::default()
    };
    let message = memo::parse_with_limits(&xml, &parse_limits).map_err(|e| {
        let reason = if matches!(e.kind, memo::MemoErrorKind::TooLarge) {
            RejectReason::TooLarge
        } else {
            RejectReason::InvalidLetter
        };
        Rejection::new(reason, format!("MeMo: {e}"))
    })?;
    let h = &message.header;
    if !h.sender.id_type.eq_ignore_ascii_case("CVR") || h.sender.id.trim() != sender.cvr.to_string()
    {
        return Err(invalid(format!(
            "MeMo: the message's Sender is {} {}, but this connection's certificate belongs to CVR {}; a sender sends only in its own name",
            h.sender.id_type, h.sender.id, sender.cvr
        )));
    }
    let uuid = h.message_uuid.to_string();
    if !claimed_uuid.trim().is_empty() && !claimed_uuid.trim().eq_ignore_ascii_case(&uuid) {
        return Err(invalid(format!(
            "message_uuid {claimed_uuid:?} differs from the MeMo messageUUID {uuid}; leave message_uuid empty or equal"
        )));
    }
    let not_before_ms = h.do_not_deliver_until.map(|d| {
        let start = OffsetDateTime::new_utc(d, Time::MIDNIGHT);
        (start.unix_timestamp_nanos() / 1_000_000) as i64
    });
    let letter = message
        .into_letter()
        .map_err(|e| invalid(format!("MeMo: {e}")))?;
    // The same limits as every letter (size, attachments, media types, title length).
    let letter = validate(draft_of(letter), limits)?;
    Ok(MemoLetter {
        letter,
        not_before_ms,
        xml,
    })
}

fn draft_of(l: Letter) -> Draft {
    Draft {
        message_uuid: l.message_uuid.to_string(),
        recipient_type: Some(l.recipient.id_type()),
        recipient_id: l.recipient.number(),
        title: l.title,
        main_document: Some(l.main_document),
        attachments: l.attachments,
        print_fallback: l.print_fallback,
        priority: l.priority.code() as i32,
        sender_reference: l.sender_reference,
        memo_xml: Vec::new(),
        batch_id: String::new(),
    }
}
