//! `brevdue loadgen --scenario flood` run as a user runs it, with a handful of letters: every
//! phase runs, every letter is accounted for and the figures file is complete. How fast anything
//! went is the tool's output, never checked here.

use std::process::Command;

#[test]
fn a_small_flood_runs_every_phase_and_writes_its_figures() {
    let tmp = tempfile::tempdir().expect("tmp");
    let json = tmp.path().join("flood.json");
    let out = Command::new(env!("CARGO_BIN_EXE_brevdue"))
        .args([
            "loadgen",
            "--scenario",
            "flood",
            "--flood-letters",
            "301",
            "--single-letters",
            "100",
            "--warmup-letters",
            "20",
            "--idle-urgent",
            "3",
            "--urgent-every",
            "20ms",
            "--size",
            "2KB",
            "--streams",
            "2",
            "--drain-timeout",
            "5min",
            "--json",
        ])
        .arg(&json)
        .env("BREVDUE_LOG", "warn")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("the gateway runs in this process"),
        "{stdout}"
    );

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("figures file")).expect("JSON");
    assert_eq!(v["setup"]["flood_letters"], 301);
    assert_eq!(v["setup"]["warmup_letters"], 20);
    assert_eq!(v["setup"]["gateway_in_process"], true);
    // Every letter, the odd one of two streams too.
    assert_eq!(v["single_sender"]["accepted"], 100);
    assert_eq!(v["flood"]["receipts"], 301);
    assert_eq!(v["flood"]["accepted"], 301);
    assert_eq!(v["urgent_idle"]["count"], 3);
    assert_eq!(v["urgent_idle"]["errors"], 0);
    assert!(v["urgent_idle"]["p99_ms"].is_i64());
    // The first urgent letter goes out with the flood's first, however short the flood.
    assert!(v["urgent_flood"]["count"].as_u64() >= Some(1), "{v}");
    assert_eq!(v["urgent_flood"]["errors"], 0);
    assert!(v["urgent_p99_ratio"].is_number());
    assert!(v["delivery"]["drain_seconds"].is_number(), "drained: {v}");
    assert!(v["delivery"]["flood_delivered_at_flood_end"].as_u64() <= Some(301));
    assert!(v["memory"]["samples"].as_u64() >= Some(1));
    assert!(v["memory"]["rss"]["kib_at_quarters"][3].as_u64() > Some(0));
    assert!(v["memory"]["anon"]["kib_at_quarters"][3].as_u64() > Some(0));
    assert!(v["memory"]["peak_kib"].as_u64() > Some(0));
}
