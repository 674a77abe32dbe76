//! What `/api/stats` answers: rates, the throughput series, rejections by reason, queue depth,
//! recent percentiles and the busiest senders, computed from the sampler's snapshots. Pure, so
//! the arithmetic is tested without a gateway.

use serde::Serialize;

use crate::domain::SenderKind;
use crate::telemetry::live::{
    LATENCY_BOUNDS, LATENCY_BUCKETS, LiveSnapshot, REASONS, SenderTotals,
};

use super::history::{History, Sample};

/// Current rates average over this many seconds: steady enough to read, quick to follow.
pub const RATE_WINDOW_SECS: f64 = 10.0;
/// Percentiles cover the letters of this many seconds.
pub const LATENCY_WINDOW_SECS: f64 = 60.0;
/// Senders listed as busiest.
pub const TOP_SENDERS: usize = 10;

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Outcomes {
    pub mailbox: f64,
    pub print: f64,
    pub rejected: f64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Rates {
    pub mailbox: f64,
    pub print: f64,
    pub rejected: f64,
    /// Letters answered per second: mailbox + print + rejected.
    pub total: f64,
    pub received: f64,
    pub delivered: f64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Totals {
    pub received: u64,
    pub mailbox: u64,
    pub print: u64,
    pub rejected: u64,
    pub duplicate: u64,
    pub unavailable: u64,
    pub delivered_mailbox: u64,
    pub delivered_print: u64,
    pub retries: u64,
    pub failed: u64,
}

/// Letters per second in each one-second interval, oldest first.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Series {
    pub mailbox: Vec<f64>,
    pub print: Vec<f64>,
    pub rejected: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ReasonStat {
    pub reason: &'static str,
    pub total: u64,
    pub rate: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct QueueStat {
    pub mailbox: u64,
    pub print: u64,
    pub dead: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// None when no letter was observed in the window.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub count: u64,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub window_s: f64,
    /// Received to accepted receipt.
    pub accept: Percentiles,
    /// Accepted to delivered, per route.
    pub delivery_mailbox: Percentiles,
    pub delivery_print: Percentiles,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SenderStat {
    pub cvr: String,
    pub name: String,
    pub kind: &'static str,
    pub rate: f64,
    pub total: u64,
    pub mailbox: u64,
    pub print: u64,
    pub rejected: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Stats {
    pub now_ms: i64,
    pub started_ms: i64,
    /// Snapshots behind the numbers; the chart has one point fewer.
    pub samples: usize,
    pub rate_window_s: f64,
    pub rate: Rates,
    pub totals: Totals,
    pub series: Series,
    pub rejections: Vec<ReasonStat>,
    pub queue: Option<QueueStat>,
    pub queue_error: Option<String>,
    pub latency: Latency,
    pub senders: Vec<SenderStat>,
    pub streams_open: i64,
    /// The registry index and how far it is behind the change log (none before the first
    /// poll of the change log).
    pub registry: Option<crate::telemetry::registry::RegistryFigures>,
}

/// The newest sample and the newest one at least `window` seconds older (or the oldest).
fn span(samples: &std::collections::VecDeque<Sample>, window: f64) -> Option<(&Sample, &Sample)> {
    let last = samples.back()?;
    let first = samples
        .iter()
        .rev()
        .find(|s| last.t - s.t >= window)
        .or_else(|| samples.front())?;
    (last.t > first.t).then_some((first, last))
}

fn per_sec(from: u64, to: u64, secs: f64) -> f64 {
    round1(to.saturating_sub(from) as f64 / secs)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The q-quantile of bucketed observations, interpolating inside the bucket; seconds.
pub fn quantile(counts: &[u64; LATENCY_BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0.0;
    for (i, &n) in counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let n = n as f64;
        if seen + n >= rank {
            let lower = if i == 0 { 0.0 } else { LATENCY_BOUNDS[i - 1] };
            // The last bucket has no upper bound: report its lower one.
            let upper = LATENCY_BOUNDS.get(i).copied().unwrap_or(lower);
            return Some(lower + (upper - lower) * ((rank - seen) / n).clamp(0.0, 1.0));
        }
        seen += n;
    }
    LATENCY_BOUNDS.last().copied()
}

fn percentiles(from: &[u64; LATENCY_BUCKETS], to: &[u64; LATENCY_BUCKETS]) -> Percentiles {
    let diff: [u64; LATENCY_BUCKETS] = std::array::from_fn(|i| to[i].saturating_sub(from[i]));
    let ms = |q| quantile(&diff, q).map(|s| (s * 1000.0 * 100.0).round() / 100.0);
    Percentiles {
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        count: diff.iter().sum(),
    }
}

fn series(samples: &std::collections::VecDeque<Sample>) -> Series {
    let mut out = Series::default();
    for (a, b) in samples.iter().zip(samples.iter().skip(1)) {
        let dt = (b.t - a.t).max(1e-3);
        out.mailbox
            .push(per_sec(a.live.accepted[0], b.live.accepted[0], dt));
        out.print
            .push(per_sec(a.live.accepted[1], b.live.accepted[1], dt));
        out.rejected.push(per_sec(
            a.live.rejected_total(),
            b.live.rejected_total(),
            dt,
        ));
    }
    out
}

fn kind_label(kind: SenderKind) -> &'static str {
    match kind {
        SenderKind::Public => "public",
        SenderKind::Private => "private",
    }
}

fn busiest(h: &History, senders: Vec<SenderTotals>) -> Vec<SenderStat> {
    let window = match (h.senders.front(), h.senders.back()) {
        (Some(a), Some(b)) if b.t > a.t => Some((a, b)),
        _ => None,
    };
    let mut out: Vec<SenderStat> = senders
        .into_iter()
        .map(|s| {
            let rate = window.map_or(0.0, |(a, b)| {
                let before = a.letters.get(&s.cvr).copied().unwrap_or(0);
                let after = b.letters.get(&s.cvr).copied().unwrap_or(0);
                per_sec(before, after, b.t - a.t)
            });
            SenderStat {
                cvr: s.cvr.to_string(),
                total: s.letters(),
                name: s.name,
                kind: kind_label(s.kind),
                rate,
                mailbox: s.mailbox,
                print: s.print,
                rejected: s.rejected,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.rate
            .total_cmp(&a.rate)
            .then(b.total.cmp(&a.total))
            .then(a.cvr.cmp(&b.cvr))
    });
    out.truncate(TOP_SENDERS);
    out
}

/// The dashboard's numbers: rates and percentiles from the snapshots, totals from `now`.
pub fn compute(
    h: &History,
    now: &LiveSnapshot,
    senders: Vec<SenderTotals>,
    now_ms: i64,
    started_ms: i64,
) -> Stats {
    let (rate, rate_window_s) = match span(&h.samples, RATE_WINDOW_SECS) {
        Some((a, b)) => {
            let dt = b.t - a.t;
            let (x, y) = (&a.live, &b.live);
            let mailbox = per_sec(x.accepted[0], y.accepted[0], dt);
            let print = per_sec(x.accepted[1], y.accepted[1], dt);
            let rejected = per_sec(x.rejected_total(), y.rejected_total(), dt);
            let rates = Rates {
                mailbox,
                print,
                rejected,
                total: round1(mailbox + print + rejected),
                received: per_sec(x.received, y.received, dt),
                delivered: per_sec(
                    x.delivered[0] + x.delivered[1],
                    y.delivered[0] + y.delivered[1],
                    dt,
                ),
            };
            (rates, round1(dt))
        }
        None => (Rates::default(), 0.0),
    };
    let rejections = REASONS
        .iter()
        .enumerate()
        .map(|(i, reason)| ReasonStat {
            reason: reason.as_str(),
            total: now.rejected[i],
            rate: span(&h.samples, RATE_WINDOW_SECS).map_or(0.0, |(a, b)| {
                per_sec(a.live.rejected[i], b.live.rejected[i], b.t - a.t)
            }),
        })
        .collect();
    let latency = match span(&h.samples, LATENCY_WINDOW_SECS) {
        Some((a, b)) => Latency {
            window_s: round1(b.t - a.t),
            accept: percentiles(&a.live.accept, &b.live.accept),
            delivery_mailbox: percentiles(&a.live.lag[0], &b.live.lag[0]),
            delivery_print: percentiles(&a.live.lag[1], &b.live.lag[1]),
        },
        None => Latency::default(),
    };
    let (queue, queue_error) = match &h.queue {
        Some(Ok(d)) => (
            Some(QueueStat {
                mailbox: d.mailbox,
                print: d.print,
                dead: d.dead,
            }),
            None,
        ),
        Some(Err(e)) => (None, Some(e.clone())),
        None => (None, None),
    };
    Stats {
        now_ms,
        started_ms,
        samples: h.samples.len(),
        rate_window_s,
        rate,
        totals: Totals {
            received: now.received,
            mailbox: now.accepted[0],
            print: now.accepted[1],
            rejected: now.rejected_total(),
            duplicate: now.duplicate,
            unavailable: now.unavailable,
            delivered_mailbox: now.delivered[0],
            delivered_print: now.delivered[1],
            retries: now.retries,
            failed: now.failed,
        },
        series: series(&h.samples),
        rejections,
        queue,
        queue_error,
        latency,
        senders: busiest(h, senders),
        streams_open: now.streams_open,
        registry: crate::telemetry::registry::latest(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::queue::QueueDepth;
    use crate::telemetry::live::LiveSnapshot;

    fn sample(t: f64, mailbox: u64, print: u64, not_reachable: u64) -> Sample {
        let mut rejected = [0; REASONS.len()];
        rejected[3] = not_reachable;
        let live = LiveSnapshot {
            accepted: [mailbox, print],
            rejected,
            received: mailbox + print + not_reachable,
            ..LiveSnapshot::default()
        };
        Sample { t, live }
    }

    #[test]
    fn rates_and_series_come_from_differences() {
        let mut h = History::default();
        for i in 0..=20u64 {
            h.samples.push_back(sample(
                i as f64,
                100 * i,
                20 * i,
                if i > 15 { 5 * (i - 15) } else { 0 },
            ));
        }
        h.queue = Some(Ok(QueueDepth {
            mailbox: 7,
            print: 2,
            dead: 0,
        }));
        let now = h.samples.back().map(|s| s.live.clone()).unwrap_or_default();
        let s = compute(&h, &now, vec![], 0, 0);
        assert_eq!(s.rate.mailbox, 100.0);
        assert_eq!(s.rate.print, 20.0);
        assert_eq!(s.rate.rejected, 2.5, "5 rejected in the last 5 of 10 s");
        assert_eq!(s.rate.total, 122.5);
        assert_eq!(s.rate_window_s, 10.0);
        assert_eq!(s.series.mailbox.len(), 20);
        assert!(s.series.mailbox.iter().all(|r| *r == 100.0));
        assert_eq!(s.series.rejected[19], 5.0);
        assert_eq!(s.series.rejected[0], 0.0);
        assert_eq!(s.totals.mailbox, 2000);
        assert_eq!(s.totals.rejected, 25);
        let nr = s.rejections.iter().find(|r| r.reason == "NOT_REACHABLE");
        assert_eq!(nr.map(|r| r.total), Some(25));
        assert_eq!(s.queue.map(|q| q.mailbox), Some(7));
    }

    #[test]
    fn one_sample_gives_no_rate() {
        let mut h = History::default();
        h.samples.push_back(sample(0.0, 5, 0, 0));
        let s = compute(&h, &LiveSnapshot::default(), vec![], 0, 0);
        assert_eq!(s.rate, Rates::default());
        assert!(s.series.mailbox.is_empty());
        assert_eq!(s.latency.accept.p50_ms, None);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let mut c = [0u64; LATENCY_BUCKETS];
        assert_eq!(quantile(&c, 0.5), None);
        // 100 observations in (1 ms, 2.5 ms].
        c[3] = 100;
        let p50 = quantile(&c, 0.5).unwrap_or_default();
        assert!((p50 - 0.001_75).abs() < 1e-9, "{p50}");
        // One slow outlier in (0.5 s, 1 s] moves p99 only a little, p100 to the outlier.
        c[11] = 1;
        assert!(quantile(&c, 0.99).unwrap_or_default() < 0.002_5);
        assert!(quantile(&c, 1.0).unwrap_or_default() > 0.5);
        // The open last bucket reports its lower bound.
        let mut slow = [0u64; LATENCY_BUCKETS];
        slow[LATENCY_BUCKETS - 1] = 1;
        assert_eq!(quantile(&slow, 0.5), LATENCY_BOUNDS.last().copied());
    }

    #[test]
    fn busiest_senders_rank_by_recent_rate() {
        let steady: crate::domain::Cvr = "29403473".parse().expect("cvr");
        let burst: crate::domain::Cvr = "10103940".parse().expect("cvr");
        let mut h = History::default();
        for (t, a, b) in [(0.0, 1000, 0), (10.0, 1100, 500)] {
            h.senders.push_back(super::super::history::SenderSample {
                t,
                letters: HashMap::from([(steady, a), (burst, b)]),
            });
        }
        let totals = |cvr, name: &str, mailbox| SenderTotals {
            cvr,
            name: name.into(),
            kind: SenderKind::Public,
            mailbox,
            print: 0,
            rejected: 0,
        };
        let s = compute(
            &h,
            &LiveSnapshot::default(),
            vec![totals(steady, "Steady", 1100), totals(burst, "Burst", 500)],
            0,
            0,
        );
        assert_eq!(s.senders[0].name, "Burst");
        assert_eq!(s.senders[0].rate, 50.0);
        assert_eq!(s.senders[1].rate, 10.0);
        assert_eq!(s.senders[1].total, 1100);
    }
}
