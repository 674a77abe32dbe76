//! Configuration: one documented struct, read from `brevdue.toml`, overridden by command-line
//! flags and `BREVDUE_*` variables (the CLI applies those), validated completely before start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::admission::AdmissionConfig;
use crate::deliver::DeliveryConfig;
use crate::memo::MemoConfig;
use crate::store::CommitterConfig;
use crate::validate::Limits;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the gateway keeps its CA, keys, embedded store and queue, and the print spool.
    pub data_dir: PathBuf,
    /// gRPC (mutual TLS) address.
    pub listen: SocketAddr,
    /// Operator HTTP address: /metrics, /healthz, /readyz.
    pub admin_listen: SocketAddr,
    /// Store URL; default `sqlite://<data_dir>/brevdue.db`.
    pub store: Option<String>,
    /// Queue URL; default `embedded://<data_dir>/queue.db`; RabbitMQ:
    /// `amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME]`.
    pub queue: Option<String>,
    /// How often admin changes (senders, registry, keys) are looked for.
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// How long SIGTERM waits for in-flight letters before stopping anyway.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Letters of one SubmitBatch stream in the pipeline at once.
    pub stream_in_flight: usize,
    pub limits: Limits,
    /// Bounds on what the gateway takes in at once, and load shedding.
    pub admission: AdmissionConfig,
    pub commit: CommitterConfig,
    pub delivery: DeliveryConfig,
    /// `[memo]`: the MeMo version produced for letters sent as fields.
    pub memo: MemoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./brevdue-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            store: None,
            queue: None,
            refresh_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            stream_in_flight: 512,
            limits: Limits::default(),
            admission: AdmissionConfig::default(),
            commit: CommitterConfig::default(),
            delivery: DeliveryConfig::default(),
            memo: MemoConfig::default(),
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

impl Config {
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

    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("brevdue.db").display()))
    }

    pub fn queue_url(&self) -> String {
        self.queue
            .clone()
            .unwrap_or_else(|| format!("embedded://{}", self.data_dir.join("queue.db").display()))
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
        let store = self.store_url();
        let postgres = store.starts_with("postgres://") || store.starts_with("postgresql://");
        if !store.starts_with("sqlite://") && !postgres && store.contains("://") {
            p.push(format!(
                "store {store:?}: supported are sqlite://PATH and postgres://USER@HOST/DATABASE"
            ));
        }
        let queue = self.queue_url();
        if !queue.starts_with("embedded://") && !queue.starts_with("amqp://") {
            p.push(format!(
                "queue {queue:?}: supported are embedded://PATH and amqp://USER:PASS@HOST:PORT/VHOST"
            ));
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
        assert!(c.store_url().starts_with("sqlite:///var/lib/brevdue/"));
        let rabbit = Config {
            queue: Some("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            ..Config::default()
        };
        assert!(rabbit.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        assert!(toml::from_str::<Config>("listn = \"x\"").is_err());
        let mut c = Config {
            stream_in_flight: 0,
            queue: Some("kafka://x".into()),
            ..Config::default()
        };
        c.limits.allowed_media_types.clear();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("stream_in_flight")
                && e.contains("allowed_media_types")
                && e.contains("kafka"),
            "{e}"
        );
    }

    #[test]
    fn postgres_store_urls_are_accepted() {
        for url in ["postgres://brevdue@db/brevdue", "postgresql://db/brevdue"] {
            let c = Config {
                store: Some(url.into()),
                ..Config::default()
            };
            assert!(c.validate().is_ok(), "{url}");
        }
        let c = Config {
            store: Some("mysql://db/brevdue".into()),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("mysql"));
    }
}
