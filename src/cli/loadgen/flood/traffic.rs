//! The flood's traffic: the bank's BULK letters streamed flat out, the authority's URGENT
//! letters at a steady cadence (each followed to its delivery), and waiting for the queue to
//! drain between phases.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::super::sample_letter;
use crate::cli::client::{self, Client};
use crate::clock::now_ms;
use crate::domain::{Priority, RecipientId};
use crate::ingest::pb;
use crate::store::Store;

/// How often the store is asked whether the queue has drained.
const DRAIN_POLL: Duration = Duration::from_millis(200);

#[derive(Serialize)]
pub(super) struct Throughput {
    pub(super) letters: usize,
    pub(super) receipts: u64,
    pub(super) accepted: u64,
    pub(super) seconds: f64,
    pub(super) accepted_per_s: f64,
}

/// One urgent letter's life, in the gateway's stamps and the sender's clock (the same clock:
/// both run in this process).
#[derive(Clone, Copy, Debug)]
pub(super) struct Urgent {
    pub(super) accepted_at_ms: i64,
    pub(super) delivered_at_ms: i64,
    pub(super) receipt_at_ms: i64,
    pub(super) submit: Duration,
}

#[derive(Default)]
pub(super) struct UrgentRun {
    pub(super) letters: Vec<Urgent>,
    pub(super) errors: Vec<String>,
}

/// Streams `n` BULK letters over `streams` streams, counting receipts into `progress`.
pub(super) async fn stream_bulk(
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
pub(super) async fn drained(
    store: &dyn Store,
    since: Instant,
    timeout: Duration,
) -> Result<Option<Duration>> {
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

pub(super) enum Until {
    Count(usize),
    Cancelled(CancellationToken),
}

/// Sends one URGENT letter per tick until told to stop, each on its own task so a slow receipt
/// never delays the next letter, and follows each to its delivery.
pub(super) async fn send_urgent(
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
