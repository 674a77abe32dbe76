//! `brevdue loadgen --scenario flood`: the month-end flood.
//!
//! One sender (a bank) streams a large BULK batch flat out while a public authority sends one
//! URGENT letter at a steady cadence with the unary call. Measured in one run on one gateway:
//! each urgent letter's accept-to-delivered time under the flood and on the idle gateway, the
//! flood's throughput against the bank streaming alone, the process's memory through the flood,
//! and how long the flood's backlog takes to deliver.
//!
//! Urgent latency is `delivered_at − accepted_at` as the gateway stamped them (GetStatus), so how
//! often the load generator polls changes the load a little but never the value measured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{LoadgenArgs, sample_letter};
use crate::cli::client::{self, Client};
use crate::clock::now_ms;
use crate::config::{Config, QueueUrl, StoreUrl};
use crate::directory::Secrets;
use crate::domain::{Priority, RecipientId, RecipientStatus, SenderInfo, SenderKind, complete_cvr};
use crate::ingest::pb;
use crate::pki::Pki;
use crate::registry::synth::{SynthSpec, generate};
use crate::store::Store;

#[derive(clap::Args, Clone, Debug)]
pub struct FloodArgs {
    /// Flood scenario: BULK letters the bank streams flat out.
    #[arg(long, default_value_t = 200_000)]
    pub flood_letters: usize,
    /// Flood scenario: letters the bank streams alone first, for the single-sender figure
    /// [default: the flood's count, at most 50,000].
    #[arg(long)]
    pub single_letters: Option<usize>,
    /// Flood scenario: letters the bank streams before anything is measured (then delivered),
    /// so the single-sender figure is not the cold start's.
    #[arg(long, default_value_t = 10_000)]
    pub warmup_letters: usize,
    /// Flood scenario: the authority sends one URGENT letter this often.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub urgent_every: Duration,
    /// Flood scenario: URGENT letters sent to the idle gateway for the baseline.
    #[arg(long, default_value_t = 50)]
    pub idle_urgent: usize,
    /// Flood scenario: longest wait for the queue to empty after a phase (and for an urgent
    /// letter to be delivered).
    #[arg(long, default_value = "30min", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Flood scenario: also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How often the resident set is read during the flood.
const RSS_EVERY: Duration = Duration::from_millis(250);
/// How often the store is asked whether the queue has drained.
const DRAIN_POLL: Duration = Duration::from_millis(200);
/// Last quarter's peak within this much of the first quarter's counts as flat.
const FLAT_TOLERANCE: f64 = 0.10;

#[derive(Serialize)]
struct Report {
    setup: Setup,
    urgent_idle: Latency,
    urgent_flood: Latency,
    /// Flood p99 over idle p99.
    urgent_p99_ratio: Option<f64>,
    single_sender: Throughput,
    flood: Throughput,
    /// The flood's receipts per second in each quarter of its letters (from the memory samples).
    flood_per_s_by_quarter: [Option<f64>; 4],
    /// Flood throughput over single-sender throughput.
    throughput_ratio: f64,
    memory: Memory,
    delivery: Delivery,
}

#[derive(Serialize)]
struct Setup {
    store: &'static str,
    queue: &'static str,
    build: &'static str,
    letter_bytes: u64,
    streams: usize,
    flood_letters: usize,
    single_letters: usize,
    warmup_letters: usize,
    urgent_every_ms: u64,
    /// The gateway runs in the load generator's process: memory is of both together.
    gateway_in_process: bool,
}

#[derive(Serialize, Default)]
struct Latency {
    /// Urgent letters delivered and measured.
    count: usize,
    /// Urgent letters sent but not measured (refused, failed, not delivered in time).
    errors: usize,
    p50_ms: Option<i64>,
    p99_ms: Option<i64>,
    max_ms: Option<i64>,
    /// The sender's wait for the receipt of SubmitLetter.
    submit_p50_ms: Option<i64>,
    submit_p99_ms: Option<i64>,
    /// Accepted (stamped, before the group commit) to the receipt reaching the sender: the wait
    /// for the letter to be stored and queued.
    commit_p50_ms: Option<i64>,
    commit_p99_ms: Option<i64>,
}

#[derive(Serialize)]
struct Throughput {
    letters: usize,
    receipts: u64,
    accepted: u64,
    seconds: f64,
    accepted_per_s: f64,
}

#[derive(Serialize)]
struct Memory {
    samples: usize,
    /// VmHWM at the end of the flood; `peak_since` says from when.
    peak_kib: Option<u64>,
    peak_since: &'static str,
    /// VmRSS: everything resident.
    rss: Series,
    /// RssAnon, the part of VmRSS that is heap and stacks: where a leak would show. The rest
    /// is mapped files and shared memory (SQLite's WAL index grows and shrinks with the WAL).
    anon: Series,
}

#[derive(Serialize)]
struct Series {
    /// When 25, 50, 75 and 100 % of the flood's receipts were in.
    kib_at_quarters: [Option<u64>; 4],
    first_quarter_max_kib: Option<u64>,
    last_quarter_max_kib: Option<u64>,
    /// Last quarter's peak over the first quarter's, minus one.
    growth: Option<f64>,
    flat: Option<bool>,
    after_drain_kib: Option<u64>,
}

#[derive(Serialize)]
struct Delivery {
    /// The bank's flood letters delivered by the time its last receipt came in.
    flood_delivered_at_flood_end: u64,
    waiting_at_flood_end: u64,
    /// From the flood's last receipt to an empty queue; none if the timeout came first.
    drain_seconds: Option<f64>,
    single_sender_drain_seconds: Option<f64>,
}

/// One urgent letter's life, in the gateway's stamps and the sender's clock (the same clock:
/// both run in this process).
#[derive(Clone, Copy, Debug)]
struct Urgent {
    accepted_at_ms: i64,
    delivered_at_ms: i64,
    receipt_at_ms: i64,
    submit: Duration,
}

#[derive(Default)]
struct UrgentRun {
    letters: Vec<Urgent>,
    errors: Vec<String>,
}

pub(super) async fn run(args: &LoadgenArgs) -> Result<()> {
    let f = &args.flood;
    let single_letters = f.single_letters.unwrap_or(f.flood_letters.min(50_000));
    let size = args.size.as_u64() as usize;
    let streams = args.streams.max(1);
    let tmp = tempfile::Builder::new()
        .prefix("brevdue-loadgen-flood")
        .tempdir()?;
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("gateway"));
    // The backends by what they are, not by whether a URL was given.
    let store_name = match &args.store {
        Some(StoreUrl::Postgres(_)) => "PostgreSQL",
        _ => "SQLite",
    };
    let queue_name = match &args.queue {
        Some(QueueUrl::Rabbit(_)) => "RabbitMQ",
        _ => "embedded",
    };
    println!(
        "brevdue loadgen --scenario flood: {} BULK letters of {} from a bank over {streams} streams, \
         one URGENT letter every {} from a public authority; store {store_name}, queue {queue_name}, data in {}",
        f.flood_letters,
        args.size.display().si(),
        humantime::format_duration(f.urgent_every),
        root.display()
    );

    let config = Config {
        data_dir: root.clone(),
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        store: args.store.clone(),
        queue: args.queue.clone(),
        ..Config::default()
    };
    let setup = prepare(&config).await?;
    let running = crate::server::start(config).await?;
    let server = format!("https://{}", running.grpc_addr);
    let ids = Arc::new(setup.ids);
    let store = setup.store;

    if f.warmup_letters > 0 {
        println!(
            "\nwarm-up: {} letters from the bank, not measured",
            f.warmup_letters
        );
        stream_bulk(
            &server,
            &setup.bank_dir,
            &ids,
            f.warmup_letters,
            streams,
            size,
            Arc::new(AtomicU64::new(0)),
        )
        .await?;
        drained(&*store, Instant::now(), f.drain_timeout).await?;
    }

    // 1. The bank alone: the single-sender figure, then its backlog delivered, so the idle
    //    baseline and the flood both start from an empty queue.
    println!("1/3 the bank alone: {single_letters} letters");
    let progress = Arc::new(AtomicU64::new(0));
    let single = stream_bulk(
        &server,
        &setup.bank_dir,
        &ids,
        single_letters,
        streams,
        size,
        progress,
    )
    .await?;
    println!(
        "    {:.0} letters/s accepted; waiting for delivery",
        single.accepted_per_s
    );
    let single_drain = drained(&*store, Instant::now(), f.drain_timeout).await?;

    // 2. The idle baseline.
    println!(
        "2/3 idle gateway: {} URGENT letters, one every {}",
        f.idle_urgent,
        humantime::format_duration(f.urgent_every)
    );
    let idle = send_urgent(
        client::connect(&server, &setup.authority_dir).await?,
        ids.clone(),
        size,
        f.urgent_every,
        Until::Count(f.idle_urgent),
        f.drain_timeout,
    )
    .await?;

    // 3. The flood, with the urgent letters alongside and memory sampled throughout.
    println!(
        "3/3 the flood: {} BULK letters with URGENT letters alongside",
        f.flood_letters
    );
    let before = store.state_counts().await?;
    let hwm_reset = reset_peak_rss();
    let progress = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let flood_start = Instant::now();
    let sampler = tokio::spawn(sample_rss(progress.clone(), flood_start, stop.clone()));
    // Connected before the flood starts, so the first urgent letter goes out with its first.
    let authority = client::connect(&server, &setup.authority_dir).await?;
    let urgent = tokio::spawn(send_urgent(
        authority,
        ids.clone(),
        size,
        f.urgent_every,
        Until::Cancelled(stop.clone()),
        f.drain_timeout,
    ));
    let flood = stream_bulk(
        &server,
        &setup.bank_dir,
        &ids,
        f.flood_letters,
        streams,
        size,
        progress.clone(),
    )
    .await;
    let flood_end = Instant::now();
    stop.cancel();
    let at_end = store.state_counts().await;
    let at_end_ms = now_ms();
    let mut rss = sampler.await?;
    rss.push(RssSample::now(
        progress.load(Ordering::Relaxed),
        flood_end - flood_start,
    ));
    let peak_kib = read_status("VmHWM");
    let flood = flood?;
    let at_end = at_end?;
    println!(
        "    {:.0} letters/s accepted; waiting for the rest to be delivered",
        flood.accepted_per_s
    );
    let drain = drained(&*store, flood_end, f.drain_timeout).await?;
    let after_drain = RssSample::now(0, flood_end.elapsed());
    let under_flood = urgent.await??;

    running.shutdown().await?;
    if let Some(QueueUrl::Rabbit(url)) = &args.queue {
        // The run's own prefix: its queues are gone with the run, like the temporary data dir.
        let q = crate::queue::RabbitQueue::open(url).await?;
        let dropped = q.delete_topology().await?;
        println!(
            "deleted the queues with prefix {:?} ({dropped} messages left in them)",
            q.prefix()
        );
    }

    let urgent_by_end = under_flood
        .letters
        .iter()
        .filter(|u| u.delivered_at_ms <= at_end_ms)
        .count() as u64;
    let report = Report {
        setup: Setup {
            store: store_name,
            queue: queue_name,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            letter_bytes: args.size.as_u64(),
            streams,
            flood_letters: f.flood_letters,
            single_letters,
            warmup_letters: f.warmup_letters,
            urgent_every_ms: f.urgent_every.as_millis() as u64,
            gateway_in_process: true,
        },
        urgent_p99_ratio: None,
        urgent_idle: latency(&idle),
        urgent_flood: latency(&under_flood),
        throughput_ratio: flood.accepted_per_s / single.accepted_per_s.max(f64::MIN_POSITIVE),
        single_sender: single,
        flood_per_s_by_quarter: [0, 1, 2, 3].map(|q| quarter_rate(&rss, f.flood_letters as u64, q)),
        memory: memory(
            &rss,
            f.flood_letters as u64,
            peak_kib,
            hwm_reset,
            after_drain,
        ),
        delivery: Delivery {
            flood_delivered_at_flood_end: at_end
                .delivered
                .saturating_sub(before.delivered)
                .saturating_sub(urgent_by_end),
            waiting_at_flood_end: at_end.accepted + at_end.scheduled,
            drain_seconds: drain.map(|d| d.as_secs_f64()),
            single_sender_drain_seconds: single_drain.map(|d| d.as_secs_f64()),
        },
        flood,
    };
    let report = Report {
        urgent_p99_ratio: match (report.urgent_flood.p99_ms, report.urgent_idle.p99_ms) {
            (Some(f), Some(i)) => Some(f as f64 / (i.max(1)) as f64),
            _ => None,
        },
        ..report
    };
    print_report(&report);
    for (phase, run) in [("idle", &idle), ("flood", &under_flood)] {
        if let Some(e) = run.errors.first() {
            println!(
                "{} urgent letters of the {phase} phase were not measured; the first: {e}",
                run.errors.len()
            );
        }
    }
    if let Some(path) = &f.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

struct Prepared {
    store: Arc<dyn Store>,
    ids: Vec<RecipientId>,
    bank_dir: PathBuf,
    authority_dir: PathBuf,
}

/// A registry of active citizens who all subscribe to the bank (so its letters go to their
/// mailboxes), the bank (private) and the authority (public), each with its certificate.
async fn prepare(config: &Config) -> Result<Prepared> {
    let (data, store) = crate::cli::admin::open_store(config).await?;
    let bank = complete_cvr(3_120_550).context("cvr")?;
    let authority = complete_cvr(2_940_347).context("cvr")?;
    let mut recipients = Vec::new();
    generate(&SynthSpec::small(7, 20_000, 0), |id, _, _| {
        recipients.push((id, RecipientStatus::Active))
    });
    let subscriptions: Vec<(u64, RecipientId, _)> = recipients
        .iter()
        .enumerate()
        .map(|(i, (id, _))| (i as u64 + 2, *id, bank))
        .collect();
    let secrets = Secrets::load_or_create(&data.keys())?;
    store
        .import_registry(
            &secrets.recipient_rows(&recipients)?,
            &secrets.subscription_rows(&subscriptions),
        )
        .await?;
    let pki = Pki::open_or_create(&data.pki())?;
    let mut dirs = Vec::new();
    for (cvr, name, kind, dir) in [
        (bank, "Loadgen Bank", SenderKind::Private, "loadgen-bank"),
        (
            authority,
            "Loadgen Styrelsen",
            SenderKind::Public,
            "loadgen-authority",
        ),
    ] {
        let issued = pki.issue_sender(&cvr.to_string(), name)?;
        store
            .add_sender(
                &SenderInfo {
                    cvr,
                    name: name.into(),
                    kind,
                    suspended: false,
                    limits: Default::default(),
                },
                issued.fingerprint,
            )
            .await
            .context("registering the load generator's senders (use a fresh scratch store)")?;
        let cert_dir = data.root().join(dir);
        crate::cli::admin::write_cert_dir(
            &cert_dir,
            &pki.ca_pem()?,
            &issued.cert_pem,
            &issued.key_pem,
        )?;
        dirs.push(cert_dir);
    }
    let authority_dir = dirs.pop().context("cert dir")?;
    let bank_dir = dirs.pop().context("cert dir")?;
    Ok(Prepared {
        store,
        ids: recipients.into_iter().map(|(id, _)| id).collect(),
        bank_dir,
        authority_dir,
    })
}

/// Streams `n` BULK letters over `streams` streams, counting receipts into `progress`.
async fn stream_bulk(
    server: &str,
    cert_dir: &Path,
    ids: &Arc<Vec<RecipientId>>,
    n: usize,
    streams: usize,
    size: usize,
    progress: Arc<AtomicU64>,
) -> Result<Throughput> {
    let mut clients = Vec::new();
    for _ in 0..streams {
        clients.push(client::connect(server, cert_dir).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut c) in clients.into_iter().enumerate() {
        // Every letter is sent: the remainder goes to the first streams.
        let count = n / streams + usize::from(s < n % streams);
        let ids = ids.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let letters = (0..count).map(move |i| {
                let mut letter = sample_letter(ids[(s + i * streams) % ids.len()], size);
                letter.priority = Priority::Bulk;
                ((), crate::ingest::letter_to_pb(&letter))
            });
            let mut accepted = 0u64;
            let mut receipts = 0u64;
            client::stream_batch(&mut c, letters, |_, r| {
                receipts += 1;
                progress.fetch_add(1, Ordering::Relaxed);
                if r.outcome != pb::Outcome::Rejected as i32 {
                    accepted += 1;
                }
            })
            .await
            .map(|()| (receipts, accepted))
        }));
    }
    let (mut receipts, mut accepted) = (0, 0);
    for t in tasks {
        let (r, a) = t.await??;
        receipts += r;
        accepted += a;
    }
    let seconds = started.elapsed().as_secs_f64();
    if accepted < n as u64 {
        println!("    (only {accepted} of {n} letters were accepted)");
    }
    Ok(Throughput {
        letters: n,
        receipts,
        accepted,
        seconds,
        accepted_per_s: accepted as f64 / seconds,
    })
}

/// Waits until no stored letter waits for delivery; how long after `since` that was, or none
/// at `timeout`.
async fn drained(store: &dyn Store, since: Instant, timeout: Duration) -> Result<Option<Duration>> {
    let started = Instant::now();
    loop {
        let c = store.state_counts().await?;
        if c.accepted + c.scheduled == 0 {
            return Ok(Some(since.elapsed()));
        }
        if started.elapsed() >= timeout {
            println!(
                "    {} letters still waiting after {}",
                c.accepted + c.scheduled,
                humantime::format_duration(timeout)
            );
            return Ok(None);
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

enum Until {
    Count(usize),
    Cancelled(CancellationToken),
}

/// Sends one URGENT letter per tick until told to stop, each on its own task so a slow receipt
/// never delays the next letter, and follows each to its delivery.
async fn send_urgent(
    client: Client,
    ids: Arc<Vec<RecipientId>>,
    size: usize,
    every: Duration,
    until: Until,
    timeout: Duration,
) -> Result<UrgentRun> {
    let mut tick = tokio::time::interval(every);
    // A stalled tick sends one letter late, not a burst to catch up: the cadence is the load.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tasks = Vec::new();
    for n in 0usize.. {
        match &until {
            Until::Count(max) if n >= *max => break,
            Until::Cancelled(stop) => {
                // The tick first: the first one is due at once, so even a flood over before
                // this task ran has an urgent letter beside it.
                tokio::select! {
                    biased;
                    _ = tick.tick() => {}
                    () = stop.cancelled() => break,
                }
            }
            Until::Count(_) => {
                tick.tick().await;
            }
        }
        // A different recipient from the bank's first letters, to keep the two apart.
        let mut letter = sample_letter(ids[(ids.len() - 1 - n % ids.len()) % ids.len()], size);
        letter.priority = Priority::Urgent;
        letter.title = "Loadgen urgent letter".into();
        tasks.push(tokio::spawn(follow_urgent(
            client.clone(),
            crate::ingest::letter_to_pb(&letter),
            timeout,
        )));
    }
    let mut run = UrgentRun::default();
    for t in tasks {
        match t.await? {
            Ok(u) => run.letters.push(u),
            Err(e) => run.errors.push(e),
        }
    }
    Ok(run)
}

/// Submits one urgent letter and polls its status until it is delivered.
async fn follow_urgent(
    mut c: Client,
    letter: pb::Letter,
    timeout: Duration,
) -> Result<Urgent, String> {
    let uuid = letter.message_uuid.clone();
    let sent = Instant::now();
    let receipt = c
        .submit_letter(letter)
        .await
        .map_err(|s| client::describe(&s))?
        .into_inner();
    let submit = sent.elapsed();
    let receipt_at_ms = now_ms();
    if receipt.outcome != pb::Outcome::AcceptedMailbox as i32 {
        return Err(format!(
            "{} {}: {}",
            client::outcome_name(receipt.outcome),
            client::reason_name(receipt.reason),
            receipt.detail
        ));
    }
    // Starts short to see a fast delivery soon; backs off so slow ones add little load.
    let mut wait = Duration::from_millis(10);
    loop {
        tokio::time::sleep(wait).await;
        let status = c
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::MessageUuid(uuid.clone())),
            })
            .await
            .map_err(|s| client::describe(&s))?
            .into_inner();
        match pb::LetterState::try_from(status.state) {
            Ok(pb::LetterState::Delivered) => {
                return Ok(Urgent {
                    accepted_at_ms: status.accepted_at_unix_ms,
                    delivered_at_ms: status.delivered_at_unix_ms,
                    receipt_at_ms,
                    submit,
                });
            }
            Ok(pb::LetterState::Accepted | pb::LetterState::Scheduled) => {}
            _ => return Err(format!("ended {:?}: {}", status.state, status.detail)),
        }
        if sent.elapsed() >= timeout {
            return Err(format!(
                "not delivered within {}",
                humantime::format_duration(timeout)
            ));
        }
        wait = (wait * 3 / 2).min(Duration::from_millis(200));
    }
}

fn latency(run: &UrgentRun) -> Latency {
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
    fn now(receipts: u64, at: Duration) -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        RssSample {
            receipts,
            at,
            rss_kib: status_kib(&status, "VmRSS"),
            anon_kib: status_kib(&status, "RssAnon"),
        }
    }
}

async fn sample_rss(
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
fn read_status(field: &str) -> Option<u64> {
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
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

type Kib = fn(&RssSample) -> Option<u64>;

/// The first sample taken once the flood's receipts reached `fraction` of `total`.
fn sample_at(samples: &[RssSample], total: u64, fraction: f64) -> Option<&RssSample> {
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

fn series(samples: &[RssSample], kib: Kib, total: u64, after_drain: &RssSample) -> Series {
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

fn memory(
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

fn ms(v: Option<i64>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_else(|| "—".into())
}

fn mib(v: Option<u64>) -> String {
    v.map(|v| format!("{:.0} MiB", v as f64 / 1024.0))
        .unwrap_or_else(|| "—".into())
}

fn print_report(r: &Report) {
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
