//! The inbox of one route's consumers: the messages they received and `lease` has not taken
//! yet, and the order `lease` takes them in.
//!
//! `lease` takes the urgent messages first, then letters back from the delay tiers (which it
//! puts into their work queues again), then NORMAL, then BULK letters, each by weighted deficit
//! round robin ([`crate::drr::Drr`]) over the senders named in the messages, whichever lane
//! (a sender's own or a shared one) they came from: the sender whose turn it is takes up to
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
use super::message::Msg;
use super::topology::{LANE_PRIORITIES, LaneSlot};

/// Which queue a consumer consumes, and so where its messages go in the inbox.
#[derive(Clone, Copy, Debug)]
pub(super) enum Slot {
    Urgent,
    /// Letters back from a delay tier.
    Returns,
    /// A shared lane of this level (index into `LANE_PRIORITIES`).
    Shared(usize),
    /// A sender's own lane.
    Lane(LaneSlot),
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
    returns: VecDeque<Incoming>,
    /// NORMAL then BULK, each shared between senders by weighted deficit round robin
    /// (unreadable messages under no sender).
    lanes: [Drr<Option<Cvr>, Incoming>; LANE_PRIORITIES.len()],
    /// Lanes whose consumer the broker cancelled (the lane was removed).
    pub(super) detached: Vec<LaneSlot>,
    stopped: bool,
    /// Consumers still waiting for what their queue held when they started.
    warming: usize,
    pub(super) warm_until: Option<Instant>,
}

pub(super) struct Incoming {
    pub(super) acker: Acker,
    /// The message, read as it arrived; `None` when it is unreadable.
    pub(super) msg: Option<Msg>,
    /// Back from a delay tier: to be put into its work queue again, not handed out.
    pub(super) returned: bool,
}

impl Incoming {
    pub(super) fn new(acker: Acker, data: &[u8], slot: Slot) -> Incoming {
        let msg = match Msg::decode(data) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(error = %e, "unreadable message; it is moved to the dead queue");
                None
            }
        };
        Incoming {
            acker,
            msg,
            returned: matches!(slot, Slot::Returns),
        }
    }
}

impl Inbox {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn push(&self, slot: Slot, item: Incoming) {
        {
            let mut s = self.lock();
            let sender = item.msg.as_ref().map(|m| m.delivery.sender);
            match slot {
                Slot::Urgent => s.urgent.push_back(item),
                Slot::Returns => s.returns.push_back(item),
                Slot::Shared(level) => s.lanes[level].push(sender, item),
                Slot::Lane(lane) => s.lanes[lane.level].push(sender, item),
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
        s.returns.clear();
        for r in &mut s.lanes {
            r.clear();
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    pub(super) fn is_empty(&self) -> bool {
        let s = self.lock();
        s.urgent.is_empty() && s.returns.is_empty() && s.lanes.iter().all(|r| r.is_empty())
    }

    /// The lanes whose consumers ended since the last call.
    pub(super) fn take_detached(&self) -> Vec<LaneSlot> {
        std::mem::take(&mut self.lock().detached)
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
            match s.urgent.pop_front().or_else(|| s.returns.pop_front()) {
                Some(i) => out.push(i),
                None => break,
            }
        }
        for r in &mut s.lanes {
            r.take_up_to(max, &mut out, |sender, _| {
                sender.map_or(1, |s| weight_of(weights, s))
            });
        }
        out
    }
}
