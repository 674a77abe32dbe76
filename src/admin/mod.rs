//! The operator's HTTP port: `/metrics` (Prometheus), `/healthz` (the process is up),
//! `/readyz` (the store and queue answer), and the live dashboard (`/dashboard`, fed by
//! `/api/stats` from the sampler's per-second snapshots).

mod dashboard;
pub mod history;
pub mod sampler;
pub mod stats;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::queue::Queue;
use crate::store::Store;

pub use sampler::Sampler;

#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub metrics: Option<PrometheusHandle>,
    pub sampler: Arc<Sampler>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/api/stats", get(dashboard::stats))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let store = s.store.ping().await;
    let queue = s.queue.depth().await;
    match (store, queue) {
        (Ok(()), Ok(_)) => (StatusCode::OK, "ready\n".to_string()),
        (Err(e), _) => (StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}\n")),
        (_, Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("queue: {e}\n")),
    }
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    match s.metrics {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n".into(),
        ),
    }
}
