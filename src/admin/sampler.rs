//! The dashboard's memory: once a second a small task copies the live totals (and asks the
//! queue how deep it is) into a ring of per-second snapshots. Rates, the throughput chart and
//! recent percentiles are differences between snapshots, computed when the page asks
//! (`stats::compute`); nothing per letter happens here.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::queue::Queue;
use crate::telemetry;

use super::history::{History, Sample, SenderSample};
use super::stats::{self, Stats};

/// Snapshots kept: five minutes of one-second intervals.
pub const HISTORY: usize = 301;
/// Per-sender totals are kept only as far back as the busiest-senders rate looks.
const SENDER_HISTORY: usize = stats::RATE_WINDOW_SECS as usize + 1;
const EVERY: Duration = Duration::from_secs(1);
/// A queue slower than this to count keeps its last known depth for this sample.
const QUEUE_DEPTH_TIMEOUT: Duration = Duration::from_millis(900);

pub struct Sampler {
    queue: Arc<dyn Queue>,
    started: Instant,
    started_ms: i64,
    history: Mutex<History>,
}

impl Sampler {
    pub fn new(queue: Arc<dyn Queue>) -> Arc<Self> {
        Arc::new(Sampler {
            queue,
            started: Instant::now(),
            started_ms: now_ms(),
            history: Mutex::default(),
        })
    }

    /// Samples every second until cancelled.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let me = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = tick.tick() => me.sample().await,
                }
            }
        });
    }

    /// Takes one snapshot now.
    pub async fn sample(&self) {
        // The counters are read first and stamped with their own time, so a slow queue count
        // below delays the depth, never the rates.
        let t = self.started.elapsed().as_secs_f64();
        // Histogram samples wait in the recorder until folded into their buckets; without this
        // they would pile up between scrapes (or for ever, with nobody scraping).
        if let Some(handle) = telemetry::prometheus() {
            handle.run_upkeep();
        }
        let snapshot = telemetry::live().snapshot();
        let letters = telemetry::live()
            .senders()
            .into_iter()
            .map(|s| (s.cvr, s.letters()))
            .collect();
        let depth = match tokio::time::timeout(QUEUE_DEPTH_TIMEOUT, self.queue.depth()).await {
            Ok(Ok(d)) => {
                telemetry::queue_depth(d.mailbox, d.print, d.dead);
                Some(Ok(d))
            }
            Ok(Err(e)) => Some(Err(e.to_string())),
            Err(_) => None,
        };
        let mut h = self.lock();
        h.samples.push_back(Sample { t, live: snapshot });
        while h.samples.len() > HISTORY {
            h.samples.pop_front();
        }
        h.senders.push_back(SenderSample { t, letters });
        while h.senders.len() > SENDER_HISTORY {
            h.senders.pop_front();
        }
        if depth.is_some() {
            h.queue = depth;
        }
    }

    /// What the dashboard shows now.
    pub fn stats(&self) -> Stats {
        let live = telemetry::live();
        let (now, senders) = (live.snapshot(), live.senders());
        let h = self.lock();
        stats::compute(&h, &now, senders, now_ms(), self.started_ms)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding the lock leaves whole snapshots behind; keep serving them.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
