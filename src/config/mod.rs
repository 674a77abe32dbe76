//! Configuration: one documented struct, read from `brevdue.toml`, overridden by command-line
//! flags and `BREVDUE_*` variables (the CLI applies those), validated completely before start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod transport;

pub use crate::backend::{BackendUrlError, BrokerOptions, DatabaseOptions, QueueUrl, StoreUrl};
pub use transport::TransportConfig;

use crate::admission::AdmissionConfig;
use crate::deliver::DeliveryConfig;
use crate::directory::RegistryConfig;
use crate::follow::FollowConfig;
use crate::memo::MemoConfig;
use crate::operators::OperationsConfig;
use crate::outbox::OutboxConfig;
use crate::pipeline::CommitterConfig;
use crate::retention::RetentionConfig;
use crate::validate::Limits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the gateway keeps its CA, keys, embedded store and queue, and the print spool.
    pub data_dir: PathBuf,
    /// gRPC (mutual TLS) address.
    pub listen: SocketAddr,
    /// Operator HTTP address: /metrics, /healthz, /readyz, /dashboard. Loopback by default:
    /// the dashboard shows sender names and volumes.
    pub admin_listen: SocketAddr,
    /// A file holding the operator token that `/dashboard` and `/api/*` ask for (at least 16
    /// characters); none: those pages are open to whoever reaches the port.
    pub admin_token_file: Option<PathBuf>,
    /// Store URL; default `sqlite://<data_dir>/brevdue.db`. Parsed when the file is read.
    pub store: Option<StoreUrl>,
    /// Queue URL; default `embedded://<data_dir>/queue.db`; RabbitMQ:
    /// `amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME]`.
    pub queue: Option<QueueUrl>,
    /// How often admin changes (senders, registry, keys) are looked for.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How long a sender's client certificate from `senders add`/`reissue` is valid.
    #[serde(with = "humantime_serde")]
    pub sender_cert_validity: Duration,
    /// How long SIGTERM waits for in-flight letters before stopping anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Letters of one SubmitBatch stream in the pipeline at once.
    pub stream_in_flight: usize,
    /// HTTP/2 windows and keep-alive of the gRPC port.
    pub grpc: TransportConfig,
    /// Pool sizes and deadlines of the store's database.
    pub database: DatabaseOptions,
    /// Deadlines of RabbitMQ calls.
    pub broker: BrokerOptions,
    pub limits: Limits,
    /// Bounds on what the gateway takes in at once, and load shedding.
    pub admission: AdmissionConfig,
    pub commit: CommitterConfig,
    pub delivery: DeliveryConfig,
    /// `[events]`: retention and limits of the event streams senders follow.
    pub events: FollowConfig,
    /// `[memo]`: the MeMo version produced for letters sent as fields.
    pub memo: MemoConfig,
    /// `[registry]`: how running gateways follow registry changes.
    pub registry: RegistryConfig,
    /// `[outbox]`: the sweep that keeps the store and the queue in step.
    pub outbox: OutboxConfig,
    /// `[retention]`: how long delivered letters' content is kept.
    pub retention: RetentionConfig,
    /// `[operations]`: how operators' bulk jobs run.
    pub operations: OperationsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./brevdue-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            admin_token_file: None,
            store: None,
            queue: None,
            refresh_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            sender_cert_validity: Duration::from_secs(365 * 86_400),
            stream_in_flight: 512,
            grpc: TransportConfig::default(),
            database: DatabaseOptions::default(),
            broker: BrokerOptions::default(),
            limits: Limits::default(),
            admission: AdmissionConfig::default(),
            commit: CommitterConfig::default(),
            delivery: DeliveryConfig::default(),
            events: FollowConfig::default(),
            memo: MemoConfig::default(),
            registry: RegistryConfig::default(),
            outbox: OutboxConfig::default(),
            retention: RetentionConfig::default(),
            operations: OperationsConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// What the command line (flags and `BREVDUE_*` variables) sets over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub store: Option<StoreUrl>,
    pub queue: Option<QueueUrl>,
    pub listen: Option<SocketAddr>,
    pub admin_listen: Option<SocketAddr>,
    pub admin_token_file: Option<PathBuf>,
}

impl Config {
    /// The file (or the defaults without one), the overrides over it, validated completely.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let Overrides {
            data_dir,
            store,
            queue,
            listen,
            admin_listen,
            admin_token_file,
        } = overrides;
        if let Some(d) = data_dir {
            config.data_dir = d;
        }
        if store.is_some() {
            config.store = store;
        }
        if queue.is_some() {
            config.queue = queue;
        }
        if let Some(l) = listen {
            config.listen = l;
        }
        if let Some(a) = admin_listen {
            config.admin_listen = a;
        }
        if admin_token_file.is_some() {
            config.admin_token_file = admin_token_file;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file; a missing file is an error (the user named it).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
    }

    /// The store this configuration names, the embedded default filled in.
    pub fn store_url(&self) -> StoreUrl {
        self.store
            .clone()
            .unwrap_or(StoreUrl::Sqlite(PathBuf::new()))
            .resolved(&self.data_dir)
    }

    /// The queue this configuration names, the embedded default filled in.
    pub fn queue_url(&self) -> QueueUrl {
        self.queue
            .clone()
            .unwrap_or(QueueUrl::Embedded(PathBuf::new()))
            .resolved(&self.data_dir)
    }

    /// Every problem at once, so an operator fixes the file in one go.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            p.push("data_dir is empty".to_string());
        }
        if self.listen == self.admin_listen && self.listen.port() != 0 {
            p.push(format!("listen and admin_listen are both {}", self.listen));
        }
        if self.stream_in_flight == 0 {
            p.push("stream_in_flight must be at least 1".into());
        }
        if self.limits.max_letter_size.as_u64() == 0 {
            p.push("limits.max_letter_size must be above 0".into());
        }
        if self.limits.allowed_media_types.is_empty() {
            p.push("limits.allowed_media_types is empty: no letter could be accepted".into());
        }
        p.extend(self.admission.problems());
        p.extend(self.grpc.problems());
        p.extend(self.events.problems());
        p.extend(self.operations.problems());
        p.extend(self.database.problems());
        p.extend(self.broker.problems());
        p.extend(self.registry.problems());
        p.extend(self.outbox.problems());
        p.extend(self.retention.problems());
        if self.commit.max_batch_letters == 0 {
            p.push("commit.max_batch_letters must be at least 1".into());
        }
        if self.delivery.batch == 0 {
            p.push("delivery.batch must be at least 1".into());
        }
        if self.delivery.retry_initial.is_zero()
            || self.delivery.retry_max < self.delivery.retry_initial
        {
            p.push(
                "delivery.retry_initial must be above 0 and not above delivery.retry_max".into(),
            );
        }
        if self.sender_cert_validity < Duration::from_secs(3600) {
            p.push("sender_cert_validity must be at least an hour".into());
        }
        if self.refresh_interval.is_zero() {
            p.push("refresh_interval must be above 0".into());
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_with_units() {
        let c: Config = toml::from_str(
            r#"
            data_dir = "/var/lib/brevdue"
            listen = "0.0.0.0:50051"
            refresh_interval = "5s"
            [limits]
            max_letter_size = "20 MB"
            max_attachments = 3
            [delivery]
            max_age = "3days"
            retry_initial = "500ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.limits.max_letter_size.as_u64(), 20_000_000);
        assert_eq!(c.delivery.max_age, Duration::from_secs(3 * 86400));
        assert_eq!(c.refresh_interval, Duration::from_secs(5));
        assert!(c.validate().is_ok());
        assert_eq!(
            c.store_url(),
            StoreUrl::Sqlite("/var/lib/brevdue/brevdue.db".into())
        );
        let rabbit = Config {
            queue: Some("amqp://guest:guest@127.0.0.1:5672/%2f".parse().unwrap()),
            ..Config::default()
        };
        assert!(rabbit.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
        // A URL without a backend is refused as the file is read.
        let e = toml::from_str::<Config>("queue = \"kafka://x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka"), "{e}");
        let mut c = Config {
            stream_in_flight: 0,
            ..Config::default()
        };
        c.limits.allowed_media_types.clear();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("stream_in_flight") && e.contains("allowed_media_types"),
            "{e}"
        );
    }

    #[test]
    fn postgres_store_urls_are_accepted() {
        for url in ["postgres://brevdue@db/brevdue", "postgresql://db/brevdue"] {
            let c = Config {
                store: Some(url.parse().unwrap()),
                ..Config::default()
            };
            assert!(c.validate().is_ok(), "{url}");
            assert!(matches!(c.store_url(), StoreUrl::Postgres(_)));
        }
        let e = toml::from_str::<Config>("store = \"mysql://db/brevdue\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql"), "{e}");
    }
}
