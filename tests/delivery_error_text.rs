//! A print failure tells each sender about its own letter in a fixed text with an error id, and
//! nothing more: no spool path, no other letter's id, no other sender's file name, in
//! `GetStatus` or in the dead letters operators see. (The full error is logged once under that
//! id.)

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::delivery::*;
use common::*;

async fn print_failures_leak_nothing(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.retry_initial = Duration::from_millis(100);
    h.config.delivery.retry_max = Duration::from_millis(300);
    h.config.delivery.max_age = Duration::from_millis(1500);
    h.boot().await;
    break_print_dir(h.data.path());

    let mut authority = h.client(AUTHORITY).await;
    let mut bank = h.client(BANK).await;
    let mut a = letter(UNKNOWN, "Afgørelse", b"%PDF");
    a.main_document.as_mut().expect("main").filename = "afgoerelse-sagsnr-4711.pdf".into();
    let mut b = letter(UNKNOWN, "Kontoudtog", b"%PDF");
    b.main_document.as_mut().expect("main").filename = "kontoudtog-kunde-0815.pdf".into();
    b.print_fallback = true;
    let ra = authority
        .submit_letter(a)
        .await
        .expect("submit")
        .into_inner();
    let rb = bank.submit_letter(b).await.expect("submit").into_inner();
    assert_eq!(outcome(&ra), pb::Outcome::AcceptedPrint);
    assert_eq!(outcome(&rb), pb::Outcome::AcceptedPrint);
    let secrets = [
        ra.letter_id.as_str(),
        rb.letter_id.as_str(),
        "afgoerelse",
        "kontoudtog",
        "spool",
    ];
    let clean = |text: &str, own: &str| {
        assert!(!text.contains('/'), "no path: {text}");
        for s in secrets.iter().filter(|s| **s != own) {
            assert!(!text.contains(s), "{text:?} names {s}");
        }
    };

    // While retrying: a fixed text about the sender's own letter.
    for (c, r) in [(&mut authority, &ra), (&mut bank, &rb)] {
        let s = wait_until(
            Duration::from_secs(10),
            "a failed attempt is recorded",
            || {
                let mut c = c.clone();
                let id = r.letter_id.clone();
                async move {
                    let s = status(&mut c, &id).await;
                    (s.attempts >= 1 && !s.detail.is_empty()).then_some(s)
                }
            },
        )
        .await;
        if is_state(&s, pb::LetterState::Accepted) {
            assert!(
                s.detail
                    .starts_with("print hand-off failed; retrying (error "),
                "{}",
                s.detail
            );
        }
        clean(&s.detail, &r.letter_id);
    }
    // At the end: FAILED, and the same holds for what operators see.
    for (c, r) in [(&mut authority, &ra), (&mut bank, &rb)] {
        let s = wait_until(Duration::from_secs(20), "the letter ends FAILED", || {
            let mut c = c.clone();
            let id = r.letter_id.clone();
            async move {
                let s = status(&mut c, &id).await;
                is_state(&s, pb::LetterState::Failed).then_some(s)
            }
        })
        .await;
        assert!(
            s.detail.starts_with("delivery failed after"),
            "{}",
            s.detail
        );
        assert!(
            s.detail.contains("print hand-off failed (error "),
            "{}",
            s.detail
        );
        clean(&s.detail, &r.letter_id);
    }
    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    let dead = queue.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 2);
    for d in &dead {
        clean(&d.last_error, "");
    }
    h.stop().await;
}

on_every_backend!(print_failures_leak_nothing);
