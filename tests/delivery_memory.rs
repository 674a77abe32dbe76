//! Delivery holds one letter's content at a time, whatever the round's size, and counts every
//! attempt before the work: a letter whose delivery the gateway died in too often is
//! dead-lettered instead of being tried again, so it can never crash-loop the gateway.
//!
//! The memory figure is the delivering gateway process's own peak (VmHWM, as the load
//! generator's flood reads it), never a timing.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use brevdue::store::LetterKey;
use common::delivery::*;
use common::*;

const LETTERS: usize = 256;
const LETTER_BYTES: usize = 2 << 20;

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .expect("a memory figure")
}

async fn a_round_of_large_letters_is_not_held_at_once(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    // Pension statements of a few MB: made one at a time as they are streamed.
    let mut accepted = 0;
    brevdue::cli::client::stream_batch(
        &mut c,
        (0..LETTERS).map(|i| {
            let mut content = vec![b'%'; LETTER_BYTES];
            content[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (
                (),
                letter(
                    ACTIVE_SUBSCRIBED,
                    &format!("Pensionsoversigt {i}"),
                    &content,
                ),
            )
        }),
        |_, r| {
            if outcome(&r) == pb::Outcome::AcceptedMailbox {
                accepted += 1;
            }
        },
    )
    .await
    .expect("batch streams");
    assert_eq!(accepted, LETTERS);
    drop(c);
    h.stop().await;

    // Only delivery from here on, in a gateway process of its own (so its peak is delivery's,
    // not intake's): one round of all 256 letters (the default round size).
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_brevdue"));
    serve.args(h.serve_args(0, 0)).env("BREVDUE_LOG", "warn");
    let (gateway, _url) = spawn_serve(serve);
    let pid = gateway.id();
    let started = status_kib(pid, "VmRSS");
    let counts = wait_until(
        Duration::from_secs(120),
        "every letter is delivered",
        || {
            let h = &h;
            async move {
                let c = h.store().await.state_counts().await.expect("counts");
                (c.accepted == 0).then_some(c)
            }
        },
    )
    .await;
    let peak = status_kib(pid, "VmHWM");
    assert_eq!(counts.delivered, LETTERS as u64);
    sigterm(&gateway);
    let total_kib = (LETTERS * LETTER_BYTES / 1024) as u64;
    eprintln!(
        "delivery of {LETTERS} letters of {} MiB ({} MiB in all, {backend:?}): gateway resident {} MiB once serving, peak {} MiB",
        LETTER_BYTES >> 20,
        total_kib / 1024,
        started / 1024,
        peak / 1024,
    );
    assert!(
        peak < total_kib / 4,
        "the gateway's peak was {} MiB delivering {} MiB of letters: more than a few letters at once",
        peak / 1024,
        total_kib / 1024
    );
}

on_every_backend!(a_round_of_large_letters_is_not_held_at_once);

async fn a_letter_the_gateway_keeps_dying_on_is_dead_lettered(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let poison = c
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Giftig", b"%PDF"))
        .await
        .expect("submit")
        .into_inner();
    let good = c
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "God", b"%PDF"))
        .await
        .expect("submit")
        .into_inner();
    h.stop().await;

    // What three gateways that died while handling the letter leave behind: three attempts
    // counted, none with an outcome.
    let store = h.store().await;
    let id = poison.letter_id.parse().expect("letter id");
    for _ in 0..3 {
        let counted = store.begin_attempts(&[id]).await.expect("count");
        assert_eq!(counted.len(), 1);
    }
    let counted = store.begin_attempts(&[id]).await.expect("count");
    assert_eq!(
        counted[0].interrupted, 3,
        "interrupted attempts are on record"
    );
    store.record_failure(id, "").await.expect("reset");
    for _ in 0..3 {
        store.begin_attempts(&[id]).await.expect("count");
    }

    h.config.delivery.enabled = true;
    h.boot().await;
    let c = h.client(AUTHORITY).await;
    let s = wait_until(
        Duration::from_secs(20),
        "the poison letter ends FAILED",
        || {
            let mut c = c.clone();
            let id = poison.letter_id.clone();
            async move {
                let s = status(&mut c, &id).await;
                is_state(&s, pb::LetterState::Failed).then_some(s)
            }
        },
    )
    .await;
    assert!(
        s.detail.contains("delivery was interrupted repeatedly"),
        "{}",
        s.detail
    );
    let g = wait_until(
        Duration::from_secs(20),
        "the good letter is delivered",
        || {
            let mut c = c.clone();
            let id = good.letter_id.clone();
            async move {
                let s = status(&mut c, &id).await;
                is_state(&s, pb::LetterState::Delivered).then_some(s)
            }
        },
    )
    .await;
    assert!(g.attempts >= 1, "its attempt was counted: {g:?}");
    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    let dead = queue.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery.letter_id.to_string(), poison.letter_id);
    let r = store
        .letter(AUTHORITY.parse().expect("cvr"), LetterKey::LetterId(id))
        .await
        .expect("letter")
        .expect("stored");
    // Seven left behind, and the one that found three interruptions in a row and did no work.
    assert_eq!(
        r.attempts, 8,
        "every attempt counted, no work after the third interruption"
    );
    h.stop().await;
}

on_every_backend!(a_letter_the_gateway_keeps_dying_on_is_dead_lettered);
