//! The store and the queue kept in step, above all on PostgreSQL + RabbitMQ (RabbitMQ is
//! not idempotent): a crash between a batch's store commit and its publish is repaired by the
//! sweep while the gateway keeps running, and a restart does not publish the backlog again.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use brevdue::queue::{Queue, RabbitQueue};
use common::backends::{prefix_of, queues_named, rabbitmqctl};
use common::delivery::wait_until;
use common::*;
use sqlx::Connection;

async fn pg(h: &Harness) -> sqlx::PgConnection {
    let url = &h.postgres.as_ref().expect("the production backends").url;
    sqlx::PgConnection::connect(url).await.expect("PostgreSQL")
}

async fn marks(h: &Harness) -> i64 {
    let mut c = pg(h).await;
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox_marks")
        .fetch_one(&mut c)
        .await
        .expect("count markers")
}

async fn ready_mailbox(url: &str) -> u64 {
    let q = RabbitQueue::open(url).await.expect("RabbitMQ");
    q.depth().await.expect("depth").mailbox
}

async fn send(h: &Harness, n: usize) -> Vec<pb::Receipt> {
    let mut c = h.client(AUTHORITY).await;
    let letters: Vec<pb::Letter> = (0..n)
        .map(|i| letter(ACTIVE_OTHER, &format!("Afgørelse {i}"), b"%PDF-1.4"))
        .collect();
    let receipts = stream(&mut c, letters).await;
    assert!(
        receipts
            .iter()
            .all(|r| outcome(r) == pb::Outcome::AcceptedMailbox)
    );
    receipts
}

/// What a crash between commit and publish leaves: the letters stored, no marker, no message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_is_repaired_while_running() {
    let mut h = Harness::prepare_on(Backend::Production).await;
    h.config.delivery.enabled = false;
    h.config.outbox.sweep_every = Duration::from_millis(200);
    // Past the markers' one-second write, so the sweep leaves the committer's letters alone.
    h.config.outbox.grace = Duration::from_secs(3);
    h.boot().await;
    let url = h.config.queue_url().as_url();
    send(&h, 50).await;
    wait_until(Duration::from_secs(30), "50 publish markers", || async {
        (marks(&h).await == 50).then_some(())
    })
    .await;
    assert_eq!(ready_mailbox(&url).await, 50);

    // The crash's state, while the gateway runs on: the broker lost the messages (the
    // markers still say queued, so nothing happens yet)...
    for q in queues_named(prefix_of(&url)) {
        if q.contains(".mailbox.") {
            rabbitmqctl(&["-q", "purge_queue", &q]);
        }
    }
    assert_eq!(ready_mailbox(&url).await, 0);
    // ... and there is no marker.
    sqlx::query("DELETE FROM outbox_marks")
        .execute(&mut pg(&h).await)
        .await
        .expect("drop markers");

    // The sweep finds them and queues them again, once.
    wait_until(
        Duration::from_secs(30),
        "the sweep re-queues 50 letters",
        || {
            let url = url.clone();
            async move { (ready_mailbox(&url).await == 50).then_some(()) }
        },
    )
    .await;
    assert_eq!(marks(&h).await, 50);

    h.stop().await;
    h.config.delivery.enabled = true;
    h.boot().await;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 50);
    assert_eq!(h.in_mailboxes(&[ACTIVE_OTHER]).await, 50);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_ten_thousand_queued_letters_publishes_no_duplicates() {
    const N: usize = 10_000;
    let mut h = Harness::prepare_on(Backend::Production).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    let url = h.config.queue_url().as_url();
    send(&h, N).await;
    assert_eq!(ready_mailbox(&url).await, N as u64);

    h.restart().await;
    assert_eq!(
        ready_mailbox(&url).await,
        N as u64,
        "the restart published the queued letters again"
    );

    h.stop().await;
    h.config.delivery.enabled = true;
    h.boot().await;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, N);
    assert_eq!(h.in_mailboxes(&[ACTIVE_OTHER]).await as usize, N);
    h.stop().await;
}

/// The embedded queue's file removed while the gateway was stopped: the store's publish
/// markers vouch for nothing any more, and every waiting letter is queued again at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_embedded_queue_is_rebuilt_from_the_store() {
    let mut h = Harness::prepare_on(Backend::Embedded).await;
    h.config.delivery.enabled = false;
    h.boot().await;
    send(&h, 20).await;
    h.stop().await;
    let brevdue::config::QueueUrl::Embedded(path) = h.config.queue_url() else {
        panic!("the embedded queue");
    };
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(&name);
    }
    h.config.delivery.enabled = true;
    h.boot().await;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 20);
    assert_eq!(h.in_mailboxes(&[ACTIVE_OTHER]).await, 20);
    h.stop().await;
}
