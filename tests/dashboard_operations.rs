//! The operator pages in a real browser (headless Chromium driven through chromedriver): the
//! front page shows each route's oldest waiting letter and whether it is held; on the
//! operations page the dead letters of a print outage are listed, narrowed to one sender, and
//! the "Retry all matching" button starts a job whose progress moves to done; "Purge" (after
//! its confirmation) does the other sender's; the sender page shows the drill-down and its
//! Suspend button really refuses the sender. Everything asks for the admin token: without it
//! the pages and their actions are refused. Screenshots go to `docs/`. On both backend pairs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::delivery::{break_print_dir, mend_print_dir};
use common::operators::*;
use common::webdriver::{Browser, http};
use common::*;
use serde_json::Value;

const TOKEN: &str = "operator-token-0123456789";
const AUTHORITY_DEAD: usize = 300;
const BANK_DEAD: usize = 400;

fn save(name: &str, png: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    std::fs::write(&path, png).expect("screenshot written");
}

async fn operators_use_the_dashboard(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    let token_file = h.outside.path().join("admin-token");
    std::fs::write(&token_file, TOKEN).expect("token");
    h.config.admin_token_file = Some(token_file);
    h.config.delivery.max_age = Duration::from_millis(1);
    // Small, paced steps: the retry job takes a few seconds, so its progress can be watched.
    h.config.operations.job_step = 40;
    h.config.operations.job_letters_per_second = Some(100);
    h.boot().await;
    let admin = h.config.admin_listen.port();

    break_print_dir(h.data.path());
    send_many(&h, AUTHORITY, UNKNOWN, AUTHORITY_DEAD, false).await;
    let bank = send_many(&h, BANK, UNKNOWN, BANK_DEAD, true).await;
    wait_for_failed(&h, (AUTHORITY_DEAD + BANK_DEAD) as u64).await;
    mend_print_dir(h.data.path());

    // Without the token: the pages and the actions are refused, and nothing starts.
    for path in [
        "/dashboard/operations",
        "/dashboard/sender?cvr=10103940",
        "/api/ops/dead",
        "/api/ops/routes",
    ] {
        let (code, _) = http(admin, "GET", path, &[], None).await;
        assert_eq!(code, 401, "{path} without the token");
    }
    let (code, _) = http(
        admin,
        "POST",
        "/api/ops/jobs",
        &[("Content-Type", "application/json")],
        Some(r#"{"kind":"retry"}"#),
    )
    .await;
    assert_eq!(code, 401);
    let store = h.store().await;
    assert!(
        store.jobs(10).await.expect("jobs").is_empty(),
        "a refused action started a job"
    );

    let browser = Browser::start().await;
    browser
        .goto(&h.admin_url(&format!("/dashboard?token={TOKEN}")))
        .await;
    // The front page: each route with its oldest waiting letter and whether it is held.
    let print = browser
        .wait_for(
            "the print route on the front page",
            "const c = document.querySelector('#routes-summary [data-route=print]'); return c ? c.dataset.held : null;",
        )
        .await;
    assert_eq!(print, Value::String("false".into()));
    if backend == Backend::Embedded {
        save("dashboard-routes.png", &browser.screenshot().await);
    }

    browser.click("#to-operations").await;
    browser
        .wait_for(
            "all dead letters listed",
            &format!(
                "return document.getElementById('dead-total').dataset.value === '{}';",
                AUTHORITY_DEAD + BANK_DEAD
            ),
        )
        .await;
    // Hold print from the page: the front page then shows it held.
    browser.type_into("#hold-reason", "printer outage").await;
    browser.click("#hold-print").await;
    browser
        .wait_for("print held", "const r = document.querySelector('#routes [data-route=print]'); return r && r.dataset.held === 'true';")
        .await;
    browser.click("#release-print").await;
    browser
        .wait_for("print released", "const r = document.querySelector('#routes [data-route=print]'); return r && r.dataset.held === 'false';")
        .await;

    // Narrow to the bank, retry: the job's progress moves to done.
    browser.type_into("#f-sender", BANK).await;
    browser
        .wait_for(
            "the bank's dead letters",
            &format!(
                "return document.getElementById('dead-total').dataset.value === '{BANK_DEAD}';"
            ),
        )
        .await;
    browser.click("#retry-dead").await;
    let first = browser
        .wait_for(
            "the retry job on the page",
            "const r = document.querySelector('#jobs tr[data-kind=retry]'); return r ? [r.dataset.state, Number(r.dataset.done), Number(r.dataset.total)] : null;",
        )
        .await;
    assert_eq!(first[2], Value::from(BANK_DEAD), "{first}");
    let mut seen = vec![first.clone()];
    let mut shot = false;
    loop {
        let now = browser
            .js("const r = document.querySelector('#jobs tr[data-kind=retry]'); return [r.dataset.state, Number(r.dataset.done), Number(r.dataset.total)];")
            .await;
        let done = now[1].as_u64().unwrap_or(0);
        if !shot && backend == Backend::Embedded && done > 0 && done < BANK_DEAD as u64 {
            save("operations.png", &browser.screenshot().await);
            shot = true;
        }
        let finished = now[0] == Value::String("done".into());
        seen.push(now);
        if finished {
            break;
        }
        if seen.len() > 1200 {
            let jobs = store.jobs(5).await.expect("jobs");
            panic!(
                "the job did not finish on the page: last {:?}; in the store: {jobs:?}",
                seen.last()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in seen.windows(2) {
        assert!(
            w[0][1].as_u64() <= w[1][1].as_u64(),
            "progress went back: {seen:?}"
        );
    }
    let last = seen.last().expect("seen");
    assert_eq!(last[1], Value::from(BANK_DEAD), "{last}");
    assert_eq!(
        seen[0][0],
        Value::String("running".into()),
        "the page showed the job running first: {seen:?}"
    );
    let counts = h.wait_for_delivery().await;
    assert_eq!(counts.print_spooled, BANK_DEAD as u64);
    let spooled = spooled_letters(h.data.path());
    for id in &bank {
        assert_eq!(spooled.get(id), Some(&1));
    }

    // The authority's: purged, after the page's confirmation.
    browser.goto(&h.admin_url("/dashboard/operations")).await;
    browser.type_into("#f-sender", AUTHORITY).await;
    browser
        .wait_for(
            "the authority's dead letters",
            &format!(
                "return document.getElementById('dead-total').dataset.value === '{AUTHORITY_DEAD}';"
            ),
        )
        .await;
    browser.click("#purge-dead").await;
    browser.accept_dialog().await;
    browser
        .wait_for(
            "the purge job done",
            &format!("const r = document.querySelector('#jobs tr[data-kind=purge]'); return r && r.dataset.state === 'done' && r.dataset.done === '{AUTHORITY_DEAD}';"),
        )
        .await;
    let audit = browser
        .wait_for(
            "the audit trail on the page",
            "const a = [...document.querySelectorAll('#audit tr')].map(t => t.dataset.action); return a.includes('purge started') ? a : null;",
        )
        .await;
    assert!(
        audit
            .as_array()
            .is_some_and(|a| a.contains(&Value::String("retry finished".into()))),
        "{audit}"
    );
    if backend == Backend::Embedded {
        save("operations-done.png", &browser.screenshot().await);
    }

    // The sender page: the drill-down, and Suspend really refuses the sender.
    browser
        .goto(&h.admin_url(&format!("/dashboard/sender?cvr={BANK}")))
        .await;
    let spooled_shown = browser
        .wait_for(
            "the bank's letters by state",
            "const d = document.querySelector('#sender-states [data-name=PRINT_SPOOLED]'); return d ? Number(d.dataset.value) : null;",
        )
        .await;
    assert_eq!(spooled_shown, Value::from(BANK_DEAD));
    let name = browser
        .js("return document.getElementById('sender-name').textContent;")
        .await;
    assert!(
        name.as_str()
            .is_some_and(|n| n.contains(BANK) && n.contains("Test Bank")),
        "{name}"
    );
    browser.click("#suspend").await;
    browser
        .wait_for(
            "suspended on the page",
            "return document.getElementById('sender-state').dataset.suspended === 'true';",
        )
        .await;
    if backend == Backend::Embedded {
        save("sender.png", &browser.screenshot().await);
    }
    let refused = h
        .client(BANK)
        .await
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"%PDF-1.4 x"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    browser.click("#resume").await;
    browser
        .wait_for(
            "resumed on the page",
            "return document.getElementById('sender-state').dataset.suspended === 'false';",
        )
        .await;
    browser.quit().await;

    // Every action of the pages is in the audit trail, as done through the dashboard.
    let entries = store.audit(None, 100).await.expect("audit");
    let by_page: Vec<&str> = entries
        .iter()
        .rev()
        .filter(|a| a.entry.operator == "dashboard")
        .map(|a| a.entry.action.as_str())
        .collect();
    for action in [
        "hold",
        "release",
        "retry started",
        "retry finished",
        "purge started",
        "purge finished",
        "suspend",
        "resume",
    ] {
        assert!(by_page.contains(&action), "{action} missing: {by_page:?}");
    }
    h.stop().await;
}
on_every_backend!(operators_use_the_dashboard);
