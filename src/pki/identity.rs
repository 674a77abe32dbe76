//! How the gateway knows a sender: the SHA-256 fingerprint of its certificate, and the issued
//! certificate as handed to the caller (its private key kept out of debug output).

use std::fmt;

use ring::digest::{SHA256, digest};

/// A freshly issued sender certificate. Nothing of it is on disk yet.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate's DER: how the gateway will recognise the sender.
    pub fingerprint: [u8; 32],
    /// When the certificate stops being valid (unix ms): TLS refuses it from then on.
    pub expires_at_ms: i64,
}

impl fmt::Debug for IssuedCert {
    /// Leaves the private key out, so the struct can be logged or shown in a failed assertion.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .field("fingerprint", &hex(&self.fingerprint))
            .finish()
    }
}

/// SHA-256 of a certificate's DER bytes: the sender's identity as the gateway records it.
pub fn fingerprint(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, der).as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fingerprint as an operator types it: 64 hex digits, `:` separators allowed.
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    if digits.len() != 64 || !digits.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
