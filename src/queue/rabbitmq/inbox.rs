//! The inbox of one route's consumers: the messages they received and `lease` has not taken
//! yet, and the order `lease` takes them in.
//!
//! `lease` takes the urgent messages first, then the NORMAL lanes, then the BULK lanes, each by
//! weighted deficit round robin ([`crate::drr::Drr`]): the sender whose turn it is takes up to
//! its weight, then the next sender with buffered messages; a turn cut short by the batch size
//! goes on in the next lease. A sender with one letter behind a flooder with a million
//! therefore gets it into the next batch, and two flooders with weights 3 and 1 share batches
//! 3:1.
//!
//! When a route's consumers (re)start, each notes how many messages its queue had ready (up to
//! its prefetch) and the first lease waits, briefly, until they arrived: otherwise the first
//! batch after a start would be whichever lane the broker happened to fill first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex as StdMutex;
use std::time::Instant;

use lapin::Acker;
use tokio::sync::Notify;

use crate::domain::Cvr;
use crate::drr::Drr;

use super::lanes::weight_of;
use super::topology::LANE_PRIORITIES;

/// Where a consumer's messages go in the inbox.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Urgent,
    /// Index into `LANE_PRIORITIES`, and whose lane.
    Lane(usize, Cvr),
}

/// Messages a route's consumers received and `lease` has not taken yet.
#[derive(Default)]
pub(super) struct Inbox {
    state: StdMutex<InboxState>,
    pub(super) arrived: Notify,
}

#[derive(Default)]
pub(super) struct InboxState {
    urgent: VecDeque<Incoming>,
    /// NORMAL then BULK, each shared between senders by weighted deficit round robin.
    lanes: [Drr<Cvr, Incoming>; LANE_PRIORITIES.len()],
    stopped: bool,
    /// Consumers still waiting for what their queue held when they started.
    warming: usize,
    pub(super) warm_until: Option<Instant>,
}

pub(super) struct Incoming {
    pub(super) acker: Acker,
    pub(super) data: Vec<u8>,
}

impl Inbox {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, slot: Slot, item: Incoming) {
        {
            let mut s = self.lock();
            match slot {
                Slot::Urgent => s.urgent.push_back(item),
                Slot::Lane(level, sender) => s.lanes[level].push(sender, item),
            }
        }
        self.arrived.notify_waiters();
    }

    pub(super) fn stop(&self) {
        let mut s = self.lock();
        s.stopped = true;
        s.warming = 0;
        // Their channel is gone: the broker hands these out again.
        s.urgent.clear();
        for r in &mut s.lanes {
            r.clear();
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    pub(super) fn is_empty(&self) -> bool {
        let s = self.lock();
        s.urgent.is_empty() && s.lanes.iter().all(|r| r.is_empty())
    }

    pub(super) fn stopped(&self) -> bool {
        self.lock().stopped
    }

    pub(super) fn expect(&self) {
        self.lock().warming += 1;
    }

    pub(super) fn warmed(&self) {
        {
            let mut s = self.lock();
            s.warming = s.warming.saturating_sub(1);
        }
        self.arrived.notify_waiters();
    }

    /// Waits until the consumers received what their queues held when they started, or the
    /// warm-up time is over.
    pub(super) async fn warm_up(&self) {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let until = {
                let s = self.lock();
                match s.warm_until {
                    Some(until) if s.warming > 0 && !s.stopped => until,
                    _ => return,
                }
            };
            if tokio::time::timeout_at(until.into(), arrived)
                .await
                .is_err()
            {
                let mut s = self.lock();
                s.warming = 0;
                s.warm_until = None;
                return;
            }
        }
    }

    /// Up to `max` messages: urgent first, then each lower priority shared between senders by
    /// weight.
    pub(super) fn take(&self, max: usize, weights: &HashMap<Cvr, u32>) -> Vec<Incoming> {
        let mut s = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            match s.urgent.pop_front() {
                Some(i) => out.push(i),
                None => break,
            }
        }
        for r in &mut s.lanes {
            r.take_up_to(max, &mut out, |sender, _| weight_of(weights, *sender));
        }
        out
    }
}
