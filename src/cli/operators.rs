//! `brevdue operators add|list|revoke`: operator identities, managed against the store like
//! `senders` (they work while gateways run; those pick changes up within their refresh
//! interval). Each change is also written to the audit trail, as done by the local account.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::Config;
use crate::domain::OperatorName;
use crate::operators::audit;
use crate::pki::Pki;
use crate::store::{OperatorCert, OperatorRevocation, StoreError};

use super::admin::open_store;

/// The files `operators add` writes and `brevdue ops --cert-dir` reads.
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "operator.pem";
pub const KEY_FILE: &str = "operator.key";

/// Issues an operator certificate, records it, and writes `ca.pem`, `operator.pem` and
/// `operator.key` (0600) into `out`. Refuses a name that has a certificate in use.
pub async fn add(
    config: &Config,
    name: &OperatorName,
    out: &Path,
    valid_for: Duration,
) -> Result<()> {
    let (data, store) = open_store(config).await?;
    let pki = Pki::open_or_create(&data.pki())?;
    let validity = time::Duration::try_from(valid_for).context("--valid-for is too long")?;
    let issued = pki.issue_operator(name.as_str(), validity)?;
    let cert = OperatorCert {
        fingerprint: issued.fingerprint,
        name: name.clone(),
        issued_at_ms: crate::clock::now_ms(),
        expires_at_ms: issued.expires_at_ms,
        revoked_at_ms: None,
    };
    let selection = format!("operator={name}");
    if let Err(e) = store.add_operator(&cert).await {
        if let StoreError::OperatorExists(_) = e {
            audit::record(
                &*store,
                &audit::local_actor(),
                "operators add",
                &selection,
                0,
                "refused: a certificate is in use",
            )
            .await?;
        }
        return Err(e.into());
    }
    // The files after the record: a certificate on disk that the gateway does not know would
    // only confuse; one recorded but not written is revoked and issued again.
    write_cert_dir(out, &pki.ca_pem()?, &issued.cert_pem, &issued.key_pem)?;
    let fp = crate::pki::hex(&issued.fingerprint);
    audit::record(
        &*store,
        &audit::local_actor(),
        "operators add",
        &selection,
        0,
        &format!("ok: certificate {fp}"),
    )
    .await?;
    println!(
        "operator {name}: certificate {fp}, valid until {}; certificate, key and gateway CA written to {}",
        date_of(issued.expires_at_ms),
        out.display()
    );
    Ok(())
}

/// Every operator certificate with its state.
pub async fn list(config: &Config) -> Result<()> {
    let (_, store) = open_store(config).await?;
    let certs = store.operator_certs().await?;
    if certs.is_empty() {
        println!("no operators (add one with `brevdue operators add --name NAME --out DIR`)");
        return Ok(());
    }
    let now = crate::clock::now_ms();
    println!(
        "{:<24} {:<8} {:<10} {:<10} fingerprint",
        "name", "state", "issued", "expires"
    );
    for c in certs {
        let state = match c.revoked_at_ms {
            Some(_) => "revoked",
            None if c.expires_at_ms <= now => "expired",
            None => "valid",
        };
        println!(
            "{:<24} {:<8} {:<10} {:<10} {}",
            c.name.as_str(),
            state,
            date_of(c.issued_at_ms),
            date_of(c.expires_at_ms),
            crate::pki::hex(&c.fingerprint)
        );
    }
    Ok(())
}

/// Revokes an operator's certificate (by name, or one by fingerprint).
pub async fn revoke(config: &Config, which: OperatorRevocation) -> Result<()> {
    let (_, store) = open_store(config).await?;
    let selection = match &which {
        OperatorRevocation::Name(n) => format!("operator={n}"),
        OperatorRevocation::Fingerprint(fp) => format!("fingerprint={}", crate::pki::hex(fp)),
    };
    let revoked = store
        .revoke_operator(&which, crate::clock::now_ms())
        .await?;
    let result = if revoked.is_empty() {
        "ok: revoked already".to_string()
    } else {
        format!("ok: revoked {} certificate(s)", revoked.len())
    };
    audit::record(
        &*store,
        &audit::local_actor(),
        "operators revoke",
        &selection,
        0,
        &result,
    )
    .await?;
    if revoked.is_empty() {
        println!("nothing to revoke: {selection} was revoked already");
    }
    for fp in &revoked {
        println!("revoked operator certificate {}", crate::pki::hex(fp));
    }
    if !revoked.is_empty() {
        println!(
            "running gateways refuse it within {}",
            humantime::format_duration(config.refresh_interval)
        );
    }
    Ok(())
}

fn write_cert_dir(out: &Path, ca: &str, cert: &str, key: &str) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, content, mode) in [
        (CA_FILE, ca, 0o644),
        (CERT_FILE, cert, 0o644),
        (KEY_FILE, key, 0o600),
    ] {
        let path = out.join(name);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    Ok(())
}

fn date_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A client of the operator services, connected as the operator whose files are in `cert_dir`
/// (`ca.pem`, `operator.pem`, `operator.key`, as `operators add` wrote them).
pub type OpsClient =
    crate::ingest::pb::operations_client::OperationsClient<tonic::transport::Channel>;

pub async fn connect(server: &str, cert_dir: &Path) -> Result<OpsClient> {
    let channel = super::client::channel(server, cert_dir, CERT_FILE, KEY_FILE).await?;
    Ok(OpsClient::new(channel))
}
