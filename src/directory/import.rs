//! Preparing a registry import for the store: every recipient tagged and its id sealed (on
//! every core), subscriptions grouped per recipient, rows sorted by tag so the store's B-tree
//! takes them in order.
//!
//! The rows arrive as compact index keys (16 bytes each, from a streamed CSV read), never as
//! text or as a second copy of the registry.

use crate::domain::{RecipientId, RecipientStatus};
use crate::seal::{Pseudonymizer, RowCipher, SealError};
use crate::store::{ImportRow, RegistryImport, SenderRange, SubscriberRow};

/// A recipient of the import: index key, status, the line it came from. (Lines are `u32`:
/// 16 bytes a row is what lets a national file be held once, compactly.)
#[derive(Clone, Copy, Debug)]
pub struct ImportRecipient {
    pub key: u64,
    pub status: RecipientStatus,
    pub line: u32,
}

/// A subscription of the import: subscriber's index key, the sender's CVR value, its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImportSubscription {
    pub key: u64,
    pub sender: u32,
    pub line: u32,
}

/// A file line as the compact rows hold it (a line past 4 G is not a registry file).
pub fn line32(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

/// Rows tagged and sealed per work item: large enough to amortise the system call for nonces.
const SEAL_CHUNK: usize = 16_384;

/// Tags and seals every recipient on up to `threads` threads, in order: the import's rows,
/// subscriptions still to be filled in.
fn tag_and_seal(
    pseudonyms: &Pseudonymizer,
    rows: &RowCipher,
    recipients: &[ImportRecipient],
    threads: usize,
) -> Result<Vec<ImportRow>, SealError> {
    let work = |part: &[ImportRecipient]| -> Result<Vec<ImportRow>, SealError> {
        let mut out = Vec::with_capacity(part.len());
        let mut items = Vec::with_capacity(SEAL_CHUNK);
        let mut sealed = Vec::with_capacity(SEAL_CHUNK);
        for chunk in part.chunks(SEAL_CHUNK) {
            items.clear();
            sealed.clear();
            for r in chunk {
                let id = RecipientId::from_index_key(r.key).map_err(|_| SealError::Tampered)?;
                items.push((r.key, pseudonyms.tag(&id)));
            }
            rows.seal_keys(&items, &mut sealed)?;
            out.extend(
                chunk
                    .iter()
                    .zip(&items)
                    .zip(&sealed)
                    .map(|((r, (_, tag)), key)| ImportRow {
                        tag: *tag,
                        sealed_key: *key,
                        status: r.status,
                        senders: None,
                    }),
            );
        }
        Ok(out)
    };
    let threads = threads.clamp(1, 16);
    if threads == 1 || recipients.len() < SEAL_CHUNK * 2 {
        return work(recipients);
    }
    let per = recipients.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = recipients
            .chunks(per)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        let mut out = Vec::with_capacity(recipients.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(_) => return Err(SealError::Random),
            }
        }
        Ok(out)
    })
}

/// Builds the store's import from recipients (each once: duplicates were refused by the
/// caller) and subscriptions. Consumes both lists so their memory goes as the rows are made.
pub fn prepare_import(
    pseudonyms: &Pseudonymizer,
    rows: &RowCipher,
    mut recipients: Vec<ImportRecipient>,
    mut subscriptions: Vec<ImportSubscription>,
) -> Result<RegistryImport, SealError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    recipients.sort_unstable_by_key(|r| r.key);
    subscriptions.sort_unstable();
    subscriptions.dedup_by(|a, b| a.key == b.key && a.sender == b.sender);

    let mut import = RegistryImport {
        recipients: tag_and_seal(pseudonyms, rows, &recipients, threads)?,
        subscribers: Vec::new(),
        senders: Vec::with_capacity(subscriptions.len()),
    };
    // Both lists are sorted by key: walk them side by side.
    let mut subs = subscriptions.chunk_by(|a, b| a.key == b.key).peekable();
    let mut only_subscribers: Vec<&[ImportSubscription]> = Vec::new();
    for (r, row) in recipients.iter().zip(import.recipients.iter_mut()) {
        while let Some(group) = subs.next_if(|g| g[0].key < r.key) {
            only_subscribers.push(group);
        }
        row.senders = subs.next_if(|g| g[0].key == r.key).map(|group| {
            let start = import.senders.len() as u32;
            import.senders.extend(group.iter().map(|s| s.sender));
            SenderRange {
                start,
                len: group.len() as u32,
            }
        });
    }
    only_subscribers.extend(subs);
    drop(recipients);
    for group in only_subscribers {
        let id = RecipientId::from_index_key(group[0].key).map_err(|_| SealError::Tampered)?;
        let start = import.senders.len() as u32;
        import.senders.extend(group.iter().map(|s| s.sender));
        import.subscribers.push(SubscriberRow {
            tag: pseudonyms.tag(&id),
            senders: SenderRange {
                start,
                len: group.len() as u32,
            },
            lines: group.iter().map(|s| u64::from(s.line)).collect(),
        });
    }
    import.recipients.sort_unstable_by_key(|r| r.tag);
    import.subscribers.sort_unstable_by_key(|r| r.tag);
    Ok(import)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_subscriptions_and_sorts_by_tag() {
        let p = Pseudonymizer::new(&[1; 32]);
        let c = RowCipher::new(&[2; 32]).unwrap();
        let id = |s: &str| s.parse::<RecipientId>().unwrap().index_key();
        let recipients = vec![
            ImportRecipient {
                key: id("0101901111"),
                status: RecipientStatus::Active,
                line: 2,
            },
            ImportRecipient {
                key: id("61126228"),
                status: RecipientStatus::Closed,
                line: 3,
            },
        ];
        let subs = vec![
            ImportSubscription {
                key: id("61126228"),
                sender: 25313763,
                line: 2,
            },
            ImportSubscription {
                key: id("0101901111"),
                sender: 10103940,
                line: 3,
            },
            ImportSubscription {
                key: id("0101901111"),
                sender: 10103940,
                line: 4,
            },
            ImportSubscription {
                key: id("0101909999"),
                sender: 10103940,
                line: 5,
            },
        ];
        let import = prepare_import(&p, &c, recipients, subs).unwrap();
        assert_eq!(import.recipients.len(), 2);
        assert!(import.recipients[0].tag < import.recipients[1].tag);
        for r in &import.recipients {
            let key = c.open_key(&r.sealed_key, &r.tag).unwrap();
            let senders = import.senders_of(r.senders.unwrap());
            if key == id("0101901111") {
                assert_eq!(senders, &[10103940]);
                assert_eq!(r.tag, p.tag(&"0101901111".parse().unwrap()));
            } else {
                assert_eq!(senders, &[25313763]);
                assert_eq!(r.status, RecipientStatus::Closed);
            }
        }
        assert_eq!(import.subscribers.len(), 1);
        assert_eq!(import.subscribers[0].lines, vec![5]);
        assert_eq!(import.subscription_count(), 3);
    }
}
