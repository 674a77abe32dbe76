//! Sealing: what makes a letter safe to store and provable to its sender.
//!
//! - [`body`]: the byte form of a letter inside its envelope, its content digest and fingerprint.
//! - [`digest`]: the SHA-256 of a letter's content, carried on the receipt.
//! - [`envelope`]: AES-256-GCM envelope encryption, one data key per letter wrapped by a
//!   key-encryption key (KEK) named by a key id, with the letter id, sender and recipient bound in
//!   as authenticated data.
//! - [`keyring`]: the KEKs, kept as files in the data directory; rotation adds a key and makes it
//!   active, and old keys stay to open old letters.
//! - [`pseudonym`]: keyed hashes that stand in for recipient ids wherever something must be found
//!   again by recipient without storing the id in clear.

pub mod body;
pub mod digest;
pub mod envelope;
pub mod keyring;
pub mod pseudonym;
pub mod rowkey;

pub use digest::{ContentDigest, DigestWriter, sha256};
pub use envelope::{Binding, Sealed, open, open_owned, seal};
pub use keyring::{KekId, KeyRing};
pub use pseudonym::{Pseudonymizer, RecipientTag};
pub use rowkey::{RowCipher, SEALED_KEY_LEN, SealedKey};

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("no key-encryption key with id {0} in the key ring")]
    UnknownKek(KekId),
    #[error(
        "the sealed letter does not authenticate: it was altered or opened with the wrong key or binding"
    )]
    Tampered,
    #[error("the system random number generator failed")]
    Random,
    #[error("key file {path}: {problem}")]
    KeyFile { path: String, problem: String },
}
