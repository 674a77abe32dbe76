//! Publish markers, what the outbox sweep reads: waiting letters without a marker (or with a
//! stale one, while due) are unqueued; delivered letters never are, and their markers go.

use crate::fixtures::*;

contract!(
    unqueued_is_what_has_no_fresh_marker,
    markers_of_finished_letters_are_dropped,
);

fn ids(p: &[brevdue::store::PendingDelivery]) -> Vec<brevdue::domain::LetterId> {
    let mut v: Vec<_> = p.iter().map(|p| p.letter_id).collect();
    v.sort();
    v
}

async fn unqueued_is_what_has_no_fresh_marker(b: Backend) {
    let store = b.open().await;
    let sender = cvr(AUTHORITY);
    let mut a = letter(sender, "a");
    a.accepted_at_ms = 1_000;
    let mut marked = letter(sender, "marked");
    marked.accepted_at_ms = 2_000;
    let mut late = letter(sender, "accepted after the cut");
    late.accepted_at_ms = 9_000;
    let mut scheduled = letter(sender, "scheduled far ahead");
    scheduled.accepted_at_ms = 3_000;
    scheduled.not_before_ms = Some(50_000);
    let mut done = letter(sender, "delivered");
    done.accepted_at_ms = 500;
    store
        .insert_letters(&[
            a.clone(),
            marked.clone(),
            late.clone(),
            scheduled.clone(),
            done.clone(),
        ])
        .await
        .expect("insert");
    store
        .mark_delivered(&[done.letter_id], LetterState::Delivered, 600, None)
        .await
        .expect("deliver");
    store
        .mark_queued(&[marked.letter_id, scheduled.letter_id], 4_000)
        .await
        .expect("mark");
    // Marking twice is harmless.
    store
        .mark_queued(&[marked.letter_id], 4_000)
        .await
        .expect("mark again");

    // Nothing is stale yet: only the unmarked letters accepted by the cut.
    let got = store.unqueued(5_000, 0, 100).await.expect("unqueued");
    assert_eq!(ids(&got), ids_of(&[&a]));
    assert_eq!(got[0].accepted_at_ms, 1_000);
    // Markers older than the stale cut, letters due: queued again; the scheduled letter is
    // not due before the cut, so its marker still holds.
    let got = store.unqueued(10_000, 5_000, 100).await.expect("unqueued");
    assert_eq!(ids(&got), ids_of(&[&a, &marked, &late]));
    // Oldest first, at most `limit`.
    let got = store.unqueued(10_000, 5_000, 1).await.expect("unqueued");
    assert_eq!(ids(&got), ids_of(&[&a]));
    // Once due long enough, the scheduled letter's marker is stale too.
    let got = store.unqueued(10_000, 60_000, 100).await.expect("unqueued");
    assert_eq!(ids(&got), ids_of(&[&a, &marked, &late, &scheduled]));
}

fn ids_of(l: &[&brevdue::store::NewLetter]) -> Vec<brevdue::domain::LetterId> {
    let mut v: Vec<_> = l.iter().map(|l| l.letter_id).collect();
    v.sort();
    v
}

async fn markers_of_finished_letters_are_dropped(b: Backend) {
    let store = b.open().await;
    let sender = cvr(AUTHORITY);
    let waiting = letter(sender, "waiting");
    let done = letter(sender, "done");
    store
        .insert_letters(&[waiting.clone(), done.clone()])
        .await
        .expect("insert");
    store
        .mark_queued(&[waiting.letter_id, done.letter_id], 1)
        .await
        .expect("mark");
    store
        .mark_delivered(&[done.letter_id], LetterState::Delivered, 2, None)
        .await
        .expect("deliver");
    assert_eq!(store.forget_finished_marks(100).await.expect("forget"), 1);
    assert_eq!(store.forget_finished_marks(100).await.expect("forget"), 0);
    // The waiting letter's marker stays: it is not unqueued.
    let got = store.unqueued(i64::MAX, 0, 100).await.expect("unqueued");
    assert!(got.is_empty(), "{got:?}");
}
