//! Reading a letter's life: scoped to its sender, sealed for delivery, attempts, failure and
//! reopening, what is still waiting and the counts by state.

use crate::fixtures::*;

contract!(
    letter_is_scoped_to_its_sender,
    load_for_delivery_returns_the_sealed_letter,
    load_within_stops_at_the_byte_budget,
    attempts_failure_and_reopen,
    undelivered_lists_only_waiting_letters,
    state_counts,
);

async fn letter_is_scoped_to_its_sender(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "mine");
    store
        .insert_letters(std::slice::from_ref(&l))
        .await
        .expect("insert");
    for key in [
        LetterKey::LetterId(l.letter_id),
        LetterKey::MessageUuid(l.message_uuid),
    ] {
        let own = store.letter(l.sender, key).await.expect("own");
        assert_eq!(own.expect("own letter").letter_id, l.letter_id);
        let other = store.letter(cvr(BANK), key).await.expect("other");
        assert!(other.is_none(), "another sender must not see the letter");
    }
    let unknown = store
        .letter(l.sender, LetterKey::LetterId(LetterId::new()))
        .await
        .expect("unknown");
    assert!(unknown.is_none());
}

async fn load_within_stops_at_the_byte_budget(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(BANK);
    let letters: Vec<_> = (0..5)
        .map(|i| {
            sealed_letter(
                &ring,
                sender,
                MessageUuid::random(),
                [1; 32],
                &format!("{i}"),
                1000,
            )
        })
        .collect();
    store.insert_letters(&letters).await.expect("insert");
    let size = letters[0].sealed.ciphertext.len() as u64;
    let missing = LetterId::new();
    let mut ids: Vec<LetterId> = letters.iter().map(|l| l.letter_id).collect();
    ids.insert(1, missing);
    // Room for two letters and a bit: the first, the missing id (no content) and the second.
    let first = store.load_within(&ids, 2 * size + 10).await.expect("load");
    assert_eq!(
        first.consumed, 3,
        "two letters and the missing id between them"
    );
    let got: Vec<LetterId> = first.letters.iter().map(|l| l.record.letter_id).collect();
    assert_eq!(got, vec![letters[0].letter_id, letters[1].letter_id]);
    assert_eq!(
        first.letters[1].sealed.ciphertext,
        letters[1].sealed.ciphertext
    );
    // The rest, asked for again: a budget smaller than one letter still loads that one.
    let rest = store.load_within(&ids[3..], 1).await.expect("load");
    assert_eq!(rest.consumed, 1);
    assert_eq!(rest.letters[0].record.letter_id, letters[2].letter_id);
    let all = store.load_within(&ids[4..], u64::MAX).await.expect("load");
    assert_eq!(all.consumed, 2);
    assert_eq!(all.letters.len(), 2);
    let none = store.load_within(&[], 1).await.expect("empty");
    assert_eq!(none.consumed, 0);
    assert!(none.letters.is_empty());
}

async fn load_for_delivery_returns_the_sealed_letter(b: Backend) {
    let store = b.open().await;
    let ring = ring();
    let sender = cvr(BANK);
    let tag = [9u8; 32];
    let a = sealed_letter(
        &ring,
        sender,
        MessageUuid::random(),
        tag,
        "deliver me",
        4096,
    );
    let c = letter(sender, "another");
    store
        .insert_letters(&[a.clone(), c.clone()])
        .await
        .expect("insert");
    let missing = LetterId::new();
    let loaded = store
        .load_for_delivery(&[c.letter_id, missing, a.letter_id])
        .await
        .expect("load");
    let ids: Vec<LetterId> = loaded.iter().map(|l| l.record.letter_id).collect();
    assert_eq!(
        ids,
        vec![c.letter_id, a.letter_id],
        "missing ids are left out"
    );
    let got = &loaded[1];
    assert_eq!(got.recipient_tag, tag);
    assert_eq!(got.sealed.kek_id, a.sealed.kek_id);
    assert_eq!(got.sealed.nonce, a.sealed.nonce);
    assert_eq!(got.sealed.wrapped_key, a.sealed.wrapped_key);
    assert_eq!(got.sealed.ciphertext, a.sealed.ciphertext);
    let lid = a.letter_id.to_string();
    let plain = open(
        &ring,
        &Binding {
            letter_id: &lid,
            sender,
            recipient: &tag,
        },
        &got.sealed,
    )
    .expect("the stored letter opens");
    let decoded = body::decode(&plain).expect("decode");
    assert_eq!(
        decoded,
        plain_letter(a.message_uuid, "deliver me", 4096),
        "what comes out is what went in"
    );
}

async fn attempts_failure_and_reopen(b: Backend) {
    let store = b.open().await;
    let l = letter(cvr(AUTHORITY), "flaky");
    let done = letter(cvr(AUTHORITY), "done");
    store
        .insert_letters(&[l.clone(), done.clone()])
        .await
        .expect("insert");
    for detail in ["mailbox timed out", "mailbox refused"] {
        let counted = store.begin_attempts(&[l.letter_id]).await.expect("attempt");
        assert_eq!(counted.len(), 1);
        assert_eq!(
            counted[0].interrupted, 0,
            "the last attempt recorded its outcome"
        );
        store
            .record_failure(l.letter_id, detail)
            .await
            .expect("failure");
    }
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!((r.attempts, r.detail.as_str()), (2, "mailbox refused"));
    assert_eq!(r.state, LetterState::Accepted);

    store
        .mark_failed(l.letter_id, "retries spent")
        .await
        .expect("fail");
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!(
        (r.state, r.detail.as_str()),
        (LetterState::Failed, "retries spent")
    );
    assert!(
        store
            .undelivered()
            .await
            .expect("undelivered")
            .iter()
            .all(|p| p.letter_id != l.letter_id)
    );

    assert!(store.reopen(l.letter_id).await.expect("reopen"));
    let r = store
        .letter(l.sender, LetterKey::LetterId(l.letter_id))
        .await
        .expect("letter")
        .expect("stored");
    assert_eq!((r.state, r.detail.as_str()), (LetterState::Accepted, ""));
    assert!(!store.reopen(l.letter_id).await.expect("reopen again"));

    // A delivered letter does not fail afterwards, nor reopen.
    store
        .mark_delivered(&[done.letter_id], LetterState::Delivered, 1, None)
        .await
        .expect("deliver");
    store
        .mark_failed(done.letter_id, "late failure")
        .await
        .expect("fail");
    assert_eq!(state_of(&store, &done).await, LetterState::Delivered);
    assert!(!store.reopen(done.letter_id).await.expect("reopen"));
}

async fn undelivered_lists_only_waiting_letters(b: Backend) {
    let store = b.open().await;
    let sender = cvr(AUTHORITY);
    let accepted = letter(sender, "accepted");
    let mut scheduled = letter(sender, "scheduled");
    scheduled.not_before_ms = Some(1_800_000_000_000);
    scheduled.route = Route::Print;
    scheduled.priority = Priority::Urgent;
    let delivered = letter(sender, "delivered");
    let failed = letter(sender, "failed");
    let all = [
        accepted.clone(),
        scheduled.clone(),
        delivered.clone(),
        failed.clone(),
    ];
    store.insert_letters(&all).await.expect("insert");
    assert_eq!(state_of(&store, &scheduled).await, LetterState::Scheduled);
    store
        .mark_delivered(&[delivered.letter_id], LetterState::Delivered, 5, None)
        .await
        .expect("deliver");
    store
        .mark_failed(failed.letter_id, "gone")
        .await
        .expect("fail");

    let mut pending = store.undelivered().await.expect("undelivered");
    pending.sort_by_key(|p| p.not_before_ms);
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[0].letter_id, accepted.letter_id);
    assert_eq!(pending[0].not_before_ms, 0);
    assert_eq!(pending[0].route, Route::Mailbox);
    assert_eq!(pending[0].accepted_at_ms, accepted.accepted_at_ms);
    assert_eq!(pending[1].letter_id, scheduled.letter_id);
    assert_eq!(pending[1].not_before_ms, 1_800_000_000_000);
    assert_eq!(pending[1].route, Route::Print);
    assert_eq!(pending[1].priority, Priority::Urgent);
}

async fn state_counts(b: Backend) {
    let store = b.open().await;
    assert_eq!(
        store.state_counts().await.expect("counts"),
        Default::default()
    );
    let sender = cvr(BANK);
    let ls: Vec<NewLetter> = (0..6).map(|i| letter(sender, &format!("{i}"))).collect();
    let mut ls = ls;
    ls[5].not_before_ms = Some(1);
    store.insert_letters(&ls).await.expect("insert");
    store
        .mark_delivered(&[ls[0].letter_id], LetterState::Delivered, 1, None)
        .await
        .expect("deliver");
    store
        .mark_delivered(
            &[ls[1].letter_id, ls[2].letter_id],
            LetterState::PrintSpooled,
            1,
            Some("b"),
        )
        .await
        .expect("print");
    store.mark_failed(ls[3].letter_id, "x").await.expect("fail");
    let c = store.state_counts().await.expect("counts");
    assert_eq!(
        (
            c.accepted,
            c.scheduled,
            c.delivered,
            c.print_spooled,
            c.failed
        ),
        (1, 1, 1, 2, 1)
    );
}
