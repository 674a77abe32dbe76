//! `brevdue demo`: the one-command first run.
//!
//! Creates a data directory with a generated registry (citizens, companies, subscriptions), a
//! public authority and a private bank as senders with their certificates, starts a gateway,
//! streams a realistic batch from each sender (a few letters are meant to be rejected), waits
//! for delivery, and says where to look next.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use super::admin::open_store;
use super::client;
use super::send::stream_with_report;
use crate::config::Config;
use crate::directory::Secrets;
use crate::domain::{Cvr, RecipientId, RecipientStatus, SenderInfo, SenderKind, complete_cvr};
use crate::ingest::pb;
use crate::pki::Pki;
use crate::registry::synth::{SynthSpec, generate, random_adult_cpr, random_child_cpr};
use crate::server;

/// The demo's public authority.
fn authority() -> Option<Cvr> {
    complete_cvr(2_940_347)
}

pub async fn run(data_dir: &Path, letters: usize, keep_running: bool) -> Result<()> {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    let (data, store) = open_store(&config).await?;
    println!("brevdue demo — data directory {}", data.root().display());

    // 1. A registry: 40,000 citizens, 4,000 companies, subscriptions to 20 private senders.
    let spec = SynthSpec::small(2026, 40_000, 4_000);
    let mut recipients = Vec::new();
    let mut subscriptions = Vec::new();
    let synth = generate(&spec, |id, status, subs| {
        recipients.push((id, status));
        for s in subs {
            subscriptions.push((0u64, id, *s));
        }
    });
    if store.registry_head().await?.seq == 0 {
        let secrets = Secrets::load_or_create(&data.keys())?;
        store
            .import_registry(
                &secrets.import_of(&recipients, &subscriptions)?,
                "demo",
                &|_| {},
            )
            .await?;
        println!(
            "registry: {} citizens and {} companies, {} subscriptions",
            spec.citizens,
            spec.companies,
            subscriptions.len()
        );
    }

    // 2. Two senders with certificates.
    let bank = synth
        .private_senders
        .first()
        .copied()
        .context("no private senders generated")?;
    let authority = authority().context("no authority CVR")?;
    let pki = Pki::open_or_create(&data.pki())?;
    let (known, _) = store.senders().await?;
    let mut dirs = Vec::new();
    for (cvr, name, kind) in [
        (authority, "Demo Styrelsen", SenderKind::Public),
        (bank, "Demo Bank A/S", SenderKind::Private),
    ] {
        let dir = data.root().join("senders").join(cvr.to_string());
        if !known.iter().any(|s| s.cvr == cvr) || !dir.join("sender.key").exists() {
            let issued = pki.issue_sender(&cvr.to_string(), name)?;
            if known.iter().any(|s| s.cvr == cvr) {
                store.add_sender_cert(cvr, issued.fingerprint).await?;
            } else {
                let info = SenderInfo {
                    cvr,
                    name: name.into(),
                    kind,
                    suspended: false,
                    limits: Default::default(),
                };
                store.add_sender(&info, issued.fingerprint).await?;
            }
            super::admin::write_cert_dir(&dir, &pki.ca_pem()?, &issued.cert_pem, &issued.key_pem)?;
        }
        println!(
            "sender:   {name} (CVR {cvr}, {kind}), certificate in {}",
            dir.display()
        );
        dirs.push((name, kind, dir));
    }

    // 3. The gateway, on the default ports if they are free.
    let running = match server::start(config.clone()).await {
        Ok(r) => r,
        Err(_) => {
            config.listen = "127.0.0.1:0".parse()?;
            config.admin_listen = "127.0.0.1:0".parse()?;
            server::start(config.clone()).await?
        }
    };
    let server_url = format!("https://{}", running.grpc_addr);
    println!(
        "gateway:  {server_url} (live dashboard on http://{}/dashboard)\n",
        running.admin_addr
    );

    // 4. A batch from each sender.
    let mut rng = SmallRng::seed_from_u64(OffsetDateTime::now_utc().unix_timestamp() as u64);
    let today = OffsetDateTime::now_utc().date();
    let per_sender = [letters * 6 / 10, letters - letters * 6 / 10];
    let mut total = super::send::Summary::default();
    let mut first_letter = None;
    for ((name, kind, dir), count) in dirs.iter().zip(per_sender) {
        println!("{name}: streaming {count} letters");
        let mut c = connect_when_ready(&server_url, dir).await?;
        let batch: Vec<(String, pb::Letter)> = (0..count)
            .map(|i| {
                (
                    format!("{name} #{}", i + 1),
                    demo_letter(&mut rng, &recipients, *kind, today),
                )
            })
            .collect();
        let report = data.root().join(format!("demo-receipts-{}.csv", kind));
        let batch_id = crate::domain::BatchId::generate();
        let summary =
            stream_with_report(&mut c, batch.into_iter(), count as u64, &report, &batch_id).await?;
        summary.print();
        println!("  receipts: {}\n", report.display());
        if first_letter.is_none() {
            first_letter = first_accepted(&report);
        }
        total.letters += summary.letters;
        for (k, v) in summary.by_outcome {
            *total.by_outcome.entry(k).or_default() += v;
        }
    }

    // 5. Delivery.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let c = store.state_counts().await?;
        if c.accepted + c.scheduled == 0 || tokio::time::Instant::now() > deadline {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "delivered: {} to mailboxes, {} to the print spool, {} still waiting, {} failed",
        counts.delivered,
        counts.print_spooled,
        counts.accepted + counts.scheduled,
        counts.failed
    );
    println!("\nwhere to look next:");
    println!("  print spool:   {}", data.print_spool().display());
    println!("  metrics:       http://{}/metrics", running.admin_addr);
    if let (Some(id), Some((_, _, dir))) = (first_letter, dirs.first()) {
        println!(
            "  a letter:      brevdue status --server {server_url} --cert-dir {} {id}",
            dir.display()
        );
    }
    println!(
        "  run it:        brevdue serve --data-dir {}   (then brevdue send --cert-dir … FILE.jsonl)",
        data.root().display()
    );
    let dashboard = format!("http://{}/dashboard", running.admin_addr);
    if keep_running {
        println!("\ndashboard: {dashboard}");
        println!("the gateway keeps running; Ctrl-C stops it");
        tokio::signal::ctrl_c()
            .await
            .context("cannot wait for Ctrl-C")?;
    } else {
        println!("\ndashboard: {dashboard}   (live while a gateway runs: add --keep-running)");
    }
    running.shutdown().await?;
    Ok(())
}

async fn connect_when_ready(server: &str, dir: &Path) -> Result<client::Client> {
    let mut last = None;
    for _ in 0..50 {
        match client::connect(server, dir).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("gateway did not come up")))
}

fn first_accepted(report: &Path) -> Option<String> {
    let mut r = csv::Reader::from_path(report).ok()?;
    r.records()
        .filter_map(|r| r.ok())
        .find(|r| r.get(3).is_some_and(|o| o.starts_with("ACCEPTED")))
        .and_then(|r| r.get(2).map(str::to_string))
}

/// A letter to a mostly registered recipient, with a few meant to be rejected.
fn demo_letter(
    rng: &mut SmallRng,
    recipients: &[(RecipientId, RecipientStatus)],
    kind: SenderKind,
    today: time::Date,
) -> pb::Letter {
    let roll = rng.random_range(0..1000);
    let (id_type, id) = if roll < 880 {
        let (id, _) = recipients[rng.random_range(0..recipients.len())];
        (id.id_type(), id.number())
    } else if roll < 940 {
        let c = random_adult_cpr(rng, today);
        (crate::domain::IdType::Cpr, c.to_string())
    } else if roll < 990 {
        let c = random_child_cpr(rng, today);
        (crate::domain::IdType::Cpr, c.to_string())
    } else {
        // 31 February: an id that cannot exist.
        (
            crate::domain::IdType::Cpr,
            format!(
                "3102{:02}{:04}",
                rng.random_range(30..99),
                rng.random_range(0..4000)
            ),
        )
    };
    let title = match kind {
        SenderKind::Public => "Afgørelse om boligstøtte",
        SenderKind::Private => "Din kontoudskrift",
    };
    let mut content = b"%PDF-1.4\n% brevdue demo letter\n".to_vec();
    content.resize(10 * 1024, b'.');
    pb::Letter {
        message_uuid: uuid::Uuid::new_v4().to_string(),
        recipient: Some(pb::RecipientId {
            r#type: match id_type {
                crate::domain::IdType::Cpr => pb::IdType::Cpr as i32,
                crate::domain::IdType::Cvr => pb::IdType::Cvr as i32,
            },
            id,
        }),
        title: title.into(),
        main_document: Some(pb::Document {
            filename: "brev.pdf".into(),
            media_type: "application/pdf".into(),
            content,
        }),
        attachments: vec![],
        print_fallback: kind == SenderKind::Private && rng.random_bool(0.3),
        priority: pb::Priority::Normal as i32,
        sender_reference: String::new(),
        batch_id: String::new(),
        memo_xml: vec![],
    }
}
