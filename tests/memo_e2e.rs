//! MeMo end to end: a directory of MeMo messages goes through `brevdue send` and arrives in
//! mailboxes and the print spool by the routing rules; a message held by doNotDeliverUntilDate is
//! SCHEDULED, not delivered; a message in another sender's name or malformed is rejected with
//! the element and position; the print spool holds each printed letter as a MeMo message.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use common::*;

fn memo(file: &str, uuid: &str, recipient: &str, sender: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/memo/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("test message");
    text.replacen(
        "<memo:senderID>61126228</memo:senderID>",
        &format!("<memo:senderID>{sender}</memo:senderID>"),
        1,
    )
    .replacen(
        "<memo:recipientID>0101901234</memo:recipientID>",
        &format!("<memo:recipientID>{recipient}</memo:recipientID>"),
        1,
    )
    .replacen("3f6b2c1a-9d4e-4b7f-8a21-5c0e9d7b1f42", uuid, 1)
    .replacen("A1B2C3D4-E5F6-4A7B-9C8D-0E1F2A3B4C5D", uuid, 1)
    .into_bytes()
}

async fn memo_letters_are_routed_held_and_printed_as_memo(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let dir = h.outside.path().join("memo");
    std::fs::create_dir_all(&dir).expect("dir");
    let to_mailbox = uuid::Uuid::new_v4().to_string();
    let to_print = uuid::Uuid::new_v4().to_string();
    let held = uuid::Uuid::new_v4().to_string();
    std::fs::write(
        dir.join("a-minimal.xml"),
        memo("minimal.xml", &to_mailbox, ACTIVE_OTHER, AUTHORITY),
    )
    .expect("write");
    std::fs::write(
        dir.join("b-print.xml"),
        memo("minimal.xml", &to_print, UNKNOWN, AUTHORITY),
    )
    .expect("write");
    // The full message carries doNotDeliverUntilDate; move it into the future.
    let full = String::from_utf8(memo("full.xml", &held, ACTIVE_OTHER, AUTHORITY))
        .expect("utf8")
        .replace(
            "<memo:doNotDeliverUntilDate>2025-04-01</memo:doNotDeliverUntilDate>",
            "<memo:doNotDeliverUntilDate>2099-01-01</memo:doNotDeliverUntilDate>",
        );
    std::fs::write(dir.join("c-full.xml"), full).expect("write");
    std::fs::write(
        dir.join("d-other-sender.xml"),
        memo(
            "minimal.xml",
            &uuid::Uuid::new_v4().to_string(),
            ACTIVE_OTHER,
            BANK,
        ),
    )
    .expect("write");
    std::fs::write(dir.join("e-broken.xml"), b"<memo:Message xmlns:memo=\"https://DigitalPost.dk/MeMo-1\" memoVersion=\"1.1\">\n  <memo:MessageBody/>\n</memo:Message>").expect("write");
    std::fs::write(dir.join("f-hostile.xml"), b"<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\n<memo:Message xmlns:memo=\"https://DigitalPost.dk/MeMo-1\">&lol2;</memo:Message>").expect("write");

    let mut c = h.client(AUTHORITY).await;
    let report = h.outside.path().join("memo.csv");
    let batch = brevdue::domain::BatchId::generate();
    let summary = brevdue::cli::send::send(&mut c, &dir, &report, &batch)
        .await
        .expect("send");
    assert_eq!(summary.letters, 6);
    let rows: Vec<Vec<String>> = csv::Reader::from_path(&report)
        .expect("report")
        .records()
        .map(|r| r.expect("row").iter().map(str::to_string).collect())
        .collect();
    let row = |file: &str| {
        rows.iter()
            .find(|r| r[0] == file)
            .unwrap_or_else(|| panic!("{file} in report"))
    };
    assert_eq!(
        row("a-minimal.xml")[3],
        "ACCEPTED_MAILBOX",
        "{:?}",
        row("a-minimal.xml")
    );
    assert_eq!(row("a-minimal.xml")[1], to_mailbox);
    assert_eq!(row("b-print.xml")[3], "ACCEPTED_PRINT");
    assert_eq!(
        row("c-full.xml")[3],
        "ACCEPTED_MAILBOX",
        "{:?}",
        row("c-full.xml")
    );
    assert_eq!(row("d-other-sender.xml")[4], "INVALID_LETTER");
    assert!(
        row("d-other-sender.xml")[5].contains("own name"),
        "{:?}",
        row("d-other-sender.xml")
    );
    let broken = &row("e-broken.xml")[5];
    assert!(
        broken.contains("line") || broken.contains(':'),
        "names the position: {broken}"
    );
    assert_eq!(row("f-hostile.xml")[4], "INVALID_LETTER");
    // The receipt's digest is the SHA-256 of the message as sent.
    let sent = std::fs::read(dir.join("a-minimal.xml")).expect("read");
    assert_eq!(
        row("a-minimal.xml")[7],
        brevdue::seal::sha256(&sent).to_hex()
    );

    // The held letter is SCHEDULED and stays undelivered; the others are delivered.
    let store = h.store().await;
    let mut counts = store.state_counts().await.expect("counts");
    for _ in 0..200 {
        if counts.accepted == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = store.state_counts().await.expect("counts");
    }
    assert_eq!(
        (counts.delivered, counts.print_spooled, counts.scheduled),
        (1, 1, 1),
        "{counts:?}"
    );
    let s = c
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::MessageUuid(held.clone())),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(s.state, pb::LetterState::Scheduled as i32);

    // The printed letter is in the spool as a MeMo message that parses back.
    let spooled = spooled_letters(h.data.path());
    assert_eq!(spooled.len(), 1);
    let batch = std::fs::read_dir(h.data.path().join("spool/print"))
        .expect("spool")
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .expect("a batch");
    let letter_dir = std::fs::read_dir(batch.path())
        .expect("batch")
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("letter");
    let xml = std::fs::read(letter_dir.path().join("message.memo.xml")).expect("MeMo in the spool");
    let parsed = brevdue::memo::parse(&xml).expect("the spooled MeMo parses");
    assert_eq!(parsed.header.message_uuid.to_string(), to_print);
    h.stop().await;
}

on_every_backend!(memo_letters_are_routed_held_and_printed_as_memo);
