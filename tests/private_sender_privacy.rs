//! A private sender cannot tell a closed (deceased, ceased) recipient from an unknown or an
//! unsubscribed one, in CheckRecipient answers or in receipts; its questions are held to its
//! rate; and how much it asks is counted per sender on /metrics.

mod common;

use std::time::{Duration, Instant};

use brevdue::cli::admin::{LimitsChange, senders_limits};
use brevdue::ingest::pb;
use common::*;
use tonic::Code;

async fn closed_unknown_and_unsubscribed_look_the_same(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut bank = h.client(BANK).await;
    let child = child_cpr();
    let unsubscribed = [
        CLOSED,
        COMPANY_CLOSED,
        UNKNOWN,
        EXEMPT,
        ACTIVE_OTHER,
        child.as_str(),
    ];
    for fallback in [false, true] {
        let mut answers = Vec::new();
        let mut receipts = Vec::new();
        for to in unsubscribed {
            let r = bank
                .check_recipient(pb::RecipientQuery {
                    recipient: letter(to, "x", b"x").recipient,
                    print_fallback: fallback,
                })
                .await
                .expect("check")
                .into_inner();
            answers.push((to, r.reach, r.reason));
            let mut l = letter(to, "Til dødsboet?", b"%PDF-1.4");
            l.print_fallback = fallback;
            let r = bank.submit_letter(l).await.expect("submit").into_inner();
            receipts.push((to, r.outcome, r.reason, r.detail));
        }
        for (to, reach, reason) in &answers[1..] {
            assert_eq!(
                (*reach, *reason),
                (answers[0].1, answers[0].2),
                "CheckRecipient for {to} differs from {} (fallback {fallback})",
                answers[0].0
            );
        }
        for (to, outcome, reason, detail) in &receipts[1..] {
            assert_eq!(
                (outcome, reason, detail),
                (&receipts[0].1, &receipts[0].2, &receipts[0].3),
                "the receipt for {to} differs from {} (fallback {fallback})",
                receipts[0].0
            );
        }
        let expected = if fallback {
            pb::Outcome::AcceptedPrint
        } else {
            pb::Outcome::Rejected
        };
        assert_eq!(receipts[0].1, expected as i32, "fallback {fallback}");
    }

    // Counted per sender on /metrics.
    let text = h.metrics().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("brevdue_recipient_checks_total{") && l.contains(BANK))
        .unwrap_or_else(|| panic!("no recipient check count for {BANK} in /metrics"));
    let count: f64 = line
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a count");
    assert!(count >= 12.0, "{line}");
    assert!(!text.contains(CLOSED), "no recipient ids in metrics");

    // Questions are held to the sender's rate, with a retry hint.
    senders_limits(
        &h.config,
        BANK.parse().expect("cvr"),
        LimitsChange {
            weight: None,
            rate: Some(Some(5)),
            burst: Some(Some(5)),
            in_flight: None,
            max_size: None,
        },
    )
    .await
    .expect("limits");
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let asked = bank
            .check_recipient(pb::RecipientQuery {
                recipient: letter(UNKNOWN, "x", b"x").recipient,
                print_fallback: false,
            })
            .await;
        if let Err(s) = asked {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "CheckRecipient was never held to the rate of 5/s"
        );
    };
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.metadata().get("retry-after-ms").is_some());
    let status = bank
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::MessageUuid(
                uuid::Uuid::new_v4().to_string(),
            )),
        })
        .await
        .expect_err("over the rate, or not found");
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::NotFound),
        "{status:?}"
    );
}

on_every_backend!(closed_unknown_and_unsubscribed_look_the_same);
