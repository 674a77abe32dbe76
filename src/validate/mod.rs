//! Validation: turns what a sender submitted into a [`Letter`], or says exactly what is wrong.
//!
//! Every problem is a per-letter [`Rejection`] with the reason code the receipt carries and a
//! sentence that tells the sender what to fix. Limits come from configuration; the defaults are
//! Digital Post's own (99.5 MB and 10 attachments per message).

pub mod memo;

use bytesize::ByteSize;
use serde::Deserialize;

use crate::domain::{Document, IdType, Letter, MessageUuid, Priority, RecipientId, RejectReason};

/// What a sender submitted, before any check. Built by `ingest` from the wire format.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    pub message_uuid: String,
    /// `None` when the sender left the type unspecified: the id's shape decides.
    pub recipient_type: Option<IdType>,
    pub recipient_id: String,
    pub title: String,
    pub main_document: Option<Document>,
    pub attachments: Vec<Document>,
    pub print_fallback: bool,
    /// The wire value: 0 (unspecified, meaning NORMAL), 1 BULK, 2 NORMAL, 3 URGENT.
    pub priority: i32,
    pub sender_reference: String,
    pub memo_xml: Vec<u8>,
    /// As the sender wrote it; the pipeline parses it (empty: no batch).
    pub batch_id: String,
}

/// A per-letter refusal: the reason code and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }

    fn invalid(detail: impl Into<String>) -> Self {
        Self::new(RejectReason::InvalidLetter, detail)
    }
}

/// Per-letter limits. All configurable; see `brevdue.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest total content of a letter (all documents).
    pub max_letter_size: ByteSize,
    /// Most attachments besides the main document.
    pub max_attachments: usize,
    /// Media types a document may have.
    pub allowed_media_types: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_letter_size: ByteSize::b(99_500_000),
            max_attachments: 10,
            // What Digital Post itself accepts; see `memo::rules`.
            allowed_media_types: crate::memo::rules::DIGITAL_POST_MEDIA_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

const MAX_TITLE_CHARS: usize = 255;
const MAX_FILENAME_CHARS: usize = 255;
const MAX_REFERENCE_CHARS: usize = 255;

/// Checks a draft against the limits.
pub fn validate(draft: Draft, limits: &Limits) -> Result<Letter, Rejection> {
    let message_uuid: MessageUuid = draft.message_uuid.parse().map_err(|_| {
        Rejection::invalid(if draft.message_uuid.trim().is_empty() {
            "message_uuid is missing: give every letter a UUID of your choosing (it makes resending safe)".to_string()
        } else {
            format!(
                "message_uuid {:?} is not a UUID",
                draft.message_uuid.chars().take(40).collect::<String>()
            )
        })
    })?;
    if !draft.memo_xml.is_empty() {
        return Err(Rejection::invalid(
            "MeMo messages (memo_xml) are not accepted by this gateway version; send the letter fields instead",
        ));
    }
    let recipient = match draft.recipient_type {
        Some(t) => RecipientId::parse_as(t, &draft.recipient_id),
        None if draft.recipient_id.trim().is_empty() => {
            return Err(Rejection::new(
                RejectReason::InvalidRecipientId,
                "recipient is missing: give a CPR or CVR number",
            ));
        }
        None => RecipientId::detect(&draft.recipient_id),
    }
    .map_err(|e| Rejection::new(RejectReason::InvalidRecipientId, e.to_string()))?;

    let title_chars = draft.title.chars().count();
    if draft.title.trim().is_empty() {
        return Err(Rejection::invalid(
            "title is empty: give the letter a title of 1 to 255 characters",
        ));
    }
    if title_chars > MAX_TITLE_CHARS {
        return Err(Rejection::invalid(format!(
            "title is {title_chars} characters, {} over the limit of {MAX_TITLE_CHARS}",
            title_chars - MAX_TITLE_CHARS
        )));
    }
    if draft.title.chars().any(char::is_control) {
        return Err(Rejection::invalid("title contains control characters"));
    }
    let ref_chars = draft.sender_reference.chars().count();
    if ref_chars > MAX_REFERENCE_CHARS {
        return Err(Rejection::invalid(format!(
            "sender_reference is {ref_chars} characters, {} over the limit of {MAX_REFERENCE_CHARS}",
            ref_chars - MAX_REFERENCE_CHARS
        )));
    }
    let priority = match draft.priority {
        0 | 2 => Priority::Normal,
        1 => Priority::Bulk,
        3 => Priority::Urgent,
        code => {
            return Err(Rejection::invalid(format!(
                "priority {code} is not one of BULK (1), NORMAL (2), URGENT (3)"
            )));
        }
    };
    let Some(main_document) = draft.main_document else {
        return Err(Rejection::invalid(
            "main_document is missing: every letter needs one",
        ));
    };
    if draft.attachments.len() > limits.max_attachments {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!(
                "the letter has {} attachments, {} over the limit of {}",
                draft.attachments.len(),
                draft.attachments.len() - limits.max_attachments,
                limits.max_attachments
            ),
        ));
    }
    let total: u64 = std::iter::once(&main_document)
        .chain(&draft.attachments)
        .map(|d| d.content.len() as u64)
        .sum();
    let max = limits.max_letter_size.as_u64();
    if total > max {
        return Err(Rejection::new(
            RejectReason::TooLarge,
            format!(
                "the letter's documents total {total} bytes, {} bytes over the limit of {max} bytes ({})",
                total - max,
                limits.max_letter_size.display().si()
            ),
        ));
    }
    check_document("main_document", &main_document, limits)?;
    if main_document.content.is_empty() {
        return Err(Rejection::invalid("main_document is empty (0 bytes)"));
    }
    for (i, a) in draft.attachments.iter().enumerate() {
        check_document(&format!("attachment {}", i + 1), a, limits)?;
    }
    Ok(Letter {
        message_uuid,
        recipient,
        title: draft.title,
        main_document,
        attachments: draft.attachments,
        print_fallback: draft.print_fallback,
        priority,
        sender_reference: draft.sender_reference,
    })
}

fn check_document(which: &str, d: &Document, limits: &Limits) -> Result<(), Rejection> {
    let name_chars = d.filename.chars().count();
    if d.filename.trim().is_empty() {
        return Err(Rejection::invalid(format!("{which} has no filename")));
    }
    if name_chars > MAX_FILENAME_CHARS {
        return Err(Rejection::invalid(format!(
            "{which}: filename is {name_chars} characters, over the limit of {MAX_FILENAME_CHARS}"
        )));
    }
    if d.filename.contains(['/', '\\'])
        || d.filename.chars().any(char::is_control)
        || d.filename == ".."
    {
        return Err(Rejection::invalid(format!(
            "{which}: filename {:?} must be a plain file name (no path separators or control characters)",
            d.filename
        )));
    }
    // The letter is handed over as MeMo, where Digital Post refuses more characters still.
    if let Err(problem) = crate::memo::rules::check_filename(&d.filename) {
        return Err(Rejection::invalid(format!("{which}: {problem}")));
    }
    // Parameters such as `; charset=utf-8` do not change what the document is.
    let media = d
        .media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !limits
        .allowed_media_types
        .iter()
        .any(|m| m.eq_ignore_ascii_case(&media))
    {
        return Err(Rejection::invalid(format!(
            "{which}: media type {:?} is not allowed; allowed are {}",
            d.media_type,
            limits.allowed_media_types.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(size: usize) -> Document {
        Document {
            filename: "brev.pdf".into(),
            media_type: "application/pdf".into(),
            content: vec![b'x'; size],
        }
    }

    fn draft() -> Draft {
        Draft {
            message_uuid: "6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f".into(),
            recipient_type: Some(IdType::Cpr),
            recipient_id: "010190-1234".into(),
            title: "Din årsopgørelse".into(),
            main_document: Some(doc(100)),
            ..Draft::default()
        }
    }

    fn reject(f: impl FnOnce(&mut Draft)) -> Rejection {
        let mut d = draft();
        f(&mut d);
        validate(d, &Limits::default()).unwrap_err()
    }

    #[test]
    fn a_good_letter_passes_and_is_normalised() {
        let l = validate(draft(), &Limits::default()).unwrap();
        assert_eq!(l.recipient.to_string(), "CPR:0101901234");
        assert_eq!(l.priority, Priority::Normal);
        let mut d = draft();
        d.message_uuid = "6F1C7D1E-4B1A-4C55-9D6E-0A1B2C3D4E5F".into();
        assert_eq!(
            validate(d, &Limits::default()).unwrap().message_uuid,
            l.message_uuid
        );
    }

    #[test]
    fn each_problem_has_its_reason_and_words() {
        let r = reject(|d| d.recipient_id = "3102901234".into());
        assert_eq!(r.reason, RejectReason::InvalidRecipientId);
        assert_eq!(r.detail, "CPR 3102901234: 31 February is not a date");

        let r = reject(|d| d.message_uuid = "nope".into());
        assert_eq!(
            (r.reason, r.detail.as_str()),
            (
                RejectReason::InvalidLetter,
                "message_uuid \"nope\" is not a UUID"
            )
        );
        assert!(
            reject(|d| d.message_uuid.clear())
                .detail
                .contains("missing")
        );
        assert!(
            reject(|d| d.title.clear())
                .detail
                .contains("title is empty")
        );
        assert_eq!(
            reject(|d| d.title = "x".repeat(300)).detail,
            "title is 300 characters, 45 over the limit of 255"
        );
        assert!(
            reject(|d| d.main_document = None)
                .detail
                .contains("main_document is missing")
        );
        assert!(
            reject(|d| d.main_document = Some(doc(0)))
                .detail
                .contains("empty")
        );
        assert!(reject(|d| d.priority = 9).detail.contains("priority 9"));
        let r = reject(|d| {
            d.main_document.as_mut().unwrap().media_type = "application/x-msdownload".into()
        });
        assert!(r.detail.contains("not allowed"), "{}", r.detail);
        let mut with_charset = draft();
        with_charset.main_document.as_mut().unwrap().media_type =
            "text/plain; charset=utf-8".into();
        assert!(validate(with_charset, &Limits::default()).is_ok());
        let r = reject(|d| d.main_document.as_mut().unwrap().filename = "../etc/passwd".into());
        assert!(r.detail.contains("plain file name"), "{}", r.detail);
        let r = reject(|d| d.main_document.as_mut().unwrap().filename = "brev:1.pdf".into());
        assert!(
            r.detail.contains("main_document: filename has a colon"),
            "{}",
            r.detail
        );
        let r = reject(|d| d.main_document.as_mut().unwrap().filename = "brev\u{00A0}1.pdf".into());
        assert!(r.detail.contains("no-break space (U+00A0)"), "{}", r.detail);
        for word in [
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.oasis.opendocument.text",
            "image/gif",
        ] {
            let mut d = draft();
            d.main_document.as_mut().unwrap().media_type = word.into();
            assert!(validate(d, &Limits::default()).is_ok(), "{word}");
        }
        let r = reject(|d| d.recipient_type = Some(IdType::Cvr));
        assert_eq!(r.reason, RejectReason::InvalidRecipientId);
    }

    #[test]
    fn limits_say_which_and_by_how_much() {
        let limits = Limits {
            max_letter_size: ByteSize::b(1000),
            max_attachments: 2,
            ..Limits::default()
        };
        let mut d = draft();
        d.main_document = Some(doc(900));
        d.attachments = vec![doc(150)];
        let r = validate(d, &limits).unwrap_err();
        assert_eq!(r.reason, RejectReason::TooLarge);
        assert!(
            r.detail.starts_with(
                "the letter's documents total 1050 bytes, 50 bytes over the limit of 1000 bytes"
            ),
            "{}",
            r.detail
        );
        let mut d = draft();
        d.attachments = vec![doc(1), doc(1), doc(1)];
        let r = validate(d, &limits).unwrap_err();
        assert_eq!(r.reason, RejectReason::TooLarge);
        assert_eq!(
            r.detail,
            "the letter has 3 attachments, 1 over the limit of 2"
        );
    }

    #[test]
    fn unspecified_type_is_told_by_shape() {
        let mut d = draft();
        d.recipient_type = None;
        d.recipient_id = "61126228".into();
        assert_eq!(
            validate(d, &Limits::default())
                .unwrap()
                .recipient
                .to_string(),
            "CVR:61126228"
        );
    }
}
