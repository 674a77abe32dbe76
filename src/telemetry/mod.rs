//! Metric names and what they mean, in one place. Stages call the recording functions below;
//! none of them carries a recipient id (only sender CVR, name and kind, route, reason, stage).
//!
//! Each function records twice: into the `metrics` facade (Prometheus at `/metrics`) and into
//! [`live`], the in-process totals the operator dashboard samples every second.

pub mod live;
pub mod registry;

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{RejectReason, Route, SenderInfo};

pub use live::live;

pub const LETTERS_RECEIVED: &str = "brevdue_letters_received_total";
pub const LETTERS_ACCEPTED: &str = "brevdue_letters_accepted_total";
pub const LETTERS_REJECTED: &str = "brevdue_letters_rejected_total";
pub const LETTERS_DUPLICATE: &str = "brevdue_letters_duplicate_total";
pub const LETTERS_UNAVAILABLE: &str = "brevdue_letters_unavailable_total";
pub const SENDER_LETTERS: &str = "brevdue_sender_letters_total";
pub const ACCEPT_SECONDS: &str = "brevdue_accept_duration_seconds";
pub const STAGE_SECONDS: &str = "brevdue_stage_duration_seconds";
pub const COMMIT_BATCH: &str = "brevdue_store_commit_batch_letters";
pub const DELIVERED: &str = "brevdue_letters_delivered_total";
pub const DELIVERY_LAG: &str = "brevdue_delivery_lag_seconds";
pub const DELIVERY_RETRIES: &str = "brevdue_delivery_retries_total";
pub const DELIVERY_FAILED: &str = "brevdue_delivery_failed_total";
pub const QUEUE_DEPTH: &str = "brevdue_queue_depth";
pub const STREAMS_OPEN: &str = "brevdue_grpc_streams_open";
pub const ADMISSION_REFUSED: &str = "brevdue_admission_refused_total";
pub const ADMISSION_WAITING: &str = "brevdue_admission_waiting_letters";
pub const PIPELINE_LETTERS: &str = "brevdue_pipeline_letters";
pub const PIPELINE_BYTES: &str = "brevdue_pipeline_bytes";
pub const WATCH_STREAMS_OPEN: &str = "brevdue_watch_streams_open";
pub const EVENTS_WRITTEN: &str = "brevdue_events_written_total";
pub const RECIPIENT_CHECKS: &str = "brevdue_recipient_checks_total";
pub const CONNECTIONS_REFUSED: &str = "brevdue_grpc_connections_refused_total";
pub const STORE_BYTES: &str = "brevdue_store_bytes";
pub const CONTENT_PURGED: &str = "brevdue_retention_purged_total";
pub const OLDEST_WAITING: &str = "brevdue_oldest_waiting_seconds";
pub const ROUTES_HELD: &str = "brevdue_routes_held";
pub const JOBS_RUNNING: &str = "brevdue_operator_jobs_running";
pub const JOB_LETTERS: &str = "brevdue_operator_job_letters_total";
pub const OPERATOR_ACTIONS: &str = "brevdue_operator_actions_total";

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric with its kind and help text: what `describe` registers and what the deploy
/// files may refer to.
pub const ALL: &[(&str, Kind, &str)] = &[
    (
        WATCH_STREAMS_OPEN,
        Kind::Gauge,
        "Open WatchEvents streams (senders following their letters)",
    ),
    (
        EVENTS_WRITTEN,
        Kind::Counter,
        "Letter events committed to the store (one per state change); rate() gives events/s",
    ),
    (
        ADMISSION_REFUSED,
        Kind::Counter,
        "Letters and streams refused with RESOURCE_EXHAUSTED, by reason: rate, in_flight (a sender's own limits), overloaded (load shed), streams",
    ),
    (
        ADMISSION_WAITING,
        Kind::Gauge,
        "Letters waiting for room in the acceptance pipeline (fair gate)",
    ),
    (
        PIPELINE_LETTERS,
        Kind::Gauge,
        "Letters inside the acceptance pipeline (admitted, not yet receipted)",
    ),
    (
        PIPELINE_BYTES,
        Kind::Gauge,
        "Bytes of letters inside the acceptance pipeline",
    ),
    (
        LETTERS_RECEIVED,
        Kind::Counter,
        "Letters received, by sender kind",
    ),
    (
        LETTERS_ACCEPTED,
        Kind::Counter,
        "New letters accepted (stored and queued), by route and sender kind",
    ),
    (
        LETTERS_REJECTED,
        Kind::Counter,
        "Letters rejected, by reason and sender kind",
    ),
    (
        LETTERS_DUPLICATE,
        Kind::Counter,
        "Letters resent that matched an accepted one (original receipt returned), by sender kind",
    ),
    (
        LETTERS_UNAVAILABLE,
        Kind::Counter,
        "Letters answered UNAVAILABLE because the store or queue failed (the sender resends), by sender kind",
    ),
    (
        SENDER_LETTERS,
        Kind::Counter,
        "Letters per sender (CVR and name), by outcome mailbox, print or rejected",
    ),
    (
        ACCEPT_SECONDS,
        Kind::Histogram,
        "Time from receiving a letter to its accepted receipt (end to end)",
    ),
    (
        STAGE_SECONDS,
        Kind::Histogram,
        "Time a letter spends in each stage: validate, route, seal, store (group commit wait included), queue",
    ),
    (
        COMMIT_BATCH,
        Kind::Histogram,
        "Letters per store transaction (group commit size)",
    ),
    (DELIVERED, Kind::Counter, "Letters delivered, by route"),
    (
        DELIVERY_LAG,
        Kind::Histogram,
        "Time from acceptance to delivery (mailbox) or hand-off to print, by route",
    ),
    (
        DELIVERY_RETRIES,
        Kind::Counter,
        "Delivery attempts that failed and were scheduled again, by route",
    ),
    (
        DELIVERY_FAILED,
        Kind::Counter,
        "Letters whose retries were spent (dead-lettered), by route",
    ),
    (
        QUEUE_DEPTH,
        Kind::Gauge,
        "Letters waiting in the delivery queue, by route (dead for dead letters)",
    ),
    (STREAMS_OPEN, Kind::Gauge, "SubmitBatch streams open"),
    (
        RECIPIENT_CHECKS,
        Kind::Counter,
        "CheckRecipient questions answered, per sender (CVR): how much a sender asks about recipients",
    ),
    (
        CONNECTIONS_REFUSED,
        Kind::Counter,
        "gRPC connections closed at once because grpc.max_connections were open",
    ),
    (
        STORE_BYTES,
        Kind::Gauge,
        "Bytes the store takes on disk (SQLite: database, journal and content segments; PostgreSQL: the database)",
    ),
    (
        CONTENT_PURGED,
        Kind::Counter,
        "Letters whose content retention.delivered purged",
    ),
    (
        OLDEST_WAITING,
        Kind::Gauge,
        "Age of the oldest letter waiting for delivery (since it became due), by route; 0 when none waits",
    ),
    (
        ROUTES_HELD,
        Kind::Gauge,
        "1 while an operator holds the route (its letters wait, none is tried), else 0, by route",
    ),
    (
        JOBS_RUNNING,
        Kind::Gauge,
        "Operators' bulk jobs (retry, cancel, purge) running",
    ),
    (
        JOB_LETTERS,
        Kind::Counter,
        "Letters operators' bulk jobs finished, by kind (retry, cancel, purge) and result (changed, failed)",
    ),
    (
        OPERATOR_ACTIONS,
        Kind::Counter,
        "Operator actions recorded in the audit trail, by action",
    ),
];

/// Bucket bounds (seconds) for per-letter latencies: sub-millisecond stages to slow commits.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,
];
/// Delivery waits range from milliseconds to the days of a retry schedule.
const LAG_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21_600.0,
    86_400.0, 259_200.0,
];
/// Group commit sizes, in letters, up to past the default batch limit.
const COMMIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Registers the help texts. Call once after installing a recorder.
/// Every metric: [`ALL`] and the registry's.
pub fn every() -> impl Iterator<Item = &'static (&'static str, Kind, &'static str)> {
    ALL.iter().chain(registry::ALL)
}

pub fn describe() {
    for (name, kind, help) in every() {
        match kind {
            Kind::Counter => describe_counter!(*name, *help),
            Kind::Gauge => describe_gauge!(*name, *help),
            Kind::Histogram => describe_histogram!(*name, *help),
        }
    }
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

fn per_sender(sender: &SenderInfo, outcome: &'static str) {
    counter!(SENDER_LETTERS, "sender" => sender.cvr.to_string(), "sender_name" => sender.name.clone(), "outcome" => outcome)
        .increment(1);
}

/// A stage of the acceptance pipeline, for [`STAGE_SECONDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Validate,
    Route,
    Seal,
    /// From handing the letter to the group committer until its batch is stored.
    Store,
    /// Recording the batch's deliveries in the queue.
    Queue,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Validate => "validate",
            Stage::Route => "route",
            Stage::Seal => "seal",
            Stage::Store => "store",
            Stage::Queue => "queue",
        }
    }
}

pub fn stage(stage: Stage, took: Duration) {
    histogram!(STAGE_SECONDS, "stage" => stage.label()).record(took.as_secs_f64());
}

/// The same stage time for `letters` letters (one batch-wide step).
pub fn stage_batch(stage: Stage, took: Duration, letters: usize) {
    histogram!(STAGE_SECONDS, "stage" => stage.label()).record_many(took.as_secs_f64(), letters);
}

pub fn letter_received(sender: &SenderInfo) {
    counter!(LETTERS_RECEIVED, "sender_kind" => kind(sender)).increment(1);
    live().received();
}

pub fn letter_accepted(sender: &SenderInfo, route: Route, took: Duration) {
    counter!(LETTERS_ACCEPTED, "route" => route_label(route), "sender_kind" => kind(sender))
        .increment(1);
    per_sender(sender, route_label(route));
    histogram!(ACCEPT_SECONDS).record(took.as_secs_f64());
    live().accepted(sender, route, took);
}

pub fn letter_rejected(sender: &SenderInfo, reason: RejectReason) {
    counter!(LETTERS_REJECTED, "reason" => reason.as_str(), "sender_kind" => kind(sender))
        .increment(1);
    per_sender(sender, "rejected");
    live().rejected(sender, reason);
}

pub fn letter_duplicate(sender: &SenderInfo) {
    counter!(LETTERS_DUPLICATE, "sender_kind" => kind(sender)).increment(1);
    live().duplicate();
}

pub fn letter_unavailable(sender: &SenderInfo) {
    counter!(LETTERS_UNAVAILABLE, "sender_kind" => kind(sender)).increment(1);
    live().unavailable();
}

pub fn record_commit_batch(letters: usize) {
    histogram!(COMMIT_BATCH).record(letters as f64);
}

pub fn delivered(route: Route, n: usize) {
    counter!(DELIVERED, "route" => route_label(route)).increment(n as u64);
    live().delivered(route, n);
}

/// How long one delivered letter waited since it was accepted.
pub fn delivery_lag(route: Route, lag: Duration) {
    histogram!(DELIVERY_LAG, "route" => route_label(route)).record(lag.as_secs_f64());
    live().delivery_lag(route, lag);
}

pub fn delivery_retry(route: Route) {
    counter!(DELIVERY_RETRIES, "route" => route_label(route)).increment(1);
    live().retry();
}

pub fn delivery_failed(route: Route) {
    counter!(DELIVERY_FAILED, "route" => route_label(route)).increment(1);
    live().failed();
}

pub fn store_bytes(bytes: u64) {
    gauge!(STORE_BYTES).set(bytes as f64);
}

pub fn content_purged(letters: u64) {
    counter!(CONTENT_PURGED).increment(letters);
}

pub fn queue_depth(mailbox: u64, print: u64, dead: u64) {
    gauge!(QUEUE_DEPTH, "route" => "mailbox").set(mailbox as f64);
    gauge!(QUEUE_DEPTH, "route" => "print").set(print as f64);
    gauge!(QUEUE_DEPTH, "route" => "dead").set(dead as f64);
}

/// Per route, how long its oldest waiting letter has waited (`None`: nothing waits).
pub fn oldest_waiting(route: Route, age: Option<Duration>) {
    gauge!(OLDEST_WAITING, "route" => route_label(route))
        .set(age.map(|a| a.as_secs_f64()).unwrap_or(0.0));
}

pub fn route_held(route: Route, held: bool) {
    gauge!(ROUTES_HELD, "route" => route_label(route)).set(if held { 1.0 } else { 0.0 });
}

pub fn jobs_running(n: usize) {
    gauge!(JOBS_RUNNING).set(n as f64);
}

/// Letters a bulk job of `kind` finished: `changed` done as asked, `failed` left with a reason.
pub fn job_letters(kind: &'static str, changed: u64, failed: u64) {
    counter!(JOB_LETTERS, "kind" => kind, "result" => "changed").increment(changed);
    counter!(JOB_LETTERS, "kind" => kind, "result" => "failed").increment(failed);
}

pub fn operator_action(action: &str) {
    counter!(OPERATOR_ACTIONS, "action" => action.to_string()).increment(1);
}

pub fn admission_refused(reason: &'static str) {
    counter!(ADMISSION_REFUSED, "reason" => reason).increment(1);
}

/// Letters waiting at the admission gate and letters inside the pipeline, for the metrics.
/// A plain struct here rather than in `admission`, so the gate can report through telemetry
/// without telemetry depending on the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateLoad {
    pub waiting: usize,
    pub letters_inside: usize,
    pub bytes_inside: u64,
}

pub fn admission_load(load: GateLoad) {
    gauge!(ADMISSION_WAITING).set(load.waiting as f64);
    gauge!(PIPELINE_LETTERS).set(load.letters_inside as f64);
    gauge!(PIPELINE_BYTES).set(load.bytes_inside as f64);
}

pub fn events_written(n: usize) {
    counter!(EVENTS_WRITTEN).increment(n as u64);
}

pub fn watch_stream_opened() {
    gauge!(WATCH_STREAMS_OPEN).increment(1.0);
}

pub fn watch_stream_closed() {
    gauge!(WATCH_STREAMS_OPEN).decrement(1.0);
}

/// One CheckRecipient answered for `sender` (counted per sender: a sender asking about many
/// recipients it never writes to is probing the registry).
pub fn recipient_checked(sender: &SenderInfo) {
    counter!(RECIPIENT_CHECKS, "sender" => sender.cvr.to_string()).increment(1);
}

pub fn connection_refused() {
    counter!(CONNECTIONS_REFUSED).increment(1);
}

pub fn stream_opened() {
    gauge!(STREAMS_OPEN).increment(1.0);
    live().stream(1);
}

pub fn stream_closed() {
    gauge!(STREAMS_OPEN).decrement(1.0);
    live().stream(-1);
}

static RECORDER: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();

/// Installs the process-wide Prometheus recorder once (several gateways in one test process
/// share it) and returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(DELIVERY_LAG.into()), LAG_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(COMMIT_BATCH.into()), COMMIT_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    //! The metric list against what `/metrics` renders and what the deploy files query.

    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::SenderKind;

    const GRAFANA: &str = include_str!("../../deploy/grafana/brevdue-dashboard.json");
    const PROMETHEUS: &str = include_str!("../../deploy/prometheus/prometheus.yml");

    /// Every `brevdue_…` token in a PromQL expression.
    fn metric_tokens(expr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let bytes = expr.as_bytes();
        let mut i = 0;
        while let Some(at) = expr[i..].find("brevdue_") {
            let start = i + at;
            let boundary = start == 0 || {
                let c = bytes[start - 1];
                !(c.is_ascii_alphanumeric() || c == b'_')
            };
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if boundary {
                out.push(expr[start..end].to_string());
            }
            i = end;
        }
        out
    }

    /// The queries of a Grafana dashboard: panel targets and template variables.
    fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                            out.push(s.clone())
                        }
                        ("query", serde_json::Value::Object(q)) => {
                            if let Some(serde_json::Value::String(s)) = q.get("query") {
                                out.push(s.clone());
                            }
                        }
                        _ => queries(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| queries(i, out)),
            _ => {}
        }
    }

    /// The metric a series name belongs to: histograms expose `_bucket`, `_sum` and `_count`.
    fn metric_of(series: &str) -> Option<&'static str> {
        if let Some((name, _, _)) = every().find(|(n, _, _)| *n == series) {
            return Some(name);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = series.strip_suffix(suffix)?;
            every()
                .find(|(n, k, _)| *n == base && *k == Kind::Histogram)
                .map(|(n, _, _)| *n)
        })
    }

    #[test]
    fn every_metric_name_in_the_grafana_dashboard_exists() {
        let dashboard: serde_json::Value =
            serde_json::from_str(GRAFANA).expect("the Grafana dashboard is JSON");
        let mut exprs = Vec::new();
        queries(&dashboard, &mut exprs);
        assert!(exprs.len() > 10, "found only {} queries", exprs.len());
        let mut used = BTreeSet::new();
        for expr in &exprs {
            for token in metric_tokens(expr) {
                let metric = metric_of(&token).unwrap_or_else(|| {
                    panic!("the Grafana dashboard queries {token}, which telemetry/mod.rs does not define (in {expr:?})")
                });
                used.insert(metric);
            }
        }
        let unused: Vec<&str> = every()
            .map(|(n, _, _)| *n)
            .filter(|n| !used.contains(n))
            .collect();
        assert!(
            unused.is_empty(),
            "metrics missing from the Grafana dashboard: {unused:?}"
        );
    }

    #[test]
    fn prometheus_scrapes_the_operator_port() {
        assert!(PROMETHEUS.contains("metrics_path: /metrics"));
        assert!(PROMETHEUS.contains(":9180"));
        assert!(!PROMETHEUS.contains('\t'), "YAML must not use tabs");
    }

    #[test]
    fn tokens_are_whole_words() {
        assert_eq!(
            metric_tokens("sum(rate(brevdue_a_total[1m])) / x_brevdue_b + brevdue_c_bucket"),
            vec!["brevdue_a_total", "brevdue_c_bucket"]
        );
        assert_eq!(
            metric_of("brevdue_delivery_lag_seconds_bucket"),
            Some(DELIVERY_LAG)
        );
        assert_eq!(metric_of("brevdue_letters_received_total_bucket"), None);
    }

    #[test]
    fn every_metric_renders_with_its_help_text_and_type() {
        let handle = prometheus().expect("the recorder installs");
        let sender = SenderInfo {
            cvr: "29403473".parse().expect("cvr"),
            name: "Test Styrelsen".into(),
            kind: SenderKind::Public,
            suspended: false,
            limits: Default::default(),
        };
        let ms = Duration::from_millis(1);
        letter_received(&sender);
        letter_accepted(&sender, Route::Mailbox, ms);
        letter_rejected(&sender, RejectReason::NotReachable);
        letter_duplicate(&sender);
        letter_unavailable(&sender);
        stage(Stage::Validate, ms);
        stage_batch(Stage::Queue, ms, 3);
        record_commit_batch(3);
        delivered(Route::Print, 1);
        delivery_lag(Route::Print, ms);
        delivery_retry(Route::Print);
        delivery_failed(Route::Print);
        queue_depth(1, 2, 3);
        stream_opened();
        stream_closed();
        events_written(2);
        watch_stream_opened();
        watch_stream_closed();
        recipient_checked(&sender);
        connection_refused();
        store_bytes(1);
        content_purged(1);
        admission_refused("rate");
        oldest_waiting(Route::Print, Some(ms));
        route_held(Route::Print, true);
        jobs_running(1);
        job_letters("retry", 2, 1);
        operator_action("hold");
        admission_load(GateLoad {
            waiting: 1,
            letters_inside: 2,
            bytes_inside: 3,
        });
        registry::registry(&registry::RegistryFigures {
            recipients: 1,
            index_bytes: 2,
            overlay: 0,
            lag_changes: 0,
            last_change_ms: 1,
            applied: 1,
            reloaded: true,
        });
        let text = handle.render();
        for (name, kind, help) in every() {
            assert!(
                text.contains(&format!("# HELP {name} {help}\n")),
                "{name} has no help text in:\n{text}"
            );
            let ty = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            assert!(
                text.contains(&format!("# TYPE {name} {ty}\n")),
                "{name} is not a {ty}"
            );
        }
        assert!(
            text.contains("brevdue_store_commit_batch_letters_bucket{le=\"4\"}"),
            "commit sizes use letter-count buckets"
        );
        assert!(!text.contains("0101901111"), "no recipient ids in metrics");
    }
}
