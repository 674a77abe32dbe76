//! The command line as a user runs it: exit codes, messages, and a batch sent with
//! `brevdue send` to a gateway started with `brevdue serve`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn brevdue(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args(args)
        .env("BREVDUE_LOG", "warn")
        .output()
        .expect("runs")
}

#[test]
fn id_check_says_valid_valid_invalid_and_exits_non_zero() {
    let out = brevdue(&["id", "check", "61126228", "0101901234", "3102901234"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("valid CVR 61126228"), "{text}");
    assert!(lines[1].contains("valid CPR 0101901234"), "{text}");
    assert!(
        lines[2].contains("invalid") && lines[2].contains("31 February is not a date"),
        "{text}"
    );
    assert_eq!(
        brevdue(&["id", "check", "010190-1234"]).status.code(),
        Some(0)
    );
}

#[test]
fn usage_errors_exit_two() {
    let out = brevdue(&[
        "senders", "add", "--cvr", "61126228", "--name", "X", "--kind", "weird", "--out", "/tmp/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("weird"));
    let out = brevdue(&[
        "senders", "add", "--cvr", "61126229", "--name", "X", "--kind", "public", "--out", "/tmp/x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("modulus-11"));
}

#[test]
fn registry_import_reports_bad_rows_and_imports_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("data");
    let file = tmp.path().join("r.csv");
    std::fs::write(
        &file,
        "id_type,id,status\nCPR,0101901234,active\nCPR,3102901234,active\nCVR,61126228,exempt\n",
    )
    .expect("write");
    let out = brevdue(&[
        "registry",
        "import",
        "--data-dir",
        data.to_str().expect("utf8"),
        "--recipients",
        file.to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 3") && err.contains("31 February"),
        "{err}"
    );
    assert!(
        err.contains("line 4") && err.contains("cannot be exempt"),
        "{err}"
    );
    assert!(err.contains("nothing imported"), "{err}");
    assert!(
        !data.join("brevdue.db").exists(),
        "a refused file touches no data"
    );
}

async fn serve_send_status_end_to_end(backend: Backend) {
    let h = Harness::prepare_on(backend).await;
    let port = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    };
    let (grpc, admin) = (port(0), port(1));
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args(h.serve_args(grpc, admin))
        .env("BREVDUE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("serve");

    let batch = h.outside.path().join("batch.jsonl");
    let lines: Vec<String> = [ACTIVE_OTHER, UNKNOWN, "3102901234"]
        .iter()
        .map(|to| brevdue::cli::batchfile::to_line(&letter(to, "Brev fra CLI", b"%PDF-1.4 cli")))
        .chain(["{\"not\": \"a letter\"}".to_string()])
        .collect();
    std::fs::write(&batch, lines.join("\n")).expect("write batch");
    let server = format!("https://127.0.0.1:{grpc}");
    let cert_dir = h.cert_dir(AUTHORITY);
    let mut out = None;
    for _ in 0..100 {
        let o = brevdue(&[
            "send",
            "--server",
            &server,
            "--cert-dir",
            cert_dir.to_str().expect("utf8"),
            batch.to_str().expect("utf8"),
        ]);
        // The batch holds a line that is not a letter, so even a complete run exits 1; the
        // report line says the gateway was reached and every letter answered.
        if String::from_utf8_lossy(&o.stdout).contains("receipt report:") {
            out = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = out.expect("send runs once the gateway is up");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a line that could not be sent fails the run"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 lines of"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let batch_id = text
        .lines()
        .find_map(|l| l.strip_prefix("batch id: "))
        .expect("the generated batch id is printed")
        .to_string();
    assert!(batch_id.starts_with("batch-"), "{batch_id}");
    assert!(
        text.contains("ACCEPTED_MAILBOX") && text.contains("ACCEPTED_PRINT"),
        "{text}"
    );
    assert!(text.contains("INVALID_RECIPIENT_ID"), "{text}");
    assert!(text.contains("1 lines were not letters"), "{text}");
    let report =
        std::fs::read_to_string(h.outside.path().join("batch.jsonl.receipts.csv")).expect("report");
    assert_eq!(
        report.lines().count(),
        4,
        "header and one row per letter sent:\n{report}"
    );
    assert!(
        report
            .lines()
            .skip(1)
            .all(|l| l.ends_with(&format!(",{batch_id}"))),
        "every row names the batch:\n{report}"
    );
    let letter_id = report
        .lines()
        .nth(1)
        .and_then(|l| l.split(',').nth(2))
        .expect("letter id")
        .to_string();
    let mut delivered = false;
    for _ in 0..100 {
        let s = brevdue(&[
            "status",
            "--server",
            &server,
            "--cert-dir",
            cert_dir.to_str().expect("utf8"),
            &letter_id,
        ]);
        if String::from_utf8_lossy(&s.stdout).contains("DELIVERED") {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "status shows the letter delivered");

    // The gRPC health service answers over TLS without a client certificate.
    let ca = h.data.path().join("pki").join("ca.pem");
    let health = brevdue(&[
        "health",
        "--server",
        &server,
        "--ca",
        ca.to_str().expect("utf8"),
    ]);
    assert_eq!(
        health.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "serving");

    if backend == Backend::Embedded {
        // A second gateway on the same data directory is refused with a clear error (the
        // production backends are meant to be shared by several gateways).
        let second = brevdue(&[
            "serve",
            "--data-dir",
            h.data.path().to_str().expect("utf8"),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ]);
        assert_eq!(second.status.code(), Some(1));
        let err = String::from_utf8_lossy(&second.stderr);
        assert!(err.contains("already serving"), "{err}");
    }

    // SIGTERM stops the gateway cleanly.
    let _ = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status();
    let status = gateway.wait().expect("wait");
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

on_every_backend!(serve_send_status_end_to_end);
