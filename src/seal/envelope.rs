//! Envelope encryption of one letter.
//!
//! Each letter gets a fresh 256-bit data key (DEK). The content is encrypted with the DEK under
//! AES-256-GCM with authenticated data that binds the letter id, the sender's CVR and the
//! recipient's pseudonym, so a ciphertext moved to another row, sender or recipient no longer
//! opens. The DEK is itself encrypted ("wrapped") with the active key-encryption key, with the KEK
//! id and letter id as its authenticated data. Rotating the KEK never touches stored letters.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::domain::Cvr;

use super::{KekId, KeyRing, RecipientTag, SealError};

const DEK_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// Length of a wrapped key: nonce, encrypted DEK, tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + DEK_LEN + TAG_LEN;

/// What a sealed letter is bound to. All three must be presented again to open it.
#[derive(Clone, Copy, Debug)]
pub struct Binding<'a> {
    pub letter_id: &'a str,
    pub sender: Cvr,
    pub recipient: &'a RecipientTag,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(24 + self.letter_id.len() + 8 + 32);
        aad.extend_from_slice(b"brevdue/letter/v1\0");
        aad.extend_from_slice(self.letter_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(&self.sender.value().to_be_bytes());
        aad.extend_from_slice(self.recipient);
        aad
    }
}

/// A sealed letter: everything needed, with the key ring, to open it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub kek_id: KekId,
    /// Nonce, DEK encrypted under the KEK, tag.
    pub wrapped_key: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
    /// Content encrypted under the DEK, tag appended.
    pub ciphertext: Vec<u8>,
}

fn wrap_aad(kek_id: KekId, letter_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + letter_id.len());
    aad.extend_from_slice(b"brevdue/dek/v1\0");
    aad.extend_from_slice(&kek_id.0.to_be_bytes());
    aad.extend_from_slice(letter_id.as_bytes());
    aad
}

fn random<const N: usize>(rng: &SystemRandom) -> Result<[u8; N], SealError> {
    let mut out = [0u8; N];
    rng.fill(&mut out).map_err(|_| SealError::Random)?;
    Ok(out)
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, SealError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| SealError::Tampered)
}

/// Seals `plaintext` (consumed and encrypted in place) with a fresh data key wrapped by the
/// ring's active KEK.
pub fn seal(
    ring: &KeyRing,
    binding: &Binding<'_>,
    plaintext: Vec<u8>,
) -> Result<Sealed, SealError> {
    let rng = SystemRandom::new();
    let (kek_id, kek) = ring.active();
    let dek = random::<DEK_LEN>(&rng)?;
    let nonce = random::<NONCE_LEN>(&rng)?;
    let mut ciphertext = plaintext;
    aes_key(&dek)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding.aad()),
            &mut ciphertext,
        )
        .map_err(|_| SealError::Random)?;

    let wrap_nonce = random::<NONCE_LEN>(&rng)?;
    let mut wrapped = Vec::with_capacity(WRAPPED_KEY_LEN);
    wrapped.extend_from_slice(&wrap_nonce);
    let mut dek_buf = dek.to_vec();
    kek.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(wrap_nonce),
        Aad::from(wrap_aad(kek_id, binding.letter_id)),
        &mut dek_buf,
    )
    .map_err(|_| SealError::Random)?;
    wrapped.extend_from_slice(&dek_buf);
    Ok(Sealed {
        kek_id,
        wrapped_key: wrapped,
        nonce,
        ciphertext,
    })
}

/// Opens a sealed letter. Any change to the ciphertext, nonce, wrapped key, key id or binding,
/// or a ring without the right KEK, fails with [`SealError::Tampered`] or
/// [`SealError::UnknownKek`].
pub fn open(ring: &KeyRing, binding: &Binding<'_>, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
    open_in_place(ring, binding, sealed, sealed.ciphertext.clone())
}

/// [`open`] for a letter whose ciphertext is not needed after: it is decrypted where it lies
/// instead of in a copy (delivery opens every letter once). Left empty whether or not it opens.
pub fn open_owned(
    ring: &KeyRing,
    binding: &Binding<'_>,
    sealed: &mut Sealed,
) -> Result<Vec<u8>, SealError> {
    let buf = std::mem::take(&mut sealed.ciphertext);
    open_in_place(ring, binding, sealed, buf)
}

/// Opens `buf`, the ciphertext of `sealed` (whose own is not read).
fn open_in_place(
    ring: &KeyRing,
    binding: &Binding<'_>,
    sealed: &Sealed,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, SealError> {
    let kek = ring.get(sealed.kek_id)?;
    if sealed.wrapped_key.len() != WRAPPED_KEY_LEN {
        return Err(SealError::Tampered);
    }
    let (wrap_nonce, wrapped) = sealed.wrapped_key.split_at(NONCE_LEN);
    let wrap_nonce: [u8; NONCE_LEN] = wrap_nonce.try_into().map_err(|_| SealError::Tampered)?;
    let mut dek_buf = wrapped.to_vec();
    let dek = kek
        .open_in_place(
            Nonce::assume_unique_for_key(wrap_nonce),
            Aad::from(wrap_aad(sealed.kek_id, binding.letter_id)),
            &mut dek_buf,
        )
        .map_err(|_| SealError::Tampered)?;
    let len = aes_key(dek)?
        .open_in_place(
            Nonce::assume_unique_for_key(sealed.nonce),
            Aad::from(binding.aad()),
            &mut buf,
        )
        .map_err(|_| SealError::Tampered)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u32, byte: u8) -> KeyRing {
        KeyRing::from_keys(KekId(id), [(KekId(id), [byte; 32])]).unwrap()
    }

    const TAG: RecipientTag = [7; 32];

    fn binding() -> Binding<'static> {
        Binding {
            letter_id: "0193c2f4-1111-7000-8000-000000000001",
            sender: "61126228".parse().unwrap(),
            recipient: &TAG,
        }
    }

    #[test]
    fn round_trip_and_no_plaintext_in_ciphertext() {
        let ring = ring(1, 9);
        let text = b"Dear customer, your statement MARKER-XYZ is ready".to_vec();
        let sealed = seal(&ring, &binding(), text.clone()).unwrap();
        assert_eq!(sealed.kek_id, KekId(1));
        assert_eq!(sealed.wrapped_key.len(), WRAPPED_KEY_LEN);
        assert_eq!(sealed.ciphertext.len(), text.len() + TAG_LEN);
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"MARKER"));
        assert_eq!(open(&ring, &binding(), &sealed).unwrap(), text);
        let mut owned = sealed.clone();
        assert_eq!(open_owned(&ring, &binding(), &mut owned).unwrap(), text);
        assert!(
            owned.ciphertext.is_empty(),
            "decrypted in place, not copied"
        );
        // Fresh keys and nonces every time.
        let again = seal(&ring, &binding(), text.clone()).unwrap();
        assert_ne!(again.ciphertext, sealed.ciphertext);
        assert_ne!(again.wrapped_key, sealed.wrapped_key);
    }

    #[test]
    fn any_changed_byte_fails_to_open() {
        let ring = ring(1, 9);
        let sealed = seal(&ring, &binding(), vec![42u8; 300]).unwrap();
        let tampered = |f: &dyn Fn(&mut Sealed)| {
            let mut s = sealed.clone();
            f(&mut s);
            let by_copy = matches!(open(&ring, &binding(), &s), Err(SealError::Tampered));
            let in_place = matches!(
                open_owned(&ring, &binding(), &mut s),
                Err(SealError::Tampered)
            );
            by_copy && in_place
        };
        for i in [0, 150, 299, 300, 315] {
            assert!(tampered(&|s| s.ciphertext[i] ^= 1), "ciphertext byte {i}");
        }
        for i in [0, 11, 12, 43, 59] {
            assert!(
                tampered(&|s| s.wrapped_key[i] ^= 0x80),
                "wrapped key byte {i}"
            );
        }
        for i in 0..NONCE_LEN {
            assert!(tampered(&|s| s.nonce[i] ^= 1), "nonce byte {i}");
        }
        assert!(tampered(&|s| {
            s.ciphertext.pop();
        }));
        assert!(tampered(&|s| {
            s.wrapped_key.pop();
        }));
    }

    #[test]
    fn the_binding_is_authenticated() {
        let ring = ring(1, 9);
        let sealed = seal(&ring, &binding(), b"hello".to_vec()).unwrap();
        let other_tag = [8u8; 32];
        let cases = [
            Binding {
                letter_id: "0193c2f4-1111-7000-8000-000000000002",
                ..binding()
            },
            Binding {
                sender: "10103940".parse().unwrap(),
                ..binding()
            },
            Binding {
                recipient: &other_tag,
                ..binding()
            },
        ];
        for b in cases {
            assert!(
                matches!(open(&ring, &b, &sealed), Err(SealError::Tampered)),
                "{b:?}"
            );
        }
    }

    #[test]
    fn wrong_or_missing_kek_fails() {
        let sealed = seal(&ring(1, 9), &binding(), b"hello".to_vec()).unwrap();
        assert!(matches!(
            open(&ring(1, 10), &binding(), &sealed),
            Err(SealError::Tampered)
        ));
        assert!(matches!(
            open(&ring(2, 9), &binding(), &sealed),
            Err(SealError::UnknownKek(KekId(1)))
        ));
        let mut relabelled = sealed.clone();
        relabelled.kek_id = KekId(2);
        let both =
            KeyRing::from_keys(KekId(2), [(KekId(1), [9; 32]), (KekId(2), [9; 32])]).unwrap();
        assert!(matches!(
            open(&both, &binding(), &relabelled),
            Err(SealError::Tampered)
        ));
    }

    #[test]
    fn rotation_keeps_old_letters_readable() {
        let old = ring(1, 9);
        let sealed_old = seal(&old, &binding(), b"old".to_vec()).unwrap();
        let rotated =
            KeyRing::from_keys(KekId(2), [(KekId(1), [9; 32]), (KekId(2), [10; 32])]).unwrap();
        let sealed_new = seal(&rotated, &binding(), b"new".to_vec()).unwrap();
        assert_eq!(sealed_new.kek_id, KekId(2));
        assert_eq!(open(&rotated, &binding(), &sealed_old).unwrap(), b"old");
        assert_eq!(open(&rotated, &binding(), &sealed_new).unwrap(), b"new");
    }

    #[test]
    fn empty_content_seals() {
        let ring = ring(1, 9);
        let sealed = seal(&ring, &binding(), Vec::new()).unwrap();
        assert_eq!(open(&ring, &binding(), &sealed).unwrap(), Vec::<u8>::new());
    }
}
