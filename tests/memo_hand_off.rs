//! Mailbox and print hand-off carry MeMo: every letter handed to a mailbox is kept as a MeMo
//! message (sealed) in the mailbox outbox, and every printed one in the print spool. A message a
//! sender sent as MeMo is handed over byte for byte, in its own version; a letter sent as fields
//! gets a message in `memo.produce_version` (1.2 by default). Every handed-over message
//! validates against the XSD set of its version (xmllint) and parses back.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use brevdue::deliver::mailbox::read_batch;
use brevdue::ingest::pb;
use brevdue::memo::MemoVersion;
use brevdue::seal::KeyRing;
use common::*;

fn memo_file(file: &str, uuid: &str, recipient: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/memo/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("test message");
    text.replacen(
        "<memo:senderID>61126228</memo:senderID>",
        &format!("<memo:senderID>{AUTHORITY}</memo:senderID>"),
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

fn as_memo(xml: Vec<u8>) -> pb::Letter {
    pb::Letter {
        memo_xml: xml,
        ..pb::Letter::default()
    }
}

/// xmllint's verdict on `xml` against the XSD set of `version`.
fn assert_valid_for_xmllint(xml: &[u8], version: MemoVersion, what: &str) {
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schema = match version {
        MemoVersion::V1_1 => schemas.join("MeMo_core.xsd"),
        MemoVersion::V1_2 => schemas.join("v1.2").join("MeMo_core.xsd"),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("m.xml");
    std::fs::write(&file, xml).expect("write");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint is needed: apt-get install -y libxml2-utils (.ci/run installs it)");
    assert!(
        out.status.success(),
        "{what} does not validate against MeMo {version}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn mailbox_and_print_hand_off_keep_valid_memo_and_memo_input_byte_identical() {
    let mut h = Harness::start().await;
    let mut c = h.client(AUTHORITY).await;
    let v12 = uuid::Uuid::new_v4().to_string();
    let v11 = uuid::Uuid::new_v4().to_string();
    let full_12 = memo_file("full-1.2.xml", &v12, ACTIVE_OTHER);
    let minimal_11 = memo_file("minimal.xml", &v11, ACTIVE_OTHER);
    let fields = letter(ACTIVE_OTHER, "Brev sendt som felter", b"%PDF-1.4 felter");
    let printed = letter(UNKNOWN, "Brev til print", b"%PDF-1.4 print");
    let letters = vec![
        as_memo(full_12.clone()),
        as_memo(minimal_11.clone()),
        fields.clone(),
        printed.clone(),
    ];
    let receipts = stream(&mut c, letters).await;
    let outcomes: Vec<_> = receipts.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::Outcome::AcceptedMailbox,
            pb::Outcome::AcceptedMailbox,
            pb::Outcome::AcceptedMailbox,
            pb::Outcome::AcceptedPrint
        ],
        "{receipts:?}"
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(
        (counts.delivered, counts.print_spooled),
        (3, 1),
        "{counts:?}"
    );

    // The mailbox outbox: one sealed MeMo message per delivered letter, opened with the keys.
    let ring = KeyRing::load_or_create(&h.data.path().join("keys")).expect("keys");
    let outbox = h.data.path().join("spool").join("mailbox");
    let mut handed: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in std::fs::read_dir(&outbox).expect("outbox").flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with(".tmp."),
            "an unpublished batch is left: {name}"
        );
        if name.starts_with('.') {
            continue;
        }
        for e in read_batch(&entry.path()).expect("batch") {
            let xml = e.open(&ring).expect("the sealed MeMo opens");
            let m = brevdue::memo::parse(&xml).expect("the handed-over MeMo parses");
            handed.insert(m.header.message_uuid.to_string(), xml);
        }
    }
    assert_eq!(handed.len(), 3, "{:?}", handed.keys().collect::<Vec<_>>());
    // What came as MeMo is handed over exactly as it came, in its own version.
    assert_eq!(handed[&v12], full_12);
    assert_eq!(handed[&v11], minimal_11);
    assert_valid_for_xmllint(&handed[&v12], MemoVersion::V1_2, "the 1.2 message");
    assert_valid_for_xmllint(&handed[&v11], MemoVersion::V1_1, "the 1.1 message");
    // A letter sent as fields gets a MeMo 1.2 message (the default produce_version).
    let produced = &handed[&fields.message_uuid];
    let m = brevdue::memo::parse(produced).expect("parses");
    assert_eq!(m.version, MemoVersion::V1_2);
    assert_eq!(m.header.label, "Brev sendt som felter");
    assert_eq!(
        m.body.as_ref().expect("body").main_document.files[0].content,
        b"%PDF-1.4 felter"
    );
    assert_valid_for_xmllint(produced, MemoVersion::V1_2, "the produced mailbox message");
    // Sealed at rest: neither the title nor the recipient is in the outbox in clear.
    for entry in std::fs::read_dir(&outbox).expect("outbox").flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("Brev sendt som felter") && !text.contains(ACTIVE_OTHER));
        }
    }

    // The print spool's MeMo of a letter sent as fields: 1.2 as well, and valid.
    let batch = std::fs::read_dir(h.data.path().join("spool/print"))
        .expect("spool")
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .expect("a print batch");
    let letter_dir = std::fs::read_dir(batch.path())
        .expect("batch")
        .flatten()
        .find(|e| e.path().is_dir())
        .expect("a letter");
    let xml = std::fs::read(letter_dir.path().join("message.memo.xml")).expect("MeMo in spool");
    let m = brevdue::memo::parse(&xml).expect("parses");
    assert_eq!(m.version, MemoVersion::V1_2);
    assert_eq!(m.header.message_uuid.to_string(), printed.message_uuid);
    assert_valid_for_xmllint(&xml, MemoVersion::V1_2, "the produced print message");
    h.stop().await;
}
