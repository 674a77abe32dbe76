//! Retention: events older than `events.retention` are deleted in the background. Every
//! gateway instance runs the pruner; pruning is idempotent, so several doing it at once only
//! repeat each other's work.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::Store;

use super::kept_from;

/// Prunes now and then every `min(retention / 10, 1 h)`.
pub fn spawn_pruner(
    store: Arc<dyn Store>,
    retention: Duration,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    let every = (retention / 10).min(Duration::from_secs(3600));
    tracker.spawn(async move {
        loop {
            match store.prune_events(kept_from(retention)).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned events older than the retention"),
                Err(e) => {
                    tracing::warn!(error = %crate::error_report::chain(&e), "pruning events failed; trying again later")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
}
