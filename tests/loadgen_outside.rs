//! `brevdue loadgen --target` run as a user runs it, against a gateway that runs on its own
//! (here the test's, on port 0): every letter is accepted and delivered, the ceilings, the
//! backlog, the drain and the gateway's memory are all in the figures file. How fast anything
//! went is the tool's output, never checked here.

mod common;

use common::*;

const LETTERS: u64 = 301;

async fn a_running_gateway_is_measured_from_outside(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    h.boot().await;
    let work = tempfile::tempdir().expect("tmp");
    let recipients = work.path().join("recipients.csv");
    std::fs::write(
        &recipients,
        format!("id_type,id,status\nCPR,{ACTIVE_OTHER},active\n"),
    )
    .expect("write");
    let json = work.path().join("outside.json");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command
        .args(["loadgen", "--target"])
        .arg(h.config.listen.to_string())
        .arg("--cert-dir")
        .arg(h.cert_dir(AUTHORITY))
        .arg("--metrics")
        .arg(h.admin_url("/metrics"))
        .arg("--recipients")
        .arg(&recipients)
        .arg("--scratch-dir")
        .arg(work.path())
        .args([
            "--letters",
            &LETTERS.to_string(),
            "--size",
            "2KB",
            "--streams",
            "2",
        ])
        .args(["--drain-timeout", "5min", "--json"])
        .arg(&json)
        .env("BREVDUE_LOG", "warn");
    let out = command.output().await.expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("figures file")).expect("JSON");
    assert_eq!(v["accepted"], LETTERS, "{v}");
    assert_eq!(v["rejected"], 0);
    let names: Vec<&str> = v["ceilings"]
        .as_array()
        .expect("ceilings")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for wanted in [
        "gRPC with no work",
        "sealing",
        "store alone",
        "queue alone",
        "synced appends",
    ] {
        assert!(
            names.iter().any(|n| n.contains(wanted)),
            "{wanted} in {names:?}"
        );
    }
    assert!(v["receipt_p99_ms"].is_number());
    let delivered = v["delivered_during_intake"].as_u64().expect("delivered");
    let waiting = v["waiting_at_end_of_intake"].as_u64().expect("waiting");
    assert_eq!(
        delivered + waiting,
        LETTERS,
        "every accepted letter is either: {v}"
    );
    assert!(v["drain_seconds"].is_number(), "drained: {v}");
    assert!(v["sustained_per_s"].is_number());
    // The gateway is this test's process, found by the port it listens on.
    assert_eq!(v["memory"]["pids"][0], std::process::id(), "{v}");
    assert!(v["memory"]["samples"].as_u64() >= Some(1));
    assert!(v["memory"]["rss_kib_after_drain"].as_u64() > Some(0));
    // And the store agrees: every letter is in a mailbox.
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.delivered, LETTERS);
    h.stop().await;
}

on_every_backend!(a_running_gateway_is_measured_from_outside);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_without_the_recipients_is_refused_with_what_to_do() {
    let mut h = Harness::prepare().await;
    h.boot().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args(["loadgen", "--target"])
        .arg(h.config.listen.to_string())
        .arg("--cert-dir")
        .arg(h.cert_dir(AUTHORITY))
        .arg("--metrics")
        .arg(h.admin_url("/metrics"))
        .args(["--letters", "10"])
        .env("BREVDUE_LOG", "warn")
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("brevdue registry import"), "{stderr}");
    assert_eq!(
        h.store()
            .await
            .state_counts()
            .await
            .expect("counts")
            .accepted,
        0
    );
    h.stop().await;
}

#[test]
fn the_load_generators_recipients_are_written_for_import() {
    let tmp = tempfile::tempdir().expect("tmp");
    let csv = tmp.path().join("citizens.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args(["loadgen", "--write-recipients"])
        .arg(&csv)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&csv).expect("written");
    assert!(text.starts_with("id_type,id,status\n"), "{text}");
    assert_eq!(
        text.lines().count(),
        20_001,
        "a header and the 20,000 citizens"
    );
}
