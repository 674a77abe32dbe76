//! The operator's HTTP port: `/metrics` (Prometheus), `/healthz` (the process is up),
//! `/readyz` (the store and queue answer, from cached probes), and the live dashboard
//! (`/dashboard`, fed by `/api/stats` from the sampler's per-second snapshots) with the operator
//! pages beside it (`/dashboard/operations`, `/dashboard/sender`, acting through `/api/ops/*`),
//! which ask for the admin token when one is configured. It binds to loopback unless configured
//! otherwise.

pub mod auth;
mod dashboard;
pub mod history;
mod ops_api;
mod ops_pages;
pub mod ready;
pub mod sampler;
pub mod stats;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::queue::Queue;
use crate::store::Store;

pub use auth::{AdminToken, TokenError};
pub use ready::{Readiness, Verdict};
pub use sampler::Sampler;

#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub metrics: Option<PrometheusHandle>,
    pub sampler: Arc<Sampler>,
    /// The last readiness probe's verdict (probed in the background).
    pub ready: Readiness,
    /// Asked for by `/dashboard` and `/api/*` when set.
    pub token: AdminToken,
    /// What the operator pages' actions call.
    pub console: Arc<crate::operators::Console>,
}

pub fn router(state: AdminState) -> Router {
    // What shows senders and volumes asks for the token; probes and Prometheus do not.
    let operator_pages = Router::new()
        .route("/dashboard", get(dashboard::page))
        .route("/api/stats", get(dashboard::stats))
        .route("/dashboard/operations", get(ops_pages::operations))
        .route("/dashboard/sender", get(ops_pages::sender))
        .route("/api/ops/routes", get(ops_api::routes))
        .route("/api/ops/dead", get(ops_api::dead))
        .route("/api/ops/jobs", get(ops_api::jobs).post(ops_api::start_job))
        .route("/api/ops/jobs/{id}", get(ops_api::job))
        .route("/api/ops/holds", post(ops_api::hold))
        .route(
            "/api/ops/sender",
            get(ops_api::sender).post(ops_api::suspend),
        )
        .route("/api/ops/audit", get(ops_api::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            state.token.clone(),
            auth::require,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(operator_pages)
        .with_state(state)
}

/// The cached verdict, with a fixed text: which backend, never why (that is in the log).
async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    match s.ready.verdict() {
        Verdict::Ready => (StatusCode::OK, "ready\n"),
        Verdict::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
        Verdict::StoreDown => (StatusCode::SERVICE_UNAVAILABLE, "store not answering\n"),
        Verdict::QueueDown => (StatusCode::SERVICE_UNAVAILABLE, "queue not answering\n"),
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
