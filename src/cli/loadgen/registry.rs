//! `brevdue loadgen --scenario registry`: the registry at national scale, measured as an
//! operator meets it. A Denmark-sized registry (5.9 M citizens, 0.8 M companies, about 13 M
//! subscriptions) is written as the CSV files SPEC §3 documents and imported by `brevdue
//! registry import` in its own process; `brevdue serve` starts on it in its own process (time
//! to the first answer, resident memory sampled every second); then changes are applied to the
//! store, as `brevdue registry apply` from another process would, while a sender's
//! CheckRecipient calls keep routing, and each batch's visibility is timed: from the commit of
//! the change to the first CheckRecipient answer that reflects it.
//!
//! Nothing here asserts a speed: it prints what it measured.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::LoadgenArgs;
use super::flood::memory::status_kib;
use super::gateway;
use crate::cli::client::{self, Client};
use crate::directory::Secrets;
use crate::directory::apply::apply_changes;
use crate::domain::{Cvr, RecipientId, SenderInfo, SenderKind};
use crate::ingest::pb;
use crate::registry::change::{ChangeAction, ChangeProblems, RegistryChange};
use crate::registry::synth::{SynthSpec, generate};

#[derive(clap::Args, Clone, Debug)]
pub struct RegistryArgs {
    /// Registry scenario: citizens in the generated registry.
    #[arg(long, default_value_t = 5_900_000)]
    pub citizens: usize,
    /// Registry scenario: companies in the generated registry.
    #[arg(long, default_value_t = 800_000)]
    pub companies: usize,
    /// Registry scenario: changes applied while the gateway serves.
    #[arg(long, default_value_t = 100_000)]
    pub changes: usize,
    /// Registry scenario: changes per transaction (each batch's visibility is timed).
    #[arg(long, default_value_t = 250)]
    pub change_batch: usize,
}

/// Recipients kept aside while generating, to change later: each with whether it subscribed to
/// the bank the changes are about.
const PROBE_POOL: usize = 200_000;

/// A process's resident memory now and at its peak (KiB), from `/proc/PID/status`.
fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_kib(&status, "VmRSS")?, status_kib(&status, "VmHWM")?))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs `child` to its end, sampling its peak resident memory; the peak (KiB) and how long.
fn wait_sampled(mut child: Child) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let mut peak = 0;
    loop {
        if let Some((_, hwm)) = rss_kib(child.id()) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("the child process failed ({status})");
            }
            return Ok((peak, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Files {
    recipients: PathBuf,
    subscriptions: PathBuf,
    /// Recipients to change, with whether each subscribed to `bank`.
    pool: Vec<(RecipientId, bool)>,
    bank: Cvr,
    recipients_count: usize,
    subscriptions_count: usize,
}

/// Writes the registry CSV files, streamed.
fn write_files(dir: &Path, spec: &SynthSpec) -> Result<Files> {
    let recipients = dir.join("recipients.csv");
    let subscriptions = dir.join("subscriptions.csv");
    let mut r = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&recipients)?);
    let mut s = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&subscriptions)?);
    writeln!(r, "id_type,id,status")?;
    writeln!(s, "recipient_id,sender_cvr")?;
    let mut rng = SmallRng::seed_from_u64(11);
    let mut seen = 0usize;
    let mut candidates: Vec<(RecipientId, Vec<Cvr>)> = Vec::with_capacity(PROBE_POOL);
    let mut failed = None;
    let mut subs_count = 0usize;
    let summary = generate(spec, |id, status, subs| {
        if failed.is_some() {
            return;
        }
        let wrote = writeln!(r, "{},{},{}", id.id_type(), id.number(), status).and_then(|()| {
            subs.iter()
                .try_for_each(|c| writeln!(s, "{},{}", id.number(), c))
        });
        if let Err(e) = wrote {
            failed = Some(e);
        }
        subs_count += subs.len();
        // Reservoir sampling of citizens to change later: those a subscription reaches (a
        // closed recipient's subscriptions do not count).
        if matches!(id, RecipientId::Cpr(_)) && status != crate::domain::RecipientStatus::Closed {
            seen += 1;
            if candidates.len() < PROBE_POOL {
                candidates.push((id, subs.to_vec()));
            } else {
                let at = rng.random_range(0..seen);
                if at < PROBE_POOL {
                    candidates[at] = (id, subs.to_vec());
                }
            }
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    r.flush()?;
    s.flush()?;
    let bank = *summary
        .private_senders
        .first()
        .context("the generated registry has no private senders")?;
    let pool = candidates
        .into_iter()
        .map(|(id, subs)| (id, subs.contains(&bank)))
        .collect();
    Ok(Files {
        recipients,
        subscriptions,
        pool,
        bank,
        recipients_count: summary.recipients,
        subscriptions_count: subs_count,
    })
}

async fn reach(client: &mut Client, id: &RecipientId) -> Result<i32> {
    let r = client
        .check_recipient(pb::RecipientQuery {
            recipient: Some(pb::RecipientId {
                r#type: match id {
                    RecipientId::Cpr(_) => pb::IdType::Cpr,
                    RecipientId::Cvr(_) => pb::IdType::Cvr,
                } as i32,
                id: id.number(),
            }),
            print_fallback: false,
        })
        .await?;
    Ok(r.into_inner().reach)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

pub(super) async fn run(args: &LoadgenArgs) -> Result<()> {
    let r = &args.registry;
    let (tmp, root) = gateway::scratch(args, "brevdue-loadgen-registry")?;
    let spec = SynthSpec {
        citizens: r.citizens,
        companies: r.companies,
        ..SynthSpec::denmark(2026)
    };
    println!(
        "brevdue loadgen --scenario registry: {} citizens, {} companies, {} changes in batches of {}; store {}; data in {}",
        spec.citizens,
        spec.companies,
        r.changes,
        r.change_batch,
        gateway::store_name(args.store.as_ref()),
        root.display()
    );

    // 1. The CSV files.
    let t = Instant::now();
    let files = write_files(tmp.path(), &spec)?;
    let csv_bytes = std::fs::metadata(&files.recipients)?.len()
        + std::fs::metadata(&files.subscriptions)?.len();
    println!(
        "generated {} recipients and {} subscriptions ({:.0} MB of CSV) in {:.1} s",
        files.recipients_count,
        files.subscriptions_count,
        csv_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // 2. `brevdue registry import`, in its own process.
    let exe = std::env::current_exe().context("the brevdue binary")?;
    // The URL itself for the child processes (a store URL's `Display` is a description).
    let store_args: Vec<String> = match &args.store {
        Some(crate::config::StoreUrl::Postgres(url)) => vec!["--store".into(), url.clone()],
        Some(crate::config::StoreUrl::Sqlite(path)) => {
            vec!["--store".into(), format!("sqlite://{}", path.display())]
        }
        None => Vec::new(),
    };
    let mut import = Command::new(&exe);
    import
        .arg("registry")
        .arg("import")
        .arg("--data-dir")
        .arg(&root)
        .args(&store_args)
        .arg("--recipients")
        .arg(&files.recipients)
        .arg("--subscriptions")
        .arg(&files.subscriptions)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let (import_peak, import_took) = wait_sampled(import.spawn()?)?;
    let rows = files.recipients_count + files.subscriptions_count;
    println!(
        "import: {:.1} s ({:.0} rows/s), peak resident {:.0} MiB",
        import_took.as_secs_f64(),
        rows as f64 / import_took.as_secs_f64(),
        mib(import_peak)
    );

    // 3. The sender that asks, and the gateway in its own process.
    let config = gateway::config(&root, args)?;
    let bank_dir = tmp.path().join("bank");
    crate::cli::admin::senders_add(
        &config,
        files.bank,
        "Loadgen Bank",
        SenderKind::Private,
        &bank_dir,
    )
    .await?;
    let (grpc, admin) = (free_port()?, free_port()?);
    let t = Instant::now();
    let mut serve = Command::new(&exe)
        .arg("serve")
        .arg("--data-dir")
        .arg(&root)
        .args(&store_args)
        .arg("--listen")
        .arg(format!("127.0.0.1:{grpc}"))
        .arg("--admin-listen")
        .arg(format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = serve.id();
    let result = measure(args, &files, grpc, pid, t, &config, &bank_dir).await;
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = serve.wait();
    drop(tmp);
    result
}

/// Everything measured against the running gateway.
async fn measure(
    args: &LoadgenArgs,
    files: &Files,
    grpc: u16,
    pid: u32,
    spawned: Instant,
    config: &crate::config::Config,
    bank_dir: &Path,
) -> Result<()> {
    let r = &args.registry;
    let url = format!("https://127.0.0.1:{grpc}");
    let probe = files
        .pool
        .first()
        .map(|p| p.0)
        .context("no recipient to ask about")?;
    let mut client = loop {
        if spawned.elapsed() > Duration::from_secs(600) {
            bail!("the gateway did not answer within 10 minutes");
        }
        if let Ok(mut c) = client::connect(&url, bank_dir).await
            && reach(&mut c, &probe).await.is_ok()
        {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let serving = spawned.elapsed();
    let (ready_rss, _) = rss_kib(pid).unwrap_or((0, 0));
    println!(
        "gateway: serving {:.1} s after start, resident {:.0} MiB",
        serving.as_secs_f64(),
        mib(ready_rss)
    );

    // Memory every second from here on.
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(Duration, u64)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        let t = Instant::now();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some((rss, _)) = rss_kib(pid)
                    && let Ok(mut s) = samples.lock()
                {
                    s.push((t.elapsed(), rss));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // Routing while the changes flow: one sender asking about random recipients.
    let lookups = Arc::new(AtomicU64::new(0));
    let router = {
        let (stop, lookups) = (stop.clone(), lookups.clone());
        let mut c = client::connect(&url, bank_dir).await?;
        let ids: Vec<RecipientId> = files.pool.iter().map(|p| p.0).collect();
        tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(3);
            while !stop.load(Ordering::Relaxed) {
                let id = ids[rng.random_range(0..ids.len())];
                if reach(&mut c, &id).await.is_ok() {
                    lookups.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // The changes: subscriptions to and from the bank, each batch's last change timed.
    let (data, store) = crate::cli::admin::open_store(config).await?;
    let secrets = Secrets::load_or_create(&data.keys())?;
    let (senders, _) = store.senders().await?;
    let senders: Vec<SenderInfo> = senders;
    let sender = |cvr: Cvr| senders.iter().find(|s| s.cvr == cvr).cloned();
    let mut pool = files.pool.clone();
    pool.shuffle(&mut SmallRng::seed_from_u64(5));
    let mut latencies = Vec::new();
    let mut applying = Duration::ZERO;
    let mut next = 0usize;
    let t = Instant::now();
    let mut done = 0usize;
    while done < r.changes {
        let n = r.change_batch.min(r.changes - done).max(1);
        let mut batch = Vec::with_capacity(n);
        let size = pool.len();
        for i in 0..n {
            let (id, subscribed) = &mut pool[next % size];
            next += 1;
            let action = if *subscribed {
                ChangeAction::Unsubscribe(files.bank)
            } else {
                ChangeAction::Subscribe(files.bank)
            };
            *subscribed = !*subscribed;
            batch.push(RegistryChange {
                line: i as u64 + 1,
                id: *id,
                action,
            });
        }
        let last = batch[batch.len() - 1];
        let want = match last.action {
            ChangeAction::Subscribe(_) => pb::Reach::Mailbox as i32,
            _ => pb::Reach::None as i32,
        };
        let started = Instant::now();
        apply_changes(
            &*store,
            &secrets,
            &sender,
            &batch,
            ChangeProblems::default(),
            "loadgen",
            "loadgen",
        )
        .await?;
        let committed = Instant::now();
        applying += committed - started;
        loop {
            if reach(&mut client, &last.id).await? == want {
                break;
            }
            if committed.elapsed() > Duration::from_secs(60) {
                bail!(
                    "change {} of the run was not visible after 60 s",
                    done + batch.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(committed.elapsed());
        done += n;
    }
    let changing = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = router.await;
    let _ = sampler.await;
    latencies.sort_unstable();
    let rss: Vec<(Duration, u64)> = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let max_rss = rss.iter().map(|s| s.1).max().unwrap_or(0);
    let last_rss = rss.last().map_or(0, |s| s.1);
    let quarter = rss.get(rss.len() / 4).map_or(0, |s| s.1);
    println!(
        "changes: {} in {:.1} s while routing ({:.0} changes/s stored, {:.0} lookups/s alongside)",
        done,
        changing.as_secs_f64(),
        done as f64 / applying.as_secs_f64().max(1e-9),
        lookups.load(Ordering::Relaxed) as f64 / changing.as_secs_f64().max(1e-9),
    );
    println!(
        "visibility (commit -> CheckRecipient answers by it), {} batches: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 1.0).as_secs_f64() * 1e3,
    );
    println!(
        "gateway memory: {:.0} MiB serving, {:.0} MiB a quarter into the changes, {:.0} MiB at the end, {:.0} MiB at most ({} samples)",
        mib(ready_rss),
        mib(quarter),
        mib(last_rss),
        mib(max_rss),
        rss.len()
    );
    Ok(())
}
