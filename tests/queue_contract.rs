//! The queue contract: the same test functions run against every backend.
//!
//! - `embedded::*` on a fresh temporary data directory.
//! - `rabbitmq::*` on the RabbitMQ at `BREVDUE_TEST_AMQP_URL` (default
//!   `amqp://guest:guest@127.0.0.1:5672/%2f`), each test with a queue prefix of its own whose
//!   queues are deleted when the test ends, failed or not. No RabbitMQ is a failure that says
//!   how to start it, never a skip.
//!
//! What RabbitMQ guarantees differs from the embedded queue in three places, and the tests say
//! where: urgency and the share between senders order what the gateway's consumers have
//! received (the consumers of a fresh handle first wait for what their queues held, so tests
//! that enqueue before the first lease see everything; the ordering test, whose consumers run
//! before letters arrive, waits until the broker has pushed everything), `depth` counts
//! messages ready in the work queues (not those out with consumers), and a message read back by
//! a listing is visible again only once the broker has processed its return (counts are polled
//! briefly).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brevdue::backend::BrokerOptions;
use brevdue::clock::now_ms;
use brevdue::domain::{Cvr, LetterId, Priority, Route};
use brevdue::queue::{self, Delivery, Leased, Queue, QueueDepth, RabbitQueue, SenderShare};
use common::backends::{
    DeleteQueues, START_RABBITMQ, amqp_base, prefix_of, queues_named, rabbitmqctl,
};
use tempfile::TempDir;

mod common;

const LEASE: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Embedded,
    RabbitMq,
}

/// Where one test's queue lives; opening it again is what a restarted gateway does.
struct Fixture {
    backend: Backend,
    url: String,
    // Holds the embedded queue file for the fixture's life.
    _dir: TempDir,
    _cleanup: Option<DeleteQueues>,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Embedded => Fixture {
                backend,
                url: format!("embedded://{}", dir.path().join("queue.db").display()),
                _dir: dir,
                _cleanup: None,
            },
            Backend::RabbitMq => {
                let base = amqp_base();
                let id = LetterId::new().to_string();
                let url = format!("{base}?prefix=brevdue-test-{}.", &id[id.len() - 12..]);
                let cleanup = DeleteQueues(url.clone());
                Fixture {
                    backend,
                    url,
                    _dir: dir,
                    _cleanup: Some(cleanup),
                }
            }
        }
    }

    async fn open(&self) -> Arc<dyn Queue> {
        let url = self.url.parse().expect("a queue URL");
        match queue::open(&url, true).await {
            Ok(q) => q,
            Err(e) if self.backend == Backend::RabbitMq => panic!(
                "RabbitMQ is needed for this test and is not reachable at {}: {e}; {START_RABBITMQ}",
                amqp_base().split('@').next_back().unwrap_or_default()
            ),
            Err(e) => panic!("opening the embedded queue: {e}"),
        }
    }
}

/// Deliveries in these tests come from one sender unless a test says otherwise.
fn sender_a() -> Cvr {
    Cvr::from_value(29_403_473).expect("a valid CVR")
}

/// A second sender, for the tests of fairness between senders.
fn sender_b() -> Cvr {
    Cvr::from_value(12_345_674).expect("a valid CVR")
}

fn delivery(route: Route, priority: Priority, not_before_ms: i64) -> Delivery {
    Delivery {
        not_before_ms,
        ..from(sender_a(), route, priority)
    }
}

/// A delivery due at once from `sender`.
fn from(sender: Cvr, route: Route, priority: Priority) -> Delivery {
    Delivery {
        letter_id: LetterId::new(),
        sender,
        route,
        priority,
        not_before_ms: 0,
        enqueued_at_ms: now_ms(),
    }
}

/// `n` deliveries from one sender, enqueued in a few batches (as a flooding sender's would be).
async fn flood(q: &dyn Queue, sender: Cvr, priority: Priority, n: usize) -> Vec<Delivery> {
    let items: Vec<Delivery> = (0..n)
        .map(|_| from(sender, Route::Mailbox, priority))
        .collect();
    for chunk in items.chunks(500) {
        q.enqueue(chunk).await.expect("enqueue");
    }
    items
}

fn count_from(l: &[Leased], sender: Cvr) -> usize {
    l.iter().filter(|l| l.delivery.sender == sender).count()
}

/// Leases until `want` deliveries came or `within` passed.
async fn lease_until(q: &dyn Queue, route: Route, want: usize, within: Duration) -> Vec<Leased> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let more = q
            .lease(route, want - got.len(), LEASE)
            .await
            .expect("lease");
        if more.is_empty() {
            q.wait_for_work(Duration::from_millis(50)).await;
        }
        got.extend(more);
    }
    got
}

/// Nothing is handed out for a while.
async fn assert_nothing_due(q: &dyn Queue, route: Route) {
    let got = lease_until(q, route, 1, Duration::from_millis(300)).await;
    assert!(got.is_empty(), "nothing should be due, got {got:?}");
}

/// Polls until `f` gives `want` (RabbitMQ settles returns and counts asynchronously).
async fn eventually<T, F, Fut>(want: T, mut f: F) -> T
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = f().await;
        if got == want || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn depth(q: &dyn Queue) -> QueueDepth {
    q.depth().await.expect("depth")
}

fn ids(l: &[Leased]) -> Vec<LetterId> {
    l.iter().map(|l| l.delivery.letter_id).collect()
}

// ---- the contract -------------------------------------------------------------------------

async fn hands_out_what_was_enqueued_most_urgent_first(f: Fixture) {
    let q = f.open().await;
    // RabbitMQ: workers consume before letters arrive, as in a running gateway.
    assert!(q.lease(Route::Mailbox, 10, LEASE).await.unwrap().is_empty());
    let bulk = delivery(Route::Mailbox, Priority::Bulk, 0);
    let normal = delivery(Route::Mailbox, Priority::Normal, 0);
    let urgent = delivery(Route::Mailbox, Priority::Urgent, 0);
    let print = delivery(Route::Print, Priority::Normal, 0);
    q.enqueue(&[bulk, normal, print, urgent]).await.unwrap();
    if f.backend == Backend::RabbitMq {
        // Guaranteed: urgent first among what the consumers hold. Wait until the broker has
        // pushed all three (none ready any more) and the consumer has buffered them.
        let d = eventually(0, || async { depth(&*q).await.mailbox }).await;
        assert_eq!(d, 0, "the broker should have pushed the mailbox messages");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = q.lease(Route::Mailbox, 10, LEASE).await.unwrap();
    assert_eq!(
        ids(&got),
        vec![urgent.letter_id, normal.letter_id, bulk.letter_id]
    );
    assert_eq!(got[0].delivery, urgent);
    assert_eq!(got[0].attempts, 0);
    let printed = lease_until(&*q, Route::Print, 1, Duration::from_secs(5)).await;
    assert_eq!(ids(&printed), vec![print.letter_id]);
    // Leased is not handed out twice.
    assert_nothing_due(&*q, Route::Mailbox).await;
    q.ack(&ids(&got)).await.unwrap();
    q.ack(&ids(&printed)).await.unwrap();
}

async fn ack_removes_deliveries_for_good(f: Fixture) {
    let q = f.open().await;
    let items: Vec<Delivery> = (0..5)
        .map(|_| delivery(Route::Mailbox, Priority::Normal, 0))
        .collect();
    q.enqueue(&items).await.unwrap();
    let got = lease_until(&*q, Route::Mailbox, 5, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 5);
    let mut want: Vec<LetterId> = items.iter().map(|d| d.letter_id).collect();
    let mut have = ids(&got);
    want.sort();
    have.sort();
    assert_eq!(have, want);
    q.ack(&have).await.unwrap();
    assert_eq!(depth(&*q).await, QueueDepth::default());
    drop(q);
    // Acknowledged deliveries do not come back after a restart either.
    let q = f.open().await;
    assert_nothing_due(&*q, Route::Mailbox).await;
    assert_eq!(depth(&*q).await, QueueDepth::default());
}

async fn depth_counts_per_route(f: Fixture) {
    let q = f.open().await;
    assert_eq!(depth(&*q).await, QueueDepth::default());
    let mut items = Vec::new();
    for p in [Priority::Urgent, Priority::Normal, Priority::Bulk] {
        items.push(delivery(Route::Mailbox, p, 0));
    }
    items.push(delivery(Route::Print, Priority::Normal, 0));
    items.push(delivery(Route::Print, Priority::Urgent, 0));
    q.enqueue(&items).await.unwrap();
    assert_eq!(
        depth(&*q).await,
        QueueDepth {
            mailbox: 3,
            print: 2,
            dead: 0
        }
    );
}

async fn retry_makes_a_delivery_due_later_and_counts_attempts(f: Fixture) {
    let q = f.open().await;
    let d = delivery(Route::Print, Priority::Normal, 0);
    q.enqueue(&[d]).await.unwrap();
    let got = lease_until(&*q, Route::Print, 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempts, 0);
    let due = now_ms() + 1_200;
    q.retry(d.letter_id, due, "print spool full").await.unwrap();
    assert_nothing_due(&*q, Route::Print).await;
    let again = lease_until(&*q, Route::Print, 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&again), vec![d.letter_id]);
    assert!(now_ms() >= due, "handed out before it was due");
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].delivery.not_before_ms, due);
    assert_eq!(again[0].delivery.enqueued_at_ms, d.enqueued_at_ms);
    // Due at once: back straight away, one more attempt counted.
    q.retry(d.letter_id, now_ms(), "print spool full")
        .await
        .unwrap();
    let third = lease_until(&*q, Route::Print, 1, Duration::from_secs(5)).await;
    assert_eq!(ids(&third), vec![d.letter_id]);
    assert_eq!(third[0].attempts, 2);
    q.ack(&[d.letter_id]).await.unwrap();
    assert_nothing_due(&*q, Route::Print).await;
}

async fn scheduled_deliveries_wait_until_due(f: Fixture) {
    let q = f.open().await;
    let due = now_ms() + 1_000;
    let later = delivery(Route::Mailbox, Priority::Urgent, due);
    let now = delivery(Route::Mailbox, Priority::Bulk, 0);
    q.enqueue(&[later, now]).await.unwrap();
    let first = lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(5)).await;
    assert_eq!(ids(&first), vec![now.letter_id], "only the due one");
    let second = lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&second), vec![later.letter_id]);
    assert!(now_ms() >= due, "handed out before it was due");
    q.ack(&[now.letter_id, later.letter_id]).await.unwrap();
}

async fn dead_letters_are_listed_revived_and_purged(f: Fixture) {
    let q = f.open().await;
    let a = delivery(Route::Mailbox, Priority::Normal, 0);
    let b = delivery(Route::Print, Priority::Bulk, 0);
    q.enqueue(&[a, b]).await.unwrap();
    assert_eq!(
        ids(&lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(5)).await),
        vec![a.letter_id]
    );
    assert_eq!(
        ids(&lease_until(&*q, Route::Print, 1, Duration::from_secs(5)).await),
        vec![b.letter_id]
    );
    q.dead_letter(a.letter_id, "mailbox refused the letter")
        .await
        .unwrap();
    q.dead_letter(b.letter_id, "printer on fire").await.unwrap();
    assert_eq!(depth(&*q).await.dead, 2);

    let dead = q.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let da = dead.iter().find(|d| d.delivery.letter_id == a.letter_id);
    let da = da.expect("a is listed");
    assert_eq!(da.last_error, "mailbox refused the letter");
    assert_eq!(da.attempts, 1);
    assert_eq!(da.delivery.route, Route::Mailbox);
    assert_eq!(da.delivery.enqueued_at_ms, a.enqueued_at_ms);
    assert!(da.failed_at_ms >= a.enqueued_at_ms);
    // Listing loses nothing.
    let listed = eventually(2, || async { q.dead_letters().await.unwrap().len() }).await;
    assert_eq!(listed, 2);
    assert_eq!(eventually(2, || async { depth(&*q).await.dead }).await, 2);

    assert!(q.revive(a.letter_id).await.unwrap());
    let back = lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(5)).await;
    assert_eq!(ids(&back), vec![a.letter_id]);
    assert_eq!(back[0].attempts, 0, "a fresh round of attempts");
    q.ack(&[a.letter_id]).await.unwrap();
    let left = eventually(vec![b.letter_id], || async {
        let d = q.dead_letters().await.unwrap();
        d.iter().map(|d| d.delivery.letter_id).collect::<Vec<_>>()
    })
    .await;
    assert_eq!(left, vec![b.letter_id]);

    assert!(q.purge(b.letter_id).await.unwrap());
    assert!(!q.purge(b.letter_id).await.unwrap());
    assert!(!q.revive(b.letter_id).await.unwrap());
    assert!(q.dead_letters().await.unwrap().is_empty());
    assert_eq!(depth(&*q).await, QueueDepth::default());
    assert_nothing_due(&*q, Route::Print).await;
}

async fn a_lease_never_settled_is_handed_out_again_after_a_crash(f: Fixture) {
    let q = f.open().await;
    let d = delivery(Route::Mailbox, Priority::Normal, 0);
    let other = delivery(Route::Mailbox, Priority::Normal, 0);
    q.enqueue(&[d]).await.unwrap();
    let got = lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(5)).await;
    assert_eq!(ids(&got), vec![d.letter_id]);
    // The gateway dies holding the lease: its queue handle (and connection) is gone.
    drop(q);
    let q = f.open().await;
    q.enqueue(&[other]).await.unwrap();
    let mut again = ids(&lease_until(&*q, Route::Mailbox, 2, Duration::from_secs(15)).await);
    again.sort();
    let mut want = vec![d.letter_id, other.letter_id];
    want.sort();
    assert_eq!(again, want);
    q.ack(&want).await.unwrap();
    assert_eq!(depth(&*q).await, QueueDepth::default());
}

async fn a_second_sender_is_not_queued_behind_a_flood(f: Fixture) {
    let q = f.open().await;
    flood(&*q, sender_a(), Priority::Bulk, 2_000).await;
    let late = flood(&*q, sender_b(), Priority::Bulk, 3).await;
    // Workers take batches from the front; the flood has 1,936 letters left after two of them.
    let mut front = Vec::new();
    for _ in 0..2 {
        front.extend(lease_until(&*q, Route::Mailbox, 64, Duration::from_secs(10)).await);
    }
    assert_eq!(front.len(), 128);
    let handed_out = ids(&front);
    for d in &late {
        assert!(
            handed_out.contains(&d.letter_id),
            "the second sender's letter waits behind the flood: {} of {} in the first two batches",
            count_from(&front, sender_b()),
            late.len()
        );
    }
    assert_eq!(count_from(&front, sender_a()), 125);
}

async fn senders_share_by_weight(f: Fixture) {
    let q = f.open().await;
    q.set_senders(&[
        SenderShare {
            sender: sender_a(),
            weight: 3,
        },
        SenderShare {
            sender: sender_b(),
            weight: 1,
        },
    ])
    .await
    .expect("set senders");
    flood(&*q, sender_a(), Priority::Normal, 1_000).await;
    flood(&*q, sender_b(), Priority::Normal, 1_000).await;
    // Batches the size a worker takes, none acknowledged yet.
    let mut front = Vec::new();
    for _ in 0..2 {
        front.extend(lease_until(&*q, Route::Mailbox, 200, Duration::from_secs(10)).await);
    }
    assert_eq!(front.len(), 400);
    let a = count_from(&front, sender_a());
    // Unweighted would be 50 %, and first come first served 100 %.
    assert!(
        (260..=340).contains(&a),
        "sender A (weight 3) got {a} of the first 400, sender B (weight 1) {}",
        400 - a
    );
}

async fn urgent_goes_first_past_a_flood_of_bulk(f: Fixture) {
    let q = f.open().await;
    flood(&*q, sender_a(), Priority::Bulk, 1_000).await;
    let urgent = from(sender_b(), Route::Mailbox, Priority::Urgent);
    q.enqueue(&[urgent]).await.unwrap();
    let first = lease_until(&*q, Route::Mailbox, 64, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 64);
    assert_eq!(
        first[0].delivery, urgent,
        "the urgent letter should lead the first batch"
    );
    assert_eq!(count_from(&first, sender_a()), 63);
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::new(super::Backend::Embedded).await).await
                }
            )*
        }
        mod rabbitmq {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Fixture::new(super::Backend::RabbitMq).await).await
                }
            )*
        }
    };
}

contract!(
    hands_out_what_was_enqueued_most_urgent_first,
    ack_removes_deliveries_for_good,
    depth_counts_per_route,
    retry_makes_a_delivery_due_later_and_counts_attempts,
    scheduled_deliveries_wait_until_due,
    dead_letters_are_listed_revived_and_purged,
    a_lease_never_settled_is_handed_out_again_after_a_crash,
    a_second_sender_is_not_queued_behind_a_flood,
    senders_share_by_weight,
    urgent_goes_first_past_a_flood_of_bulk,
);

// ---- RabbitMQ only ------------------------------------------------------------------------

/// The broker drops the gateway's connection (as in a broker restart): the next calls
/// reconnect, declare the topology again and restart the consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_reconnects_after_the_broker_drops_the_connection() {
    let f = Fixture::new(Backend::RabbitMq).await;
    let q = f.open().await;
    let first = delivery(Route::Mailbox, Priority::Normal, 0);
    q.enqueue(&[first]).await.unwrap();
    assert_eq!(
        ids(&lease_until(&*q, Route::Mailbox, 1, Duration::from_secs(5)).await),
        vec![first.letter_id]
    );
    let prefix = prefix_of(&f.url).to_string();
    close_connections_named(&format!("brevdue {prefix}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The lease died with the connection: acknowledging it is refused, the broker has it back.
    assert!(q.ack(&[first.letter_id]).await.is_err());
    let second = delivery(Route::Mailbox, Priority::Normal, 0);
    q.enqueue(&[second])
        .await
        .expect("enqueue after reconnecting");
    let mut got = ids(&lease_until(&*q, Route::Mailbox, 2, Duration::from_secs(10)).await);
    got.sort();
    let mut want = vec![first.letter_id, second.letter_id];
    want.sort();
    assert_eq!(got, want);
    q.ack(&want).await.unwrap();
    assert_eq!(depth(&*q).await, QueueDepth::default());
}

/// A handle that never heard of a sender (another gateway, an admin command, a test's clean-up)
/// still finds its lanes: it consumes them, counts them and deletes them. A registered sender
/// that has not sent has no lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_lanes_are_found_by_a_handle_that_did_not_make_them() {
    let f = Fixture::new(Backend::RabbitMq).await;
    let prefix = prefix_of(&f.url).to_string();
    let letter = from(sender_b(), Route::Print, Priority::Normal);
    {
        let q = f.open().await;
        q.set_senders(&[SenderShare {
            sender: sender_a(),
            weight: 2,
        }])
        .await
        .unwrap();
        q.enqueue(&[letter]).await.unwrap();
    }
    assert_eq!(
        queues_named(&prefix).len(),
        8 + 1 + 7 + 1 + 1,
        "urgent, returns and shared queues, the one lane used, delay tiers, dead queue, lane record"
    );
    let q = f.open().await;
    assert_eq!(depth(&*q).await.print, 1);
    let got = lease_until(&*q, Route::Print, 1, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), vec![letter.letter_id]);
    q.ack(&[letter.letter_id]).await.unwrap();
    drop(q);
    // What the tests' clean-up does: a fresh handle deletes the prefix's queues.
    let fresh = RabbitQueue::open(&f.url).await.unwrap();
    fresh.delete_topology().await.unwrap();
    drop(fresh);
    let left = eventually(Vec::<String>::new(), || async { queues_named(&prefix) }).await;
    assert!(left.is_empty(), "queues left behind: {left:?}");
}

/// Closes the broker side of the connections with this client-provided name.
fn close_connections_named(name: &str) {
    let list = rabbitmqctl(&["-q", "list_connections", "pid", "client_properties"]);
    let pids: Vec<&str> = list
        .lines()
        .filter(|l| l.contains(&format!("\"{name}\"")))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!pids.is_empty(), "no connection named {name:?} in:\n{list}");
    for pid in pids {
        rabbitmqctl(&[
            "-q",
            "close_connection",
            pid,
            "test: simulated broker restart",
        ]);
    }
}

// ---- throughput (run by hand, never timed) ---------------------------------------------------

async fn enqueue_throughput(backend: Backend) {
    let f = Fixture::new(backend).await;
    let q = f.open().await;
    let items: Vec<Delivery> = (0..20_000)
        .map(|_| delivery(Route::Mailbox, Priority::Normal, 0))
        .collect();
    let start = Instant::now();
    for chunk in items.chunks(1024) {
        q.enqueue(chunk).await.unwrap();
    }
    let took = start.elapsed();
    eprintln!(
        "{backend:?}: enqueued {} deliveries in batches of 1024 in {took:.2?}: {:.0} items/s",
        items.len(),
        items.len() as f64 / took.as_secs_f64()
    );
    assert_eq!(depth(&*q).await.mailbox, 20_000);
}

/// `cargo test --release --test queue_contract -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn throughput_embedded_enqueue() {
    enqueue_throughput(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn throughput_rabbitmq_enqueue() {
    enqueue_throughput(Backend::RabbitMq).await;
}

/// A handle whose lanes are bounded and expire quickly.
async fn open_bounded(f: &Fixture, max_lanes: usize) -> RabbitQueue {
    let options = BrokerOptions {
        max_lanes,
        lane_idle: Duration::from_millis(200),
        ..BrokerOptions::default()
    };
    RabbitQueue::open_with(&f.url, options)
        .await
        .unwrap_or_else(|e| panic!("RabbitMQ is needed for this test: {e}; {START_RABBITMQ}"))
}

/// Lanes are granted on first use up to the bound; senders beyond it share a lane, and every
/// letter is handed out either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_lanes_are_bounded_and_the_rest_share() {
    let f = Fixture::new(Backend::RabbitMq).await;
    let q = open_bounded(&f, 2).await;
    let senders: Vec<Cvr> = (3_000_000..)
        .filter_map(brevdue::domain::complete_cvr)
        .take(5)
        .collect();
    let letters: Vec<Delivery> = senders
        .iter()
        .map(|s| from(*s, Route::Mailbox, Priority::Bulk))
        .collect();
    q.enqueue(&letters).await.unwrap();
    let lanes = q.lane_names().await.unwrap();
    assert_eq!(lanes.len(), 2, "{lanes:?}");
    let got = lease_until(&q, Route::Mailbox, letters.len(), Duration::from_secs(10)).await;
    let mut want = ids(&letters_as_leased(&letters));
    let mut have = ids(&got);
    want.sort();
    have.sort();
    assert_eq!(have, want, "every letter is handed out, lane or not");
    q.ack(&have).await.unwrap();
}

fn letters_as_leased(d: &[Delivery]) -> Vec<Leased> {
    d.iter()
        .map(|d| Leased {
            delivery: *d,
            attempts: 0,
        })
        .collect()
}

async fn owners(q: &RabbitQueue) -> Vec<(String, Option<Cvr>)> {
    q.lane_owners().await.expect("lane record")
}

/// Leases exactly these letters (in any order) and acknowledges them.
async fn deliver(q: &RabbitQueue, d: Vec<Delivery>) {
    let got = lease_until(q, Route::Mailbox, d.len(), Duration::from_secs(10)).await;
    let mut have = ids(&got);
    let mut want: Vec<LetterId> = d.iter().map(|d| d.letter_id).collect();
    have.sort();
    want.sort();
    assert_eq!(have, want, "every letter is handed out, once");
    q.ack(&have).await.expect("ack");
}

/// An idle, empty lane is given up by the upkeep; when its sender sends again it gets a lane
/// again and nothing is lost. A sender that finds every lane taken shares the shared lane, and
/// a gateway that has not heard that a lane changed hands still gets its letter delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_idle_lanes_go_and_come_back_with_nothing_lost() {
    let f = Fixture::new(Backend::RabbitMq).await;
    let prefix = prefix_of(&f.url).to_string();
    let q = open_bounded(&f, 1).await;
    let other = open_bounded(&f, 1).await;
    let lane = format!("{prefix}mailbox.normal.lane0");
    let first = from(sender_a(), Route::Mailbox, Priority::Normal);
    q.enqueue(&[first]).await.unwrap();
    assert_eq!(owners(&q).await, vec![(lane.clone(), Some(sender_a()))]);
    // The other gateway hears that sender A has the lane.
    assert_eq!(owners(&other).await, vec![(lane.clone(), Some(sender_a()))]);
    deliver(&q, vec![first]).await;

    // Idle past lane_idle and empty: given up.
    let freed = eventually(vec![(lane.clone(), None)], || async {
        q.tidy().await.expect("upkeep");
        owners(&q).await
    })
    .await;
    assert_eq!(
        freed,
        vec![(lane.clone(), None)],
        "the idle lane was not given up"
    );

    // Sender A sends again: the lane is its own again.
    let again = from(sender_a(), Route::Mailbox, Priority::Normal);
    q.enqueue(&[again]).await.unwrap();
    assert_eq!(owners(&q).await, vec![(lane.clone(), Some(sender_a()))]);
    // Sender B finds the one lane taken: its letter goes to the shared lane.
    let shared = from(sender_b(), Route::Mailbox, Priority::Normal);
    q.enqueue(&[shared]).await.unwrap();
    deliver(&q, vec![again, shared]).await;

    // Idle again, and this time sender B takes the lane; the other gateway still thinks it
    // is A's and publishes A's letter to it: delivered all the same.
    let freed = eventually(vec![(lane.clone(), None)], || async {
        q.tidy().await.expect("upkeep");
        owners(&q).await
    })
    .await;
    assert_eq!(freed, vec![(lane.clone(), None)]);
    let b = from(sender_b(), Route::Mailbox, Priority::Normal);
    q.enqueue(&[b]).await.unwrap();
    assert_eq!(owners(&q).await, vec![(lane.clone(), Some(sender_b()))]);
    let stale = from(sender_a(), Route::Mailbox, Priority::Normal);
    other.enqueue(&[stale]).await.unwrap();
    deliver(&q, vec![b, stale]).await;
    let lanes: Vec<String> = queues_named(&prefix)
        .into_iter()
        .filter(|n| {
            n.rsplit_once('.')
                .is_some_and(|(_, last)| last.starts_with("lane") && last != "lanes")
        })
        .collect();
    assert_eq!(
        lanes,
        vec![lane],
        "lanes are handed over, never more than the bound"
    );
}
