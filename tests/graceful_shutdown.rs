//! SIGTERM in the middle of a big batch: the gateway stops reading the stream, finishes and
//! receipts the letters it already read, ends the stream UNAVAILABLE, and exits cleanly. Every
//! receipt it sent is honoured after the restart (the letter is there and is delivered once);
//! the sender resends everything without a receipt, and nothing is lost or doubled.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use brevdue::ingest::pb;
use common::*;
use tonic::Code;

const LETTERS: usize = 6000;
const TERM_AFTER: usize = 1000;

fn serve(h: &Harness) -> (ServeProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command.args(h.serve_args(0, 0)).env("BREVDUE_LOG", "warn");
    spawn_serve(command)
}

async fn exits_cleanly(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "clean exit on SIGTERM: {status:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway did not exit within 60 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sigterm_mid_batch_loses_nothing_and_honours_every_receipt(backend: Backend) {
    let h = Harness::prepare_on(backend).await;
    let letters: Vec<pb::Letter> = (0..LETTERS)
        .map(|i| {
            letter(
                ACTIVE_SUBSCRIBED,
                &format!("Årsopgørelse {i}"),
                &[b'p'; 2048],
            )
        })
        .collect();

    let (gateway, server) = serve(&h);
    let mut client = connect(&server, &h.cert_dir(BANK)).await;
    let mut receipts = client
        .submit_batch(futures::stream::iter(letters.clone()))
        .await
        .expect("stream opens")
        .into_inner();
    let mut first_run: HashMap<String, pb::Receipt> = HashMap::new();
    let mut termed = false;
    let end = loop {
        match receipts.message().await {
            Ok(Some(r)) => {
                assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox, "{r:?}");
                first_run.insert(r.message_uuid.clone(), r);
                if first_run.len() == TERM_AFTER && !termed {
                    sigterm(&gateway);
                    termed = true;
                }
            }
            Ok(None) => break None,
            Err(status) => break Some(status),
        }
    };
    assert!(
        termed,
        "the batch ended before {TERM_AFTER} receipts: {end:?}"
    );
    let end = end.expect("the stream ends with an error, not as if the batch were complete");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(end.message().contains("shutting down"), "{}", end.message());
    assert!(
        first_run.len() < LETTERS,
        "SIGTERM came after {TERM_AFTER} receipts; the stream went on to all {LETTERS}"
    );
    exits_cleanly(gateway.take()).await;

    // After the restart every receipt is honoured, and the sender resends the whole batch
    // (as a sender does after any doubt): what had a receipt comes back as a duplicate.
    let (gateway, server) = serve(&h);
    let mut client = connect(&server, &h.cert_dir(BANK)).await;
    for r in first_run.values().take(50) {
        let status = client
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::LetterId(r.letter_id.clone())),
            })
            .await
            .expect("a receipted letter is there after the restart")
            .into_inner();
        assert_eq!(status.content_sha256, r.content_sha256);
    }
    let second_run = stream(&mut client, letters).await;
    assert_eq!(second_run.len(), LETTERS);
    for r in &second_run {
        assert_eq!(outcome(r), pb::Outcome::AcceptedMailbox, "{r:?}");
        if let Some(first) = first_run.get(&r.message_uuid) {
            assert!(r.duplicate, "a receipted letter resent is a duplicate");
            assert_eq!(r.letter_id, first.letter_id, "same letter as receipted");
        }
    }
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered as usize, LETTERS);
    assert_eq!(h.in_mailboxes(&[ACTIVE_SUBSCRIBED]).await as usize, LETTERS);
    sigterm(&gateway);
    exits_cleanly(gateway.take()).await;
}
on_every_backend!(sigterm_mid_batch_loses_nothing_and_honours_every_receipt);
