//! The flood's figures: what the JSON file holds, the urgent letters' percentiles, and the
//! report printed at the end of a run.

use serde::Serialize;

use super::memory::{Memory, RSS_EVERY};
use super::traffic::{Throughput, Urgent, UrgentRun};

#[derive(Serialize)]
pub(super) struct Report {
    pub(super) setup: Setup,
    pub(super) urgent_idle: Latency,
    pub(super) urgent_flood: Latency,
    /// Flood p99 over idle p99.
    pub(super) urgent_p99_ratio: Option<f64>,
    pub(super) single_sender: Throughput,
    pub(super) flood: Throughput,
    /// The flood's receipts per second in each quarter of its letters (from the memory samples).
    pub(super) flood_per_s_by_quarter: [Option<f64>; 4],
    /// Flood throughput over single-sender throughput.
    pub(super) throughput_ratio: f64,
    pub(super) memory: Memory,
    pub(super) delivery: Delivery,
}

#[derive(Serialize)]
pub(super) struct Setup {
    pub(super) store: &'static str,
    pub(super) queue: &'static str,
    pub(super) build: &'static str,
    pub(super) letter_bytes: u64,
    pub(super) streams: usize,
    pub(super) flood_letters: usize,
    pub(super) single_letters: usize,
    pub(super) warmup_letters: usize,
    pub(super) urgent_every_ms: u64,
    /// The gateway runs in the load generator's process: memory is of both together.
    pub(super) gateway_in_process: bool,
}

#[derive(Serialize, Default)]
pub(super) struct Latency {
    /// Urgent letters delivered and measured.
    pub(super) count: usize,
    /// Urgent letters sent but not measured (refused, failed, not delivered in time).
    pub(super) errors: usize,
    pub(super) p50_ms: Option<i64>,
    pub(super) p99_ms: Option<i64>,
    pub(super) max_ms: Option<i64>,
    /// The sender's wait for the receipt of SubmitLetter.
    pub(super) submit_p50_ms: Option<i64>,
    pub(super) submit_p99_ms: Option<i64>,
    /// Accepted (stamped, before the group commit) to the receipt reaching the sender: the wait
    /// for the letter to be stored and queued.
    pub(super) commit_p50_ms: Option<i64>,
    pub(super) commit_p99_ms: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct Delivery {
    /// The bank's flood letters delivered by the time its last receipt came in.
    pub(super) flood_delivered_at_flood_end: u64,
    pub(super) waiting_at_flood_end: u64,
    /// From the flood's last receipt to an empty queue; none if the timeout came first.
    pub(super) drain_seconds: Option<f64>,
    pub(super) single_sender_drain_seconds: Option<f64>,
}

pub(super) fn latency(run: &UrgentRun) -> Latency {
    let sorted = |f: &dyn Fn(&Urgent) -> i64| {
        let mut v: Vec<i64> = run.letters.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let total = sorted(&|u| u.delivered_at_ms - u.accepted_at_ms);
    let submit = sorted(&|u| u.submit.as_millis() as i64);
    let commit = sorted(&|u| (u.receipt_at_ms - u.accepted_at_ms).max(0));
    Latency {
        count: run.letters.len(),
        errors: run.errors.len(),
        p50_ms: percentile(&total, 50.0),
        p99_ms: percentile(&total, 99.0),
        max_ms: total.last().copied(),
        submit_p50_ms: percentile(&submit, 50.0),
        submit_p99_ms: percentile(&submit, 99.0),
        commit_p50_ms: percentile(&commit, 50.0),
        commit_p99_ms: percentile(&commit, 99.0),
    }
}

/// Nearest-rank percentile of sorted values: the smallest value with at least `p` % of all the
/// values at or below it (so p99 of fewer than 100 values is the maximum).
pub(crate) fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn ms(v: Option<i64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into())
}

fn mib(v: Option<u64>) -> String {
    v.map(|v| format!("{:.0} MiB", v as f64 / 1024.0))
        .unwrap_or_else(|| "—".into())
}

pub(super) fn print_report(r: &Report) {
    let (i, f) = (&r.urgent_idle, &r.urgent_flood);
    println!(
        "\nmonth-end flood, {} build; the gateway runs in this process",
        r.setup.build
    );
    println!("\nURGENT letters, accepted → delivered (gateway's stamps)      idle         flood");
    println!(
        "  measured (not measured)                            {:>12} {:>13}",
        format!("{} ({})", i.count, i.errors),
        format!("{} ({})", f.count, f.errors)
    );
    for (name, a, b) in [
        ("p50", i.p50_ms, f.p50_ms),
        ("p99", i.p99_ms, f.p99_ms),
        ("max", i.max_ms, f.max_ms),
        (
            "SubmitLetter round trip p50",
            i.submit_p50_ms,
            f.submit_p50_ms,
        ),
        (
            "SubmitLetter round trip p99",
            i.submit_p99_ms,
            f.submit_p99_ms,
        ),
        (
            "  of it accepted → receipt p50",
            i.commit_p50_ms,
            f.commit_p50_ms,
        ),
        (
            "  of it accepted → receipt p99",
            i.commit_p99_ms,
            f.commit_p99_ms,
        ),
    ] {
        println!("  {name:<50} {:>12} {:>13}", ms(a), ms(b));
    }
    match r.urgent_p99_ratio {
        Some(x) => println!("  p99 under the flood / p99 idle: {x:.1}×"),
        None => println!("  p99 under the flood / p99 idle: —"),
    }

    println!(
        "\nthroughput of the bank's BULK letters ({} bytes each, {} streams; accepted receipts)",
        r.setup.letter_bytes, r.setup.streams
    );
    println!(
        "  {:<44} {:>9} {:>9} {:>11}",
        "", "letters", "seconds", "accepted/s"
    );
    for (name, t) in [
        ("the bank alone", &r.single_sender),
        ("the flood (urgent letters alongside)", &r.flood),
    ] {
        println!(
            "  {name:<44} {:>9} {:>9.1} {:>11.0}",
            t.accepted, t.seconds, t.accepted_per_s
        );
    }
    println!("  flood / alone: {:.2}", r.throughput_ratio);

    let rates = r
        .flood_per_s_by_quarter
        .map(|v| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "—".into()));
    println!(
        "  the flood by quarter of its letters: {} / {} / {} / {} letters/s",
        rates[0], rates[1], rates[2], rates[3]
    );

    let m = &r.memory;
    println!(
        "\nmemory of this process (gateway and load generator together), every {} ms during the flood ({} samples)",
        RSS_EVERY.as_millis(),
        m.samples
    );
    println!("  peak (VmHWM since {}): {}", m.peak_since, mib(m.peak_kib));
    let head = [
        "% of the receipts in",
        "25 %",
        "50 %",
        "75 %",
        "100 %",
        "first / last quarter's largest",
        "drained",
    ];
    println!(
        "  {:<24} {:>8} {:>8} {:>8} {:>8}   {:<38} {}",
        head[0], head[1], head[2], head[3], head[4], head[5], head[6]
    );
    for (name, x) in [("VmRSS", &m.rss), ("  of it RssAnon (heap)", &m.anon)] {
        let q = x.kib_at_quarters.map(mib);
        let trend = match (x.growth, x.flat) {
            (Some(g), Some(true)) => format!("flat ({:+.1} %)", 100.0 * g),
            (Some(g), _) => format!("growing ({:+.1} %)", 100.0 * g),
            _ => "—".into(),
        };
        println!(
            "  {name:<24} {:>8} {:>8} {:>8} {:>8}   {:<38} {}",
            q[0],
            q[1],
            q[2],
            q[3],
            format!(
                "{} / {}: {trend}",
                mib(x.first_quarter_max_kib),
                mib(x.last_quarter_max_kib)
            ),
            mib(x.after_drain_kib)
        );
    }

    let d = &r.delivery;
    println!("\ndelivery");
    println!(
        "  flood letters delivered by the flood's last receipt: {} of {}",
        d.flood_delivered_at_flood_end, r.flood.accepted
    );
    match d.drain_seconds {
        Some(s) => println!(
            "  the {} letters still waiting then were delivered {s:.1} s later",
            d.waiting_at_flood_end
        ),
        None => println!(
            "  the {} letters waiting then were not all delivered before the timeout",
            d.waiting_at_flood_end
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        let fifty: Vec<i64> = (1..=50).collect();
        assert_eq!(percentile(&fifty, 99.0), Some(50), "p99 of 50 is the max");
        assert_eq!(percentile(&fifty, 50.0), Some(25));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
