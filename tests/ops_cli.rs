//! `brevdue operators …` and `brevdue ops …` as an operator runs them: the binary, against a
//! running gateway, with only a certificate directory and the gateway's address for `ops`.
//! Holding print, finding the waiting letters, cancelling them with a job, suspending and
//! resuming a sender, and reading it all back from the audit trail; a sender's certificate in
//! place of an operator's is refused with a clear message. On both backend pairs.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use brevdue::ingest::pb;
use common::*;

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary off the runtime's threads (the gateway runs on them).
async fn brevdue(args: Vec<String>) -> Out {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_brevdue"))
            .args(&args)
            .env("BREVDUE_LOG", "warn")
            .env_remove("BREVDUE_OPERATOR_CERT_DIR")
            .output()
            .expect("runs");
        Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }
    })
    .await
    .expect("joined")
}

/// `brevdue <command…>` with the harness's data directory and backends.
fn admin(h: &Harness, command: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(["--data-dir".into(), h.data.path().display().to_string()]);
    if h.backend == Backend::Production {
        args.extend(["--store".into(), h.config.store_url().as_url()]);
        args.extend(["--queue".into(), h.config.queue_url().as_url()]);
    }
    args
}

/// `brevdue ops --server … --cert-dir DIR <command…>`.
fn ops(h: &Harness, dir: &Path, command: &[&str]) -> Vec<String> {
    let mut args = vec![
        "ops".to_string(),
        "--server".into(),
        h.server_url(),
        "--cert-dir".into(),
        dir.display().to_string(),
    ];
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

async fn ok(args: Vec<String>) -> String {
    let out = brevdue(args.clone()).await;
    assert_eq!(
        out.code,
        Some(0),
        "{args:?}\nstdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

async fn operators_act_from_the_command_line(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let dir = h.outside.path().join("alice");
    let out = ok(admin(
        &h,
        &[
            "operators",
            "add",
            "--name",
            "alice",
            "--out",
            &dir.display().to_string(),
        ],
    ))
    .await;
    assert!(out.contains("operator alice: certificate"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(dir.join("operator.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let out = ok(admin(&h, &["operators", "list"])).await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("alice") && l.contains("valid")),
        "{out}"
    );

    // The gateway picks the new operator up at its next refresh.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = brevdue(ops(&h, &dir, &["whoami"])).await;
        if out.code == Some(0) {
            assert!(out.stdout.contains("operator alice"), "{}", out.stdout);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "whoami still fails: {}",
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let out = ok(ops(
        &h,
        &dir,
        &["hold", "print", "--reason", "printer outage"],
    ))
    .await;
    assert!(
        out.contains("print is held") && out.contains("printer outage"),
        "{out}"
    );
    let mut c = h.client(AUTHORITY).await;
    for i in 0..5 {
        c.submit_letter(letter(UNKNOWN, &format!("Brev {i}"), b"%PDF-1.4 x"))
            .await
            .expect("accepted");
    }
    let out = ok(ops(
        &h,
        &dir,
        &["dead", "list", "--state", "accepted", "--route", "print"],
    ))
    .await;
    assert!(out.contains("5 shown of 5 matching"), "{out}");
    assert!(!out.contains(UNKNOWN) && !out.contains("Brev"), "{out}");
    let out = ok(ops(&h, &dir, &["sender", AUTHORITY])).await;
    assert!(
        out.contains("Test Styrelsen") && out.contains("ACCEPTED 5"),
        "{out}"
    );

    let out = ok(ops(
        &h,
        &dir,
        &["cancel", "--sender", AUTHORITY, "--route", "print"],
    ))
    .await;
    assert!(
        out.contains("(5 letters)") && out.contains("done: 5 changed, 0 left"),
        "{out}"
    );
    let out = ok(ops(&h, &dir, &["jobs"])).await;
    assert!(
        out.lines()
            .any(|l| l.contains("cancel") && l.contains("done") && l.contains("5/5")),
        "{out}"
    );
    let out = ok(ops(&h, &dir, &["release", "print"])).await;
    assert!(
        out.contains("print is released") && out.contains("no route is held"),
        "{out}"
    );

    ok(ops(&h, &dir, &["suspend", AUTHORITY])).await;
    let refused = h
        .client(AUTHORITY)
        .await
        .check_recipient(pb::RecipientQuery {
            recipient: Some(pb::RecipientId {
                r#type: pb::IdType::Cpr as i32,
                id: UNKNOWN.into(),
            }),
            print_fallback: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let out = ok(ops(&h, &dir, &["resume", AUTHORITY])).await;
    assert!(out.contains("may send again"), "{out}");

    // Bad input: a clear sentence, exit 2 for usage, nothing done.
    let out = brevdue(ops(&h, &dir, &["retry", "--older-than", "soon"])).await;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let out = brevdue(ops(&h, &dir, &["cancel", "--state", "failed"])).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("only") && out.stderr.contains("FAILED"),
        "{}",
        out.stderr
    );

    let out = ok(ops(&h, &dir, &["audit"])).await;
    for action in [
        "hold",
        "cancel started",
        "cancel finished",
        "release",
        "suspend",
        "resume",
    ] {
        assert!(
            out.lines()
                .any(|l| l.contains("alice") && l.contains(action)),
            "{action} missing from:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.contains("local:") && l.contains("operators add")),
        "{out}"
    );

    // A sender's certificate where the operator's should be: refused, and the message says so.
    let wrong = h.outside.path().join("wrong");
    std::fs::create_dir_all(&wrong).expect("dir");
    let sender = h.cert_dir(BANK);
    std::fs::copy(sender.join("ca.pem"), wrong.join("ca.pem")).expect("copy");
    std::fs::copy(sender.join("sender.pem"), wrong.join("operator.pem")).expect("copy");
    std::fs::copy(sender.join("sender.key"), wrong.join("operator.key")).expect("copy");
    let out = brevdue(ops(&h, &wrong, &["holds"])).await;
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("sender's certificate") && out.stderr.contains("PermissionDenied"),
        "{}",
        out.stderr
    );
    let mut no_dir = ops(&h, &wrong, &["holds"]);
    no_dir.drain(3..5);
    let out = brevdue(no_dir).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("--cert-dir"), "{}", out.stderr);

    // Revoked: the same directory stops working.
    ok(admin(&h, &["operators", "revoke", "--name", "alice"])).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = brevdue(ops(&h, &dir, &["whoami"])).await;
        if out.code == Some(1) {
            assert!(
                out.stderr.contains("not registered to any operator"),
                "{}",
                out.stderr
            );
            break;
        }
        assert!(Instant::now() < deadline, "a revoked operator still works");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
on_every_backend!(operators_act_from_the_command_line);
