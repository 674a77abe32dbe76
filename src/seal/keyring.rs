//! Key-encryption keys (KEKs) and their files in the data directory.
//!
//! Layout of the key directory (mode 0700, files 0600):
//! - `kek-0001.key`, `kek-0002.key`, …: one base64 line each, a 256-bit AES key;
//! - `active`: the id of the KEK new letters are sealed with;
//! - `pseudonym.key`: the HMAC key for recipient pseudonyms (never rotated: tags must stay stable).
//!
//! Rotation writes a new key file, then switches `active` by an atomic rename. Running gateways
//! reload the ring and pick the new key up; old keys stay for opening old letters.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::SealError;

/// The id of a key-encryption key; stored beside every sealed letter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KekId(pub u32);

impl fmt::Display for KekId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kek-{:04}", self.0)
    }
}

/// All KEKs known to this process, and which one seals new letters.
pub struct KeyRing {
    /// Sorted by id; never empty.
    keys: Vec<(KekId, LessSafeKey)>,
    /// Index of the active key in `keys`.
    active: usize,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active_id())
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

fn key_file_error(path: &Path, problem: impl fmt::Display) -> SealError {
    SealError::KeyFile {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

impl KeyRing {
    /// A ring from raw keys; `active` must be among them.
    pub fn from_keys(
        active: KekId,
        keys: impl IntoIterator<Item = (KekId, [u8; 32])>,
    ) -> Result<Self, SealError> {
        let mut map = BTreeMap::new();
        for (id, bytes) in keys {
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::Tampered)?;
            map.insert(id, LessSafeKey::new(key));
        }
        let keys: Vec<(KekId, LessSafeKey)> = map.into_iter().collect();
        let active = keys
            .iter()
            .position(|(id, _)| *id == active)
            .ok_or(SealError::UnknownKek(active))?;
        Ok(KeyRing { keys, active })
    }

    pub fn active(&self) -> (KekId, &LessSafeKey) {
        let (id, key) = &self.keys[self.active];
        (*id, key)
    }

    pub fn active_id(&self) -> KekId {
        self.keys[self.active].0
    }

    pub fn get(&self, id: KekId) -> Result<&LessSafeKey, SealError> {
        self.keys
            .binary_search_by_key(&id, |(k, _)| *k)
            .map(|i| &self.keys[i].1)
            .map_err(|_| SealError::UnknownKek(id))
    }

    pub fn ids(&self) -> impl Iterator<Item = KekId> + '_ {
        self.keys.iter().map(|(id, _)| *id)
    }

    /// Loads the ring from `dir`, creating the directory and a first key if there is none.
    /// Safe when several gateways start together on a shared volume: each publishes its first
    /// key and `active` with a link that only one can win, and everyone reads the winner.
    pub fn load_or_create(dir: &Path) -> Result<Self, SealError> {
        ensure_dir(dir)?;
        if !dir.join("active").exists() {
            let first = KekId(1);
            publish_new(
                &kek_path(dir, first),
                secret_text(&random_key()?).as_bytes(),
            )?;
            publish_new(&dir.join("active"), first.0.to_string().as_bytes())?;
        }
        Self::load(dir)
    }

    /// Loads every `kek-*.key` in `dir` and the active id.
    pub fn load(dir: &Path) -> Result<Self, SealError> {
        let active_path = dir.join("active");
        let active_text =
            fs::read_to_string(&active_path).map_err(|e| key_file_error(&active_path, e))?;
        let active = active_text
            .trim()
            .parse::<u32>()
            .map(KekId)
            .map_err(|_| key_file_error(&active_path, "does not hold a key id number"))?;
        let mut keys = Vec::new();
        let entries = fs::read_dir(dir).map_err(|e| key_file_error(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| key_file_error(dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(num) = name
                .strip_prefix("kek-")
                .and_then(|n| n.strip_suffix(".key"))
            else {
                continue;
            };
            let Ok(id) = num.parse::<u32>() else {
                continue;
            };
            keys.push((KekId(id), read_secret(&entry.path())?));
        }
        Self::from_keys(active, keys)
    }

    /// Adds a new KEK to the ring in `dir` and makes it active. Returns its id. Two rotations
    /// at once each get a key of their own: the one that loses the race for an id takes the next.
    pub fn rotate(dir: &Path) -> Result<KekId, SealError> {
        let ring = Self::load_or_create(dir)?;
        let mut next = KekId(ring.ids().map(|k| k.0).max().unwrap_or(0) + 1);
        let key = secret_text(&random_key()?);
        while !publish_new(&kek_path(dir, next), key.as_bytes())? {
            next = KekId(next.0 + 1);
        }
        write_atomic(&dir.join("active"), next.0.to_string().as_bytes())?;
        Ok(next)
    }
}

fn kek_path(dir: &Path, id: KekId) -> PathBuf {
    dir.join(format!("{id}.key"))
}

/// Loads a named 256-bit secret from `dir`, creating it on first use. Several processes
/// creating it at once agree on one: the first link wins and the others read it.
pub fn load_or_create_secret(dir: &Path, name: &str) -> Result<[u8; 32], SealError> {
    ensure_dir(dir)?;
    let path = dir.join(name);
    if !path.exists() {
        publish_new(&path, secret_text(&random_key()?).as_bytes())?;
    }
    read_secret(&path)
}

fn secret_text(key: &[u8; 32]) -> String {
    format!("{}\n", STANDARD.encode(key))
}

fn random_key() -> Result<[u8; 32], SealError> {
    let mut k = [0u8; 32];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| SealError::Random)?;
    Ok(k)
}

fn ensure_dir(dir: &Path) -> Result<(), SealError> {
    fs::create_dir_all(dir).map_err(|e| key_file_error(dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| key_file_error(dir, e))
}

fn read_secret(path: &Path) -> Result<[u8; 32], SealError> {
    let text = fs::read_to_string(path).map_err(|e| key_file_error(path, e))?;
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| key_file_error(path, "is not base64"))?;
    bytes
        .try_into()
        .map_err(|_| key_file_error(path, "does not hold a 256-bit key"))
}

/// A file written in full under a name no other writer uses, synced; removed when dropped (a
/// published copy is a separate hard link and stays).
struct TempFile(PathBuf);

impl TempFile {
    fn write(target: &Path, content: &[u8]) -> Result<TempFile, SealError> {
        let dir = target.parent().unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut nonce = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!(".{name}.{}.{nonce}.tmp", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| key_file_error(&path, e))?;
        let tmp = TempFile(path);
        f.write_all(content)
            .map_err(|e| key_file_error(&tmp.0, e))?;
        f.sync_all().map_err(|e| key_file_error(&tmp.0, e))?;
        Ok(tmp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover is 0600 in a 0700 directory and no reader looks at temp names.
        let _ = fs::remove_file(&self.0);
    }
}

/// Publishes `content` at `path` unless something is there already, never visible half-written
/// or to other users, and on disk when this returns. `Ok(false)`: another writer won; its file
/// stays as it is and is the one to read.
fn publish_new(path: &Path, content: &[u8]) -> Result<bool, SealError> {
    let tmp = TempFile::write(path, content)?;
    let won = match fs::hard_link(&tmp.0, path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(key_file_error(path, e)),
    };
    drop(tmp);
    sync_dir(path)?;
    Ok(won)
}

/// Replaces `path` atomically (the active key id on rotation): written under a unique name,
/// synced, renamed over the old one.
fn write_atomic(path: &Path, content: &[u8]) -> Result<(), SealError> {
    let tmp = TempFile::write(path, content)?;
    fs::rename(&tmp.0, path).map_err(|e| key_file_error(path, e))?;
    sync_dir(path)
}

fn sync_dir(path: &Path) -> Result<(), SealError> {
    if let Some(parent) = path.parent() {
        fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| key_file_error(parent, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::{Binding, open, seal};

    #[test]
    fn create_rotate_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let ring = KeyRing::load_or_create(&dir).unwrap();
        assert_eq!(ring.active_id(), KekId(1));
        let tag = [1u8; 32];
        let b = Binding {
            letter_id: "x",
            sender: "61126228".parse().unwrap(),
            recipient: &tag,
        };
        let old = seal(&ring, &b, b"old letter".to_vec()).unwrap();

        assert_eq!(KeyRing::rotate(&dir).unwrap(), KekId(2));
        let ring = KeyRing::load(&dir).unwrap();
        assert_eq!(ring.active_id(), KekId(2));
        assert_eq!(open(&ring, &b, &old).unwrap(), b"old letter");

        let mode = fs::metadata(dir.join("kek-0002.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn damaged_key_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        KeyRing::load_or_create(dir).unwrap();
        fs::write(dir.join("kek-0001.key"), "not base64!").unwrap();
        let err = KeyRing::load(dir).unwrap_err().to_string();
        assert!(
            err.contains("kek-0001.key") && err.contains("not base64"),
            "{err}"
        );
        fs::write(dir.join("active"), "7").unwrap();
        fs::write(dir.join("kek-0001.key"), STANDARD.encode([0u8; 32])).unwrap();
        let err = KeyRing::load(dir).unwrap_err().to_string();
        assert!(err.contains("kek-0007"), "{err}");
    }

    #[test]
    fn secrets_are_stable() {
        let tmp = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(tmp.path(), "pseudonym.key").unwrap();
        let b = load_or_create_secret(tmp.path(), "pseudonym.key").unwrap();
        assert_eq!(a, b);
    }
}
