//! Start-time fair queuing for the embedded queue: every delivery is stamped at enqueue with a
//! virtual time, and deliveries are handed out in virtual-time order (within a priority).
//!
//! A sender's letters are spaced `SCALE / weight` apart in virtual time, starting from the later
//! of its own last stamp and the clock (the stamp of what is being delivered now). A sender with
//! a deep backlog keeps stamping behind its own backlog, while a sender that just arrived starts
//! at the clock: its letter is handed out after at most one letter per other active sender
//! (weighted), not after the whole backlog. Lookup and ordering stay O(log n) (an index on the
//! stamp), which a per-lease "who has been served least" query over millions of rows would not.

use std::collections::HashMap;

use crate::domain::{Cvr, MAX_WEIGHT};

/// Virtual time one letter of weight 1 takes; divisible by every weight's share up to
/// `MAX_WEIGHT` without rounding to zero.
pub const SCALE: i64 = MAX_WEIGHT as i64 * 1000;

#[derive(Debug, Default)]
pub struct FairClock {
    /// The stamp of the latest delivery handed out.
    now: i64,
    /// Each sender's latest stamp.
    last: HashMap<Cvr, i64>,
    weights: HashMap<Cvr, u32>,
}

impl FairClock {
    /// Resumes from what a queue holds: the clock at its oldest stamp, each sender behind its
    /// own backlog.
    pub fn resume(oldest: i64, latest_by_sender: impl IntoIterator<Item = (Cvr, i64)>) -> Self {
        FairClock {
            now: oldest,
            last: latest_by_sender.into_iter().collect(),
            weights: HashMap::new(),
        }
    }

    pub fn set_weights(&mut self, weights: impl IntoIterator<Item = (Cvr, u32)>) {
        self.weights = weights.into_iter().collect();
    }

    /// The stamp for a sender's next delivery.
    pub fn stamp(&mut self, sender: Cvr) -> i64 {
        let weight = self
            .weights
            .get(&sender)
            .copied()
            .unwrap_or(1)
            .clamp(1, MAX_WEIGHT);
        let start = self
            .last
            .get(&sender)
            .copied()
            .unwrap_or(i64::MIN)
            .max(self.now);
        let stamp = start.saturating_add(SCALE / i64::from(weight));
        self.last.insert(sender, stamp);
        stamp
    }

    /// Moves the clock to a delivery handed out now.
    pub fn served(&mut self, stamp: i64) {
        self.now = self.now.max(stamp);
        // Senders whose last stamp the clock passed are idle: forget them so the map stays the
        // size of the active senders.
        if self.last.len() > 1024 {
            let now = self.now;
            self.last.retain(|_, s| *s > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvr(n: u32) -> Cvr {
        crate::domain::complete_cvr(n).unwrap()
    }

    #[test]
    fn a_newcomer_goes_before_a_backlog() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut clock = FairClock::default();
        let backlog: Vec<i64> = (0..10_000).map(|_| clock.stamp(a)).collect();
        clock.served(backlog[99]);
        let newcomer = clock.stamp(b);
        // What was served is ahead; A's next letter ties with the newcomer; the rest follow.
        assert_eq!(backlog.iter().filter(|s| **s < newcomer).count(), 100);
        assert_eq!(backlog.iter().filter(|s| **s == newcomer).count(), 1);
    }

    #[test]
    fn weights_share_in_proportion() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut clock = FairClock::default();
        clock.set_weights([(a, 3), (b, 1)]);
        let mut all: Vec<(i64, Cvr)> = (0..300).map(|_| (clock.stamp(a), a)).collect();
        all.extend((0..300).map(|_| (clock.stamp(b), b)));
        all.sort();
        let first_400_from_a = all[..400].iter().filter(|(_, s)| *s == a).count();
        assert_eq!(first_400_from_a, 300, "3:1 while both have letters");
    }

    #[test]
    fn resuming_keeps_a_backlog_behind_itself() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut clock = FairClock::resume(5 * SCALE, [(a, 900 * SCALE)]);
        assert!(clock.stamp(a) > 900 * SCALE);
        assert_eq!(clock.stamp(b), 6 * SCALE);
    }
}
