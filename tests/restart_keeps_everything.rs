//! A restart keeps every accepted letter, its receipt and its idempotency key; admin changes
//! made while the gateway runs take effect without a restart.

mod common;

use brevdue::ingest::pb;
use common::*;

async fn restart_keeps_letters_receipts_and_keys(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let letters: Vec<pb::Letter> = (0..50)
        .map(|i| {
            letter(
                if i % 2 == 0 { ACTIVE_OTHER } else { EXEMPT },
                "Før genstart",
                b"%PDF-1.4",
            )
        })
        .collect();
    let before = stream(&mut c, letters.clone()).await;
    h.wait_for_delivery().await;

    // Rotate the key-encryption key while running; new letters use it, old ones stay readable.
    brevdue::cli::admin::keys_rotate(&h.config).expect("rotate");
    h.restart().await;
    let mut c = h.client(AUTHORITY).await;
    for (r, l) in before.iter().zip(&letters) {
        let s = c
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::MessageUuid(l.message_uuid.clone())),
            })
            .await
            .expect("status after restart")
            .into_inner();
        assert_eq!(s.letter_id, r.letter_id);
        assert_eq!(s.content_sha256, r.content_sha256);
        let state = pb::LetterState::try_from(s.state).expect("state");
        assert!(
            matches!(
                state,
                pb::LetterState::Delivered | pb::LetterState::PrintSpooled
            ),
            "{state:?}"
        );
        assert!(s.delivered_at_unix_ms >= s.accepted_at_unix_ms);
    }
    let again = stream(&mut c, letters).await;
    assert!(
        again
            .iter()
            .zip(&before)
            .all(|(a, b)| a.duplicate && a.letter_id == b.letter_id)
    );

    // A registry change while running: UNKNOWN becomes an active recipient.
    let file = h.outside.path().join("more.csv");
    std::fs::write(&file, format!("id_type,id,status\nCPR,{UNKNOWN},active\n")).expect("write");
    brevdue::cli::registry::registry_import(&h.config, &file, None)
        .await
        .expect("import");
    let mut reached = false;
    for _ in 0..100 {
        let r = c
            .submit_letter(letter(UNKNOWN, "Ny", b"%PDF"))
            .await
            .expect("submit")
            .into_inner();
        if outcome(&r) == pb::Outcome::AcceptedMailbox {
            reached = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(reached, "the running gateway picked up the registry import");
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.failed, 0);
    h.stop().await;
}

on_every_backend!(restart_keeps_letters_receipts_and_keys);
