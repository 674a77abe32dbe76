//! Delivery into the mailbox and the print spool, each exactly once.

use crate::fixtures::*;

contract!(mark_delivered_exactly_once, print_batch_recorded,);

async fn mark_delivered_exactly_once(b: Backend) {
    let store = b.open().await;
    let tag = [7u8; 32];
    let ring = ring();
    let a = sealed_letter(&ring, cvr(BANK), MessageUuid::random(), tag, "a", 256);
    let c = letter(cvr(BANK), "c");
    store
        .insert_letters(&[a.clone(), c.clone()])
        .await
        .expect("insert");
    let first = store
        .mark_delivered(
            &[a.letter_id],
            LetterState::Delivered,
            1_700_000_001_000,
            None,
        )
        .await
        .expect("deliver");
    assert_eq!(first, vec![a.letter_id]);
    let second = store
        .mark_delivered(
            &[a.letter_id],
            LetterState::Delivered,
            1_700_000_002_000,
            None,
        )
        .await
        .expect("deliver again");
    assert!(second.is_empty(), "a letter is delivered once: {second:?}");
    assert_eq!(store.mailbox_count(&tag).await.expect("mailbox"), 1);
    let r = store
        .letter(a.sender, LetterKey::LetterId(a.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(r.state, LetterState::Delivered);
    assert_eq!(r.delivered_at_ms, Some(1_700_000_001_000));

    // A mixed call changes only the waiting letter, and answers in the order asked.
    let unknown = LetterId::new();
    let changed = store
        .mark_delivered(
            &[a.letter_id, unknown, c.letter_id],
            LetterState::PrintSpooled,
            1_700_000_003_000,
            Some("batch-1"),
        )
        .await
        .expect("print");
    assert_eq!(changed, vec![c.letter_id]);
    assert_eq!(state_of(&store, &a).await, LetterState::Delivered);
    assert_eq!(state_of(&store, &c).await, LetterState::PrintSpooled);
    assert_eq!(store.mailbox_count(&tag).await.expect("mailbox"), 1);
    assert!(
        store
            .mark_delivered(&[], LetterState::Delivered, 0, None)
            .await
            .expect("empty")
            .is_empty()
    );
}

async fn print_batch_recorded(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "print me");
    let other = letter(cvr(AUTHORITY), "print me too");
    store
        .insert_letters(&[l.clone(), other.clone()])
        .await
        .expect("insert");
    assert!(
        store
            .print_batch_letters("batch-7")
            .await
            .expect("recorded")
            .is_empty()
    );
    store
        .mark_delivered(
            &[l.letter_id],
            LetterState::PrintSpooled,
            9,
            Some("batch-7"),
        )
        .await
        .expect("spool");
    // A letter already spooled elsewhere is not recorded in a second batch.
    store
        .mark_delivered(
            &[l.letter_id, other.letter_id],
            LetterState::PrintSpooled,
            10,
            Some("batch-8"),
        )
        .await
        .expect("spool");
    assert_eq!(
        store
            .print_batch_letters("batch-7")
            .await
            .expect("recorded"),
        vec![l.letter_id]
    );
    assert_eq!(
        store
            .print_batch_letters("batch-8")
            .await
            .expect("recorded"),
        vec![other.letter_id]
    );
    assert!(
        store
            .print_batch_letters("batch-9")
            .await
            .expect("recorded")
            .is_empty()
    );
}
