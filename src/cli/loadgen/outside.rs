//! `brevdue loadgen --target ADDR --cert-dir DIR`: a running gateway driven from this process,
//! as a sender sees it.
//!
//! The gateway runs on its own (`brevdue serve`, one or more instances); this process streams
//! letters to it over mutual TLS with a registered sender's certificate, to recipients its
//! registry holds (the synthetic citizens of `--write-recipients`, imported with `brevdue
//! registry import`, or those of `--recipients`). Measured in one run: the raw ceilings first
//! (while the gateway is idle), then intake (receipts/s, receipt latency), what the gateways
//! delivered over the same window (their `/metrics`), the backlog at the end of intake and the
//! time to drain it, and the gateway's resident memory every second (`/proc/PID/status` of the
//! process listening on the target port, or `--server-pid`). The gateways should have nothing
//! else waiting: delivered letters are counted from their counters, not per letter.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::ceilings::{self, Ceiling};
use super::flood::memory::{RssSample, kib_at, quarter_max};
use super::server_proc::{Resident, listening_pid, resident};
use super::streams::{Streamed, stream_letters};
use super::work::{self, Work};
use super::{LoadgenArgs, gateway, scrape};
use crate::cli::client;
use crate::config::StoreUrl;
use crate::domain::{RecipientId, RecipientStatus, complete_cvr};
use crate::ingest::pb;
use crate::pki::Pki;

/// How often the gateway's memory (and what it delivered) is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// How often the drain is checked after intake.
const DRAIN_POLL: Duration = Duration::from_millis(250);
/// Letters per ceiling measurement, at most: enough for a steady figure, quick beside the run.
const CEILING_LETTERS: usize = 20_000;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct OutsideArgs {
    /// Drive the running gateway at this address (HOST:PORT or https://HOST:PORT) from this
    /// process instead of starting one inside it. Repeat for several instances: the streams
    /// are spread over them.
    #[arg(long)]
    pub target: Vec<String>,
    /// With --target: the sender's certificate directory (`brevdue senders add --out DIR`).
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// With --target: each gateway's operator /metrics, to count what it delivered. Repeat
    /// for several instances [default: http://127.0.0.1:9180/metrics].
    #[arg(long)]
    pub metrics: Vec<String>,
    /// With --target: process ids of the gateways whose memory is sampled [default: the
    /// processes listening on the target ports, when they run on this machine].
    #[arg(long)]
    pub server_pid: Vec<u32>,
    /// With --target: the recipients to write to, as a registry import file (id_type,id,status;
    /// active ones are used) [default: the synthetic citizens of --write-recipients].
    #[arg(long)]
    pub recipients: Option<PathBuf>,
    /// Write the load generator's synthetic citizens as a registry import file
    /// (`brevdue registry import --recipients FILE`) and exit.
    #[arg(long)]
    pub write_recipients: Option<PathBuf>,
    /// With --target: where the ceilings put their scratch data (the store alone, the queue
    /// alone, synced appends): a directory on the gateway's disk [default: the system's
    /// temporary directory].
    #[arg(long)]
    pub scratch_dir: Option<PathBuf>,
}

/// Writes the synthetic citizens in the registry import format.
pub(super) fn write_recipients(path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    crate::registry::csv::write_recipients(std::io::BufWriter::new(file), gateway::citizens())?;
    println!(
        "wrote {} active citizens to {}; import them with `brevdue registry import --recipients {}`",
        gateway::citizens().len(),
        path.display(),
        path.display()
    );
    Ok(())
}

#[derive(Serialize)]
struct Report {
    targets: Vec<String>,
    letters: usize,
    letter_bytes: u64,
    streams: usize,
    build: &'static str,
    /// /proc/loadavg before the ceilings, at the end of intake and after the drain.
    load: [String; 3],
    ceilings: Vec<Ceiling>,
    accepted: u64,
    rejected: u64,
    intake_seconds: f64,
    intake_per_s: f64,
    receipt_p50_ms: Option<f64>,
    receipt_p99_ms: Option<f64>,
    /// What the gateways delivered between the first letter sent and the last receipt.
    delivered_during_intake: Option<u64>,
    delivered_during_intake_per_s: Option<f64>,
    /// Delivered (since the run began) when 25, 50, 75 and 100 % of the receipts were in: how
    /// delivery kept up through intake.
    delivered_at_quarters: [Option<u64>; 4],
    /// Accepted letters not yet delivered when the last receipt came.
    waiting_at_end_of_intake: Option<u64>,
    waiting_fraction: Option<f64>,
    drain_seconds: Option<f64>,
    /// Accepted letters over the time from the first letter sent until the last was delivered.
    sustained_per_s: Option<f64>,
    memory: Option<Memory>,
    work: Work,
}

#[derive(Serialize)]
struct Memory {
    pids: Vec<u32>,
    samples: usize,
    /// VmRSS (all gateways together) when 25, 50, 75 and 100 % of the receipts were in.
    rss_kib_at_quarters: [Option<u64>; 4],
    rss_max_kib_by_quarter: [Option<u64>; 4],
    anon_max_kib_by_quarter: [Option<u64>; 4],
    /// The last quarter's peak over the second quarter's, minus one (SPEC §5: at most 5 %).
    rss_growth_from_second_quarter: Option<f64>,
    anon_growth_from_second_quarter: Option<f64>,
    rss_max_kib_during_drain: Option<u64>,
    rss_kib_after_drain: Option<u64>,
}

/// One second's reading of the gateways.
#[derive(Clone, Copy)]
struct Reading {
    memory: RssSample,
    /// Delivered since the run started, all gateways together.
    delivered: Option<u64>,
}

pub(super) async fn run(args: &LoadgenArgs) -> Result<()> {
    let o = &args.outside;
    let cert_dir = o
        .cert_dir
        .clone()
        .context("--target needs --cert-dir: a sender's certificate directory")?;
    let servers: Vec<String> = o.target.iter().map(|t| https(t)).collect();
    let metrics = if o.metrics.is_empty() {
        vec!["http://127.0.0.1:9180/metrics".to_string()]
    } else {
        o.metrics.clone()
    };
    let size = args.size.as_u64() as usize;
    let ids = recipients(o.recipients.as_deref())?;
    check_reachable(&servers[0], &cert_dir, ids[0]).await?;
    let delivered_before = scrape::delivered_by_all(&metrics).await.with_context(
        || "reading what the gateway delivered (give each gateway's operator port with --metrics)",
    )?;
    let pids = if o.server_pid.is_empty() {
        o.target.iter().filter_map(|t| local_pid(t)).collect()
    } else {
        o.server_pid.clone()
    };
    println!(
        "brevdue loadgen --target {}: {} letters of {} over {} streams, from this process (pid {}); \
         gateway memory from {}",
        o.target.join(" "),
        args.letters,
        args.size.display().si(),
        args.streams,
        std::process::id(),
        if pids.is_empty() {
            "nowhere (no local gateway found; give --server-pid)".to_string()
        } else {
            format!("pid {pids:?}")
        }
    );
    let load_before = loadavg();

    let scratch = match &o.scratch_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("brevdue-loadgen-ceilings")
            .tempdir_in(d)?,
        None => tempfile::Builder::new()
            .prefix("brevdue-loadgen-ceilings")
            .tempdir()?,
    };
    let ceilings = measure_ceilings(args, scratch.path(), &ids, size).await?;
    drop(scratch);
    println!("\nraw ceilings measured in this run:");
    for c in &ceilings {
        println!("  {:<48} {:>9.0} letters/s", c.name, c.per_sec);
    }

    println!("\nstreaming {} letters", args.letters);
    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let started = Instant::now();
    let usage_before = work::snapshot(&pids);
    let sampler = tokio::spawn(sample(
        pids.clone(),
        metrics.clone(),
        delivered_before,
        progress.clone(),
        started,
        stop.clone(),
    ));
    let streamed = stream_letters(
        &servers,
        &cert_dir,
        &ids,
        args.letters,
        args.streams,
        size,
        progress.clone(),
    )
    .await;
    let intake = started.elapsed();
    let usage_at_end = work::snapshot(&pids);
    let at_end = scrape::delivered_by_all(&metrics)
        .await
        .ok()
        .map(|d| d.saturating_sub(delivered_before));
    let load_intake = loadavg();
    let streamed = match streamed {
        Ok(s) => s,
        Err(e) => {
            stop.cancel();
            let _ = sampler.await;
            return Err(e);
        }
    };
    println!(
        "    {} accepted, {} rejected in {:.1} s; waiting for delivery",
        streamed.accepted,
        streamed.rejected,
        intake.as_secs_f64()
    );
    if let Some(why) = &streamed.first_rejection {
        println!("    the first rejection: {why}");
    }
    let drained = drain(
        &metrics,
        delivered_before,
        streamed.accepted,
        started,
        args.flood.drain_timeout,
    )
    .await?;
    let usage_after = work::snapshot(&pids);
    stop.cancel();
    let readings = sampler.await?;
    let after_drain = total_resident(&pids);
    let load_after = loadavg();

    let report = report(
        args,
        (servers, ceilings),
        &streamed,
        (intake, at_end, drained),
        (&pids, &readings, after_drain),
        [load_before, load_intake, load_after],
        [usage_before, usage_at_end, usage_after],
    );
    print_report(&report);
    if let Some(path) = &args.flood.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

fn https(target: &str) -> String {
    if target.contains("://") {
        target.to_string()
    } else {
        format!("https://{target}")
    }
}

/// The pid listening on the target's port, when the target is this machine.
fn local_pid(target: &str) -> Option<u32> {
    let hostport = target.split("://").last()?.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':')?;
    let local = matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "0.0.0.0");
    local.then(|| listening_pid(port.parse().ok()?)).flatten()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn recipients(file: Option<&Path>) -> Result<Vec<RecipientId>> {
    let rows = match file {
        None => gateway::citizens(),
        Some(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            crate::registry::csv::read_recipients(f, &path.display().to_string())?
        }
    };
    let ids: Vec<RecipientId> = rows
        .into_iter()
        .filter(|(_, s)| *s == RecipientStatus::Active)
        .map(|(id, _)| id)
        .collect();
    if ids.is_empty() {
        bail!("no active recipients to write to");
    }
    Ok(ids)
}

/// Refuses to start when the gateway would not deliver to the run's recipients.
async fn check_reachable(server: &str, cert_dir: &Path, id: RecipientId) -> Result<()> {
    let mut c = client::connect(server, cert_dir).await?;
    let reach = c
        .check_recipient(pb::RecipientQuery {
            recipient: crate::ingest::letter_to_pb(&super::sample_letter(id, 1)).recipient,
            print_fallback: false,
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", client::describe(&s)))
        .context("asking the gateway whether it reaches the load generator's recipients")?
        .into_inner();
    if reach.reach != pb::Reach::Mailbox as i32 {
        bail!(
            "the gateway does not deliver to the load generator's recipients (e.g. {id}) as mailbox \
             letters: import them first (`brevdue loadgen --write-recipients FILE`, then \
             `brevdue registry import --recipients FILE`) or give --recipients"
        );
    }
    Ok(())
}

async fn measure_ceilings(
    args: &LoadgenArgs,
    dir: &Path,
    ids: &[RecipientId],
    size: usize,
) -> Result<Vec<Ceiling>> {
    let n = args.letters.min(CEILING_LETTERS);
    let mut out = vec![Ceiling::new(
        "sealing alone (one core)",
        ceilings::seal_alone(n, size)?,
    )];
    // A throwaway CA and sender: the no-work server is this process's own.
    let pki = Pki::open_or_create(&dir.join("pki"))?;
    let issued = pki.issue_sender(
        &complete_cvr(2_940_347).context("cvr")?.to_string(),
        "Loadgen",
    )?;
    let no_work_dir = dir.join("no-work-sender");
    crate::cli::admin::write_cert_dir(
        &no_work_dir,
        &pki.ca_pem()?,
        &issued.cert_pem,
        &issued.key_pem,
    )?;
    out.push(Ceiling::new(
        "gRPC with no work (TLS, same streams)",
        ceilings::grpc_no_work(&pki, &no_work_dir, ids, (n, args.streams), size).await?,
    ));
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| StoreUrl::Sqlite(dir.join("store-only.db")));
    out.push(Ceiling::new(
        format!(
            "store alone ({}, batches of 1024)",
            gateway::store_name(Some(&store))
        ),
        ceilings::store_alone(&store, n, size).await?,
    ));
    let queue = ceilings::scratch_queue(args.queue.as_ref(), dir);
    out.push(Ceiling::new(
        format!(
            "queue alone ({}, batches of 1024)",
            gateway::queue_name(Some(&queue))
        ),
        ceilings::queue_alone(&queue, n).await?,
    ));
    out.push(Ceiling::new(
        format!(
            "synced appends of {} to this disk (fdatasync per 64)",
            args.size.display().si()
        ),
        ceilings::synced_appends(dir, n.max(5_000), size)?,
    ));
    Ok(out)
}

fn total_resident(pids: &[u32]) -> Option<Resident> {
    if pids.is_empty() {
        return None;
    }
    let mut total = Resident::default();
    for &pid in pids {
        let r = resident(pid)?;
        total.rss_kib += r.rss_kib;
        total.anon_kib += r.anon_kib;
    }
    Some(total)
}

/// Reads the gateways every second until stopped.
async fn sample(
    pids: Vec<u32>,
    metrics: Vec<String>,
    delivered_before: u64,
    progress: Arc<AtomicU64>,
    started: Instant,
    stop: CancellationToken,
) -> Vec<Reading> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let r = total_resident(&pids);
        out.push(Reading {
            memory: RssSample {
                receipts: progress.load(Ordering::Relaxed),
                at: started.elapsed(),
                rss_kib: r.map(|r| r.rss_kib),
                anon_kib: r.map(|r| r.anon_kib),
            },
            delivered: scrape::delivered_by_all(&metrics)
                .await
                .ok()
                .map(|d| d.saturating_sub(delivered_before)),
        });
    }
    out
}

/// Waits until the gateways delivered `accepted` letters since the run began; the time from
/// `started` it took, or None after `timeout` past the end of intake.
async fn drain(
    metrics: &[String],
    before: u64,
    accepted: u64,
    started: Instant,
    timeout: Duration,
) -> Result<Option<Duration>> {
    let deadline = Instant::now() + timeout;
    loop {
        let delivered = scrape::delivered_by_all(metrics)
            .await?
            .saturating_sub(before);
        if delivered >= accepted {
            return Ok(Some(started.elapsed()));
        }
        if Instant::now() >= deadline {
            println!(
                "    {} letters still waiting after {}",
                accepted - delivered,
                humantime::format_duration(timeout)
            );
            return Ok(None);
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn ms(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64() * 1000.0)
}

fn report(
    args: &LoadgenArgs,
    (targets, ceilings): (Vec<String>, Vec<Ceiling>),
    s: &Streamed,
    (intake, at_end, drained): (Duration, Option<u64>, Option<Duration>),
    (pids, readings, after_drain): (&[u32], &[Reading], Option<Resident>),
    load: [String; 3],
    usage: [work::Snapshot; 3],
) -> Report {
    let secs = intake.as_secs_f64().max(f64::MIN_POSITIVE);
    let waiting = at_end.map(|d| s.accepted.saturating_sub(d));
    let memory = (!pids.is_empty()).then(|| {
        let total = s.accepted + s.rejected;
        let during: Vec<RssSample> = readings
            .iter()
            .map(|r| r.memory)
            .filter(|m| m.at <= intake)
            .collect();
        let rss = |m: &RssSample| m.rss_kib;
        let anon = |m: &RssSample| m.anon_kib;
        let by_quarter = |kib: fn(&RssSample) -> Option<u64>| {
            [0, 1, 2, 3].map(|q| quarter_max(&during, kib, total, q))
        };
        let growth = |q: [Option<u64>; 4]| match (q[1], q[3]) {
            (Some(a), Some(b)) if a > 0 => Some(b as f64 / a as f64 - 1.0),
            _ => None,
        };
        let rss_q = by_quarter(rss);
        let anon_q = by_quarter(anon);
        Memory {
            pids: pids.to_vec(),
            samples: readings.len(),
            rss_kib_at_quarters: [0.25, 0.5, 0.75, 1.0].map(|f| kib_at(&during, rss, total, f)),
            rss_max_kib_by_quarter: rss_q,
            anon_max_kib_by_quarter: anon_q,
            rss_growth_from_second_quarter: growth(rss_q),
            anon_growth_from_second_quarter: growth(anon_q),
            rss_max_kib_during_drain: readings
                .iter()
                .filter(|r| r.memory.at > intake)
                .filter_map(|r| r.memory.rss_kib)
                .max(),
            rss_kib_after_drain: after_drain.map(|r| r.rss_kib),
        }
    });
    Report {
        targets,
        letters: args.letters,
        letter_bytes: args.size.as_u64(),
        streams: args.streams,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        load,
        ceilings,
        accepted: s.accepted,
        rejected: s.rejected,
        intake_seconds: secs,
        intake_per_s: s.accepted as f64 / secs,
        receipt_p50_ms: ms(s.latency(0.5)),
        receipt_p99_ms: ms(s.latency(0.99)),
        delivered_at_quarters: [0.25, 0.5, 0.75, 1.0].map(|f| {
            let goal = ((s.accepted + s.rejected) as f64 * f).ceil() as u64;
            readings
                .iter()
                .find(|r| r.memory.receipts >= goal)
                .and_then(|r| r.delivered)
        }),
        delivered_during_intake: at_end,
        delivered_during_intake_per_s: at_end.map(|d| d as f64 / secs),
        waiting_at_end_of_intake: waiting,
        waiting_fraction: waiting.map(|w| w as f64 / s.accepted.max(1) as f64),
        drain_seconds: drained.map(|d| (d.saturating_sub(intake)).as_secs_f64()),
        sustained_per_s: drained.map(|d| s.accepted as f64 / d.as_secs_f64()),
        memory,
        work: work::work(usage, secs, s.accepted, drained.is_some()),
    }
}

fn print_report(r: &Report) {
    println!(
        "\nload average (1, 5, 15 min): before {}; end of intake {}; after drain {}",
        r.load[0], r.load[1], r.load[2]
    );
    println!(
        "intake: {} letters of {} B accepted in {:.1} s; receipt latency p50 {} ms, p99 {} ms",
        r.accepted,
        r.letter_bytes,
        r.intake_seconds,
        r.receipt_p50_ms.map_or("-".into(), |v| format!("{v:.0}")),
        r.receipt_p99_ms.map_or("-".into(), |v| format!("{v:.0}")),
    );
    ceilings::print_ratios("accepted", r.intake_per_s, &r.ceilings);
    if let (Some(d), Some(per_s)) = (r.delivered_during_intake, r.delivered_during_intake_per_s) {
        println!("delivered over the same window: {d} letters, {per_s:.0} letters/s");
        let q = r
            .delivered_at_quarters
            .map(|v| v.map_or("-".into(), |v| v.to_string()));
        println!(
            "  delivered when 25 / 50 / 75 / 100 % of the receipts were in: {} / {} / {} / {}",
            q[0], q[1], q[2], q[3]
        );
    }
    if let (Some(w), Some(f)) = (r.waiting_at_end_of_intake, r.waiting_fraction) {
        println!(
            "waiting at the end of intake: {w} letters ({:.1} %; SPEC §5: at most 10 %)",
            100.0 * f
        );
    }
    match (r.drain_seconds, r.sustained_per_s) {
        (Some(d), Some(s)) => {
            println!("drained {d:.1} s after the end of intake");
            ceilings::print_ratios("sustained, accepted and delivered", s, &r.ceilings);
        }
        _ => println!("the backlog did not drain within the drain timeout"),
    }
    work::print(&r.work);
    if let Some(m) = &r.memory {
        let kib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1}", v as f64 / 1024.0));
        println!(
            "gateway memory (pid {:?}, {} samples, MiB): VmRSS peak by quarter {} / {} / {} / {}, \
             RssAnon peak by quarter {} / {} / {} / {}; peak during drain {}, after drain {}",
            m.pids,
            m.samples,
            kib(m.rss_max_kib_by_quarter[0]),
            kib(m.rss_max_kib_by_quarter[1]),
            kib(m.rss_max_kib_by_quarter[2]),
            kib(m.rss_max_kib_by_quarter[3]),
            kib(m.anon_max_kib_by_quarter[0]),
            kib(m.anon_max_kib_by_quarter[1]),
            kib(m.anon_max_kib_by_quarter[2]),
            kib(m.anon_max_kib_by_quarter[3]),
            kib(m.rss_max_kib_during_drain),
            kib(m.rss_kib_after_drain),
        );
        if let Some(g) = m.rss_growth_from_second_quarter {
            println!(
                "VmRSS growth from the second quarter to the last: {:+.1} % (RssAnon {}; SPEC §5: at most 5 %)",
                100.0 * g,
                m.anon_growth_from_second_quarter
                    .map_or("-".into(), |g| format!("{:+.1} %", 100.0 * g))
            );
        }
    }
}
