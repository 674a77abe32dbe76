//! Registry changes end to end: a change file (`brevdue registry apply`) and an operator's
//! gRPC calls change how the next letter routes on every running gateway, without a reload;
//! a bad change file changes nothing and names its lines; a sender's certificate is refused by
//! the registry service; a restarted gateway routes exactly as before.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use brevdue::cli::client::Client;
use brevdue::ingest::pb;
use brevdue::server;
use common::*;

/// Every recipient of the harness registry with the senders that ask about it.
const PROBES: [&str; 8] = [
    ACTIVE_SUBSCRIBED,
    ACTIVE_OTHER,
    EXEMPT_SUBSCRIBED,
    EXEMPT,
    CLOSED,
    UNKNOWN,
    COMPANY,
    COMPANY_CLOSED,
];

/// What `CheckRecipient` answers: MAILBOX, PRINT, or the rejection reason.
type Answer = (i32, i32);

async fn check(client: &mut Client, recipient: &str) -> Answer {
    let r = client
        .check_recipient(pb::RecipientQuery {
            recipient: Some(pb::RecipientId {
                r#type: if recipient.len() == 8 {
                    pb::IdType::Cvr
                } else {
                    pb::IdType::Cpr
                } as i32,
                id: recipient.to_string(),
            }),
            print_fallback: false,
        })
        .await
        .expect("CheckRecipient")
        .into_inner();
    (r.reach, r.reason)
}

const MAILBOX: Answer = (pb::Reach::Mailbox as i32, 0);
const PRINT: Answer = (pb::Reach::Print as i32, 0);
const NOT_REACHABLE: Answer = (
    pb::Reach::None as i32,
    pb::RejectReason::NotReachable as i32,
);
const CLOSED_ANSWER: Answer = (
    pb::Reach::None as i32,
    pb::RejectReason::RecipientClosed as i32,
);

/// Waits (a deadline that only fails the test) until `client` answers `want` for `recipient`.
async fn until(client: &mut Client, recipient: &str, want: Answer, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = check(client, recipient).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got:?} after 30 s, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How each sender sees every probe recipient.
async fn answers(bank: &mut Client, authority: &mut Client) -> Vec<(Answer, Answer)> {
    let mut out = Vec::new();
    for r in PROBES {
        out.push((check(bank, r).await, check(authority, r).await));
    }
    out
}

fn change_file(dir: &Path, name: &str, lines: &[String]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write change file");
    path
}

fn change(kind: &str, id_type: &str, id: &str, extra: &str) -> String {
    format!(r#"{{"change":"{kind}","id_type":"{id_type}","id":"{id}"{extra}}}"#)
}

async fn every_change_kind_routes_on_every_gateway(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    let second_config = h.config.clone();
    h.boot().await;
    // A second gateway on the same store where the backends allow it (PostgreSQL); with the
    // embedded default one process owns the data directory.
    let second = match backend {
        Backend::Production => Some(
            server::start(second_config)
                .await
                .expect("a second gateway starts on the same backends"),
        ),
        Backend::Embedded => None,
    };
    let second_url = second.as_ref().map(|s| format!("https://{}", s.grpc_addr));
    let mut gateways = vec![(
        h.client(BANK).await,
        h.client(AUTHORITY).await,
        "first gateway",
    )];
    if let Some(url) = &second_url {
        gateways.push((
            connect(url, &h.cert_dir(BANK)).await,
            connect(url, &h.cert_dir(AUTHORITY)).await,
            "second gateway",
        ));
    }
    for (bank, authority, _) in &mut gateways {
        assert_eq!(check(bank, ACTIVE_OTHER).await, NOT_REACHABLE);
        assert_eq!(check(bank, ACTIVE_SUBSCRIBED).await, MAILBOX);
        assert_eq!(check(authority, UNKNOWN).await, PRINT);
        assert_eq!(check(authority, EXEMPT).await, PRINT);
        assert_eq!(check(authority, COMPANY).await, MAILBOX);
        assert_eq!(check(authority, CLOSED).await, CLOSED_ANSWER);
    }

    // 1. A change file, applied to the store while the gateways run.
    let file = change_file(
        h.outside.path(),
        "changes.jsonl",
        &[
            change(
                "subscribe",
                "CPR",
                ACTIVE_OTHER,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
            change(
                "unsubscribe",
                "CPR",
                ACTIVE_SUBSCRIBED,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
            change("status", "CPR", UNKNOWN, r#","status":"active""#),
            change("status", "CPR", EXEMPT, r#","status":"active""#),
            change("status", "CVR", COMPANY, r#","status":"closed""#),
            change("remove", "CPR", CLOSED, ""),
        ],
    );
    brevdue::cli::registry::registry_apply(&h.config, &file)
        .await
        .expect("registry apply");
    for (bank, authority, name) in &mut gateways {
        until(bank, ACTIVE_OTHER, MAILBOX, &format!("{name}: subscribe")).await;
        until(
            bank,
            ACTIVE_SUBSCRIBED,
            NOT_REACHABLE,
            &format!("{name}: unsubscribe"),
        )
        .await;
        until(
            authority,
            UNKNOWN,
            MAILBOX,
            &format!("{name}: new recipient"),
        )
        .await;
        until(
            authority,
            EXEMPT,
            MAILBOX,
            &format!("{name}: exemption revoked"),
        )
        .await;
        until(
            authority,
            COMPANY,
            CLOSED_ANSWER,
            &format!("{name}: company ceased"),
        )
        .await;
        until(authority, CLOSED, PRINT, &format!("{name}: removed")).await;
        // A private sender cannot tell the new closure from any unsubscribed recipient.
        assert_eq!(check(bank, COMPANY).await, NOT_REACHABLE);
    }

    // 2. The same kinds over gRPC, as an operator, sent to the first gateway.
    let op_dir = h.add_operator("registry-desk").await;
    let _ = h.operator("registry-desk").await;
    let mut registry = brevdue::cli::registry::connect(&h.server_url(), &op_dir)
        .await
        .expect("operator connects to RegistryAdmin");
    let pb_change =
        |change: &str, id_type: &str, id: &str, sender: &str, status: &str| pb::RegistryChange {
            change: change.into(),
            id_type: id_type.into(),
            id: id.into(),
            sender_cvr: sender.into(),
            status: status.into(),
        };
    let applied = registry
        .apply_changes(pb::RegistryChanges {
            changes: vec![
                pb_change("unsubscribe", "CPR", ACTIVE_OTHER, BANK, ""),
                pb_change("subscribe", "CPR", ACTIVE_SUBSCRIBED, BANK, ""),
                pb_change("status", "CPR", EXEMPT, "", "exempt"),
                pb_change("status", "CVR", COMPANY, "", "active"),
                pb_change("remove", "CPR", UNKNOWN, "", ""),
                pb_change("status", "CPR", CLOSED, "", "closed"),
            ],
        })
        .await
        .expect("ApplyChanges")
        .into_inner();
    assert_eq!(applied.count, 6);
    assert_eq!(applied.last_seq - applied.first_seq, 5);
    for (bank, authority, name) in &mut gateways {
        until(
            bank,
            ACTIVE_OTHER,
            NOT_REACHABLE,
            &format!("{name}: gRPC unsubscribe"),
        )
        .await;
        until(
            bank,
            ACTIVE_SUBSCRIBED,
            MAILBOX,
            &format!("{name}: gRPC subscribe"),
        )
        .await;
        until(authority, EXEMPT, PRINT, &format!("{name}: gRPC exemption")).await;
        until(authority, COMPANY, MAILBOX, &format!("{name}: gRPC status")).await;
        until(authority, UNKNOWN, PRINT, &format!("{name}: gRPC remove")).await;
        until(
            authority,
            CLOSED,
            CLOSED_ANSWER,
            &format!("{name}: gRPC death"),
        )
        .await;
    }
    let state = registry
        .get_registry_state(pb::RegistryStateRequest {})
        .await
        .expect("GetRegistryState")
        .into_inner();
    assert_eq!(state.applied_seq, applied.last_seq);
    assert_eq!(state.newest_seq, applied.last_seq);
    assert_eq!(state.recipients, 7);

    // 3. Refused changes change nothing, through either path, and say which and why.
    let before = {
        let (bank, authority, _) = &mut gateways[0];
        answers(bank, authority).await
    };
    let bad = change_file(
        h.outside.path(),
        "bad.jsonl",
        &[
            change(
                "subscribe",
                "CPR",
                EXEMPT,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
            change(
                "subscribe",
                "CPR",
                UNKNOWN,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
            change(
                "subscribe",
                "CPR",
                EXEMPT,
                &format!(r#","sender_cvr":"{AUTHORITY}""#),
            ),
            change("status", "CVR", COMPANY, r#","status":"exempt""#),
        ],
    );
    let err = brevdue::cli::registry::registry_apply(&h.config, &bad)
        .await
        .expect_err("a file with bad changes is refused")
        .to_string();
    assert!(err.contains("nothing applied"), "{err}");
    assert!(
        err.contains("line 3: sender 29403473 is a public sender"),
        "{err}"
    );
    assert!(
        err.contains("line 4: a company (CVR) cannot be exempt"),
        "{err}"
    );
    // Only the store knows UNKNOWN is not registered: fixing the other lines shows it.
    let bad = change_file(
        h.outside.path(),
        "bad2.jsonl",
        &[
            change(
                "subscribe",
                "CPR",
                EXEMPT,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
            change(
                "subscribe",
                "CPR",
                UNKNOWN,
                &format!(r#","sender_cvr":"{BANK}""#),
            ),
        ],
    );
    let err = brevdue::cli::registry::registry_apply(&h.config, &bad)
        .await
        .expect_err("a change for an unregistered recipient is refused")
        .to_string();
    assert!(
        err.contains("line 2: the recipient is not in the registry"),
        "{err}"
    );
    let refused = registry
        .apply_changes(pb::RegistryChanges {
            changes: vec![
                pb_change("status", "CPR", EXEMPT, "", "active"),
                pb_change("remove", "CPR", UNKNOWN, "", ""),
            ],
        })
        .await
        .expect_err("a call with a bad change is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("line 2: the recipient is not in the registry"),
        "{}",
        refused.message()
    );
    let state = registry
        .get_registry_state(pb::RegistryStateRequest {})
        .await
        .expect("GetRegistryState")
        .into_inner();
    assert_eq!(state.newest_seq, applied.last_seq, "nothing was logged");
    {
        let (bank, authority, _) = &mut gateways[0];
        assert_eq!(answers(bank, authority).await, before, "nothing changed");
    }

    // 4. A sender's certificate is refused by the registry service.
    let channel = brevdue::cli::client::channel(
        &h.server_url(),
        &h.cert_dir(BANK),
        "sender.pem",
        "sender.key",
    )
    .await
    .expect("channel");
    let mut as_sender = pb::registry_admin_client::RegistryAdminClient::new(channel);
    let denied = as_sender
        .apply_changes(pb::RegistryChanges {
            changes: vec![pb_change("subscribe", "CPR", EXEMPT, BANK, "")],
        })
        .await
        .expect_err("a sender may not change the registry");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    // 5. Every operator call is in the audit trail.
    let store = h.store().await;
    let audit = store.audit(None, 50).await.expect("audit");
    let registry_entries: Vec<_> = audit
        .iter()
        .filter(|a| a.entry.action == "registry apply")
        .collect();
    assert_eq!(registry_entries.len(), 2, "{audit:?}");
    assert!(
        registry_entries
            .iter()
            .all(|a| a.entry.operator == "registry-desk")
    );
    assert!(
        registry_entries
            .iter()
            .any(|a| a.entry.result.starts_with("refused"))
    );

    // 6. A gateway restarted after the changes routes exactly as before.
    let routed = {
        let (bank, authority, _) = &mut gateways[0];
        answers(bank, authority).await
    };
    drop(gateways);
    if let Some(s) = second {
        s.shutdown().await.expect("second gateway stops");
    }
    h.restart().await;
    let mut bank = h.client(BANK).await;
    let mut authority = h.client(AUTHORITY).await;
    assert_eq!(answers(&mut bank, &mut authority).await, routed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_kind_routes_on_the_embedded_gateway() {
    every_change_kind_routes_on_every_gateway(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_kind_routes_on_two_gateways_on_postgres_and_rabbitmq() {
    every_change_kind_routes_on_every_gateway(Backend::Production).await;
}

/// An import while gateways run is a new generation: they load it whole, and deltas after it
/// apply on top.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_while_running_is_picked_up_and_changes_follow_it() {
    let h = Harness::start().await;
    let mut authority = h.client(AUTHORITY).await;
    assert_eq!(check(&mut authority, UNKNOWN).await, PRINT);
    let file = h.outside.path().join("more.csv");
    std::fs::write(&file, format!("id_type,id,status\nCPR,{UNKNOWN},active\n")).expect("write");
    brevdue::cli::registry::registry_import(&h.config, &file, None)
        .await
        .expect("import");
    until(&mut authority, UNKNOWN, MAILBOX, "import").await;
    let changes = change_file(
        h.outside.path(),
        "after.jsonl",
        &[change("status", "CPR", UNKNOWN, r#","status":"closed""#)],
    );
    brevdue::cli::registry::registry_apply(&h.config, &changes)
        .await
        .expect("apply");
    until(
        &mut authority,
        UNKNOWN,
        CLOSED_ANSWER,
        "change after import",
    )
    .await;
}
