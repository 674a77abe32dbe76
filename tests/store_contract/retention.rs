//! Disk that does not fill: a duplicate resend stores no content again, retention purges only
//! the content that is due and never a waiting letter's, and the disk purged content took is
//! given back.

use crate::fixtures::*;

contract!(
    a_duplicate_resend_leaves_the_store_size_unchanged,
    retention_purges_only_what_is_due,
    purged_segments_are_given_back,
);

fn sized(sender: Cvr, text: &str, size: usize) -> NewLetter {
    sealed_letter(
        &ring(),
        sender,
        MessageUuid::random(),
        [1u8; 32],
        text,
        size,
    )
}

async fn a_duplicate_resend_leaves_the_store_size_unchanged(b: Backend) {
    let store = b.open().await;
    let letters: Vec<NewLetter> = (0..50)
        .map(|i| sized(cvr(AUTHORITY), &format!("brev {i}"), 10 * 1024))
        .collect();
    store.insert_letters(&letters).await.expect("insert");
    let before = store.stored_bytes().await.expect("size");
    assert!(
        before > 50 * 10 * 1024,
        "{} holds the letters: {before}",
        b.name()
    );
    for _ in 0..3 {
        // The same letters again (a resend after a lost receipt), also twice in one batch.
        let mut again = letters.clone();
        again.extend(letters.iter().take(10).cloned());
        let out = store.insert_letters(&again).await.expect("resend");
        assert!(out.iter().all(|o| matches!(o, InsertOutcome::Existing(_))));
    }
    assert_eq!(
        store.stored_bytes().await.expect("size"),
        before,
        "{}: duplicate resends grew the store",
        b.name()
    );
}

async fn retention_purges_only_what_is_due(b: Backend) {
    let store = b.open().await;
    let sender = cvr(AUTHORITY);
    let printed_long_ago = sized(sender, "printed long ago", 2048);
    let printed_lately = sized(sender, "printed lately", 2048);
    let in_a_mailbox = sized(sender, "in a mailbox", 2048);
    let waiting = sized(sender, "waiting since long", 2048);
    let failed = sized(sender, "failed long ago", 2048);
    let all = [
        printed_long_ago.clone(),
        printed_lately.clone(),
        in_a_mailbox.clone(),
        waiting.clone(),
        failed.clone(),
    ];
    store.insert_letters(&all).await.expect("insert");
    store
        .mark_delivered(
            &[printed_long_ago.letter_id],
            LetterState::PrintSpooled,
            1_000,
            Some("old-batch"),
        )
        .await
        .expect("print");
    store
        .mark_delivered(
            &[printed_lately.letter_id],
            LetterState::PrintSpooled,
            9_000,
            Some("new-batch"),
        )
        .await
        .expect("print");
    store
        .mark_delivered(
            &[in_a_mailbox.letter_id],
            LetterState::Delivered,
            1_000,
            None,
        )
        .await
        .expect("deliver");
    store
        .mark_failed(failed.letter_id, "retries spent")
        .await
        .expect("fail");

    assert_eq!(store.purge_content(5_000, 100).await.expect("purge"), 1);
    assert_eq!(store.purge_content(5_000, 100).await.expect("purge"), 0);

    let ids: Vec<LetterId> = all.iter().map(|l| l.letter_id).collect();
    let loaded = store.load_for_delivery(&ids).await.expect("load");
    for l in &all {
        let s = loaded
            .iter()
            .find(|s| s.record.letter_id == l.letter_id)
            .expect("the row stays");
        if l.letter_id == printed_long_ago.letter_id {
            assert!(s.sealed.ciphertext.is_empty(), "purged content is gone");
            assert!(s.sealed.wrapped_key.is_empty(), "and its data key");
            assert_eq!(s.record.state, LetterState::PrintSpooled);
        } else {
            assert_eq!(s.sealed.ciphertext, l.sealed.ciphertext, "kept");
            assert_eq!(s.sealed.wrapped_key, l.sealed.wrapped_key, "kept");
        }
    }
    // The waiting letter is still delivered as stored, however old.
    assert_eq!(state_of(&store, &waiting).await, LetterState::Accepted);
    // The idempotency key outlives the content: a resend is a duplicate, not a new letter.
    let out = store
        .insert_letters(std::slice::from_ref(&printed_long_ago))
        .await
        .expect("resend");
    assert_eq!(existing(&out[0]).state, LetterState::PrintSpooled);
}

async fn purged_segments_are_given_back(b: Backend) {
    let sender = cvr(AUTHORITY);
    let printed: Vec<NewLetter> = (0..40)
        .map(|i| sized(sender, &format!("tryk {i}"), 64 * 1024))
        .collect();
    let kept = sized(sender, "in a mailbox", 64 * 1024);
    {
        let store = b.open().await;
        let mut first = printed.clone();
        first.push(kept.clone());
        store.insert_letters(&first).await.expect("insert");
        let ids: Vec<LetterId> = printed.iter().map(|l| l.letter_id).collect();
        store
            .mark_delivered(&ids, LetterState::PrintSpooled, 1_000, Some("batch"))
            .await
            .expect("print");
        store
            .mark_delivered(&[kept.letter_id], LetterState::Delivered, 1_000, None)
            .await
            .expect("deliver");
    }
    // A later start writes to a segment of its own; the first one is now closed.
    let store = b.open().await;
    let waiting = sized(sender, "waiting", 64 * 1024);
    store
        .insert_letters(std::slice::from_ref(&waiting))
        .await
        .expect("insert");
    assert_eq!(store.purge_content(5_000, 16).await.expect("purge"), 16);
    assert_eq!(store.purge_content(5_000, 100).await.expect("purge"), 24);
    let before = store.stored_bytes().await.expect("size");
    let freed = store.compact().await.expect("compact");
    let after = store.stored_bytes().await.expect("size");
    if b.name() == "SQLite" {
        assert!(
            freed >= 40 * 64 * 1024,
            "the mostly purged segment was rewritten: {freed} bytes freed"
        );
        assert!(
            after + 40 * 64 * 1024 <= before,
            "{before} -> {after} bytes"
        );
    }
    // What was kept is intact, wherever it lives now.
    let loaded = store
        .load_for_delivery(&[kept.letter_id, waiting.letter_id])
        .await
        .expect("load");
    assert_eq!(loaded.len(), 2);
    for s in loaded {
        let want = if s.record.letter_id == kept.letter_id {
            &kept
        } else {
            &waiting
        };
        assert_eq!(s.sealed.ciphertext, want.sealed.ciphertext);
    }
}
