//! Refused letters that named a batch, counted for `GetBatch`. Refused letters are not stored,
//! so this is their only trace: written in the background, batched, best effort. The receipt
//! is what a sender relies on; a full log (a flood of refusals faster than the store takes
//! them) drops counts rather than slowing the refusals down, and says so in the log.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::{BatchRejection, Store};

const CAPACITY: usize = 8192;
const BATCH: usize = 1024;

#[derive(Clone)]
pub struct RejectionLog {
    tx: mpsc::Sender<BatchRejection>,
}

impl RejectionLog {
    pub fn spawn(store: Arc<dyn Store>, tracker: &TaskTracker, stop: CancellationToken) -> Self {
        let (tx, mut rx) = mpsc::channel::<BatchRejection>(CAPACITY);
        tracker.spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            loop {
                let n = tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = stop.cancelled() => {
                        // What is already here is written before the gateway stops.
                        while let Ok(r) = rx.try_recv() {
                            batch.push(r);
                        }
                        if let Err(e) = store.record_rejections(&batch).await {
                            tracing::warn!(error = %crate::error_report::chain(&e), "batch refusal counts not recorded");
                        }
                        return;
                    }
                };
                if n == 0 {
                    return;
                }
                if let Err(e) = store.record_rejections(&batch).await {
                    tracing::warn!(error = %crate::error_report::chain(&e), refused = batch.len(), "batch refusal counts not recorded");
                }
                batch.clear();
            }
        });
        RejectionLog { tx }
    }

    /// A log that keeps nothing (tools that run the pipeline without a gateway).
    pub fn disabled() -> Self {
        let (tx, _) = mpsc::channel(1);
        RejectionLog { tx }
    }

    pub fn record(&self, r: BatchRejection) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(r) {
            tracing::warn!("batch refusal counts are behind; one refusal is not counted");
        }
    }
}
