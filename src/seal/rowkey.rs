//! Sealed registry keys: the recipient id, encrypted, beside its pseudonym in the registry table.
//!
//! The gateway must rebuild its in-memory index (keyed by the real id, for speed) from the store
//! at start-up, so the id has to be recoverable; but it must not sit in the database in clear.
//! AES-256-GCM under a dedicated registry key, with the pseudonym as authenticated data so a
//! sealed id cannot be moved to another row.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::{RecipientTag, SealError};

/// Bytes of a sealed index key: nonce, the 8-byte key encrypted, the GCM tag.
pub const SEALED_KEY_LEN: usize = NONCE_LEN + 8 + 16;

/// A sealed index key as the registry stores it.
pub type SealedKey = [u8; SEALED_KEY_LEN];

#[derive(Clone)]
pub struct RowCipher {
    key: LessSafeKey,
}

impl RowCipher {
    pub fn new(key: &[u8; 32]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SealError::Random)?;
        Ok(RowCipher {
            key: LessSafeKey::new(key),
        })
    }

    /// Seals a 64-bit index key, bound to its row's pseudonym.
    pub fn seal_key(&self, index_key: u64, tag: &RecipientTag) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        Ok(self.seal_key_with(index_key, tag, nonce)?.to_vec())
    }

    /// Seals many keys with nonces drawn in one call from the system's generator: a national
    /// import seals millions of them, and one system call per key would be a third of its cost.
    pub fn seal_keys(
        &self,
        items: &[(u64, RecipientTag)],
        out: &mut Vec<SealedKey>,
    ) -> Result<(), SealError> {
        let mut nonces = vec![0u8; items.len() * NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonces)
            .map_err(|_| SealError::Random)?;
        out.reserve(items.len());
        for ((key, tag), nonce) in items.iter().zip(nonces.chunks_exact(NONCE_LEN)) {
            let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Random)?;
            out.push(self.seal_key_with(*key, tag, nonce)?);
        }
        Ok(())
    }

    fn seal_key_with(
        &self,
        index_key: u64,
        tag: &RecipientTag,
        nonce: [u8; NONCE_LEN],
    ) -> Result<SealedKey, SealError> {
        let mut buf = index_key.to_be_bytes();
        let auth = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&tag[..]),
                &mut buf,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = [0u8; SEALED_KEY_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..NONCE_LEN + 8].copy_from_slice(&buf);
        out[NONCE_LEN + 8..].copy_from_slice(auth.as_ref());
        Ok(out)
    }

    /// Opens a sealed index key. The pseudonym is not stored with the sealed key in every
    /// query, so opening takes it when known and otherwise trusts the row it came from.
    pub fn open_key(&self, sealed: &[u8], tag: &RecipientTag) -> Result<u64, SealError> {
        if sealed.len() != SEALED_KEY_LEN {
            return Err(SealError::Tampered);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError::Tampered)?;
        let mut buf = [0u8; 8 + 16];
        buf.copy_from_slice(ct);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&tag[..]),
                &mut buf,
            )
            .map_err(|_| SealError::Tampered)?;
        let bytes: [u8; 8] = plain.try_into().map_err(|_| SealError::Tampered)?;
        Ok(u64::from_be_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_tag() {
        let c = RowCipher::new(&[5; 32]).unwrap();
        let sealed = c.seal_key(101_901_234, &[1; 32]).unwrap();
        assert_eq!(c.open_key(&sealed, &[1; 32]).unwrap(), 101_901_234);
        assert!(c.open_key(&sealed, &[2; 32]).is_err());
        assert!(
            !sealed
                .windows(4)
                .any(|w| *w == 101_901_234u64.to_be_bytes()[4..])
        );
    }
}
