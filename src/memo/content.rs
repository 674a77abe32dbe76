//! `memo:content`: base64 decoded while the text streams past, straight into the document's
//! bytes. The encoded text is never copied; only a held-back quad of at most 4 characters is.
//!
//! XSD's `xs:base64Binary` collapses whitespace, so line breaks and spaces anywhere are ignored;
//! padding is only allowed in the final quad and unused bits must be zero, as the XSD lexical
//! form requires.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::values::is_xml_space;

/// A decoding problem and the byte offset in the source it was found at.
#[derive(Debug)]
pub struct Base64Error {
    pub at: usize,
    pub problem: String,
}

#[derive(Default)]
pub struct Base64Stream {
    out: Vec<u8>,
    /// The last quad seen (complete or not), held back until we know whether it is the final one.
    pending: [u8; 4],
    npending: usize,
    pending_at: usize,
}

impl Base64Stream {
    /// Decodes `chunk`, which starts at byte `at` of the source.
    pub fn feed(&mut self, chunk: &str, at: usize) -> Result<(), Base64Error> {
        let bytes = chunk.as_bytes();
        self.out.reserve(bytes.len() / 4 * 3 + 3);
        if memchr::memchr(b'\t', bytes).is_none() {
            let mut start = 0;
            for end in memchr::memchr3_iter(b'\n', b'\r', b' ', bytes) {
                self.push_run(&bytes[start..end], at + start)?;
                start = end + 1;
            }
            self.push_run(&bytes[start..], at + start)
        } else {
            let mut start = 0;
            for (i, &b) in bytes.iter().enumerate() {
                if is_xml_space(b) {
                    self.push_run(&bytes[start..i], at + start)?;
                    start = i + 1;
                }
            }
            self.push_run(&bytes[start..], at + start)
        }
    }

    /// The decoded bytes, once the element has ended.
    pub fn finish(mut self) -> Result<Vec<u8>, Base64Error> {
        match self.npending {
            0 => Ok(self.out),
            4 => {
                let quad = self.pending;
                decode(&quad, self.pending_at, &mut self.out)?;
                Ok(self.out)
            }
            n => Err(Base64Error {
                at: self.pending_at,
                problem: format!(
                    "the base64 text ends with {n} character{} too many: its length must be a multiple of 4 (pad with '=')",
                    if n == 1 { "" } else { "s" }
                ),
            }),
        }
    }

    fn push_run(&mut self, mut run: &[u8], mut at: usize) -> Result<(), Base64Error> {
        if run.is_empty() {
            return Ok(());
        }
        if self.npending > 0 {
            if self.npending < 4 {
                let take = (4 - self.npending).min(run.len());
                self.pending[self.npending..self.npending + take].copy_from_slice(&run[..take]);
                self.npending += take;
                run = &run[take..];
                at += take;
                if self.npending < 4 || run.is_empty() {
                    return Ok(());
                }
            }
            let quad = self.pending;
            self.decode_inner(&quad, self.pending_at)?;
            self.npending = 0;
        }
        // Hold back the last quad: only the final one may carry padding.
        let tail = match run.len() % 4 {
            0 => 4.min(run.len()),
            r => r,
        };
        let (bulk, rest) = run.split_at(run.len() - tail);
        if !bulk.is_empty() {
            self.decode_inner(bulk, at)?;
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
        self.pending_at = at + bulk.len();
        Ok(())
    }

    /// Decodes whole quads that are known not to be the last. The decoder refuses padding
    /// anywhere but in the last quad it is given, so only that one needs a look here.
    fn decode_inner(&mut self, quads: &[u8], at: usize) -> Result<(), Base64Error> {
        let last = quads.len().saturating_sub(4);
        if let Some(i) = quads[last..].iter().position(|&b| b == b'=') {
            return Err(Base64Error {
                at: at + last + i,
                problem: "padding '=' before the end of the base64 text".to_string(),
            });
        }
        decode(quads, at, &mut self.out)
    }
}

fn decode(quads: &[u8], at: usize, out: &mut Vec<u8>) -> Result<(), Base64Error> {
    STANDARD.decode_vec(quads, out).map_err(|e| {
        use base64::DecodeError as E;
        let (offset, problem) = match e {
            E::InvalidByte(i, b'=') => (
                i,
                "padding '=' before the end of the base64 text".to_string(),
            ),
            E::InvalidByte(i, b) => (i, format!("{} is not a base64 character", describe(b))),
            E::InvalidLastSymbol(i, b) => (
                i,
                format!(
                    "the last character {} leaves non-zero unused bits (not canonical base64)",
                    describe(b)
                ),
            ),
            E::InvalidLength(_) => (0, "the base64 text has an impossible length".to_string()),
            E::InvalidPadding => (0, "the base64 padding is wrong".to_string()),
        };
        Base64Error {
            at: at + offset,
            problem,
        }
    })
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02X}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_chunks(chunks: &[&str]) -> Result<Vec<u8>, Base64Error> {
        let mut s = Base64Stream::default();
        let mut at = 0;
        for c in chunks {
            s.feed(c, at)?;
            at += c.len();
        }
        s.finish()
    }

    #[test]
    fn decodes_across_chunks_and_whitespace() {
        let text = STANDARD.encode(b"Hello, Digital Post! \x00\xff");
        for split in 0..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                decode_chunks(&[a, b]).unwrap(),
                b"Hello, Digital Post! \x00\xff"
            );
        }
        let wrapped: String = text
            .as_bytes()
            .chunks(5)
            .map(|c| format!("{}\r\n\t ", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(
            decode_chunks(&[&wrapped]).unwrap(),
            b"Hello, Digital Post! \x00\xff"
        );
        assert_eq!(decode_chunks(&[]).unwrap(), b"");
        assert_eq!(decode_chunks(&["  \n"]).unwrap(), b"");
    }

    #[test]
    fn refuses_what_xsd_refuses() {
        let e = decode_chunks(&["QQ==QUFB"]).unwrap_err();
        assert!(e.problem.contains("padding"), "{}", e.problem);
        let e = decode_chunks(&["QQ==QUFBQUFB"]).unwrap_err();
        assert_eq!(
            (e.at, e.problem.as_str()),
            (2, "padding '=' before the end of the base64 text")
        );
        let e = decode_chunks(&["QQ==", "QUFB"]).unwrap_err();
        assert!(e.problem.contains("padding"), "{}", e.problem);
        let e = decode_chunks(&["QUF"]).unwrap_err();
        assert!(e.problem.contains("multiple of 4"), "{}", e.problem);
        let e = decode_chunks(&["QUFB", "QU*B"]).unwrap_err();
        assert_eq!(
            (e.at, e.problem.as_str()),
            (6, "'*' is not a base64 character")
        );
        // Non-zero unused bits: "QR==" is not the canonical form of "A".
        let e = decode_chunks(&["QR=="]).unwrap_err();
        assert!(e.problem.contains("unused bits"), "{}", e.problem);
    }
}
