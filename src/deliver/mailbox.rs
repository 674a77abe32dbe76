//! The mailbox outbox: every letter handed to a mailbox, as the MeMo message Digital Post takes,
//! kept sealed. A letter that came as MeMo is kept byte for byte as the sender sent it; one sent
//! as fields gets a message written in `memo.produce_version`.
//!
//! One file per delivery batch, so a batch costs the same few fsyncs however many letters it
//! holds: the mailbox route carries most of the traffic. Each record is one letter: a small JSON
//! header (letter id, sender, recipient pseudonym, key id, wrapped data key, nonce) and the MeMo
//! message sealed like the letter itself, with its own data key, as raw bytes (no base64: the
//! route is hot). The sealed message's authenticated data names the letter id with a `/memo`
//! suffix, so the sealed message and the sealed letter cannot be swapped for each other.
//! Framing: `u32` header length, header, `u64` ciphertext length, ciphertext (big-endian).
//!
//! The batch protocol is the print spool's: written under a temporary name (synced), recorded in
//! the store, then published by an atomic rename, after pruning letters another gateway delivered
//! first. Start-up recovery publishes the batches of gateways that are gone when the store knows
//! them and discards them when it does not (their letters are still queued). Temporary names
//! carry the print spool's instance name, whose lock tells whether their owner still runs.
//!
//! ```text
//! spool/mailbox/<batch>.sealed                        published
//! spool/mailbox/.tmp.<instance>.<batch>.sealed        being written
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::domain::{Cvr, LetterId};
use crate::seal::{Binding, KekId, KeyRing, RecipientTag, SealError, Sealed, open, seal};

use super::print::PrintSpool;

const TMP: &str = ".tmp.";
const EXT: &str = ".sealed";
/// Longest record header accepted when reading: ids, key material and a nonce need far less.
const MAX_HEADER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("mailbox outbox {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mailbox outbox {path}: record {record} is not an outbox entry: {problem}")]
    Corrupt {
        path: String,
        record: usize,
        problem: String,
    },
    #[error("sealing a MeMo message for the mailbox: {0}")]
    Seal(#[from] SealError),
    #[error("mailbox outbox writer task: {0}")]
    Task(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One letter in the outbox, sealed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboxEntry {
    pub letter_id: String,
    pub sender: String,
    /// Hex of the recipient pseudonym: the recipient id never appears in clear.
    pub recipient_tag: String,
    pub kek_id: u32,
    pub wrapped_key: String,
    pub nonce: String,
    /// The sealed MeMo message, stored raw after the header.
    #[serde(skip)]
    pub ciphertext: Vec<u8>,
}

fn memo_binding_id(letter_id: LetterId) -> String {
    format!("{letter_id}/memo")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl OutboxEntry {
    /// Seals `memo` for the letter's mailbox.
    pub fn seal(
        ring: &KeyRing,
        letter_id: LetterId,
        sender: Cvr,
        recipient: &RecipientTag,
        memo: Vec<u8>,
    ) -> Result<Self, OutboxError> {
        let id = memo_binding_id(letter_id);
        let binding = Binding {
            letter_id: &id,
            sender,
            recipient,
        };
        let sealed = seal(ring, &binding, memo)?;
        Ok(OutboxEntry {
            letter_id: letter_id.to_string(),
            sender: sender.to_string(),
            recipient_tag: hex(recipient),
            kek_id: sealed.kek_id.0,
            wrapped_key: STANDARD.encode(&sealed.wrapped_key),
            nonce: STANDARD.encode(sealed.nonce),
            ciphertext: sealed.ciphertext,
        })
    }

    /// The MeMo message, opened with the key ring (which proves it was not altered).
    pub fn open(&self, ring: &KeyRing) -> Result<Vec<u8>, SealError> {
        let tampered = || SealError::Tampered;
        let letter_id: LetterId = self.letter_id.parse().map_err(|_| tampered())?;
        let sender: Cvr = self.sender.parse().map_err(|_| tampered())?;
        let recipient: RecipientTag = unhex(&self.recipient_tag)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(tampered)?;
        let nonce = STANDARD
            .decode(&self.nonce)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(tampered)?;
        let sealed = Sealed {
            kek_id: KekId(self.kek_id),
            wrapped_key: STANDARD.decode(&self.wrapped_key).map_err(|_| tampered())?,
            nonce,
            ciphertext: self.ciphertext.clone(),
        };
        let id = memo_binding_id(letter_id);
        let binding = Binding {
            letter_id: &id,
            sender,
            recipient: &recipient,
        };
        open(ring, &binding, &sealed)
    }
}

/// A batch a gateway that is gone left unpublished.
#[derive(Debug, Clone)]
pub struct UnfinishedBatch {
    pub batch: String,
    path: PathBuf,
}

#[derive(Clone)]
pub struct MailboxOutbox {
    dir: PathBuf,
    /// Whose instance name and lock the temporary files carry.
    spool: PrintSpool,
}

impl MailboxOutbox {
    pub fn open(dir: &Path, spool: &PrintSpool) -> Result<Self, OutboxError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        Ok(MailboxOutbox {
            dir: dir.to_path_buf(),
            spool: spool.clone(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn tmp_path(&self, batch: &str) -> PathBuf {
        self.dir
            .join(format!("{TMP}{}.{batch}{EXT}", self.spool.instance()))
    }

    /// Writes a batch under its temporary name, synced. Not published until [`Self::publish`].
    pub fn write_batch(&self, batch: &str, entries: &[OutboxEntry]) -> Result<(), OutboxError> {
        let path = self.tmp_path(batch);
        write_entries(&path, entries.iter())?;
        sync_dir(&self.dir)
    }

    /// Starts writing batch `batch` under its temporary name, entry by entry.
    pub fn begin_batch(&self, batch: &str) -> Result<OutboxWriter, OutboxError> {
        let path = self.tmp_path(batch);
        Ok(OutboxWriter {
            batch: batch.to_string(),
            file: create_tmp(&path)?,
            path,
            dir: self.dir.clone(),
            written: 0,
            bytes: 0,
            broken: false,
        })
    }

    /// Publishes one of this gateway's batches with only the letters in `keep` (those the store
    /// recorded in it). `written` is how many letters [`Self::write_batch`] wrote: when the store
    /// recorded them all, as it nearly always does, the file is renamed without being read back.
    pub fn publish(
        &self,
        batch: &str,
        keep: &HashSet<LetterId>,
        written: usize,
    ) -> Result<(), OutboxError> {
        let tmp = self.tmp_path(batch);
        if keep.len() == written && tmp.exists() {
            let done = self.dir.join(format!("{batch}{EXT}"));
            fs::rename(&tmp, &done).map_err(io(&done))?;
            return sync_dir(&self.dir);
        }
        publish_file(&self.dir, &tmp, batch, keep)
    }

    /// Batches of gateways that no longer run.
    pub fn unfinished(&self) -> Result<Vec<UnfinishedBatch>, OutboxError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((instance, batch)) = name
                .strip_prefix(TMP)
                .and_then(|r| r.strip_suffix(EXT))
                .and_then(|r| r.split_once('.'))
            else {
                continue;
            };
            if instance == self.spool.instance() || self.spool.instance_alive(instance) {
                continue;
            }
            out.push(UnfinishedBatch {
                batch: batch.to_string(),
                path: entry.path(),
            });
        }
        Ok(out)
    }

    /// Publishes a recovered batch with the letters the store recorded in it; discards it when
    /// the store recorded none.
    pub fn finish_unfinished(
        &self,
        u: &UnfinishedBatch,
        keep: &HashSet<LetterId>,
    ) -> Result<(), OutboxError> {
        publish_file(&self.dir, &u.path, &u.batch, keep)
    }

    /// Published batches, oldest name first (for tests and operators).
    pub fn batches(&self) -> Result<Vec<PathBuf>, OutboxError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if !name.starts_with('.') && name.ends_with(EXT) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The entries of a batch file.
pub fn read_batch(path: &Path) -> Result<Vec<OutboxEntry>, OutboxError> {
    let (entries, cut) = parse_batch(path)?;
    match cut {
        Some(e) => Err(e),
        None => Ok(entries),
    }
}

/// The complete entries of a batch file and, when its end is not a whole entry (a write cut
/// short by a crash or a full disk), why.
fn parse_batch(path: &Path) -> Result<(Vec<OutboxEntry>, Option<OutboxError>), OutboxError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let corrupt = |record: usize, problem: String| OutboxError::Corrupt {
        path: path.display().to_string(),
        record,
        problem,
    };
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let record = out.len() + 1;
        let len = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt(record, "truncated header length".into()));
        let (len, after) = match len {
            Ok(v) => v,
            Err(e) => return Ok((out, Some(e))),
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_HEADER || after.len() < len {
            return Ok((out, Some(corrupt(record, format!("header of {len} bytes")))));
        }
        let (header, after) = after.split_at(len);
        let mut entry: OutboxEntry = match serde_json::from_slice(header) {
            Ok(e) => e,
            Err(e) => return Ok((out, Some(corrupt(record, e.to_string())))),
        };
        let Some((ct_len, after)) = after.split_first_chunk::<8>() else {
            return Ok((
                out,
                Some(corrupt(record, "truncated message length".into())),
            ));
        };
        let ct_len = usize::try_from(u64::from_be_bytes(*ct_len)).unwrap_or(usize::MAX);
        if after.len() < ct_len {
            return Ok((
                out,
                Some(corrupt(
                    record,
                    format!("message of {ct_len} bytes is cut short"),
                )),
            ));
        }
        let (ciphertext, after) = after.split_at(ct_len);
        entry.ciphertext = ciphertext.to_vec();
        out.push(entry);
        rest = after;
    }
    Ok((out, None))
}

fn create_tmp(path: &Path) -> Result<std::io::BufWriter<fs::File>, OutboxError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    // Streamed through a small buffer: the batch is never copied whole in memory.
    Ok(std::io::BufWriter::with_capacity(1 << 20, f))
}

fn append_entry(w: &mut impl Write, path: &Path, e: &OutboxEntry) -> Result<(), OutboxError> {
    // Plain strings and numbers: serialising cannot fail, but a failure is still reported.
    let header = serde_json::to_vec(e).map_err(|err| OutboxError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(err),
    })?;
    w.write_all(&(header.len() as u32).to_be_bytes())
        .and_then(|()| w.write_all(&header))
        .and_then(|()| w.write_all(&(e.ciphertext.len() as u64).to_be_bytes()))
        .and_then(|()| w.write_all(&e.ciphertext))
        .map_err(io(path))
}

fn finish_tmp(w: std::io::BufWriter<fs::File>, path: &Path) -> Result<(), OutboxError> {
    let f = w.into_inner().map_err(|e| io(path)(e.into_error()))?;
    f.sync_all().map_err(io(path))?;
    // The gateway does not read a batch again (it is renamed into place as it is), so its
    // pages go back to the kernel now, not when the cache has filled the machine.
    crate::page_cache::drop_cached(&f, 0, 0);
    Ok(())
}

fn write_entries<'e>(
    path: &Path,
    entries: impl Iterator<Item = &'e OutboxEntry>,
) -> Result<(), OutboxError> {
    let mut w = create_tmp(path)?;
    for e in entries {
        append_entry(&mut w, path, e)?;
    }
    finish_tmp(w, path)
}

/// A batch being written under its temporary name, one entry at a time as delivery makes
/// them: a round keeps none of its MeMo messages in memory. Durable once [`Self::finish`]ed,
/// published like a batch from [`MailboxOutbox::write_batch`].
pub struct OutboxWriter {
    batch: String,
    path: PathBuf,
    dir: PathBuf,
    file: std::io::BufWriter<fs::File>,
    written: usize,
    bytes: u64,
    /// A write failed: how much of it reached the file is unknown, so the batch cannot be
    /// published; its letters go back to the queue.
    broken: bool,
}

impl OutboxWriter {
    pub fn batch(&self) -> &str {
        &self.batch
    }

    /// Entries appended so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Sealed bytes appended so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one entry (buffered; durable with [`Self::finish`]).
    pub fn append(&mut self, e: &OutboxEntry) -> Result<(), OutboxError> {
        if self.broken {
            return Err(OutboxError::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::other("an earlier write to this batch failed"),
            });
        }
        let r = append_entry(&mut self.file, &self.path, e);
        match &r {
            Ok(()) => {
                self.written += 1;
                self.bytes += e.ciphertext.len() as u64;
            }
            Err(_) => self.broken = true,
        }
        r
    }

    /// Makes the batch durable under its temporary name (file and directory synced). A
    /// broken batch is removed instead and refused.
    pub fn finish(self) -> Result<(), OutboxError> {
        if self.broken {
            let _ = fs::remove_file(&self.path);
            return Err(OutboxError::Io {
                path: self.path.display().to_string(),
                source: std::io::Error::other("a write to this batch failed"),
            });
        }
        finish_tmp(self.file, &self.path)?;
        sync_dir(&self.dir)
    }
}

/// Prunes what the store did not record, then renames into place (synced). Nothing to do when
/// the temporary file is gone: a repeated publish is harmless.
fn publish_file(
    dir: &Path,
    tmp: &Path,
    batch: &str,
    keep: &HashSet<LetterId>,
) -> Result<(), OutboxError> {
    if !tmp.exists() {
        return Ok(());
    }
    // A file still being written when its gateway died (or the disk filled) may end in a
    // partial entry. Its letter was not yet recorded as delivered (entries are synced before
    // the store records them), so the complete entries are what counts; if the store did
    // record a letter whose entry is not whole, nothing is published and the error stands.
    let (entries, cut) = parse_batch(tmp)?;
    let kept: Vec<&OutboxEntry> = entries
        .iter()
        .filter(|e| e.letter_id.parse().is_ok_and(|id| keep.contains(&id)))
        .collect();
    let was_cut = cut.is_some();
    if let Some(e) = cut
        && kept.len() < keep.len()
    {
        return Err(e);
    }
    if kept.is_empty() {
        fs::remove_file(tmp).map_err(io(tmp))?;
        return sync_dir(dir);
    }
    if kept.len() < entries.len() || was_cut {
        write_entries(tmp, kept.into_iter())?;
    }
    let done = dir.join(format!("{batch}{EXT}"));
    fs::rename(tmp, &done).map_err(io(&done))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(dir: &Path) -> KeyRing {
        KeyRing::load_or_create(dir).expect("key ring")
    }

    #[test]
    fn entries_are_sealed_and_open_only_with_their_binding() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let id = LetterId::new();
        let sender: Cvr = "61126228".parse().unwrap();
        let tag = [7u8; 32];
        let memo = b"<memo:Message>secret</memo:Message>".to_vec();
        let e = OutboxEntry::seal(&ring, id, sender, &tag, memo.clone()).unwrap();
        assert!(!e.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(e.open(&ring).unwrap(), memo);
        let mut other = e.clone();
        other.recipient_tag = hex(&[8u8; 32]);
        assert!(other.open(&ring).is_err());
        let mut other = e.clone();
        other.letter_id = LetterId::new().to_string();
        assert!(other.open(&ring).is_err());
    }

    #[test]
    fn a_batch_is_published_with_only_the_recorded_letters() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let spool =
            PrintSpool::open(&dir.path().join("print"), &dir.path().join("staging")).unwrap();
        let outbox = MailboxOutbox::open(&dir.path().join("mailbox"), &spool).unwrap();
        let sender: Cvr = "61126228".parse().unwrap();
        let ids = [LetterId::new(), LetterId::new()];
        let entries: Vec<OutboxEntry> = ids
            .iter()
            .map(|id| OutboxEntry::seal(&ring, *id, sender, &[1; 32], b"m".to_vec()).unwrap())
            .collect();
        outbox.write_batch("b1", &entries).unwrap();
        assert!(outbox.batches().unwrap().is_empty(), "not yet published");
        outbox.publish("b1", &HashSet::from([ids[1]]), 2).unwrap();
        let published = outbox.batches().unwrap();
        assert_eq!(published.len(), 1);
        let read = read_batch(&published[0]).unwrap();
        assert_eq!(read, vec![entries[1].clone()]);
        // Publishing again changes nothing.
        outbox.publish("b1", &HashSet::from([ids[1]]), 2).unwrap();
        assert_eq!(outbox.batches().unwrap().len(), 1);
        // Nothing recorded: nothing published.
        outbox.write_batch("b2", &entries).unwrap();
        outbox.publish("b2", &HashSet::new(), 2).unwrap();
        assert_eq!(outbox.batches().unwrap().len(), 1);
        // All recorded: published as written.
        outbox.write_batch("b3", &entries).unwrap();
        outbox.publish("b3", &ids.into_iter().collect(), 2).unwrap();
        let published = outbox.batches().unwrap();
        assert_eq!(published.len(), 2);
        assert_eq!(read_batch(&published[1]).unwrap(), entries);
        assert!(outbox.unfinished().unwrap().is_empty());
    }

    #[test]
    fn a_batch_written_entry_by_entry_reads_back_like_one_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let spool =
            PrintSpool::open(&dir.path().join("print"), &dir.path().join("staging")).unwrap();
        let outbox = MailboxOutbox::open(&dir.path().join("mailbox"), &spool).unwrap();
        let sender: Cvr = "61126228".parse().unwrap();
        let ids = [LetterId::new(), LetterId::new(), LetterId::new()];
        let entries: Vec<OutboxEntry> = ids
            .iter()
            .map(|id| OutboxEntry::seal(&ring, *id, sender, &[1; 32], b"memo".to_vec()).unwrap())
            .collect();
        let mut w = outbox.begin_batch("s1").unwrap();
        for e in &entries {
            w.append(e).unwrap();
        }
        assert_eq!(w.written(), 3);
        assert_eq!(
            w.bytes(),
            entries
                .iter()
                .map(|e| e.ciphertext.len() as u64)
                .sum::<u64>()
        );
        w.finish().unwrap();
        assert!(outbox.batches().unwrap().is_empty(), "not yet published");
        outbox
            .publish("s1", &HashSet::from([ids[0], ids[2]]), 3)
            .unwrap();
        let published = outbox.batches().unwrap();
        assert_eq!(
            read_batch(&published[0]).unwrap(),
            vec![entries[0].clone(), entries[2].clone()],
            "pruned to what the store recorded"
        );
    }
}
