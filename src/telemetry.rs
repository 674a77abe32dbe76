//! Metric names and what they mean, in one place. Stages call these functions; none of them
//! carries a recipient id (only sender CVR and kind, route, reason).

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::registry::SenderInfo;
use crate::route::{RejectReason, Route};

pub const LETTERS_RECEIVED: &str = "brevdue_letters_received_total";
pub const LETTERS_ACCEPTED: &str = "brevdue_letters_accepted_total";
pub const LETTERS_REJECTED: &str = "brevdue_letters_rejected_total";
pub const LETTERS_DUPLICATE: &str = "brevdue_letters_duplicate_total";
pub const ACCEPT_SECONDS: &str = "brevdue_accept_duration_seconds";
pub const COMMIT_BATCH: &str = "brevdue_store_commit_batch_letters";
pub const DELIVERED: &str = "brevdue_letters_delivered_total";
pub const DELIVERY_RETRIES: &str = "brevdue_delivery_retries_total";
pub const DELIVERY_FAILED: &str = "brevdue_delivery_failed_total";
pub const QUEUE_DEPTH: &str = "brevdue_queue_depth";
pub const STREAMS_OPEN: &str = "brevdue_grpc_streams_open";

/// Registers the help texts. Call once after installing a recorder.
pub fn describe() {
    describe_counter!(LETTERS_RECEIVED, "Letters received, by sender kind");
    describe_counter!(
        LETTERS_ACCEPTED,
        "Letters accepted (stored and queued), by route, sender kind and sender CVR"
    );
    describe_counter!(
        LETTERS_REJECTED,
        "Letters rejected, by reason and sender kind"
    );
    describe_counter!(
        LETTERS_DUPLICATE,
        "Letters resent that matched an accepted one (original receipt returned)"
    );
    describe_histogram!(
        ACCEPT_SECONDS,
        "Time from receiving a letter to its accepted receipt"
    );
    describe_histogram!(
        COMMIT_BATCH,
        "Letters per store transaction (group commit size)"
    );
    describe_counter!(DELIVERED, "Letters delivered, by route");
    describe_counter!(
        DELIVERY_RETRIES,
        "Delivery attempts that failed and were scheduled again, by route"
    );
    describe_counter!(
        DELIVERY_FAILED,
        "Letters whose retries were spent (dead-lettered), by route"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Letters waiting in the delivery queue, by route (dead for dead letters)"
    );
    describe_gauge!(STREAMS_OPEN, "SubmitBatch streams open");
}

pub fn route_label(route: Route) -> &'static str {
    match route {
        Route::Mailbox => "mailbox",
        Route::Print => "print",
    }
}

fn kind(sender: &SenderInfo) -> &'static str {
    match sender.kind {
        crate::domain::SenderKind::Public => "public",
        crate::domain::SenderKind::Private => "private",
    }
}

pub fn letter_received(sender: &SenderInfo) {
    counter!(LETTERS_RECEIVED, "sender_kind" => kind(sender)).increment(1);
}

pub fn letter_accepted(sender: &SenderInfo, route: Route, took: Duration) {
    counter!(LETTERS_ACCEPTED, "route" => route_label(route), "sender_kind" => kind(sender), "sender" => sender.cvr.to_string())
        .increment(1);
    histogram!(ACCEPT_SECONDS).record(took.as_secs_f64());
}

pub fn letter_rejected(sender: &SenderInfo, reason: RejectReason) {
    counter!(LETTERS_REJECTED, "reason" => reason.as_str(), "sender_kind" => kind(sender))
        .increment(1);
}

pub fn letter_duplicate(sender: &SenderInfo) {
    counter!(LETTERS_DUPLICATE, "sender_kind" => kind(sender)).increment(1);
}

pub fn record_commit_batch(letters: usize) {
    histogram!(COMMIT_BATCH).record(letters as f64);
}

pub fn delivered(route: Route, n: usize) {
    counter!(DELIVERED, "route" => route_label(route)).increment(n as u64);
}

pub fn delivery_retry(route: Route) {
    counter!(DELIVERY_RETRIES, "route" => route_label(route)).increment(1);
}

pub fn delivery_failed(route: Route) {
    counter!(DELIVERY_FAILED, "route" => route_label(route)).increment(1);
}

pub fn queue_depth(mailbox: u64, print: u64, dead: u64) {
    gauge!(QUEUE_DEPTH, "route" => "mailbox").set(mailbox as f64);
    gauge!(QUEUE_DEPTH, "route" => "print").set(print as f64);
    gauge!(QUEUE_DEPTH, "route" => "dead").set(dead as f64);
}

pub fn stream_opened() {
    gauge!(STREAMS_OPEN).increment(1.0);
}

pub fn stream_closed() {
    gauge!(STREAMS_OPEN).decrement(1.0);
}

static RECORDER: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
    std::sync::OnceLock::new();

/// Installs the process-wide Prometheus recorder once (several gateways in one test process
/// share it) and returns its handle.
pub fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                // Commit sizes are letters, not seconds.
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(COMMIT_BATCH.into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
                        4096.0,
                    ],
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}
