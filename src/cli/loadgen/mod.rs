//! `brevdue loadgen`: durable end-to-end throughput, beside the raw ceilings measured in the same
//! run on the same machine: gRPC with no work, sealing alone, the store alone, the queue alone.
//!
//! Everything runs in this process: a fresh gateway on a temporary data directory (or the store
//! and queue URLs given), senders streaming from the same two cores. The numbers are a
//! measurement, not a test: nothing here asserts a speed.
//!
//! `--scenario flood` measures something else on the same kind of gateway: urgent letters'
//! latency while one sender floods it (see `flood`).

mod flood;
mod gateway;
mod registry;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytesize::ByteSize;
use futures::{Stream, StreamExt};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use super::client;
use crate::config::{QueueUrl, StoreUrl};
use crate::directory::Secrets;
use crate::domain::Route;
use crate::domain::{
    Cvr, Document, Letter, LetterId, MessageUuid, Priority, RecipientId, SenderKind, complete_cvr,
};
use crate::ingest::pb;
use crate::ingest::pb::letter_gateway_server::{LetterGateway, LetterGatewayServer};
use crate::pki::Pki;
use crate::queue::Delivery;
use crate::seal::{Binding, KekId, KeyRing, body, seal};
use crate::store::NewLetter;

/// What `brevdue loadgen` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Durable end-to-end throughput against the raw ceilings of this machine.
    Throughput,
    /// Month-end flood: URGENT letters' accept-to-delivered latency while one sender streams a
    /// large BULK batch, against the idle gateway; the flood's throughput against the sender
    /// alone; memory through the flood; the time its backlog takes to deliver. The queues of a
    /// `--queue` prefix are deleted at the end.
    Flood,
    /// The registry at national scale: a Denmark-sized registry imported by `registry import`
    /// in its own process, a gateway started on it in its own process (start time, memory),
    /// then changes applied while it routes, each batch's visibility timed.
    Registry,
}

#[derive(clap::Args, Clone)]
pub struct LoadgenArgs {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Scenario::Throughput)]
    pub scenario: Scenario,
    /// Letters per measurement (throughput scenario).
    #[arg(long, default_value_t = 20_000)]
    pub letters: usize,
    /// Size of each letter's document.
    #[arg(long, default_value = "10KB")]
    pub size: ByteSize,
    /// Concurrent SubmitBatch streams.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Data directory for the gateway under test [default: a fresh temporary one].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Store URL for the gateway under test (e.g. a scratch `postgres://…` database: the run
    /// writes letters and a synthetic registry into it) [default: SQLite in the data directory].
    #[arg(long)]
    pub store: Option<StoreUrl>,
    /// Queue URL for the gateway under test (e.g. `amqp://…?prefix=loadgen.`) [default: embedded].
    #[arg(long)]
    pub queue: Option<QueueUrl>,
    #[command(flatten)]
    pub flood: flood::FloodArgs,
    #[command(flatten)]
    pub registry: registry::RegistryArgs,
}

struct Measured {
    name: &'static str,
    per_sec: f64,
}

pub async fn run(args: LoadgenArgs) -> Result<()> {
    match args.scenario {
        Scenario::Flood => return flood::run(&args).await,
        Scenario::Registry => return registry::run(&args).await,
        Scenario::Throughput => {}
    }
    let (tmp, root) = gateway::scratch(&args, "brevdue-loadgen")?;
    let size = args.size.as_u64() as usize;
    println!(
        "brevdue loadgen: {} letters of {} per measurement, {} streams, data in {}",
        args.letters,
        args.size.display().si(),
        args.streams,
        root.display()
    );

    let mut ceilings = Vec::new();
    ceilings.push(Measured {
        name: "sealing alone (one core)",
        per_sec: seal_alone(args.letters.min(20_000), size)?,
    });
    // The raw ceilings of the backends the gateway will use, on their own.
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| StoreUrl::Sqlite(tmp.path().join("store-only.db")));
    let queue_url = match &args.queue {
        // A prefix of its own, so the ceiling run never mixes with the gateway's queues.
        Some(QueueUrl::Rabbit(q)) => QueueUrl::Rabbit(format!(
            "{}?prefix=brevdue-loadgen-{:08x}.",
            q.split('?').next().unwrap_or(q),
            rand::random::<u32>()
        )),
        _ => QueueUrl::Embedded(tmp.path().join("queue-only.db")),
    };
    // The gateway under test, with a registry of active citizens and a public sender.
    let config = gateway::config(&root, &args)?;
    let (data, store) = super::admin::open_store(&config).await?;
    let recipients = gateway::citizens();
    let secrets = Secrets::load_or_create(&data.keys())?;
    store
        .import_registry(&secrets.import_of(&recipients, &[])?, "loadgen", &|_| {})
        .await?;
    let sender = complete_cvr(2_940_347).context("cvr")?;
    let pki = Pki::open_or_create(&data.pki())?;
    let cert_dir = gateway::add_sender(
        &*store,
        &pki,
        data.root(),
        (sender, "Loadgen Styrelsen", SenderKind::Public),
        "loadgen-sender",
    )
    .await?;
    let ids: Vec<RecipientId> = recipients.iter().map(|(id, _)| *id).collect();

    ceilings.push(Measured {
        name: "gRPC with no work (TLS, same streams)",
        per_sec: grpc_no_work(&pki, &cert_dir, &ids, &args, size).await?,
    });

    let running = crate::server::start(config).await?;
    let server = format!("https://{}", running.grpc_addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e2e = stream_letters(&server, &cert_dir, &ids, &args, size).await?;
    let counts = store.state_counts().await?;
    running.shutdown().await?;

    // The backends alone, after the gateway is gone: a scratch database given with --store gets
    // these letters too, and they must not look like waiting deliveries to the gateway.
    ceilings.push(Measured {
        name: if store_url.is_embedded() {
            "store alone (SQLite, batches of 1024)"
        } else {
            "store alone (PostgreSQL, batches of 1024)"
        },
        per_sec: store_alone(&store_url, args.letters, size).await?,
    });
    ceilings.push(Measured {
        name: if queue_url.is_embedded() {
            "queue alone (embedded, batches of 1024)"
        } else {
            "queue alone (RabbitMQ, confirms, batches of 1024)"
        },
        per_sec: queue_alone(&queue_url, args.letters).await?,
    });

    println!("\nraw ceilings measured in this run:");
    for c in &ceilings {
        println!("  {:<42} {:>9.0} letters/s", c.name, c.per_sec);
    }
    println!(
        "\nend to end, durable (stored, synced, queued before each receipt): {e2e:.0} letters/s of {}",
        args.size.display().si()
    );
    for c in &ceilings {
        println!("  {:>5.1} % of {}", 100.0 * e2e / c.per_sec, c.name);
    }
    println!(
        "delivered meanwhile: {} to mailboxes, {} still queued at shutdown",
        counts.delivered,
        counts.accepted + counts.scheduled
    );
    let production = !store_url.is_embedded() || !queue_url.is_embedded();
    let (target, setup) = match (size > 50_000, production) {
        (true, _) => (1_500.0, "100 KB letters"),
        (false, true) => (3_000.0, "PostgreSQL + RabbitMQ"),
        (false, false) => (5_000.0, "the embedded default"),
    };
    println!(
        "SPEC §5 target for {setup}: {target:.0} letters/s — {}",
        if e2e >= target { "met" } else { "not met" }
    );
    Ok(())
}

fn sample_letter(id: RecipientId, size: usize) -> Letter {
    let mut content = b"%PDF-1.4\n".to_vec();
    content.resize(size, b'x');
    Letter {
        message_uuid: MessageUuid::random(),
        recipient: id,
        title: "Loadgen letter".into(),
        main_document: Document {
            filename: "a.pdf".into(),
            media_type: "application/pdf".into(),
            content,
        },
        attachments: vec![],
        print_fallback: false,
        priority: Priority::Normal,
        sender_reference: String::new(),
    }
}

fn sealed_letter(ring: &KeyRing, sender: Cvr, size: usize) -> Result<NewLetter> {
    let id: RecipientId = "0101901234".parse()?;
    let letter = sample_letter(id, size);
    let letter_id = LetterId::new();
    let tag = [1u8; 32];
    let lid = letter_id.to_string();
    let content = body::content_digest(&letter);
    let sealed = seal(
        ring,
        &Binding {
            letter_id: &lid,
            sender,
            recipient: &tag,
        },
        body::encode(&letter),
    )?;
    Ok(NewLetter {
        letter_id,
        sender,
        message_uuid: letter.message_uuid,
        recipient_tag: tag,
        fingerprint: body::fingerprint(&letter, &content),
        content_sha256: content,
        route: Route::Mailbox,
        priority: Priority::Normal,
        sealed,
        accepted_at_ms: crate::clock::now_ms(),
        not_before_ms: None,
        batch_id: None,
        sender_reference: String::new(),
    })
}

fn seal_alone(n: usize, size: usize) -> Result<f64> {
    let ring = KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])])?;
    let sender = complete_cvr(2_940_347).context("cvr")?;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(sealed_letter(&ring, sender, size)?);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn store_alone(url: &StoreUrl, n: usize, size: usize) -> Result<f64> {
    let store = crate::store::open(url).await?;
    let ring = KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])])?;
    let sender = complete_cvr(2_940_347).context("cvr")?;
    let letters: Vec<NewLetter> = (0..n)
        .map(|_| sealed_letter(&ring, sender, size))
        .collect::<Result<_>>()?;
    let started = Instant::now();
    for chunk in letters.chunks(1024) {
        store.insert_letters(chunk).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn queue_alone(url: &QueueUrl, n: usize) -> Result<f64> {
    let queue = crate::queue::open(url, true).await?;
    let sender = complete_cvr(2_940_347).context("cvr")?;
    let items: Vec<Delivery> = (0..n)
        .map(|_| Delivery {
            letter_id: LetterId::new(),
            sender,
            route: Route::Mailbox,
            priority: Priority::Normal,
            not_before_ms: 0,
            enqueued_at_ms: crate::clock::now_ms(),
        })
        .collect();
    let started = Instant::now();
    for chunk in items.chunks(1024) {
        queue.enqueue(chunk).await?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    if let QueueUrl::Rabbit(url) = url {
        crate::queue::RabbitQueue::open(url)
            .await?
            .delete_topology()
            .await?;
    }
    Ok(rate)
}

/// Streams `args.letters` over `args.streams` concurrent streams; letters/s of receipts.
async fn stream_letters(
    server: &str,
    cert_dir: &Path,
    ids: &[RecipientId],
    args: &LoadgenArgs,
    size: usize,
) -> Result<f64> {
    let per_stream = args.letters / args.streams.max(1);
    let ids = Arc::new(ids.to_vec());
    let mut clients = Vec::new();
    for _ in 0..args.streams.max(1) {
        clients.push(client::connect(server, cert_dir).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (s, mut c) in clients.into_iter().enumerate() {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let letters = (0..per_stream).map(move |i| {
                let id = ids[(s * per_stream + i) % ids.len()];
                ((), crate::ingest::letter_to_pb(&sample_letter(id, size)))
            });
            let mut accepted = 0u64;
            client::stream_batch(&mut c, letters, |_, r| {
                if r.outcome != pb::Outcome::Rejected as i32 {
                    accepted += 1;
                }
            })
            .await
            .map(|()| accepted)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    if total < (per_stream * args.streams.max(1)) as u64 {
        println!("  (only {total} letters were accepted)");
    }
    Ok(total as f64 / secs)
}

/// The same streams against a server that answers every letter at once: the transport ceiling.
async fn grpc_no_work(
    pki: &Pki,
    cert_dir: &Path,
    ids: &[RecipientId],
    args: &LoadgenArgs,
    size: usize,
) -> Result<f64> {
    let (cert, key) = pki.server_identity()?;
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .client_ca_root(Certificate::from_pem(pki.ca_pem()?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let s = stop.clone();
    let server = tokio::spawn(
        Server::builder()
            .tls_config(tls)?
            .initial_connection_window_size(Some(16 << 20))
            .initial_stream_window_size(Some(8 << 20))
            .add_service(LetterGatewayServer::new(NoWork).max_decoding_message_size(256 << 20))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async move { s.cancelled().await },
            ),
    );
    let rate = stream_letters(&format!("https://{addr}"), cert_dir, ids, args, size).await;
    stop.cancel();
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "the no-work gRPC server task ended badly");
    }
    rate
}

struct NoWork;

type ReceiptStream = Pin<Box<dyn Stream<Item = Result<pb::Receipt, Status>> + Send>>;

#[tonic::async_trait]
impl LetterGateway for NoWork {
    async fn submit_letter(&self, r: Request<pb::Letter>) -> Result<Response<pb::Receipt>, Status> {
        Ok(Response::new(pb::Receipt {
            message_uuid: r.into_inner().message_uuid,
            outcome: pb::Outcome::AcceptedMailbox as i32,
            ..Default::default()
        }))
    }

    type SubmitBatchStream = ReceiptStream;

    async fn submit_batch(
        &self,
        r: Request<Streaming<pb::Letter>>,
    ) -> Result<Response<ReceiptStream>, Status> {
        let out = r.into_inner().map(|l| {
            l.map(|l| pb::Receipt {
                message_uuid: l.message_uuid,
                outcome: pb::Outcome::AcceptedMailbox as i32,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn get_status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::LetterStatus>, Status> {
        Err(Status::unimplemented("no work"))
    }

    async fn check_recipient(
        &self,
        _: Request<pb::RecipientQuery>,
    ) -> Result<Response<pb::Reachability>, Status> {
        Err(Status::unimplemented("no work"))
    }

    type WatchEventsStream = Pin<Box<dyn Stream<Item = Result<pb::LetterEvent, Status>> + Send>>;

    async fn watch_events(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        Err(Status::unimplemented("no work"))
    }

    async fn get_batch(
        &self,
        _: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchStatus>, Status> {
        Err(Status::unimplemented("no work"))
    }

    async fn cancel_letter(
        &self,
        _: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::LetterStatus>, Status> {
        Err(Status::unimplemented("no work"))
    }

    async fn cancel_batch(
        &self,
        _: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchStatus>, Status> {
        Err(Status::unimplemented("no work"))
    }

    async fn list_letters(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        Err(Status::unimplemented("no work"))
    }
}
