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

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;

pub(super) mod memory;
mod report;
mod traffic;

use super::{LoadgenArgs, gateway};
use crate::cli::client;
use crate::clock::now_ms;
use crate::config::{Config, QueueUrl};
use crate::directory::Secrets;
use crate::domain::{RecipientId, SenderKind, complete_cvr};
use crate::pki::Pki;
use crate::store::Store;
use memory::{RssSample, memory, quarter_rate, read_status, reset_peak_rss, sample_rss};
use report::{Delivery, Report, Setup, latency, print_report};
use traffic::{Until, drained, send_urgent, stream_bulk};

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

pub(super) async fn run(args: &LoadgenArgs) -> Result<()> {
    let f = &args.flood;
    let single_letters = f.single_letters.unwrap_or(f.flood_letters.min(50_000));
    let size = args.size.as_u64() as usize;
    let streams = args.streams.max(1);
    // Held to the end of the run: dropping it removes the default data directory.
    let (_scratch, root) = gateway::scratch(args, "brevdue-loadgen-flood")?;
    let store_name = gateway::store_name(args.store.as_ref());
    let queue_name = gateway::queue_name(args.queue.as_ref());
    println!(
        "brevdue loadgen --scenario flood: {} BULK letters of {} from a bank over {streams} streams, \
         one URGENT letter every {} from a public authority; store {store_name}, queue {queue_name}, data in {}",
        f.flood_letters,
        args.size.display().si(),
        humantime::format_duration(f.urgent_every),
        root.display()
    );

    let config = gateway::config(&root, args)?;
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
    let recipients = gateway::citizens();
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
    let bank_dir = gateway::add_sender(
        &*store,
        &pki,
        data.root(),
        (bank, "Loadgen Bank", SenderKind::Private),
        "loadgen-bank",
    )
    .await?;
    let authority_dir = gateway::add_sender(
        &*store,
        &pki,
        data.root(),
        (authority, "Loadgen Styrelsen", SenderKind::Public),
        "loadgen-authority",
    )
    .await?;
    Ok(Prepared {
        store,
        ids: recipients.into_iter().map(|(id, _)| id).collect(),
        bank_dir,
        authority_dir,
    })
}
