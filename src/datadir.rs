//! The data directory's layout, and the lock that keeps a second `serve` off it.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another brevdue gateway{holder} is already serving from {path}; stop it first or use another --data-dir"
    )]
    Locked { path: String, holder: String },
}

#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating, mode 0700) a data directory.
    pub fn create(root: &Path) -> Result<Self, DataDirError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|source| DataDirError::Io {
                path: root.display().to_string(),
                source,
            })?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Key-encryption keys and the pseudonym and registry secrets.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The gateway CA and server certificate.
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }

    /// Published print batches: what the print house collects.
    pub fn print_spool(&self) -> PathBuf {
        self.root.join("spool").join("print")
    }

    /// Print batches being staged; beside the print spool, on the same volume, so publishing
    /// is one rename and the print house never sees a batch half-written.
    pub fn print_staging(&self) -> PathBuf {
        self.root.join("spool").join("staging")
    }

    /// The mailbox hand-offs' MeMo messages, sealed (see `deliver::mailbox`).
    pub fn mailbox_outbox(&self) -> PathBuf {
        self.root.join("spool").join("mailbox")
    }

    /// Takes the serve lock. The lock is the operating system's (flock): it is released when
    /// the process exits however it exits, so a killed gateway never blocks a restart.
    pub fn lock(&self) -> Result<DirLock, DataDirError> {
        let path = self.root.join("serve.lock");
        let io = |source| DataDirError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // Only for the message: an unreadable pid still refuses the second process.
                let _ = file.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(DataDirError::Locked {
                    path: self.root.display().to_string(),
                    holder: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock { _file: file })
    }
}

/// Held while serving; dropping it releases the lock.
pub struct DirLock {
    _file: fs::File,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::create(tmp.path()).unwrap();
        let held = d.lock().unwrap();
        let err = d.lock().err().unwrap().to_string();
        assert!(err.contains("already serving"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        assert!(d.lock().is_ok());
    }
}
