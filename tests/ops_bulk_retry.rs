//! The print volume breaks and 10,000 print letters end FAILED among the dead letters; once it
//! is mended, one bulk retry job over the operator API puts them all back, with progress that
//! starts at 0 of 10,000, only moves forward and ends done, and every letter is printed exactly
//! once. The job and its end are in the audit trail. On both backend pairs.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::delivery::{break_print_dir, mend_print_dir};
use common::operators::*;
use common::*;

const LETTERS: usize = 10_000;

async fn ten_thousand_dead_letters_are_retried_in_one_job(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    // The first failed attempt is past the maximum age: each letter goes straight to the dead.
    h.config.delivery.max_age = Duration::from_millis(1);
    h.add_operator("alice").await;
    h.boot().await;
    break_print_dir(h.data.path());

    let ids = send_many(&h, AUTHORITY, UNKNOWN, LETTERS, false).await;
    wait_for_failed(&h, LETTERS as u64).await;

    let mut ops = h.operator("alice").await;
    let page = ops
        .list_dead_letters(pb::DeadLetterQuery {
            selection: Some(selection(None, Some(pb::DeliveryRoute::Print))),
            page_size: 50,
            page_token: String::new(),
        })
        .await
        .expect("dead letters")
        .into_inner();
    assert_eq!(page.total, LETTERS as u64);
    assert_eq!(page.letters.len(), 50);
    assert!(!page.next_page_token.is_empty());
    for l in &page.letters {
        assert_eq!(l.sender_cvr, AUTHORITY);
        assert_eq!(l.state, pb::LetterState::Failed as i32);
        assert!(l.attempts >= 1);
        assert!(
            l.last_error.contains("print hand-off failed"),
            "{}",
            l.last_error
        );
        // Nothing of the letter itself: no title, no recipient.
        let shown = format!("{l:?}");
        assert!(
            !shown.contains(UNKNOWN) && !shown.contains("Brev"),
            "{shown}"
        );
    }

    mend_print_dir(h.data.path());
    let started = ops
        .start_job(pb::JobRequest {
            kind: pb::JobKind::JobRetry as i32,
            selection: Some(selection(Some(AUTHORITY), Some(pb::DeliveryRoute::Print))),
            request_id: "print-outage-retry".into(),
        })
        .await
        .expect("job starts")
        .into_inner();
    assert_eq!(started.total, LETTERS as u64);
    assert_eq!(
        started.done, 0,
        "the answer comes before any letter is done"
    );
    assert_eq!(started.state, pb::JobState::JobRunning as i32);
    assert_eq!(started.operator, "alice");

    // The same request again is the same job, not a second one.
    let again = ops
        .start_job(pb::JobRequest {
            kind: pb::JobKind::JobRetry as i32,
            selection: Some(selection(Some(AUTHORITY), Some(pb::DeliveryRoute::Print))),
            request_id: "print-outage-retry".into(),
        })
        .await
        .expect("same job")
        .into_inner();
    assert_eq!(again.job_id, started.job_id);

    let seen = follow_job(&mut ops, started.clone()).await;
    assert_progress(&seen);
    let done = seen.last().expect("done");
    assert_eq!(done.failed, 0, "{:?}", done.failures);
    assert!(done.finished_at_unix_ms >= done.created_at_unix_ms);
    // For the record, not asserted (the machine is shared): how long the job took.
    eprintln!(
        "{backend:?}: retry job of {LETTERS} letters took {} ms ({} progress answers seen)",
        done.finished_at_unix_ms - done.created_at_unix_ms,
        seen.len()
    );

    let counts = wait_for_all_delivered(&h).await;
    assert_eq!(counts.print_spooled, LETTERS as u64);
    assert_eq!(counts.failed, 0);
    let spooled = spooled_letters(h.data.path());
    assert_eq!(spooled.len(), LETTERS);
    for id in &ids {
        assert_eq!(spooled.get(id), Some(&1), "letter {id} printed once");
    }
    let queue = brevdue::queue::open(&h.config.queue_url(), false)
        .await
        .expect("queue");
    let stale = queue.dead_letters().await.expect("dead");
    assert!(
        stale.is_empty(),
        "{} dead-queue entries left after the retry job (started at {} ms), e.g. {:?}",
        stale.len(),
        started.created_at_unix_ms,
        stale.iter().take(3).collect::<Vec<_>>()
    );

    let jobs = ops
        .list_jobs(pb::ListJobsRequest { limit: 10 })
        .await
        .expect("jobs")
        .into_inner();
    assert_eq!(jobs.jobs.len(), 1, "one job for the two identical requests");

    let audit = ops
        .list_audit(pb::AuditQuery::default())
        .await
        .expect("audit")
        .into_inner();
    let started_entry = audit
        .entries
        .iter()
        .find(|a| a.action == "retry started")
        .expect("the start is audited");
    assert_eq!(started_entry.operator, "alice");
    assert_eq!(started_entry.letters, LETTERS as u64);
    assert!(
        started_entry
            .selection
            .contains(&format!("sender={AUTHORITY}"))
    );
    assert!(started_entry.selection.contains("route=print"));
    assert!(started_entry.result.contains(&started.job_id));
    let finished = audit
        .entries
        .iter()
        .find(|a| a.action == "retry finished")
        .expect("the end is audited");
    assert_eq!(finished.letters, LETTERS as u64);
    assert_eq!(
        audit
            .entries
            .iter()
            .filter(|a| a.action == "retry started")
            .count(),
        1
    );
    h.stop().await;
}
on_every_backend!(ten_thousand_dead_letters_are_retried_in_one_job);
