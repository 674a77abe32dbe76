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

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
