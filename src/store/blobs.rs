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
use std::io::{IoSlice, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::page_cache::{drop_cached, open_direct, read_direct};

/// Why a segment could not be written or read. The I/O error is kept as the source, so the log
/// shows it (disk full, permission denied) while the message stays short.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("could not open the segment directory {}", .dir.display())]
    OpenDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start segment {segment}")]
    Create {
        segment: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write segment {segment} durably")]
    Write {
        segment: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read {len} bytes at {offset} of segment {segment}")]
    Read {
        segment: u32,
        offset: u64,
        len: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("could not list or remove segments in {}", .dir.display())]
    Tidy {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A thread panicked while holding the segment state; nothing it wrote can be trusted.
    #[error("the segment {0} lock was poisoned by a panic")]
    Poisoned(&'static str),
    #[error("a letter of {0} bytes does not fit in memory")]
    TooLarge(u64),
}

/// Where one ciphertext lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub segment: u32,
    pub offset: u64,
    pub len: u64,
}

/// A segment is closed and a new one started past this size.
const SEGMENT_MAX: u64 = 1 << 30;

/// How much of the newest ciphertext stays in the page cache once durable: delivery reads
/// letters soon after they are stored, and finds the last this many bytes there (some 6,000
/// letters of 10 KB). Older pages are dropped (see [`crate::page_cache`]); a backlog beyond
/// this is read from the disk. Measured from outside over 200,000 letters of 10 KB: 16 MiB
/// cost more CPU a letter than 64 MiB (243 against 229-231 µs), 256 MiB no less (226 µs),
/// and dropping everything at once sent delivery to the disk (258 µs).
const KEEP_CACHED: u64 = 64 << 20;

/// Most bytes one direct read of several letters takes: under the allocator's 1 MiB threshold
/// for memory handed back on free, so the buffer is reused rather than faulted in anew.
const DIRECT_RUN: u64 = (1 << 20) - (16 << 10);

/// Letters this close together are read in one direct read, the bytes between them with them.
const DIRECT_GAP: u64 = 64 << 10;

/// Where the cached part of the log starts, as one number: segment above, offset below (a
/// segment is at most [`SEGMENT_MAX`], well under 2^40 bytes). Reads before it drop what they
/// read again.
fn position(segment: u32, offset: u64) -> u64 {
    (u64::from(segment) << 40) | offset
}

/// The offset part of a [`position`].
fn offset_of(position: u64) -> u64 {
    position & ((1 << 40) - 1)
}

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
    readers: Mutex<HashMap<u32, Arc<Segment>>>,
    /// [`position`] of the first byte still kept in the page cache: the current segment's pages
    /// before it are dropped. Written under the writer's lock; read without it, since an append
    /// holds that lock through its `fdatasync`.
    cached_from: AtomicU64,
    keep_cached: u64,
}

/// A segment open for reading: through the page cache for letters in its cached part, and
/// with `O_DIRECT` for the rest (a backlog, a resend), which the disk then writes straight into
/// the letter's buffer instead of into cache pages that are copied and dropped again. Without
/// `direct` (a filesystem that refuses it) every read goes through the cache.
struct Segment {
    cached: File,
    direct: Option<File>,
}

fn segment_path(dir: &Path, segment: u32) -> PathBuf {
    dir.join(format!("segment-{segment:08}.dat"))
}

/// Writes every piece, in order, with as few `writev` calls as the kernel allows (a call may
/// write less than asked, and takes at most `IOV_MAX` pieces).
fn write_all_vectored(file: &mut File, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// How many numbers past the one asked for a new segment may take (see [`create_segment`]).
const SEGMENT_TRIES: u32 = 64;

/// Starts a new segment numbered `segment` or, when that file exists, the next free number:
/// another process with the same data directory (a CLI command beside the gateway, a
/// restarted gateway while the old one ends) may have started one in between. Each writer
/// has its own file, and references carry their segment's number, so nothing is shared.
fn create_segment(dir: &Path, segment: u32) -> Result<Writer, BlobError> {
    let create = |segment: u32| -> std::io::Result<File> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(segment_path(dir, segment))?;
        sync_dir(dir)?;
        Ok(file)
    };
    let mut number = segment;
    loop {
        match create(number) {
            Ok(file) => {
                return Ok(Writer {
                    segment: number,
                    file,
                    len: 0,
                    damaged: false,
                });
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::AlreadyExists
                    && number - segment < SEGMENT_TRIES =>
            {
                number += 1;
            }
            Err(source) => {
                return Err(BlobError::Create {
                    segment: number,
                    source,
                });
            }
        }
    }
}

impl BlobLog {
    /// Opens the segment directory and starts a fresh segment (never appending after bytes a
    /// crash may have left half-written).
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        let last_segment = || -> std::io::Result<u32> {
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
            Ok(last)
        };
        let last = last_segment().map_err(|source| BlobError::OpenDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let writer = create_segment(dir, last + 1)?;
        Ok(BlobLog {
            dir: dir.to_path_buf(),
            cached_from: AtomicU64::new(position(writer.segment, 0)),
            writer: Mutex::new(writer),
            readers: Mutex::new(HashMap::new()),
            keep_cached: KEEP_CACHED,
        })
    }

    /// Appends `pieces` end to end in one vectored write, durable on return; returns one
    /// reference per piece. The pieces are written from where they lie: a commit batch of
    /// 10 KB letters is some 10 MB, and copying it into one buffer first cost a large
    /// allocation and a memmove of every byte per batch.
    pub fn append(&self, pieces: &[&[u8]]) -> Result<Vec<BlobRef>, BlobError> {
        let total: u64 = pieces.iter().map(|p| p.len() as u64).sum();
        let mut w = self
            .writer
            .lock()
            .map_err(|_| BlobError::Poisoned("writer"))?;
        if w.damaged || (w.len > 0 && w.len + total > SEGMENT_MAX) {
            let next = create_segment(&self.dir, w.segment + 1)?;
            // The closed segment's tail is durable (or, if damaged, never referenced).
            let dropped_to = offset_of(self.cached_from.load(Ordering::Relaxed));
            drop_cached(&w.file, dropped_to, 0);
            *w = next;
            self.cached_from
                .store(position(w.segment, 0), Ordering::Relaxed);
        }
        if let Err(source) =
            write_all_vectored(&mut w.file, pieces).and_then(|()| w.file.sync_data())
        {
            w.damaged = true;
            return Err(BlobError::Write {
                segment: w.segment,
                source,
            });
        }
        let mut refs = Vec::with_capacity(pieces.len());
        let mut offset = w.len;
        for piece in pieces {
            let len = piece.len() as u64;
            refs.push(BlobRef {
                segment: w.segment,
                offset,
                len,
            });
            offset += len;
        }
        w.len = offset;
        // Durable now: what lies further back than delivery is likely to read soon goes.
        let keep_from = w.len.saturating_sub(self.keep_cached);
        let dropped_to = offset_of(self.cached_from.load(Ordering::Relaxed));
        if keep_from > dropped_to {
            drop_cached(&w.file, dropped_to, keep_from - dropped_to);
            self.cached_from
                .store(position(w.segment, keep_from), Ordering::Relaxed);
        }
        Ok(refs)
    }

    /// The segment appends go to now.
    pub fn current(&self) -> Result<u32, BlobError> {
        Ok(self
            .writer
            .lock()
            .map_err(|_| BlobError::Poisoned("writer"))?
            .segment)
    }

    /// Every segment file, with its size.
    pub fn segments(&self) -> Result<Vec<(u32, u64)>, BlobError> {
        let tidy = |source| BlobError::Tidy {
            dir: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(tidy)? {
            let entry = entry.map_err(tidy)?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("segment-")
                .and_then(|n| n.strip_suffix(".dat"))
                .and_then(|n| n.parse::<u32>().ok())
            {
                out.push((n, entry.metadata().map_err(tidy)?.len()));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Removes a segment no letter points into any more (never the one appends go to).
    /// Durable on return.
    pub fn remove(&self, segment: u32) -> Result<(), BlobError> {
        if segment == self.current()? {
            return Ok(());
        }
        self.readers
            .lock()
            .map_err(|_| BlobError::Poisoned("readers"))?
            .remove(&segment);
        let tidy = |source| BlobError::Tidy {
            dir: self.dir.clone(),
            source,
        };
        match fs::remove_file(segment_path(&self.dir, segment)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(tidy(e)),
        }
        sync_dir(&self.dir).map_err(tidy)
    }

    /// The open files of a segment, opened on first use to read `len` bytes at `offset`.
    fn segment(&self, segment: u32, offset: u64, len: u64) -> Result<Arc<Segment>, BlobError> {
        let mut readers = self
            .readers
            .lock()
            .map_err(|_| BlobError::Poisoned("readers"))?;
        if let Some(f) = readers.get(&segment) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, segment);
        let cached = File::open(&path).map_err(|source| BlobError::Read {
            segment,
            offset,
            len,
            source,
        })?;
        let direct = match open_direct(&path) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::debug!(error = %e, segment, "segment cannot be read with O_DIRECT; reading it through the page cache");
                None
            }
        };
        let f = Arc::new(Segment { cached, direct });
        readers.insert(segment, f.clone());
        Ok(f)
    }

    /// True for a letter before the cached part (a backlog, a resend, a status query): it is
    /// on the disk only.
    fn uncached(&self, r: &BlobRef) -> bool {
        r.len > 0 && position(r.segment, r.offset) < self.cached_from.load(Ordering::Relaxed)
    }

    /// Reads one ciphertext.
    pub fn read(&self, r: &BlobRef) -> Result<Vec<u8>, BlobError> {
        let failed = |source: std::io::Error| BlobError::Read {
            segment: r.segment,
            offset: r.offset,
            len: r.len,
            source,
        };
        let files = self.segment(r.segment, r.offset, r.len)?;
        let len = usize::try_from(r.len).map_err(|_| BlobError::TooLarge(r.len))?;
        let uncached = self.uncached(r);
        if uncached && let Some(direct) = &files.direct {
            match read_direct(direct, r.offset, len) {
                Ok(buf) => return Ok(buf),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    tracing::debug!(error = %e, segment = r.segment, "a direct read was refused; reading through the page cache");
                }
                Err(e) => return Err(failed(e)),
            }
        }
        let mut buf = vec![0u8; len];
        files
            .cached
            .read_exact_at(&mut buf, r.offset)
            .map_err(failed)?;
        // Read through the cache after all: its pages go again rather than grow the cache.
        if uncached {
            drop_cached(&files.cached, r.offset, r.len);
        }
        Ok(buf)
    }

    /// Reads several ciphertexts, in the order given. Those no longer cached that lie close
    /// together in a segment (a delivery round's letters were mostly stored together) come in
    /// one direct read of up to [`DIRECT_RUN`] bytes: a direct read has no read-ahead, so one
    /// a letter would wait for the disk once a letter.
    pub fn read_many(&self, refs: &[BlobRef]) -> Result<Vec<Vec<u8>>, BlobError> {
        let mut out: Vec<Option<Vec<u8>>> = refs.iter().map(|_| None).collect();
        let mut far: Vec<usize> = (0..refs.len())
            .filter(|&i| self.uncached(&refs[i]))
            .collect();
        far.sort_unstable_by_key(|&i| (refs[i].segment, refs[i].offset));
        let mut rest = far.as_slice();
        while let Some((&first, _)) = rest.split_first() {
            let head = refs[first];
            let start = head.offset;
            let mut end = head.offset + head.len;
            let mut taken = 1;
            for &i in &rest[1..] {
                let r = refs[i];
                let next_end = (r.offset + r.len).max(end);
                if r.segment != head.segment
                    || r.offset > end + DIRECT_GAP
                    || next_end - start > DIRECT_RUN
                {
                    break;
                }
                end = next_end;
                taken += 1;
            }
            let (run, later) = rest.split_at(taken);
            rest = later;
            if run.len() < 2 {
                continue;
            }
            let Ok(span) = usize::try_from(end - start) else {
                continue;
            };
            let files = self.segment(head.segment, start, end - start)?;
            let Some(direct) = &files.direct else {
                continue;
            };
            // Any failure leaves the run to the letter-by-letter reads below, which say which
            // letter could not be read.
            let Ok(buf) = read_direct(direct, start, span) else {
                continue;
            };
            for &i in run {
                let r = refs[i];
                let at = (r.offset - start) as usize;
                out[i] = buf.get(at..at + r.len as usize).map(<[u8]>::to_vec);
            }
        }
        refs.iter()
            .zip(out)
            .map(|(r, got)| match got {
                Some(buf) => Ok(buf),
                None => self.read(r),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let log = BlobLog::open(tmp.path()).unwrap();
        let refs = log.append(&[b"hello", b"world", b"!"]).unwrap();
        assert_eq!(log.read(&refs[1]).unwrap(), b"world");
        let more = log.append(&[b"again"]).unwrap();
        assert_eq!(more[0].offset, 11);
        drop(log);
        let log = BlobLog::open(tmp.path()).unwrap();
        assert_eq!(log.read(&refs[0]).unwrap(), b"hello");
        assert_eq!(log.read(&more[0]).unwrap(), b"again");
        let fresh = log.append(&[b"x"]).unwrap();
        assert_ne!(
            fresh[0].segment, refs[0].segment,
            "a reopened log starts a new segment"
        );
    }

    #[test]
    fn letters_whose_pages_were_dropped_read_back_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = BlobLog::open(tmp.path()).unwrap();
        // Nothing kept: every append drops all it wrote, and every read is from before the
        // cached part.
        log.keep_cached = 0;
        let pieces: Vec<Vec<u8>> = (0u8..5).map(|i| vec![i; 5000 + usize::from(i)]).collect();
        let mut refs = Vec::new();
        for p in &pieces {
            refs.extend(log.append(&[p]).unwrap());
        }
        assert_eq!(
            log.cached_from.load(Ordering::Relaxed),
            position(refs[4].segment, refs[4].offset + refs[4].len)
        );
        for (r, p) in refs.iter().zip(&pieces) {
            assert_eq!(&log.read(r).unwrap(), p);
            assert_eq!(&log.read(r).unwrap(), p, "a second read after its own drop");
        }
    }

    #[test]
    fn many_letters_read_together_come_back_in_the_order_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = BlobLog::open(tmp.path()).unwrap();
        // The first batch stays cached, then nothing is kept: the later letters are read from
        // the disk, several at a time.
        let cached = log.append(&[b"kept in the cache"]).unwrap();
        log.keep_cached = 0;
        // Sizes that straddle blocks, a run longer than one direct read, a gap wider than
        // the one read across, and an empty letter.
        let mut pieces: Vec<Vec<u8>> = (0u8..40)
            .map(|i| vec![i; 30_000 + 997 * usize::from(i)])
            .collect();
        pieces.push(Vec::new());
        let mut refs = Vec::new();
        for p in &pieces {
            refs.extend(log.append(&[p]).unwrap());
        }
        let gap = vec![0xee; (DIRECT_GAP + 1) as usize];
        log.append(&[&gap]).unwrap();
        let far = b"after the gap".to_vec();
        refs.extend(log.append(&[&far]).unwrap());
        pieces.push(far);
        // Reversed, with the cached letter and a repeat among them.
        let mut asked: Vec<(BlobRef, Vec<u8>)> = refs
            .iter()
            .copied()
            .zip(pieces.iter().cloned())
            .rev()
            .collect();
        asked.insert(3, (cached[0], b"kept in the cache".to_vec()));
        asked.push(asked[5].clone());
        let got = log
            .read_many(&asked.iter().map(|(r, _)| *r).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(got.len(), asked.len());
        for (i, (g, (r, want))) in got.iter().zip(&asked).enumerate() {
            assert_eq!(
                g, want,
                "letter {i} asked ({} bytes at {})",
                r.len, r.offset
            );
        }
    }

    #[test]
    fn a_segment_started_by_another_process_is_passed_over() {
        let tmp = tempfile::tempdir().unwrap();
        let first = BlobLog::open(tmp.path()).unwrap();
        let a = first.append(&[b"first"]).unwrap();
        // Another process opens the directory: it starts the next number.
        let second = BlobLog::open(tmp.path()).unwrap();
        let b = second.append(&[b"second"]).unwrap();
        assert_eq!(b[0].segment, a[0].segment + 1);
        // The first now starts a new segment (as after a failed write): it passes over the
        // number the second took instead of failing.
        first.writer.lock().unwrap().damaged = true;
        let c = first.append(&[b"third"]).unwrap();
        assert_eq!(c[0].segment, a[0].segment + 2);
        assert_eq!(second.read(&a[0]).unwrap(), b"first");
        assert_eq!(first.read(&b[0]).unwrap(), b"second");
        assert_eq!(second.read(&c[0]).unwrap(), b"third");
    }
}
