//! The raw ceilings a load run is measured against, each on its own, in the same run on the same
//! machine: gRPC with no work, sealing, the store alone, the queue alone, and synced appends to
//! the disk the data lives on (the physical limit for durable letters).

use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use anyhow::{Context, Result};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use super::sample_letter;
use super::streams::stream_letters;
use crate::config::{QueueUrl, StoreUrl};
use crate::domain::{Cvr, LetterId, Priority, RecipientId, Route, complete_cvr};
use crate::ingest::pb;
use crate::ingest::pb::letter_gateway_server::{LetterGateway, LetterGatewayServer};
use crate::pki::Pki;
use crate::queue::Delivery;
use crate::seal::{Binding, KekId, KeyRing, body, seal};
use crate::store::NewLetter;

/// Letters per batch in the store and queue ceilings, as the committer's default batch.
const BATCH: usize = 1024;
/// Records per fdatasync in the disk ceiling: about what one commit batch of the store syncs.
const APPENDS_PER_SYNC: usize = 64;

/// One raw ceiling.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Ceiling {
    pub name: String,
    pub per_sec: f64,
}

impl Ceiling {
    pub fn new(name: impl Into<String>, per_sec: f64) -> Self {
        Ceiling {
            name: name.into(),
            per_sec,
        }
    }
}

/// Prints the ceilings and what `figure` (letters/s) is of each.
pub(super) fn print_ratios(label: &str, figure: f64, ceilings: &[Ceiling]) {
    println!("{label}: {figure:.0} letters/s");
    for c in ceilings {
        println!(
            "  {:>6.1} % of {}",
            100.0 * figure / c.per_sec.max(f64::MIN_POSITIVE),
            c.name
        );
    }
}

pub(super) fn sealed_letter(ring: &KeyRing, sender: Cvr, size: usize) -> Result<NewLetter> {
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

fn test_ring() -> Result<KeyRing> {
    Ok(KeyRing::from_keys(KekId(1), [(KekId(1), [3u8; 32])])?)
}

fn loadgen_cvr() -> Result<Cvr> {
    complete_cvr(2_940_347).context("cvr")
}

/// Letters sealed per second on one core (validation and routing left out).
pub(super) fn seal_alone(n: usize, size: usize) -> Result<f64> {
    let ring = test_ring()?;
    let sender = loadgen_cvr()?;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(sealed_letter(&ring, sender, size)?);
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Sealed letters stored per second in batches of [`BATCH`], durable. Each batch is sealed
/// before its clock runs, so only storing is timed, and only one batch is held at a time.
pub(super) async fn store_alone(url: &StoreUrl, n: usize, size: usize) -> Result<f64> {
    let store = crate::store::open(url).await?;
    let ring = test_ring()?;
    let sender = loadgen_cvr()?;
    let mut stored = 0;
    let mut spent = std::time::Duration::ZERO;
    while stored < n {
        let letters: Vec<NewLetter> = (0..BATCH.min(n - stored))
            .map(|_| sealed_letter(&ring, sender, size))
            .collect::<Result<_>>()?;
        let started = Instant::now();
        store.insert_letters(&letters).await?;
        spent += started.elapsed();
        stored += letters.len();
    }
    Ok(n as f64 / spent.as_secs_f64())
}

/// Deliveries queued per second in batches of [`BATCH`], durable (RabbitMQ: confirmed). A
/// RabbitMQ queue gets a prefix of its own, deleted at the end.
pub(super) async fn queue_alone(url: &QueueUrl, n: usize) -> Result<f64> {
    let queue = crate::queue::open(url, true).await?;
    let sender = loadgen_cvr()?;
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
    for chunk in items.chunks(BATCH) {
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

/// A RabbitMQ URL with a prefix of its own, so a ceiling run never mixes with a gateway's
/// queues; an embedded queue in `dir`.
pub(super) fn scratch_queue(given: Option<&QueueUrl>, dir: &Path) -> QueueUrl {
    match given {
        Some(QueueUrl::Rabbit(q)) => QueueUrl::Rabbit(format!(
            "{}?prefix=brevdue-loadgen-{:08x}.",
            q.split('?').next().unwrap_or(q),
            rand::random::<u32>()
        )),
        _ => QueueUrl::Embedded(dir.join("queue-only.db")),
    }
}

/// Records of `size` bytes appended to a file in `dir` per second, with one `fdatasync` every
/// [`APPENDS_PER_SYNC`] records: what the disk itself allows for durable letters.
pub(super) fn synced_appends(dir: &Path, n: usize, size: usize) -> Result<f64> {
    let path = dir.join("appends.dat");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let record = vec![0x5au8; size.max(1)];
    let started = Instant::now();
    for i in 0..n {
        file.write_all(&record)?;
        if (i + 1) % APPENDS_PER_SYNC == 0 || i + 1 == n {
            file.sync_data()?;
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

/// The same streams against a server in this process that answers every letter at once: the
/// transport ceiling (TLS, HTTP/2, protobuf, the client's own cost).
pub(super) async fn grpc_no_work(
    pki: &Pki,
    cert_dir: &Path,
    ids: &[RecipientId],
    (letters, streams): (usize, usize),
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
    let run = stream_letters(
        &[format!("https://{addr}")],
        cert_dir,
        ids,
        letters,
        streams,
        size,
        Arc::new(AtomicU64::new(0)),
    )
    .await;
    stop.cancel();
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "the no-work gRPC server task ended badly");
    }
    Ok(run?.accepted_per_s())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synced_appends_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let rate = synced_appends(dir.path(), 130, 1000).unwrap();
        assert!(rate > 0.0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
