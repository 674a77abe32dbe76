//! A sender suspended while one of its SubmitBatch streams is open: the next letter on that
//! stream is refused, the stream ends PERMISSION_DENIED, and the letter is not stored. Unary
//! calls and streams follow the same rule.

mod common;

use std::time::{Duration, Instant};

use brevdue::ingest::pb;
use common::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

async fn a_stream_open_across_a_suspension_ends_permission_denied(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let mut bank = h.client(BANK).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(letter(ACTIVE_SUBSCRIBED, "Før suspension", b"%PDF-1.4"))
        .await
        .expect("send");
    let mut receipts = bank
        .submit_batch(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let first = receipts.message().await.expect("receipt").expect("one");
    assert_eq!(outcome(&first), pb::Outcome::AcceptedMailbox);

    brevdue::cli::admin::senders_suspend(&h.config, BANK.parse().expect("cvr"), true)
        .await
        .expect("suspend");
    // Wait until the gateway has the suspension: a new unary call is refused.
    let mut probe = h.client(BANK).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match probe
            .check_recipient(pb::RecipientQuery {
                recipient: letter(ACTIVE_SUBSCRIBED, "x", b"x").recipient,
                print_fallback: false,
            })
            .await
        {
            Err(s) if s.code() == Code::PermissionDenied => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the suspension never took effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The open stream's next letter: refused, and the stream ends.
    let after = letter(ACTIVE_SUBSCRIBED, "Efter suspension", b"%PDF-1.4");
    tx.send(after.clone()).await.expect("send");
    match receipts.message().await {
        Err(s) => {
            assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
            assert!(s.message().contains("suspended"), "{}", s.message());
        }
        Ok(Some(r)) => panic!(
            "a suspended sender's letter on an open stream got a receipt: {:?}",
            outcome(&r)
        ),
        Ok(None) => panic!("the stream ended without saying why"),
    }
    drop(tx);

    // Nothing of the refused letter was stored.
    let counts = h.store().await.state_counts().await.expect("counts");
    let all = counts.accepted + counts.scheduled + counts.delivered + counts.print_spooled;
    assert_eq!(all, 1, "only the letter before the suspension is stored");
    h.stop().await;
}

on_every_backend!(a_stream_open_across_a_suspension_ends_permission_denied);
