//! Every row of the routing table, end to end: a real gateway, real senders over mutual TLS.

mod common;

use brevdue::ingest::pb;
use common::*;

use pb::Outcome::{AcceptedMailbox, AcceptedPrint, Rejected};
use pb::RejectReason::{NotReachable, RecipientClosed, Unspecified};

async fn submit(
    h: &Harness,
    sender: &str,
    to: &str,
    fallback: bool,
) -> (pb::Outcome, pb::RejectReason) {
    let mut c = h.client(sender).await;
    let mut l = letter(to, "Routing", b"%PDF-1.4 routing");
    l.print_fallback = fallback;
    let r = c.submit_letter(l).await.expect("submit").into_inner();
    (outcome(&r), reason(&r))
}

async fn check(
    h: &Harness,
    sender: &str,
    to: &str,
    fallback: bool,
) -> (pb::Reach, pb::RejectReason) {
    let mut c = h.client(sender).await;
    let l = letter(to, "x", b"x");
    let r = c
        .check_recipient(pb::RecipientQuery {
            recipient: l.recipient,
            print_fallback: fallback,
        })
        .await
        .expect("check")
        .into_inner();
    (
        pb::Reach::try_from(r.reach).expect("reach"),
        pb::RejectReason::try_from(r.reason).expect("reason"),
    )
}

async fn every_row_of_the_routing_table(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let child = child_cpr();
    let rows: Vec<(&str, &str, bool, (pb::Outcome, pb::RejectReason))> = vec![
        // PUBLIC, CLOSED recipient
        (AUTHORITY, CLOSED, false, (Rejected, RecipientClosed)),
        (AUTHORITY, COMPANY_CLOSED, true, (Rejected, RecipientClosed)),
        // PRIVATE, CLOSED recipient: like any unsubscribed one (SPEC §1, amended)
        (BANK, CLOSED, false, (Rejected, NotReachable)),
        (BANK, CLOSED, true, (AcceptedPrint, Unspecified)),
        (BANK, COMPANY_CLOSED, false, (Rejected, NotReachable)),
        (BANK, COMPANY_CLOSED, true, (AcceptedPrint, Unspecified)),
        // PUBLIC, ACTIVE -> MAILBOX
        (
            AUTHORITY,
            ACTIVE_OTHER,
            false,
            (AcceptedMailbox, Unspecified),
        ),
        (AUTHORITY, COMPANY, false, (AcceptedMailbox, Unspecified)),
        // PUBLIC, EXEMPT or UNKNOWN (including children) -> PRINT
        (AUTHORITY, EXEMPT, false, (AcceptedPrint, Unspecified)),
        (AUTHORITY, UNKNOWN, false, (AcceptedPrint, Unspecified)),
        (
            AUTHORITY,
            child.as_str(),
            false,
            (AcceptedPrint, Unspecified),
        ),
        // PRIVATE, ACTIVE or EXEMPT, subscribed -> MAILBOX
        (
            BANK,
            ACTIVE_SUBSCRIBED,
            false,
            (AcceptedMailbox, Unspecified),
        ),
        (
            BANK,
            EXEMPT_SUBSCRIBED,
            false,
            (AcceptedMailbox, Unspecified),
        ),
        (BANK, COMPANY, false, (AcceptedMailbox, Unspecified)),
        // PRIVATE, anything else, with print_fallback -> PRINT
        (BANK, ACTIVE_OTHER, true, (AcceptedPrint, Unspecified)),
        (BANK, EXEMPT, true, (AcceptedPrint, Unspecified)),
        (BANK, UNKNOWN, true, (AcceptedPrint, Unspecified)),
        (BANK, child.as_str(), true, (AcceptedPrint, Unspecified)),
        // PRIVATE, anything else, no print_fallback -> NOT_REACHABLE (never why)
        (BANK, ACTIVE_OTHER, false, (Rejected, NotReachable)),
        (BANK, EXEMPT, false, (Rejected, NotReachable)),
        (BANK, UNKNOWN, false, (Rejected, NotReachable)),
        (BANK, child.as_str(), false, (Rejected, NotReachable)),
    ];
    for (sender, to, fallback, expected) in &rows {
        assert_eq!(
            submit(&h, sender, to, *fallback).await,
            *expected,
            "{sender} -> {to} fallback={fallback}"
        );
        let reach = check(&h, sender, to, *fallback).await;
        let expected_reach = match expected.0 {
            AcceptedMailbox => (pb::Reach::Mailbox, Unspecified),
            AcceptedPrint => (pb::Reach::Print, Unspecified),
            _ => (pb::Reach::None, expected.1),
        };
        assert_eq!(
            reach, expected_reach,
            "check {sender} -> {to} fallback={fallback}"
        );
    }

    // Every accepted letter is delivered where its receipt said.
    let accepted_mailbox = rows.iter().filter(|r| r.3.0 == AcceptedMailbox).count() as u64;
    let accepted_print = rows.iter().filter(|r| r.3.0 == AcceptedPrint).count() as u64;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, accepted_mailbox);
    assert_eq!(counts.print_spooled, accepted_print);
    assert_eq!(spooled_letters(h.data.path()).len() as u64, accepted_print);
    h.stop().await;
}

on_every_backend!(every_row_of_the_routing_table);
