//! Kill the gateway with SIGKILL in the middle of a streamed batch: every letter that got an
//! accepted receipt is there after restart and is delivered exactly once, and resending the whole
//! batch creates no duplicate.

mod common;

use std::collections::HashMap;
use std::process::Command;

use brevdue::ingest::pb;
use common::*;
use tokio_stream::wrappers::ReceiverStream;

/// A gateway on ports of its own choosing, and its gRPC URL.
fn spawn_gateway(h: &Harness) -> (ServeProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command.args(h.serve_args(0, 0)).env("BREVDUE_LOG", "warn");
    spawn_serve(command)
}

async fn sigkill_mid_batch_loses_nothing_and_duplicates_nothing(backend: Backend) {
    let h = Harness::prepare_on(backend).await;
    let (gateway, server) = spawn_gateway(&h);
    let mut gateway = gateway.take();

    let recipients = [ACTIVE_OTHER, COMPANY, EXEMPT, UNKNOWN];
    let letters: Vec<pb::Letter> = (0..4000)
        .map(|i| {
            letter(
                recipients[i % recipients.len()],
                "Crash test",
                &vec![b'x'; 2048],
            )
        })
        .collect();

    // Stream by hand so the kill lands mid-stream with letters in flight.
    let mut c = connect(&server, &h.cert_dir(AUTHORITY)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let feed = letters.clone();
    let feeder = tokio::spawn(async move {
        for l in feed {
            if tx.send(l).await.is_err() {
                break;
            }
        }
    });
    let mut receipts = c
        .submit_batch(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    let mut accepted: HashMap<String, pb::Receipt> = HashMap::new();
    let mut killed = false;
    while let Ok(Some(r)) = receipts.message().await {
        assert_ne!(outcome(&r), pb::Outcome::Rejected, "{r:?}");
        accepted.insert(r.message_uuid.clone(), r);
        if accepted.len() == 1000 && !killed {
            gateway.kill().expect("SIGKILL");
            killed = true;
        }
    }
    let _ = gateway.wait();
    feeder.abort();
    assert!(killed, "the gateway was killed mid-batch");
    assert!(
        accepted.len() >= 1000 && accepted.len() < letters.len(),
        "{}",
        accepted.len()
    );

    // Restart; every accepted letter is there and gets delivered.
    let (gateway, server) = spawn_gateway(&h);
    let mut c = connect(&server, &h.cert_dir(AUTHORITY)).await;
    h.wait_for_delivery().await;
    for r in accepted.values() {
        let s = c
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::LetterId(r.letter_id.clone())),
            })
            .await
            .expect("accepted letter survived the crash")
            .into_inner();
        let state = pb::LetterState::try_from(s.state).expect("state");
        let expected = if outcome(r) == pb::Outcome::AcceptedMailbox {
            pb::LetterState::Delivered
        } else {
            pb::LetterState::PrintSpooled
        };
        assert_eq!(state, expected);
        assert_eq!(s.content_sha256, r.content_sha256);
    }

    // Resend the whole batch: receipted letters are duplicates with their original ids.
    let again = stream(&mut c, letters.clone()).await;
    assert_eq!(again.len(), letters.len());
    for r in &again {
        if let Some(first) = accepted.get(&r.message_uuid) {
            assert!(r.duplicate, "{r:?}");
            assert_eq!(r.letter_id, first.letter_id);
        }
    }
    let counts = h.wait_for_delivery().await;
    let stored = counts.delivered + counts.print_spooled + counts.failed;
    assert_eq!(
        stored,
        letters.len() as u64,
        "one stored letter per message uuid"
    );

    // Exactly once: mailbox rows equal delivered letters; each print letter in one batch.
    assert_eq!(
        h.in_mailboxes(&[ACTIVE_OTHER, COMPANY]).await,
        counts.delivered
    );
    let spooled = spooled_letters(h.data.path());
    assert_eq!(spooled.len() as u64, counts.print_spooled);
    assert!(
        spooled.values().all(|&n| n == 1),
        "a letter was printed twice"
    );
    assert!(
        std::fs::read_dir(h.data.path().join("spool/print"))
            .expect("spool")
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with(".tmp.")),
        "no half-written print batch is left behind"
    );

    drop(gateway);
}

on_every_backend!(sigkill_mid_batch_loses_nothing_and_duplicates_nothing);
