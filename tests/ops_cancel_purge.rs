//! Bulk cancel and purge by sender touch only that sender's letters: a cancel over one sender's
//! waiting print letters leaves another sender's alone; a purge over one sender's dead letters
//! leaves the other's, which a retry then delivers while the purged ones are refused with why.
//! A job that may not act on the states asked for is refused and changes nothing. Every action
//! is in the audit trail. On both backend pairs.

mod common;

use std::time::Duration;

use brevdue::domain::LetterState;
use brevdue::ingest::pb;
use common::delivery::{break_print_dir, mend_print_dir};
use common::operators::*;
use common::*;
use tonic::Code;

async fn cancel_and_purge_by_sender_touch_only_that_sender(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.max_age = Duration::from_millis(1);
    h.add_operator("alice").await;
    h.boot().await;
    let mut ops = h.operator("alice").await;
    hold(&mut ops, pb::DeliveryRoute::Print, true).await;

    let authority = send_many(&h, AUTHORITY, UNKNOWN, 30, false).await;
    let bank = send_many(&h, BANK, UNKNOWN, 20, true).await;

    // Cancel the authority's waiting letters only.
    let job = start(
        &mut ops,
        pb::JobKind::JobCancel,
        selection(Some(AUTHORITY), None),
    )
    .await;
    assert_eq!(job.total, 30);
    let seen = follow_job(&mut ops, job).await;
    assert_progress(&seen);
    assert_eq!(seen.last().expect("done").failed, 0);
    assert_eq!(
        states_of(&h, AUTHORITY, &authority)
            .await
            .get(&LetterState::Cancelled),
        Some(&30)
    );
    assert_eq!(
        states_of(&h, BANK, &bank).await.get(&LetterState::Accepted),
        Some(&20)
    );
    // The sender sees its letter cancelled.
    let mut c = h.client(AUTHORITY).await;
    let s = common::delivery::status(&mut c, &authority[0]).await;
    assert_eq!(s.state, pb::LetterState::Cancelled as i32);
    assert!(s.detail.contains("gateway operator"), "{}", s.detail);

    // More authority letters, then print is released onto a broken printer: all that wait die.
    let authority2 = send_many(&h, AUTHORITY, UNKNOWN, 10, false).await;
    break_print_dir(h.data.path());
    hold(&mut ops, pb::DeliveryRoute::Print, false).await;
    wait_for_failed(&h, 30).await;

    // A cancel may not touch dead letters: refused, nothing changes.
    let refused = ops
        .start_job(pb::JobRequest {
            kind: pb::JobKind::JobCancel as i32,
            selection: Some(pb::Selection {
                states: vec![pb::LetterState::Failed as i32],
                ..Default::default()
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("FAILED"),
        "{}",
        refused.message()
    );

    // Purge the bank's dead letters only.
    let job = start(&mut ops, pb::JobKind::JobPurge, selection(Some(BANK), None)).await;
    assert_eq!(job.total, 20);
    let seen = follow_job(&mut ops, job).await;
    assert_progress(&seen);
    assert_eq!(seen.last().expect("done").failed, 0);
    let mut b = h.client(BANK).await;
    let s = common::delivery::status(&mut b, &bank[0]).await;
    assert_eq!(s.state, pb::LetterState::Failed as i32);
    assert!(s.detail.contains("purged"), "{}", s.detail);
    let s = common::delivery::status(&mut c, &authority2[0]).await;
    assert!(!s.detail.contains("purged"), "{}", s.detail);

    // The printer is back; a retry of every dead letter prints the authority's and refuses the
    // purged ones, each with why.
    mend_print_dir(h.data.path());
    let job = start(
        &mut ops,
        pb::JobKind::JobRetry,
        selection(None, Some(pb::DeliveryRoute::Print)),
    )
    .await;
    assert_eq!(job.total, 30);
    let seen = follow_job(&mut ops, job).await;
    assert_progress(&seen);
    let done = seen.last().expect("done");
    assert_eq!(done.failed, 20);
    assert_eq!(done.failures.len(), 20);
    assert!(
        done.failures
            .iter()
            .all(|f| f.reason.contains("purged") && bank.contains(&f.letter_id))
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, 10);
    assert_eq!(counts.failed, 20);
    assert_eq!(counts.cancelled, 30);
    let spooled = spooled_letters(h.data.path());
    for id in &authority2 {
        assert_eq!(spooled.get(id), Some(&1));
    }

    let audit = ops
        .list_audit(pb::AuditQuery::default())
        .await
        .expect("audit")
        .into_inner();
    let actions: Vec<(&str, u64, &str)> = audit
        .entries
        .iter()
        .rev()
        .filter(|a| a.operator == "alice")
        .map(|a| (a.action.as_str(), a.letters, a.result.as_str()))
        .collect();
    let has = |action: &str, letters: u64| {
        actions
            .iter()
            .any(|(a, n, _)| *a == action && *n == letters)
    };
    assert!(
        has("cancel started", 30) && has("cancel finished", 30),
        "{actions:#?}"
    );
    assert!(
        has("purge started", 20) && has("purge finished", 20),
        "{actions:#?}"
    );
    assert!(
        has("retry started", 30) && has("retry finished", 10),
        "{actions:#?}"
    );
    assert!(
        actions
            .iter()
            .any(|(a, _, r)| *a == "cancel started" && r.starts_with("refused")),
        "{actions:#?}"
    );
    assert!(audit.entries.iter().any(|a| a.action == "purge started" && a.selection.contains(&format!("sender={BANK}"))));
    h.stop().await;
}
on_every_backend!(cancel_and_purge_by_sender_touch_only_that_sender);
