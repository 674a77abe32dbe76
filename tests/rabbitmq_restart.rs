//! RabbitMQ restarted in the middle of a batch: no accepted letter is lost. Letters whose queue
//! entry could not be confirmed get UNAVAILABLE (never an accepted receipt), the sender resends
//! them, and the gateway reconnects by itself.

mod common;

use std::process::Command;
use std::time::Duration;

use brevdue::ingest::pb;
use common::*;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker's application again however the test ends.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["start_app"]).status();
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "await_startup", "--timeout", "60"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_batch_loses_nothing() {
    let mut h = Harness::start_on(Backend::Production).await;
    let _back = BrokerBack;
    let letters: Vec<pb::Letter> = (0..3000)
        .map(|i| {
            letter(
                if i % 2 == 0 { ACTIVE_OTHER } else { UNKNOWN },
                "Genstart",
                &vec![b'x'; 4096],
            )
        })
        .collect();
    let mut c = h.client(AUTHORITY).await;
    let batch = letters.clone();
    // The client resends what the broken stream left unanswered (it is safe: idempotent).
    let sender = tokio::spawn(async move { stream(&mut c, batch).await });
    // The broker goes down once part of the batch is in: a tenth stored, the rest not sent.
    h.wait_for_stored(letters.len() as u64 / 10).await;
    assert!(
        !sender.is_finished(),
        "the broker goes down in the middle of the batch"
    );
    rabbitmqctl(&["stop_app"]);
    // The outage itself: two seconds without a broker, long enough for every publish and
    // every consumer to notice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["-q", "await_startup", "--timeout", "60"]);
    let receipts = sender.await.expect("sender task");
    assert_eq!(receipts.len(), letters.len());
    assert!(
        receipts.iter().all(|r| outcome(r) != pb::Outcome::Rejected),
        "every letter accepted"
    );

    let counts = h.wait_for_delivery().await;
    assert_eq!(
        counts.delivered + counts.print_spooled,
        letters.len() as u64
    );
    let spooled = spooled_letters(h.data.path());
    assert!(
        spooled.values().all(|&n| n == 1),
        "a letter was printed twice"
    );
    h.stop().await;
}
