//! What a run cost the gateways: CPU time and bytes written to disk, read from `/proc` at the
//! start of intake, its end and after the drain. Tells a gateway that computes from one that
//! waits (cores used during intake against the machine's), and how much the disk is asked to
//! write for each letter beside the letter itself.

use serde::Serialize;

use super::server_proc::{Usage, usage};

/// The gateways' usage (summed) and this process's, at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Snapshot {
    gateways: Option<Usage>,
    loadgen: Option<Usage>,
}

/// Reads every gateway in `pids` and this process.
pub(super) fn snapshot(pids: &[u32]) -> Snapshot {
    Snapshot {
        gateways: total_usage(pids),
        loadgen: usage(std::process::id()),
    }
}

/// The gateways' usage summed, None unless every one of them could be read; their disk
/// writes None unless every one's could.
fn total_usage(pids: &[u32]) -> Option<Usage> {
    if pids.is_empty() {
        return None;
    }
    let mut total = Usage {
        cpu_seconds: 0.0,
        written_bytes: Some(0),
    };
    for &pid in pids {
        let u = usage(pid)?;
        total.cpu_seconds += u.cpu_seconds;
        total.written_bytes = total.written_bytes.zip(u.written_bytes).map(|(a, b)| a + b);
    }
    Some(total)
}

#[derive(Serialize, Debug, PartialEq)]
pub(super) struct Work {
    /// Cores the gateways used during intake (CPU seconds over intake's seconds).
    pub gateway_cores_during_intake: Option<f64>,
    /// Cores this process (the client) used during intake.
    pub loadgen_cores_during_intake: Option<f64>,
    /// The gateways' CPU time from the first letter sent to the last delivered, per letter
    /// accepted: intake and delivery together.
    pub gateway_cpu_us_per_letter: Option<f64>,
    /// What the gateways wrote to disk over the same time, per letter accepted.
    pub written_bytes_per_letter: Option<f64>,
}

/// `before` at the first letter sent, `at_end` at the last receipt, `after` once delivered
/// (None when the backlog did not drain).
pub(super) fn work(
    [before, at_end, after]: [Snapshot; 3],
    intake_seconds: f64,
    accepted: u64,
    drained: bool,
) -> Work {
    let cores = |a: Option<Usage>, b: Option<Usage>| {
        a.zip(b)
            .map(|(a, b)| (b.cpu_seconds - a.cpu_seconds) / intake_seconds.max(f64::MIN_POSITIVE))
    };
    let whole = drained
        .then(|| before.gateways.zip(after.gateways))
        .flatten();
    let per_letter = |v: f64| v / accepted.max(1) as f64;
    Work {
        gateway_cores_during_intake: cores(before.gateways, at_end.gateways),
        loadgen_cores_during_intake: cores(before.loadgen, at_end.loadgen),
        gateway_cpu_us_per_letter: whole
            .map(|(a, b)| per_letter((b.cpu_seconds - a.cpu_seconds) * 1e6)),
        written_bytes_per_letter: whole.and_then(|(a, b)| {
            Some(per_letter(
                b.written_bytes?.saturating_sub(a.written_bytes?) as f64,
            ))
        }),
    }
}

pub(super) fn print(w: &Work) {
    let f = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    println!(
        "gateway CPU: {} cores during intake (the load generator {}), {} µs a letter accepted and \
         delivered; written to disk {} KB a letter",
        f(w.gateway_cores_during_intake, 2),
        f(w.loadgen_cores_during_intake, 2),
        f(w.gateway_cpu_us_per_letter, 0),
        f(w.written_bytes_per_letter.map(|b| b / 1000.0), 1),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cpu: f64, written: u64) -> Snapshot {
        Snapshot {
            gateways: Some(Usage {
                cpu_seconds: cpu,
                written_bytes: Some(written),
            }),
            loadgen: Some(Usage {
                cpu_seconds: cpu / 10.0,
                written_bytes: None,
            }),
        }
    }

    #[test]
    fn costs_are_per_letter_over_the_whole_run_and_cores_over_intake() {
        let w = work(
            [at(1.0, 0), at(21.0, 500_000), at(31.0, 4_000_000)],
            10.0,
            100_000,
            true,
        );
        assert_eq!(w.gateway_cores_during_intake, Some(2.0));
        assert_eq!(w.loadgen_cores_during_intake, Some(0.2));
        assert_eq!(w.gateway_cpu_us_per_letter, Some(300.0));
        assert_eq!(w.written_bytes_per_letter, Some(40.0));
    }

    #[test]
    fn an_undrained_run_has_no_cost_per_letter() {
        let w = work(
            [at(1.0, 0), at(21.0, 500_000), at(31.0, 4_000_000)],
            10.0,
            100_000,
            false,
        );
        assert_eq!(w.gateway_cores_during_intake, Some(2.0));
        assert_eq!(w.gateway_cpu_us_per_letter, None);
        assert_eq!(w.written_bytes_per_letter, None);
    }

    #[test]
    fn this_process_is_read() {
        assert!(snapshot(&[]).gateways.is_none());
        assert!(snapshot(&[std::process::id()]).gateways.is_some());
    }
}
