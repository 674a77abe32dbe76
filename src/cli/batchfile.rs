//! The JSON-lines batch format `brevdue send` reads: one letter per line.
//!
//! ```json
//! {"message_uuid": "6f1c…", "recipient": {"type": "CPR", "id": "0101901234"},
//!  "title": "Årsopgørelse", "main_document": {"filename": "a.pdf",
//!  "media_type": "application/pdf", "content_base64": "JVBERi0…"},
//!  "attachments": [], "print_fallback": false, "priority": "NORMAL", "sender_reference": "x"}
//! ```
//! A document may give `content_text` (UTF-8) instead of `content_base64`. Blank lines and lines
//! starting with `#` are skipped.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::ingest::pb;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineLetter {
    pub message_uuid: String,
    pub recipient: LineRecipient,
    pub title: String,
    pub main_document: LineDocument,
    #[serde(default)]
    pub attachments: Vec<LineDocument>,
    #[serde(default)]
    pub print_fallback: bool,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub sender_reference: String,
    /// Optional; `brevdue send` puts every line without one into the run's batch.
    #[serde(default)]
    pub batch_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRecipient {
    #[serde(rename = "type")]
    pub id_type: String,
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDocument {
    pub filename: String,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_text: Option<String>,
}

/// Parses one line into a wire letter, or says what is wrong with it.
pub fn parse_line(line: &str) -> Result<pb::Letter, String> {
    let l: LineLetter = serde_json::from_str(line).map_err(|e| format!("not a letter: {e}"))?;
    let id_type = match l.recipient.id_type.to_ascii_uppercase().as_str() {
        "CPR" => pb::IdType::Cpr,
        "CVR" => pb::IdType::Cvr,
        other => return Err(format!("recipient type {other:?} is neither CPR nor CVR")),
    };
    let priority = match l
        .priority
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("NORMAL") => pb::Priority::Normal,
        Some("BULK") => pb::Priority::Bulk,
        Some("URGENT") => pb::Priority::Urgent,
        Some(other) => return Err(format!("priority {other:?} is not BULK, NORMAL or URGENT")),
    };
    Ok(pb::Letter {
        message_uuid: l.message_uuid,
        recipient: Some(pb::RecipientId {
            r#type: id_type as i32,
            id: l.recipient.id,
        }),
        title: l.title,
        main_document: Some(document(l.main_document, "main_document")?),
        attachments: l
            .attachments
            .into_iter()
            .enumerate()
            .map(|(i, d)| document(d, &format!("attachment {}", i + 1)))
            .collect::<Result<_, _>>()?,
        print_fallback: l.print_fallback,
        priority: priority as i32,
        sender_reference: l.sender_reference,
        batch_id: l.batch_id,
        memo_xml: Vec::new(),
    })
}

fn document(d: LineDocument, which: &str) -> Result<pb::Document, String> {
    let content = match (d.content_base64, d.content_text) {
        (Some(b), None) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| format!("{which}: content_base64 is not base64: {e}"))?,
        (None, Some(t)) => t.into_bytes(),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{which}: give content_base64 or content_text, not both"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{which}: content_base64 or content_text is missing"
            ));
        }
    };
    Ok(pb::Document {
        filename: d.filename,
        media_type: d.media_type,
        content,
    })
}

/// Writes a letter as one JSON line (used by the demo and tests to make batch files).
pub fn to_line(l: &pb::Letter) -> String {
    let doc = |d: &pb::Document| LineDocument {
        filename: d.filename.clone(),
        media_type: d.media_type.clone(),
        content_base64: Some(base64::engine::general_purpose::STANDARD.encode(&d.content)),
        content_text: None,
    };
    let recipient = l.recipient.clone().unwrap_or_default();
    let line = LineLetter {
        message_uuid: l.message_uuid.clone(),
        recipient: LineRecipient {
            id_type: pb::IdType::try_from(recipient.r#type)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_default(),
            id: recipient.id,
        },
        title: l.title.clone(),
        main_document: l.main_document.as_ref().map(doc).unwrap_or(LineDocument {
            filename: String::new(),
            media_type: String::new(),
            content_base64: Some(String::new()),
            content_text: None,
        }),
        attachments: l.attachments.iter().map(doc).collect(),
        print_fallback: l.print_fallback,
        priority: pb::Priority::try_from(l.priority)
            .ok()
            .map(|p| p.as_str_name().to_string()),
        sender_reference: l.sender_reference.clone(),
        batch_id: l.batch_id.clone(),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let line = r#"{"message_uuid":"6f1c7d1e-4b1a-4c55-9d6e-0a1b2c3d4e5f","recipient":{"type":"cpr","id":"0101901234"},"title":"Hej","main_document":{"filename":"a.txt","media_type":"text/plain","content_text":"hello"},"priority":"urgent"}"#;
        let l = parse_line(line).unwrap();
        assert_eq!(l.main_document.as_ref().unwrap().content, b"hello");
        assert_eq!(l.priority, pb::Priority::Urgent as i32);
        assert_eq!(parse_line(&to_line(&l)).unwrap(), l);
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(parse_line("{").unwrap_err().starts_with("not a letter"));
        let no_content = r#"{"message_uuid":"x","recipient":{"type":"CPR","id":"1"},"title":"t","main_document":{"filename":"a","media_type":"text/plain"}}"#;
        assert!(
            parse_line(no_content)
                .unwrap_err()
                .contains("content_base64 or content_text is missing")
        );
        let bad_type = r#"{"message_uuid":"x","recipient":{"type":"SSN","id":"1"},"title":"t","main_document":{"filename":"a","media_type":"text/plain","content_text":"x"}}"#;
        assert!(parse_line(bad_type).unwrap_err().contains("SSN"));
    }
}
