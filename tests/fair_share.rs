//! Priorities and fair share under a flood, observed where it matters: at the delivery side
//! (which letter reached its mailbox first) and at the sender's side (whose receipts came back
//! while another sender flooded). Run on both backend pairs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use brevdue::domain::LetterId;
use brevdue::ingest::pb;
use brevdue::store::{LetterKey, Store};
use common::*;

fn with_priority(mut l: pb::Letter, p: pb::Priority) -> pb::Letter {
    l.priority = p as i32;
    l
}

/// When each receipted letter reached its mailbox.
async fn delivered_at(store: &dyn Store, sender: &str, receipts: &[pb::Receipt]) -> Vec<i64> {
    let mut out = Vec::with_capacity(receipts.len());
    for r in receipts {
        let id: LetterId = r.letter_id.parse().expect("letter id");
        let rec = store
            .letter(sender.parse().expect("cvr"), LetterKey::LetterId(id))
            .await
            .expect("store")
            .expect("the letter is stored");
        out.push(rec.delivered_at_ms.expect("delivered"));
    }
    out
}

fn all_mailbox(receipts: &[pb::Receipt]) {
    for r in receipts {
        assert_eq!(outcome(r), pb::Outcome::AcceptedMailbox, "{r:?}");
    }
}

/// A bank's backlog of 1,000 BULK letters is queued before an authority's URGENT letter and a
/// second bank's 10 BULK letters. When delivery runs, the urgent letter goes first, and the
/// second bank's letters go within the first rounds instead of after the backlog.
async fn a_backlog_yields_to_urgent_letters_and_to_other_senders(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    // Deliveries pile up in the queue while this instance only accepts.
    h.config.delivery.enabled = false;
    h.config.delivery.batch = 16;
    h.boot().await;

    let mut bank = h.client(BANK).await;
    let flood: Vec<pb::Letter> = (0..1000)
        .map(|i| {
            with_priority(
                letter(
                    ACTIVE_SUBSCRIBED,
                    &format!("Kontoudtog {i}"),
                    b"%PDF-1.4 bulk",
                ),
                pb::Priority::Bulk,
            )
        })
        .collect();
    let flood = stream(&mut bank, flood).await;
    all_mailbox(&flood);
    let mut other = h.client(OTHER_BANK).await;
    let others: Vec<pb::Letter> = (0..10)
        .map(|i| {
            with_priority(
                letter(ACTIVE_OTHER, &format!("Rentebrev {i}"), b"%PDF-1.4 other"),
                pb::Priority::Bulk,
            )
        })
        .collect();
    let others = stream(&mut other, others).await;
    all_mailbox(&others);
    let mut authority = h.client(AUTHORITY).await;
    let urgent = authority
        .submit_letter(with_priority(
            letter(ACTIVE_OTHER, "Afgørelse med frist", b"%PDF-1.4 urgent"),
            pb::Priority::Urgent,
        ))
        .await
        .expect("urgent letter")
        .into_inner();
    all_mailbox(std::slice::from_ref(&urgent));

    h.stop().await;
    assert_eq!(h.in_mailboxes(&[ACTIVE_SUBSCRIBED, ACTIVE_OTHER]).await, 0);
    h.config.delivery.enabled = true;
    h.boot().await;
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, 1011);

    let store = h.store().await;
    let flood_at = delivered_at(&*store, BANK, &flood).await;
    let others_at = delivered_at(&*store, OTHER_BANK, &others).await;
    let urgent_at = delivered_at(&*store, AUTHORITY, std::slice::from_ref(&urgent)).await[0];

    let before_urgent = flood_at.iter().filter(|t| **t < urgent_at).count();
    assert_eq!(
        before_urgent, 0,
        "no BULK letter of the backlog went before the URGENT one"
    );
    let after_urgent = flood_at.iter().filter(|t| **t > urgent_at).count();
    assert!(
        after_urgent >= 500,
        "the backlog was still there when the URGENT letter went ({after_urgent} after it)"
    );
    let others_done = others_at.iter().copied().max().expect("ten letters");
    let flood_before_others = flood_at.iter().filter(|t| **t < others_done).count();
    assert!(
        flood_before_others < 200,
        "the second bank's letters waited for {flood_before_others} of the first bank's 1,000"
    );
}
on_every_backend!(a_backlog_yields_to_urgent_letters_and_to_other_senders);

/// While a bank floods over four streams, an authority's letters sent one by one get their
/// receipts (accepted) long before the flood is through: the flood slows only itself.
async fn a_flooding_sender_does_not_block_another(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    // A small pipeline so the flood fills it and letters have to queue at the gate.
    h.config.admission.max_letters_in_flight = 32;
    h.boot().await;

    const STREAMS: usize = 4;
    const PER_STREAM: usize = 2000;
    let flood_done = Arc::new(AtomicUsize::new(0));
    let mut flooders = Vec::new();
    for s in 0..STREAMS {
        let mut bank = h.client(BANK).await;
        let done = flood_done.clone();
        flooders.push(tokio::spawn(async move {
            let letters = (0..PER_STREAM).map(move |i| {
                (
                    (),
                    letter(
                        ACTIVE_SUBSCRIBED,
                        &format!("Kontoudtog {s}-{i}"),
                        &[7u8; 1024],
                    ),
                )
            });
            let mut accepted = 0;
            brevdue::cli::client::stream_batch(&mut bank, letters, |_, r| {
                if outcome(&r) == pb::Outcome::AcceptedMailbox {
                    accepted += 1;
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
            .await
            .expect("flood streams");
            accepted
        }));
    }
    // The flood is under way before the authority starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while flood_done.load(Ordering::SeqCst) < 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flood did not get 200 letters in within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let mut authority = h.client(AUTHORITY).await;
    for i in 0..20 {
        let r = authority
            .submit_letter(letter(ACTIVE_OTHER, &format!("Afgørelse {i}"), b"%PDF-1.4"))
            .await
            .expect("the authority's letter is taken, not refused")
            .into_inner();
        assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    }
    let flood_when_authority_done = flood_done.load(Ordering::SeqCst);
    assert!(
        flood_when_authority_done < STREAMS * PER_STREAM * 3 / 4,
        "the authority's 20 letters were through only after {flood_when_authority_done} of the flood's {}",
        STREAMS * PER_STREAM
    );

    let mut accepted = 0;
    for f in flooders {
        accepted += f.await.expect("flood task");
    }
    assert_eq!(
        accepted,
        STREAMS * PER_STREAM,
        "the flood itself is accepted in full"
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, STREAMS * PER_STREAM + 20);
}
on_every_backend!(a_flooding_sender_does_not_block_another);
