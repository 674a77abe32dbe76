//! Handing written pages back to the kernel once they are durable, and reading what is no
//! longer cached without taking pages for it.
//!
//! The gateway's segments and mailbox outbox only grow: every byte it writes would otherwise
//! take a new page of the page cache, and the cache would grow until the machine's memory is
//! full. A new page is far dearer than one just freed (on this kind of virtual machine freed
//! memory goes back to the host, and the first touch of a page costs a fault there: see
//! `benches/fresh-pages.py`), and content nobody reads again only pushes the store's database
//! and the registry out of the cache. Dropping what is durable and will not be read soon keeps
//! the cache to what is used and lets the kernel reuse the pages it just freed.

use std::fs::File;
use std::num::NonZeroU64;

use rustix::fs::{Advice, fadvise};

/// Asks the kernel to drop the cached pages of `len` bytes at `offset` of `file` (all of it
/// from `offset` on when `len` is 0). Only advice: the bytes are durable already, and a failure
/// changes nothing but the cache, so it is logged and otherwise ignored.
pub fn drop_cached(file: &File, offset: u64, len: u64) {
    if let Err(e) = fadvise(file, offset, NonZeroU64::new(len), Advice::DontNeed) {
        tracing::debug!(error = %e, "dropping written pages from the page cache failed");
    }
}

/// Direct reads go in whole blocks of this size, at offsets of it, into memory aligned to it
/// (the most any Linux disk asks for).
const DIRECT_BLOCK: usize = 4096;

/// Opens `path` for reads that bypass the page cache (`O_DIRECT`). Fails on filesystems that do
/// not support it (tmpfs), where the caller reads through the cache instead.
pub fn open_direct(path: &std::path::Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags, open};
    let fd = open(
        path,
        OFlags::RDONLY | OFlags::DIRECT | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Reads `len` bytes at `offset` from a file opened with [`open_direct`]: the disk writes them
/// straight into the returned buffer, so no page-cache page is taken (and none has to be
/// dropped after), and nothing is copied out of the cache. Reads the whole blocks around the
/// range and keeps the part asked for. A file that ends inside the range is `UnexpectedEof`;
/// `InvalidInput` means the kernel refused the direct read, and a buffered read will do.
pub fn read_direct(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let block = DIRECT_BLOCK as u64;
    let start = offset - offset % block;
    let lead = usize::try_from(offset - start).map_err(std::io::Error::other)?;
    let want = lead + len;
    let span = want.next_multiple_of(DIRECT_BLOCK);
    // One block more than the span, so an aligned window of it always fits.
    let mut raw = vec![0u8; span + DIRECT_BLOCK];
    let pad = raw.as_ptr().align_offset(DIRECT_BLOCK);
    let window = raw
        .get_mut(pad..pad + span)
        .ok_or_else(|| std::io::Error::other("aligned window outside its buffer"))?;
    let mut got = 0;
    while got < want {
        // Only the end of the file gives a short read, so `got` stays block-aligned until
        // the range is in.
        match file.read_at(&mut window[got..], start + got as u64) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    raw.truncate(pad + want);
    raw.drain(..pad + lead);
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn direct_reads_give_exactly_the_bytes_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        // Not a whole number of blocks, so the last range ends inside the last block.
        let content: Vec<u8> = (0..3 * DIRECT_BLOCK + 1234)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut f = File::create(&path).unwrap();
        f.write_all(&content).unwrap();
        f.sync_all().unwrap();
        let Ok(direct) = open_direct(&path) else {
            panic!(
                "the temporary directory's filesystem refuses O_DIRECT; run the tests on a disk-backed one"
            );
        };
        let ranges = [
            (0, 10),
            (5, DIRECT_BLOCK),
            (DIRECT_BLOCK as u64, DIRECT_BLOCK),
            (DIRECT_BLOCK as u64 - 3, 6),
            (100, 2 * DIRECT_BLOCK + 17),
            (content.len() as u64 - 1234, 1234),
            (0, content.len()),
            (777, 0),
        ];
        for (offset, len) in ranges {
            let got = read_direct(&direct, offset, len).unwrap();
            let at = offset as usize;
            assert_eq!(got, content[at..at + len], "{len} bytes at {offset}");
        }
        let past = read_direct(&direct, content.len() as u64 - 10, 11).unwrap_err();
        assert_eq!(past.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
