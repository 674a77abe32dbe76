//! Weighted deficit round robin: the one fair scheduler behind the admission gate and the
//! RabbitMQ consumers' inbox.
//!
//! Items wait in one line per key (a sender). Keys with items waiting take turns in the order
//! they arrived; in its turn a key may take as many items as its weight, then the next key's
//! turn starts. A key is in the turn order once, however many items it has waiting, so a key
//! with a million items and a key with one alternate, and a newcomer is served in the next
//! turn rather than after anyone's backlog. A turn cut short (the caller took fewer items
//! than the key's weight) goes on at the next take, so weights hold across small batches.
//!
//! The weight is asked when a key's turn starts, from the key and the item at the head of its
//! line: callers that know weights per key look them up, callers whose items carry the weight
//! they were queued with read it from the item. Nothing here blocks or allocates per item
//! beyond the lines themselves.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Items per key, served by weighted deficit round robin.
#[derive(Debug)]
pub struct Drr<K, T> {
    /// Waiting items per key; only keys with some are here.
    lines: HashMap<K, VecDeque<T>>,
    /// Keys with items waiting, in turn order; the front key's turn is under way (or starts at
    /// the next take).
    turns: VecDeque<K>,
    /// What the front key may still take in its turn; 0 until its turn starts.
    credit: u32,
    len: usize,
}

impl<K, T> Default for Drr<K, T> {
    fn default() -> Self {
        Drr {
            lines: HashMap::new(),
            turns: VecDeque::new(),
            credit: 0,
            len: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, T> Drr<K, T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Items waiting, over all keys.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `item` behind `key`'s other items; a key without items waiting joins the turn
    /// order at the back.
    pub fn push(&mut self, key: K, item: T) {
        let line = self.lines.entry(key.clone()).or_default();
        if line.is_empty() {
            self.turns.push_back(key);
        }
        line.push_back(item);
        self.len += 1;
    }

    /// The item the next [`Drr::take_next`] returns.
    pub fn peek(&self) -> Option<&T> {
        self.turns
            .front()
            .and_then(|k| self.lines.get(k))
            .and_then(|line| line.front())
    }

    /// Takes the next item in turn. `weight` is asked when a key's turn starts (with the key
    /// and the item at the head of its line); 0 counts as 1.
    pub fn take_next(&mut self, weight: impl Fn(&K, &T) -> u32) -> Option<T> {
        loop {
            let key = self.turns.front()?.clone();
            let Some(line) = self.lines.get_mut(&key) else {
                // Not reachable while `push` and `take_next` keep lines and turns together;
                // recover rather than stall the key behind it.
                self.turns.pop_front();
                self.credit = 0;
                continue;
            };
            let Some(head) = line.front() else {
                self.end_turn_of_emptied(&key);
                continue;
            };
            if self.credit == 0 {
                self.credit = weight(&key, head).max(1);
            }
            let item = line.pop_front();
            self.credit -= 1;
            self.len -= 1;
            if line.is_empty() {
                // Out of items: its turn ends, and when it comes back it queues up anew.
                self.end_turn_of_emptied(&key);
            } else if self.credit == 0 {
                self.turns.rotate_left(1);
            }
            return item;
        }
    }

    /// Appends up to `max` items in turn to `out` (counting what `out` already holds).
    pub fn take_up_to(&mut self, max: usize, out: &mut Vec<T>, weight: impl Fn(&K, &T) -> u32) {
        while out.len() < max {
            match self.take_next(&weight) {
                Some(item) => out.push(item),
                None => break,
            }
        }
    }

    /// Drops items at the head of the turn that `dead` says nobody wants any more (an abandoned
    /// wait), without charging them to their key's turn; returns how many were dropped.
    pub fn discard_while(&mut self, mut dead: impl FnMut(&T) -> bool) -> usize {
        let mut dropped = 0;
        while let Some(key) = self.turns.front().cloned() {
            let Some(line) = self.lines.get_mut(&key) else {
                self.turns.pop_front();
                self.credit = 0;
                continue;
            };
            while line.front().is_some_and(&mut dead) {
                line.pop_front();
                dropped += 1;
            }
            if !line.is_empty() {
                break;
            }
            self.end_turn_of_emptied(&key);
        }
        self.len -= dropped;
        dropped
    }

    /// Forgets everything waiting.
    pub fn clear(&mut self) {
        self.lines.clear();
        self.turns.clear();
        self.credit = 0;
        self.len = 0;
    }

    /// The front key's line is empty: it leaves the turn order.
    fn end_turn_of_emptied(&mut self, key: &K) {
        self.lines.remove(key);
        self.turns.pop_front();
        self.credit = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights per key as the RabbitMQ inbox gives them; unknown keys weigh 1.
    fn take(r: &mut Drr<char, char>, max: usize, weights: &HashMap<char, u32>) -> Vec<char> {
        let mut out = Vec::new();
        r.take_up_to(max, &mut out, |k, _| weights.get(k).copied().unwrap_or(1));
        out
    }

    fn one(r: &mut Drr<char, char>) -> Option<char> {
        r.take_next(|_, _| 1)
    }

    #[test]
    fn a_newcomer_is_served_in_the_next_turn() {
        let mut r = Drr::new();
        for _ in 0..1000 {
            r.push('a', 'a');
        }
        let first = take(&mut r, 10, &HashMap::new());
        assert_eq!(first, vec!['a'; 10]);
        r.push('b', 'b');
        let next = take(&mut r, 4, &HashMap::new());
        assert_eq!(next, vec!['a', 'b', 'a', 'a']);
    }

    #[test]
    fn weights_share_in_proportion_across_batches() {
        let weights = HashMap::from([('a', 3), ('b', 1)]);
        let mut r = Drr::new();
        for _ in 0..500 {
            r.push('a', 'a');
            r.push('b', 'b');
        }
        // Batches that cut turns short still add up to 3:1.
        let mut got = Vec::new();
        for _ in 0..40 {
            got.extend(take(&mut r, 10, &weights));
        }
        assert_eq!(got.iter().filter(|s| **s == 'a').count(), 300);
        assert_eq!(got.iter().filter(|s| **s == 'b').count(), 100);
    }

    #[test]
    fn an_emptied_line_leaves_the_turn() {
        let mut r = Drr::new();
        r.push('a', 'a');
        r.push('b', 'b');
        r.push('b', 'b');
        assert_eq!(take(&mut r, 10, &HashMap::new()), vec!['a', 'b', 'b']);
        assert!(r.turns.is_empty() && r.lines.is_empty() && r.is_empty());
        r.push('a', 'a');
        assert_eq!(take(&mut r, 10, &HashMap::new()), vec!['a']);
    }

    #[test]
    fn a_key_is_in_the_turn_once() {
        let mut r = Drr::new();
        for _ in 0..3 {
            r.push('a', 'a');
        }
        r.push('b', 'b');
        for _ in 0..3 {
            r.push('a', 'a');
        }
        assert_eq!(
            r.turns.len(),
            2,
            "a's six items give it one place in the turn"
        );
        let order: Vec<char> = std::iter::from_fn(|| one(&mut r)).collect();
        assert_eq!(order, vec!['a', 'b', 'a', 'a', 'a', 'a', 'a']);
    }

    #[test]
    fn the_weight_can_come_from_the_item() {
        // The gate's way: each item carries the weight its sender had when it was queued.
        let mut r: Drr<char, (char, u32)> = Drr::new();
        for _ in 0..6 {
            r.push('a', ('a', 2));
            r.push('b', ('b', 1));
        }
        let order: Vec<char> = std::iter::from_fn(|| r.take_next(|_, item| item.1))
            .map(|(k, _)| k)
            .take(6)
            .collect();
        assert_eq!(order, vec!['a', 'a', 'b', 'a', 'a', 'b']);
    }

    #[test]
    fn peek_shows_what_take_next_returns() {
        let mut r = Drr::new();
        r.push('a', 1);
        r.push('a', 2);
        r.push('b', 3);
        let mut seen = Vec::new();
        while let Some(&p) = r.peek() {
            let took = r.take_next(|_, _| 1);
            assert_eq!(took, Some(p));
            seen.push(p);
        }
        assert_eq!(seen, vec![1, 3, 2]);
    }

    #[test]
    fn discarded_items_are_not_charged_to_the_turn() {
        // 0 marks an abandoned item.
        let mut r = Drr::new();
        r.push('a', 0);
        r.push('a', 0);
        r.push('a', 1);
        r.push('a', 2);
        r.push('b', 0);
        r.push('b', 3);
        assert_eq!(r.discard_while(|i| *i == 0), 2);
        assert_eq!(r.take_next(|_, _| 1), Some(1));
        // b's dead head goes when b's turn comes up.
        assert_eq!(r.discard_while(|i| *i == 0), 1);
        assert_eq!(r.take_next(|_, _| 1), Some(3));
        assert_eq!(r.take_next(|_, _| 1), Some(2));
        assert!(r.is_empty());
        // A key whose whole line was abandoned leaves the turn.
        r.push('c', 0);
        r.push('d', 4);
        assert_eq!(r.discard_while(|i| *i == 0), 1);
        assert_eq!(r.peek(), Some(&4));
        assert_eq!(r.len(), 1);
    }
}
