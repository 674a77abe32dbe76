//! The in-process view of the same events the Prometheus metrics count, kept as plain atomics
//! so the operator dashboard can compute rates and percentiles without parsing exposition
//! text. One per process, like the Prometheus recorder: gateways started side by side in one
//! process (tests) share it.
//!
//! Everything here is a monotonic total; the dashboard's sampler turns totals into rates by
//! differencing snapshots. Latencies go into fixed log-spaced buckets for the same reason:
//! bucket counts subtract, percentiles of a window come from the difference.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use crate::domain::{Cvr, RejectReason, Route, SenderInfo, SenderKind};

/// Every reject reason, in the order the dashboard lists them.
pub const REASONS: [RejectReason; 6] = [
    RejectReason::InvalidRecipientId,
    RejectReason::InvalidLetter,
    RejectReason::TooLarge,
    RejectReason::NotReachable,
    RejectReason::RecipientClosed,
    RejectReason::DuplicateConflict,
];

fn reason_index(reason: RejectReason) -> usize {
    match reason {
        RejectReason::InvalidRecipientId => 0,
        RejectReason::InvalidLetter => 1,
        RejectReason::TooLarge => 2,
        RejectReason::NotReachable => 3,
        RejectReason::RecipientClosed => 4,
        RejectReason::DuplicateConflict => 5,
    }
}

fn route_index(route: Route) -> usize {
    match route {
        Route::Mailbox => 0,
        Route::Print => 1,
    }
}

/// Upper bounds (seconds) of the latency buckets; a last, unbounded bucket follows. Spans a
/// sub-millisecond acceptance up to a delivery that waited a day for retries.
pub const LATENCY_BOUNDS: [f64; 22] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21_600.0, 86_400.0,
];
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// Counts of observations per latency bucket (not cumulative).
#[derive(Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}

impl Latency {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BOUNDS.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> [u64; LATENCY_BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
    }
}

/// One sender's totals.
pub struct SenderLive {
    pub cvr: Cvr,
    /// The name when the sender was first seen in this process.
    pub name: String,
    pub kind: SenderKind,
    mailbox: AtomicU64,
    print: AtomicU64,
    rejected: AtomicU64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SenderTotals {
    pub cvr: Cvr,
    pub name: String,
    pub kind: SenderKind,
    pub mailbox: u64,
    pub print: u64,
    pub rejected: u64,
}

impl SenderTotals {
    pub fn letters(&self) -> u64 {
        self.mailbox + self.print + self.rejected
    }
}

#[derive(Default)]
pub struct Live {
    received: AtomicU64,
    accepted: [AtomicU64; 2],
    rejected: [AtomicU64; REASONS.len()],
    duplicate: AtomicU64,
    unavailable: AtomicU64,
    delivered: [AtomicU64; 2],
    retries: AtomicU64,
    failed: AtomicU64,
    streams_open: AtomicI64,
    /// Receipt to accepted receipt, for accepted letters.
    accept: Latency,
    /// Accepted to delivered, per route.
    lag: [Latency; 2],
    /// Senders are few (hundreds to thousands) and new ones rare: readers share the lock, the
    /// first letter of a sender takes it once to add an entry.
    senders: RwLock<HashMap<Cvr, Arc<SenderLive>>>,
}

/// The totals at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveSnapshot {
    pub received: u64,
    /// Accepted new letters by route (mailbox, print); duplicates are not counted again.
    pub accepted: [u64; 2],
    /// Rejected letters by reason, in [`REASONS`] order.
    pub rejected: [u64; REASONS.len()],
    pub duplicate: u64,
    pub unavailable: u64,
    pub delivered: [u64; 2],
    pub retries: u64,
    pub failed: u64,
    pub streams_open: i64,
    pub accept: [u64; LATENCY_BUCKETS],
    pub lag: [[u64; LATENCY_BUCKETS]; 2],
}

impl LiveSnapshot {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }
}

static LIVE: LazyLock<Live> = LazyLock::new(Live::default);

/// The process's live totals.
pub fn live() -> &'static Live {
    &LIVE
}

impl Live {
    fn sender(&self, info: &SenderInfo) -> Arc<SenderLive> {
        if let Ok(map) = self.senders.read()
            && let Some(s) = map.get(&info.cvr)
        {
            return s.clone();
        }
        let mut map = self.senders.write().unwrap_or_else(|p| p.into_inner());
        map.entry(info.cvr)
            .or_insert_with(|| {
                Arc::new(SenderLive {
                    cvr: info.cvr,
                    name: info.name.clone(),
                    kind: info.kind,
                    mailbox: AtomicU64::new(0),
                    print: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                })
            })
            .clone()
    }

    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Relaxed);
    }

    pub(crate) fn accepted(&self, sender: &SenderInfo, route: Route, took: Duration) {
        self.accepted[route_index(route)].fetch_add(1, Relaxed);
        self.accept.record(took);
        let s = self.sender(sender);
        match route {
            Route::Mailbox => s.mailbox.fetch_add(1, Relaxed),
            Route::Print => s.print.fetch_add(1, Relaxed),
        };
    }

    pub(crate) fn rejected(&self, sender: &SenderInfo, reason: RejectReason) {
        self.rejected[reason_index(reason)].fetch_add(1, Relaxed);
        self.sender(sender).rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn duplicate(&self) {
        self.duplicate.fetch_add(1, Relaxed);
    }

    pub(crate) fn unavailable(&self) {
        self.unavailable.fetch_add(1, Relaxed);
    }

    pub(crate) fn delivered(&self, route: Route, n: usize) {
        self.delivered[route_index(route)].fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn delivery_lag(&self, route: Route, lag: Duration) {
        self.lag[route_index(route)].record(lag);
    }

    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
    }

    pub(crate) fn stream(&self, delta: i64) {
        self.streams_open.fetch_add(delta, Relaxed);
    }

    pub fn snapshot(&self) -> LiveSnapshot {
        let load = |a: &AtomicU64| a.load(Relaxed);
        LiveSnapshot {
            received: load(&self.received),
            accepted: [load(&self.accepted[0]), load(&self.accepted[1])],
            rejected: std::array::from_fn(|i| load(&self.rejected[i])),
            duplicate: load(&self.duplicate),
            unavailable: load(&self.unavailable),
            delivered: [load(&self.delivered[0]), load(&self.delivered[1])],
            retries: load(&self.retries),
            failed: load(&self.failed),
            streams_open: self.streams_open.load(Relaxed),
            accept: self.accept.snapshot(),
            lag: [self.lag[0].snapshot(), self.lag[1].snapshot()],
        }
    }

    /// Every sender's totals so far.
    pub fn senders(&self) -> Vec<SenderTotals> {
        let map = self.senders.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .map(|s| SenderTotals {
                cvr: s.cvr,
                name: s.name.clone(),
                kind: s.kind,
                mailbox: s.mailbox.load(Relaxed),
                print: s.print.load(Relaxed),
                rejected: s.rejected.load(Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_bucket_whose_bound_covers_it() {
        let l = Latency::default();
        l.record(Duration::from_micros(100));
        l.record(Duration::from_millis(1));
        l.record(Duration::from_millis(3));
        l.record(Duration::from_secs(200_000));
        let s = l.snapshot();
        assert_eq!(s[0], 1);
        assert_eq!(s[2], 1, "1 ms is within the 1 ms bucket");
        assert_eq!(s[4], 1);
        assert_eq!(s[LATENCY_BUCKETS - 1], 1);
    }

    #[test]
    fn reasons_are_listed_in_index_order() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(reason_index(*r), i);
        }
    }
}
