//! No letter content, title or recipient id in clear anywhere in the data directory (outside the
//! print spool, which is for the printer): the store, the queue, keys, certificates, journals.

mod common;

use std::path::Path;

use brevdue::ingest::pb;
use common::*;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

async fn no_plaintext_at_rest(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    const CONTENT: &str = "MARKER-CONTENT-4f1d9a";
    const TITLE: &str = "MARKER-TITLE-77c2e0";
    let mut a = h.client(AUTHORITY).await;
    let mut b = h.client(BANK).await;
    let mut letters = Vec::new();
    for to in [ACTIVE_OTHER, EXEMPT, UNKNOWN, COMPANY] {
        let mut l = letter(
            to,
            TITLE,
            format!("%PDF-1.4 {CONTENT} ").repeat(50).as_bytes(),
        );
        l.attachments.push(pb::Document {
            filename: "bilag.txt".into(),
            media_type: "text/plain".into(),
            content: CONTENT.as_bytes().to_vec(),
        });
        letters.push(l);
    }
    let receipts = stream(&mut a, letters).await;
    assert!(receipts.iter().all(|r| outcome(r) != pb::Outcome::Rejected));
    let r = b
        .submit_letter(letter(ACTIVE_SUBSCRIBED, TITLE, CONTENT.as_bytes()))
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    // On RabbitMQ, read what is on the queues now, while letters may still be waiting.
    let mut queued: Vec<Vec<u8>> = Vec::new();
    if backend == Backend::Production {
        let q = brevdue::queue::RabbitQueue::open(&h.config.queue_url().as_url())
            .await
            .expect("queue");
        queued = q.peek_all().await.expect("peek");
    }
    h.wait_for_delivery().await;
    // Stop so every journal is checkpointed into the files being scanned, then scan both the
    // live files and what a restart leaves.
    h.stop().await;

    let mut all = Vec::new();
    files(h.data.path(), &mut all);
    let spool = h.data.path().join("spool").join("print");
    let markers: Vec<&str> = vec![
        CONTENT,
        TITLE,
        ACTIVE_OTHER,
        EXEMPT,
        UNKNOWN,
        COMPANY,
        ACTIVE_SUBSCRIBED,
        "010190-1111",
    ];
    let mut scanned = 0;
    let mut found_in_spool = false;
    for f in &all {
        // A journal may be checkpointed and removed while the scan runs (another connection
        // closing); its pages are then in the database file, which is scanned too.
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        if f.starts_with(&spool) {
            found_in_spool |= contains(&bytes, CONTENT.as_bytes());
            continue;
        }
        scanned += 1;
        for m in &markers {
            assert!(
                !contains(&bytes, m.as_bytes()),
                "{m} in clear in {}",
                f.display()
            );
        }
    }
    assert!(
        scanned >= 5,
        "the scan covered the store, queue and keys ({scanned} files)"
    );
    assert!(
        found_in_spool,
        "the marker is findable where it is meant to be: the print spool"
    );

    if let Some(db) = &h.postgres {
        // Everything PostgreSQL holds for this gateway, as a backup would see it.
        let dump = std::process::Command::new("pg_dump")
            .args(["--no-owner", "--data-only", "--inserts", &db.url])
            .output()
            .expect("pg_dump runs");
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        assert!(
            contains(&dump.stdout, b"INSERT INTO public.letters"),
            "the dump holds the letters"
        );
        for m in &markers {
            // bytea columns are dumped as hex: look for that spelling too.
            let hex: String = m.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(
                !contains(&dump.stdout, m.as_bytes()),
                "{m} in clear in the PostgreSQL dump"
            );
            assert!(
                !contains(&dump.stdout, hex.as_bytes()),
                "{m} (as hex) in the PostgreSQL dump"
            );
        }
        for body in &queued {
            for m in &markers {
                assert!(
                    !contains(body, m.as_bytes()),
                    "{m} in clear in a queued message"
                );
            }
        }
    }
}

on_every_backend!(no_plaintext_at_rest);
