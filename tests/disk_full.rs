//! The disk fills up under the gateway (embedded default): letters get UNAVAILABLE, never an
//! accepted receipt for a letter that is not durable, and the gateway recovers by itself when
//! there is room again. The fault is real: the gateway runs with a file-size limit
//! (RLIMIT_FSIZE, via prlimit), so its writes fail with EFBIG as they would with ENOSPC; the
//! test then lifts the limit on the running process.

mod common;

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use brevdue::ingest::pb;
use common::*;
use tonic::Code;

fn prlimit_available() {
    let ok = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "prlimit (util-linux) is needed for the disk-full test: apt-get install util-linux"
    );
}

/// Starts `brevdue serve` with every file it writes limited to `max_file_bytes`. SIGXFSZ is
/// ignored (the disposition survives exec) so an oversized write fails instead of killing.
fn serve_limited(h: &Harness, max_file_bytes: u64) -> (ServeProcess, String) {
    let mut args = vec![
        "-c".to_string(),
        "trap '' XFSZ; exec prlimit --fsize=\"$0\": -- \"$@\"".to_string(),
        max_file_bytes.to_string(),
        env!("CARGO_BIN_EXE_brevdue").to_string(),
    ];
    args.extend(h.serve_args(0, 0));
    let mut command = Command::new("bash");
    command.args(args).env("BREVDUE_LOG", "warn");
    spawn_serve(command)
}

async fn wait_exit(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway did not exit within 60 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gives_unavailable_and_the_gateway_recovers_by_itself() {
    prlimit_available();
    let h = Harness::prepare().await;
    let (gateway, server) = serve_limited(&h, 3 << 20);
    let mut client = connect(&server, &h.cert_dir(BANK)).await;

    // Letters one by one until the disk is "full", and some more while it is.
    let mut accepted: HashMap<String, pb::Receipt> = HashMap::new();
    let mut refused: Vec<pb::Letter> = Vec::new();
    for i in 0..3000 {
        let l = letter(ACTIVE_SUBSCRIBED, &format!("Brev {i}"), &[b'd'; 10_000]);
        match client.submit_letter(l.clone()).await {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox, "{r:?}");
                accepted.insert(r.message_uuid.clone(), r);
            }
            Err(s) => {
                assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                assert!(
                    s.message().contains("nothing was accepted"),
                    "{}",
                    s.message()
                );
                assert!(s.metadata().get("retry-after-ms").is_some());
                refused.push(l);
                if refused.len() >= 20 {
                    break;
                }
            }
        }
    }
    assert!(
        !refused.is_empty(),
        "3000 letters of 10 KB fitted under a 3 MB file limit"
    );
    for l in &refused {
        let status = client
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::MessageUuid(l.message_uuid.clone())),
            })
            .await;
        // A letter refused as UNAVAILABLE may have been stored without its queue entry (the
        // receipt is withheld until both are durable); then resending it finishes the job.
        if let Ok(s) = status {
            assert!(!accepted.contains_key(&s.into_inner().message_uuid));
        }
    }

    // Room again: lift the limit on the running gateway; resending is all the sender does.
    let lifted = Command::new("prlimit")
        .args(["--pid", &gateway.id().to_string(), "--fsize=unlimited:"])
        .status()
        .expect("prlimit");
    assert!(lifted.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    for l in &refused {
        loop {
            match client.submit_letter(l.clone()).await {
                Ok(r) => {
                    let r = r.into_inner();
                    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
                    accepted.insert(r.message_uuid.clone(), r);
                    break;
                }
                Err(s) => {
                    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                    assert!(
                        Instant::now() < deadline,
                        "still UNAVAILABLE 60 s after the disk had room: {s:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    // Every accepted letter is durable and intact: delivered (delivery opens and verifies
    // each sealed letter), before and after a restart.
    let total = accepted.len();
    let store = h.store().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = store.state_counts().await.expect("counts");
        assert_eq!(c.failed, 0);
        if c.delivered as usize == total && c.accepted == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all {total} accepted letters were delivered: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(h.in_mailboxes(&[ACTIVE_SUBSCRIBED]).await as usize, total);
    sigterm(&gateway);
    wait_exit(gateway.take()).await;

    let (gateway, server) = serve_limited(&h, u64::MAX >> 1);
    let mut client = connect(&server, &h.cert_dir(BANK)).await;
    for r in accepted.values() {
        let s = client
            .get_status(pb::StatusRequest {
                key: Some(pb::status_request::Key::LetterId(r.letter_id.clone())),
            })
            .await
            .expect("there after the restart")
            .into_inner();
        assert_eq!(s.content_sha256, r.content_sha256);
        assert_eq!(
            pb::LetterState::try_from(s.state),
            Ok(pb::LetterState::Delivered)
        );
    }
    sigterm(&gateway);
    wait_exit(gateway.take()).await;
}
