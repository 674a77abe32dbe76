//! `brevdue registry import` and `brevdue registry apply`: the registry's bulk load and its
//! changes. Both work while gateways run on the same store; running gateways apply what they
//! do within a poll of the change log.

use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::directory::Secrets;
use crate::directory::apply::apply_changes;
use crate::directory::import::{ImportRecipient, ImportSubscription, line32, prepare_import};
use crate::registry::SenderDirectory;
use crate::registry::change::{parse_changes, read_changes};
use crate::registry::csv::{duplicate_problems, scan_recipients, scan_subscriptions};
use crate::store::StoreError;

use super::admin::open_store;

/// Read buffer for the import files: large reads, few system calls.
const READ_BUFFER: usize = 1 << 20;

fn open(path: &Path) -> Result<BufReader<fs::File>> {
    let f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(READ_BUFFER, f))
}

/// A spinner that says what the import is doing (hidden when stderr is not a terminal).
fn stage(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec}) {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Imports registry CSV files: all or nothing, streamed, in one transaction.
pub async fn registry_import(
    config: &Config,
    recipients: &Path,
    subscriptions: Option<&Path>,
) -> Result<()> {
    let started = Instant::now();
    let recipients_name = recipients.display().to_string();
    let bar = stage("reading recipients");
    let mut rows: Vec<ImportRecipient> = Vec::new();
    scan_recipients(open(recipients)?, &recipients_name, |line, id, status| {
        rows.push(ImportRecipient {
            key: id.index_key(),
            status,
            line: line32(line),
        });
        if rows.len().is_multiple_of(65_536) {
            bar.set_position(rows.len() as u64);
        }
    })?;
    rows.sort_unstable_by_key(|r| (r.key, r.line));
    duplicate_problems(&recipients_name, &rows, |r| (r.key, u64::from(r.line)))?;
    bar.finish_and_clear();

    let mut subs: Vec<ImportSubscription> = Vec::new();
    if let Some(path) = subscriptions {
        let bar = stage("reading subscriptions");
        scan_subscriptions(
            open(path)?,
            &path.display().to_string(),
            |line, id, sender| {
                subs.push(ImportSubscription {
                    key: id.index_key(),
                    sender: sender.value(),
                    line: line32(line),
                });
                if subs.len().is_multiple_of(65_536) {
                    bar.set_position(subs.len() as u64);
                }
            },
        )?;
        bar.finish_and_clear();
    }
    let read_in = started.elapsed();
    let (recipient_count, subscription_lines) = (rows.len(), subs.len());

    let (data, store) = open_store(config).await?;
    let secrets = Secrets::load_or_create(&data.keys())?;
    let bar = stage("sealing");
    let import = prepare_import(&secrets.pseudonyms, &secrets.rows, rows, subs)?;
    bar.finish_and_clear();
    let sealed_in = started.elapsed();

    let bar = ProgressBar::new(import.recipients.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "writing {bar:40} {pos}/{len} recipients ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let origin = format!("import {}", recipients_name);
    let written = store
        .import_registry(&import, &origin, &|n| bar.set_position(n))
        .await;
    bar.finish_and_clear();
    let seq = written.map_err(|e| match (e, subscriptions) {
        (StoreError::UnknownSubscribers(lines), Some(p)) => anyhow::anyhow!(
            "{}: nothing imported: {}",
            p.display(),
            StoreError::UnknownSubscribers(lines)
        ),
        (e, _) => e.into(),
    })?;
    let took = started.elapsed();
    println!(
        "imported {recipient_count} recipients and {} subscriptions ({subscription_lines} lines) in {:.1} s \
         ({:.0} rows/s; read {:.1} s, sealed {:.1} s, stored {:.1} s); change {seq}: running gateways load it within seconds",
        import.subscription_count(),
        took.as_secs_f64(),
        (recipient_count + subscription_lines) as f64 / took.as_secs_f64().max(1e-9),
        read_in.as_secs_f64(),
        (sealed_in - read_in).as_secs_f64(),
        (took - sealed_in).as_secs_f64(),
    );
    Ok(())
}

/// A registry-change client: the operator services over mutual TLS with an operator's
/// certificate directory (`ca.pem`, `operator.pem`, `operator.key`).
pub type RegistryClient =
    crate::ingest::pb::registry_admin_client::RegistryAdminClient<tonic::transport::Channel>;

pub async fn connect(server: &str, cert_dir: &Path) -> Result<RegistryClient> {
    let channel = super::client::channel(
        server,
        cert_dir,
        super::operators::CERT_FILE,
        super::operators::KEY_FILE,
    )
    .await?;
    Ok(RegistryClient::new(channel).max_encoding_message_size(crate::ingest::MAX_CHANGES_BYTES))
}

/// Changes per call when a file is sent to a gateway: well under the request limit.
pub const CHANGES_PER_CALL: usize = 10_000;

/// Sends a change file to a running gateway as an operator. The file is checked whole first;
/// a file too large for one call goes in several, each all or nothing, in order.
pub async fn registry_apply_remote(server: &str, cert_dir: &Path, file: &Path) -> Result<()> {
    let name = file.display().to_string();
    let changes = read_changes(open(file)?, &name)?;
    let mut client = connect(server, cert_dir).await?;
    let calls = changes.len().div_ceil(CHANGES_PER_CALL);
    let mut first = None;
    let mut last = 0;
    for (n, part) in changes.chunks(CHANGES_PER_CALL).enumerate() {
        let request = crate::ingest::pb::RegistryChanges {
            changes: part.iter().map(change_to_pb).collect(),
        };
        let applied = client.apply_changes(request).await.map_err(|s| {
            let done = if n == 0 {
                "nothing was applied".to_string()
            } else {
                format!(
                    "the first {} change(s) were applied (numbered up to {last}), the rest not",
                    n * CHANGES_PER_CALL
                )
            };
            // Positions in the message are within this call: say where the call starts.
            anyhow::anyhow!(
                "{name}: the gateway refused changes from line {} on ({done}): {}",
                part.first().map_or(0, |c| c.line),
                s.message()
            )
        })?;
        let applied = applied.into_inner();
        first.get_or_insert(applied.first_seq);
        last = applied.last_seq;
    }
    println!(
        "applied {} change(s) in {calls} call(s), numbered {} to {last}; every gateway routes by them within seconds",
        changes.len(),
        first.unwrap_or(0)
    );
    Ok(())
}

/// A checked change in the form the gRPC service takes.
pub fn change_to_pb(
    c: &crate::registry::change::RegistryChange,
) -> crate::ingest::pb::RegistryChange {
    use crate::registry::change::ChangeAction;
    let (change, sender, status) = match c.action {
        ChangeAction::Subscribe(s) => ("subscribe", s.to_string(), String::new()),
        ChangeAction::Unsubscribe(s) => ("unsubscribe", s.to_string(), String::new()),
        ChangeAction::Status(st) => ("status", String::new(), st.to_string()),
        ChangeAction::Remove => ("remove", String::new(), String::new()),
    };
    crate::ingest::pb::RegistryChange {
        change: change.into(),
        id_type: c.id.id_type().to_string(),
        id: c.id.number(),
        sender_cvr: sender,
        status,
    }
}

/// Applies a file of registry changes (JSON lines) to the store: all or nothing.
pub async fn registry_apply(config: &Config, file: &Path) -> Result<()> {
    let name = file.display().to_string();
    let (changes, problems) = parse_changes(open(file)?, &name)?;
    let (data, store) = open_store(config).await?;
    let (senders, _) = store.senders().await?;
    let senders = SenderDirectory::new(senders);
    let secrets = Secrets::load_or_create(&data.keys())?;
    let applied = apply_changes(
        &*store,
        &secrets,
        |cvr| senders.get(cvr).cloned(),
        &changes,
        problems,
        &name,
        &format!("file {name}"),
    )
    .await?;
    println!(
        "applied {} change(s), numbered {} to {}; running gateways route by them within seconds",
        applied.count, applied.first_seq, applied.last_seq
    );
    Ok(())
}
