//! Route holds as delivery sees them: which routes an operator holds now, and for how long
//! each was held while a letter waited. The delivery loop asks [`Holds::is_held`] before it
//! takes letters of a route, so a held route's letters wait in the queue: none is tried, none
//! fails. [`Holds::held_between`] is what a letter's maximum age leaves out, so a hold (a
//! printer outage, say) never ages letters into FAILED.
//!
//! The holds live in the store, so every gateway instance sees them; this is a snapshot
//! refreshed every `refresh_interval`, and at once on the instance that changed it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::Route;
use crate::store::{HeldSpan, RouteHold, Store, StoreError};

/// How far back ended holds are kept in memory: longer than any sensible maximum age.
const SPAN_MEMORY: Duration = Duration::from_secs(90 * 86_400);

#[derive(Default, Clone, Debug)]
struct Snapshot {
    holds: Vec<RouteHold>,
    spans: Vec<HeldSpan>,
}

pub struct Holds {
    store: Arc<dyn Store>,
    snapshot: RwLock<Arc<Snapshot>>,
}

impl Holds {
    pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let holds = Arc::new(Holds {
            store,
            snapshot: RwLock::new(Arc::default()),
        });
        holds.refresh().await?;
        Ok(holds)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether an operator holds `route` now.
    pub fn is_held(&self, route: Route) -> bool {
        self.snapshot().holds.iter().any(|h| h.route == route)
    }

    /// The holds in force.
    pub fn current(&self) -> Vec<RouteHold> {
        self.snapshot().holds.clone()
    }

    /// How long `route` was held between `from_ms` and `to_ms`: ended holds and the one in
    /// force, overlapping that interval.
    pub fn held_between(&self, route: Route, from_ms: i64, to_ms: i64) -> Duration {
        let s = self.snapshot();
        let overlap = |a: i64, b: i64| (b.min(to_ms) - a.max(from_ms)).max(0);
        let ended: i64 = s
            .spans
            .iter()
            .filter(|h| h.route == route)
            .map(|h| overlap(h.from_ms, h.to_ms))
            .sum();
        let current: i64 = s
            .holds
            .iter()
            .filter(|h| h.route == route)
            .map(|h| overlap(h.since_ms, to_ms))
            .sum();
        Duration::from_millis(u64::try_from(ended + current).unwrap_or(0))
    }

    /// Reloads holds and ended spans from the store.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let since = crate::clock::now_ms() - SPAN_MEMORY.as_millis() as i64;
        let (holds, spans) = self.store.route_holds(since).await?;
        let fresh = Snapshot { holds, spans };
        match self.snapshot.write() {
            Ok(mut g) => *g = Arc::new(fresh),
            Err(p) => *p.into_inner() = Arc::new(fresh),
        }
        Ok(())
    }

    /// Refreshes every `every` until cancelled; a failed refresh keeps the current view.
    pub async fn keep_fresh(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "could not refresh route holds; keeping the current ones");
            }
        }
    }

    #[cfg(test)]
    fn with(store: Arc<dyn Store>, holds: Vec<RouteHold>, spans: Vec<HeldSpan>) -> Self {
        Holds {
            store,
            snapshot: RwLock::new(Arc::new(Snapshot { holds, spans })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_time_counts_only_where_it_overlaps_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            crate::store::SqliteStore::open(&dir.path().join("s.db"))
                .await
                .unwrap(),
        );
        let holds = Holds::with(
            store,
            vec![RouteHold {
                route: Route::Print,
                operator: "alice".into(),
                reason: "printer outage".into(),
                since_ms: 10_000,
            }],
            vec![HeldSpan {
                route: Route::Print,
                from_ms: 1_000,
                to_ms: 3_000,
            }],
        );
        assert!(holds.is_held(Route::Print));
        assert!(!holds.is_held(Route::Mailbox));
        // Waiting 0..12 s: the ended 2 s and 2 s of the hold in force.
        assert_eq!(
            holds.held_between(Route::Print, 0, 12_000),
            Duration::from_secs(4)
        );
        // Waiting from 2 s: half of the ended span.
        assert_eq!(
            holds.held_between(Route::Print, 2_000, 12_000),
            Duration::from_secs(3)
        );
        assert_eq!(
            holds.held_between(Route::Mailbox, 0, 12_000),
            Duration::ZERO
        );
    }
}
