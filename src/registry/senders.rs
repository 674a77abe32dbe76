//! The sender directory: registered organisations, their kind and whether they may send.

use std::collections::HashMap;

use crate::domain::{Cvr, SenderInfo};

/// All registered senders by CVR. Small (hundreds to thousands): a plain map.
#[derive(Clone, Debug, Default)]
pub struct SenderDirectory {
    by_cvr: HashMap<Cvr, SenderInfo>,
}

impl SenderDirectory {
    pub fn new(senders: impl IntoIterator<Item = SenderInfo>) -> Self {
        SenderDirectory {
            by_cvr: senders.into_iter().map(|s| (s.cvr, s)).collect(),
        }
    }

    pub fn get(&self, cvr: Cvr) -> Option<&SenderInfo> {
        self.by_cvr.get(&cvr)
    }

    pub fn insert(&mut self, sender: SenderInfo) {
        self.by_cvr.insert(sender.cvr, sender);
    }

    pub fn len(&self) -> usize {
        self.by_cvr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_cvr.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SenderInfo> {
        self.by_cvr.values()
    }
}
