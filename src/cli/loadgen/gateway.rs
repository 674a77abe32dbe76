//! The gateway both load scenarios measure: its configuration from the command line, a
//! synthetic registry of active citizens, and senders registered with certificates of their
//! own; and what the reports call the backends a run used.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::LoadgenArgs;
use crate::config::{Config, QueueUrl, StoreUrl};
use crate::domain::{Cvr, RecipientId, RecipientStatus, SenderInfo, SenderKind};
use crate::pki::Pki;
use crate::registry::synth::{SynthSpec, generate};
use crate::store::Store;

/// The run's scratch directory (removed when dropped) and the gateway's data directory: the
/// one given with `--data-dir`, or a fresh one inside the scratch directory.
pub(super) fn scratch(args: &LoadgenArgs, prefix: &str) -> Result<(tempfile::TempDir, PathBuf)> {
    let tmp = tempfile::Builder::new().prefix(prefix).tempdir()?;
    let root = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().join("gateway"));
    Ok((tmp, root))
}

/// A gateway on `root` with the store and queue given on the command line, both listeners on
/// free loopback ports.
pub(super) fn config(root: &Path, args: &LoadgenArgs) -> Result<Config> {
    Ok(Config {
        data_dir: root.to_path_buf(),
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        store: args.store.clone(),
        queue: args.queue.clone(),
        ..Config::default()
    })
}

/// The same 20,000 active citizens every run, so runs compare.
pub(super) fn citizens() -> Vec<(RecipientId, RecipientStatus)> {
    let mut recipients = Vec::new();
    generate(&SynthSpec::small(7, 20_000, 0), |id, _, _| {
        recipients.push((id, RecipientStatus::Active))
    });
    recipients
}

/// Issues `cvr` a certificate, registers it as a sender and writes its certificate directory
/// (`dir` under the data directory `root`); returns that directory.
pub(super) async fn add_sender(
    store: &dyn Store,
    pki: &Pki,
    root: &Path,
    (cvr, name, kind): (Cvr, &str, SenderKind),
    dir: &str,
) -> Result<PathBuf> {
    let issued = pki.issue_sender(&cvr.to_string(), name)?;
    store
        .add_sender(
            &SenderInfo {
                cvr,
                name: name.into(),
                kind,
                suspended: false,
                limits: Default::default(),
            },
            issued.fingerprint,
        )
        .await
        .context("registering the load generator's senders (use a fresh scratch store)")?;
    let cert_dir = root.join(dir);
    crate::cli::admin::write_cert_dir(
        &cert_dir,
        &pki.ca_pem()?,
        &issued.cert_pem,
        &issued.key_pem,
    )?;
    Ok(cert_dir)
}

/// What the reports call the store of a run: what the typed URL says it is.
pub(super) fn store_name(url: Option<&StoreUrl>) -> &'static str {
    match url {
        None | Some(StoreUrl::Sqlite(_)) => "embedded (SQLite)",
        Some(StoreUrl::Postgres(_)) => "PostgreSQL",
    }
}

/// What the reports call the queue of a run, like [`store_name`].
pub(super) fn queue_name(url: Option<&QueueUrl>) -> &'static str {
    match url {
        None | Some(QueueUrl::Embedded(_)) => "embedded",
        Some(QueueUrl::Rabbit(_)) => "RabbitMQ",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_are_named_by_what_the_url_is() {
        let parse = |u: &str| u.parse::<StoreUrl>().unwrap();
        assert_eq!(store_name(None), "embedded (SQLite)");
        assert_eq!(
            store_name(Some(&parse("sqlite:///tmp/x.db"))),
            "embedded (SQLite)"
        );
        assert_eq!(store_name(Some(&parse("/tmp/x.db"))), "embedded (SQLite)");
        assert_eq!(
            store_name(Some(&parse("postgres://root@127.0.0.1/test"))),
            "PostgreSQL"
        );
        assert_eq!(
            store_name(Some(&parse("postgresql://root@127.0.0.1/test"))),
            "PostgreSQL"
        );
        assert_eq!(queue_name(None), "embedded");
        let q = |u: &str| u.parse::<QueueUrl>().unwrap();
        assert_eq!(queue_name(Some(&q("embedded:///tmp/q.db"))), "embedded");
        assert_eq!(
            queue_name(Some(&q("amqp://guest:guest@127.0.0.1:5672/%2f"))),
            "RabbitMQ"
        );
    }
}
