//! A delivery that keeps failing is retried with back-off, ends FAILED when its maximum age is
//! reached, and waits among the dead letters, where an operator can retry it.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::*;

async fn failing_print_delivery_ends_failed_and_can_be_retried(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.retry_initial = Duration::from_millis(100);
    h.config.delivery.retry_max = Duration::from_millis(400);
    h.config.delivery.max_age = Duration::from_millis(1500);
    h.boot().await;

    // The print house's spool directory disappears (a full or unmounted volume).
    let spool = h.data.path().join("spool").join("print");
    std::fs::remove_dir_all(&spool).expect("remove spool");
    std::fs::write(&spool, b"not a directory").expect("block spool");

    let mut c = h.client(AUTHORITY).await;
    let r = c
        .submit_letter(letter(UNKNOWN, "Til print", b"%PDF"))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedPrint);

    let mut status = None;
    for _ in 0..200 {
        let s = c
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::LetterId(r.letter_id.clone())),
            })
            .await
            .expect("status")
            .into_inner();
        if s.state == pb::LetterState::Failed as i32 {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = status.expect("the letter ended FAILED");
    assert!(s.attempts >= 2, "retried before giving up: {s:?}");
    assert!(s.detail.contains("delivery failed after"), "{}", s.detail);
    assert_eq!(s.delivered_at_unix_ms, 0);

    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    let dead = queue.dead_letters().await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].delivery.letter_id.to_string(), r.letter_id);

    // The volume is back; the operator retries the dead letter.
    std::fs::remove_file(&spool).expect("unblock");
    std::fs::create_dir_all(&spool).expect("spool back");
    brevdue::cli::admin::dead_letters(
        &h.config,
        brevdue::cli::admin::DeadAction::Retry(r.letter_id.clone()),
    )
    .await
    .expect("retry");
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, 1);
    assert_eq!(counts.failed, 0);
    assert!(queue.dead_letters().await.expect("dead").is_empty());
    assert_eq!(spooled_letters(h.data.path()).get(&r.letter_id), Some(&1));
    h.stop().await;
}

on_every_backend!(failing_print_delivery_ends_failed_and_can_be_retried);
