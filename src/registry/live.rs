//! The registry as the router reads it while changes flow: a packed [`RegistryIndex`] built
//! at start-up, and a small overlay of the recipients changed since.
//!
//! A change never touches the packed index: applying a batch makes a new `LiveRegistry` that
//! shares the packed index (an `Arc`) and carries a copy of the overlay with the batch in it, so
//! a reader keeps the version it started with and never waits. When the overlay has grown, the
//! gateway folds it into a new packed index in the background ([`LiveRegistry::merged`]) and
//! swaps that in with whatever changed meanwhile ([`LiveRegistry::rebase`]). The full rebuild
//! from the store happens only at start and after an import.

use std::sync::Arc;

use hashbrown::HashMap;

use crate::domain::{RecipientId, RecipientStatus};

use super::index::{IndexLoader, RecipientEntry, RegistryError, RegistryIndex};

/// A recipient's state after a change: `None` when the change removed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub status: RecipientStatus,
    /// CVR values of the private senders subscribed to, ascending, each once.
    pub senders: Arc<[u32]>,
}

/// The packed index and the changes made since it was built.
#[derive(Clone, Default)]
pub struct LiveRegistry {
    base: Arc<RegistryIndex>,
    overlay: Arc<HashMap<u64, Option<Delta>>>,
    len: usize,
}

impl From<RegistryIndex> for LiveRegistry {
    fn from(base: RegistryIndex) -> Self {
        LiveRegistry {
            len: base.len(),
            base: Arc::new(base),
            overlay: Arc::default(),
        }
    }
}

impl LiveRegistry {
    pub fn lookup(&self, id: &RecipientId) -> Option<RecipientEntry<'_>> {
        self.lookup_key(id.index_key())
    }

    pub fn lookup_key(&self, key: u64) -> Option<RecipientEntry<'_>> {
        match self.changed(key) {
            Some(changed) => changed,
            None => self.base.lookup_key(key),
        }
    }

    /// The overlay's answer for a key: `None` when the key did not change since the packed
    /// index was built (then the packed index answers).
    #[inline]
    pub(crate) fn changed(&self, key: u64) -> Option<Option<RecipientEntry<'_>>> {
        if self.overlay.is_empty() {
            return None;
        }
        self.overlay.get(&key).map(|d| {
            d.as_ref()
                .map(|d| RecipientEntry::new(d.status, &d.senders))
        })
    }

    pub(crate) fn base_arc(&self) -> Arc<RegistryIndex> {
        self.base.clone()
    }

    /// The packed index (what the router reads for every key the overlay does not hold).
    pub fn base(&self) -> &RegistryIndex {
        &self.base
    }

    pub fn has_changes(&self) -> bool {
        !self.overlay.is_empty()
    }

    /// Recipients changed since the packed index was built.
    pub fn overlay_len(&self) -> usize {
        self.overlay.len()
    }

    /// Recipients in the registry, changes included.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held: the packed index and the overlay.
    pub fn memory_bytes(&self) -> usize {
        let overlay: usize = self
            .overlay
            .values()
            .map(|d| d.as_ref().map_or(0, |d| 16 + d.senders.len() * 4))
            .sum();
        self.base.memory_bytes() + self.overlay.allocation_size() + overlay
    }

    /// This registry with `changes` applied in order (the last change of a key wins). The
    /// packed index is shared, the overlay copied: `self` is unchanged for its readers.
    pub fn with_changes(
        &self,
        changes: impl IntoIterator<Item = (u64, Option<Delta>)>,
    ) -> Result<LiveRegistry, RegistryError> {
        let mut overlay = (*self.overlay).clone();
        let mut len = self.len;
        for (key, delta) in changes {
            if key & (1 << 40) != 0
                && delta.as_ref().map(|d| d.status) == Some(RecipientStatus::Exempt)
            {
                return Err(RegistryError::ExemptCompany);
            }
            let before = match overlay.get(&key) {
                Some(d) => d.is_some(),
                None => self.base.lookup_key(key).is_some(),
            };
            match (before, delta.is_some()) {
                (false, true) => len += 1,
                (true, false) => len -= 1,
                _ => {}
            }
            // A change back to exactly what the packed index holds needs no overlay entry.
            let same_as_base = match (&delta, self.base.lookup_key(key)) {
                (None, None) => true,
                (Some(d), Some(e)) => d.status == e.status && *d.senders == *e.subscriptions(),
                _ => false,
            };
            if same_as_base {
                overlay.remove(&key);
            } else {
                overlay.insert(key, delta);
            }
        }
        Ok(LiveRegistry {
            base: self.base.clone(),
            overlay: Arc::new(overlay),
            len,
        })
    }

    /// The whole registry folded into one packed index (run in the background: it copies the
    /// packed index once).
    pub fn merged(&self) -> Result<RegistryIndex, RegistryError> {
        let mut loader = IndexLoader::with_capacity(self.len, self.base.arena_len());
        for (key, status, senders) in self.base.iter() {
            if !self.overlay.contains_key(&key) {
                loader.push(key, status, senders)?;
            }
        }
        for (key, delta) in self.overlay.iter() {
            if let Some(d) = delta {
                loader.push(*key, d.status, &d.senders)?;
            }
        }
        Ok(loader.finish())
    }

    /// The registry on `merged` (built from `snapshot` by [`LiveRegistry::merged`]) with the
    /// changes made since `snapshot`: entries `snapshot` already held are in `merged` now.
    pub fn rebase(&self, merged: Arc<RegistryIndex>, snapshot: &LiveRegistry) -> LiveRegistry {
        let mut overlay: HashMap<u64, Option<Delta>> = self
            .overlay
            .iter()
            .filter(|(key, delta)| snapshot.overlay.get(*key) != Some(*delta))
            .map(|(k, d)| (*k, d.clone()))
            .collect();
        // A key changed back to what the old packed index held has left the overlay since the
        // snapshot, but `merged` holds the snapshot's value: it needs an entry again.
        for key in snapshot.overlay.keys() {
            if !self.overlay.contains_key(key) {
                let old = self.base.lookup_key(*key).map(|e| Delta {
                    status: e.status,
                    senders: e.subscriptions().into(),
                });
                overlay.insert(*key, old);
            }
        }
        LiveRegistry {
            base: merged,
            overlay: Arc::new(overlay),
            len: self.len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryBuilder;

    fn key(s: &str) -> u64 {
        s.parse::<RecipientId>().unwrap().index_key()
    }

    fn delta(status: RecipientStatus, senders: &[u32]) -> Option<Delta> {
        Some(Delta {
            status,
            senders: senders.into(),
        })
    }

    fn base() -> LiveRegistry {
        let mut b = RegistryBuilder::default();
        b.insert("0101901234".parse().unwrap(), RecipientStatus::Active)
            .unwrap();
        b.insert("61126228".parse().unwrap(), RecipientStatus::Active)
            .unwrap();
        b.subscribe("0101901234".parse().unwrap(), "10103940".parse().unwrap())
            .unwrap();
        LiveRegistry::from(b.build().unwrap())
    }

    #[test]
    fn changes_show_through_and_readers_keep_their_version() {
        let before = base();
        let after = before
            .with_changes([
                (key("0101901234"), delta(RecipientStatus::Exempt, &[])),
                (
                    key("0202801234"),
                    delta(RecipientStatus::Active, &[25313763]),
                ),
                (key("61126228"), None),
            ])
            .unwrap();
        assert_eq!(before.len(), 2);
        assert_eq!(after.len(), 2);
        assert_eq!(
            before
                .lookup_key(key("0101901234"))
                .unwrap()
                .subscription_count(),
            1
        );
        let e = after.lookup_key(key("0101901234")).unwrap();
        assert_eq!(e.status, RecipientStatus::Exempt);
        assert_eq!(e.subscription_count(), 0);
        assert!(after.lookup_key(key("61126228")).is_none());
        assert!(
            after
                .lookup_key(key("0202801234"))
                .unwrap()
                .is_subscribed_to("25313763".parse().unwrap())
        );
        // Undoing a change leaves no overlay entry.
        let undone = after
            .with_changes([(key("61126228"), delta(RecipientStatus::Active, &[]))])
            .unwrap();
        assert_eq!(undone.overlay_len(), 2);
        assert_eq!(undone.len(), 3);
    }

    #[test]
    fn merge_and_rebase_keep_later_changes() {
        let one = base().with_changes([(key("61126228"), None)]).unwrap();
        let merged = Arc::new(one.merged().unwrap());
        // A change arrives while the merge runs.
        let two = one
            .with_changes([(key("0202801234"), delta(RecipientStatus::Closed, &[]))])
            .unwrap();
        let rebased = two.rebase(merged, &one);
        assert_eq!(rebased.overlay_len(), 1);
        assert_eq!(rebased.len(), 2);
        assert!(rebased.lookup_key(key("61126228")).is_none());
        assert_eq!(
            rebased.lookup_key(key("0202801234")).unwrap().status,
            RecipientStatus::Closed
        );
        assert_eq!(rebased.base().len(), 1);
    }

    #[test]
    fn a_change_undone_during_a_merge_stays_undone() {
        let one = base().with_changes([(key("61126228"), None)]).unwrap();
        let merged = Arc::new(one.merged().unwrap());
        let two = one
            .with_changes([(key("61126228"), delta(RecipientStatus::Active, &[]))])
            .unwrap();
        assert_eq!(two.overlay_len(), 0);
        let rebased = two.rebase(merged, &one);
        assert_eq!(
            rebased.lookup_key(key("61126228")).unwrap().status,
            RecipientStatus::Active
        );
        assert_eq!(rebased.len(), 2);
    }

    #[test]
    fn an_exempt_company_is_refused() {
        assert!(
            base()
                .with_changes([(key("61126228"), delta(RecipientStatus::Exempt, &[]))])
                .is_err()
        );
    }

    use proptest::prelude::*;

    proptest! {
        /// Any sequence of changes, with merges started and finished anywhere in it (changes
        /// arriving while a merge runs), reads exactly like a plain map of the final states.
        #[test]
        fn overlay_and_merges_equal_the_final_states(
            steps in prop::collection::vec((0u64..40, 0u8..5, prop::collection::vec(0u32..4, 0..3)), 1..120),
        ) {
            let mut model: std::collections::HashMap<u64, Option<(RecipientStatus, Vec<u32>)>> =
                std::collections::HashMap::new();
            let mut live = LiveRegistry::default();
            let mut merging: Option<(LiveRegistry, Arc<RegistryIndex>)> = None;
            for (key, op, senders) in steps {
                let mut senders: Vec<u32> = senders.into_iter().map(|s| 10_000_000 + s).collect();
                senders.sort_unstable();
                senders.dedup();
                match op {
                    // Start a merge from the current registry (finished at a later step).
                    3 if merging.is_none() => {
                        let merged = Arc::new(live.merged().unwrap());
                        merging = Some((live.clone(), merged));
                    }
                    // Finish the merge running, with whatever changed since it started.
                    4 => {
                        if let Some((snapshot, merged)) = merging.take() {
                            live = live.rebase(merged, &snapshot);
                        }
                    }
                    _ => {
                        let delta = match op {
                            0 => None,
                            1 => Some((RecipientStatus::Active, senders)),
                            _ => Some((RecipientStatus::Closed, senders)),
                        };
                        model.insert(key, delta.clone());
                        live = live
                            .with_changes([(
                                key,
                                delta.map(|(status, s)| Delta { status, senders: s.into() }),
                            )])
                            .unwrap();
                    }
                }
                for k in 0..40u64 {
                    let want = model.get(&k).cloned().flatten();
                    let got = live.lookup_key(k).map(|e| (e.status, e.subscriptions().to_vec()));
                    prop_assert_eq!(got, want, "key {}", k);
                }
                let present = model.values().filter(|v| v.is_some()).count();
                prop_assert_eq!(live.len(), present);
            }
        }
    }
}
