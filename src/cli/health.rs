//! `brevdue health`: asks a gateway's gRPC health service (over TLS, no client certificate
//! needed) whether it serves. For container health checks and Kubernetes exec probes, which
//! cannot speak gRPC over TLS themselves.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub async fn check(server: &str, ca: &Path) -> Result<()> {
    let ca_pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
    let channel = Channel::from_shared(server.to_string())
        .with_context(|| format!("{server} is not a server address"))?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca_pem))
                .domain_name("localhost"),
        )?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(3))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "brevdue.v1.LetterGateway".into(),
        })
        .await
        .context("the health check failed")?
        .into_inner();
    if reply.status != ServingStatus::Serving as i32 {
        bail!("the gateway is not serving (status {})", reply.status);
    }
    println!("serving");
    Ok(())
}
