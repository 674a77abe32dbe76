//! Handing written pages back to the kernel once they are durable.
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
