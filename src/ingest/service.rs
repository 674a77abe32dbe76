//! The `LetterGateway` service: authenticate, extract, call the pipeline, convert.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::admission::Admission;
use crate::config::TransportConfig;
use crate::domain::{Priority, RecipientId, RejectReason};
use crate::pipeline::{Gateway, SubmitError};
use crate::route::Decision;
use crate::store::LetterKey;
use crate::telemetry;

use super::convert::{draft_from_letter, reach_to_pb, receipt_to_pb, status_to_pb};
use super::identity::authenticate;
use super::pb;
use super::pb::letter_gateway_server::{LetterGateway, LetterGatewayServer};
use super::status::RequestError;

pub struct GatewayService {
    gateway: Arc<Gateway>,
    admission: Arc<Admission>,
    /// Cancelled when the gateway starts shutting down: open streams stop taking letters.
    shutdown: CancellationToken,
    /// Letters of one stream in the pipeline at once; further letters wait in the transport
    /// (HTTP/2 flow control), so a fast sender is slowed instead of buffered.
    in_flight: usize,
}

/// What a letter weighs in the pipeline: its encoded size, which is what it occupies in memory
/// once decoded.
fn letter_bytes(letter: &pb::Letter) -> usize {
    prost::Message::encoded_len(letter)
}

fn letter_priority(letter: &pb::Letter) -> Priority {
    match pb::Priority::try_from(letter.priority) {
        Ok(pb::Priority::Urgent) => Priority::Urgent,
        Ok(pb::Priority::Bulk) => Priority::Bulk,
        _ => Priority::Normal,
    }
}

/// Keeps the open-streams gauge right however a stream ends.
struct StreamGuard;

impl StreamGuard {
    fn new() -> Self {
        telemetry::stream_opened();
        StreamGuard
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        telemetry::stream_closed();
    }
}

type ReceiptStream = Pin<Box<dyn Stream<Item = Result<pb::Receipt, Status>> + Send>>;

#[tonic::async_trait]
impl LetterGateway for GatewayService {
    async fn submit_letter(
        &self,
        request: Request<pb::Letter>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        telemetry::letter_received(&sender);
        let letter = request.into_inner();
        let _admitted = self
            .admission
            .admit(&sender, letter_priority(&letter), letter_bytes(&letter))
            .await?;
        let receipt = self
            .gateway
            .submit(&sender, draft_from_letter(letter))
            .await
            .map_err(Status::from)?;
        Ok(Response::new(receipt_to_pb(receipt)))
    }

    type SubmitBatchStream = ReceiptStream;

    async fn submit_batch(
        &self,
        request: Request<Streaming<pb::Letter>>,
    ) -> Result<Response<Self::SubmitBatchStream>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        let slot = self.admission.open_stream()?;
        let gateway = self.gateway.clone();
        let admission = self.admission.clone();
        let cvr = sender.cvr;
        let guard = StreamGuard::new();
        // On shutdown the stream stops reading: letters already read are finished and
        // receipted, then the stream ends UNAVAILABLE so the sender resends the rest.
        let shutdown = self.shutdown.clone();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut_when_stopping = cut.clone();
        let stopping = async move {
            shutdown.cancelled().await;
            cut_when_stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        };
        let receipts = request
            .into_inner()
            .take_until(stopping)
            // One letter at a time through admission, before it joins the letters in flight:
            // while a letter waits here the stream reads no further, which is the back-pressure
            // (HTTP/2 flow control then holds the client).
            .then(move |item| {
                let gateway = gateway.clone();
                let admission = admission.clone();
                let fallback = sender.clone();
                async move {
                    let letter = item?;
                    // The sender's limits as they are now: an operator's change reaches streams
                    // that are already open.
                    let sender = gateway.directory.sender(cvr).unwrap_or(fallback);
                    telemetry::letter_received(&sender);
                    let admitted = admission
                        .wait(&sender, letter_priority(&letter), letter_bytes(&letter))
                        .await;
                    Ok::<_, Status>((gateway, sender, letter, admitted))
                }
            })
            .map(|item| async move {
                match item {
                    Ok((gateway, sender, letter, admitted)) => {
                        let receipt = gateway
                            .submit(&sender, draft_from_letter(letter))
                            .await
                            .map(receipt_to_pb)
                            .map_err(Status::from);
                        drop(admitted);
                        receipt
                    }
                    Err(status) => Err(Status::from(RequestError::MalformedStream(
                        status.message().to_string(),
                    ))),
                }
            })
            .buffered(self.in_flight)
            .chain(
                futures::stream::once(async move { cut.load(std::sync::atomic::Ordering::SeqCst) })
                    .filter_map(|was_cut| async move {
                        was_cut.then(|| Err(Status::from(SubmitError::ShuttingDown)))
                    }),
            )
            .map(move |r| {
                let _ = (&guard, &slot);
                r
            });
        Ok(Response::new(Box::pin(receipts)))
    }

    async fn get_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::LetterStatus>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        let key = match request.into_inner().key {
            Some(pb::status_request::Key::LetterId(id)) => LetterKey::LetterId(
                id.parse()
                    .map_err(|_| RequestError::BadLetterId(id.clone()))?,
            ),
            Some(pb::status_request::Key::MessageUuid(u)) => LetterKey::MessageUuid(
                u.parse()
                    .map_err(|_| RequestError::BadMessageUuid(u.clone()))?,
            ),
            None => {
                return Err(RequestError::MissingKey.into());
            }
        };
        match self
            .gateway
            .status(&sender, key)
            .await
            .map_err(Status::from)?
        {
            Some(record) => Ok(Response::new(status_to_pb(record))),
            None => Err(RequestError::NotFound.into()),
        }
    }

    async fn check_recipient(
        &self,
        request: Request<pb::RecipientQuery>,
    ) -> Result<Response<pb::Reachability>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        let q = request.into_inner();
        let draft = draft_from_letter(pb::Letter {
            recipient: q.recipient,
            ..Default::default()
        });
        let parsed = match draft.recipient_type {
            Some(t) => RecipientId::parse_as(t, &draft.recipient_id),
            None => RecipientId::detect(&draft.recipient_id),
        };
        let decision = match parsed {
            Ok(id) => self.gateway.check(&sender, &id, q.print_fallback),
            Err(_) => Decision::Reject(RejectReason::InvalidRecipientId),
        };
        Ok(Response::new(reach_to_pb(decision)))
    }

    type WatchEventsStream = super::follow::EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        super::follow::watch_events(&self.gateway, &self.shutdown, request).await
    }

    async fn get_batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchStatus>, Status> {
        super::follow::get_batch(&self.gateway, request).await
    }

    async fn cancel_letter(
        &self,
        request: Request<pb::CancelRequest>,
    ) -> Result<Response<pb::LetterStatus>, Status> {
        super::follow::cancel_letter(&self.gateway, request).await
    }

    async fn cancel_batch(
        &self,
        request: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchStatus>, Status> {
        super::follow::cancel_batch(&self.gateway, request).await
    }

    async fn list_letters(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        super::follow::list_letters(&self.gateway, request).await
    }
}

/// TLS material for the gRPC port.
pub struct TlsMaterial {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// The gRPC server with the gateway, health and reflection services, over mutual TLS. Client
/// certificates are verified against the gateway CA when presented; they are optional at the
/// TLS layer so health probes can connect, and every gateway call refuses a caller without one.
pub async fn grpc_server(
    gateway: Arc<Gateway>,
    admission: Arc<Admission>,
    shutdown: CancellationToken,
    tls: &TlsMaterial,
    max_letter_bytes: usize,
    in_flight_per_stream: usize,
    transport: &TransportConfig,
) -> Result<Router, tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<LetterGatewayServer<GatewayService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1();
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.ca_pem))
        .client_auth_optional(true);
    let service = LetterGatewayServer::new(GatewayService {
        gateway,
        admission,
        shutdown,
        in_flight: in_flight_per_stream.max(1),
    })
    // Room for the largest letter the limits allow plus its envelope; anything larger than
    // the limit but under this gets a TOO_LARGE receipt instead of a transport error.
    .max_decoding_message_size(max_letter_bytes.saturating_add(4 << 20));
    let mut builder = Server::builder()
        .tls_config(tls_config)?
        .initial_connection_window_size(Some(transport.connection_window_u32()))
        .initial_stream_window_size(Some(transport.stream_window_u32()))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(transport.keepalive_interval));
    let router = builder.add_service(health_service).add_service(service);
    Ok(match reflection {
        Ok(r) => router.add_service(r),
        Err(e) => {
            tracing::warn!(error = %e, "server reflection unavailable");
            router
        }
    })
}
