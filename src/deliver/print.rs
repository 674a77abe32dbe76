//! The print spool: letters handed to physical print, in batches a print house collects.
//!
//! A batch is written under a temporary name (every file synced), recorded in the store, then
//! published: its manifest written and the directory renamed to `<batch>` in one atomic step.
//! Several gateways may share the spool (a shared volume); each holds a lock on its own instance
//! file and names its temporary batches after itself, so start-up recovery only ever touches
//! batches of instances that are gone. A recovered batch the store knows is published; one it does
//! not know is discarded (its letters are still queued and go into a later batch). Letters that
//! another gateway delivered first are pruned before publishing: a letter is never printed twice.
//!
//! Layout of a published batch (directories 0700, files 0600: this is letter content in clear,
//! for the printer only):
//! ```text
//! spool/print/<batch>/manifest.json
//! spool/print/<batch>/<letter_id>/letter.json        recipient, sender, title, documents
//! spool/print/<batch>/<letter_id>/message.memo.xml   the letter as a MeMo message
//! spool/print/<batch>/<letter_id>/<n>-<filename>     each document
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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
    /// The letter as a MeMo message, for print houses that take MeMo.
    pub memo: Vec<u8>,
}

#[derive(Serialize)]
struct Manifest {
    batch: String,
    created_at_unix_ms: i64,
    letters: usize,
    entries: Vec<LetterFile>,
}

/// `letter.json`: what the printer needs besides the documents.
#[derive(Serialize, Deserialize)]
struct LetterFile {
    letter_id: String,
    message_uuid: String,
    sender_cvr: String,
    sender_name: String,
    recipient: String,
    title: String,
    priority: String,
    documents: Vec<DocumentEntry>,
}

#[derive(Serialize, Deserialize)]
struct DocumentEntry {
    file: String,
    filename: String,
    media_type: String,
    bytes: usize,
    sha256: String,
}

/// A batch a gateway that is gone left half-done.
#[derive(Debug, Clone)]
pub struct Unfinished {
    pub batch: String,
    dir: PathBuf,
    instance: String,
}

#[derive(Clone)]
pub struct PrintSpool {
    dir: PathBuf,
    instance: String,
    /// Held for the life of the process: tells other gateways this instance is alive.
    _alive: Arc<fs::File>,
}

const TMP: &str = ".tmp.";

impl PrintSpool {
    pub fn open(dir: &Path) -> Result<Self, SpoolError> {
        let instances = dir.join(".instances");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&instances)
            .map_err(err(&instances))?;
        let instance = format!("{:016x}", rand::random::<u64>());
        let lock_path = instances.join(format!("{instance}.lock"));
        let lock = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(err(&lock_path))?;
        lock.try_lock().map_err(|e| SpoolError {
            path: lock_path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(PrintSpool {
            dir: dir.to_path_buf(),
            instance,
            _alive: Arc::new(lock),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tmp_dir(&self, batch: &str) -> PathBuf {
        self.dir.join(format!("{TMP}{}.{batch}", self.instance))
    }

    /// Writes a batch's letters under its temporary name, everything synced. Not visible to
    /// the printer until [`PrintSpool::publish`].
    pub fn write_batch(&self, batch: &str, letters: &[PrintLetter]) -> Result<(), SpoolError> {
        let tmp = self.tmp_dir(batch);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(err(&tmp))?;
        }
        mkdir(&tmp)?;
        for p in letters {
            let dir = tmp.join(p.letter_id.to_string());
            mkdir(&dir)?;
            let mut docs = Vec::new();
            for (i, d) in p.letter.documents().enumerate() {
                let file = format!("{}-{}", i + 1, d.filename);
                write_file(&dir.join(&file), &d.content)?;
                docs.push(DocumentEntry {
                    file,
                    filename: d.filename.clone(),
                    media_type: d.media_type.clone(),
                    bytes: d.content.len(),
                    sha256: sha256(&d.content).to_hex(),
                });
            }
            let meta = LetterFile {
                letter_id: p.letter_id.to_string(),
                message_uuid: p.letter.message_uuid.to_string(),
                sender_cvr: p.sender.to_string(),
                sender_name: p.sender_name.clone(),
                recipient: p.letter.recipient.to_string(),
                title: p.letter.title.clone(),
                priority: format!("{:?}", p.letter.priority).to_uppercase(),
                documents: docs,
            };
            write_json(&dir.join("letter.json"), &meta)?;
            write_file(&dir.join("message.memo.xml"), &p.memo)?;
            sync_dir(&dir)?;
        }
        sync_dir(&tmp)?;
        sync_dir(&self.dir)
    }

    /// Publishes one of this gateway's batches, keeping only `keep` (the letters the store
    /// recorded in this batch).
    pub fn publish(&self, batch: &str, keep: &HashSet<LetterId>) -> Result<(), SpoolError> {
        publish_dir(&self.dir, &self.tmp_dir(batch), batch, Some(keep))
    }

    /// Throws away one of this gateway's unpublished batches.
    pub fn discard(&self, batch: &str) -> Result<(), SpoolError> {
        let tmp = self.tmp_dir(batch);
        fs::remove_dir_all(&tmp).map_err(err(&tmp))
    }

    /// Batches left half-done by gateways that are no longer running.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let entry = entry.map_err(err(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((instance, batch)) = name.strip_prefix(TMP).and_then(|r| r.split_once('.'))
            else {
                continue;
            };
            if instance == self.instance || self.instance_alive(instance) {
                continue;
            }
            out.push(Unfinished {
                batch: batch.to_string(),
                dir: entry.path(),
                instance: instance.to_string(),
            });
        }
        Ok(out)
    }

    /// This gateway's instance name, which its temporary batches carry.
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether the gateway that named itself `instance` still runs.
    pub(crate) fn instance_alive(&self, instance: &str) -> bool {
        let path = self.dir.join(".instances").join(format!("{instance}.lock"));
        match fs::OpenOptions::new().write(true).open(&path) {
            // Locked by its (running) owner; the lock is released when the owner's process
            // ends, however it ends.
            Ok(f) => f.try_lock().is_err(),
            Err(_) => false,
        }
    }

    /// Publishes a recovered batch the store recorded (`keep`: its letters per the store).
    pub fn publish_unfinished(
        &self,
        u: &Unfinished,
        keep: &HashSet<LetterId>,
    ) -> Result<(), SpoolError> {
        publish_dir(&self.dir, &u.dir, &u.batch, Some(keep))?;
        self.forget_instance(&u.instance);
        Ok(())
    }

    pub fn discard_unfinished(&self, u: &Unfinished) -> Result<(), SpoolError> {
        fs::remove_dir_all(&u.dir).map_err(err(&u.dir))?;
        self.forget_instance(&u.instance);
        Ok(())
    }

    fn forget_instance(&self, instance: &str) {
        let path = self.dir.join(".instances").join(format!("{instance}.lock"));
        if !self.instance_alive(instance) {
            let _ = fs::remove_file(path);
        }
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

/// Prunes letters not in `keep`, writes the manifest from the letters' own files, and renames
/// the directory into place (synced). Doing nothing when it is already published makes a
/// repeated publish harmless.
fn publish_dir(
    spool: &Path,
    tmp: &Path,
    batch: &str,
    keep: Option<&HashSet<LetterId>>,
) -> Result<(), SpoolError> {
    if !tmp.exists() {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(tmp).map_err(err(tmp))? {
        let entry = entry.map_err(err(tmp))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let id = entry.file_name().to_string_lossy().parse::<LetterId>().ok();
        let kept = match (keep, id) {
            (Some(keep), Some(id)) => keep.contains(&id),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if !kept {
            fs::remove_dir_all(&path).map_err(err(&path))?;
            continue;
        }
        let meta_path = path.join("letter.json");
        let bytes = fs::read(&meta_path).map_err(err(&meta_path))?;
        let meta: LetterFile = serde_json::from_slice(&bytes).map_err(|e| SpoolError {
            path: meta_path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
        entries.push(meta);
    }
    entries.sort_by(|a, b| a.letter_id.cmp(&b.letter_id));
    let done = spool.join(batch);
    if entries.is_empty() {
        fs::remove_dir_all(tmp).map_err(err(tmp))?;
        return sync_dir(spool);
    }
    let manifest = Manifest {
        batch: batch.to_string(),
        created_at_unix_ms: crate::clock::now_ms(),
        letters: entries.len(),
        entries,
    };
    let manifest_path = tmp.join("manifest.json");
    if manifest_path.exists() {
        fs::remove_file(&manifest_path).map_err(err(&manifest_path))?;
    }
    write_json(&manifest_path, &manifest)?;
    sync_dir(tmp)?;
    fs::rename(tmp, &done).map_err(err(&done))?;
    sync_dir(spool)
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

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), SpoolError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| SpoolError {
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    write_file(path, &bytes)
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Document, MessageUuid, Priority};

    fn letter() -> PrintLetter {
        PrintLetter {
            letter_id: LetterId::new(),
            sender: "29403473".parse().unwrap(),
            sender_name: "Styrelsen".into(),
            letter: Letter {
                message_uuid: MessageUuid::random(),
                recipient: "0101901234".parse().unwrap(),
                title: "Afgørelse".into(),
                main_document: Document {
                    filename: "brev.pdf".into(),
                    media_type: "application/pdf".into(),
                    content: b"%PDF".to_vec(),
                },
                attachments: vec![],
                print_fallback: false,
                priority: Priority::Normal,
                sender_reference: String::new(),
            },
            memo: b"<memo:Message/>".to_vec(),
        }
    }

    #[test]
    fn publish_prunes_and_writes_the_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = PrintSpool::open(tmp.path()).unwrap();
        let (a, b) = (letter(), letter());
        spool
            .write_batch("b1", &[letter_copy(&a), letter_copy(&b)])
            .unwrap();
        assert!(
            spool.batches().unwrap().is_empty(),
            "nothing visible before publishing"
        );
        spool
            .publish("b1", &[a.letter_id].into_iter().collect())
            .unwrap();
        let published = tmp.path().join("b1");
        assert!(
            published
                .join(a.letter_id.to_string())
                .join("1-brev.pdf")
                .exists()
        );
        assert!(!published.join(b.letter_id.to_string()).exists(), "pruned");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(published.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["letters"], 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(published.join("manifest.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    fn letter_copy(p: &PrintLetter) -> PrintLetter {
        PrintLetter {
            letter_id: p.letter_id,
            sender: p.sender,
            sender_name: p.sender_name.clone(),
            letter: p.letter.clone(),
            memo: p.memo.clone(),
        }
    }

    #[test]
    fn recovery_touches_only_batches_of_gateways_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let alive = PrintSpool::open(tmp.path()).unwrap();
        let gone = PrintSpool::open(tmp.path()).unwrap();
        let other = PrintSpool::open(tmp.path()).unwrap();
        alive.write_batch("mine", &[letter()]).unwrap();
        gone.write_batch("lost", &[letter()]).unwrap();
        // `other` sees neither its own nor a live gateway's batch as unfinished.
        drop(gone);
        let found = other.unfinished().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].batch, "lost");
        other.discard_unfinished(&found[0]).unwrap();
        assert!(other.unfinished().unwrap().is_empty());
        assert_eq!(alive.unfinished().unwrap().len(), 0);
    }
}
