//! The production backends for tests: a fresh PostgreSQL database and a RabbitMQ queue prefix
//! per test, removed when the test ends, failed or not. A server that is not running fails the
//! test with the command that starts it; nothing is ever skipped.

use std::time::Duration;

use brevdue::queue::RabbitQueue;
use sqlx::Connection;

pub const START_RABBITMQ: &str =
    "start it with `rabbitmq-server -detached` then `rabbitmqctl -q await_startup --timeout 60`";

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("BREVDUE_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_string())
}

/// A database of its own for one test; dropped (connections and all) when this is dropped,
/// which happens on unwinding too.
pub struct PgDatabase {
    admin: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create() -> PgDatabase {
        let admin = admin_url();
        let mut conn =
            match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&admin))
                .await
            {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => not_reachable(&admin, &e.to_string()),
                Err(_) => not_reachable(&admin, "no answer within 5 s"),
            };
        let name = format!("brevdue_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base.to_string())
            .expect("admin URL names a database");
        PgDatabase {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

fn not_reachable(url: &str, why: &str) -> ! {
    panic!(
        "PostgreSQL is not reachable at {url} ({why}). The PostgreSQL store tests need it: start \
         it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         (or point BREVDUE_TEST_POSTGRES at another server) and run the tests again."
    )
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop is synchronous and may run while the test's runtime unwinds: use a runtime of
        // its own on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test database {} was not dropped", self.name);
        }
    }
}

/// Deletes a RabbitMQ prefix's queues when dropped, also when the test panicked. Runs on a
/// thread of its own with its own runtime, since `Drop` cannot await.
pub struct DeleteQueues(pub String);

impl Drop for DeleteQueues {
    fn drop(&mut self) {
        let url = self.0.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                match RabbitQueue::open(&url).await {
                    Ok(q) => q.delete_topology().await.map(|_| ()),
                    Err(e) => Err(e),
                }
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not delete the test queues: {e}");
        }
    }
}

pub fn amqp_base() -> String {
    std::env::var("BREVDUE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_string())
}

/// A queue URL with a prefix of its own, and the guard that deletes its queues.
pub fn rabbit_prefix() -> (String, DeleteQueues) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let url = format!("{}?prefix=brevdue-test-{}.", amqp_base(), &id[..12]);
    (url.clone(), DeleteQueues(url))
}

/// The queue prefix a test queue URL names (`…?prefix=NAME`).
pub fn prefix_of(url: &str) -> &str {
    url.rsplit_once("prefix=")
        .map(|(_, p)| p)
        .expect("the test queue URL names a prefix")
}

/// The queues on the broker whose names start with `prefix`, as `rabbitmqctl` lists them (AMQP
/// cannot list queues).
pub fn queues_named(prefix: &str) -> Vec<String> {
    rabbitmqctl(&["-q", "list_queues", "name"])
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Runs `rabbitmqctl` on this machine's broker; its output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    try_rabbitmqctl(args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`rabbitmqctl`], with a failure as text (for a failure message that must not panic itself).
pub fn try_rabbitmqctl(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .map_err(|e| format!("rabbitmqctl is needed for this test: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "rabbitmqctl {args:?}: {}; {START_RABBITMQ}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
