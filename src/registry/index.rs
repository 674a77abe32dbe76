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
#[derive(Clone, Copy, Debug)]
pub struct RecipientEntry<'a> {
    pub status: RecipientStatus,
    subscriptions: &'a [u32],
}

impl RecipientEntry<'_> {
    /// Whether the recipient subscribed to mail from this private sender.
    pub fn is_subscribed_to(&self, sender: Cvr) -> bool {
        // Sorted and short (a handful per citizen): a linear scan beats a binary search here.
        self.subscriptions.contains(&sender.value())
    }

    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
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

    /// Heap bytes held by the index (table and subscription arena).
    pub fn memory_bytes(&self) -> usize {
        self.slots.allocation_size() + self.arena.capacity() * size_of::<u32>()
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
            mut slots,
            mut subscriptions,
        } = self;
        subscriptions.sort_unstable();
        subscriptions.dedup();
        let subscribers = subscriptions.chunk_by(|a, b| a.0 == b.0).count();
        // Offset 0 is the shared empty list for recipients without subscriptions.
        let mut arena = Vec::with_capacity(1 + subscribers + subscriptions.len());
        arena.push(0u32);
        for group in subscriptions.chunk_by(|a, b| a.0 == b.0) {
            let offset = arena.len();
            if offset > OFFSET_MASK as usize {
                return Err(RegistryError::TooLarge(arena.len()));
            }
            arena.push(group.len() as u32);
            arena.extend(group.iter().map(|&(_, cvr)| cvr));
            if let Some(packed) = slots.get_mut(&group[0].0) {
                *packed = (*packed & !OFFSET_MASK) | offset as u32;
            }
        }
        slots.shrink_to_fit();
        arena.shrink_to_fit();
        Ok(RegistryIndex { slots, arena })
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
