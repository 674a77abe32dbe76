//! The registry's figures on `/metrics`: its size, the index's memory, and how far this gateway
//! is behind the change log. Published by the change-log follower after every poll.

use std::sync::Mutex;

use metrics::{counter, gauge};

use super::Kind;

pub const RECIPIENTS: &str = "brevdue_registry_recipients";
pub const INDEX_BYTES: &str = "brevdue_registry_index_bytes";
pub const OVERLAY: &str = "brevdue_registry_overlay_recipients";
pub const LAG_CHANGES: &str = "brevdue_registry_lag_changes";
pub const SINCE_CHANGE: &str = "brevdue_registry_seconds_since_change";
pub const CHANGES_APPLIED: &str = "brevdue_registry_changes_applied_total";
pub const RELOADS: &str = "brevdue_registry_reloads_total";

pub const ALL: &[(&str, Kind, &str)] = &[
    (
        RECIPIENTS,
        Kind::Gauge,
        "Recipients in this gateway's registry index",
    ),
    (
        INDEX_BYTES,
        Kind::Gauge,
        "Bytes of this gateway's registry index (packed index and changes since)",
    ),
    (
        OVERLAY,
        Kind::Gauge,
        "Recipients changed since this gateway's packed index was built (applied as deltas)",
    ),
    (
        LAG_CHANGES,
        Kind::Gauge,
        "Registry changes in the store this gateway has not applied yet",
    ),
    (
        SINCE_CHANGE,
        Kind::Gauge,
        "Seconds since the newest registry change this gateway applied was made",
    ),
    (
        CHANGES_APPLIED,
        Kind::Counter,
        "Registry changes applied to this gateway's index as deltas",
    ),
    (
        RELOADS,
        Kind::Counter,
        "Times this gateway loaded the registry whole (start, imports)",
    ),
];

/// What one poll of the change log left (also what the dashboard shows).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RegistryFigures {
    pub recipients: usize,
    pub index_bytes: usize,
    pub overlay: usize,
    pub lag_changes: i64,
    /// Unix ms of the newest applied change (0: none since start).
    pub last_change_ms: i64,
    pub applied: usize,
    pub reloaded: bool,
}

/// The newest figures, for the dashboard (none until the first poll).
static LATEST: Mutex<Option<RegistryFigures>> = Mutex::new(None);

pub fn latest() -> Option<RegistryFigures> {
    LATEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

pub fn registry(f: &RegistryFigures) {
    *LATEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f.clone());
    gauge!(RECIPIENTS).set(f.recipients as f64);
    gauge!(INDEX_BYTES).set(f.index_bytes as f64);
    gauge!(OVERLAY).set(f.overlay as f64);
    gauge!(LAG_CHANGES).set(f.lag_changes.max(0) as f64);
    if f.last_change_ms > 0 {
        let age = (crate::clock::now_ms() - f.last_change_ms).max(0) as f64 / 1000.0;
        gauge!(SINCE_CHANGE).set(age);
    }
    counter!(CHANGES_APPLIED).increment(f.applied as u64);
    if f.reloaded {
        counter!(RELOADS).increment(1);
    }
}
