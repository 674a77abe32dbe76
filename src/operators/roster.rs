//! The operator certificates in use, as the door sees them: loaded from the store at start-up
//! and refreshed every `refresh_interval`, so `brevdue operators add` and `operators revoke`
//! take effect on running gateways within seconds. Readers take an `Arc` snapshot and never
//! wait for a refresh. Operators are few, so a refresh reads them all.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::OperatorName;
use crate::store::{Store, StoreError};

pub struct Roster {
    store: Arc<dyn Store>,
    by_cert: RwLock<Arc<HashMap<[u8; 32], OperatorName>>>,
}

impl Roster {
    /// The roster as the store has it now.
    pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let roster = Arc::new(Roster {
            store,
            by_cert: RwLock::new(Arc::default()),
        });
        roster.refresh().await?;
        Ok(roster)
    }

    /// A roster with no operators (a server built without one refuses every operator).
    pub fn empty(store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Roster {
            store,
            by_cert: RwLock::new(Arc::default()),
        })
    }

    /// The operator a client certificate (by SHA-256 fingerprint) belongs to, if it is in use.
    pub fn operator_by_cert(&self, fingerprint: &[u8; 32]) -> Option<OperatorName> {
        self.snapshot().get(fingerprint).cloned()
    }

    fn snapshot(&self) -> Arc<HashMap<[u8; 32], OperatorName>> {
        match self.by_cert.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the certificates in use (not revoked).
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let live: HashMap<[u8; 32], OperatorName> = self
            .store
            .operator_certs()
            .await?
            .into_iter()
            .filter(|c| c.revoked_at_ms.is_none())
            .map(|c| (c.fingerprint, c.name))
            .collect();
        let changed = *self.snapshot() != live;
        if changed {
            tracing::info!(operators = live.len(), "operator roster loaded");
            match self.by_cert.write() {
                Ok(mut g) => *g = Arc::new(live),
                Err(p) => *p.into_inner() = Arc::new(live),
            }
        }
        Ok(())
    }

    /// Refreshes every `every` until cancelled; a failed refresh keeps the current roster.
    pub async fn keep_fresh(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not refresh the operator roster; keeping the current one");
            }
        }
    }
}
