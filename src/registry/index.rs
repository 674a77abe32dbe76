//! The in-memory recipient index, sized for the whole of Denmark.
//!
//! One hash-table slot per recipient maps its 64-bit key to a packed `u32`: the status in the top
//! two bits and an offset into a shared subscription arena in the rest. The arena stores, per
//! recipient with subscriptions, a count followed by the sorted CVRs of the private senders
//! subscribed to. This keeps the index near 30 bytes per recipient and a lookup at one or two
//! cache misses, which is what lets routing run at millions of decisions per second.

use hashbrown::HashMap;

use crate::domain::{Cvr, RecipientId, RecipientStatus, StatusParseError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    BadStatus(#[from] StatusParseError),
    #[error("a company (CVR) cannot be exempt: exemption from Digital Post is for citizens only")]
    ExemptCompany,
    #[error("the recipient is listed more than once")]
    DuplicateRecipient,
    #[error("the recipient of this subscription is not in the registry")]
    UnknownSubscriber,
    #[error("the registry is too large for the index ({0} subscription entries)")]
    TooLarge(usize),
}

const STATUS_SHIFT: u32 = 30;
const OFFSET_MASK: u32 = (1 << STATUS_SHIFT) - 1;

/// What the registry knows of one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecipientEntry<'a> {
    pub status: RecipientStatus,
    subscriptions: &'a [u32],
}

impl<'a> RecipientEntry<'a> {
    /// Whether the recipient subscribed to mail from this private sender.
    pub fn is_subscribed_to(&self, sender: Cvr) -> bool {
        // Sorted and short (a handful per citizen): a linear scan beats a binary search here.
        self.subscriptions.contains(&sender.value())
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }

    /// The CVR values of the private senders subscribed to, ascending.
    pub fn subscriptions(&self) -> &'a [u32] {
        self.subscriptions
    }

    pub(crate) fn new(status: RecipientStatus, subscriptions: &'a [u32]) -> Self {
        RecipientEntry {
            status,
            subscriptions,
        }
    }
}

/// The read-only recipient index. Build it with [`RegistryBuilder`]; replace it whole when the
/// registry changes (readers hold an `Arc` to the version they started with).
#[derive(Default)]
pub struct RegistryIndex {
    slots: HashMap<u64, u32>,
    arena: Vec<u32>,
}

impl RegistryIndex {
    pub fn lookup(&self, id: &RecipientId) -> Option<RecipientEntry<'_>> {
        self.packed(id).map(|p| self.entry(p))
    }

    /// The packed slot value of a recipient: status and arena offset.
    pub(crate) fn packed(&self, id: &RecipientId) -> Option<u32> {
        self.slots.get(&id.index_key()).copied()
    }

    /// The first arena word a packed value points at. Reading it ahead of the decision pulls the
    /// subscription list into cache while other lookups are still in flight.
    pub(crate) fn arena_head(&self, packed: u32) -> u32 {
        self.arena
            .get((packed & OFFSET_MASK) as usize)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn entry(&self, packed: u32) -> RecipientEntry<'_> {
        let offset = (packed & OFFSET_MASK) as usize;
        let count = self.arena.get(offset).copied().unwrap_or(0) as usize;
        let subscriptions = self
            .arena
            .get(offset + 1..offset + 1 + count)
            .unwrap_or(&[]);
        RecipientEntry {
            status: RecipientStatus::from_bits(packed >> STATUS_SHIFT),
            subscriptions,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Words in the subscription arena (counts and CVRs).
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Heap bytes held by the index (table and subscription arena).
    pub fn memory_bytes(&self) -> usize {
        self.slots.allocation_size() + self.arena.capacity() * size_of::<u32>()
    }

    /// The entry of a recipient by index key.
    pub fn lookup_key(&self, key: u64) -> Option<RecipientEntry<'_>> {
        self.slots.get(&key).map(|&p| self.entry(p))
    }

    /// Every recipient with its status and subscriptions, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, RecipientStatus, &[u32])> + '_ {
        self.slots.iter().map(|(&key, &packed)| {
            let offset = (packed & OFFSET_MASK) as usize;
            let count = self.arena.get(offset).copied().unwrap_or(0) as usize;
            let subs = self
                .arena
                .get(offset + 1..offset + 1 + count)
                .unwrap_or(&[]);
            (
                key,
                RecipientStatus::from_bits(packed >> STATUS_SHIFT),
                subs,
            )
        })
    }
}

/// Collects recipients and subscriptions, then packs them into a [`RegistryIndex`].
#[derive(Default)]
pub struct RegistryBuilder {
    slots: HashMap<u64, u32>,
    subscriptions: Vec<(u64, u32)>,
}

impl RegistryBuilder {
    pub fn with_capacity(recipients: usize, subscriptions: usize) -> Self {
        RegistryBuilder {
            slots: HashMap::with_capacity(recipients),
            subscriptions: Vec::with_capacity(subscriptions),
        }
    }

    /// Adds a recipient; a second entry for the same id is refused.
    pub fn insert(
        &mut self,
        id: RecipientId,
        status: RecipientStatus,
    ) -> Result<(), RegistryError> {
        if matches!(id, RecipientId::Cvr(_)) && status == RecipientStatus::Exempt {
            return Err(RegistryError::ExemptCompany);
        }
        match self.slots.entry(id.index_key()) {
            hashbrown::hash_map::Entry::Occupied(_) => Err(RegistryError::DuplicateRecipient),
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(status.bits() << STATUS_SHIFT);
                Ok(())
            }
        }
    }

    /// Adds or replaces a recipient (used when applying later changes on top of a registry).
    pub fn upsert(
        &mut self,
        id: RecipientId,
        status: RecipientStatus,
    ) -> Result<(), RegistryError> {
        if matches!(id, RecipientId::Cvr(_)) && status == RecipientStatus::Exempt {
            return Err(RegistryError::ExemptCompany);
        }
        self.slots
            .insert(id.index_key(), status.bits() << STATUS_SHIFT);
        Ok(())
    }

    pub fn contains(&self, id: &RecipientId) -> bool {
        self.slots.contains_key(&id.index_key())
    }

    /// Records that `id` subscribed to private sender `sender`. The recipient must be present.
    pub fn subscribe(&mut self, id: RecipientId, sender: Cvr) -> Result<(), RegistryError> {
        let key = id.index_key();
        if !self.slots.contains_key(&key) {
            return Err(RegistryError::UnknownSubscriber);
        }
        self.subscriptions.push((key, sender.value()));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn build(self) -> Result<RegistryIndex, RegistryError> {
        let RegistryBuilder {
            slots,
            mut subscriptions,
        } = self;
        subscriptions.sort_unstable();
        subscriptions.dedup();
        let mut loader = IndexLoader::with_capacity(slots.len(), subscriptions.len());
        // Both sides in key order, walked together.
        let mut recipients: Vec<(u64, u32)> = slots.into_iter().collect();
        recipients.sort_unstable_by_key(|r| r.0);
        let mut at = 0;
        for (key, packed) in recipients {
            while at < subscriptions.len() && subscriptions[at].0 < key {
                at += 1;
            }
            let from = at;
            while at < subscriptions.len() && subscriptions[at].0 == key {
                at += 1;
            }
            let senders: Vec<u32> = subscriptions[from..at].iter().map(|s| s.1).collect();
            loader.push(
                key,
                RecipientStatus::from_bits(packed >> STATUS_SHIFT),
                &senders,
            )?;
        }
        Ok(loader.finish())
    }
}

/// Packs recipients into a [`RegistryIndex`] one at a time, as they stream out of the store:
/// each recipient's subscriptions go straight into the arena, so nothing is held twice.
pub struct IndexLoader {
    slots: HashMap<u64, u32>,
    arena: Vec<u32>,
}

impl IndexLoader {
    pub fn with_capacity(recipients: usize, subscriptions: usize) -> Self {
        let mut arena = Vec::with_capacity(1 + subscriptions + recipients / 2);
        // Offset 0 is the shared empty list for recipients without subscriptions.
        arena.push(0u32);
        IndexLoader {
            slots: HashMap::with_capacity(recipients),
            arena,
        }
    }

    /// Adds one recipient by index key with its subscriptions (CVR values, sorted, each once).
    /// A key added twice is refused.
    pub fn push(
        &mut self,
        key: u64,
        status: RecipientStatus,
        senders: &[u32],
    ) -> Result<(), RegistryError> {
        if key & (1 << 40) != 0 && status == RecipientStatus::Exempt {
            return Err(RegistryError::ExemptCompany);
        }
        let offset = if senders.is_empty() {
            0
        } else {
            let offset = self.arena.len();
            if offset + senders.len() >= OFFSET_MASK as usize {
                return Err(RegistryError::TooLarge(offset));
            }
            self.arena.push(senders.len() as u32);
            self.arena.extend_from_slice(senders);
            offset as u32
        };
        match self.slots.entry(key) {
            hashbrown::hash_map::Entry::Occupied(_) => Err(RegistryError::DuplicateRecipient),
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert((status.bits() << STATUS_SHIFT) | offset);
                Ok(())
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn finish(self) -> RegistryIndex {
        let IndexLoader {
            mut slots,
            mut arena,
        } = self;
        slots.shrink_to_fit();
        arena.shrink_to_fit();
        RegistryIndex { slots, arena }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RecipientId {
        s.parse().unwrap()
    }

    fn cvr(s: &str) -> Cvr {
        s.parse().unwrap()
    }

    #[test]
    fn lookup_returns_status_and_subscriptions() {
        let mut b = RegistryBuilder::default();
        b.insert(id("0101901234"), RecipientStatus::Active).unwrap();
        b.insert(id("0202801234"), RecipientStatus::Exempt).unwrap();
        b.insert(id("61126228"), RecipientStatus::Closed).unwrap();
        b.subscribe(id("0101901234"), cvr("10103940")).unwrap();
        b.subscribe(id("0101901234"), cvr("25313763")).unwrap();
        b.subscribe(id("0101901234"), cvr("25313763")).unwrap();
        let index = b.build().unwrap();

        let e = index.lookup(&id("0101901234")).unwrap();
        assert_eq!(e.status, RecipientStatus::Active);
        assert_eq!(e.subscription_count(), 2);
        assert!(e.is_subscribed_to(cvr("10103940")));
        assert!(!e.is_subscribed_to(cvr("61126228")));

        let e = index.lookup(&id("0202801234")).unwrap();
        assert_eq!(e.status, RecipientStatus::Exempt);
        assert_eq!(e.subscription_count(), 0);
        assert_eq!(
            index.lookup(&id("61126228")).unwrap().status,
            RecipientStatus::Closed
        );
        assert!(index.lookup(&id("0303701234")).is_none());
        assert_eq!(index.len(), 3);
        assert_eq!(index.iter().count(), 3);
    }

    #[test]
    fn refuses_what_the_registry_cannot_hold() {
        let mut b = RegistryBuilder::default();
        assert_eq!(
            b.insert(id("61126228"), RecipientStatus::Exempt),
            Err(RegistryError::ExemptCompany)
        );
        b.insert(id("0101901234"), RecipientStatus::Active).unwrap();
        assert_eq!(
            b.insert(id("0101901234"), RecipientStatus::Closed),
            Err(RegistryError::DuplicateRecipient)
        );
        assert_eq!(
            b.subscribe(id("0202801234"), cvr("10103940")),
            Err(RegistryError::UnknownSubscriber)
        );
    }
}
