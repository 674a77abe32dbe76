//! The byte form of a letter inside its envelope, and the digests that identify its content.
//!
//! Every field is framed by its length (u64, big-endian), the same framing the content digest
//! uses, so the encoding is unambiguous and cheap: no schema, no copies beyond the one buffer.

use crate::domain::{Document, Letter, MessageUuid, Priority, RecipientId};

use super::digest::{ContentDigest, DigestWriter};

const BODY_V1: &[u8] = b"brevdue/body/v1";

/// Why a stored body could not be read back (a bug or corruption: it authenticated).
#[derive(Debug, thiserror::Error)]
#[error("sealed letter body is malformed: {0}")]
pub struct BodyError(&'static str);

/// The SHA-256 on the receipt: recipient (`CPR:…`/`CVR:…`), title, then each document's
/// filename, media type and content, main document first, each field length-framed.
pub fn content_digest(letter: &Letter) -> ContentDigest {
    let mut w = DigestWriter::new("brevdue/content/v1");
    w.field(letter.recipient.to_string().as_bytes())
        .field(letter.title.as_bytes());
    for d in letter.documents() {
        w.field(d.filename.as_bytes())
            .field(d.media_type.as_bytes())
            .field(&d.content);
    }
    w.finish()
}

/// Everything that makes two submissions "the same letter" for idempotency: the content and
/// the delivery options. A resend that differs in any of them is a conflict, not a duplicate.
pub fn fingerprint(letter: &Letter, content: &ContentDigest) -> ContentDigest {
    let mut w = DigestWriter::new("brevdue/fingerprint/v1");
    w.field(&content.0)
        .field(&[u8::from(letter.print_fallback)])
        .field(&letter.priority.code().to_be_bytes())
        .field(letter.sender_reference.as_bytes());
    w.finish()
}

fn put(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    out.extend_from_slice(data);
}

/// Encodes a letter for sealing.
pub fn encode(letter: &Letter) -> Vec<u8> {
    encode_with_memo(letter, None)
}

/// Encodes a letter and, for a MeMo submission, the original message (kept so hand-off loses
/// nothing the letter has no field for). It is a trailing field: bodies without it still decode.
pub fn encode_with_memo(letter: &Letter, memo: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(letter.content_len() + memo.map_or(0, <[u8]>::len) + 512);
    put(&mut out, BODY_V1);
    put(&mut out, letter.message_uuid.to_string().as_bytes());
    put(&mut out, letter.recipient.to_string().as_bytes());
    put(&mut out, letter.title.as_bytes());
    put(&mut out, &[u8::from(letter.print_fallback)]);
    put(&mut out, &letter.priority.code().to_be_bytes());
    put(&mut out, letter.sender_reference.as_bytes());
    put(
        &mut out,
        &(1 + letter.attachments.len() as u64).to_be_bytes(),
    );
    for d in letter.documents() {
        put(&mut out, d.filename.as_bytes());
        put(&mut out, d.media_type.as_bytes());
        put(&mut out, &d.content);
    }
    if let Some(xml) = memo {
        put(&mut out, b"memo");
        put(&mut out, xml);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn field(&mut self) -> Result<&'a [u8], BodyError> {
        if self.0.len() < 8 {
            return Err(BodyError("truncated length"));
        }
        let (len, rest) = self.0.split_at(8);
        let len = u64::from_be_bytes(len.try_into().map_err(|_| BodyError("length"))?);
        let len = usize::try_from(len).map_err(|_| BodyError("length"))?;
        if rest.len() < len {
            return Err(BodyError("truncated field"));
        }
        let (field, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    fn text(&mut self) -> Result<String, BodyError> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| BodyError("text is not UTF-8"))
    }

    fn number(&mut self) -> Result<u64, BodyError> {
        let f = self.field()?;
        Ok(u64::from_be_bytes(
            f.try_into().map_err(|_| BodyError("number"))?,
        ))
    }
}

/// Decodes what [`encode`] wrote.
pub fn decode(bytes: &[u8]) -> Result<Letter, BodyError> {
    decode_with_memo(bytes).map(|(l, _)| l)
}

/// Decodes what [`encode_with_memo`] wrote: the letter and the original MeMo message, if any.
pub fn decode_with_memo(bytes: &[u8]) -> Result<(Letter, Option<Vec<u8>>), BodyError> {
    let mut r = Reader(bytes);
    if r.field()? != BODY_V1 {
        return Err(BodyError("unknown version"));
    }
    let message_uuid: MessageUuid = r.text()?.parse().map_err(|_| BodyError("message uuid"))?;
    let recipient: RecipientId = r.text()?.parse().map_err(|_| BodyError("recipient"))?;
    let title = r.text()?;
    let print_fallback = r.field()? == [1];
    let priority = Priority::from_code(r.number()? as i64);
    let sender_reference = r.text()?;
    let count = r.number()?;
    let mut docs = Vec::new();
    for _ in 0..count {
        docs.push(Document {
            filename: r.text()?,
            media_type: r.text()?,
            content: r.field()?.to_vec(),
        });
    }
    let mut docs = docs.into_iter();
    let main_document = docs.next().ok_or(BodyError("no main document"))?;
    let memo = if r.0.is_empty() {
        None
    } else if r.field()? == b"memo" {
        Some(r.field()?.to_vec())
    } else {
        return Err(BodyError("unknown trailing field"));
    };
    let letter = Letter {
        message_uuid,
        recipient,
        title,
        main_document,
        attachments: docs.collect(),
        print_fallback,
        priority,
        sender_reference,
    };
    Ok((letter, memo))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> Letter {
        Letter {
            message_uuid: MessageUuid::random(),
            recipient: "0101901234".parse().unwrap(),
            title: "Årsopgørelse 2026".into(),
            main_document: Document {
                filename: "a.pdf".into(),
                media_type: "application/pdf".into(),
                content: b"%PDF-1.7 hello".to_vec(),
            },
            attachments: vec![Document {
                filename: "b.txt".into(),
                media_type: "text/plain".into(),
                content: vec![],
            }],
            print_fallback: true,
            priority: Priority::Urgent,
            sender_reference: "ref-1".into(),
        }
    }

    #[test]
    fn round_trip() {
        let l = letter();
        assert_eq!(decode(&encode(&l)).unwrap(), l);
        let bytes = encode(&l);
        for cut in [0, 5, 20, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn memo_rides_along_and_old_bodies_still_decode() {
        let l = letter();
        let (back, memo) =
            decode_with_memo(&encode_with_memo(&l, Some(b"<memo:Message/>"))).unwrap();
        assert_eq!(back, l);
        assert_eq!(memo.as_deref(), Some(&b"<memo:Message/>"[..]));
        assert_eq!(decode_with_memo(&encode(&l)).unwrap().1, None);
    }

    #[test]
    fn digest_covers_content_and_fingerprint_covers_options() {
        let a = letter();
        let mut b = a.clone();
        b.main_document.content.push(b'!');
        assert_ne!(content_digest(&a), content_digest(&b));
        let mut c = a.clone();
        c.print_fallback = false;
        assert_eq!(content_digest(&a), content_digest(&c));
        let d = content_digest(&a);
        assert_ne!(fingerprint(&a, &d), fingerprint(&c, &d));
        // The message uuid is the key, not the content.
        let mut e = a.clone();
        e.message_uuid = MessageUuid::random();
        assert_eq!(fingerprint(&a, &d), fingerprint(&e, &content_digest(&e)));
    }
}
