//! The gateway's live view of who may send, who can be reached and which keys seal: the
//! registry index, the senders with their certificates, and the key ring.
//!
//! Loaded from the store and the key directory at start-up and refreshed while running: a
//! refresh compares the store's change counters and reloads only what changed, so admin
//! commands run against a live gateway take effect within one refresh interval, without a
//! restart. The registry is loaded whole only at start and after an import; every other
//! change arrives through the store's change log and is applied as a delta (`changes`).
//! Readers take an `Arc` snapshot and never wait for a rebuild.

pub mod apply;
mod changes;
pub mod import;

pub use changes::{FollowOutcome, RegistryConfig, RegistryTelemetry, spawn_follower};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use crate::domain::{Cvr, RecipientId, SenderInfo};
use crate::registry::change::{ChangeAction, RegistryChange};
use crate::registry::{IndexLoader, LiveRegistry, SenderDirectory};
use crate::seal::keyring::load_or_create_secret;
use crate::seal::{KeyRing, Pseudonymizer, RecipientTag, RowCipher, SealError};
use crate::store::{ChangeKind, ChangeRequest, Generations, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("the stored registry is inconsistent: {0}")]
    Registry(String),
}

/// The secrets that protect recipient ids at rest (see `seal::pseudonym`, `seal::rowkey`).
pub struct Secrets {
    pub pseudonyms: Pseudonymizer,
    pub rows: RowCipher,
}

impl Secrets {
    pub fn load_or_create(keys_dir: &Path) -> Result<Self, SealError> {
        Ok(Secrets {
            pseudonyms: Pseudonymizer::new(&load_or_create_secret(keys_dir, "pseudonym.key")?),
            rows: RowCipher::new(&load_or_create_secret(keys_dir, "registry.key")?)?,
        })
    }

    /// An import of these rows, prepared for the store (a recipient listed twice keeps its
    /// last status). For imports built in code: files go through `registry import`'s streamed
    /// path, which refuses duplicates with their lines.
    pub fn import_of(
        &self,
        recipients: &[(RecipientId, crate::domain::RecipientStatus)],
        subscriptions: &[(u64, RecipientId, Cvr)],
    ) -> Result<crate::store::RegistryImport, SealError> {
        let mut last = std::collections::HashMap::with_capacity(recipients.len());
        for (line, (id, status)) in recipients.iter().enumerate() {
            last.insert(id.index_key(), (*status, line as u64 + 2));
        }
        let rows = last
            .into_iter()
            .map(|(key, (status, line))| import::ImportRecipient {
                key,
                status,
                line: import::line32(line),
            })
            .collect();
        let subs = subscriptions
            .iter()
            .map(|(line, id, sender)| import::ImportSubscription {
                key: id.index_key(),
                sender: sender.value(),
                line: import::line32(*line),
            })
            .collect();
        import::prepare_import(&self.pseudonyms, &self.rows, rows, subs)
    }

    /// A checked change as the store takes it: the recipient tagged, its id sealed afresh (kept
    /// only if the change adds it).
    pub fn change_request(&self, change: &RegistryChange) -> Result<ChangeRequest, SealError> {
        let tag = self.pseudonyms.tag(&change.id);
        let mut sealed = Vec::with_capacity(1);
        self.rows
            .seal_keys(&[(change.id.index_key(), tag)], &mut sealed)?;
        let sealed_key = sealed.pop().ok_or(SealError::Random)?;
        let (kind, status, sender) = match change.action {
            ChangeAction::Subscribe(s) => (ChangeKind::Subscribe, None, Some(s)),
            ChangeAction::Unsubscribe(s) => (ChangeKind::Unsubscribe, None, Some(s)),
            ChangeAction::Status(st) => (ChangeKind::Status, Some(st), None),
            ChangeAction::Remove => (ChangeKind::Remove, None, None),
        };
        Ok(ChangeRequest {
            kind,
            tag,
            sealed_key,
            status,
            sender,
        })
    }

    /// Loads the stored registry into a packed index, streamed row by row. Returns the index
    /// and the number of a change it holds everything up to: changes after it may or may not
    /// be in it, and applying them again changes nothing (log entries hold whole states).
    ///
    /// Several parts of the registry are read at once, on as many connections as there are
    /// cores (each opens its rows' sealed ids as they arrive); one thread packs what they read.
    pub async fn load_index(
        &self,
        store: &Arc<dyn Store>,
    ) -> Result<(crate::registry::RegistryIndex, i64), DirectoryError> {
        // Read before any part starts, so every change after it is applied by the follower.
        let head = store.registry_newest_seq().await?;
        // Sized by the last import (changes since add or remove a few): counting the rows
        // would read the whole table once more before the scan reads it.
        let hint = usize::try_from(store.registry_size_hint().await?).unwrap_or(0);
        let recipients = hint + hint / 50 + 1_024;
        let parts = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8) as u8;
        let (tx, rx) = std::sync::mpsc::sync_channel::<LoadedChunk>(4 * usize::from(parts));
        let packer = std::thread::spawn(move || -> Result<IndexLoader, String> {
            let mut loader = IndexLoader::with_capacity(recipients, recipients.saturating_mul(3));
            for chunk in rx {
                for &(key, status, start, len) in &chunk.rows {
                    let senders = &chunk.senders[start as usize..(start + len) as usize];
                    loader
                        .push(key, status, senders)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(loader)
        });
        let scans = (0..parts).map(|index| {
            let (tx, store, rows) = (tx.clone(), store.clone(), self.rows.clone());
            // A task each: on PostgreSQL rows are decoded by the task that reads them.
            tokio::spawn(async move {
                let mut chunk = LoadedChunk::default();
                let mut bad = false;
                store
                    .scan_registry(crate::store::ScanPart { index, of: parts }, &mut |r| {
                        match rows.open_key(r.sealed_key, r.tag) {
                            Ok(key) => chunk.push(key, r.status, r.senders),
                            Err(_) => bad = true,
                        }
                        if chunk.rows.len() >= LOAD_CHUNK {
                            // The packer keeps up; this waits only when it does not.
                            let _ = tx.send(std::mem::take(&mut chunk));
                        }
                        Ok(())
                    })
                    .await?;
                let _ = tx.send(chunk);
                Ok::<bool, DirectoryError>(bad)
            })
        });
        let results = futures::future::join_all(scans).await;
        drop(tx);
        let packed = packer
            .join()
            .map_err(|_| DirectoryError::Registry("the registry packer stopped".into()))?;
        for r in results {
            let bad =
                r.map_err(|_| DirectoryError::Registry("a registry scan stopped".into()))??;
            if bad {
                return Err(DirectoryError::Registry(
                    "a sealed recipient id does not open".into(),
                ));
            }
        }
        let loader = packed.map_err(DirectoryError::Registry)?;
        Ok((loader.finish(), head))
    }
}

/// Rows a scan hands the packer at once.
const LOAD_CHUNK: usize = 16_384;

/// Recipients read by one scan, opened, for the packer: (key, status, senders start, len).
#[derive(Default)]
struct LoadedChunk {
    rows: Vec<(u64, crate::domain::RecipientStatus, u32, u32)>,
    senders: Vec<u32>,
}

impl LoadedChunk {
    fn push(&mut self, key: u64, status: crate::domain::RecipientStatus, senders: &[u32]) {
        let start = self.senders.len() as u32;
        self.senders.extend_from_slice(senders);
        self.rows.push((key, status, start, senders.len() as u32));
    }
}

struct Senders {
    by_cvr: SenderDirectory,
    by_cert: HashMap<[u8; 32], Cvr>,
}

pub struct Directory {
    store: Arc<dyn Store>,
    keys_dir: PathBuf,
    secrets: Secrets,
    index: RwLock<Arc<LiveRegistry>>,
    /// The newest change the index holds.
    registry_seq: AtomicI64,
    /// When the newest applied change was made (unix ms; 0: none since start).
    last_change_ms: AtomicI64,
    changes_applied: AtomicU64,
    merging: AtomicBool,
    /// One follower of the change log at a time.
    following: tokio::sync::Mutex<()>,
    senders: RwLock<Arc<Senders>>,
    keyring: RwLock<Arc<KeyRing>>,
    seen: Mutex<Option<Generations>>,
}

fn read<T>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<Arc<T>>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = Arc::new(value),
        Err(poisoned) => *poisoned.into_inner() = Arc::new(value),
    }
}

impl Directory {
    pub async fn load(store: Arc<dyn Store>, keys_dir: &Path) -> Result<Arc<Self>, DirectoryError> {
        let secrets = Secrets::load_or_create(keys_dir)?;
        let keyring = KeyRing::load_or_create(keys_dir)?;
        let dir = Arc::new(Directory {
            store,
            keys_dir: keys_dir.to_path_buf(),
            secrets,
            index: RwLock::new(Arc::new(LiveRegistry::default())),
            registry_seq: AtomicI64::new(0),
            last_change_ms: AtomicI64::new(0),
            changes_applied: AtomicU64::new(0),
            merging: AtomicBool::new(false),
            following: tokio::sync::Mutex::new(()),
            senders: RwLock::new(Arc::new(Senders {
                by_cvr: SenderDirectory::default(),
                by_cert: HashMap::new(),
            })),
            keyring: RwLock::new(Arc::new(keyring)),
            seen: Mutex::new(None),
        });
        dir.refresh().await?;
        dir.reload_registry().await?;
        Ok(dir)
    }

    pub fn registry(&self) -> Arc<LiveRegistry> {
        read(&self.index)
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    pub fn keyring(&self) -> Arc<KeyRing> {
        read(&self.keyring)
    }

    pub fn tag(&self, id: &RecipientId) -> RecipientTag {
        self.secrets.pseudonyms.tag(id)
    }

    /// The sender a client certificate (by SHA-256 fingerprint) belongs to.
    pub fn sender_by_cert(&self, fingerprint: &[u8; 32]) -> Option<SenderInfo> {
        let s = read(&self.senders);
        let cvr = s.by_cert.get(fingerprint)?;
        s.by_cvr.get(*cvr).cloned()
    }

    pub fn sender(&self, cvr: Cvr) -> Option<SenderInfo> {
        read(&self.senders).by_cvr.get(cvr).cloned()
    }

    /// Every registered sender with its share of capacity.
    pub fn shares(&self) -> Vec<crate::queue::SenderShare> {
        read(&self.senders)
            .by_cvr
            .iter()
            .map(|s| crate::queue::SenderShare {
                sender: s.cvr,
                weight: s.limits.weight,
            })
            .collect()
    }

    /// Reloads whatever changed since the last call: senders, key ring. True when the senders
    /// changed. (The registry follows its change log: [`Directory::follow_registry`].)
    pub async fn refresh(&self) -> Result<bool, DirectoryError> {
        let now = self.store.generations().await?;
        let before = match self.seen.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        let senders_changed = before.map(|b| b.senders) != Some(now.senders);
        if senders_changed {
            let (senders, certs) = self.store.senders().await?;
            let count = senders.len();
            write(
                &self.senders,
                Senders {
                    by_cvr: SenderDirectory::new(senders),
                    by_cert: certs.into_iter().collect(),
                },
            );
            tracing::info!(senders = count, "sender directory loaded");
        }
        let ring = KeyRing::load(&self.keys_dir)?;
        if ring.active_id() != self.keyring().active_id()
            || ring.ids().count() != self.keyring().ids().count()
        {
            tracing::info!(active = %ring.active_id(), "key ring reloaded");
            write(&self.keyring, ring);
        }
        match self.seen.lock() {
            Ok(mut g) => *g = Some(now),
            Err(p) => *p.into_inner() = Some(now),
        }
        Ok(senders_changed)
    }
}
