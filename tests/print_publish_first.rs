//! A letter is PRINT_SPOOLED (its legal clock started) only once its files are in a published
//! print batch. While publishing fails the letters stay waiting, nothing staged is left behind,
//! and once the print volume is back they are published and recorded, in this process, without
//! a restart.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::delivery::*;
use common::*;

async fn print_state_follows_publishing(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.retry_initial = Duration::from_millis(100);
    h.config.delivery.retry_max = Duration::from_millis(300);
    h.boot().await;
    break_print_dir(h.data.path());

    let mut c = h.client(AUTHORITY).await;
    let letters = (0..5)
        .map(|i| letter(UNKNOWN, &format!("Til print {i}"), b"%PDF"))
        .collect();
    let receipts = stream(&mut c, letters).await;
    for r in &receipts {
        assert_eq!(outcome(r), pb::Outcome::AcceptedPrint);
    }
    for r in &receipts {
        let s = wait_until(
            Duration::from_secs(20),
            "a failed print hand-off is recorded",
            || {
                let mut c = c.clone();
                let id = r.letter_id.clone();
                async move {
                    let s = status(&mut c, &id).await;
                    (s.attempts >= 2).then_some(s)
                }
            },
        )
        .await;
        assert!(
            is_state(&s, pb::LetterState::Accepted),
            "not PRINT_SPOOLED while its batch is unpublished: {s:?}"
        );
        assert_eq!(s.delivered_at_unix_ms, 0, "the legal clock has not started");
        assert!(
            s.detail.starts_with("print hand-off failed; retrying"),
            "{}",
            s.detail
        );
    }
    // Retries keep staging new batches; each one that fails is removed at once, so between
    // them nothing is left (a batch left behind would stay until a restart).
    wait_until(
        Duration::from_secs(5),
        "a batch that could not be published leaves no letter content staged",
        || async { staged_batches(h.data.path()).is_empty().then_some(()) },
    )
    .await;

    mend_print_dir(h.data.path());
    for r in &receipts {
        let s = wait_until(
            Duration::from_secs(20),
            "the letter is spooled once publishing works",
            || {
                let mut c = c.clone();
                let id = r.letter_id.clone();
                async move {
                    let s = status(&mut c, &id).await;
                    is_state(&s, pb::LetterState::PrintSpooled).then_some(s)
                }
            },
        )
        .await;
        assert!(s.delivered_at_unix_ms > 0);
    }
    let spooled = spooled_letters(h.data.path());
    for r in &receipts {
        assert_eq!(
            spooled.get(&r.letter_id),
            Some(&1),
            "in a published batch, once"
        );
    }
    h.stop().await;
}

on_every_backend!(print_state_follows_publishing);
