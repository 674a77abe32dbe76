//! Operator commands that change gateway data: onboarding senders, importing the registry,
//! rotating keys, handling dead letters. They work while a gateway runs on the same data; the
//! gateway picks the changes up at its next refresh.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::config::Config;
use crate::datadir::DataDir;
use crate::domain::{Cvr, SenderInfo, SenderKind};
use crate::pki::Pki;
use crate::seal::KeyRing;
use crate::store::{self, Revocation, Store};

/// The store a command should use, from the configuration.
pub async fn open_store(config: &Config) -> Result<(DataDir, Arc<dyn Store>)> {
    let data = DataDir::create(&config.data_dir)?;
    let store = store::open_with(&config.store_url(), &config.database)
        .await
        .with_context(|| format!("cannot open the store {}", config.store_url()))?;
    Ok((data, store))
}

/// Registers a sender, issues its client certificate and writes `ca.pem`, `sender.pem`,
/// `sender.key` into `out`.
pub async fn senders_add(
    config: &Config,
    cvr: Cvr,
    name: &str,
    kind: SenderKind,
    out: &Path,
) -> Result<()> {
    let (data, store) = open_store(config).await?;
    let pki = Pki::open_or_create(&data.pki())?;
    let issued = issue(config, &pki, cvr, name)?;
    let info = SenderInfo {
        cvr,
        name: name.to_string(),
        kind,
        suspended: false,
        limits: Default::default(),
    };
    store.add_sender(&info, issued.fingerprint).await?;
    store
        .record_cert_expiry(issued.fingerprint, issued.expires_at_ms)
        .await?;
    write_cert_dir(out, &pki.ca_pem()?, &issued.cert_pem, &issued.key_pem)?;
    println!(
        "registered {kind} sender {cvr} ({name}); certificate, key and gateway CA written to {}",
        out.display()
    );
    Ok(())
}

/// A sender certificate valid for the configured time.
fn issue(config: &Config, pki: &Pki, cvr: Cvr, name: &str) -> Result<crate::pki::IssuedCert> {
    let validity = time::Duration::try_from(config.sender_cert_validity)
        .context("sender_cert_validity is too long")?;
    Ok(pki.issue_sender_for(&cvr.to_string(), name, validity)?)
}

/// Issues a fresh certificate for a registered sender. The old ones keep working unless
/// `revoke_old`: then every older certificate is revoked in the same step, and running
/// gateways refuse them within their refresh interval.
pub async fn senders_reissue(
    config: &Config,
    cvr: Cvr,
    out: &Path,
    revoke_old: bool,
) -> Result<()> {
    let (data, store) = open_store(config).await?;
    let pki = Pki::open_or_create(&data.pki())?;
    let (senders, _) = store.senders().await?;
    let Some(info) = senders.iter().find(|s| s.cvr == cvr) else {
        bail!("no sender with CVR {cvr} is registered");
    };
    let issued = issue(config, &pki, cvr, &info.name)?;
    // The files first: a certificate the sender cannot find must not replace one it has.
    write_cert_dir(out, &pki.ca_pem()?, &issued.cert_pem, &issued.key_pem)?;
    store.add_sender_cert(cvr, issued.fingerprint).await?;
    store
        .record_cert_expiry(issued.fingerprint, issued.expires_at_ms)
        .await?;
    println!(
        "issued a new certificate for sender {cvr} into {} (fingerprint {})",
        out.display(),
        crate::pki::hex(&issued.fingerprint)
    );
    if revoke_old {
        let revoked = store.revoke_certs(cvr, Revocation::AllButNewest).await?;
        println!(
            "revoked {} older certificate(s); running gateways refuse them within {}",
            revoked.len(),
            humantime::format_duration(config.refresh_interval)
        );
    }
    Ok(())
}

/// Revokes one certificate of a sender, or all but its newest.
pub async fn senders_revoke(config: &Config, cvr: Cvr, which: Revocation) -> Result<()> {
    let (_, store) = open_store(config).await?;
    let revoked = store.revoke_certs(cvr, which).await?;
    if revoked.is_empty() {
        println!("nothing to revoke: the certificate(s) of sender {cvr} were revoked already");
    }
    for fp in &revoked {
        println!(
            "revoked certificate {} of sender {cvr}",
            crate::pki::hex(fp)
        );
    }
    if !revoked.is_empty() {
        println!(
            "running gateways refuse it within {}",
            humantime::format_duration(config.refresh_interval)
        );
    }
    Ok(())
}

pub async fn senders_suspend(config: &Config, cvr: Cvr, suspended: bool) -> Result<()> {
    let (_, store) = open_store(config).await?;
    store.set_suspended(cvr, suspended).await?;
    println!(
        "sender {cvr} {}",
        if suspended {
            "suspended"
        } else {
            "may send again"
        }
    );
    Ok(())
}

/// A limit on the command line: a positive number, or `none`.
pub fn parse_count_limit(s: &str) -> Result<Option<u32>, String> {
    if is_none(s) {
        return Ok(None);
    }
    match s.trim().parse::<u32>() {
        Ok(0) | Err(_) => Err(format!(
            "{s:?} is not a limit: give a whole number above 0, or `none`"
        )),
        Ok(n) => Ok(Some(n)),
    }
}

/// A size limit on the command line: `5MB`, `200KiB`, a number of bytes, or `none`.
pub fn parse_size_limit(s: &str) -> Result<Option<u64>, String> {
    if is_none(s) {
        return Ok(None);
    }
    match s.trim().parse::<bytesize::ByteSize>() {
        Ok(b) if b.as_u64() > 0 => Ok(Some(b.as_u64())),
        _ => Err(format!(
            "{s:?} is not a size: give e.g. 5MB or 500KiB, or `none`"
        )),
    }
}

fn is_none(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "none" | "off")
}

/// What `senders limits` changes; `None` keeps the current value.
pub struct LimitsChange {
    pub weight: Option<u32>,
    pub rate: Option<Option<u32>>,
    pub burst: Option<Option<u32>>,
    pub in_flight: Option<Option<u32>>,
    pub max_size: Option<Option<u64>>,
}

pub async fn senders_limits(config: &Config, cvr: Cvr, change: LimitsChange) -> Result<()> {
    let (_, store) = open_store(config).await?;
    let (senders, _) = store.senders().await?;
    let Some(current) = senders.into_iter().find(|s| s.cvr == cvr) else {
        anyhow::bail!("no sender with CVR {cvr} is registered");
    };
    let mut limits = current.limits;
    if let Some(w) = change.weight {
        limits.weight = w;
    }
    if let Some(r) = change.rate {
        limits.rate_per_s = r;
        if r.is_none() {
            limits.burst = None;
        }
    }
    if let Some(b) = change.burst {
        limits.burst = b;
    }
    if let Some(n) = change.in_flight {
        limits.max_in_flight = n;
    }
    if let Some(s) = change.max_size {
        limits.max_letter_bytes = s;
    }
    limits
        .check()
        .map_err(|e| anyhow::anyhow!("limits for sender {cvr} not changed: {e}"))?;
    store.set_sender_limits(cvr, &limits).await?;
    println!("sender {cvr}: {limits}");
    Ok(())
}

pub async fn senders_list(config: &Config) -> Result<()> {
    let (_, store) = open_store(config).await?;
    let (mut senders, certs) = store.senders().await?;
    senders.sort_by_key(|s| s.cvr);
    println!(
        "{:<10} {:<8} {:<10} {:>5}  {:<40} limits",
        "cvr", "kind", "state", "certs", "name"
    );
    let records = store.certificates().await?;
    let now = crate::clock::now_ms();
    for s in senders {
        let n = certs.iter().filter(|(_, c)| *c == s.cvr).count();
        let state = if s.suspended { "suspended" } else { "active" };
        println!(
            "{:<10} {:<8} {:<10} {:>5}  {:<40} {}",
            s.cvr, s.kind, state, n, s.name, s.limits
        );
        for c in records.iter().filter(|c| c.cvr == s.cvr) {
            let cert_state = match (c.revoked_at_ms, c.expires_at_ms) {
                (Some(_), _) => "revoked",
                (None, Some(e)) if e <= now => "expired",
                _ => "valid",
            };
            let expires = c
                .expires_at_ms
                .map(date_of)
                .unwrap_or_else(|| "unrecorded".to_string());
            println!(
                "    certificate {}  {cert_state:<8} expires {expires}",
                crate::pki::hex(&c.fingerprint)
            );
        }
    }
    Ok(())
}

pub(crate) fn write_cert_dir(out: &Path, ca: &str, cert: &str, key: &str) -> Result<()> {
    fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, content, mode) in [
        ("ca.pem", ca, 0o644),
        ("sender.pem", cert, 0o644),
        ("sender.key", key, 0o600),
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

/// Adds a key-encryption key and makes it active.
pub fn keys_rotate(config: &Config) -> Result<()> {
    let data = DataDir::create(&config.data_dir)?;
    let id = KeyRing::rotate(&data.keys())?;
    println!(
        "new key-encryption key {id} is active; older keys stay to open older letters (running gateways switch within seconds)"
    );
    Ok(())
}

/// Lists, retries or purges dead letters.
pub async fn dead_letters(config: &Config, action: DeadAction) -> Result<()> {
    let (_data, store) = open_store(config).await?;
    let queue =
        crate::queue::open_with(&config.queue_url(), false, &config.database, config.broker)
            .await?;
    match action {
        DeadAction::List => {
            let dead = queue.dead_letters().await?;
            if dead.is_empty() {
                println!("no dead letters");
            }
            for d in dead {
                println!(
                    "{}  {:<7} attempts {:>3}  {}",
                    d.delivery.letter_id,
                    crate::telemetry::route_label(d.delivery.route),
                    d.attempts,
                    d.last_error
                );
            }
        }
        DeadAction::Retry(id) => {
            let id = id.parse().context("not a letter id")?;
            store.reopen(id).await?;
            if queue.revive(id).await? {
                println!("letter {id} is queued for delivery again");
            } else {
                bail!("letter {id} is not among the dead letters");
            }
        }
        DeadAction::Purge(id) => {
            let id = id.parse().context("not a letter id")?;
            if !queue.purge(id).await? {
                bail!("letter {id} is not among the dead letters");
            }
            println!("dead letter {id} purged (it stays FAILED in the store)");
        }
    }
    Ok(())
}

pub enum DeadAction {
    List,
    Retry(String),
    Purge(String),
}

/// A unix-ms time as its UTC date, for listings.
fn date_of(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}
