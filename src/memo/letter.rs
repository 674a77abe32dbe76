//! Between MeMo messages and the gateway's [`Letter`]: what maps onto a letter's fields, and a
//! MeMo message for a letter that arrived without one (print and mailbox hand-off).

use time::OffsetDateTime;

use super::error::{MemoError, MemoErrorKind};
use super::model::{
    MemoDocument, MemoFile, MemoMessage, MemoVersion, MessageBody, MessageHeader, MessageType,
    Recipient, Sender,
};
use super::schema::TEXT_MAX;
use crate::domain::{Document, IdType, Letter, Priority, RecipientId, SenderInfo};

const RECIPIENT_ID: &str = "/memo:Message/memo:MessageHeader/memo:Recipient/memo:recipientID";

/// Language written on files made from letters, which carry none.
pub const DEFAULT_LANGUAGE: &str = "da";

impl MemoMessage {
    /// The letter this message asks the gateway to deliver, copying the documents.
    /// Prefer [`MemoMessage::into_letter`] on the ingest path: it moves them.
    pub fn to_letter(&self) -> Result<Letter, MemoError> {
        self.clone().into_letter()
    }

    /// The letter this message asks the gateway to deliver:
    /// `messageUUID` → `message_uuid`, `Recipient` → `recipient`, `label` → `title`,
    /// `messageID` → `sender_reference`, the MainDocument's first File → `main_document`, its
    /// other Files and every AdditionalDocument's Files → `attachments`, in order. MeMo has no
    /// print fallback or priority: `print_fallback` is false, `priority` NORMAL. What a letter
    /// has no field for (notification, doNotDeliverUntilDate, TechnicalDocuments, ...) stays in
    /// the message. Limits on size, attachment count, media types and title length (1–255) are
    /// the letter validation's, not checked here.
    pub fn into_letter(self) -> Result<Letter, MemoError> {
        let h = self.header;
        if h.message_type == MessageType::NemSms {
            return Err(MemoError::new(
                MemoErrorKind::Unsupported,
                "/memo:Message/memo:MessageHeader/memo:messageType",
                "a NEMSMS message is a text message, not a letter: send documents as DIGITALPOST",
            ));
        }
        let id_type: IdType = h.recipient.id_type.parse().map_err(|_| {
            MemoError::new(
                MemoErrorKind::Unsupported,
                "/memo:Message/memo:MessageHeader/memo:Recipient/memo:idType",
                format!(
                    "recipient idType {:?}: this gateway delivers to CPR and CVR numbers only",
                    h.recipient.id_type.chars().take(40).collect::<String>()
                ),
            )
        })?;
        let recipient = RecipientId::parse_as(id_type, &h.recipient.id)
            .map_err(|e| MemoError::new(MemoErrorKind::Invalid, RECIPIENT_ID, e.to_string()))?;
        let Some(body) = self.body else {
            return Err(MemoError::new(
                MemoErrorKind::Invalid,
                "/memo:Message",
                "a DIGITALPOST message needs a MessageBody with its MainDocument",
            ));
        };
        let documents = std::iter::once(body.main_document)
            .chain(body.additional_documents)
            .flat_map(|d| d.files)
            .map(|f| Document {
                filename: f.filename,
                media_type: f.encoding_format,
                content: f.content,
            });
        let mut documents = documents.collect::<Vec<_>>().into_iter();
        let Some(main_document) = documents.next() else {
            return Err(MemoError::new(
                MemoErrorKind::Invalid,
                "/memo:Message/memo:MessageBody/memo:MainDocument",
                "the MainDocument has no File",
            ));
        };
        Ok(Letter {
            message_uuid: h.message_uuid,
            recipient,
            title: h.label,
            main_document,
            attachments: documents.collect(),
            print_fallback: false,
            priority: Priority::Normal,
            sender_reference: h.message_id.unwrap_or_default(),
        })
    }

    /// A DIGITALPOST message in `version` carrying `letter` from `sender`: the main document as the
    /// MainDocument, each attachment as an AdditionalDocument with one File, language
    /// [`DEFAULT_LANGUAGE`], `sender_reference` as `messageID`, not mandatory, no legal
    /// notification. `created` is `createdDateTime` (pass the acceptance time, so the same letter
    /// always gives the same message). The sender's name is cut to MeMo's 256 characters.
    ///
    /// The result is valid MeMo when the letter is valid and its `message_uuid` is a version 4
    /// UUID, which MeMo requires and letters do not.
    pub fn from_letter(
        letter: &Letter,
        sender: &SenderInfo,
        created: OffsetDateTime,
        version: MemoVersion,
    ) -> MemoMessage {
        MemoMessage::from_owned_letter(letter.clone(), sender, created, version)
    }

    /// [`MemoMessage::from_letter`] for a letter that is not needed after: its documents move
    /// into the message instead of being copied (delivery makes one of these for every mailbox
    /// letter).
    pub fn from_owned_letter(
        letter: Letter,
        sender: &SenderInfo,
        created: OffsetDateTime,
        version: MemoVersion,
    ) -> MemoMessage {
        let file = |d: Document| MemoFile {
            encoding_format: d.media_type,
            filename: d.filename,
            language: DEFAULT_LANGUAGE.to_string(),
            content: d.content,
        };
        let document = |d: Document| MemoDocument {
            id: None,
            label: None,
            files: vec![file(d)],
            actions: Vec::new(),
        };
        let (id_type, id) = match letter.recipient {
            RecipientId::Cpr(c) => ("CPR", c.to_string()),
            RecipientId::Cvr(c) => ("CVR", c.to_string()),
        };
        MemoMessage {
            version,
            // Required by 1.1, removed by 1.2.
            schema_version: (version == MemoVersion::V1_1).then(|| "1.1.0".to_string()),
            header: MessageHeader {
                message_type: MessageType::DigitalPost,
                message_uuid: letter.message_uuid,
                message_id: (!letter.sender_reference.is_empty())
                    .then_some(letter.sender_reference),
                message_code: None,
                label: letter.title,
                notification: None,
                additional_notification: None,
                reply: None,
                reply_by: None,
                do_not_deliver_until: None,
                mandatory: false,
                legal_notification: false,
                post_type: None,
                sender: Sender {
                    id: sender.cvr.to_string(),
                    id_type: "CVR".to_string(),
                    id_type_label: None,
                    label: sender.name.chars().take(TEXT_MAX).collect(),
                    attention_data: None,
                    contact_point: None,
                    representative: None,
                },
                recipient: Recipient {
                    id,
                    id_type: id_type.to_string(),
                    id_type_label: None,
                    label: None,
                    attention_data: None,
                    contact_point: None,
                },
                content_data: None,
                forward_data: None,
                reply_data: Vec::new(),
            },
            body: Some(MessageBody {
                created,
                main_document: document(letter.main_document),
                additional_documents: letter.attachments.into_iter().map(document).collect(),
                technical_documents: Vec::new(),
            }),
        }
    }
}
