//! A bulk retry job interrupted by SIGKILL resumes when the gateway starts again and
//! finishes without doing any letter twice: every letter is retried once (one "retried"
//! event each), printed once, and the job's progress never goes back. The gateway is the
//! `brevdue serve` binary, killed for real. On both backend pairs.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use brevdue::domain::LetterState;
use brevdue::ingest::pb;
use brevdue::store::{EventPage, EventQuery};
use common::delivery::{break_print_dir, mend_print_dir};
use common::operators::*;
use common::*;

const LETTERS: usize = 1_000;

/// A gateway process on ports of its own choosing with the test's configuration file.
fn spawn_gateway(h: &Harness, config: &std::path::Path) -> (ServeProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command
        .args(h.serve_args(0, 0))
        .arg("--config")
        .arg(config)
        .env("BREVDUE_LOG", "warn");
    spawn_serve(command)
}

async fn a_job_killed_midway_resumes_and_does_no_letter_twice(backend: Backend) {
    let h = Harness::prepare_on(backend).await;
    h.add_operator("alice").await;
    // Letters die at their first failure; the job goes in small steps at a pace that leaves
    // room to kill it midway (the pace is a throttle, not a timing the test relies on).
    let config = h.outside.path().join("brevdue.toml");
    std::fs::write(
        &config,
        "refresh_interval = \"100ms\"\n[delivery]\nmax_age = \"1ms\"\nidle_poll = \"50ms\"\n\
         [operations]\njob_step = 20\njob_letters_per_second = 400\n",
    )
    .expect("config");
    let (gateway, server) = spawn_gateway(&h, &config);
    // The gateway says where it listens before it has made its spool: wait for it.
    let print = common::delivery::print_dir(h.data.path());
    common::delivery::wait_until(
        Duration::from_secs(60),
        "the print spool exists",
        || async {
            let _ = connect(&server, &h.cert_dir(AUTHORITY)).await;
            print.is_dir().then_some(())
        },
    )
    .await;
    break_print_dir(h.data.path());
    let ids = send_many_to(&server, &h, AUTHORITY, UNKNOWN, LETTERS, false).await;
    wait_for_failed(&h, LETTERS as u64).await;
    mend_print_dir(h.data.path());

    let mut ops = h.operator_at(&server, "alice").await;
    let job = start(
        &mut ops,
        pb::JobKind::JobRetry,
        selection(Some(AUTHORITY), None),
    )
    .await;
    assert_eq!(job.total, LETTERS as u64);
    let mut seen = vec![job.clone()];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = ops
            .get_job(pb::JobQuery {
                job_id: job.job_id.clone(),
            })
            .await
            .expect("GetJob")
            .into_inner();
        let midway = j.done > 0 && j.done < j.total;
        seen.push(j);
        if midway {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job made no progress: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut gateway = gateway.take();
    gateway.kill().expect("SIGKILL");
    let _ = gateway.wait();
    let at_kill = seen.last().expect("seen").done;
    assert!(at_kill < LETTERS as u64, "killed midway at {at_kill}");

    // Started again: the job resumes and finishes.
    let (gateway, server) = spawn_gateway(&h, &config);
    let mut ops = h.operator_at(&server, "alice").await;
    let resumed = ops
        .get_job(pb::JobQuery {
            job_id: job.job_id.clone(),
        })
        .await
        .expect("the job survived")
        .into_inner();
    assert!(
        resumed.done >= at_kill,
        "no progress was lost: {} < {at_kill}",
        resumed.done
    );
    seen.extend(follow_job(&mut ops, resumed).await);
    assert_progress(&seen);
    assert_eq!(seen.last().expect("done").failed, 0);

    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, LETTERS as u64);
    let spooled = spooled_letters(h.data.path());
    for id in &ids {
        assert_eq!(spooled.get(id), Some(&1), "letter {id} printed once");
    }
    // Each letter was retried exactly once: one "retried" event each, from the store's log.
    let store = h.store().await;
    let mut retried: HashMap<String, usize> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store
            .events(EventQuery {
                sender: AUTHORITY.parse().expect("cvr"),
                after,
                terminal_only: false,
                limit: 1000,
            })
            .await
            .expect("events");
        let EventPage::Events(events) = page else {
            panic!("events expired")
        };
        let Some(last) = events.last() else { break };
        after = last.seq;
        for e in &events {
            if e.state == LetterState::Accepted && e.detail.contains("retried") {
                *retried.entry(e.letter_id.to_string()).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(retried.len(), LETTERS);
    assert!(
        retried.values().all(|&n| n == 1),
        "a letter was retried twice"
    );
    drop(gateway);
}
on_every_backend!(a_job_killed_midway_resumes_and_does_no_letter_twice);
