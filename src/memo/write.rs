//! Writing a [`MemoMessage`] as MeMo XML: the prefixed `memo:` form, namespaces declared once on
//! the root (only those used), documents base64-encoded straight into the output buffer, which is
//! sized up front so it is never reallocated and copied.
//!
//! `write` does not validate: what [`parse`](super::parse) produced, or
//! [`MemoMessage::from_letter`](super::MemoMessage::from_letter) built from a valid letter,
//! writes out as a valid message, and `parse(&write(&m)) == m`.

use super::model::{
    Element, ElementContent, MemoDocument, MemoFile, MemoMessage, MemoVersion, TechnicalDocument,
};
use super::schema::Ns;
use super::values::{format_date, format_datetime};

/// Writes `m` as a UTF-8 MeMo XML document.
pub fn write(m: &MemoMessage) -> Vec<u8> {
    let mut w = Writer {
        out: Vec::with_capacity(estimate(m)),
        depth: 0,
    };
    w.out
        .extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<memo:Message");
    for ns in namespaces_used(m) {
        w.raw(&format!(" xmlns:{}=\"{}\"", ns.prefix(), ns.uri()));
    }
    w.raw(" memoVersion=\"");
    w.raw(m.version.as_str());
    w.raw("\"");
    // MeMo 1.2 removed the attribute: a 1.2 message with it is invalid.
    if let (MemoVersion::V1_1, Some(v)) = (m.version, &m.schema_version) {
        w.raw(" memoSchVersion=\"");
        w.escaped(v, true);
        w.raw("\"");
    }
    w.raw(">");
    w.depth = 1;

    let h = &m.header;
    w.open("MessageHeader");
    w.text("messageType", h.message_type.as_str());
    w.text("messageUUID", &h.message_uuid.to_string());
    w.opt("messageID", &h.message_id);
    w.opt("messageCode", &h.message_code);
    w.text("label", &h.label);
    w.opt("notification", &h.notification);
    w.opt("additionalNotification", &h.additional_notification);
    if let Some(r) = h.reply {
        w.text("reply", bool_str(r));
    }
    if let Some(t) = h.reply_by {
        w.text("replyByDateTime", &format_datetime(t));
    }
    if let Some(d) = h.do_not_deliver_until {
        w.text("doNotDeliverUntilDate", &format_date(d));
    }
    w.text("mandatory", bool_str(h.mandatory));
    w.text("legalNotification", bool_str(h.legal_notification));
    w.opt("postType", &h.post_type);

    let s = &h.sender;
    w.open("Sender");
    w.text("senderID", &s.id);
    w.text("idType", &s.id_type);
    w.opt("idTypeLabel", &s.id_type_label);
    w.text("label", &s.label);
    w.elements(
        s.attention_data
            .iter()
            .chain(&s.contact_point)
            .chain(&s.representative),
    );
    w.close("Sender");

    let r = &h.recipient;
    w.open("Recipient");
    w.text("recipientID", &r.id);
    w.text("idType", &r.id_type);
    w.opt("idTypeLabel", &r.id_type_label);
    w.opt("label", &r.label);
    w.elements(r.attention_data.iter().chain(&r.contact_point));
    w.close("Recipient");

    w.elements(
        h.content_data
            .iter()
            .chain(&h.forward_data)
            .chain(&h.reply_data),
    );
    w.close("MessageHeader");

    if let Some(b) = &m.body {
        w.open("MessageBody");
        w.text("createdDateTime", &format_datetime(b.created));
        w.document("MainDocument", "mainDocumentID", &b.main_document);
        for d in &b.additional_documents {
            w.document("AdditionalDocument", "additionalDocumentID", d);
        }
        for d in &b.technical_documents {
            w.technical(d);
        }
        w.close("MessageBody");
    }
    w.out.extend_from_slice(b"\n</memo:Message>\n");
    w.out
}

fn bool_str(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Namespaces other than memo that the generic elements use, memo first.
fn namespaces_used(m: &MemoMessage) -> Vec<Ns> {
    fn walk(e: &Element, seen: &mut [bool; 8]) {
        seen[Ns::ALL.iter().position(|n| *n == e.ns).unwrap_or(0)] = true;
        if let ElementContent::Children(c) = &e.content {
            c.iter().for_each(|e| walk(e, seen));
        }
    }
    let mut seen = [false; 8];
    seen[0] = true;
    let h = &m.header;
    let generic = h
        .sender
        .attention_data
        .iter()
        .chain(&h.sender.contact_point)
        .chain(&h.sender.representative)
        .chain(&h.recipient.attention_data)
        .chain(&h.recipient.contact_point)
        .chain(&h.content_data)
        .chain(&h.forward_data)
        .chain(&h.reply_data);
    generic.for_each(|e| walk(e, &mut seen));
    Ns::ALL
        .into_iter()
        .zip(seen)
        .filter_map(|(ns, used)| used.then_some(ns))
        .collect()
}

/// Output size: the base64 of every file plus generous room for the metadata.
fn estimate(m: &MemoMessage) -> usize {
    let files = m.body.iter().flat_map(|b| {
        std::iter::once(&b.main_document)
            .chain(&b.additional_documents)
            .flat_map(|d| d.files.iter())
            .chain(b.technical_documents.iter().flat_map(|d| d.files.iter()))
    });
    let (count, bytes) = files.fold((0, 0), |(n, len), f: &MemoFile| {
        (n + 1, len + f.content.len().div_ceil(3) * 4)
    });
    bytes + count * 512 + 16 * 1024
}

struct Writer {
    out: Vec<u8>,
    depth: usize,
}

impl Writer {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn indent(&mut self) {
        self.out.push(b'\n');
        self.out.extend(std::iter::repeat_n(b' ', self.depth * 2));
    }

    fn start_tag(&mut self, ns: Ns, name: &str) {
        self.indent();
        self.out.push(b'<');
        self.raw(ns.prefix());
        self.out.push(b':');
        self.raw(name);
        self.out.push(b'>');
    }

    fn end_tag(&mut self, ns: Ns, name: &str) {
        self.raw("</");
        self.raw(ns.prefix());
        self.out.push(b':');
        self.raw(name);
        self.out.push(b'>');
    }

    fn open(&mut self, name: &str) {
        self.start_tag(Ns::Memo, name);
        self.depth += 1;
    }

    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.indent();
        self.end_tag(Ns::Memo, name);
    }

    fn text(&mut self, name: &str, value: &str) {
        self.text_in(Ns::Memo, name, value);
    }

    fn text_in(&mut self, ns: Ns, name: &str, value: &str) {
        self.start_tag(ns, name);
        self.escaped(value, false);
        self.end_tag(ns, name);
    }

    fn opt(&mut self, name: &str, value: &Option<String>) {
        if let Some(v) = value {
            self.text(name, v);
        }
    }

    /// Escapes markup characters, and what a parser would otherwise normalise away: carriage
    /// returns everywhere, tabs and line feeds in attribute values.
    fn escaped(&mut self, s: &str, attribute: bool) {
        let mut last = 0;
        for (i, b) in s.bytes().enumerate() {
            let rep: &[u8] = match b {
                b'&' => b"&amp;",
                b'<' => b"&lt;",
                b'>' => b"&gt;",
                b'\r' => b"&#13;",
                b'"' if attribute => b"&quot;",
                b'\t' if attribute => b"&#9;",
                b'\n' if attribute => b"&#10;",
                _ => continue,
            };
            self.out.extend_from_slice(&s.as_bytes()[last..i]);
            self.out.extend_from_slice(rep);
            last = i + 1;
        }
        self.out.extend_from_slice(&s.as_bytes()[last..]);
    }

    fn elements<'e>(&mut self, elements: impl Iterator<Item = &'e Element>) {
        for e in elements {
            self.element(e);
        }
    }

    fn element(&mut self, e: &Element) {
        match &e.content {
            ElementContent::Text(t) => self.text_in(e.ns, e.name, t),
            ElementContent::Children(children) => {
                self.start_tag(e.ns, e.name);
                self.depth += 1;
                self.elements(children.iter());
                self.depth -= 1;
                self.indent();
                self.end_tag(e.ns, e.name);
            }
        }
    }

    fn document(&mut self, name: &str, id_name: &str, d: &MemoDocument) {
        self.open(name);
        self.opt(id_name, &d.id);
        self.opt("label", &d.label);
        for f in &d.files {
            self.file(f);
        }
        self.elements(d.actions.iter());
        self.close(name);
    }

    fn technical(&mut self, d: &TechnicalDocument) {
        self.open("TechnicalDocument");
        self.opt("technicalDocumentID", &d.id);
        self.opt("label", &d.label);
        for f in &d.files {
            self.file(f);
        }
        self.close("TechnicalDocument");
    }

    fn file(&mut self, f: &MemoFile) {
        self.open("File");
        self.text("encodingFormat", &f.encoding_format);
        self.text("filename", &f.filename);
        self.text("language", &f.language);
        self.start_tag(Ns::Memo, "content");
        let start = self.out.len();
        let len = base64_simd::STANDARD.encoded_length(f.content.len());
        self.out.resize(start + len, 0);
        // Exactly the encoded length: the encoder panics on a shorter slice.
        let written = base64_simd::STANDARD
            .encode(
                &f.content,
                base64_simd::Out::from_slice(&mut self.out[start..]),
            )
            .len();
        self.out.truncate(start + written);
        self.end_tag(Ns::Memo, "content");
        self.close("File");
    }
}
