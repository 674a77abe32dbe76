//! From validated elements to the typed [`MemoMessage`], moving (never copying) the decoded
//! documents, and the MeMo rules that span several elements: the message type decides whether
//! there is a body, CPR and CVR identifiers must be real ones.

use std::iter::Peekable;
use std::vec::IntoIter;

use super::error::{MemoError, MemoErrorKind, line_column};
use super::model::{
    Element, ElementContent, MemoDocument, MemoFile, MemoMessage, MessageBody, MessageHeader,
    MessageType, Recipient, Sender, TechnicalDocument,
};
use super::node::{Node, NodeValue, RootAttrs};
use super::values;
use crate::domain::{IdType, RecipientId};

const MESSAGE: &str = "/memo:Message";
const HEADER: &str = "/memo:Message/memo:MessageHeader";
const BODY: &str = "/memo:Message/memo:MessageBody";

struct Ctx<'a> {
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: impl Into<String>, offset: usize, problem: impl Into<String>) -> MemoError {
        MemoError::new(MemoErrorKind::Invalid, path, problem).at(line_column(self.src, offset))
    }

    /// The parser guarantees the structure; this only guards against a mismatch with the tables.
    fn internal(&self, path: &str, what: &str) -> MemoError {
        MemoError::new(
            MemoErrorKind::Invalid,
            path,
            format!("internal error: {what} missing after validation"),
        )
    }
}

/// The children of one element, taken in schema order.
struct Kids(Peekable<IntoIter<Node>>);

impl Kids {
    fn of(node: Node) -> Kids {
        match node.value {
            NodeValue::Children(c) => Kids(c.into_iter().peekable()),
            _ => Kids(Vec::new().into_iter().peekable()),
        }
    }

    fn take(&mut self, name: &str) -> Option<Node> {
        self.0.next_if(|n| n.decl.name == name)
    }

    fn take_all(&mut self, name: &str) -> Vec<Node> {
        std::iter::from_fn(|| self.take(name)).collect()
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.take(name).map(into_text)
    }
}

fn into_text(node: Node) -> String {
    match node.value {
        NodeValue::Text(t) => t,
        _ => String::new(),
    }
}

/// A validated subtree kept as a generic element.
pub(super) fn element(node: Node) -> Element {
    let content = match node.value {
        NodeValue::Text(t) => ElementContent::Text(t),
        NodeValue::Children(c) => ElementContent::Children(c.into_iter().map(element).collect()),
        // Only memo:content holds bytes, and it is never part of a generic subtree.
        NodeValue::Bytes(_) => ElementContent::Text(String::new()),
    };
    Element {
        ns: node.decl.ns,
        name: node.decl.name,
        content,
    }
}

pub(super) fn assemble(root: Node, attrs: RootAttrs, src: &str) -> Result<MemoMessage, MemoError> {
    let cx = Ctx { src };
    let root_end = root.end;
    let mut kids = Kids::of(root);
    let header_node = kids
        .take("MessageHeader")
        .ok_or_else(|| cx.internal(MESSAGE, "MessageHeader"))?;
    let header = header(&cx, header_node)?;
    let body_node = kids.take("MessageBody");
    let body = match (header.message_type, body_node) {
        (MessageType::NemSms, Some(b)) => {
            return Err(cx.err(
                BODY,
                b.start,
                "a NEMSMS message has no MessageBody: send documents as DIGITALPOST",
            ));
        }
        (MessageType::DigitalPost, None) => {
            return Err(cx.err(
                MESSAGE,
                root_end,
                "a DIGITALPOST message needs a MessageBody with its MainDocument",
            ));
        }
        (MessageType::NemSms, None) => None,
        (MessageType::DigitalPost, Some(b)) => Some(body(&cx, b)?),
    };
    Ok(MemoMessage {
        version: attrs.version,
        schema_version: attrs.schema_version,
        header,
        body,
    })
}

fn header(cx: &Ctx, node: Node) -> Result<MessageHeader, MemoError> {
    let mut k = Kids::of(node);
    let req = |v: Option<String>, what: &str| v.ok_or_else(|| cx.internal(HEADER, what));
    let message_type = match req(k.text("messageType"), "messageType")?.as_str() {
        "NEMSMS" => MessageType::NemSms,
        _ => MessageType::DigitalPost,
    };
    let uuid = req(k.text("messageUUID"), "messageUUID")?;
    let message_uuid = uuid
        .parse()
        .map_err(|_| cx.internal(HEADER, "a parsable messageUUID"))?;
    let message_id = k.text("messageID");
    let message_code = k.text("messageCode");
    let label = req(k.text("label"), "label")?;
    let notification = k.text("notification");
    let additional_notification = k.text("additionalNotification");
    let reply = k.text("reply").map(|v| v == "true");
    let reply_by = match k.text("replyByDateTime") {
        Some(v) => Some(values::parse_datetime(&v).map_err(|p| cx.err(HEADER, 0, p))?),
        None => None,
    };
    let do_not_deliver_until = match k.text("doNotDeliverUntilDate") {
        Some(v) => Some(values::parse_date(&v).map_err(|p| cx.err(HEADER, 0, p))?),
        None => None,
    };
    // Required in 1.1 (the tables enforce it); optional in 1.2, where leaving one out means false.
    let mandatory = k.text("mandatory").is_some_and(|v| v == "true");
    let legal_notification = k.text("legalNotification").is_some_and(|v| v == "true");
    let post_type = k.text("postType");
    let sender = sender(
        cx,
        k.take("Sender")
            .ok_or_else(|| cx.internal(HEADER, "Sender"))?,
    )?;
    let recipient = recipient(
        cx,
        k.take("Recipient")
            .ok_or_else(|| cx.internal(HEADER, "Recipient"))?,
    )?;
    let content_data = k.take("ContentData").map(element);
    let forward_data = k.take("ForwardData").map(element);
    let reply_data = k.take_all("ReplyData").into_iter().map(element).collect();
    Ok(MessageHeader {
        message_type,
        message_uuid,
        message_id,
        message_code,
        label,
        notification,
        additional_notification,
        reply,
        reply_by,
        do_not_deliver_until,
        mandatory,
        legal_notification,
        post_type,
        sender,
        recipient,
        content_data,
        forward_data,
        reply_data,
    })
}

/// A CPR or CVR identifier must be a real one, written as MeMo writes it (no dash, no spaces).
fn check_party_id(
    cx: &Ctx,
    path: &str,
    at: usize,
    id: &str,
    id_type: &str,
) -> Result<(), MemoError> {
    let Ok(t) = id_type.parse::<IdType>() else {
        return Ok(());
    };
    let parsed = RecipientId::parse_as(t, id).map_err(|e| cx.err(path, at, e.to_string()))?;
    if parsed.number() != id {
        return Err(cx.err(
            path,
            at,
            format!(
                "write the {t} number as {} digits without a dash or spaces",
                if t == IdType::Cpr { 10 } else { 8 }
            ),
        ));
    }
    Ok(())
}

fn sender(cx: &Ctx, node: Node) -> Result<Sender, MemoError> {
    const P: &str = "/memo:Message/memo:MessageHeader/memo:Sender";
    let mut k = Kids::of(node);
    let id_node = k
        .take("senderID")
        .ok_or_else(|| cx.internal(P, "senderID"))?;
    let id_type = k.text("idType").ok_or_else(|| cx.internal(P, "idType"))?;
    let (id_start, id) = (id_node.start, into_text(id_node));
    check_party_id(cx, &format!("{P}/memo:senderID"), id_start, &id, &id_type)?;
    Ok(Sender {
        id,
        id_type,
        id_type_label: k.text("idTypeLabel"),
        label: k.text("label").ok_or_else(|| cx.internal(P, "label"))?,
        attention_data: k.take("AttentionData").map(element),
        contact_point: k.take("ContactPoint").map(element),
        representative: k.take("Representative").map(element),
    })
}

fn recipient(cx: &Ctx, node: Node) -> Result<Recipient, MemoError> {
    const P: &str = "/memo:Message/memo:MessageHeader/memo:Recipient";
    let mut k = Kids::of(node);
    let id_node = k
        .take("recipientID")
        .ok_or_else(|| cx.internal(P, "recipientID"))?;
    let id_type = k.text("idType").ok_or_else(|| cx.internal(P, "idType"))?;
    let (id_start, id) = (id_node.start, into_text(id_node));
    check_party_id(
        cx,
        &format!("{P}/memo:recipientID"),
        id_start,
        &id,
        &id_type,
    )?;
    Ok(Recipient {
        id,
        id_type,
        id_type_label: k.text("idTypeLabel"),
        label: k.text("label"),
        attention_data: k.take("AttentionData").map(element),
        contact_point: k.take("ContactPoint").map(element),
    })
}

fn body(cx: &Ctx, node: Node) -> Result<MessageBody, MemoError> {
    let mut k = Kids::of(node);
    let created_text = k
        .text("createdDateTime")
        .ok_or_else(|| cx.internal(BODY, "createdDateTime"))?;
    let created = values::parse_datetime(&created_text).map_err(|p| cx.err(BODY, 0, p))?;
    let main = k
        .take("MainDocument")
        .ok_or_else(|| cx.internal(BODY, "MainDocument"))?;
    let main_document = document(main, "mainDocumentID");
    let additional_documents = k
        .take_all("AdditionalDocument")
        .into_iter()
        .map(|n| document(n, "additionalDocumentID"))
        .collect();
    let technical_documents = k
        .take_all("TechnicalDocument")
        .into_iter()
        .map(|n| {
            let mut k = Kids::of(n);
            TechnicalDocument {
                id: k.text("technicalDocumentID"),
                label: k.text("label"),
                files: k.take_all("File").into_iter().map(file).collect(),
            }
        })
        .collect();
    Ok(MessageBody {
        created,
        main_document,
        additional_documents,
        technical_documents,
    })
}

fn document(node: Node, id_name: &str) -> MemoDocument {
    let mut k = Kids::of(node);
    MemoDocument {
        id: k.text(id_name),
        label: k.text("label"),
        files: k.take_all("File").into_iter().map(file).collect(),
        actions: k.take_all("Action").into_iter().map(element).collect(),
    }
}

fn file(node: Node) -> MemoFile {
    let mut k = Kids::of(node);
    let encoding_format = k.text("encodingFormat").unwrap_or_default();
    let filename = k.text("filename").unwrap_or_default();
    let language = k.text("language").unwrap_or_default();
    let content = match k.take("content").map(|n| n.value) {
        Some(NodeValue::Bytes(b)) => b,
        _ => Vec::new(),
    };
    MemoFile {
        encoding_format,
        filename,
        language,
        content,
    }
}
