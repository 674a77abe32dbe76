//! A letter whose attachment name the file system cannot take (254 characters, or 128 × `æ`,
//! which is 256 bytes in UTF-8) passes validation, as it should: Digital Post allows it. It must
//! not poison the print batch it lands in. Every letter is spooled, the long-named ones too,
//! under names the gateway chose, with the sender's names kept in the manifest.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::delivery::*;
use common::*;

async fn a_poisoned_print_letter_spoils_nothing(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let long_names = [
        format!("{}.pdf", "a".repeat(250)),
        format!("{}.pdf", "æ".repeat(124)),
    ];
    let mut letters: Vec<pb::Letter> = (0..100)
        .map(|i| letter(UNKNOWN, &format!("Brev {i}"), b"%PDF-1.7 good"))
        .collect();
    for (i, name) in long_names.iter().enumerate() {
        let mut l = letter(EXEMPT, &format!("Langt navn {i}"), b"%PDF-1.7 long name");
        l.attachments.push(pb::Document {
            filename: name.clone(),
            media_type: "application/pdf".into(),
            content: b"%PDF-1.7 attachment".to_vec(),
        });
        // In the middle of the batch, as fair queuing puts it.
        letters.insert(50 + i, l);
    }
    let receipts = stream(&mut c, letters).await;
    assert!(
        receipts
            .iter()
            .all(|r| outcome(r) == pb::Outcome::AcceptedPrint),
        "every letter goes to print: {receipts:?}"
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, 102, "{counts:?}");
    assert_eq!(counts.failed, 0);

    let spooled = spooled_letters(h.data.path());
    for r in &receipts {
        assert_eq!(
            spooled.get(&r.letter_id),
            Some(&1),
            "{} spooled once",
            r.letter_id
        );
    }
    let names = file_names(&print_dir(h.data.path()));
    assert!(
        names
            .iter()
            .all(|n| !n.contains("aaaa") && !n.contains('æ')),
        "no sender text in a path: {names:?}"
    );
    // The manifest keeps the sender's names for the printer.
    let mut manifests = String::new();
    for batch in std::fs::read_dir(print_dir(h.data.path()))
        .expect("spool")
        .flatten()
    {
        manifests.push_str(
            &std::fs::read_to_string(batch.path().join("manifest.json")).expect("manifest"),
        );
    }
    for name in &long_names {
        assert!(manifests.contains(name.as_str()), "manifest names {name}");
    }
    assert!(
        staged_batches(h.data.path()).is_empty(),
        "nothing left staged"
    );

    // Their senders see them spooled like any other.
    for r in &receipts[50..52] {
        let s = wait_until(
            Duration::from_secs(5),
            "the long-named letter is spooled",
            || {
                let mut c = c.clone();
                let id = r.letter_id.clone();
                async move {
                    let s = status(&mut c, &id).await;
                    is_state(&s, pb::LetterState::PrintSpooled).then_some(s)
                }
            },
        )
        .await;
        assert!(s.delivered_at_unix_ms > 0);
    }
    let mut h = h;
    h.stop().await;
}

on_every_backend!(a_poisoned_print_letter_spoils_nothing);
