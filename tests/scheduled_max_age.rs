//! A letter's maximum age counts from when it became due, not from when it was accepted: a
//! letter scheduled 100 hours ahead that fails once just after it became due is retried, not
//! dead-lettered.
//!
//! The 100 hours are not waited for: the test writes into the store and queue what they hold
//! when such a letter has just become due (accepted 100 h ago, due a second ago), as a
//! gateway that was stopped meanwhile finds them.

mod common;

use std::time::Duration;

use brevdue::config::{QueueUrl, StoreUrl};
use brevdue::ingest::pb;
use common::delivery::*;
use common::*;
use sqlx::Connection;

const HOUR_MS: i64 = 3_600_000;

async fn shift(h: &Harness, letter_id: &str) {
    let now = brevdue::clock::now_ms();
    let letters = "UPDATE letters SET accepted_at = accepted_at - $1, not_before = $2, state = 2 \
                   WHERE letter_id = $3";
    match h.config.store_url() {
        StoreUrl::Sqlite(path) => {
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("store");
            sqlx::query(letters)
                .bind(100 * HOUR_MS)
                .bind(now - 1000)
                .bind(letter_id)
                .execute(&mut db)
                .await
                .expect("shift the letter");
        }
        StoreUrl::Postgres(url) => {
            let mut db = sqlx::PgConnection::connect(&url).await.expect("store");
            sqlx::query(letters)
                .bind(100 * HOUR_MS)
                .bind(now - 1000)
                .bind(letter_id)
                .execute(&mut db)
                .await
                .expect("shift the letter");
        }
    }
    match h.config.queue_url() {
        QueueUrl::Embedded(path) => {
            let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("queue");
            sqlx::query(
                "UPDATE deliveries SET enqueued_at = enqueued_at - $1, not_before = $2 \
                 WHERE letter_id = $3",
            )
            .bind(100 * HOUR_MS)
            .bind(now - 1000)
            .bind(letter_id)
            .execute(&mut db)
            .await
            .expect("shift the delivery");
        }
        QueueUrl::Rabbit(url) => {
            // Messages cannot be edited: drop them, and the gateway re-queues the letter from
            // the store at start, with the store's times.
            let q = brevdue::queue::RabbitQueue::open(&url)
                .await
                .expect("queue");
            q.delete_topology().await.expect("delete queues");
        }
    }
}

async fn a_scheduled_letter_gets_its_retries_after_it_became_due(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut c = h.client(AUTHORITY).await;
    let r = c
        .submit_letter(letter(UNKNOWN, "Planlagt", b"%PDF"))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedPrint);
    h.stop().await;
    shift(&h, &r.letter_id).await;

    break_print_dir(h.data.path());
    h.config.delivery.enabled = true;
    h.config.delivery.retry_initial = Duration::from_millis(200);
    h.config.delivery.retry_max = Duration::from_millis(400);
    h.boot().await;
    let c = h.client(AUTHORITY).await;
    let s = wait_until(
        Duration::from_secs(20),
        "the first attempt after it became due fails",
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
    assert!(
        !is_state(&s, pb::LetterState::Failed),
        "retried, not dead-lettered, 1 s after it became due: {s:?}"
    );
    assert!(s.detail.contains("retrying"), "{}", s.detail);

    mend_print_dir(h.data.path());
    wait_until(
        Duration::from_secs(20),
        "the letter is spooled on a retry",
        || {
            let mut c = c.clone();
            let id = r.letter_id.clone();
            async move {
                is_state(&status(&mut c, &id).await, pb::LetterState::PrintSpooled).then_some(())
            }
        },
    )
    .await;
    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    assert!(queue.dead_letters().await.expect("dead").is_empty());
    h.stop().await;
}

on_every_backend!(a_scheduled_letter_gets_its_retries_after_it_became_due);
