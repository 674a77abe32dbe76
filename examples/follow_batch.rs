//! An integrator's client, built only from the proto (the crate's generated client): submits
//! one batch to a running `brevdue serve` and follows its events to the terminal state of
//! every letter, without a single GetStatus call, then reports events/s and the time to the
//! last terminal event. This is the measurement behind the README's "Following letters"
//! figures.
//!
//! ```text
//! cargo run --release --example follow_batch -- https://127.0.0.1:50051 CERT_DIR \
//!     LETTERS RECIPIENT [RECIPIENT…]
//! ```
//! CERT_DIR is what `brevdue senders add --out` wrote; recipients are CPR or CVR numbers
//! that the registry routes somewhere (letters go to them in turn).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use brevdue::cli::client::{connect, stream_batch};
use brevdue::ingest::pb;
use futures::StreamExt;

fn letter(recipient: &str, batch_id: &str, i: usize) -> pb::Letter {
    let id_type = if recipient.len() == 8 {
        pb::IdType::Cvr
    } else {
        pb::IdType::Cpr
    };
    let mut content = format!("%PDF-1.4\nKontoudtog {i}\n").into_bytes();
    content.resize(2048, b'x');
    pb::Letter {
        message_uuid: uuid::Uuid::new_v4().to_string(),
        recipient: Some(pb::RecipientId {
            r#type: id_type as i32,
            id: recipient.to_string(),
        }),
        title: "Kontoudtog".into(),
        main_document: Some(pb::Document {
            filename: "udtog.pdf".into(),
            media_type: "application/pdf".into(),
            content,
        }),
        priority: pb::Priority::Bulk as i32,
        sender_reference: format!("stmt-{i}"),
        batch_id: batch_id.to_string(),
        ..Default::default()
    }
}

fn terminal(state: i32) -> bool {
    [
        pb::LetterState::Delivered,
        pb::LetterState::PrintSpooled,
        pb::LetterState::Failed,
        pb::LetterState::Cancelled,
    ]
    .iter()
    .any(|s| *s as i32 == state)
}

#[tokio::main]
async fn main() -> Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: follow_batch SERVER CERT_DIR LETTERS RECIPIENT [RECIPIENT…]");
    }
    let server = args[0].clone();
    let cert_dir = PathBuf::from(&args[1]);
    let n: usize = args[2].parse().context("LETTERS is a number")?;
    let recipients = args[3..].to_vec();
    let batch_id = format!("follow-{}", uuid::Uuid::new_v4().simple());

    // Where the log stands now: the batch's events come after this cursor.
    let mut watcher = connect(&server, &cert_dir).await?;
    let mut start_cursor = String::new();
    let mut now = watcher
        .watch_events(pb::WatchRequest {
            after_cursor: String::new(),
            terminal_only: false,
            follow: false,
        })
        .await?
        .into_inner();
    while let Some(e) = now.next().await {
        start_cursor = e?.cursor;
    }

    let started = Instant::now();
    // Follow on its own connection while the batch streams in on another.
    let follower = tokio::spawn(async move {
        let mut events = watcher
            .watch_events(pb::WatchRequest {
                after_cursor: start_cursor,
                terminal_only: false,
                follow: true,
            })
            .await?
            .into_inner();
        let mut ended = HashSet::with_capacity(n);
        let mut seen = 0u64;
        let mut last_cursor = String::new();
        while ended.len() < n {
            let Some(e) = events.next().await else {
                bail!("the event stream ended early");
            };
            let e = e?;
            seen += 1;
            if terminal(e.state) {
                ended.insert(e.letter_id);
            }
            last_cursor = e.cursor;
        }
        Ok::<_, anyhow::Error>((seen, started.elapsed(), last_cursor))
    });

    let mut sender = connect(&server, &cert_dir).await?;
    let mut rejected = 0u64;
    let b = batch_id.clone();
    stream_batch(
        &mut sender,
        (0..n).map(|i| ((), letter(&recipients[i % recipients.len()], &b, i))),
        |_, r| {
            if r.outcome == pb::Outcome::Rejected as i32 {
                rejected += 1;
            }
        },
    )
    .await?;
    let intake = started.elapsed();
    if rejected > 0 {
        bail!("{rejected} letters were rejected; choose recipients the registry routes");
    }
    let (events, last_terminal, cursor) = follower.await??;
    let batch = sender
        .get_batch(pb::BatchRequest {
            batch_id: batch_id.clone(),
        })
        .await?
        .into_inner();

    let secs = last_terminal.as_secs_f64();
    println!("batch {batch_id}: {n} letters");
    println!(
        "  intake (all receipts)      {:>8.2} s  {:>8.0} letters/s",
        intake.as_secs_f64(),
        n as f64 / intake.as_secs_f64()
    );
    println!(
        "  last terminal event after  {secs:>8.2} s  {:>8.0} letters/s end to end",
        n as f64 / secs
    );
    println!(
        "  events followed            {events:>8}    {:>8.0} events/s",
        events as f64 / secs
    );
    println!("  by state: {:?}", batch.by_state);
    println!("  resume cursor: {cursor}");
    Ok(())
}
