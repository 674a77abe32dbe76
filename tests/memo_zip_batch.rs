//! `brevdue send` takes a zip of MeMo messages as SFTP batch senders deliver them: good entries
//! of both versions are sent and answered, a bad message gets its REJECTED receipt, and hostile
//! entries (a `..` path, a zip bomb, an oversized entry, a file that is not MeMo) are refused
//! before sending, each with its own line in the receipt report.

mod common;

use std::io::Write;
use std::path::Path;

use brevdue::cli::memo_zip::{MemoZip, Refusal, ZipItem, ZipLimits};
use common::*;
use zip::write::SimpleFileOptions;

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
    .into_bytes()
}

fn write_zip(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, bytes) in entries {
        zip.start_file(*name, options).expect("entry");
        zip.write_all(bytes).expect("write entry");
    }
    zip.finish().expect("finish zip");
}

#[tokio::test]
async fn a_zip_batch_sends_good_entries_and_reports_every_bad_one() {
    let mut h = Harness::start().await;
    let v11 = uuid::Uuid::new_v4().to_string();
    let v12 = uuid::Uuid::new_v4().to_string();
    let invalid = mutated_invalid();
    let zip_path = h.outside.path().join("batch.zip");
    write_zip(
        &zip_path,
        &[
            (
                "a-minimal-1.1.xml",
                memo_file("minimal.xml", &v11, ACTIVE_OTHER),
            ),
            (
                "sub/b-minimal-1.2.xml",
                memo_file("minimal-1.2.xml", &v12, ACTIVE_OTHER),
            ),
            ("c-invalid.xml", invalid),
            (
                "../d-escape.xml",
                memo_file(
                    "minimal.xml",
                    &uuid::Uuid::new_v4().to_string(),
                    ACTIVE_OTHER,
                ),
            ),
            ("e-notes.txt", b"not a message".to_vec()),
            // 64 MiB of one byte deflates to about 64 KiB: a thousandfold.
            ("f-bomb.xml", vec![b' '; 64 << 20]),
        ],
    );
    let mut c = h.client(AUTHORITY).await;
    let report = h.outside.path().join("batch.csv");
    let batch = brevdue::domain::BatchId::generate();
    let summary = brevdue::cli::send::send(&mut c, &zip_path, &report, &batch)
        .await
        .expect("send");
    assert_eq!(summary.letters, 3, "{summary:?}");
    assert_eq!(summary.count("ACCEPTED_MAILBOX"), 2, "{summary:?}");
    assert_eq!(summary.refused_entries.len(), 3, "{summary:?}");

    let rows: Vec<Vec<String>> = csv::Reader::from_path(&report)
        .expect("report")
        .records()
        .map(|r| r.expect("row").iter().map(str::to_string).collect())
        .collect();
    let row = |source: &str| {
        rows.iter()
            .find(|r| r[0] == format!("batch.zip:{source}"))
            .unwrap_or_else(|| panic!("{source} in report: {rows:?}"))
    };
    // Every entry that is not a directory has exactly one line.
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert_eq!(row("a-minimal-1.1.xml")[3], "ACCEPTED_MAILBOX");
    assert_eq!(row("a-minimal-1.1.xml")[1], v11);
    assert_eq!(row("sub/b-minimal-1.2.xml")[3], "ACCEPTED_MAILBOX");
    assert_eq!(row("sub/b-minimal-1.2.xml")[1], v12);
    let bad = row("c-invalid.xml");
    assert_eq!(
        (bad[3].as_str(), bad[4].as_str()),
        ("REJECTED", "INVALID_LETTER")
    );
    assert!(bad[5].contains("memo:filename (line "), "{bad:?}");
    let escape = row("../d-escape.xml");
    assert_eq!(
        (escape[3].as_str(), escape[4].as_str()),
        ("NOT_SENT", "ZIP_UNSAFE_PATH")
    );
    assert!(escape[5].contains(".. component"), "{escape:?}");
    let notes = row("e-notes.txt");
    assert_eq!(
        (notes[3].as_str(), notes[4].as_str()),
        ("NOT_SENT", "ZIP_NOT_MEMO")
    );
    let bomb = row("f-bomb.xml");
    assert_eq!(
        (bomb[3].as_str(), bomb[4].as_str()),
        ("NOT_SENT", "ZIP_BOMB")
    );
    assert!(bomb[5].contains("zip bomb"), "{bomb:?}");
    h.stop().await;
}

/// A MeMo message Digital Post refuses (a colon in the filename).
fn mutated_invalid() -> Vec<u8> {
    String::from_utf8(memo_file(
        "minimal.xml",
        &uuid::Uuid::new_v4().to_string(),
        ACTIVE_OTHER,
    ))
    .expect("utf8")
    .replacen("aarsopgoerelse.pdf", "aarsop:goerelse.pdf", 1)
    .into_bytes()
}

#[test]
fn oversized_entries_are_refused_declared_or_not() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("big.zip");
    write_zip(
        &path,
        &[
            ("big.xml", vec![b'x'; 5_000]),
            ("small.xml", b"<x/>".to_vec()),
        ],
    );
    let limits = ZipLimits {
        max_entry_bytes: 4_096,
        ..ZipLimits::default()
    };
    let items: Vec<ZipItem> = MemoZip::open(&path, limits)
        .expect("open")
        .into_items()
        .collect();
    match &items[0] {
        ZipItem::Refused { refusal, why, .. } => {
            assert_eq!(*refusal, Refusal::TooLarge);
            assert!(
                why.contains("5000 bytes uncompressed, 904 over the limit of 4096"),
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&items[1], ZipItem::Message { xml, .. } if xml == b"<x/>"));
}

#[test]
fn an_archive_with_too_many_entries_is_refused_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("many.zip");
    let entries: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("{i}.xml"), b"<x/>".to_vec()))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    write_zip(&path, &refs);
    let limits = ZipLimits {
        max_entries: 4,
        ..ZipLimits::default()
    };
    let e = MemoZip::open(&path, limits).err().expect("refused");
    assert!(
        e.to_string().contains("holds 5 entries, more than the 4"),
        "{e}"
    );
    let not_zip = dir.path().join("not.zip");
    std::fs::write(&not_zip, b"plain text").expect("write");
    let e = MemoZip::open(&not_zip, ZipLimits::default())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("is not a readable zip file"), "{e}");
}
