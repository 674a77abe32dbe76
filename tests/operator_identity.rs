//! Operators have identities of their own: a certificate from `brevdue operators add` opens
//! the operator services and nothing else; a sender's certificate is refused by every
//! operator service and an operator's by every sender service, both PERMISSION_DENIED; a
//! revoked operator is refused by running gateways within the refresh interval; every change
//! of operators is in the audit trail. On both backend pairs.

mod common;

use std::time::{Duration, Instant};

use brevdue::cli::operators::{self, OpsClient};
use brevdue::ingest::pb;
use brevdue::store::{OperatorRevocation, StoreError};
use common::*;
use tonic::Code;

async fn who(c: &mut OpsClient) -> Result<pb::OperatorIdentity, Code> {
    c.who_am_i(pb::WhoAmIRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| s.code())
}

/// The operator services, called with whatever certificate `c` holds: each method's code.
async fn every_operator_call(c: &mut OpsClient) -> Vec<(&'static str, Code)> {
    let code = |r: Result<tonic::Response<_>, tonic::Status>| match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    };
    vec![
        (
            "WhoAmI",
            code(
                c.who_am_i(pb::WhoAmIRequest {})
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "ListDeadLetters",
            code(
                c.list_dead_letters(pb::DeadLetterQuery::default())
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "StartJob",
            code(
                c.start_job(pb::JobRequest::default())
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "HoldRoute",
            code(
                c.hold_route(pb::RouteRequest::default())
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "SuspendSender",
            code(
                c.suspend_sender(pb::SenderRequest::default())
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
        (
            "ListAudit",
            code(
                c.list_audit(pb::AuditQuery::default())
                    .await
                    .map(|_| tonic::Response::new(())),
            ),
        ),
    ]
}

async fn operators_and_senders_never_cross(backend: Backend) {
    let mut h = Harness::prepare_on(backend).await;
    let alice = h.add_operator("alice").await;
    h.boot().await;

    let mut op = h.operator("alice").await;
    let me = who(&mut op).await.expect("alice is let in");
    assert_eq!(me.name, "alice");
    assert_eq!(me.fingerprint.len(), 64);

    // A sender's certificate, presented to the operator services, however it is loaded.
    let mut as_sender = OpsClient::new(
        brevdue::cli::client::channel(
            &h.server_url(),
            &h.cert_dir(BANK),
            "sender.pem",
            "sender.key",
        )
        .await
        .expect("connects"),
    );
    for (method, code) in every_operator_call(&mut as_sender).await {
        assert_eq!(
            code,
            Code::PermissionDenied,
            "a sender's certificate on Operations/{method}"
        );
    }
    let refused = as_sender.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert!(
        refused.message().contains("operators add"),
        "{}",
        refused.message()
    );

    // An operator's certificate, presented to the letter services.
    let mut as_operator = pb::letter_gateway_client::LetterGatewayClient::new(
        brevdue::cli::client::channel(&h.server_url(), &alice, "operator.pem", "operator.key")
            .await
            .expect("connects"),
    );
    let submit = as_operator
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"%PDF-1.4 x"))
        .await
        .unwrap_err();
    assert_eq!(submit.code(), Code::PermissionDenied, "{submit:?}");
    assert!(
        submit.message().contains("senders add"),
        "{}",
        submit.message()
    );
    let check = as_operator
        .check_recipient(pb::RecipientQuery {
            recipient: Some(pb::RecipientId {
                r#type: pb::IdType::Cpr as i32,
                id: ACTIVE_SUBSCRIBED.into(),
            }),
            print_fallback: false,
        })
        .await
        .unwrap_err();
    assert_eq!(check.code(), Code::PermissionDenied);
    let status = as_operator
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId(
                uuid::Uuid::new_v4().to_string(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let batch = as_operator
        .submit_batch(tokio_stream::iter(vec![letter(
            ACTIVE_SUBSCRIBED,
            "x",
            b"%PDF-1.4 x",
        )]))
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(batch, Some(Code::PermissionDenied));
    // Nothing was stored from the operator's attempts.
    let counts = h.store().await.state_counts().await.expect("counts");
    assert_eq!(counts.accepted + counts.scheduled + counts.delivered, 0);

    // The sender's own certificate still works on its service.
    let mut bank = h.client(BANK).await;
    bank.submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"%PDF-1.4 x"))
        .await
        .expect("the sender is let in");

    // An operator added while the gateway runs is let in at the next refresh.
    h.add_operator("bob").await;
    let mut bob = h.operator("bob").await;
    assert_eq!(who(&mut bob).await.expect("bob").name, "bob");

    // A name with a certificate in use is not issued a second one.
    let again = operators::add(
        &h.config,
        &"alice".parse().expect("name"),
        &h.outside.path().join("alice-again"),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            again.downcast_ref::<StoreError>(),
            Some(StoreError::OperatorExists(_))
        ),
        "{again:#}"
    );
    assert!(
        !h.outside
            .path()
            .join("alice-again")
            .join("operator.key")
            .exists()
    );

    // Revoked: refused within the refresh interval, on a new connection as on the old one.
    operators::revoke(
        &h.config,
        OperatorRevocation::Name("alice".parse().expect("name")),
    )
    .await
    .expect("revoke");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match who(&mut op).await {
            Err(Code::Unauthenticated) => break,
            other => assert!(
                Instant::now() < deadline,
                "alice still {other:?} after 20 s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fresh = operators::connect(&h.server_url(), &alice)
        .await
        .expect("connects");
    assert_eq!(who(&mut fresh).await.unwrap_err(), Code::Unauthenticated);
    assert_eq!(who(&mut bob).await.expect("bob still works").name, "bob");
    // Revoking again changes nothing and says so.
    operators::revoke(
        &h.config,
        OperatorRevocation::Name("alice".parse().expect("name")),
    )
    .await
    .expect("revoking twice is fine");
    // Now alice may be issued a new certificate.
    h.add_operator("alice").await;

    // The store lists each certificate with its state; the audit trail has every change.
    let store = h.store().await;
    let certs = store.operator_certs().await.expect("certs");
    let alices: Vec<_> = certs
        .iter()
        .filter(|c| c.name.as_str() == "alice")
        .collect();
    assert_eq!(alices.len(), 2);
    assert_eq!(
        alices.iter().filter(|c| c.revoked_at_ms.is_none()).count(),
        1
    );
    let audit = store.audit(None, 100).await.expect("audit");
    let actions: Vec<(String, String, String)> = audit
        .iter()
        .rev()
        .map(|a| {
            (
                a.entry.action.clone(),
                a.entry.selection.clone(),
                a.entry.result.clone(),
            )
        })
        .collect();
    let with = |action: &str, selection: &str, result: &str| {
        actions
            .iter()
            .filter(|(a, s, r)| a == action && s == selection && r.starts_with(result))
            .count()
    };
    assert_eq!(
        with("operators add", "operator=alice", "ok"),
        2,
        "{actions:#?}"
    );
    assert_eq!(
        with("operators add", "operator=alice", "refused"),
        1,
        "{actions:#?}"
    );
    assert_eq!(
        with("operators add", "operator=bob", "ok"),
        1,
        "{actions:#?}"
    );
    assert_eq!(
        with("operators revoke", "operator=alice", "ok: revoked 1"),
        1,
        "{actions:#?}"
    );
    assert_eq!(
        with("operators revoke", "operator=alice", "ok: revoked already"),
        1,
        "{actions:#?}"
    );
    assert!(audit.iter().all(|a| a.entry.operator.starts_with("local:")));
    h.stop().await;
}
on_every_backend!(operators_and_senders_never_cross);
