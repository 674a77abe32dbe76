//! Following the registry's change log: every gateway reads the entries after the last one it
//! applied and applies them to its index as a delta, so a change made anywhere (a change file,
//! an operator's call on another instance) routes the next letter everywhere within one poll.
//!
//! Writers of the index (the follower, a reload, the end of a background merge) take the
//! `following` lock, so they never interleave; readers never take it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::registry::{Delta, LiveRegistry};
use crate::store::{ChangeKind, ChangePage, LoggedChange};

use super::{Directory, DirectoryError, read, write};

/// `[registry]`: how running gateways follow registry changes.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// How often the change log is read. A change routes the next letter on every gateway
    /// within about this long (one indexed query when nothing changed).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long change-log entries are kept. A gateway that was stopped for longer loads the
    /// registry whole at start anyway; one that falls further behind while running reloads.
    #[serde(with = "humantime_serde")]
    pub change_retention: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            poll_interval: Duration::from_millis(200),
            change_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

impl RegistryConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.poll_interval.is_zero() {
            p.push("registry.poll_interval must be above 0".into());
        }
        if self.change_retention < Duration::from_secs(60) {
            p.push("registry.change_retention must be at least a minute".into());
        }
        p
    }
}

/// How often one gateway prunes the change log (any instance may; it is idempotent).
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Follows the change log until `stop`, and prunes entries past their retention now and then.
pub fn spawn_follower(
    directory: Arc<Directory>,
    config: RegistryConfig,
    tracker: &tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
) {
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pruned_at = std::time::Instant::now();
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let newest = directory.store.registry_newest_seq().await;
            let outcome = match directory.follow_registry().await {
                Ok(o) => {
                    failing = false;
                    o
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "could not read registry changes; routing by the registry as it was");
                    }
                    failing = true;
                    FollowOutcome::default()
                }
            };
            let t = directory.registry_telemetry();
            crate::telemetry::registry::registry(&crate::telemetry::registry::RegistryFigures {
                recipients: t.recipients,
                index_bytes: t.index_bytes,
                overlay: t.overlay,
                lag_changes: newest.map_or(0, |n| n - t.applied_seq),
                last_change_ms: t.last_change_ms,
                applied: outcome.applied,
                reloaded: outcome.reloaded,
            });
            if pruned_at.elapsed() >= PRUNE_EVERY {
                pruned_at = std::time::Instant::now();
                let retention = i64::try_from(config.change_retention.as_millis()).unwrap_or(i64::MAX);
                match directory.store.prune_registry_changes(crate::clock::now_ms().saturating_sub(retention)).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(entries = n, "pruned old registry changes"),
                    Err(e) => tracing::warn!(error = %e, "could not prune registry changes"),
                }
            }
        }
    });
}

/// Log entries read per round trip.
const PAGE: u32 = 10_000;

/// The overlay is folded into a new packed index in the background once it holds
/// `max(MERGE_AT_MIN, recipients / MERGE_FRACTION)` entries. Overlay entries cost several
/// times what a packed entry does (a copy-on-write map node each, two maps while a batch is
/// swapped in), so a small bound keeps memory flat while changes flow; a merge of the
/// national index takes a couple of seconds of one core, which at 26 k entries (6.7 M / 256)
/// is at most one merge every few seconds under a heavy stream of changes.
const MERGE_AT_MIN: usize = 4_096;
const MERGE_FRACTION: usize = 256;

/// What one round of following did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowOutcome {
    /// Change-log entries applied as deltas.
    pub applied: usize,
    /// Whether the registry was loaded whole (an import, or entries pruned before this
    /// gateway read them).
    pub reloaded: bool,
}

/// The registry's figures for `/metrics` and the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryTelemetry {
    pub recipients: usize,
    pub index_bytes: usize,
    pub overlay: usize,
    pub applied_seq: i64,
    pub changes_applied: u64,
    pub last_change_ms: i64,
}

impl Directory {
    /// Loads the registry whole from the store (start-up, an import).
    pub async fn reload_registry(&self) -> Result<(), DirectoryError> {
        let _writer = self.following.lock().await;
        self.reload_locked().await
    }

    async fn reload_locked(&self) -> Result<(), DirectoryError> {
        let started = std::time::Instant::now();
        let (index, seq) = self.secrets.load_index(&self.store).await?;
        tracing::info!(
            recipients = index.len(),
            bytes = index.memory_bytes(),
            seq,
            ms = started.elapsed().as_millis() as u64,
            "registry index loaded"
        );
        write(&self.index, LiveRegistry::from(index));
        self.registry_seq.store(seq, Ordering::SeqCst);
        Ok(())
    }

    /// Applies the change-log entries after the last one applied. Call it often: when nothing
    /// changed it is one indexed query.
    pub async fn follow_registry(self: &Arc<Self>) -> Result<FollowOutcome, DirectoryError> {
        let _writer = self.following.lock().await;
        let mut outcome = FollowOutcome::default();
        loop {
            let after = self.registry_seq.load(Ordering::SeqCst);
            let page = self.store.registry_changes_after(after, PAGE).await?;
            let entries = match page {
                ChangePage::Pruned => {
                    tracing::info!(
                        "registry changes were pruned before this gateway read them; loading the registry whole"
                    );
                    self.reload_locked().await?;
                    outcome.reloaded = true;
                    continue;
                }
                ChangePage::Changes(entries) => entries,
            };
            let Some(last) = entries.last() else { break };
            let last_seq = last.seq;
            let last_at = last.at_ms;
            if entries.iter().any(|e| e.kind == ChangeKind::Import) {
                self.reload_locked().await?;
                outcome.reloaded = true;
                // The reload read the registry as of its own snapshot: follow on from there.
                if self.registry_seq.load(Ordering::SeqCst) < last_seq {
                    self.registry_seq.store(last_seq, Ordering::SeqCst);
                }
            } else {
                let deltas = self.deltas(&entries)?;
                let current = read(&self.index);
                let next = current
                    .with_changes(deltas)
                    .map_err(|e| DirectoryError::Registry(e.to_string()))?;
                write(&self.index, next);
                self.registry_seq.store(last_seq, Ordering::SeqCst);
                outcome.applied += entries.len();
                self.changes_applied
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
            self.last_change_ms.store(last_at, Ordering::Relaxed);
            if entries.len() < PAGE as usize {
                break;
            }
        }
        self.merge_if_large();
        Ok(outcome)
    }

    /// Opens the logged states into index deltas.
    fn deltas(
        &self,
        entries: &[LoggedChange],
    ) -> Result<Vec<(u64, Option<Delta>)>, DirectoryError> {
        entries
            .iter()
            .filter_map(|e| e.state.as_ref())
            .map(|s| {
                let key = self.secrets.rows.open_key(&s.sealed_key, &s.tag)?;
                let delta = s.now.as_ref().map(|(status, senders)| Delta {
                    status: *status,
                    senders: senders.as_slice().into(),
                });
                Ok((key, delta))
            })
            .collect()
    }

    /// Starts folding the overlay into a new packed index when it has grown large.
    fn merge_if_large(self: &Arc<Self>) {
        let current = read(&self.index);
        let threshold = MERGE_AT_MIN.max(current.base().len() / MERGE_FRACTION);
        if current.overlay_len() < threshold || self.merging.swap(true, Ordering::SeqCst) {
            return;
        }
        let dir = self.clone();
        tokio::spawn(async move {
            let snapshot = current.clone();
            let merged = tokio::task::spawn_blocking(move || snapshot.merged()).await;
            match merged {
                Ok(Ok(index)) => {
                    let _writer = dir.following.lock().await;
                    let now = read(&dir.index);
                    // A reload meanwhile replaced the packed index: the merge is moot.
                    if Arc::ptr_eq(&now.base_arc(), &current.base_arc()) {
                        let rebased = now.rebase(Arc::new(index), &current);
                        tracing::info!(
                            recipients = rebased.len(),
                            overlay = rebased.overlay_len(),
                            "registry changes folded into the index"
                        );
                        write(&dir.index, rebased);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not fold registry changes into the index")
                }
                Err(e) => tracing::warn!(error = %e, "the registry merge task failed"),
            }
            dir.merging.store(false, Ordering::SeqCst);
        });
    }

    /// The number of the newest change this gateway applied.
    pub fn registry_seq(&self) -> i64 {
        self.registry_seq.load(Ordering::SeqCst)
    }

    pub fn registry_telemetry(&self) -> RegistryTelemetry {
        let r = read(&self.index);
        RegistryTelemetry {
            recipients: r.len(),
            index_bytes: r.memory_bytes(),
            overlay: r.overlay_len(),
            applied_seq: self.registry_seq(),
            changes_applied: self.changes_applied.load(Ordering::Relaxed),
            last_change_ms: self.last_change_ms.load(Ordering::Relaxed),
        }
    }
}
