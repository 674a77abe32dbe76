//! Following letters end to end, through real gRPC with client certificates: every state
//! change appears once in the stream, in order; recall before hand-over ends CANCELLED and the
//! letter never reaches a mailbox; a resumed `follow` stream continues after the cursor without
//! gap or duplicate across a restart; terminal_only filters; paging lists every letter once;
//! one sender never sees another's events, batches or letters.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use brevdue::ingest::pb;
use common::follow::events_now;
use common::*;
use futures::StreamExt;
use tonic::Code;

fn in_batch(mut l: pb::Letter, batch: &str, reference: &str) -> pb::Letter {
    l.batch_id = batch.to_string();
    l.sender_reference = reference.to_string();
    l
}

fn state(e: &pb::LetterEvent) -> pb::LetterState {
    pb::LetterState::try_from(e.state).expect("state")
}

async fn follow_batches_recall_and_list(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    // No delivery at first: the letters wait, so recall has something to recall.
    h.config.delivery.enabled = false;
    h.boot().await;
    let mut bank = h.client(BANK).await;
    let mut ids = Vec::new();
    for (i, to) in [ACTIVE_SUBSCRIBED, EXEMPT_SUBSCRIBED, COMPANY]
        .iter()
        .enumerate()
    {
        let r = bank
            .submit_letter(in_batch(
                letter(to, "Kontoudtog", b"%PDF-1.4 x"),
                "month-end",
                &format!("ref-{i}"),
            ))
            .await
            .expect("submit")
            .into_inner();
        assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox, "{r:?}");
        ids.push(r.letter_id);
    }
    // A refused letter of the batch counts by reason.
    let refused = bank
        .submit_letter(in_batch(letter(UNKNOWN, "x", b"x"), "month-end", ""))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&refused), pb::Outcome::Rejected);
    let bad_batch = bank
        .submit_letter(in_batch(
            letter(ACTIVE_SUBSCRIBED, "x", b"x"),
            "no spaces",
            "",
        ))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(reason(&bad_batch), pb::RejectReason::InvalidLetter);
    let mut authority = h.client(AUTHORITY).await;
    authority
        .submit_letter(in_batch(
            letter(ACTIVE_SUBSCRIBED, "Afgørelse", b"%PDF-1.4 y"),
            "month-end",
            "",
        ))
        .await
        .expect("submit");

    // Each acceptance once, in order, with increasing cursors and the sender's fields.
    let accepted = events_now(&mut bank, "", false).await;
    assert_eq!(accepted.len(), 3, "{accepted:?}");
    for (i, e) in accepted.iter().enumerate() {
        assert_eq!(state(e), pb::LetterState::Accepted);
        assert_eq!(e.letter_id, ids[i]);
        assert_eq!(e.batch_id, "month-end");
        assert_eq!(e.sender_reference, format!("ref-{i}"));
    }
    assert_eq!(
        events_now(&mut bank, &accepted[0].cursor, false).await[..],
        accepted[1..]
    );
    // The other sender sees only its own.
    let theirs = events_now(&mut authority, "", false).await;
    assert_eq!(theirs.len(), 1);
    assert!(!ids.contains(&theirs[0].letter_id));

    // Recall the first letter; recalling again reports it as it is.
    let cancelled = bank
        .cancel_letter(pb::CancelRequest {
            key: Some(pb::cancel_request::Key::LetterId(ids[0].clone())),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(cancelled.state, pb::LetterState::Cancelled as i32);
    assert_eq!(cancelled.batch_id, "month-end");
    let again = bank
        .cancel_letter(pb::CancelRequest {
            key: Some(pb::cancel_request::Key::LetterId(ids[0].clone())),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert_eq!(again.state, pb::LetterState::Cancelled as i32);
    // Another sender's letter is NOT_FOUND, to recall and to count.
    let err = authority
        .cancel_letter(pb::CancelRequest {
            key: Some(pb::cancel_request::Key::LetterId(ids[1].clone())),
        })
        .await
        .expect_err("not theirs");
    assert_eq!(err.code(), Code::NotFound);

    let batch = bank
        .get_batch(pb::BatchRequest {
            batch_id: "month-end".into(),
        })
        .await
        .expect("batch")
        .into_inner();
    assert_eq!(batch.letters, 3);
    assert_eq!(batch.by_state.get("ACCEPTED"), Some(&2));
    assert_eq!(batch.by_state.get("CANCELLED"), Some(&1));
    // The refusal count is written in the background: wait for it, with a deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let b = bank
            .get_batch(pb::BatchRequest {
                batch_id: "month-end".into(),
            })
            .await
            .expect("batch")
            .into_inner();
        if b.by_reason.get("NOT_REACHABLE") == Some(&1) {
            assert_eq!(b.by_outcome.get("REJECTED"), Some(&1));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "refusal never counted: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let theirs = authority
        .get_batch(pb::BatchRequest {
            batch_id: "month-end".into(),
        })
        .await
        .expect("their own batch of the same name")
        .into_inner();
    assert_eq!(theirs.letters, 1);

    // Paging: every letter once, newest first.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = bank
            .list_letters(pb::ListRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.letters.iter().map(|l| l.letter_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let cancelled_only = bank
        .list_letters(pb::ListRequest {
            state: pb::LetterState::Cancelled as i32,
            batch_id: "month-end".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(cancelled_only.letters.len(), 1);
    assert_eq!(cancelled_only.letters[0].letter_id, ids[0]);

    let bad = bank
        .watch_events(pb::WatchRequest {
            after_cursor: "garbage".into(),
            ..Default::default()
        })
        .await
        .expect_err("bad cursor");
    assert_eq!(bad.code(), Code::InvalidArgument);

    // Restart with delivery on; a follow stream resumed from the last cursor gets exactly the
    // two deliveries (terminal only) and nothing of the cancelled letter.
    let last = events_now(&mut bank, "", false).await;
    let last_cursor = last.last().expect("events").cursor.clone();
    h.stop().await;
    h.config.delivery.enabled = true;
    h.boot().await;
    let mut bank = h.client(BANK).await;
    let mut follow = bank
        .watch_events(pb::WatchRequest {
            after_cursor: last_cursor.clone(),
            terminal_only: true,
            follow: true,
        })
        .await
        .expect("watch")
        .into_inner();
    let mut delivered = HashSet::new();
    while delivered.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(20), follow.next())
            .await
            .expect("a delivery event within 20 s")
            .expect("stream open")
            .expect("event");
        assert_eq!(state(&e), pb::LetterState::Delivered, "{e:?}");
        assert!(
            last.iter().all(|old| old.cursor != e.cursor),
            "replayed {e:?}"
        );
        assert!(delivered.insert(e.letter_id.clone()), "duplicate {e:?}");
    }
    assert_eq!(delivered, ids[1..].iter().cloned().collect());
    drop(follow);
    h.wait_for_delivery().await;
    assert_eq!(
        h.in_mailboxes(&[ACTIVE_SUBSCRIBED, EXEMPT_SUBSCRIBED, COMPANY])
            .await,
        3,
        "two of the bank's and the authority's"
    );
    let all = events_now(&mut bank, "", false).await;
    let kinds: Vec<(String, pb::LetterState)> = all
        .iter()
        .map(|e| (e.letter_id.clone(), state(e)))
        .collect();
    assert_eq!(
        kinds.len(),
        6,
        "3 accepted, 1 cancelled, 2 delivered: {kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|(id, _)| *id == ids[0])
            .map(|(_, s)| *s)
            .collect::<Vec<_>>(),
        vec![pb::LetterState::Accepted, pb::LetterState::Cancelled]
    );
    let status = bank
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId(ids[1].clone())),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.attempts, 1, "delivered on the first try");
    assert_eq!(status.sender_reference, "ref-1");
    assert_eq!(status.batch_id, "month-end");
    h.stop().await;
}
on_every_backend!(follow_batches_recall_and_list);
