//! The CA directory on disk: publishing a file so that concurrent writers agree on one winner
//! (written in full under a temporary name, fsynced, then hard-linked), reading a published
//! pair, and the directory's mode and durability. See the module above for why.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

use super::PkiError;
use super::identity::hex;

/// How long to wait for a certificate whose key is already published by another process. The
/// other process only has a hard link left to make, so this is generous.
const PUBLISH_GRACE: Duration = Duration::from_secs(2);
const PUBLISH_POLL: Duration = Duration::from_millis(20);

/// Reads a published (certificate, key) pair: `None` if neither exists yet.
///
/// The certificate is read first: it is published after its key, so if it is there the key must
/// be too. A key alone may be a creator between its two links, so that gets a short wait.
pub(super) fn read_pair(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Option<(String, String)>, PkiError> {
    let incomplete = |present: &Path, missing: &Path| PkiError::Incomplete {
        present: present.display().to_string(),
        missing: missing.display().to_string(),
    };
    if let Some(cert) = read_optional(cert_path)? {
        let key = read_optional(key_path)?.ok_or_else(|| incomplete(cert_path, key_path))?;
        return Ok(Some((cert, key)));
    }
    let Some(key) = read_optional(key_path)? else {
        return Ok(None);
    };
    let deadline = Instant::now() + PUBLISH_GRACE;
    loop {
        if let Some(cert) = read_optional(cert_path)? {
            return Ok(Some((cert, key)));
        }
        if Instant::now() >= deadline {
            return Err(incomplete(key_path, cert_path));
        }
        thread::sleep(PUBLISH_POLL);
    }
}

/// A file written under a unique temporary name; removed when dropped, so a failure or a lost
/// race leaves nothing behind (the published copy is a separate hard link and stays).
pub(super) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `contents` in full and fsyncs it. Mode 0600 from creation: keys are never readable
    /// by others, not even for a moment.
    pub(super) fn write(dir: &Path, name: &str, contents: &str) -> Result<TempFile, PkiError> {
        // Unique per process and call, so concurrent creators never share or truncate a file.
        let mut nonce = [0u8; 8];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| PkiError::Random)?;
        let path = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            hex(&nonce)
        ));
        let io_err = |source| PkiError::Io {
            file: path.display().to_string(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        let tmp = TempFile { path: path.clone() };
        file.write_all(contents.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Ok(tmp)
    }

    /// Links the file to `target`. `Ok(false)` if `target` already exists: someone else won.
    pub(super) fn publish(&self, target: &Path) -> Result<bool, PkiError> {
        match fs::hard_link(&self.path, target) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(PkiError::Io {
                file: target.display().to_string(),
                source,
            }),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Best effort: a leftover is 0600 inside a 0700 directory and nothing reads temp names.
        let _ = fs::remove_file(&self.path);
    }
}

pub(super) fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    let io_err = |source| PkiError::Io {
        file: dir.display().to_string(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err)?;
    // An existing directory keeps its mode through create(); the CA key must not be reachable by
    // others, so tighten it every time.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err)
}

/// Makes the new directory entries durable, so a crash cannot lose a CA that has been handed out.
pub(super) fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PkiError::Io {
            file: dir.display().to_string(),
            source,
        })
}

pub(super) fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        file: path.display().to_string(),
        source,
    })
}

pub(super) fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            file: path.display().to_string(),
            source,
        }),
    }
}
