//! `brevdue_store_bytes` on `/metrics`: what the store takes on disk, measured by the gateway.

mod common;

use std::time::Duration;

use common::delivery::wait_until;
use common::*;

async fn the_store_size_is_on_metrics(backend: Backend) {
    let h = Harness::start_on(backend).await;
    let bytes = wait_until(
        Duration::from_secs(30),
        "brevdue_store_bytes on /metrics",
        || async {
            let text = h.metrics().await;
            text.lines()
                .find(|l| l.starts_with("brevdue_store_bytes "))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        },
    )
    .await;
    assert!(bytes > 0.0, "the store takes some room: {bytes}");
    let text = h.metrics().await;
    assert!(
        text.contains("# HELP brevdue_store_bytes"),
        "with its help text"
    );
}
on_every_backend!(the_store_size_is_on_metrics);
