//! SHA-256 content digests, printed as lowercase hex on receipts and reports.

use std::fmt;

use sha2::{Digest, Sha256};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentDigest(pub [u8; 32]);

impl ContentDigest {
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xF)]));
        }
        s
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = (chunk[0] as char).to_digit(16)?;
            let lo = (chunk[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(ContentDigest(out))
    }
}

impl fmt::Display for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentDigest({})", self.to_hex())
    }
}

/// SHA-256 of one byte string.
pub fn sha256(data: &[u8]) -> ContentDigest {
    ContentDigest(Sha256::digest(data).into())
}

/// Digests a sequence of fields unambiguously: each field is framed by its length (u64,
/// big-endian), so `("ab", "c")` and `("a", "bc")` differ. Anyone can recompute it from the
/// letter they sent.
pub struct DigestWriter(Sha256);

impl DigestWriter {
    pub fn new(domain: &str) -> Self {
        let mut w = DigestWriter(Sha256::new());
        w.field(domain.as_bytes());
        w
    }

    pub fn field(&mut self, data: &[u8]) -> &mut Self {
        self.0.update((data.len() as u64).to_be_bytes());
        self.0.update(data);
        self
    }

    pub fn finish(self) -> ContentDigest {
        ContentDigest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        assert_eq!(
            sha256(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let d = sha256(b"abc");
        assert_eq!(ContentDigest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(ContentDigest::from_hex("zz"), None);
    }

    #[test]
    fn framing_is_unambiguous() {
        let mut a = DigestWriter::new("t");
        a.field(b"ab").field(b"c");
        let mut b = DigestWriter::new("t");
        b.field(b"a").field(b"bc");
        assert_ne!(a.finish(), b.finish());
    }
}
