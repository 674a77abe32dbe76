//! The print spool: letters handed to physical print, in batches a print house collects.
//!
//! A batch is staged letter by letter under a temporary name in the staging directory (every
//! file synced), then published: its manifest written and the directory renamed into the print
//! directory in one atomic step. The staging directory sits beside the print directory on the
//! same volume (the rename needs that), so the print house only ever sees published batches.
//!
//! One letter never spoils a batch: each letter is staged on its own and a letter that cannot be
//! written is taken out again, while the others stay. No text a sender chose is ever part of a
//! path: documents are stored as `<n>.<extension from the media type>`, and the sender's file
//! name is kept in `letter.json` and the manifest. A batch that is given up (its publishing
//! failed, or the store could not record it) has its staged files removed at once: they are
//! letter content in clear.
//!
//! Several gateways may share the spool (a shared volume); each holds a lock on its own instance
//! file and names its staged batches after itself, so start-up recovery only ever touches
//! batches of instances that are gone. A recovered batch the store knows is published; one it
//! does not know is discarded (its letters are still queued and go into a later batch).
//!
//! Layout (directories 0700, files 0600: this is letter content in clear, for the printer only):
//! ```text
//! spool/print/<batch>/manifest.json
//! spool/print/<batch>/<letter_id>/letter.json        recipient, sender, title, documents
//! spool/print/<batch>/<letter_id>/message.memo.xml   the letter as a MeMo message
//! spool/print/<batch>/<letter_id>/<n>.<ext>          each document (its name in letter.json)
//! spool/staging/.tmp.<instance>.<batch>/…            batches being staged
//! spool/staging/.instances/<instance>.lock           held by each running gateway
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
    /// Where published batches appear: the print house's directory.
    dir: PathBuf,
    /// Where batches are staged; on the same volume as `dir`.
    staging: PathBuf,
    instance: String,
    /// Held for the life of the process: tells other gateways this instance is alive.
    _alive: Arc<fs::File>,
}

const TMP: &str = ".tmp.";

impl PrintSpool {
    /// Opens the spool publishing into `dir` and staging in `staging` (created if missing).
    pub fn open(dir: &Path, staging: &Path) -> Result<Self, SpoolError> {
        // A print volume that is down must not stop intake: publishing fails and is retried
        // (the letters wait) until it is back.
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            tracing::warn!(error = %e, "the print directory is not usable; print batches wait until it is");
        }
        let instances = staging.join(".instances");
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
            staging: staging.to_path_buf(),
            instance,
            _alive: Arc::new(lock),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tmp_dir(&self, batch: &str) -> PathBuf {
        self.staging.join(format!("{TMP}{}.{batch}", self.instance))
    }

    /// Starts staging a batch. Nothing of it is visible to the printer until
    /// [`StagedBatch::publish`]; dropping it unpublished removes what was staged.
    pub fn begin(&self, batch: &str) -> Result<StagedBatch, SpoolError> {
        let tmp = self.tmp_dir(batch);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(err(&tmp))?;
        }
        mkdir(&tmp)?;
        Ok(StagedBatch {
            spool: self.dir.clone(),
            tmp,
            batch: batch.to_string(),
            letters: Vec::new(),
            bytes: 0,
            done: false,
        })
    }

    /// Whether a batch is published (in the print directory).
    pub fn is_published(&self, batch: &str) -> bool {
        self.dir.join(batch).join("manifest.json").exists()
    }

    /// Whether a live gateway (this one included) is staging `batch` right now.
    pub fn is_being_staged(&self, batch: &str) -> Result<bool, SpoolError> {
        for entry in fs::read_dir(&self.staging).map_err(err(&self.staging))? {
            let entry = entry.map_err(err(&self.staging))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some((instance, b)) = name.strip_prefix(TMP).and_then(|r| r.split_once('.'))
                && b == batch
                && (instance == self.instance || self.instance_alive(instance))
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Batches left half-done by gateways that are no longer running.
    pub fn unfinished(&self) -> Result<Vec<Unfinished>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.staging).map_err(err(&self.staging))? {
            let entry = entry.map_err(err(&self.staging))?;
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
        let path = self
            .staging
            .join(".instances")
            .join(format!("{instance}.lock"));
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
        publish_dir(&self.dir, &u.dir, &u.batch, keep)?;
        self.forget_instance(&u.instance);
        Ok(())
    }

    pub fn discard_unfinished(&self, u: &Unfinished) -> Result<(), SpoolError> {
        fs::remove_dir_all(&u.dir).map_err(err(&u.dir))?;
        self.forget_instance(&u.instance);
        Ok(())
    }

    fn forget_instance(&self, instance: &str) {
        let path = self
            .staging
            .join(".instances")
            .join(format!("{instance}.lock"));
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

/// A batch being staged by this gateway. Letters are added one at a time, so a worker holds one
/// letter's content at a time whatever the batch's size. Dropped unpublished (a failure, a
/// batch given up), it removes its staged files at once.
pub struct StagedBatch {
    spool: PathBuf,
    tmp: PathBuf,
    batch: String,
    letters: Vec<LetterId>,
    bytes: u64,
    /// Published, or handed to nobody: nothing left to remove.
    done: bool,
}

impl StagedBatch {
    pub fn name(&self) -> &str {
        &self.batch
    }

    /// The letters staged so far.
    pub fn letters(&self) -> &[LetterId] {
        &self.letters
    }

    /// Document bytes staged so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Stages one letter, synced. A letter that cannot be written is taken out again and the
    /// batch goes on without it.
    pub fn add(&mut self, p: &PrintLetter) -> Result<(), SpoolError> {
        let dir = self.tmp.join(p.letter_id.to_string());
        match stage_letter(&dir, p) {
            Ok(bytes) => {
                self.letters.push(p.letter_id);
                self.bytes += bytes;
                Ok(())
            }
            Err(e) => {
                // Best effort: a leftover is pruned at publishing (it is not in `keep`).
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Publishes the batch with only `keep` (the letters the store recorded in this batch).
    /// On failure nothing is published and the staged files are removed.
    pub fn publish(mut self, keep: &HashSet<LetterId>) -> Result<(), SpoolError> {
        sync_dir(&self.tmp)?;
        publish_dir(&self.spool, &self.tmp, &self.batch, keep)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for StagedBatch {
    fn drop(&mut self) {
        if !self.done
            && self.tmp.exists()
            && let Err(e) = fs::remove_dir_all(&self.tmp)
        {
            tracing::error!(error = %e, batch = %self.batch, "could not remove a print batch that was given up; start-up recovery removes it");
        }
    }
}

/// Writes one letter's directory; returns the document bytes written.
fn stage_letter(dir: &Path, p: &PrintLetter) -> Result<u64, SpoolError> {
    mkdir(dir)?;
    let mut docs = Vec::new();
    let mut bytes = 0u64;
    for (i, d) in p.letter.documents().enumerate() {
        // Never the sender's name: it may be too long for the file system (255 bytes, and a
        // Danish letter is two bytes in UTF-8) or mean something to it.
        let file = format!("{}.{}", i + 1, extension(&d.media_type));
        write_file(&dir.join(&file), &d.content)?;
        bytes += d.content.len() as u64;
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
    sync_dir(dir)?;
    Ok(bytes)
}

/// A file extension for a document from its (validated) media type, from a fixed list.
fn extension(media_type: &str) -> &'static str {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        "text/html" => "html",
        "application/xml" | "text/xml" => "xml",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/gif" => "gif",
        "image/tiff" => "tif",
        _ => "bin",
    }
}

/// Prunes letters not in `keep`, writes the manifest from the letters' own files, and renames
/// the directory into place (synced). An already published batch is left as it is, so a
/// repeated publish is harmless; a staged directory that is neither there nor published is an
/// error, never taken for success.
fn publish_dir(
    spool: &Path,
    tmp: &Path,
    batch: &str,
    keep: &HashSet<LetterId>,
) -> Result<(), SpoolError> {
    let done = spool.join(batch);
    if !tmp.exists() {
        if done.join("manifest.json").exists() {
            return Ok(());
        }
        return Err(SpoolError {
            path: tmp.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the staged batch is gone and was never published",
            ),
        });
    }
    let mut entries = Vec::new();
    for entry in fs::read_dir(tmp).map_err(err(tmp))? {
        let entry = entry.map_err(err(tmp))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let id = entry.file_name().to_string_lossy().parse::<LetterId>().ok();
        if !id.is_some_and(|id| keep.contains(&id)) {
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
    if entries.is_empty() {
        fs::remove_dir_all(tmp).map_err(err(tmp))?;
        return Ok(());
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
    sync_dir(spool)?;
    if let Some(staging) = tmp.parent() {
        sync_dir(staging)?;
    }
    Ok(())
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

    fn open_spool(root: &Path) -> PrintSpool {
        PrintSpool::open(&root.join("print"), &root.join("staging")).unwrap()
    }

    fn stage(spool: &PrintSpool, batch: &str, letters: &[&PrintLetter]) -> StagedBatch {
        let mut b = spool.begin(batch).unwrap();
        for l in letters {
            b.add(l).unwrap();
        }
        b
    }

    #[test]
    fn publish_prunes_and_writes_the_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = open_spool(tmp.path());
        let (a, b) = (letter(), letter());
        let staged = stage(&spool, "b1", &[&a, &b]);
        assert!(
            spool.batches().unwrap().is_empty(),
            "nothing visible before publishing"
        );
        staged
            .publish(&[a.letter_id].into_iter().collect())
            .unwrap();
        let published = tmp.path().join("print").join("b1");
        let doc = published.join(a.letter_id.to_string()).join("1.pdf");
        assert_eq!(fs::read(doc).unwrap(), b"%PDF");
        assert!(!published.join(b.letter_id.to_string()).exists(), "pruned");
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(published.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["letters"], 1);
        assert_eq!(
            manifest["entries"][0]["documents"][0]["filename"],
            "brev.pdf"
        );
        assert_eq!(manifest["entries"][0]["documents"][0]["file"], "1.pdf");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(published.join("manifest.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_sender_file_name_is_never_a_path() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = open_spool(tmp.path());
        let mut long = letter();
        long.letter.main_document.filename = format!("{}.pdf", "æ".repeat(128));
        let staged = stage(&spool, "b2", &[&long]);
        staged
            .publish(&[long.letter_id].into_iter().collect())
            .unwrap();
        let dir = tmp.path().join("print/b2").join(long.letter_id.to_string());
        assert!(dir.join("1.pdf").exists());
        let meta: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("letter.json")).unwrap()).unwrap();
        assert_eq!(
            meta["documents"][0]["filename"],
            long.letter.main_document.filename
        );
    }

    #[test]
    fn a_batch_given_up_leaves_nothing_staged_and_a_lost_one_is_no_success() {
        let tmp = tempfile::tempdir().unwrap();
        let spool = open_spool(tmp.path());
        let a = letter();
        drop(stage(&spool, "b3", &[&a]));
        let staged: Vec<_> = fs::read_dir(tmp.path().join("staging"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != ".instances")
            .collect();
        assert!(staged.is_empty(), "{staged:?}");
        let keep = [a.letter_id].into_iter().collect();
        let lost = spool.tmp_dir("b4");
        assert!(publish_dir(spool.dir(), &lost, "b4", &keep).is_err());
    }

    #[test]
    fn recovery_touches_only_batches_of_gateways_that_are_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let alive = open_spool(tmp.path());
        let gone = open_spool(tmp.path());
        let other = open_spool(tmp.path());
        let mine = stage(&alive, "mine", &[&letter()]);
        let lost = stage(&gone, "lost", &[&letter()]);
        // A crash: the staged files stay behind.
        std::mem::forget(lost);
        drop(gone);
        // `other` sees neither its own nor a live gateway's batch as unfinished.
        let found = other.unfinished().unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].batch, "lost");
        assert!(other.is_being_staged("mine").unwrap());
        assert!(!other.is_being_staged("lost").unwrap());
        other.discard_unfinished(&found[0]).unwrap();
        assert!(other.unfinished().unwrap().is_empty());
        assert_eq!(alive.unfinished().unwrap().len(), 0);
        drop(mine);
    }
}
