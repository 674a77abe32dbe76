//! The operator gauges: per route, the age of the oldest waiting letter and whether it is
//! held, sampled every few seconds (one grouped query over the waiting letters' index).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::Route;
use crate::store::Store;

use super::Holds;

/// How often the gauges are sampled.
pub const EVERY: Duration = Duration::from_secs(5);

pub async fn run(store: Arc<dyn Store>, holds: Arc<Holds>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = crate::clock::now_ms();
        match store.oldest_waiting(now).await {
            Ok(oldest) => {
                for route in [Route::Mailbox, Route::Print] {
                    let age = oldest.iter().find(|(r, _)| *r == route).map(|(_, due)| {
                        Duration::from_millis(u64::try_from(now - due).unwrap_or(0))
                    });
                    crate::telemetry::oldest_waiting(route, age);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not sample the oldest waiting letters"),
        }
        for route in [Route::Mailbox, Route::Print] {
            crate::telemetry::route_held(route, holds.is_held(route));
        }
    }
}
