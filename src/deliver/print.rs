//! The print spool: letters handed to physical print, in batches a print house collects.
//!
//! A batch is written under `.tmp-<batch>` (every file synced), recorded in the store, then
//! renamed to `<batch>` in one atomic step. A crash leaves either a temporary directory whose
//! batch the store does not know (discarded at start-up, its letters still waiting and printed in
//! a later batch) or one it does (published at start-up): a letter is never printed twice.
//!
//! Layout of a published batch (directories 0700, files 0600: this is letter content in clear,
//! for the printer only):
//! ```text
//! spool/print/<batch>/manifest.json
//! spool/print/<batch>/<letter_id>/letter.json        recipient, sender, title, documents
//! spool/print/<batch>/<letter_id>/<n>-<filename>     each document
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::{Cvr, Letter, LetterId};
use crate::seal::sha256;

#[derive(Debug, thiserror::Error)]
#[error("print spool {path}: {source}")]
pub struct SpoolError {
    path: String,
    #[source]
    source: std::io::Error,
}

impl SpoolError {
    pub(crate) fn from_join(e: tokio::task::JoinError) -> Self {
        SpoolError {
            path: "(writer task)".into(),
            source: std::io::Error::other(e),
        }
    }
}

fn err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError {
        path: path.display().to_string(),
        source,
    }
}

/// One letter for print.
pub struct PrintLetter {
    pub letter_id: LetterId,
    pub sender: Cvr,
    pub sender_name: String,
    pub letter: Letter,
}

#[derive(Serialize)]
struct ManifestEntry {
    letter_id: String,
    sender_cvr: String,
    recipient: String,
    documents: usize,
    content_bytes: usize,
}

#[derive(Serialize)]
struct Manifest {
    batch: String,
    created_at_unix_ms: i64,
    letters: usize,
    entries: Vec<ManifestEntry>,
}

#[derive(Serialize)]
struct LetterFile<'a> {
    letter_id: String,
    message_uuid: String,
    sender_cvr: String,
    sender_name: &'a str,
    recipient: String,
    title: &'a str,
    priority: &'static str,
    documents: Vec<DocumentEntry<'a>>,
}

#[derive(Serialize)]
struct DocumentEntry<'a> {
    file: String,
    filename: &'a str,
    media_type: &'a str,
    bytes: usize,
    sha256: String,
}

#[derive(Clone)]
pub struct PrintSpool {
    dir: PathBuf,
}

impl PrintSpool {
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err(dir))?;
        Ok(PrintSpool {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a batch under its temporary name, everything synced. Not visible to the printer
    /// until [`PrintSpool::publish`].
    pub fn write_batch(&self, batch: &str, letters: &[PrintLetter]) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!(".tmp-{batch}"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(err(&tmp))?;
        }
        mkdir(&tmp)?;
        let mut entries = Vec::with_capacity(letters.len());
        for p in letters {
            let dir = tmp.join(p.letter_id.to_string());
            mkdir(&dir)?;
            let mut docs = Vec::new();
            for (i, d) in p.letter.documents().enumerate() {
                let file = format!("{}-{}", i + 1, d.filename);
                write_file(&dir.join(&file), &d.content)?;
                docs.push(DocumentEntry {
                    file,
                    filename: &d.filename,
                    media_type: &d.media_type,
                    bytes: d.content.len(),
                    sha256: sha256(&d.content).to_hex(),
                });
            }
            let meta = LetterFile {
                letter_id: p.letter_id.to_string(),
                message_uuid: p.letter.message_uuid.to_string(),
                sender_cvr: p.sender.to_string(),
                sender_name: &p.sender_name,
                recipient: p.letter.recipient.to_string(),
                title: &p.letter.title,
                priority: match p.letter.priority {
                    crate::domain::Priority::Bulk => "BULK",
                    crate::domain::Priority::Normal => "NORMAL",
                    crate::domain::Priority::Urgent => "URGENT",
                },
                documents: docs,
            };
            write_json(&dir.join("letter.json"), &meta, &dir)?;
            sync_dir(&dir)?;
            entries.push(ManifestEntry {
                letter_id: p.letter_id.to_string(),
                sender_cvr: p.sender.to_string(),
                recipient: p.letter.recipient.to_string(),
                documents: 1 + p.letter.attachments.len(),
                content_bytes: p.letter.content_len(),
            });
        }
        let manifest = Manifest {
            batch: batch.to_string(),
            created_at_unix_ms: crate::clock::now_ms(),
            letters: entries.len(),
            entries,
        };
        write_json(&tmp.join("manifest.json"), &manifest, &tmp)?;
        sync_dir(&tmp)?;
        sync_dir(&self.dir)
    }

    /// Makes a written batch visible to the printer (atomic rename, synced).
    pub fn publish(&self, batch: &str) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!(".tmp-{batch}"));
        let done = self.dir.join(batch);
        if tmp.exists() {
            fs::rename(&tmp, &done).map_err(err(&done))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Batches left half-done by a crash.
    pub fn unfinished(&self) -> Result<Vec<String>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let entry = entry.map_err(err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(batch) = name.strip_prefix(".tmp-") {
                out.push(batch.to_string());
            }
        }
        Ok(out)
    }

    pub fn discard(&self, batch: &str) -> Result<(), SpoolError> {
        let tmp = self.dir.join(format!(".tmp-{batch}"));
        fs::remove_dir_all(&tmp).map_err(err(&tmp))
    }

    /// Published batches (for tests and the demo summary).
    pub fn batches(&self) -> Result<Vec<PathBuf>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let entry = entry.map_err(err(&self.dir))?;
            if !entry.file_name().to_string_lossy().starts_with('.') {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

fn mkdir(dir: &Path) -> Result<(), SpoolError> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(err(dir))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err(path))?;
    f.write_all(data).map_err(err(path))?;
    f.sync_all().map_err(err(path))
}

fn write_json<T: Serialize>(path: &Path, value: &T, dir: &Path) -> Result<(), SpoolError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| SpoolError {
        path: dir.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_file(path, &bytes)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))
}
