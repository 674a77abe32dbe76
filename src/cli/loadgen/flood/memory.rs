//! The process's memory through the flood: the resident set sampled as receipts come in, read
//! from `/proc/self/status`, and the figures made of the samples (by quarter of the flood's
//! letters, so a slow and a fast run compare).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How often the resident set is read during the flood.
pub(super) const RSS_EVERY: Duration = Duration::from_millis(250);
/// Last quarter's peak within this much of the first quarter's counts as flat.
const FLAT_TOLERANCE: f64 = 0.10;

#[derive(Serialize)]
pub(super) struct Memory {
    pub(super) samples: usize,
    /// VmHWM at the end of the flood; `peak_since` says from when.
    pub(super) peak_kib: Option<u64>,
    pub(super) peak_since: &'static str,
    /// VmRSS: everything resident.
    pub(super) rss: Series,
    /// RssAnon, the part of VmRSS that is heap and stacks: where a leak would show. The rest
    /// is mapped files and shared memory (SQLite's WAL index grows and shrinks with the WAL).
    pub(super) anon: Series,
}

#[derive(Serialize)]
pub(super) struct Series {
    /// When 25, 50, 75 and 100 % of the flood's receipts were in.
    pub(super) kib_at_quarters: [Option<u64>; 4],
    pub(super) first_quarter_max_kib: Option<u64>,
    pub(super) last_quarter_max_kib: Option<u64>,
    /// Last quarter's peak over the first quarter's, minus one.
    pub(super) growth: Option<f64>,
    pub(super) flat: Option<bool>,
    pub(super) after_drain_kib: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RssSample {
    /// Flood receipts in when the sample was taken.
    pub receipts: u64,
    /// Since the flood started.
    pub at: Duration,
    /// VmRSS, and RssAnon of it.
    pub rss_kib: Option<u64>,
    pub anon_kib: Option<u64>,
}

impl RssSample {
    pub(super) fn now(receipts: u64, at: Duration) -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        RssSample {
            receipts,
            at,
            rss_kib: status_kib(&status, "VmRSS"),
            anon_kib: status_kib(&status, "RssAnon"),
        }
    }
}

pub(super) async fn sample_rss(
    progress: Arc<AtomicU64>,
    started: Instant,
    stop: CancellationToken,
) -> Vec<RssSample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(RSS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        samples.push(RssSample::now(
            progress.load(Ordering::Relaxed),
            started.elapsed(),
        ));
    }
    samples
}

/// A `kB` field of this process's `/proc/self/status` (Linux only).
pub(super) fn read_status(field: &str) -> Option<u64> {
    status_kib(&std::fs::read_to_string("/proc/self/status").ok()?, field)
}

/// Parses a field such as `VmRSS:\t  123456 kB` out of a `/proc/PID/status` text.
pub(crate) fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Resets VmHWM to the current resident set (Linux ≥ 4.0), so the peak read at the end is the
/// flood's own and not the single-sender phase's.
pub(super) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub(super) type Kib = fn(&RssSample) -> Option<u64>;

/// The first sample taken once the flood's receipts reached `fraction` of `total`.
pub(super) fn sample_at(samples: &[RssSample], total: u64, fraction: f64) -> Option<&RssSample> {
    let goal = (total as f64 * fraction).ceil() as u64;
    samples.iter().find(|s| s.receipts >= goal)
}

/// The memory figure `kib` when the flood's receipts first reached `fraction` of `total`.
pub(crate) fn kib_at(samples: &[RssSample], kib: Kib, total: u64, fraction: f64) -> Option<u64> {
    sample_at(samples, total, fraction).and_then(kib)
}

/// The largest figure `kib` sampled while the receipts were in quarter `q` (0 to 3) of `total`.
pub(crate) fn quarter_max(samples: &[RssSample], kib: Kib, total: u64, q: u64) -> Option<u64> {
    let (lo, hi) = (total * q / 4, total * (q + 1) / 4);
    samples
        .iter()
        .filter(|s| s.receipts >= lo && (s.receipts < hi || q == 3))
        .filter_map(kib)
        .max()
}

/// Receipts per second between the samples where quarter `q` of `total` began and ended.
pub(crate) fn quarter_rate(samples: &[RssSample], total: u64, q: u64) -> Option<f64> {
    let from = if q == 0 {
        samples.first()?
    } else {
        sample_at(samples, total, q as f64 / 4.0)?
    };
    let to = sample_at(samples, total, (q + 1) as f64 / 4.0)?;
    let secs = to.at.checked_sub(from.at)?.as_secs_f64();
    (secs > 0.0).then(|| (to.receipts - from.receipts) as f64 / secs)
}

pub(super) fn series(
    samples: &[RssSample],
    kib: Kib,
    total: u64,
    after_drain: &RssSample,
) -> Series {
    let first = quarter_max(samples, kib, total, 0);
    let last = quarter_max(samples, kib, total, 3);
    let growth = match (first, last) {
        (Some(f), Some(l)) if f > 0 => Some(l as f64 / f as f64 - 1.0),
        _ => None,
    };
    Series {
        kib_at_quarters: [0.25, 0.5, 0.75, 1.0].map(|f| kib_at(samples, kib, total, f)),
        first_quarter_max_kib: first,
        last_quarter_max_kib: last,
        growth,
        flat: growth.map(|g| g <= FLAT_TOLERANCE),
        after_drain_kib: kib(after_drain),
    }
}

pub(super) fn memory(
    samples: &[RssSample],
    total: u64,
    peak_kib: Option<u64>,
    hwm_reset: bool,
    after_drain: RssSample,
) -> Memory {
    Memory {
        samples: samples.len(),
        peak_kib,
        peak_since: if hwm_reset {
            "flood start"
        } else {
            "process start"
        },
        rss: series(samples, |s| s.rss_kib, total, &after_drain),
        anon: series(samples, |s| s.anon_kib, total, &after_drain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kb_fields_of_proc_status() {
        let status = "Name:\tbrevdue\nVmPeak:\t 2345678 kB\nVmHWM:\t  412300 kB\nVmRSS:\t  401234 kB\nThreads:\t7\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(401_234));
        assert_eq!(status_kib(status, "VmHWM"), Some(412_300));
        assert_eq!(status_kib(status, "Threads"), None, "not a kB field");
        assert_eq!(status_kib(status, "VmSwap"), None);
        assert_eq!(status_kib(status, "Vm"), None, "a prefix is not a field");
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(read_status("VmRSS").is_some_and(|kib| kib > 0));
    }

    #[test]
    fn quarters_follow_the_receipts() {
        let s = |receipts, secs, kib| RssSample {
            receipts,
            at: Duration::from_secs(secs),
            rss_kib: Some(kib),
            anon_kib: Some(kib / 2),
        };
        let samples = [
            s(0, 0, 100),
            s(10, 1, 120),
            s(30, 2, 130),
            s(50, 3, 110),
            s(74, 4, 150),
            s(80, 5, 140),
            s(100, 9, 145),
        ];
        let rss: Kib = |s| s.rss_kib;
        assert_eq!(kib_at(&samples, rss, 100, 0.25), Some(130));
        assert_eq!(kib_at(&samples, rss, 100, 0.5), Some(110));
        assert_eq!(kib_at(&samples, rss, 100, 0.75), Some(140));
        assert_eq!(kib_at(&samples, rss, 100, 1.0), Some(145));
        assert_eq!(kib_at(&samples, |s| s.anon_kib, 100, 1.0), Some(72));
        assert_eq!(quarter_max(&samples, rss, 100, 0), Some(120));
        assert_eq!(quarter_max(&samples, rss, 100, 2), Some(150));
        assert_eq!(
            quarter_max(&samples, rss, 100, 3),
            Some(145),
            "the end counts"
        );
        assert_eq!(kib_at(&samples, rss, 200, 1.0), None, "never reached");
        let m = memory(&samples, 100, Some(160), true, s(0, 10, 90));
        assert_eq!(m.rss.flat, Some(false), "145 over 120 is +21 %");
        assert_eq!(m.rss.after_drain_kib, Some(90));
        assert_eq!(m.anon.first_quarter_max_kib, Some(60));
        // 0 → 30 receipts in 2 s; 30 → 50 in 1 s; 50 → 80 in 2 s; 80 → 100 in 4 s.
        assert_eq!(quarter_rate(&samples, 100, 0), Some(15.0));
        assert_eq!(quarter_rate(&samples, 100, 1), Some(20.0));
        assert_eq!(quarter_rate(&samples, 100, 2), Some(15.0));
        assert_eq!(quarter_rate(&samples, 100, 3), Some(5.0));
        assert_eq!(quarter_rate(&samples[..1], 100, 0), None);
    }
}
