//! The shared harness for end-to-end tests: a real gateway (in-process on port 0, or the built
//! binary) on a fresh data directory, a known registry, three senders with certificates, and
//! clients that speak gRPC over mutual TLS exactly as a sender's system would.
#![allow(dead_code)]

pub mod backends;
pub mod delivery;
pub mod follow;
pub mod operators;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::time::Duration;

use brevdue::cli::client::{self, Client};
use brevdue::config::Config;
use brevdue::domain::SenderKind;
use brevdue::ingest::pb;
use brevdue::server::{self, Running};
use tempfile::TempDir;

pub const AUTHORITY: &str = "29403473"; // public
pub const BANK: &str = "10103940"; // private
pub const OTHER_BANK: &str = "25313763"; // private

pub const ACTIVE_SUBSCRIBED: &str = "0101901111"; // active, subscribed to BANK
pub const ACTIVE_OTHER: &str = "0101902222"; // active, subscribed to OTHER_BANK only
pub const EXEMPT_SUBSCRIBED: &str = "0101903333"; // exempt, subscribed to BANK
pub const EXEMPT: &str = "0101904444"; // exempt, no subscriptions
pub const CLOSED: &str = "0101905555"; // closed (was subscribed to BANK)
pub const UNKNOWN: &str = "0101909999"; // not in the registry
pub const COMPANY: &str = "61126228"; // active company, subscribed to BANK
pub const COMPANY_CLOSED: &str = "10150817"; // ceased company

/// A citizen born ten years before today: under 15, never registered.
pub fn child_cpr() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    let born = d.replace_year(d.year() - 10).unwrap_or(d);
    format!(
        "{:02}{:02}{:02}4{:03}",
        born.day(),
        born.month() as u8,
        born.year() % 100,
        123
    )
}

/// Which store and queue a test's gateway uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite and the embedded queue in the data directory.
    Embedded,
    /// PostgreSQL (a fresh database) and RabbitMQ (a queue prefix of its own).
    Production,
}

/// Runs an `async fn(Backend)` test once per backend pair, as `<name>::embedded` and
/// `<name>::postgres_rabbitmq`.
#[macro_export]
macro_rules! on_every_backend {
    ($test:ident) => {
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$test($crate::common::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_rabbitmq() {
                super::$test($crate::common::Backend::Production).await
            }
        }
    };
}

pub struct Harness {
    pub running: Option<Running>,
    /// Everything outside the data directory: certificates, CSV files, reports.
    pub outside: TempDir,
    pub data: TempDir,
    pub config: Config,
    pub backend: Backend,
    /// The production backends' per-test database and queues, removed on drop.
    pub postgres: Option<backends::PgDatabase>,
    queues: Option<backends::DeleteQueues>,
}

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The gateway's own log in the test's output, when asked for: BREVDUE_TEST_LOG takes a
    // filter as RUST_LOG does (e.g. `brevdue=debug`).
    if let Ok(filter) = std::env::var("BREVDUE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

impl Harness {
    /// A data directory with the registry and senders, and a gateway running on it.
    pub async fn start() -> Harness {
        Harness::start_on(Backend::Embedded).await
    }

    pub async fn start_on(backend: Backend) -> Harness {
        let mut h = Harness::prepare_on(backend).await;
        h.boot().await;
        h
    }

    pub async fn prepare() -> Harness {
        Harness::prepare_on(Backend::Embedded).await
    }

    /// The data directory with the registry and senders, no gateway yet.
    pub async fn prepare_on(backend: Backend) -> Harness {
        init();
        let outside = tempfile::tempdir().expect("tempdir");
        let data = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            admin_listen: "127.0.0.1:0".parse().expect("addr"),
            refresh_interval: Duration::from_millis(100),
            shutdown_grace: Duration::from_secs(10),
            ..Config::default()
        };
        config.delivery.idle_poll = Duration::from_millis(50);
        let (postgres, queues) = match backend {
            Backend::Embedded => (None, None),
            Backend::Production => {
                let db = backends::PgDatabase::create().await;
                let (queue_url, queues) = backends::rabbit_prefix();
                config.store = Some(db.url.parse().expect("a postgres URL"));
                config.queue = Some(queue_url.parse().expect("an amqp URL"));
                (Some(db), Some(queues))
            }
        };
        let h = Harness {
            outside,
            data,
            config,
            running: None,
            backend,
            postgres,
            queues,
        };
        let recipients = h.outside.path().join("recipients.csv");
        std::fs::write(
            &recipients,
            format!(
                "id_type,id,status\nCPR,{ACTIVE_SUBSCRIBED},active\nCPR,{ACTIVE_OTHER},active\n\
                 CPR,{EXEMPT_SUBSCRIBED},exempt\nCPR,{EXEMPT},exempt\nCPR,{CLOSED},closed\n\
                 CVR,{COMPANY},active\nCVR,{COMPANY_CLOSED},closed\n"
            ),
        )
        .expect("write");
        let subscriptions = h.outside.path().join("subscriptions.csv");
        std::fs::write(
            &subscriptions,
            format!(
                "recipient_id,sender_cvr\n{ACTIVE_SUBSCRIBED},{BANK}\n{ACTIVE_OTHER},{OTHER_BANK}\n\
                 {EXEMPT_SUBSCRIBED},{BANK}\n{CLOSED},{BANK}\n{COMPANY},{BANK}\n"
            ),
        )
        .expect("write");
        brevdue::cli::registry::registry_import(&h.config, &recipients, Some(&subscriptions))
            .await
            .expect("registry import");
        for (cvr, name, kind) in [
            (AUTHORITY, "Test Styrelsen", SenderKind::Public),
            (BANK, "Test Bank A/S", SenderKind::Private),
            (OTHER_BANK, "Anden Bank A/S", SenderKind::Private),
        ] {
            brevdue::cli::admin::senders_add(
                &h.config,
                cvr.parse().expect("cvr"),
                name,
                kind,
                &h.cert_dir(cvr),
            )
            .await
            .expect("senders add");
        }
        h
    }

    pub fn cert_dir(&self, cvr: &str) -> PathBuf {
        self.outside.path().join("senders").join(cvr)
    }

    pub async fn boot(&mut self) {
        let running = server::start(self.config.clone())
            .await
            .expect("gateway starts");
        self.config.listen = running.grpc_addr;
        self.config.admin_listen = running.admin_addr;
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("clean shutdown");
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    /// `serve` arguments for this harness's data directory and backends.
    pub fn serve_args(&self, grpc: u16, admin: u16) -> Vec<String> {
        let mut args = vec![
            "serve".to_string(),
            "--data-dir".to_string(),
            self.data.path().display().to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{grpc}"),
            "--admin-listen".to_string(),
            format!("127.0.0.1:{admin}"),
        ];
        if self.backend == Backend::Production {
            args.extend(["--store".to_string(), self.config.store_url().as_url()]);
            args.extend(["--queue".to_string(), self.config.queue_url().as_url()]);
        }
        args
    }

    pub fn server_url(&self) -> String {
        format!("https://{}", self.config.listen)
    }

    pub async fn client(&self, cvr: &str) -> Client {
        connect(&self.server_url(), &self.cert_dir(cvr)).await
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.config.admin_listen)
    }

    pub async fn store(&self) -> std::sync::Arc<dyn brevdue::store::Store> {
        brevdue::store::open(&self.config.store_url())
            .await
            .expect("store opens")
    }

    /// The operator port's `/metrics` page (the whole HTTP answer).
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.config.admin_listen)
            .await
            .expect("admin port");
        tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .expect("request");
        let mut out = String::new();
        tcp.read_to_string(&mut out).await.expect("response");
        out
    }

    /// Letters in the mailboxes of these recipients, all together.
    pub async fn in_mailboxes(&self, recipients: &[&str]) -> u64 {
        let secrets = brevdue::directory::Secrets::load_or_create(&self.data.path().join("keys"))
            .expect("secrets");
        let store = self.store().await;
        let mut n = 0;
        for id in recipients {
            n += store
                .mailbox_count(&secrets.pseudonyms.tag(&id.parse().expect("id")))
                .await
                .expect("count");
        }
        n
    }

    /// Waits until no letter is waiting for delivery.
    /// Waits until the store holds at least `n` letters in any state (a deadline only fails
    /// the test).
    pub async fn wait_for_stored(&self, n: u64) -> brevdue::store::StateCounts {
        let store = self.store().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = store.state_counts().await.expect("counts");
            let all = c.accepted + c.scheduled + c.delivered + c.print_spooled + c.failed;
            if all >= n {
                return c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {all} of {n} letters were stored after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the broker holds of this harness's queues (empty on the embedded backend), for a
    /// failure message: where waiting letters are when delivery stalls.
    fn broker_view(&self) -> String {
        let Some(queues) = &self.queues else {
            return String::new();
        };
        let prefix = backends::prefix_of(&queues.0);
        let listed = backends::try_rabbitmqctl(&[
            "-q",
            "list_queues",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ]);
        let table = match listed {
            Ok(out) => out
                .lines()
                .filter(|l| l.trim_start().starts_with(prefix))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => e,
        };
        format!("\nbroker queues (name, ready, unacknowledged, consumers):\n{table}")
    }

    pub async fn wait_for_delivery(&self) -> brevdue::store::StateCounts {
        let store = self.store().await;
        // A generous deadline: it only fails the test, and a shared machine under load (or a
        // broker just restarted) can take a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let c = store.state_counts().await.expect("counts");
            if c.accepted + c.scheduled == 0 {
                return c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "letters were still waiting for delivery after 60 s: {c:?}{}",
                self.broker_view()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub async fn connect(server: &str, cert_dir: &Path) -> Client {
    let mut last = None;
    for _ in 0..100 {
        match client::connect(server, cert_dir).await {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {server}: {last:?}");
}

/// A valid letter to `recipient` (a CPR or CVR number).
pub fn letter(recipient: &str, title: &str, content: &[u8]) -> pb::Letter {
    let id_type = if recipient.len() == 8 {
        pb::IdType::Cvr
    } else {
        pb::IdType::Cpr
    };
    pb::Letter {
        message_uuid: uuid::Uuid::new_v4().to_string(),
        recipient: Some(pb::RecipientId {
            r#type: id_type as i32,
            id: recipient.to_string(),
        }),
        title: title.to_string(),
        main_document: Some(pb::Document {
            filename: "brev.pdf".into(),
            media_type: "application/pdf".into(),
            content: content.to_vec(),
        }),
        attachments: vec![],
        print_fallback: false,
        priority: pb::Priority::Normal as i32,
        sender_reference: String::new(),
        memo_xml: vec![],
        batch_id: String::new(),
    }
}

pub fn outcome(r: &pb::Receipt) -> pb::Outcome {
    pb::Outcome::try_from(r.outcome).expect("known outcome")
}

pub fn reason(r: &pb::Receipt) -> pb::RejectReason {
    pb::RejectReason::try_from(r.reason).expect("known reason")
}

/// Streams letters and returns one receipt per letter, in order.
pub async fn stream(client: &mut Client, letters: Vec<pb::Letter>) -> Vec<pb::Receipt> {
    let mut out = Vec::new();
    client::stream_batch(client, letters.into_iter().map(|l| ((), l)), |_, r| {
        out.push(r)
    })
    .await
    .expect("batch streams");
    out
}

/// Letter ids and the number of times each appears in a published print batch.
pub fn spooled_letters(data_dir: &Path) -> std::collections::HashMap<String, usize> {
    let mut seen = std::collections::HashMap::new();
    let spool = data_dir.join("spool").join("print");
    for batch in std::fs::read_dir(&spool).expect("spool").flatten() {
        if batch.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for letter in std::fs::read_dir(batch.path()).expect("batch").flatten() {
            if letter.path().is_dir() {
                *seen
                    .entry(letter.file_name().to_string_lossy().to_string())
                    .or_insert(0) += 1;
            }
        }
    }
    seen
}

/// A gateway process started by a test; killed if the test ends (or panics) without stopping it.
pub struct ServeProcess(pub Option<std::process::Child>);

impl ServeProcess {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Hands the process over to the test to wait for; the guard no longer kills it.
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("a running process")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What `brevdue serve` prints on stderr once it listens.
const LISTENING: &str = "brevdue gateway on https://";

/// Starts a `brevdue serve` command whose arguments say `--listen 127.0.0.1:0 --admin-listen
/// 127.0.0.1:0` and returns it with its gRPC URL, read from the line it prints once it listens.
/// The gateway picks its own ports, so no other process can take them between a test choosing
/// a port and the gateway binding it. Everything else it prints goes on to the test's stderr.
pub fn spawn_serve(mut command: std::process::Command) -> (ServeProcess, String) {
    use std::io::BufRead;
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let guard = ServeProcess(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            match line.strip_prefix(LISTENING) {
                Some(rest) => {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(format!("https://{addr}"));
                }
                None => eprintln!("{line}"),
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(url) => (guard, url),
        Err(_) => panic!("the gateway did not say where it listens within 60 s (did it start?)"),
    }
}

/// Sends SIGTERM to a gateway process.
pub fn sigterm(child: &ServeProcess) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}
