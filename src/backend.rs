//! Which store and which queue: parsed once from their URLs, when the configuration is read, so
//! nothing after start-up looks at a URL string to learn what backend it has. Its own module
//! (not part of `config`) because the store and the queue open what these name, and `config`
//! sits above them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use std::time::Duration;

use serde::Deserialize;

/// How the gateway talks to its database: pool sizes and the deadlines that turn a slow or
/// dead database into a retryable error the sender sees, instead of a call that hangs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseOptions {
    /// PostgreSQL connections per gateway instance.
    pub max_connections: u32,
    /// SQLite connections (one writer at a time in any case; readers share the rest).
    pub sqlite_connections: u32,
    /// Longest wait for a pooled connection (or a new one) before `Unavailable`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// PostgreSQL: longest any one statement may run (`statement_timeout`); 0 for none.
    #[serde(with = "humantime_serde")]
    pub statement_timeout: Duration,
    /// SQLite: how long a writer waits for another process's write lock (an admin command
    /// beside the gateway) before giving up.
    #[serde(with = "humantime_serde")]
    pub busy_timeout: Duration,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions {
            max_connections: 16,
            sqlite_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(60),
            busy_timeout: Duration::from_secs(30),
        }
    }
}

/// How the gateway talks to RabbitMQ.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerOptions {
    /// Connecting and declaring the topology.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Any other broker call, including waiting for the confirms of one enqueue.
    #[serde(with = "humantime_serde")]
    pub call_timeout: Duration,
    /// Senders' lanes (one quorum queue per sender, route and lower priority) that may exist at
    /// once, over every gateway sharing the broker; senders beyond share a lane per route and
    /// priority. Bounds the broker's queues whatever the number of senders.
    pub max_lanes: usize,
    /// A lane no gateway has used for this long, and that is empty, is removed; it is granted
    /// again when its sender sends.
    #[serde(with = "humantime_serde")]
    pub lane_idle: Duration,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            connect_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(30),
            max_lanes: 32,
            lane_idle: Duration::from_secs(300),
        }
    }
}

impl DatabaseOptions {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.max_connections == 0 || self.sqlite_connections == 0 {
            p.push(
                "database.max_connections and database.sqlite_connections must be at least 1"
                    .into(),
            );
        }
        if self.acquire_timeout.is_zero() {
            p.push("database.acquire_timeout must be above 0".into());
        }
        p
    }
}

impl BrokerOptions {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.connect_timeout.is_zero() || self.call_timeout.is_zero() {
            p.push("broker.connect_timeout and broker.call_timeout must be above 0".into());
        }
        if self.lane_idle.is_zero() {
            p.push("broker.lane_idle must be above 0".into());
        }
        p
    }
}

/// A store URL that is not one brevdue has a backend for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendUrlError {
    #[error(
        "store {0:?}: supported are sqlite://PATH (or a bare path) and postgres://USER@HOST/DATABASE"
    )]
    Store(String),
    #[error(
        "queue {0:?}: supported are embedded://PATH and amqp://USER:PASS@HOST:PORT/VHOST[?prefix=NAME]"
    )]
    Queue(String),
    #[error(
        "queue {0:?}: amqps:// (TLS) is not supported; use amqp:// on a trusted network or through a TLS tunnel"
    )]
    QueueTls(String),
}

/// Where letters are stored.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum StoreUrl {
    /// The embedded default: one SQLite file of this process (empty: the data directory's own).
    Sqlite(PathBuf),
    /// PostgreSQL, shared by every gateway instance (the URL as given, credentials included).
    Postgres(String),
}

/// Where deliveries wait.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum QueueUrl {
    /// The embedded default: a SQLite file of this process (empty: the data directory's own).
    Embedded(PathBuf),
    /// RabbitMQ, shared by every gateway instance (`amqp://…[?prefix=NAME]` as given).
    Rabbit(String),
}

/// `scheme://user:password@rest` without the password, for messages and reports.
fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}@{host}/{path}")
                }
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

impl FromStr for StoreUrl {
    type Err = BackendUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreUrl::Postgres(s.to_string()))
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            Ok(StoreUrl::Sqlite(path.into()))
        } else if s.contains("://") {
            Err(BackendUrlError::Store(without_password(s)))
        } else {
            Ok(StoreUrl::Sqlite(s.into()))
        }
    }
}

impl TryFrom<String> for StoreUrl {
    type Error = BackendUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for QueueUrl {
    type Err = BackendUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("embedded://") {
            Ok(QueueUrl::Embedded(path.into()))
        } else if s.starts_with("amqp://") {
            Ok(QueueUrl::Rabbit(s.to_string()))
        } else if s.starts_with("amqps://") {
            Err(BackendUrlError::QueueTls(without_password(s)))
        } else {
            Err(BackendUrlError::Queue(without_password(s)))
        }
    }
}

impl TryFrom<String> for QueueUrl {
    type Error = BackendUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl StoreUrl {
    /// The same URL with an empty SQLite path replaced by the data directory's file.
    pub fn resolved(&self, data_dir: &Path) -> StoreUrl {
        match self {
            StoreUrl::Sqlite(p) if p.as_os_str().is_empty() => {
                StoreUrl::Sqlite(data_dir.join("brevdue.db"))
            }
            other => other.clone(),
        }
    }

    /// Whether the store is a file of this process alone (one `serve` per data directory).
    pub fn is_embedded(&self) -> bool {
        matches!(self, StoreUrl::Sqlite(_))
    }

    /// The URL with its credentials, to hand to a child process or a driver; never to a log.
    pub fn as_url(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            StoreUrl::Postgres(u) => u.clone(),
        }
    }

    /// What backend this is, in words for a report or a log (no credentials).
    pub fn describe(&self) -> String {
        match self {
            StoreUrl::Sqlite(p) => format!("embedded SQLite ({})", p.display()),
            StoreUrl::Postgres(u) => format!("PostgreSQL ({})", without_password(u)),
        }
    }
}

impl QueueUrl {
    /// The same URL with an empty embedded path replaced by the data directory's file.
    pub fn resolved(&self, data_dir: &Path) -> QueueUrl {
        match self {
            QueueUrl::Embedded(p) if p.as_os_str().is_empty() => {
                QueueUrl::Embedded(data_dir.join("queue.db"))
            }
            other => other.clone(),
        }
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self, QueueUrl::Embedded(_))
    }

    /// The URL with its credentials, to hand to a child process or a driver; never to a log.
    pub fn as_url(&self) -> String {
        match self {
            QueueUrl::Embedded(p) => format!("embedded://{}", p.display()),
            QueueUrl::Rabbit(u) => u.clone(),
        }
    }

    /// What backend this is, in words for a report or a log (no credentials).
    pub fn describe(&self) -> String {
        match self {
            QueueUrl::Embedded(p) => format!("embedded queue ({})", p.display()),
            QueueUrl::Rabbit(u) => format!("RabbitMQ ({})", without_password(u)),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_into_backends() {
        assert_eq!(
            "sqlite:///var/lib/b.db".parse::<StoreUrl>(),
            Ok(StoreUrl::Sqlite("/var/lib/b.db".into()))
        );
        assert_eq!(
            "b.db".parse::<StoreUrl>(),
            Ok(StoreUrl::Sqlite("b.db".into()))
        );
        for u in ["postgres://u@db/b", "postgresql://db/b"] {
            assert!(
                matches!(u.parse::<StoreUrl>(), Ok(StoreUrl::Postgres(_))),
                "{u}"
            );
        }
        let e = "mysql://root:pw@db/b"
            .parse::<StoreUrl>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql") && !e.contains("pw"), "{e}");
    }

    #[test]
    fn queue_urls_parse_into_backends() {
        assert!(matches!(
            "embedded://".parse::<QueueUrl>(),
            Ok(QueueUrl::Embedded(p)) if p.as_os_str().is_empty()
        ));
        assert!(matches!(
            "amqp://guest:guest@127.0.0.1:5672/%2f".parse::<QueueUrl>(),
            Ok(QueueUrl::Rabbit(_))
        ));
        assert!(matches!(
            "amqps://h/".parse::<QueueUrl>(),
            Err(BackendUrlError::QueueTls(_))
        ));
        assert!("kafka://x".parse::<QueueUrl>().is_err());
    }

    #[test]
    fn descriptions_name_the_backend_and_hide_the_password() {
        let pg: StoreUrl = "postgres://brevdue:s3cret@db:5432/brevdue".parse().unwrap();
        assert_eq!(
            pg.describe(),
            "PostgreSQL (postgres://brevdue@db:5432/brevdue)"
        );
        assert!(pg.as_url().contains("s3cret"));
        let q: QueueUrl = "amqp://guest:pw@rabbit:5672/%2f".parse().unwrap();
        assert_eq!(q.describe(), "RabbitMQ (amqp://guest@rabbit:5672/%2f)");
        let s = StoreUrl::Sqlite(PathBuf::new()).resolved(Path::new("/d"));
        assert_eq!(s, StoreUrl::Sqlite("/d/brevdue.db".into()));
    }
}
