//! What the store keeps for senders that follow their letters: per-sender event numbers in
//! commit order, terminal-only reads, pruning that makes an older cursor expired, recall that
//! wins or loses against delivery as a whole (also when both run at once, on PostgreSQL
//! without a deadlock reaching the caller), batch counts with refusals, and listing pages.

use brevdue::domain::{BatchId, RejectReason};
use brevdue::store::{BatchRejection, EventPage, EventQuery, ListQuery, StoredEvent};

use crate::fixtures::*;

contract!(
    events_are_numbered_per_sender_in_commit_order,
    pruned_events_make_an_older_cursor_expired,
    recall_changes_only_waiting_letters_and_purges_the_key,
    batch_counts_recall_and_refusals,
    recall_and_delivery_racing_end_each_letter_once,
    listing_pages_newest_first_with_filters,
);

fn batch(s: &str) -> BatchId {
    s.parse().expect("batch id")
}

fn in_batch(sender: Cvr, b: &str, text: &str) -> NewLetter {
    let mut l = letter(sender, text);
    l.batch_id = Some(batch(b));
    l.sender_reference = format!("ref-{text}");
    l
}

async fn read(
    store: &Arc<dyn Store>,
    sender: Cvr,
    after: u64,
    terminal_only: bool,
) -> Vec<StoredEvent> {
    match store
        .events(EventQuery {
            sender,
            after,
            terminal_only,
            limit: 10_000,
        })
        .await
        .expect("events")
    {
        EventPage::Events(e) => e,
        EventPage::Expired { pruned_through } => {
            panic!("expired after {after} (pruned through {pruned_through})")
        }
    }
}

async fn events_are_numbered_per_sender_in_commit_order(b: Backend) {
    let store = b.open().await;
    let bank: Vec<NewLetter> = (0..3)
        .map(|i| in_batch(cvr(BANK), "b", &format!("{i}")))
        .collect();
    let authority = vec![letter(cvr(AUTHORITY), "x"), letter(cvr(AUTHORITY), "y")];
    store.insert_letters(&bank).await.expect("insert");
    store.insert_letters(&authority).await.expect("insert");

    let events = read(&store, cvr(BANK), 0, false).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3], "per sender, from 1");
    for (e, l) in events.iter().zip(&bank) {
        assert_eq!(e.letter_id, l.letter_id);
        assert_eq!(e.state, LetterState::Accepted);
        assert_eq!(e.batch_id, Some(batch("b")));
        assert_eq!(e.sender_reference, l.sender_reference);
        assert_eq!(e.at_ms, l.accepted_at_ms);
    }
    let theirs = read(&store, cvr(AUTHORITY), 0, false).await;
    assert_eq!(theirs.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(
        theirs
            .iter()
            .all(|e| authority.iter().any(|l| l.letter_id == e.letter_id))
    );

    // Delivery writes the next number; a second store instance (another gateway) reads the
    // same log; `after` and `limit` page it; terminal_only keeps only the end.
    store
        .mark_delivered(
            &[bank[1].letter_id],
            LetterState::Delivered,
            1_700_000_005_000,
            None,
        )
        .await
        .expect("deliver");
    let other = b.open().await;
    let all = read(&other, cvr(BANK), 0, false).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].seq, 4);
    assert_eq!(all[3].state, LetterState::Delivered);
    assert_eq!(all[3].letter_id, bank[1].letter_id);
    assert_eq!(read(&other, cvr(BANK), 2, false).await[..], all[2..]);
    let page = match other
        .events(EventQuery {
            sender: cvr(BANK),
            after: 0,
            terminal_only: false,
            limit: 2,
        })
        .await
        .expect("events")
    {
        EventPage::Events(e) => e,
        EventPage::Expired { .. } => panic!("nothing was pruned"),
    };
    assert_eq!(page[..], all[..2]);
    let ends = read(&other, cvr(BANK), 0, true).await;
    assert_eq!(ends[..], all[3..]);
    assert!(
        read(&other, cvr(BANK), 4, false).await.is_empty(),
        "the present"
    );
}

async fn pruned_events_make_an_older_cursor_expired(b: Backend) {
    let store = b.open().await;
    let mut old = letter(cvr(BANK), "old");
    old.accepted_at_ms = 1_000;
    let mut older = letter(cvr(BANK), "older");
    older.accepted_at_ms = 1_000;
    let mut kept = letter(cvr(BANK), "kept");
    kept.accepted_at_ms = 9_000;
    store
        .insert_letters(&[old, older, kept.clone()])
        .await
        .expect("insert");
    assert_eq!(store.prune_events(5_000).await.expect("prune"), 2);
    // Again: nothing more to do, and nothing changes.
    assert_eq!(store.prune_events(5_000).await.expect("prune"), 0);
    let expired = store
        .events(EventQuery {
            sender: cvr(BANK),
            after: 1,
            terminal_only: false,
            limit: 10,
        })
        .await
        .expect("events");
    assert_eq!(expired, EventPage::Expired { pruned_through: 2 });
    // From the last pruned event, or from the start, the kept ones follow without a hole.
    for after in [0, 2] {
        let e = read(&store, cvr(BANK), after, false).await;
        assert_eq!(e.len(), 1, "after {after}");
        assert_eq!((e[0].seq, e[0].letter_id), (3, kept.letter_id));
    }
    // Another sender's log is not touched by this one's pruning.
    assert!(read(&store, cvr(AUTHORITY), 0, false).await.is_empty());
}

async fn recall_changes_only_waiting_letters_and_purges_the_key(b: Backend) {
    let store = b.open().await;
    let waiting = in_batch(cvr(BANK), "r", "waiting");
    let delivered = in_batch(cvr(BANK), "r", "delivered");
    store
        .insert_letters(&[waiting.clone(), delivered.clone()])
        .await
        .expect("insert");
    store
        .mark_delivered(
            &[delivered.letter_id],
            LetterState::Delivered,
            1_700_000_001_000,
            None,
        )
        .await
        .expect("deliver");

    let r = store
        .cancel_letter(
            cvr(BANK),
            LetterKey::LetterId(waiting.letter_id),
            1_700_000_002_000,
        )
        .await
        .expect("cancel")
        .expect("the letter");
    assert_eq!(r.state, LetterState::Cancelled);
    let kept = store
        .cancel_letter(
            cvr(BANK),
            LetterKey::LetterId(delivered.letter_id),
            1_700_000_002_000,
        )
        .await
        .expect("cancel")
        .expect("the letter");
    assert_eq!(
        kept.state,
        LetterState::Delivered,
        "a delivered letter stays delivered"
    );
    // Another sender cannot name it; a letter that does not exist is None.
    assert!(
        store
            .cancel_letter(cvr(AUTHORITY), LetterKey::LetterId(waiting.letter_id), 0)
            .await
            .expect("cancel")
            .is_none()
    );
    assert!(
        store
            .cancel_letter(cvr(BANK), LetterKey::LetterId(LetterId::new()), 0)
            .await
            .expect("cancel")
            .is_none()
    );
    // By message uuid too, and again: reported as it is, no second event.
    let again = store
        .cancel_letter(cvr(BANK), LetterKey::MessageUuid(waiting.message_uuid), 0)
        .await
        .expect("cancel")
        .expect("the letter");
    assert_eq!(again.state, LetterState::Cancelled);

    // Delivery afterwards finds nothing to deliver; the data key is gone.
    let changed = store
        .mark_delivered(
            &[waiting.letter_id],
            LetterState::Delivered,
            1_700_000_003_000,
            None,
        )
        .await
        .expect("deliver");
    assert!(changed.is_empty());
    assert_eq!(store.mailbox_count(&[1u8; 32]).await.expect("mailbox"), 1);
    let loaded = store
        .load_for_delivery(&[waiting.letter_id])
        .await
        .expect("load");
    assert_eq!(loaded.len(), 1);
    assert!(
        loaded[0].sealed.wrapped_key.is_empty(),
        "the data key survived recall"
    );
    assert!(
        open(
            &ring(),
            &Binding {
                letter_id: &waiting.letter_id.to_string(),
                sender: waiting.sender,
                recipient: &waiting.recipient_tag,
            },
            &loaded[0].sealed
        )
        .is_err(),
        "a recalled letter can never be opened"
    );

    let events = read(&store, cvr(BANK), 0, false).await;
    let states: Vec<(LetterId, LetterState)> =
        events.iter().map(|e| (e.letter_id, e.state)).collect();
    assert_eq!(
        states,
        vec![
            (waiting.letter_id, LetterState::Accepted),
            (delivered.letter_id, LetterState::Accepted),
            (delivered.letter_id, LetterState::Delivered),
            (waiting.letter_id, LetterState::Cancelled),
        ]
    );
    assert_eq!(events[3].at_ms, 1_700_000_002_000);
}

async fn batch_counts_recall_and_refusals(b: Backend) {
    let store = b.open().await;
    let letters: Vec<NewLetter> = (0..4)
        .map(|i| in_batch(cvr(BANK), "month-end", &format!("{i}")))
        .collect();
    store.insert_letters(&letters).await.expect("insert");
    store
        .insert_letters(&[in_batch(cvr(AUTHORITY), "month-end", "theirs")])
        .await
        .expect("insert");
    store
        .mark_delivered(
            &[letters[0].letter_id],
            LetterState::Delivered,
            1_700_000_009_000,
            None,
        )
        .await
        .expect("deliver");
    let refusal = |uuid: &str, reason| BatchRejection {
        sender: cvr(BANK),
        batch_id: batch("month-end"),
        message_uuid: uuid.to_string(),
        reason,
        at_ms: 1_700_000_000_500,
    };
    // A resent refusal counts once, with its latest reason.
    store
        .record_rejections(&[
            refusal("u1", RejectReason::NotReachable),
            refusal("u2", RejectReason::InvalidLetter),
        ])
        .await
        .expect("record");
    store
        .record_rejections(&[refusal("u2", RejectReason::NotReachable)])
        .await
        .expect("record again");

    assert_eq!(
        store
            .cancel_batch(cvr(BANK), &batch("month-end"), 1_700_000_010_000)
            .await
            .expect("cancel"),
        3
    );
    assert_eq!(
        store
            .cancel_batch(cvr(BANK), &batch("month-end"), 1_700_000_011_000)
            .await
            .expect("cancel"),
        0,
        "nothing left to recall"
    );
    let c = store
        .batch_counts(cvr(BANK), &batch("month-end"))
        .await
        .expect("counts");
    assert_eq!(c.letters, 4);
    assert_eq!(
        c.by_state,
        vec![(LetterState::Delivered, 1), (LetterState::Cancelled, 3)]
    );
    assert_eq!(c.by_route, vec![(Route::Mailbox, 4)]);
    assert_eq!(c.rejected, vec![(RejectReason::NotReachable, 2)]);
    assert_eq!(c.first_accepted_ms, Some(1_700_000_000_000));
    assert_eq!(c.last_delivered_ms, Some(1_700_000_009_000));
    // The other sender's batch of the same name is its own, and untouched.
    let theirs = store
        .batch_counts(cvr(AUTHORITY), &batch("month-end"))
        .await
        .expect("counts");
    assert_eq!(theirs.by_state, vec![(LetterState::Accepted, 1)]);
    assert!(
        store
            .batch_counts(cvr(BANK), &batch("never"))
            .await
            .expect("counts")
            .is_empty()
    );
}

async fn recall_and_delivery_racing_end_each_letter_once(b: Backend) {
    const LETTERS: usize = 600;
    let store = b.open().await;
    let other = b.open().await;
    let letters: Vec<NewLetter> = (0..LETTERS)
        .map(|i| in_batch(cvr(BANK), "race", &format!("{i}")))
        .collect();
    for chunk in letters.chunks(200) {
        store.insert_letters(chunk).await.expect("insert");
    }
    // Deliveries in small sorted batches, as delivery workers make them, from two "gateways",
    // while the batch is recalled over and over: no call may fail, whoever wins.
    let ids: Vec<LetterId> = letters.iter().map(|l| l.letter_id).collect();
    let deliver = |s: Arc<dyn Store>, ids: Vec<LetterId>| async move {
        let mut won = Vec::new();
        for chunk in ids.chunks(16) {
            won.extend(
                s.mark_delivered(chunk, LetterState::Delivered, 1_700_000_020_000, None)
                    .await
                    .expect("delivery never fails for a concurrent recall"),
            );
        }
        won
    };
    let recall = |s: Arc<dyn Store>| async move {
        let mut cancelled = 0;
        for _ in 0..20 {
            cancelled += s
                .cancel_batch(cvr(BANK), &batch("race"), 1_700_000_021_000)
                .await
                .expect("a batch recall never fails for a concurrent delivery");
        }
        cancelled
    };
    let mut reversed = ids.clone();
    reversed.reverse();
    let (a, z, cancelled) = tokio::join!(
        deliver(store.clone(), ids.clone()),
        deliver(other.clone(), reversed),
        recall(other.clone())
    );
    let delivered: HashSet<LetterId> = a.iter().chain(&z).copied().collect();
    assert_eq!(
        delivered.len(),
        a.len() + z.len(),
        "a letter delivered twice"
    );
    assert_eq!(delivered.len() as u64 + cancelled, LETTERS as u64);
    assert_eq!(
        store.mailbox_count(&[1u8; 32]).await.expect("mailbox"),
        delivered.len() as u64
    );
    let events = read(&store, cvr(BANK), 0, true).await;
    assert_eq!(events.len(), LETTERS, "one end per letter");
    for e in &events {
        let expected = if delivered.contains(&e.letter_id) {
            LetterState::Delivered
        } else {
            LetterState::Cancelled
        };
        assert_eq!(e.state, expected);
    }
}

async fn listing_pages_newest_first_with_filters(b: Backend) {
    let store = b.open().await;
    let mut letters = Vec::new();
    for i in 0..5 {
        let mut l = in_batch(
            cvr(BANK),
            if i % 2 == 0 { "even" } else { "odd" },
            &format!("{i}"),
        );
        // Two share a millisecond: the letter id breaks the tie.
        l.accepted_at_ms = 1_700_000_000_000 + [0, 10, 10, 20, 30][i];
        letters.push(l);
    }
    store.insert_letters(&letters).await.expect("insert");
    store
        .insert_letters(&[letter(cvr(AUTHORITY), "theirs")])
        .await
        .expect("insert");
    store
        .mark_delivered(
            &[letters[4].letter_id],
            LetterState::Delivered,
            1_700_000_040_000,
            None,
        )
        .await
        .expect("deliver");
    let query = |before, limit| ListQuery {
        sender: cvr(BANK),
        batch_id: None,
        state: None,
        accepted_from_ms: None,
        accepted_to_ms: None,
        before,
        limit,
    };
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_letters(&query(before, 2)).await.expect("list");
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| (r.accepted_at_ms, r.letter_id));
        seen.extend(page.into_iter().map(|r| r.letter_id));
    }
    let mut newest_first: Vec<&NewLetter> = letters.iter().collect();
    newest_first.sort_by_key(|l| std::cmp::Reverse((l.accepted_at_ms, l.letter_id)));
    assert_eq!(
        seen,
        newest_first.iter().map(|l| l.letter_id).collect::<Vec<_>>(),
        "each once, newest first"
    );

    let odd = store
        .list_letters(&ListQuery {
            batch_id: Some(batch("odd")),
            ..query(None, 10)
        })
        .await
        .expect("list");
    assert_eq!(
        odd.iter().map(|r| r.letter_id).collect::<Vec<_>>(),
        vec![letters[3].letter_id, letters[1].letter_id]
    );
    let delivered = store
        .list_letters(&ListQuery {
            state: Some(LetterState::Delivered),
            ..query(None, 10)
        })
        .await
        .expect("list");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].letter_id, letters[4].letter_id);
    let window = store
        .list_letters(&ListQuery {
            accepted_from_ms: Some(1_700_000_000_010),
            accepted_to_ms: Some(1_700_000_000_030),
            ..query(None, 10)
        })
        .await
        .expect("list");
    assert_eq!(window.len(), 3, "from inclusive, to exclusive");
}
