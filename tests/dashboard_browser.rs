//! The live dashboard in a real browser: two senders stream letters into the real gateway in the
//! background while headless Chromium loads `/dashboard`, runs its JS (`--dump-dom` after
//! `--virtual-time-budget`, so the page has polled `/api/stats` a few times) and hands back
//! the DOM. The page keeps every number raw in a `data-value` attribute; the test reads those.
//! It looks twice while the batch runs (throughput is non-zero and moving), saves a screenshot
//! to `docs/dashboard.png`, then once after the batch (the outcome split and the rejection
//! reasons match the receipts exactly).
//!
//! Needs Chromium: without it the test fails and says how to install it.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use brevdue::cli::client::{Client, outcome_name, reason_name};
use brevdue::ingest::pb;
use common::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// Chromium from BREVDUE_CHROMIUM or the PATH; fails the test (never skips it) when missing.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("BREVDUE_CHROMIUM") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the dashboard browser test needs headless Chromium, which is not installed: run `{INSTALL}` \
         (or point BREVDUE_CHROMIUM at a Chromium or Chrome binary)"
    );
}

/// Runs headless Chromium on `url` with the extra arguments and returns its stdout.
async fn run_chromium(browser: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("tempdir");
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    // Enough virtual time for the page's first polls of /api/stats (one a second).
    .arg("--virtual-time-budget=3500")
    .args(extra)
    .arg(url)
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(120), cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!(
            "cannot run {} ({e}); install Chromium with `{INSTALL}`",
            browser.display()
        ),
        Err(_) => panic!("headless Chromium did not finish within 120 s on {url}"),
    };
    assert!(
        out.status.success(),
        "headless Chromium failed ({}) on {url}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of the dashboard after its JS ran.
struct Page(String);

/// Loads the page until `ready` holds for it or a minute has passed; returns the last load
/// either way, for the caller's assertions to judge.
async fn load_until(browser: &Path, url: &str, ready: impl Fn(&Page) -> bool) -> Page {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let page = Page::load(browser, url).await;
        if ready(&page) || std::time::Instant::now() > deadline {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Page {
    async fn load(browser: &Path, url: &str) -> Page {
        let dom = run_chromium(browser, url, &["--dump-dom".to_string()]).await;
        assert!(
            dom.contains("id=\"rate-total\""),
            "the dump is not the dashboard:\n{dom}"
        );
        Page(dom)
    }

    /// The opening tag of the element with this id.
    fn tag(&self, id: &str) -> &str {
        let needle = format!("id=\"{id}\"");
        let at = self
            .0
            .find(&needle)
            .unwrap_or_else(|| panic!("no element #{id} in the page"));
        let start = self.0[..at].rfind('<').unwrap_or(0);
        let end = at + self.0[at..].find('>').unwrap_or(0);
        &self.0[start..end]
    }

    fn attr(&self, id: &str, name: &str) -> String {
        let tag = self.tag(id);
        let needle = format!(" {name}=\"");
        let Some(at) = tag.find(&needle) else {
            panic!("#{id} has no {name}: {tag}")
        };
        let rest = &tag[at + needle.len()..];
        rest[..rest.find('"').unwrap_or(rest.len())].to_string()
    }

    /// The raw number the page rendered into #id.
    fn num(&self, id: &str) -> f64 {
        self.num_attr(id, "data-value")
    }

    fn num_attr(&self, id: &str, name: &str) -> f64 {
        let v = self.attr(id, name);
        v.parse()
            .unwrap_or_else(|_| panic!("#{id} {name} is {v:?}, not a number"))
    }

    fn answered(&self) -> f64 {
        self.num("total-mailbox") + self.num("total-print") + self.num("total-rejected")
    }
}

/// Receipts counted by outcome and, for rejections, by reason.
#[derive(Default, Debug)]
struct Counts {
    outcomes: HashMap<&'static str, u64>,
    reasons: HashMap<&'static str, u64>,
}

/// Streams letters from `make` at a steady pace until `stop`, and counts the receipts.
async fn feed(mut client: Client, make: fn(u64) -> pb::Letter, stop: Arc<AtomicBool>) -> Counts {
    let (tx, rx) = mpsc::channel(256);
    let mut receipts = client
        .submit_batch(ReceiverStream::new(rx))
        .await
        .expect("the gateway takes the stream")
        .into_inner();
    tokio::spawn(async move {
        let mut i = 0u64;
        // About 600 letters a second per sender, for at most ten minutes.
        while !stop.load(Ordering::SeqCst) && i < 360_000 {
            for _ in 0..30 {
                if tx.send(make(i)).await.is_err() {
                    return;
                }
                i += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut counts = Counts::default();
    while let Some(r) = receipts.message().await.expect("receipts stream") {
        *counts.outcomes.entry(outcome_name(r.outcome)).or_default() += 1;
        if r.outcome == pb::Outcome::Rejected as i32 {
            *counts.reasons.entry(reason_name(r.reason)).or_default() += 1;
        }
    }
    counts
}

const CONTENT: &[u8] = b"%PDF-1.4\n% a letter for the dashboard test\n";

/// A public authority's mix: mailbox, print (exempt), closed and invalid recipients.
fn authority_letter(i: u64) -> pb::Letter {
    match i % 10 {
        0..=5 => letter(ACTIVE_SUBSCRIBED, "Afgørelse", CONTENT),
        6 | 7 => letter(EXEMPT, "Afgørelse", CONTENT),
        8 => letter(CLOSED, "Afgørelse", CONTENT),
        _ => letter("3102901234", "Afgørelse", CONTENT),
    }
}

/// A bank's mix: subscribed, not reachable, and printed as a fallback.
fn bank_letter(i: u64) -> pb::Letter {
    match i % 5 {
        0..=2 => letter(ACTIVE_SUBSCRIBED, "Kontoudskrift", CONTENT),
        3 => letter(ACTIVE_OTHER, "Kontoudskrift", CONTENT),
        _ => {
            let mut l = letter(ACTIVE_OTHER, "Kontoudskrift", CONTENT);
            l.print_fallback = true;
            l
        }
    }
}

fn answered_so_far() -> u64 {
    let s = brevdue::telemetry::live().snapshot();
    s.accepted[0] + s.accepted[1] + s.rejected_total()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_running_batch_live() {
    let browser = chromium();
    let mut h = Harness::start().await;
    let url = h.admin_url("/dashboard");

    let stop = Arc::new(AtomicBool::new(false));
    let feeders = [
        tokio::spawn(feed(
            h.client(AUTHORITY).await,
            authority_letter,
            stop.clone(),
        )),
        tokio::spawn(feed(h.client(BANK).await, bank_letter, stop.clone())),
    ];
    // Let a few seconds of the batch reach the sampler's ring before the browser looks.
    for _ in 0..600 {
        if answered_so_far() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered_so_far() > 0, "no letter was answered in 30 s");

    // 1. While the batch runs: non-zero throughput, split three ways, and the page polls. The
    //    page is loaded until the sampler's ring holds all three kinds of answer (or a minute
    //    has passed, and the assertions below say what is missing).
    let shows_all_three = |p: &Page| {
        ["rate-mailbox", "rate-print", "rate-rejected"]
            .iter()
            .all(|id| p.num(id) > 0.0)
    };
    let first = load_until(&browser, &url, shows_all_three).await;
    assert!(
        first.num("polls") >= 2.0,
        "the page did not keep polling /api/stats"
    );
    assert!(
        first.num("rate-total") > 0.0,
        "no throughput shown: {}",
        first.tag("rate-total")
    );
    for id in ["rate-mailbox", "rate-print", "rate-rejected"] {
        assert!(first.num(id) > 0.0, "#{id} shows no throughput");
    }
    assert!(first.num_attr("chart", "data-nonzero") >= 1.0);
    let depth = first.num("queue-mailbox");
    assert!(
        depth.is_finite() && depth >= 0.0 && depth.fract() == 0.0,
        "the mailbox queue depth is not a count of letters: {depth}"
    );
    for cvr in [AUTHORITY, BANK] {
        assert!(
            first.0.contains(&format!("data-cvr=\"{cvr}\"")),
            "sender {cvr} is not among the busiest senders"
        );
    }

    // 2. A little later: the numbers have moved and the chart has grown.
    let (answered, points) = (first.answered(), first.num_attr("chart", "data-points"));
    let second = load_until(&browser, &url, |p| {
        p.answered() > answered && p.num_attr("chart", "data-points") > points
    })
    .await;
    assert!(second.num("rate-total") > 0.0);
    assert!(
        second.answered() > first.answered(),
        "the totals did not change: {} then {}",
        first.answered(),
        second.answered()
    );
    assert!(
        second.num_attr("chart", "data-points") > first.num_attr("chart", "data-points"),
        "the chart did not move"
    );
    assert!(second.num_attr("chart", "data-nonzero") >= 2.0);
    assert!(second.num("p50-accept") > 0.0, "no receipt latency shown");
    assert!(second.num("p99-accept") >= second.num("p50-accept"));

    // 3. The picture for the README, taken while letters still flow.
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
    std::fs::create_dir_all(png.parent().expect("docs")).expect("docs dir");
    let _ = std::fs::remove_file(&png);
    run_chromium(
        &browser,
        &url,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".to_string(),
        ],
    )
    .await;
    let shot = std::fs::read(&png).expect("the screenshot was written");
    assert!(
        shot.starts_with(b"\x89PNG") && shot.len() > 10_000,
        "the screenshot is not a real PNG"
    );

    // 4. After the batch: the page's split is exactly what the receipts said.
    stop.store(true, Ordering::SeqCst);
    let mut receipts = Counts::default();
    for f in feeders {
        let c = f.await.expect("feeder");
        for (k, v) in c.outcomes {
            *receipts.outcomes.entry(k).or_default() += v;
        }
        for (k, v) in c.reasons {
            *receipts.reasons.entry(k).or_default() += v;
        }
    }
    let last = Page::load(&browser, &url).await;
    let got = |o: &str| receipts.outcomes.get(o).copied().unwrap_or(0) as f64;
    assert_eq!(last.num("total-mailbox"), got("ACCEPTED_MAILBOX"));
    assert_eq!(last.num("total-print"), got("ACCEPTED_PRINT"));
    assert_eq!(last.num("total-rejected"), got("REJECTED"));
    for reason in [
        "RECIPIENT_CLOSED",
        "INVALID_RECIPIENT_ID",
        "NOT_REACHABLE",
        "TOO_LARGE",
    ] {
        assert_eq!(
            last.num(&format!("reason-{reason}")),
            receipts.reasons.get(reason).copied().unwrap_or(0) as f64,
            "rejections for {reason}"
        );
    }
    assert!(receipts.reasons.get("NOT_REACHABLE").copied().unwrap_or(0) > 0);
    println!(
        "dashboard checked against {} receipts; screenshot in {}",
        last.answered(),
        png.display()
    );
    h.stop().await;
}
