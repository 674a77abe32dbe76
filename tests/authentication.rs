//! The certificate says who the sender is: no certificate, a foreign one, an unregistered one or
//! a suspended sender is refused; a sender sees only its own letters. The client here is built
//! from the proto and a certificate directory alone, as an integrator's would be.

mod common;

use std::time::Duration;

use brevdue::ingest::pb;
use brevdue::ingest::pb::letter_gateway_client::LetterGatewayClient;
use common::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn raw_client(
    server: &str,
    ca: &[u8],
    identity: Option<(Vec<u8>, Vec<u8>)>,
) -> LetterGatewayClient<Channel> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(server.to_string())
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect");
    LetterGatewayClient::new(channel)
}

fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).expect("read")
}

async fn only_registered_unsuspended_senders_get_in(backend: Backend) {
    let mut h = Harness::start_on(backend).await;
    let bank_dir = h.cert_dir(BANK);
    let ca = read(&bank_dir, "ca.pem");

    // A client with only the proto and the certificate directory works.
    let mut ok = raw_client(
        &h.server_url(),
        &ca,
        Some((read(&bank_dir, "sender.pem"), read(&bank_dir, "sender.key"))),
    )
    .await;
    let mine = ok
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Kontoudskrift", b"%PDF"))
        .await
        .expect("accepted")
        .into_inner();
    assert_eq!(outcome(&mine), pb::Outcome::AcceptedMailbox);
    let status = ok
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId(mine.letter_id.clone())),
        })
        .await
        .expect("own status")
        .into_inner();
    assert_eq!(status.letter_id, mine.letter_id);
    assert_eq!(status.content_sha256, mine.content_sha256);

    // No certificate: UNAUTHENTICATED, for every call.
    let mut anonymous = raw_client(&h.server_url(), &ca, None).await;
    let err = anonymous
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"x"))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = anonymous
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId(mine.letter_id.clone())),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // A certificate from another CA: the TLS handshake refuses it.
    let foreign = tempfile::tempdir().expect("tmp");
    let other_ca = brevdue::pki::Pki::open_or_create(foreign.path()).expect("pki");
    let issued = other_ca.issue_sender(BANK, "Impostor").expect("issue");
    let mut impostor = raw_client(
        &h.server_url(),
        &ca,
        Some((issued.cert_pem.into_bytes(), issued.key_pem.into_bytes())),
    )
    .await;
    let err = impostor
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"x"))
        .await
        .expect_err("refused");
    assert_ne!(err.code(), tonic::Code::Ok);

    // Signed by the gateway CA but never registered to a sender: UNAUTHENTICATED.
    let pki = brevdue::pki::Pki::open_or_create(&h.data.path().join("pki")).expect("pki");
    let stray = pki.issue_sender(BANK, "Stray").expect("issue");
    let mut stray = raw_client(
        &h.server_url(),
        &ca,
        Some((stray.cert_pem.into_bytes(), stray.key_pem.into_bytes())),
    )
    .await;
    let err = stray
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"x"))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Another sender asking for this letter: NOT_FOUND, by letter id and by message uuid.
    let mut other = h.client(OTHER_BANK).await;
    for key in [
        pb::status_request::Key::LetterId(mine.letter_id.clone()),
        pb::status_request::Key::MessageUuid(mine.message_uuid.clone()),
    ] {
        let err = other
            .get_status(pb::StatusRequest { key: Some(key) })
            .await
            .expect_err("not theirs");
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    // Suspended while the gateway runs: PERMISSION_DENIED within a refresh, then back.
    brevdue::cli::admin::senders_suspend(&h.config, BANK.parse().expect("cvr"), true)
        .await
        .expect("suspend");
    let mut refused = None;
    for _ in 0..100 {
        match ok
            .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"%PDF"))
            .await
        {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(
        refused.expect("suspension took effect").code(),
        tonic::Code::PermissionDenied
    );
    brevdue::cli::admin::senders_suspend(&h.config, BANK.parse().expect("cvr"), false)
        .await
        .expect("resume");
    let mut back = false;
    for _ in 0..100 {
        if ok
            .submit_letter(letter(ACTIVE_SUBSCRIBED, "x", b"%PDF"))
            .await
            .is_ok()
        {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "a resumed sender can send again");
    h.stop().await;
}

on_every_backend!(only_registered_unsuspended_senders_get_in);
