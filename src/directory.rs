//! The gateway's live view of who may send, who can be reached and which keys seal: the
//! registry index, the senders with their certificates, and the key ring.
//!
//! Loaded from the store and the key directory at start-up and refreshed while running: a
//! refresh compares the store's change counters and rebuilds only what changed, so admin
//! commands run against a live gateway take effect within one refresh interval, without a
//! restart. Readers take an `Arc` snapshot and never wait for a rebuild.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::domain::{Cvr, RecipientId, RecipientStatus, SenderInfo};
use crate::registry::{RegistryBuilder, RegistryIndex, SenderDirectory};
use crate::seal::keyring::load_or_create_secret;
use crate::seal::{KeyRing, Pseudonymizer, RecipientTag, RowCipher, SealError};
use crate::store::{Generations, RecipientRow, Store, StoreError, StoredRegistry, SubscriptionRow};

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

    /// Registry rows as the store keeps them.
    pub fn recipient_rows(
        &self,
        recipients: &[(RecipientId, RecipientStatus)],
    ) -> Result<Vec<RecipientRow>, SealError> {
        recipients
            .iter()
            .map(|(id, status)| {
                let tag = self.pseudonyms.tag(id);
                Ok(RecipientRow {
                    sealed_key: self.rows.seal_key(id.index_key(), &tag)?,
                    tag,
                    status: *status,
                })
            })
            .collect()
    }

    /// Subscription rows, numbered by their line in the import file.
    pub fn subscription_rows(&self, subs: &[(u64, RecipientId, Cvr)]) -> Vec<SubscriptionRow> {
        subs.iter()
            .map(|(line, id, sender)| SubscriptionRow {
                line: *line,
                tag: self.pseudonyms.tag(id),
                sender: *sender,
            })
            .collect()
    }

    /// Rebuilds the in-memory index from the stored registry.
    pub fn build_index(&self, stored: &StoredRegistry) -> Result<RegistryIndex, DirectoryError> {
        let mut b =
            RegistryBuilder::with_capacity(stored.recipients.len(), stored.subscriptions.len());
        let open = |tag: &RecipientTag, sealed: &[u8]| -> Result<RecipientId, DirectoryError> {
            let key = self.rows.open_key(sealed, tag)?;
            RecipientId::from_index_key(key).map_err(|e| DirectoryError::Registry(e.to_string()))
        };
        for (tag, sealed, status) in &stored.recipients {
            b.upsert(open(tag, sealed)?, *status)
                .map_err(|e| DirectoryError::Registry(e.to_string()))?;
        }
        for (tag, sealed, sender) in &stored.subscriptions {
            b.subscribe(open(tag, sealed)?, *sender)
                .map_err(|e| DirectoryError::Registry(e.to_string()))?;
        }
        b.build()
            .map_err(|e| DirectoryError::Registry(e.to_string()))
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
    index: RwLock<Arc<RegistryIndex>>,
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
            index: RwLock::new(Arc::new(RegistryIndex::default())),
            senders: RwLock::new(Arc::new(Senders {
                by_cvr: SenderDirectory::default(),
                by_cert: HashMap::new(),
            })),
            keyring: RwLock::new(Arc::new(keyring)),
            seen: Mutex::new(None),
        });
        dir.refresh().await?;
        Ok(dir)
    }

    pub fn registry(&self) -> Arc<RegistryIndex> {
        read(&self.index)
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

    /// Reloads whatever changed since the last call: senders, registry, key ring. True when
    /// the senders changed.
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
        if before.map(|b| b.registry) != Some(now.registry) {
            let stored = self.store.load_registry().await?;
            let index = self.secrets.build_index(&stored)?;
            tracing::info!(
                recipients = index.len(),
                bytes = index.memory_bytes(),
                "registry index loaded"
            );
            write(&self.index, index);
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
