//! `/readyz` from cached probes: a background task asks the store and the queue whether they
//! answer, each under a deadline, and the handler only reads the last answer. A load balancer
//! polling readiness therefore costs the backends one probe per interval however often it asks,
//! and a hung backend makes the gateway unready instead of hanging the probe.
//!
//! The answer names which backend is not ready, never why: the cause (host names, driver
//! errors) goes to the log, once per change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error_report::chain;
use crate::queue::Queue;
use crate::store::Store;

/// How often the backends are probed, and how long one probe may take.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
pub const PROBE_DEADLINE: Duration = Duration::from_secs(2);

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const STORE_DOWN: u8 = 2;
const QUEUE_DOWN: u8 = 3;

/// The last probe's verdict, shared between the probe task and the handler.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

/// What `/readyz` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No probe has finished yet (the gateway is starting).
    Starting,
    Ready,
    StoreDown,
    QueueDown,
}

impl Readiness {
    pub fn verdict(&self) -> Verdict {
        match self.0.load(Ordering::Relaxed) {
            READY => Verdict::Ready,
            STORE_DOWN => Verdict::StoreDown,
            QUEUE_DOWN => Verdict::QueueDown,
            _ => Verdict::Starting,
        }
    }

    fn set(&self, v: Verdict) -> Verdict {
        let code = match v {
            Verdict::Starting => UNKNOWN,
            Verdict::Ready => READY,
            Verdict::StoreDown => STORE_DOWN,
            Verdict::QueueDown => QUEUE_DOWN,
        };
        match self.0.swap(code, Ordering::Relaxed) {
            READY => Verdict::Ready,
            STORE_DOWN => Verdict::StoreDown,
            QUEUE_DOWN => Verdict::QueueDown,
            _ => Verdict::Starting,
        }
    }

    /// Probes once: the store first (without it nothing is accepted), then the queue.
    pub async fn probe(&self, store: &dyn Store, queue: &dyn Queue) -> Verdict {
        let verdict = match tokio::time::timeout(PROBE_DEADLINE, store.ping()).await {
            Ok(Err(e)) => {
                tracing::debug!(error = %chain(&e), "readiness: the store does not answer");
                Verdict::StoreDown
            }
            Err(_) => Verdict::StoreDown,
            Ok(Ok(())) => match tokio::time::timeout(PROBE_DEADLINE, queue.depth()).await {
                Ok(Ok(_)) => Verdict::Ready,
                Ok(Err(e)) => {
                    tracing::debug!(error = %chain(&e), "readiness: the queue does not answer");
                    Verdict::QueueDown
                }
                Err(_) => Verdict::QueueDown,
            },
        };
        let before = self.set(verdict);
        if before != verdict {
            tracing::info!(?before, now = ?verdict, "readiness changed");
        }
        verdict
    }

    /// Probes every [`PROBE_EVERY`] until cancelled.
    pub async fn run(
        self,
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            self.probe(&*store, &*queue).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_is_what_was_set_last() {
        let r = Readiness::default();
        assert_eq!(r.verdict(), Verdict::Starting);
        assert_eq!(r.set(Verdict::StoreDown), Verdict::Starting);
        assert_eq!(r.verdict(), Verdict::StoreDown);
        r.set(Verdict::Ready);
        assert_eq!(r.verdict(), Verdict::Ready);
    }
}
