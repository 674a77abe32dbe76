//! Recall before hand-over, end to end on both backend pairs: a SCHEDULED letter recalled with
//! its batch ends CANCELLED, its content can no longer be opened, and it never reaches a
//! mailbox or the print spool, not after a restart and not when its delivery comes due; and a
//! recall racing the delivery of 1,000 letters ends each letter in exactly one of delivered
//! and cancelled, which the mailboxes, the spool and the event stream all agree on.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use brevdue::cli::client::Client;
use brevdue::domain::{LetterId, LetterState};
use brevdue::ingest::pb;
use brevdue::store::LetterKey;
use common::follow::*;
use common::*;

/// A MeMo message from the authority held by doNotDeliverUntilDate far in the future.
fn held_memo(uuid: &str, recipient: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/memo/full.xml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("test message");
    text.replacen(
        "<memo:senderID>61126228</memo:senderID>",
        &format!("<memo:senderID>{AUTHORITY}</memo:senderID>"),
        1,
    )
    .replacen(
        "<memo:recipientID>0101901234</memo:recipientID>",
        &format!("<memo:recipientID>{recipient}</memo:recipientID>"),
        1,
    )
    .replacen("3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42", uuid, 1)
    .replacen("A1B2C3D4-E5F6-4A7B-9C8D-0E1F2A3B4C5D", uuid, 1)
    .replace(
        "<memo:doNotDeliverUntilDate>2025-04-01</memo:doNotDeliverUntilDate>",
        "<memo:doNotDeliverUntilDate>2099-01-01</memo:doNotDeliverUntilDate>",
    )
    .into_bytes()
}

async fn status(c: &mut Client, id: &str) -> pb::LetterStatus {
    c.get_status(pb::StatusRequest {
        key: Some(pb::status_request::Key::LetterId(id.to_string())),
    })
    .await
    .expect("status")
    .into_inner()
}

async fn recalled_scheduled_letters_end_cancelled_and_never_arrive(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let mut held = Vec::new();
    // One held letter for a mailbox, one for print.
    for to in [ACTIVE_OTHER, UNKNOWN] {
        let r = c
            .submit_letter(pb::Letter {
                memo_xml: held_memo(&uuid::Uuid::new_v4().to_string(), to),
                batch_id: "held".into(),
                ..Default::default()
            })
            .await
            .expect("submit")
            .into_inner();
        assert_ne!(outcome(&r), pb::Outcome::Rejected, "{r:?}");
        held.push(r.letter_id);
    }
    // Letters of another batch to the same recipients are delivered meanwhile: delivery runs.
    let mut others = Vec::new();
    for to in [ACTIVE_OTHER, UNKNOWN] {
        let mut l = letter(to, "Ikke tilbagekaldt", b"%PDF-1.4 kept");
        l.batch_id = "kept".into();
        let r = c.submit_letter(l).await.expect("submit").into_inner();
        others.push(r.letter_id);
    }
    for id in &held {
        assert_eq!(
            status(&mut c, id).await.state,
            pb::LetterState::Scheduled as i32
        );
    }

    let batch = c
        .cancel_batch(pb::BatchRequest {
            batch_id: "held".into(),
        })
        .await
        .expect("cancel batch")
        .into_inner();
    assert_eq!(batch.letters, 2);
    assert_eq!(batch.by_state.get("CANCELLED"), Some(&2), "{batch:?}");
    for id in &held {
        let s = status(&mut c, id).await;
        assert_eq!(s.state, pb::LetterState::Cancelled as i32, "{s:?}");
        assert_eq!(s.batch_id, "held");
    }
    let by = states_by_letter(&events_now(&mut c, "", false).await);
    for id in &held {
        assert_eq!(
            by.get(id),
            Some(&vec![
                pb::LetterState::Scheduled,
                pb::LetterState::Cancelled
            ]),
            "{id}"
        );
    }

    // A restart recovers what waits for delivery: the recalled letters are not among it.
    h.restart().await;
    let mut c = h.client(AUTHORITY).await;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered + counts.print_spooled, 2, "{counts:?}");
    for id in &others {
        let s = status(&mut c, id).await;
        assert!(
            s.state == pb::LetterState::Delivered as i32
                || s.state == pb::LetterState::PrintSpooled as i32,
            "{s:?}"
        );
    }
    // Their delivery coming due changes nothing: the delivery update finds no waiting letter,
    // and the content is gone (no data key to open it with).
    let store = h.store().await;
    let ids: Vec<LetterId> = held.iter().map(|i| i.parse().expect("id")).collect();
    let changed = store
        .mark_delivered(&ids, LetterState::Delivered, brevdue::clock::now_ms(), None)
        .await
        .expect("mark");
    assert!(changed.is_empty(), "a recalled letter was delivered");
    for l in store.load_for_delivery(&ids).await.expect("load") {
        assert_eq!(l.record.state, LetterState::Cancelled);
        assert!(
            l.sealed.wrapped_key.is_empty(),
            "the data key survived recall"
        );
    }
    assert_eq!(
        h.in_mailboxes(&[ACTIVE_OTHER]).await,
        1,
        "only the kept one"
    );
    let spooled = spooled_letters(h.data.path());
    for id in &held {
        assert!(!spooled.contains_key(id), "a recalled letter was printed");
    }
    assert_eq!(spooled.len(), 1, "only the kept one: {spooled:?}");
    // Recalling again reports the letter as it is.
    let again = c
        .cancel_letter(pb::CancelRequest {
            key: Some(pb::cancel_request::Key::LetterId(held[0].clone())),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(again.state, pb::LetterState::Cancelled as i32);
    h.stop().await;
}
on_every_backend!(recalled_scheduled_letters_end_cancelled_and_never_arrive);

async fn recall_racing_delivery_ends_each_letter_once(backend: Backend) {
    const LETTERS: usize = 1000;
    let mut h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let letters: Vec<pb::Letter> = (0..LETTERS)
        .map(|i| {
            let mut l = letter([ACTIVE_OTHER, UNKNOWN][i % 2], "Kapløb", b"%PDF-1.4 race");
            l.batch_id = "race".into();
            l
        })
        .collect();

    // Delivery is on: while the batch streams in, recalls of the whole batch and of single
    // letters run against the deliveries of the letters already accepted.
    let server = h.server_url();
    let cert_dir = h.cert_dir(AUTHORITY);
    let (ids_tx, mut ids_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let recaller = tokio::spawn(async move {
        let mut r = connect(&server, &cert_dir).await;
        let mut seen = 0usize;
        let mut batch_recalls = 0;
        while let Some(id) = ids_rx.recv().await {
            seen += 1;
            if seen.is_multiple_of(3) {
                let _ = r
                    .cancel_letter(pb::CancelRequest {
                        key: Some(pb::cancel_request::Key::LetterId(id)),
                    })
                    .await
                    .expect("a recall never fails, whoever wins the race");
            }
            if seen.is_multiple_of(250) {
                r.cancel_batch(pb::BatchRequest {
                    batch_id: "race".into(),
                })
                .await
                .expect("a batch recall never fails, whoever wins the race");
                batch_recalls += 1;
            }
        }
        batch_recalls
    });
    let mut receipts = Vec::with_capacity(LETTERS);
    brevdue::cli::client::stream_batch(&mut c, letters.into_iter().map(|l| ((), l)), |_, r| {
        let _ = ids_tx.send(r.letter_id.clone());
        receipts.push(r);
    })
    .await
    .expect("batch streams");
    drop(ids_tx);
    let batch_recalls = recaller.await.expect("recaller");
    assert_eq!(batch_recalls, 4);
    assert!(receipts.iter().all(|r| outcome(r) != pb::Outcome::Rejected));
    let ids: HashSet<String> = receipts.iter().map(|r| r.letter_id.clone()).collect();
    assert_eq!(ids.len(), LETTERS);

    // Settled: nothing waits any more (the deadline only fails the test; the machine may be
    // slow, so it is generous).
    let store = h.store().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let c = store.state_counts().await.expect("counts");
        if c.accepted + c.scheduled == 0 {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "still waiting: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut final_state: HashMap<String, LetterState> = HashMap::new();
    for id in &ids {
        let r = store
            .letter(
                AUTHORITY.parse().expect("cvr"),
                LetterKey::LetterId(id.parse().expect("id")),
            )
            .await
            .expect("read")
            .expect("the letter");
        final_state.insert(id.clone(), r.state);
    }
    let of = |s: LetterState| final_state.values().filter(|&&x| x == s).count() as u64;
    let (delivered, spooled, cancelled) = (
        of(LetterState::Delivered),
        of(LetterState::PrintSpooled),
        of(LetterState::Cancelled),
    );
    assert_eq!(
        delivered + spooled + cancelled,
        LETTERS as u64,
        "each letter ends delivered or cancelled: {counts:?}"
    );
    assert!(cancelled > 0, "the recall of the batch cancelled nothing");

    // The mailboxes hold exactly the delivered letters, the spool exactly the spooled ones.
    assert_eq!(h.in_mailboxes(&[ACTIVE_OTHER]).await, delivered);
    let in_spool = spooled_letters(h.data.path());
    assert!(in_spool.values().all(|&n| n == 1), "a letter printed twice");
    for (id, s) in &final_state {
        assert_eq!(
            in_spool.contains_key(id),
            *s == LetterState::PrintSpooled,
            "{id} is {s:?}"
        );
    }
    // The stream tells the same story: one acceptance and one end per letter, the end the
    // letter's state.
    let by = states_by_letter(&events_now(&mut c, "", false).await);
    assert_eq!(by.len(), LETTERS);
    for (id, states) in &by {
        let end = match final_state[id] {
            LetterState::Delivered => pb::LetterState::Delivered,
            LetterState::PrintSpooled => pb::LetterState::PrintSpooled,
            _ => pb::LetterState::Cancelled,
        };
        assert_eq!(states, &vec![pb::LetterState::Accepted, end], "{id}");
    }
    let batch = c
        .get_batch(pb::BatchRequest {
            batch_id: "race".into(),
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(
        batch.by_state.get("CANCELLED").copied().unwrap_or(0),
        cancelled
    );
    h.stop().await;
}
on_every_backend!(recall_racing_delivery_ends_each_letter_once);
