//! Sending the same letter twice returns the original receipt and delivers once; reusing a
//! message uuid for a different letter is DUPLICATE_CONFLICT.

mod common;

use brevdue::ingest::pb;
use common::*;

async fn duplicates_get_the_original_receipt_and_conflicts_are_rejected(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let original = letter(ACTIVE_SUBSCRIBED, "Afgørelse", b"%PDF-1.4 one");
    let first = c
        .submit_letter(original.clone())
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&first), pb::Outcome::AcceptedMailbox);
    assert!(!first.duplicate);
    assert_eq!(first.content_sha256.len(), 64);

    // Same letter again, unary and in a stream, and with the uuid in upper case.
    let again = c
        .submit_letter(original.clone())
        .await
        .expect("submit")
        .into_inner();
    let mut upper = original.clone();
    upper.message_uuid = upper.message_uuid.to_uppercase();
    let streamed = stream(&mut c, vec![original.clone(), upper]).await;
    for r in std::iter::once(&again).chain(&streamed) {
        assert!(r.duplicate, "{r:?}");
        assert_eq!(r.letter_id, first.letter_id);
        assert_eq!(r.content_sha256, first.content_sha256);
        assert_eq!(r.accepted_at_unix_ms, first.accepted_at_unix_ms);
        assert_eq!(outcome(r), pb::Outcome::AcceptedMailbox);
    }

    // Same uuid, different content or options: a conflict, and nothing changes.
    let mut changed = original.clone();
    changed.main_document.as_mut().expect("doc").content = b"%PDF-1.4 two".to_vec();
    let mut fallback = original.clone();
    fallback.print_fallback = true;
    for l in [changed, fallback] {
        let r = c.submit_letter(l).await.expect("submit").into_inner();
        assert_eq!(outcome(&r), pb::Outcome::Rejected);
        assert_eq!(reason(&r), pb::RejectReason::DuplicateConflict);
        assert!(r.detail.contains(&first.letter_id), "{}", r.detail);
        assert!(r.letter_id.is_empty());
    }

    // The same uuid from another sender is a different letter.
    let mut other = h.client(OTHER_BANK).await;
    let mut theirs = original.clone();
    theirs.recipient = letter(ACTIVE_OTHER, "", b"").recipient;
    let r = other
        .submit_letter(theirs)
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    assert!(!r.duplicate);
    assert_ne!(r.letter_id, first.letter_id);

    // Delivered exactly once.
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 2);
    assert_eq!(h.in_mailboxes(&[ACTIVE_SUBSCRIBED]).await, 1);
    h.stop().await;
}

on_every_backend!(duplicates_get_the_original_receipt_and_conflicts_are_rejected);
