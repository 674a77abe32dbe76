//! The door of the gRPC port, attacked from outside: anonymous uploads are refused before
//! their bodies are read (the gateway, a process of its own, does not grow with them), health
//! answers without a certificate, a question is held to a few KiB, and connections are capped.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brevdue::ingest::pb;
use bytes::Bytes;
use common::*;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

static FILL: [u8; 1 << 16] = [0x41; 1 << 16];

/// An outsider's upload: a raw HTTP/2 SubmitLetter of `size` bytes over TLS with no client
/// certificate, sent as fast as flow control lets it. Returns the grpc-status the gateway
/// answered with and how many bytes went out before it did.
async fn anonymous_upload(addr: &str, ca_pem: &[u8], size: usize) -> (Option<String>, usize) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("TLS without a client certificate");
    let (client, connection) = h2::client::handshake(tls).await.expect("h2");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.expect("ready");
    let request = http::Request::builder()
        .method("POST")
        .uri("https://localhost/brevdue.v1.LetterGateway/SubmitLetter")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut body) = client.send_request(request, false).expect("send");
    let mut header = vec![0u8];
    header.extend_from_slice(&(size as u32).to_be_bytes());
    let upload = tokio::spawn(async move {
        let mut sent = 0;
        if body.send_data(Bytes::from(header), false).is_err() {
            return sent;
        }
        while sent < size {
            body.reserve_capacity((size - sent).min(FILL.len()));
            match futures::future::poll_fn(|cx| body.poll_capacity(cx)).await {
                Some(Ok(n)) if n > 0 => {
                    let n = n.min(size - sent);
                    if body
                        .send_data(Bytes::from_static(&FILL[..n]), false)
                        .is_err()
                    {
                        break;
                    }
                    sent += n;
                }
                Some(Ok(_)) => continue,
                _ => break,
            }
        }
        sent
    });
    let status = match tokio::time::timeout(Duration::from_secs(120), response).await {
        Ok(Ok(r)) => r
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        Ok(Err(e)) => Some(format!("h2 error: {e}")),
        Err(_) => None,
    };
    upload.abort();
    let sent = upload.await.unwrap_or(0);
    (status, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_uploads_are_refused_before_they_are_read() {
    let h = Harness::prepare().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_brevdue"));
    command.args(h.serve_args(0, 0)).env("BREVDUE_LOG", "warn");
    let (gateway, url) = spawn_serve(command);
    let addr = url.trim_start_matches("https://").to_string();
    let ca = std::fs::read(h.cert_dir(BANK).join("ca.pem")).expect("ca");

    // Warm up every path once: a sender's letter and a small anonymous upload.
    let mut bank = connect(&url, &h.cert_dir(BANK)).await;
    let r = bank
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Opvarmning", b"%PDF-1.4"))
        .await
        .expect("a sender's letter")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    let (status, _) = anonymous_upload(&addr, &ca, 1 << 20).await;
    assert_eq!(status.as_deref(), Some("16"), "UNAUTHENTICATED");

    let (rss_before, hwm_before) = memory_kib(gateway.id());
    const UPLOADS: usize = 20;
    const SIZE: usize = 50 << 20;
    let attacks = (0..UPLOADS).map(|_| anonymous_upload(&addr, &ca, SIZE));
    let results = futures::future::join_all(attacks).await;
    let (rss_after, hwm_after) = memory_kib(gateway.id());
    let sent: usize = results.iter().map(|(_, s)| s).sum();
    eprintln!(
        "gateway memory under {UPLOADS} anonymous {} MiB uploads: VmRSS {} -> {} MiB, \
         VmHWM {} -> {} MiB; {} MiB were sent before the refusals",
        SIZE >> 20,
        rss_before / 1024,
        rss_after / 1024,
        hwm_before / 1024,
        hwm_after / 1024,
        sent >> 20
    );
    for (status, _) in &results {
        assert_eq!(
            status.as_deref(),
            Some("16"),
            "every upload is UNAUTHENTICATED"
        );
    }
    let grew_mib = hwm_after.saturating_sub(rss_before) / 1024;
    assert!(
        grew_mib < 64,
        "the gateway's peak resident memory rose {grew_mib} MiB above where it was"
    );

    // The gateway still serves its senders.
    let r = bank
        .submit_letter(letter(ACTIVE_SUBSCRIBED, "Efter angrebet", b"%PDF-1.4"))
        .await
        .expect("a sender's letter after the attack")
        .into_inner();
    assert_eq!(outcome(&r), pb::Outcome::AcceptedMailbox);
    drop(gateway);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_certificate_questions_are_small_and_connections_are_capped() {
    let mut h = Harness::prepare().await;
    h.config.grpc.max_connections = 3;
    h.boot().await;
    let ca = std::fs::read(h.cert_dir(BANK).join("ca.pem")).expect("ca");
    let anonymous = || async {
        Channel::from_shared(h.server_url())
            .expect("uri")
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&ca))
                    .domain_name("localhost"),
            )
            .expect("tls")
            .connect()
            .await
    };

    // Health answers a probe without a certificate.
    let probe = anonymous().await.expect("a probe connects");
    let reply = tonic_health::pb::health_client::HealthClient::new(probe.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "brevdue.v1.LetterGateway".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // A question of 1 MiB is refused by its size, before it is read.
    let mut bank = h.client(BANK).await;
    let err = bank
        .get_status(pb::StatusRequest {
            key: Some(pb::status_request::Key::LetterId("0".repeat(1 << 20))),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("over that method's limit of 4096 bytes"),
        "{}",
        err.message()
    );

    // Three connections are open (probe, bank, one more); a fourth is closed at once.
    let third = anonymous().await.expect("the third connection");
    assert!(anonymous().await.is_err(), "a fourth connection is refused");
    drop(third);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if anonymous().await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a closed connection's place was not freed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(probe);
    h.stop().await;
}
