//! Letter ciphertext in append-only segment files beside the SQLite database.
//!
//! SQLite writes every byte twice (journal, then database file); for 100 KB letters that
//! doubled write is what limits throughput on a disk that sustains a few hundred MB/s. Here a
//! commit batch's ciphertexts are appended to the current segment in one write and made durable
//! with one `fdatasync` before the rows that point at them are committed, so content is written
//! once and the database holds only small rows. A crash between the two leaves unreferenced bytes
//! at a segment's end, which nothing reads. Segments hold ciphertext only (AES-GCM: any damage is
//! detected when a letter is opened), mode 0600.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where one ciphertext lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
}

/// A segment is closed and a new one started past this size.
const SEGMENT_MAX: u64 = 1 << 30;

struct Writer {
    segment: u32,
    file: File,
    len: u64,
    /// A write or sync failed (disk full, I/O error): how much of it reached the file is
    /// unknown, so later offsets could not be trusted. The next append starts a new segment.
    damaged: bool,
}

pub struct BlobLog {
    dir: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("segment-{segment:08}.dat"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_segment(dir: &Path, segment: u32) -> std::io::Result<Writer> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(segment_path(dir, segment))?;
    sync_dir(dir)?;
    Ok(Writer {
        segment,
        file,
        len: 0,
        damaged: false,
    })
}

impl BlobLog {
    /// Opens the segment directory and starts a fresh segment (never appending after bytes a
    /// crash may have left half-written).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut last = 0;
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("segment-")
                .and_then(|n| n.strip_suffix(".dat"))
                .and_then(|n| n.parse::<u32>().ok())
            {
                last = last.max(n);
            }
        }
        let writer = create_segment(dir, last + 1)?;
        Ok(BlobLog {
            dir: dir.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// Appends `data`, already laid end to end, whose pieces have the lengths `lens`; durable on
    /// return. Returns one reference per piece.
    pub fn append(&self, data: &[u8], lens: &[usize]) -> std::io::Result<Vec<BlobRef>> {
        let mut w = self
            .writer
            .lock()
            .map_err(|_| std::io::Error::other("blob writer poisoned"))?;
        if w.damaged || (w.len > 0 && w.len + data.len() as u64 > SEGMENT_MAX) {
            *w = create_segment(&self.dir, w.segment + 1)?;
        }
        if let Err(e) = w.file.write_all(data).and_then(|()| w.file.sync_data()) {
            w.damaged = true;
            return Err(e);
        }
        let mut refs = Vec::with_capacity(lens.len());
        let mut offset = w.len;
        for &len in lens {
            refs.push(BlobRef {
                segment: w.segment,
                offset,
                len: len as u64,
            });
            offset += len as u64;
        }
        w.len = offset;
        Ok(refs)
    }

    pub fn read(&self, r: &BlobRef) -> std::io::Result<Vec<u8>> {
        let file = {
            let mut readers = self
                .readers
                .lock()
                .map_err(|_| std::io::Error::other("blob readers poisoned"))?;
            match readers.get(&r.segment) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(File::open(segment_path(&self.dir, r.segment))?);
                    readers.insert(r.segment, f.clone());
                    f
                }
            }
        };
        let len = usize::try_from(r.len).map_err(|_| std::io::Error::other("blob too large"))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, r.offset)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let log = BlobLog::open(tmp.path()).unwrap();
        let refs = log.append(b"helloworld!", &[5, 5, 1]).unwrap();
        assert_eq!(log.read(&refs[1]).unwrap(), b"world");
        let more = log.append(b"again", &[5]).unwrap();
        assert_eq!(more[0].offset, 11);
        drop(log);
        let log = BlobLog::open(tmp.path()).unwrap();
        assert_eq!(log.read(&refs[0]).unwrap(), b"hello");
        assert_eq!(log.read(&more[0]).unwrap(), b"again");
        let fresh = log.append(b"x", &[1]).unwrap();
        assert_ne!(
            fresh[0].segment, refs[0].segment,
            "a reopened log starts a new segment"
        );
    }
}
