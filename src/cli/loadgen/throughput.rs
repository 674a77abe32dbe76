//! `brevdue loadgen` (the throughput scenario, in-process): a fresh gateway on a temporary data
//! directory (or the store and queue URLs given) inside this process, senders streaming from
//! the same two cores, beside the raw ceilings measured in the same run.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, Result};

use super::ceilings::{self, Ceiling};
use super::streams::stream_letters;
use super::{LoadgenArgs, gateway};
use crate::config::StoreUrl;
use crate::directory::Secrets;
use crate::domain::{RecipientId, SenderKind, complete_cvr};
use crate::pki::Pki;

pub(super) async fn run(args: &LoadgenArgs) -> Result<()> {
    let (tmp, root) = gateway::scratch(args, "brevdue-loadgen")?;
    let size = args.size.as_u64() as usize;
    println!(
        "brevdue loadgen: {} letters of {} per measurement, {} streams, data in {}",
        args.letters,
        args.size.display().si(),
        args.streams,
        root.display()
    );

    let mut found = vec![Ceiling::new(
        "sealing alone (one core)",
        ceilings::seal_alone(args.letters.min(20_000), size)?,
    )];
    // The raw ceilings of the backends the gateway will use, on their own.
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| StoreUrl::Sqlite(tmp.path().join("store-only.db")));
    let queue_url = ceilings::scratch_queue(args.queue.as_ref(), tmp.path());
    // The gateway under test, with a registry of active citizens and a public sender.
    let config = gateway::config(&root, args)?;
    let (data, store) = crate::cli::admin::open_store(&config).await?;
    let recipients = gateway::citizens();
    let secrets = Secrets::load_or_create(&data.keys())?;
    store
        .import_registry(&secrets.import_of(&recipients, &[])?, "loadgen", &|_| {})
        .await?;
    let sender = complete_cvr(2_940_347).context("cvr")?;
    let pki = Pki::open_or_create(&data.pki())?;
    let cert_dir = gateway::add_sender(
        &*store,
        &pki,
        data.root(),
        (sender, "Loadgen Styrelsen", SenderKind::Public),
        "loadgen-sender",
    )
    .await?;
    let ids: Vec<RecipientId> = recipients.iter().map(|(id, _)| *id).collect();

    found.push(Ceiling::new(
        "gRPC with no work (TLS, same streams)",
        ceilings::grpc_no_work(&pki, &cert_dir, &ids, (args.letters, args.streams), size).await?,
    ));

    let running = crate::server::start(config).await?;
    let server = format!("https://{}", running.grpc_addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let streamed = stream_letters(
        &[server],
        &cert_dir,
        &ids,
        args.letters,
        args.streams,
        size,
        Arc::new(AtomicU64::new(0)),
    )
    .await?;
    if streamed.accepted < args.letters as u64 {
        println!("  (only {} letters were accepted)", streamed.accepted);
    }
    let e2e = streamed.accepted_per_s();
    let counts = store.state_counts().await?;
    running.shutdown().await?;

    // The backends alone, after the gateway is gone: a scratch database given with --store gets
    // these letters too, and they must not look like waiting deliveries to the gateway.
    found.push(Ceiling::new(
        format!(
            "store alone ({}, batches of 1024)",
            gateway::store_name(Some(&store_url))
        ),
        ceilings::store_alone(&store_url, args.letters.min(50_000), size).await?,
    ));
    found.push(Ceiling::new(
        format!(
            "queue alone ({}, batches of 1024)",
            gateway::queue_name(Some(&queue_url))
        ),
        ceilings::queue_alone(&queue_url, args.letters).await?,
    ));
    found.push(Ceiling::new(
        format!(
            "synced appends of {} to this disk (fdatasync per 64)",
            args.size.display().si()
        ),
        ceilings::synced_appends(tmp.path(), args.letters.clamp(5_000, 20_000), size)?,
    ));

    println!("\nraw ceilings measured in this run:");
    for c in &found {
        println!("  {:<48} {:>9.0} letters/s", c.name, c.per_sec);
    }
    println!();
    ceilings::print_ratios(
        &format!(
            "end to end, durable (stored, synced, queued before each receipt), {} letters",
            args.size.display().si()
        ),
        e2e,
        &found,
    );
    println!(
        "delivered meanwhile: {} to mailboxes, {} still queued at shutdown",
        counts.delivered,
        counts.accepted + counts.scheduled
    );
    let production = !store_url.is_embedded() || !queue_url.is_embedded();
    let (target, setup) = match (size > 50_000, production) {
        (true, _) => (1_500.0, "100 KB letters"),
        (false, true) => (3_000.0, "PostgreSQL + RabbitMQ"),
        (false, false) => (5_000.0, "the embedded default"),
    };
    println!(
        "SPEC §5 target for {setup}: {target:.0} letters/s — {}",
        if e2e >= target { "met" } else { "not met" }
    );
    Ok(())
}
