//! A sender's event stream is one ordered log whatever happens to the gateways: a `follow`
//! stream resumed from the middle after the gateway was killed with SIGKILL continues with no
//! gap and no duplicate, and two gateway instances on one PostgreSQL give each sender one
//! stream in one order, whichever instance accepted or delivered a letter.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use brevdue::ingest::pb;
use brevdue::server;
use common::follow::*;
use common::*;

/// A deadline for one event that only fails the test (a gateway restart is inside it).
const EVENT_WITHIN: Duration = Duration::from_secs(60);

fn letters(n: usize, title: &str) -> Vec<pb::Letter> {
    // Mailbox and print, so both delivery paths write events.
    let recipients = [ACTIVE_OTHER, EXEMPT, UNKNOWN, COMPANY];
    (0..n)
        .map(|i| letter(recipients[i % recipients.len()], title, b"%PDF-1.4 follow"))
        .collect()
}

fn spawn_gateway(h: &Harness) -> (ServeProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command.args(h.serve_args(0, 0)).env("BREVDUE_LOG", "warn");
    spawn_serve(command)
}

async fn resumed_after_sigkill_without_gap_or_duplicate(backend: Backend) {
    const LETTERS: usize = 800;
    let h = Harness::prepare_on(backend).await;
    let (gateway, server) = spawn_gateway(&h);
    let mut gateway = gateway.take();
    let mut c = connect(&server, &h.cert_dir(AUTHORITY)).await;
    let receipts = stream(&mut c, letters(LETTERS, "Genoptag")).await;
    assert!(receipts.iter().all(|r| outcome(r) != pb::Outcome::Rejected));
    let ids: HashSet<String> = receipts.iter().map(|r| r.letter_id.clone()).collect();

    // Read the first half of the log (acceptances and whatever was delivered meanwhile) and
    // kill the gateway while delivery is still writing events.
    let mut live = follow(&mut c, "", false).await;
    let mut before = Vec::new();
    while before.len() < LETTERS {
        before.push(next_event(&mut live, EVENT_WITHIN).await);
    }
    gateway.kill().expect("SIGKILL");
    let _ = gateway.wait();
    drop(live);
    let cursor = before.last().map(|e| e.cursor.clone()).expect("events");

    // A new gateway on the same data; the stream resumed at the cursor runs until every
    // letter has reached its end.
    let (_gateway, server) = spawn_gateway(&h);
    let mut c = connect(&server, &h.cert_dir(AUTHORITY)).await;
    let mut resumed = follow(&mut c, &cursor, false).await;
    let mut after = Vec::new();
    let mut ended: HashSet<String> = before
        .iter()
        .filter(|e| is_terminal(state(e)))
        .map(|e| e.letter_id.clone())
        .collect();
    while ended.len() < ids.len() {
        let e = next_event(&mut resumed, EVENT_WITHIN).await;
        if is_terminal(state(&e)) {
            ended.insert(e.letter_id.clone());
        }
        after.push(e);
    }
    drop(resumed);

    // What the two streams gave, joined, is exactly the log as it stands: nothing skipped at
    // the cursor, nothing given twice.
    let whole = events_now(&mut c, "", false).await;
    let joined: Vec<pb::LetterEvent> = before.iter().chain(&after).cloned().collect();
    assert_eq!(
        joined.len(),
        whole.len(),
        "{} events before the kill, {} after, {} in the log",
        before.len(),
        after.len(),
        whole.len()
    );
    assert!(joined == whole, "the resumed stream differs from the log");
    // And the log itself: each letter accepted once and ended once.
    let by = states_by_letter(&whole);
    assert_eq!(by.len(), ids.len());
    for (id, states) in &by {
        assert!(ids.contains(id), "an event of a letter never sent: {id}");
        assert_eq!(states.len(), 2, "{id}: {states:?}");
        assert_eq!(states[0], pb::LetterState::Accepted, "{id}: {states:?}");
        assert!(
            matches!(
                states[1],
                pb::LetterState::Delivered | pb::LetterState::PrintSpooled
            ),
            "{id}: {states:?}"
        );
    }
}
on_every_backend!(resumed_after_sigkill_without_gap_or_duplicate);

/// Two instances on one PostgreSQL, each taking half of a sender's letters: a `follow` stream
/// on either instance sees the same events in the same order, each letter's acceptance and
/// delivery once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_give_each_sender_one_ordered_stream() {
    const LETTERS: usize = 600;
    let mut h = Harness::prepare_on(Backend::Production).await;
    let second_config = h.config.clone();
    h.boot().await;
    let second = server::start(second_config)
        .await
        .expect("a second gateway starts on the same backends");
    let second_url = format!("https://{}", second.grpc_addr);
    let mut a = h.client(BANK).await;
    let mut b = connect(&second_url, &h.cert_dir(BANK)).await;
    let mut a_follow = follow(&mut a, "", false).await;
    let mut b_follow = follow(&mut b, "", false).await;

    // The bank's subscribers only (mailbox), and the authority's letters interleaved through
    // both instances: another sender's events must not appear in the bank's stream.
    let bank_letters: Vec<pb::Letter> = (0..LETTERS)
        .map(|i| {
            let to = [ACTIVE_SUBSCRIBED, COMPANY][i % 2];
            letter(to, "Kontoudtog", b"%PDF-1.4 bank")
        })
        .collect();
    let (first, second_half) = bank_letters.split_at(LETTERS / 2);
    let mut a_authority = h.client(AUTHORITY).await;
    let (ra, rb, _) = tokio::join!(
        stream(&mut a, first.to_vec()),
        stream(&mut b, second_half.to_vec()),
        stream(&mut a_authority, letters(100, "Afgørelse")),
    );
    let ids: HashSet<String> = ra.iter().chain(&rb).map(|r| r.letter_id.clone()).collect();
    assert_eq!(ids.len(), LETTERS);

    // Every letter accepted and delivered: 2 events each, read on both instances.
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    while on_a.len() < 2 * LETTERS {
        on_a.push(next_event(&mut a_follow, EVENT_WITHIN).await);
    }
    while on_b.len() < 2 * LETTERS {
        on_b.push(next_event(&mut b_follow, EVENT_WITHIN).await);
    }
    assert!(on_a == on_b, "the two instances gave different streams");
    let by = states_by_letter(&on_a);
    assert_eq!(by.len(), LETTERS, "only the bank's letters");
    for (id, states) in &by {
        assert!(ids.contains(id), "not the bank's letter: {id}");
        assert_eq!(
            states,
            &vec![pb::LetterState::Accepted, pb::LetterState::Delivered],
            "{id}"
        );
    }
    // One order: the cursors increase along the stream, as the stored log has them.
    let numbers: Vec<u64> = on_a
        .iter()
        .map(|e| brevdue::follow::cursor::decode_cursor(&e.cursor).expect("a cursor"))
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    let whole = events_now(&mut a, "", false).await;
    assert!(
        whole == on_a,
        "the follow stream differs from the stored log"
    );
    drop((a_follow, b_follow));
    second.shutdown().await.expect("clean shutdown");
    h.stop().await;
}
