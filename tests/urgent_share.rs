//! URGENT is a share, not a right: a sender over its urgent share is refused (unary, with a
//! retry hint) or paced (stream) while another sender's urgent letters pass at once; and one
//! sender cannot hold every stream.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn urgent(to: &str, title: &str) -> pb::Letter {
    let mut l = letter(to, title, b"%PDF-1.4 urgent");
    l.priority = pb::Priority::Urgent as i32;
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_above_the_share_is_refused_while_others_pass() {
    let mut h = Harness::prepare().await;
    h.config.admission.urgent_rate_per_sender = 1;
    h.config.admission.urgent_burst_per_sender = 3;
    h.config.admission.max_streams_per_sender = 2;
    h.boot().await;
    let mut bank = h.client(BANK).await;
    let mut other = h.client(OTHER_BANK).await;

    let mut refused = None;
    for i in 0..20 {
        match bank
            .submit_letter(urgent(ACTIVE_SUBSCRIBED, &format!("Haster {i}")))
            .await
        {
            Ok(r) => assert_eq!(outcome(r.get_ref()), pb::Outcome::AcceptedMailbox),
            Err(s) => {
                refused = Some(s);
                break;
            }
        }
    }
    let refused = refused.expect("20 URGENT letters at once went through a share of 3");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("urgent share"),
        "{}",
        refused.message()
    );
    let wait: u64 = refused
        .metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a retry hint");
    assert!(wait > 0 && wait <= 1000, "{wait} ms");
    // The other bank's urgent letter passes at once, and so does the bank's NORMAL letter.
    let r = other
        .submit_letter(urgent(ACTIVE_OTHER, "Anden banks hastebrev"))
        .await
        .expect("another sender's urgent letter passes")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    let r = bank
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Almindeligt", b"%PDF-1.4"))
        .await
        .expect("the bank's normal letter passes")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);

    // On a stream, URGENT letters over the share are paced: every one gets its receipt.
    let letters: Vec<pb::Letter> = (0..4)
        .map(|i| urgent(ACTIVE_SUBSCRIBED, &format!("Strøm {i}")))
        .collect();
    let receipts = stream(&mut bank, letters).await;
    assert_eq!(receipts.len(), 4);
    assert!(
        receipts
            .iter()
            .all(|r| outcome(r) == pb::Outcome::AcceptedMailbox)
    );

    // Two streams per sender: the bank's third is refused, the other bank's first is not.
    let mut open = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::Letter>(1);
        let mut c = bank.clone();
        let s = c
            .submit_batch(ReceiverStream::new(rx))
            .await
            .expect("a stream within the cap");
        open.push((tx, s));
    }
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::Letter>(1);
    let third = bank
        .clone()
        .submit_batch(ReceiverStream::new(rx))
        .await
        .expect_err("the bank's third stream is refused");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains(BANK), "{}", third.message());
    let (otx, orx) = tokio::sync::mpsc::channel::<pb::Letter>(1);
    let theirs = other
        .submit_batch(ReceiverStream::new(orx))
        .await
        .expect("another sender's stream opens");
    drop((otx, theirs, open));
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.stop().await;
}
