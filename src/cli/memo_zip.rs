//! Zip files of MeMo messages for `brevdue send`, as SFTP batch senders deliver them (up to
//! 10,000 messages per file). The archive is read in place: one entry at a time is inflated into
//! memory when the stream to the gateway asks for the next letter, never unpacked to disk.
//!
//! A zip comes from outside, so every entry is distrusted: a name with a `..` component or an
//! absolute path is refused (nothing is ever written under it, but such an archive is hostile or
//! broken and its sender should hear so), as is an entry larger than a MeMo message may be
//! (declared or actual: inflating stops one byte past the limit, whatever the header said), an
//! entry that inflates more than [`ZipLimits::max_ratio`] times its compressed size (a zip
//! bomb), an encrypted entry, and anything that is not a `.xml` file. Each refusal is one line
//! of the receipt report; the other entries are sent as usual.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use zip::ZipArchive;

/// Bounds on a zip batch.
#[derive(Clone, Debug)]
pub struct ZipLimits {
    /// Most entries in one archive (Digital Post's SFTP batches hold up to 10,000 messages).
    pub max_entries: usize,
    /// Largest MeMo message, uncompressed: what the gateway's MeMo parser accepts.
    pub max_entry_bytes: u64,
    /// Largest ratio of inflated to compressed size for entries over `ratio_floor` bytes.
    /// MeMo is mostly base64 of PDFs, which deflate shrinks by a quarter at best.
    pub max_ratio: u64,
    /// Entries smaller than this are never judged by ratio (a tiny, repetitive message
    /// compresses well and harms no one).
    pub ratio_floor: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_entries: 10_000,
            max_entry_bytes: crate::memo::ParseLimits::default().max_input_bytes as u64,
            max_ratio: 100,
            ratio_floor: 1 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ZipBatchError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a readable zip file: {source}")]
    NotZip {
        path: String,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{path} holds {entries} entries, more than the {max} a batch may hold: split it")]
    TooManyEntries {
        path: String,
        entries: usize,
        max: usize,
    },
}

/// Why an entry was not sent, for the report's reason column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `..` or an absolute path.
    UnsafePath,
    /// Larger than a MeMo message may be.
    TooLarge,
    /// Inflates far beyond its compressed size.
    ZipBomb,
    /// Not a `.xml` file, encrypted, or unreadable.
    NotMemo,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnsafePath => "ZIP_UNSAFE_PATH",
            Refusal::TooLarge => "ZIP_ENTRY_TOO_LARGE",
            Refusal::ZipBomb => "ZIP_BOMB",
            Refusal::NotMemo => "ZIP_NOT_MEMO",
        }
    }
}

/// One entry of the archive: a letter to send, or why it is not sent. `source` is
/// `archive.zip:entry/name.xml`.
#[derive(Debug)]
pub enum ZipItem {
    /// A MeMo message to send as it is.
    Message { source: String, xml: Vec<u8> },
    Refused {
        source: String,
        refusal: Refusal,
        why: String,
    },
}

/// An open zip batch.
pub struct MemoZip {
    name: String,
    archive: ZipArchive<File>,
    limits: ZipLimits,
}

impl MemoZip {
    /// Opens the archive and reads its directory (not its entries).
    pub fn open(path: &Path, limits: ZipLimits) -> Result<Self, ZipBatchError> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|source| ZipBatchError::Open {
            path: shown.clone(),
            source,
        })?;
        let archive = ZipArchive::new(file).map_err(|source| ZipBatchError::NotZip {
            path: shown.clone(),
            source,
        })?;
        if archive.len() > limits.max_entries {
            return Err(ZipBatchError::TooManyEntries {
                path: shown,
                entries: archive.len(),
                max: limits.max_entries,
            });
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or(shown);
        Ok(MemoZip {
            name,
            archive,
            limits,
        })
    }

    /// Entries that are not directories: what the report will have a line for.
    pub fn entries(&self) -> usize {
        self.archive
            .file_names()
            .filter(|n| n.as_ref().map_or(true, |n| !n.ends_with('/')))
            .count()
    }

    /// The entries in archive order, each inflated only when asked for.
    pub fn into_items(mut self) -> impl Iterator<Item = ZipItem> + Send {
        let len = self.archive.len();
        (0..len).filter_map(move |i| self.item(i))
    }

    fn item(&mut self, i: usize) -> Option<ZipItem> {
        let limits = self.limits.clone();
        let archive_name = self.name.clone();
        let mut entry = match self.archive.by_index(i) {
            Ok(e) => e,
            Err(e) => {
                return Some(ZipItem::Refused {
                    source: format!("{archive_name}:#{}", i + 1),
                    refusal: Refusal::NotMemo,
                    why: format!("entry {} cannot be read: {e}", i + 1),
                });
            }
        };
        let name = String::from_utf8_lossy(entry.name_raw()).to_string();
        if entry.is_dir() {
            return None;
        }
        let source = format!("{archive_name}:{name}");
        let refuse = |refusal: Refusal, why: String| {
            Some(ZipItem::Refused {
                source: source.clone(),
                refusal,
                why,
            })
        };
        if !is_safe_name(&name) {
            return refuse(
                Refusal::UnsafePath,
                format!(
                    "entry name {name:?} has a .. component or is absolute: refused, the archive is not sent as is"
                ),
            );
        }
        if entry.encrypted() {
            return refuse(
                Refusal::NotMemo,
                "the entry is encrypted: send MeMo messages unencrypted inside the zip".into(),
            );
        }
        if !name.to_ascii_lowercase().ends_with(".xml") {
            return refuse(
                Refusal::NotMemo,
                "not a MeMo message: a zip batch holds .xml files only".into(),
            );
        }
        let (size, compressed) = (entry.size(), entry.compressed_size());
        let max = limits.max_entry_bytes;
        if size > max {
            return refuse(
                Refusal::TooLarge,
                format!(
                    "the entry is {size} bytes uncompressed, {} over the limit of {max} bytes for a MeMo message",
                    size - max
                ),
            );
        }
        if size > limits.ratio_floor && size > compressed.saturating_mul(limits.max_ratio) {
            return refuse(
                Refusal::ZipBomb,
                format!(
                    "the entry inflates from {compressed} to {size} bytes, more than {} times: refused as a zip bomb",
                    limits.max_ratio
                ),
            );
        }
        // The declared size may lie: read at most one byte past the limit, and no more than
        // the ratio allows, whatever the header says.
        let allowed = max.min(
            compressed
                .saturating_mul(limits.max_ratio)
                .max(limits.ratio_floor),
        );
        let mut xml = Vec::with_capacity(size.min(allowed) as usize);
        if let Err(e) = (&mut entry).take(allowed + 1).read_to_end(&mut xml) {
            return refuse(
                Refusal::NotMemo,
                format!("the entry cannot be inflated: {e}"),
            );
        }
        if xml.len() as u64 > allowed {
            return if allowed == max {
                refuse(
                    Refusal::TooLarge,
                    format!("the entry inflates past the limit of {max} bytes for a MeMo message"),
                )
            } else {
                refuse(
                    Refusal::ZipBomb,
                    format!(
                        "the entry inflates to more than {} times its {compressed} compressed bytes: refused as a zip bomb",
                        limits.max_ratio
                    ),
                )
            };
        }
        Some(ZipItem::Message { source, xml })
    }
}

/// No `..` component, not absolute (`/x`, `\x`, `C:x`), no NUL: the name stays inside the
/// archive's own tree.
fn is_safe_name(name: &str) -> bool {
    !(name.starts_with('/')
        || name.starts_with('\\')
        || name.contains('\0')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split(['/', '\\']).any(|c| c == ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_climb_or_are_absolute_are_unsafe() {
        for bad in [
            "../x.xml",
            "a/../../x.xml",
            "a\\..\\x.xml",
            "/etc/x.xml",
            "\\x.xml",
            "C:x.xml",
            "a/..",
        ] {
            assert!(!is_safe_name(bad), "{bad}");
        }
        for ok in ["x.xml", "dir/x.xml", "a..b.xml", "..x.xml", "dir/.x.xml"] {
            assert!(is_safe_name(ok), "{ok}");
        }
    }
}
