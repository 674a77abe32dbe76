//! A national gateway's senders on this machine's RabbitMQ as it runs (1,024 open files, which a
//! few hundred quorum queues exhaust): 2,000 registered senders, 200 of them sending at once.
//! The broker's queues stay within the lane bound, the broker still takes connections, and
//! every letter is delivered exactly once.

mod common;

use std::time::Duration;

use brevdue::backend::BrokerOptions;
use brevdue::domain::{Cvr, SenderInfo, SenderKind, complete_cvr};
use brevdue::ingest::pb;
use brevdue::queue::RabbitQueue;
use common::backends::queues_named;
use common::*;

const REGISTERED: usize = 2_000;
const SENDING: usize = 200;
const LETTERS_EACH: usize = 5;

/// Fixed queues of a prefix: urgent, returns and two shared lanes per route, seven delay
/// tiers, the dead queue and the lane record.
const FIXED_QUEUES: usize = 8 + 7 + 1 + 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_senders_two_hundred_at_once() {
    let mut h = Harness::prepare_on(Backend::Production).await;
    let max_lanes = BrokerOptions::default().max_lanes;
    let senders: Vec<Cvr> = (4_000_000..)
        .filter_map(complete_cvr)
        .take(REGISTERED)
        .collect();
    // The ones that send get certificates; the rest are registered only, as most of a national
    // gateway's senders are on any one day.
    for cvr in &senders[..SENDING] {
        brevdue::cli::admin::senders_add(
            &h.config,
            *cvr,
            &format!("Afsender {cvr}"),
            SenderKind::Public,
            &h.cert_dir(&cvr.to_string()),
        )
        .await
        .expect("senders add");
    }
    {
        let store = h.store().await;
        for (i, cvr) in senders[SENDING..].iter().enumerate() {
            let mut fingerprint = [0u8; 32];
            fingerprint[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            let info = SenderInfo {
                cvr: *cvr,
                name: format!("Afsender {cvr}"),
                kind: SenderKind::Public,
                suspended: false,
                limits: Default::default(),
            };
            store
                .add_sender(&info, fingerprint)
                .await
                .expect("register");
        }
    }
    h.boot().await;
    let url = h.config.queue_url().as_url();
    let prefix = common::backends::prefix_of(&url).to_string();
    assert!(
        !queues_named(&prefix).iter().any(|q| is_lane(q)),
        "registered senders cost the broker no queue before they send: {:?}",
        queues_named(&prefix)
    );

    let mut tasks = Vec::new();
    for (n, cvr) in senders[..SENDING].iter().enumerate() {
        let server = h.server_url();
        let dir = h.cert_dir(&cvr.to_string());
        tasks.push(tokio::spawn(async move {
            let mut client = connect(&server, &dir).await;
            let to = if n % 2 == 0 {
                ACTIVE_SUBSCRIBED
            } else {
                ACTIVE_OTHER
            };
            let letters: Vec<pb::Letter> = (0..LETTERS_EACH)
                .map(|i| letter(to, &format!("Brev {i}"), b"%PDF-1.4 brev"))
                .collect();
            stream(&mut client, letters).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        let receipts = t.await.expect("sender task");
        assert_eq!(receipts.len(), LETTERS_EACH);
        for r in &receipts {
            assert_eq!(outcome(r), pb::Outcome::AcceptedMailbox, "{r:?}");
        }
        accepted += receipts.len();
    }
    assert_eq!(accepted, SENDING * LETTERS_EACH);

    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, SENDING * LETTERS_EACH);
    // Exactly once: the mailboxes hold each letter once, no more.
    assert_eq!(
        h.in_mailboxes(&[ACTIVE_SUBSCRIBED, ACTIVE_OTHER]).await as usize,
        SENDING * LETTERS_EACH
    );

    // The broker is healthy: its queues for this gateway stayed within the bound, and it
    // takes a new connection (which reads the lane record through a connection of its own).
    let queues = queues_named(&prefix);
    let lanes = queues.iter().filter(|q| is_lane(q)).count();
    assert!(
        queues.len() <= FIXED_QUEUES + 1 + lanes,
        "nothing but the fixed queues, the record's lock and lanes: {queues:?}"
    );
    assert!(
        lanes <= max_lanes && lanes > 0,
        "{lanes} lane queues for {SENDING} senders sending at once (bound {max_lanes}): {queues:?}"
    );
    let probe = tokio::time::timeout(Duration::from_secs(30), RabbitQueue::open(&url))
        .await
        .expect("RabbitMQ answers a new connection within 30 s")
        .expect("RabbitMQ takes a new connection");
    let owners = probe.lane_owners().await.expect("lane record");
    assert_eq!(owners.len(), lanes, "the record names every lane queue");
    drop(probe);
    h.stop().await;
}

/// A lane queue's name ends in `.lane<n>`.
fn is_lane(queue: &str) -> bool {
    queue
        .rsplit_once(".lane")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
