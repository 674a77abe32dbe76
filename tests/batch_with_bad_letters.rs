//! One bad letter in a batch never stops the rest: every letter gets its receipt, in order,
//! with a specific reason for the bad ones.

mod common;

use brevdue::ingest::pb;
use common::*;

async fn bad_letters_in_the_middle_of_a_batch(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let mut c = h.client(AUTHORITY).await;
    let mut letters = Vec::new();
    for i in 0..300 {
        letters.push(letter(
            if i % 2 == 0 {
                ACTIVE_SUBSCRIBED
            } else {
                UNKNOWN
            },
            "Brev",
            b"%PDF-1.4 ok",
        ));
    }
    let mut bad_date = letter("3102901234", "Brev", b"%PDF");
    bad_date.title = "31 February".into();
    let mut no_title = letter(ACTIVE_SUBSCRIBED, "", b"%PDF");
    no_title.title = String::new();
    let mut bad_uuid = letter(ACTIVE_SUBSCRIBED, "Brev", b"%PDF");
    bad_uuid.message_uuid = "not-a-uuid".into();
    let mut too_many = letter(ACTIVE_SUBSCRIBED, "Brev", b"%PDF");
    too_many.attachments = (0..11)
        .map(|i| pb::Document {
            filename: format!("bilag{i}.pdf"),
            media_type: "application/pdf".into(),
            content: b"%PDF".to_vec(),
        })
        .collect();
    let mut bad_media = letter(ACTIVE_SUBSCRIBED, "Brev", b"MZ");
    bad_media.main_document.as_mut().expect("doc").media_type = "application/x-msdownload".into();
    let mut no_doc = letter(ACTIVE_SUBSCRIBED, "Brev", b"");
    no_doc.main_document = None;
    let bad = [
        (
            bad_date,
            pb::RejectReason::InvalidRecipientId,
            "31 February is not a date",
        ),
        (no_title, pb::RejectReason::InvalidLetter, "title is empty"),
        (bad_uuid, pb::RejectReason::InvalidLetter, "is not a UUID"),
        (
            too_many,
            pb::RejectReason::TooLarge,
            "11 attachments, 1 over the limit of 10",
        ),
        (bad_media, pb::RejectReason::InvalidLetter, "not allowed"),
        (
            no_doc,
            pb::RejectReason::InvalidLetter,
            "main_document is missing",
        ),
    ];
    let positions = [1, 50, 51, 150, 200, 299];
    for (pos, (l, _, _)) in positions.iter().zip(bad.iter()) {
        letters.insert(*pos, l.clone());
    }
    let uuids: Vec<String> = letters.iter().map(|l| l.message_uuid.clone()).collect();
    let receipts = stream(&mut c, letters).await;
    assert_eq!(receipts.len(), 306);
    for (r, uuid) in receipts.iter().zip(&uuids) {
        assert_eq!(
            r.message_uuid.to_lowercase(),
            uuid.to_lowercase(),
            "receipts come in order"
        );
    }
    for (pos, (_, why, words)) in positions.iter().zip(bad.iter()) {
        let r = &receipts[*pos];
        assert_eq!(outcome(r), pb::Outcome::Rejected, "{r:?}");
        assert_eq!(reason(r), *why, "{r:?}");
        assert!(r.detail.contains(words), "{}", r.detail);
        assert!(r.letter_id.is_empty());
    }
    let accepted = receipts
        .iter()
        .filter(|r| outcome(r) != pb::Outcome::Rejected)
        .count();
    assert_eq!(accepted, 300);
    let counts = h.wait_for_delivery().await;
    assert_eq!(
        counts.delivered + counts.print_spooled,
        300,
        "rejected letters change nothing"
    );
    h.stop().await;
}

on_every_backend!(bad_letters_in_the_middle_of_a_batch);
