//! An operator holds print during a printer outage: print letters wait (never tried, never
//! failed, even well past their maximum age) while mailbox letters go on; the sender
//! drill-down shows them waiting; once print is released they are all printed. Hold and
//! release are in the audit trail. On both backend pairs.

mod common;

use std::time::Duration;

use brevdue::domain::LetterState;
use brevdue::ingest::pb;
use common::delivery::{break_print_dir, mend_print_dir};
use common::operators::*;
use common::*;

async fn a_held_route_delays_and_never_fails_letters(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.config.delivery.max_age = Duration::from_millis(300);
    h.add_operator("alice").await;
    h.boot().await;
    let mut ops = h.operator("alice").await;

    let holds = hold(&mut ops, pb::DeliveryRoute::Print, true).await;
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].route, pb::DeliveryRoute::Print as i32);
    assert_eq!(holds[0].operator, "alice");
    assert_eq!(holds[0].reason, "printer outage");
    // Holding again changes nothing.
    assert_eq!(
        hold(&mut ops, pb::DeliveryRoute::Print, true).await.len(),
        1
    );
    // The printer is broken too: a letter tried now would fail at once.
    break_print_dir(h.data.path());

    let print = send_many(&h, AUTHORITY, UNKNOWN, 20, false).await;
    let mailbox = send_many(&h, AUTHORITY, ACTIVE_OTHER, 5, false).await;
    // Mailbox letters are delivered while print is held.
    common::delivery::wait_until(
        Duration::from_secs(60),
        "mailbox letters delivered",
        || async {
            let s = states_of(&h, AUTHORITY, &mailbox).await;
            (s.get(&LetterState::Delivered) == Some(&5)).then_some(())
        },
    )
    .await;
    // Well past the maximum age (several times it), the held letters still wait, untried.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let store = h.store().await;
    let cvr = AUTHORITY.parse().expect("cvr");
    for id in &print {
        let r = store
            .letter(
                cvr,
                brevdue::store::LetterKey::LetterId(id.parse().expect("id")),
            )
            .await
            .expect("letter")
            .expect("stored");
        assert_eq!(r.state, LetterState::Accepted, "{r:?}");
        assert_eq!(r.attempts, 0, "a held letter was tried: {r:?}");
    }

    let report = ops
        .get_sender(pb::SenderRequest {
            sender_cvr: AUTHORITY.into(),
        })
        .await
        .expect("drill-down")
        .into_inner();
    let count = |name: &str| {
        report
            .letters_by_state
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.count)
            .unwrap_or(0)
    };
    assert_eq!(count("ACCEPTED"), 20);
    assert_eq!(count("DELIVERED"), 5);
    assert!(report.oldest_waiting_ms >= 1500, "{report:?}");
    assert_eq!(report.accepted_last_minute, 25);
    assert_eq!(report.name, "Test Styrelsen");
    assert!(!report.suspended);

    // The printer is fixed and print released: every held letter is printed, none failed.
    mend_print_dir(h.data.path());
    assert!(
        hold(&mut ops, pb::DeliveryRoute::Print, false)
            .await
            .is_empty()
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, 20);
    assert_eq!(counts.failed, 0);
    let spooled = spooled_letters(h.data.path());
    for id in &print {
        assert_eq!(spooled.get(id), Some(&1));
    }

    let audit = ops
        .list_audit(pb::AuditQuery::default())
        .await
        .expect("audit")
        .into_inner();
    let by_alice: Vec<(&str, &str)> = audit
        .entries
        .iter()
        .rev()
        .filter(|a| a.operator == "alice")
        .map(|a| (a.action.as_str(), a.result.as_str()))
        .collect();
    assert_eq!(by_alice.len(), 3, "{by_alice:?}");
    assert_eq!(by_alice[0], ("hold", "ok"));
    assert_eq!(by_alice[1], ("hold", "ok: held already"));
    assert_eq!(by_alice[2].0, "release");
    assert!(by_alice[2].1.starts_with("ok: held "), "{by_alice:?}");
    assert!(
        audit
            .entries
            .iter()
            .filter(|a| a.operator == "alice")
            .all(|a| a.selection.contains("route=print"))
    );
    h.stop().await;
}
on_every_backend!(a_held_route_delays_and_never_fails_letters);
