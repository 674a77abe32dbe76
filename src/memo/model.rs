//! A MeMo message as the gateway holds it: typed fields for what brevdue reads, and the rest of
//! the structured metadata kept as validated elements, so a message written back out loses
//! nothing that was parsed.

use std::fmt;

use time::{Date, OffsetDateTime};

pub use super::schema::MemoVersion;
use super::schema::Ns;
use crate::domain::MessageUuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A letter with documents.
    DigitalPost,
    /// A text message: header only, no `MessageBody`.
    NemSms,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::DigitalPost => "DIGITALPOST",
            MessageType::NemSms => "NEMSMS",
        }
    }
}

/// `memo:Message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoMessage {
    /// `memoVersion`.
    pub version: MemoVersion,
    /// `memoSchVersion` ("1.1.0"): required with MeMo 1.1, not allowed in 1.2.
    pub schema_version: Option<String>,
    pub header: MessageHeader,
    /// Present for DIGITALPOST, absent for NEMSMS.
    pub body: Option<MessageBody>,
}

/// `memo:MessageHeader`, in schema order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    pub message_type: MessageType,
    /// `messageUUID`: the idempotency key.
    pub message_uuid: MessageUuid,
    /// `messageID`: the sender's own reference.
    pub message_id: Option<String>,
    pub message_code: Option<String>,
    /// `label`: the title the recipient sees (at most 256 characters).
    pub label: String,
    /// Text of the e-mail/SMS notification (at most 150 characters).
    pub notification: Option<String>,
    pub additional_notification: Option<String>,
    pub reply: Option<bool>,
    pub reply_by: Option<OffsetDateTime>,
    /// `doNotDeliverUntilDate`: hold the message until this day.
    pub do_not_deliver_until: Option<Date>,
    /// `mandatory`: required in 1.1; in 1.2 optional, false when left out.
    pub mandatory: bool,
    /// `legalNotification`: like `mandatory`.
    pub legal_notification: bool,
    pub post_type: Option<String>,
    pub sender: Sender,
    pub recipient: Recipient,
    pub content_data: Option<Element>,
    pub forward_data: Option<Element>,
    pub reply_data: Vec<Element>,
}

/// `memo:Sender`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sender {
    /// `senderID`, e.g. the authority's CVR number.
    pub id: String,
    /// `idType`, e.g. `CVR`.
    pub id_type: String,
    pub id_type_label: Option<String>,
    pub label: String,
    pub attention_data: Option<Element>,
    pub contact_point: Option<Element>,
    /// `memo:Representative` (MeMo 1.2 only): who sends on the sender's behalf.
    pub representative: Option<Element>,
}

/// `memo:Recipient`.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient {
    /// `recipientID`: a CPR or CVR number as written in the message.
    pub id: String,
    /// `idType`: `CPR` or `CVR` for the recipients brevdue delivers to.
    pub id_type: String,
    pub id_type_label: Option<String>,
    pub label: Option<String>,
    pub attention_data: Option<Element>,
    pub contact_point: Option<Element>,
}

/// `memo:MessageBody`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageBody {
    pub created: OffsetDateTime,
    pub main_document: MemoDocument,
    pub additional_documents: Vec<MemoDocument>,
    pub technical_documents: Vec<TechnicalDocument>,
}

/// `memo:MainDocument` or `memo:AdditionalDocument`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoDocument {
    /// `mainDocumentID` or `additionalDocumentID`.
    pub id: Option<String>,
    pub label: Option<String>,
    /// One or more renditions of the document.
    pub files: Vec<MemoFile>,
    /// `memo:Action` elements.
    pub actions: Vec<Element>,
}

/// `memo:TechnicalDocument`: machine-readable, never shown as a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TechnicalDocument {
    pub id: Option<String>,
    pub label: Option<String>,
    pub files: Vec<MemoFile>,
}

/// `memo:File`.
#[derive(Clone, PartialEq, Eq)]
pub struct MemoFile {
    /// `encodingFormat`: the MIME type.
    pub encoding_format: String,
    pub filename: String,
    /// Language code, e.g. `da`.
    pub language: String,
    /// The decoded bytes.
    pub content: Vec<u8>,
}

/// A validated element of the metadata brevdue does not interpret (AttentionData, ContactPoint,
/// ContentData, ForwardData, ReplyData, Action, Representative). Names are those of the XSD;
/// text is kept as parsed, whitespace collapsed where the XSD type collapses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub ns: Ns,
    pub name: &'static str,
    pub content: ElementContent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElementContent {
    Text(String),
    Children(Vec<Element>),
}

impl Element {
    /// The first child element with this name, if any.
    pub fn child(&self, name: &str) -> Option<&Element> {
        match &self.content {
            ElementContent::Children(c) => c.iter().find(|e| e.name == name),
            ElementContent::Text(_) => None,
        }
    }

    /// The text of a text-only element.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            ElementContent::Text(t) => Some(t),
            ElementContent::Children(_) => None,
        }
    }
}

/// Identities must not reach logs through `{:?}`: a CPR number is shown masked.
fn masked(id_type: &str, id: &str) -> String {
    if id_type.eq_ignore_ascii_case("CPR") {
        "**********".to_string()
    } else {
        id.to_string()
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &masked(&self.id_type, &self.id))
            .field("id_type", &self.id_type)
            .field("id_type_label", &self.id_type_label)
            .field("label", &self.label)
            .field(
                "attention_data",
                &self.attention_data.as_ref().map(|_| ".."),
            )
            .field("contact_point", &self.contact_point.as_ref().map(|_| ".."))
            .field(
                "representative",
                &self.representative.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("id", &masked(&self.id_type, &self.id))
            .field("id_type", &self.id_type)
            .field("id_type_label", &self.id_type_label)
            .field("label", &self.label)
            .field(
                "attention_data",
                &self.attention_data.as_ref().map(|_| ".."),
            )
            .field("contact_point", &self.contact_point.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Shows the size of the content, not 100 MB of bytes.
impl fmt::Debug for MemoFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoFile")
            .field("encoding_format", &self.encoding_format)
            .field("filename", &self.filename)
            .field("language", &self.language)
            .field("content_len", &self.content.len())
            .finish()
    }
}
