//! Retention: the disk the store takes does not grow without end. Delivered letters' content
//! is kept for `retention.delivered` (30 days by default) after hand-over, then purged in
//! batches and its disk given back (`Store::purge_content`, `Store::compact`). Only letters
//! handed to print are purged: a mailbox letter is the mailbox's and stays until the mailbox
//! deletes it, and a letter still waiting is never touched. `brevdue_store_bytes` on
//! `/metrics` shows what the store takes.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::now_ms;
use crate::store::{Store, StoreError};

/// `[retention]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How long a letter's content is kept after it was handed to print.
    #[serde(with = "humantime_serde")]
    pub delivered: Duration,
    /// How often the purge runs.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// Letters purged per transaction.
    pub batch: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            delivered: Duration::from_secs(30 * 86_400),
            every: Duration::from_secs(3600),
            batch: 1000,
        }
    }
}

impl RetentionConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.every.is_zero() {
            p.push("retention.every must be above 0".into());
        }
        if self.batch == 0 {
            p.push("retention.batch must be at least 1".into());
        }
        p
    }
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub letters: u64,
    pub bytes_freed: u64,
}

/// Purges the content of letters handed over before `now - delivered`, batch by batch, then
/// gives the disk back.
pub async fn run_once(store: &dyn Store, config: &RetentionConfig) -> Result<Purged, StoreError> {
    let keep = i64::try_from(config.delivered.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(keep);
    let mut out = Purged::default();
    loop {
        let n = store.purge_content(before, config.batch).await?;
        out.letters += n;
        crate::telemetry::content_purged(n);
        if n < config.batch as u64 {
            break;
        }
    }
    out.bytes_freed = store.compact().await?;
    Ok(out)
}

/// How often `brevdue_store_bytes` is measured.
const MEASURE_EVERY: Duration = Duration::from_secs(15);

/// Runs retention every `every` and measures the store's size, until cancelled.
pub fn spawn(
    store: Arc<dyn Store>,
    config: RetentionConfig,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    tracker.spawn(async move {
        let mut purge = tokio::time::interval(config.every);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut measure = tokio::time::interval(MEASURE_EVERY);
        measure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = measure.tick() => match store.stored_bytes().await {
                    Ok(b) => crate::telemetry::store_bytes(b),
                    Err(e) => tracing::warn!(error = %crate::error_report::chain(&e), "could not measure the store's size"),
                },
                _ = purge.tick() => match run_once(&*store, &config).await {
                    Ok(Purged { letters: 0, bytes_freed: 0 }) => {}
                    Ok(p) => tracing::info!(letters = p.letters, bytes_freed = p.bytes_freed, "retention purged delivered letters' content"),
                    Err(e) => tracing::warn!(error = %crate::error_report::chain(&e), "retention failed; trying again at the next run"),
                },
            }
        }
    });
}
