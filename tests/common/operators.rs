//! Operators in tests: issuing an operator's certificate directory exactly as `brevdue
//! operators add` does, and connecting to the operator services with it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use brevdue::cli::operators::{self, OpsClient};
use brevdue::domain::OperatorName;

use super::Harness;

impl Harness {
    /// The certificate directory of operator `name`.
    pub fn operator_dir(&self, name: &str) -> PathBuf {
        self.outside.path().join("operators").join(name)
    }

    /// Issues and records an operator certificate for `name` into [`Harness::operator_dir`].
    pub async fn add_operator(&self, name: &str) -> PathBuf {
        let dir = self.operator_dir(name);
        let name: OperatorName = name.parse().expect("operator name");
        operators::add(&self.config, &name, &dir, Duration::from_secs(86_400))
            .await
            .expect("operators add");
        dir
    }

    /// An operator client for `name` whose certificate the running gateway already knows:
    /// waits (a deadline that only fails the test) until WhoAmI answers, since an operator
    /// added while the gateway runs is picked up at its next refresh.
    pub async fn operator(&self, name: &str) -> OpsClient {
        self.operator_at(&self.server_url(), name).await
    }

    /// [`Harness::operator`] for a gateway at `server` (a `brevdue serve` process).
    pub async fn operator_at(&self, server: &str, name: &str) -> OpsClient {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let Ok(mut c) = operators::connect(server, &self.operator_dir(name)).await else {
                assert!(
                    Instant::now() < deadline,
                    "cannot connect to {server} after 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match c.who_am_i(brevdue::ingest::pb::WhoAmIRequest {}).await {
                Ok(_) => return c,
                Err(s) => assert!(
                    Instant::now() < deadline,
                    "operator {name} still refused after 30 s: {s:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends `n` letters from `sender` to `recipient`; their letter ids.
pub async fn send_many(
    h: &Harness,
    sender: &str,
    recipient: &str,
    n: usize,
    print_fallback: bool,
) -> Vec<String> {
    send_many_to(&h.server_url(), h, sender, recipient, n, print_fallback).await
}

/// [`send_many`] to a gateway at `server`.
pub async fn send_many_to(
    server: &str,
    h: &Harness,
    sender: &str,
    recipient: &str,
    n: usize,
    print_fallback: bool,
) -> Vec<String> {
    let mut c = super::connect(server, &h.cert_dir(sender)).await;
    let letters: Vec<brevdue::ingest::pb::Letter> = (0..n)
        .map(|i| {
            let mut l = super::letter(recipient, &format!("Brev {i}"), b"%PDF-1.4 bulk");
            l.print_fallback = print_fallback;
            l
        })
        .collect();
    let receipts = super::stream(&mut c, letters).await;
    assert_eq!(receipts.len(), n);
    receipts
        .into_iter()
        .map(|r| {
            assert_ne!(
                super::outcome(&r),
                brevdue::ingest::pb::Outcome::Rejected,
                "{r:?}"
            );
            r.letter_id
        })
        .collect()
}

/// Waits (a deadline that only fails the test) until the store counts `n` FAILED and the
/// queue holds them among its dead letters (it is told after the store).
pub async fn wait_for_failed(h: &Harness, n: u64) {
    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    let store = h.store().await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let c = store.state_counts().await.expect("counts");
        if c.failed >= n {
            assert_eq!(c.failed, n, "more letters failed than were made to");
            if queue.depth().await.expect("depth").dead >= n {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} letters were dead-lettered after 300 s: {c:?}",
            c.failed
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls a job until it is done; every answer seen, in order (a deadline only fails the test).
pub async fn follow_job(
    ops: &mut OpsClient,
    first: brevdue::ingest::pb::Job,
) -> Vec<brevdue::ingest::pb::Job> {
    use brevdue::ingest::pb;
    let deadline = Instant::now() + Duration::from_secs(300);
    let id = first.job_id.clone();
    let mut seen = vec![first];
    while seen.last().map(|j| j.state) != Some(pb::JobState::JobDone as i32) {
        assert!(
            Instant::now() < deadline,
            "job {id} not done after 300 s: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let j = ops
            .get_job(pb::JobQuery { job_id: id.clone() })
            .await
            .expect("GetJob")
            .into_inner();
        seen.push(j);
    }
    seen
}

/// Progress only moves forward and ends with every letter done.
pub fn assert_progress(seen: &[brevdue::ingest::pb::Job]) {
    for w in seen.windows(2) {
        assert!(
            w[0].done <= w[1].done,
            "progress went back: {} then {}",
            w[0].done,
            w[1].done
        );
        assert!(w[0].failed <= w[1].failed);
        assert_eq!(w[0].total, w[1].total);
    }
    let last = seen.last().expect("a job");
    assert_eq!(last.done, last.total, "{last:?}");
}

/// A selection for the operator API.
pub fn selection(
    sender: Option<&str>,
    route: Option<brevdue::ingest::pb::DeliveryRoute>,
) -> brevdue::ingest::pb::Selection {
    brevdue::ingest::pb::Selection {
        sender_cvr: sender.unwrap_or_default().to_string(),
        route: route.map(|r| r as i32).unwrap_or(0),
        ..Default::default()
    }
}

/// Starts a job over the operator API.
pub async fn start(
    ops: &mut OpsClient,
    kind: brevdue::ingest::pb::JobKind,
    selection: brevdue::ingest::pb::Selection,
) -> brevdue::ingest::pb::Job {
    ops.start_job(brevdue::ingest::pb::JobRequest {
        kind: kind as i32,
        selection: Some(selection),
        request_id: uuid::Uuid::new_v4().to_string(),
    })
    .await
    .expect("job starts")
    .into_inner()
}

/// Holds or releases a route over the operator API; the holds in force after.
pub async fn hold(
    ops: &mut OpsClient,
    route: brevdue::ingest::pb::DeliveryRoute,
    held: bool,
) -> Vec<brevdue::ingest::pb::RouteHold> {
    let req = brevdue::ingest::pb::RouteRequest {
        route: route as i32,
        reason: "printer outage".into(),
    };
    let r = if held {
        ops.hold_route(req).await
    } else {
        ops.release_route(req).await
    };
    r.expect("hold or release").into_inner().holds
}

/// The state of each of these letters of `sender`, from the store.
pub async fn states_of(
    h: &Harness,
    sender: &str,
    ids: &[String],
) -> std::collections::HashMap<brevdue::domain::LetterState, usize> {
    let store = h.store().await;
    let cvr: brevdue::domain::Cvr = sender.parse().expect("cvr");
    let mut by = std::collections::HashMap::new();
    for id in ids {
        let r = store
            .letter(
                cvr,
                brevdue::store::LetterKey::LetterId(id.parse().expect("id")),
            )
            .await
            .expect("letter")
            .expect("stored");
        *by.entry(r.state).or_insert(0) += 1;
    }
    by
}

/// [`Harness::wait_for_delivery`] with a deadline fitted to thousands of print letters on a
/// shared machine (it only fails the test).
pub async fn wait_for_all_delivered(h: &Harness) -> brevdue::store::StateCounts {
    let store = h.store().await;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let c = store.state_counts().await.expect("counts");
        if c.accepted + c.scheduled == 0 {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "letters were still waiting for delivery after 600 s: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
