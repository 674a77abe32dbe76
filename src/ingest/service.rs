//! The `LetterGateway` service: the caller (identified at the door), extract, call the
//! pipeline, convert.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

use crate::admission::Admission;
use crate::config::TransportConfig;
use crate::domain::{RecipientId, RejectReason};
use crate::pipeline::Gateway;
use crate::route::Decision;
use crate::store::LetterKey;
use crate::telemetry;

use super::batch::{self, Batch, letter_bytes, letter_priority};
use super::convert::{draft_from_letter, reach_to_pb, receipt_to_pb, status_to_pb};
use super::door::{DoorLayer, MethodLimits};
use super::frames::{Budget, Ledger};
use super::identity::{authenticate, caller};
use super::pb;
use super::pb::letter_gateway_server::{LetterGateway, LetterGatewayServer};
use super::status::RequestError;

/// Room on the wire for a letter's envelope (title, names, MeMo framing) above the document
/// limit: a letter between the limit and this is read and rejected with the exact excess.
const ENVELOPE: usize = 4 << 20;

pub struct GatewayService {
    gateway: Arc<Gateway>,
    admission: Arc<Admission>,
    /// Cancelled when the gateway starts shutting down: open streams stop taking letters.
    shutdown: CancellationToken,
    /// Letters of one stream in the pipeline at once; further letters wait in the transport
    /// (HTTP/2 flow control), so a fast sender is slowed instead of buffered.
    in_flight: usize,
    /// The most a letter may take on the wire; the door skips larger ones unread.
    wire_limit: u64,
}

type ReceiptStream = Pin<Box<dyn Stream<Item = Result<pb::Receipt, Status>> + Send>>;

/// What the door learned about a call's letters (nothing when no door was in front).
fn ledger<T>(request: &Request<T>) -> Arc<Ledger> {
    request
        .extensions()
        .get::<Arc<Ledger>>()
        .cloned()
        .unwrap_or_default()
}

#[tonic::async_trait]
impl LetterGateway for GatewayService {
    async fn submit_letter(
        &self,
        request: Request<pb::Letter>,
    ) -> Result<Response<pb::Receipt>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        telemetry::letter_received(&sender);
        let taken = ledger(&request).take(0);
        let letter = request.into_inner();
        if let Some(size) = taken.oversized {
            let receipt =
                self.gateway
                    .skipped_too_large(&sender, letter.message_uuid, size, self.wire_limit);
            return Ok(Response::new(receipt_to_pb(receipt)));
        }
        let _admitted = self
            .admission
            .admit(&sender, letter_priority(&letter), letter_bytes(&letter))
            .await?;
        let receipt = self
            .gateway
            .submit(&sender, draft_from_letter(letter))
            .await
            .map_err(Status::from)?;
        drop(taken.held);
        Ok(Response::new(receipt_to_pb(receipt)))
    }

    type SubmitBatchStream = ReceiptStream;

    async fn submit_batch(
        &self,
        request: Request<Streaming<pb::Letter>>,
    ) -> Result<Response<Self::SubmitBatchStream>, Status> {
        let caller = caller(&request)?;
        let slot = self.admission.open_stream(caller.sender.cvr)?;
        let batch = Batch {
            gateway: self.gateway.clone(),
            admission: self.admission.clone(),
            caller,
            slot,
            ledger: ledger(&request),
            shutdown: self.shutdown.clone(),
            in_flight: self.in_flight,
            wire_limit: self.wire_limit,
        };
        let receipts = batch::receipts(batch, request.into_inner());
        Ok(Response::new(Box::pin(receipts)))
    }

    async fn get_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::LetterStatus>, Status> {
        let sender = authenticate(&self.gateway.directory, &request)?;
        self.admission.query(&sender)?;
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
        self.admission.query(&sender)?;
        telemetry::recipient_checked(&sender);
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

/// The gRPC server type: every service behind the door.
pub type GrpcRouter = Router<tower_layer::Stack<DoorLayer, tower_layer::Identity>>;

/// What the gRPC server is built from.
pub struct GrpcSettings<'a> {
    pub tls: &'a TlsMaterial,
    pub max_letter_bytes: usize,
    pub in_flight_per_stream: usize,
    /// `admission.max_bytes_in_flight`: what decoded letters may hold at once.
    pub max_bytes_in_flight: u64,
    pub transport: &'a TransportConfig,
}

/// The gRPC server with the gateway, operations, health and reflection services, over mutual TLS, every
/// call through the door ([`super::door`]).
///
/// Client certificates are verified against the gateway CA in the handshake when presented.
/// A connection without one is still let through the handshake, on purpose: the door then
/// refuses its every call but health with a clear UNAUTHENTICATED before reading a byte of
/// the body, where a handshake failure would leave a sender's integrator with an opaque TLS
/// alert and probes without a way in.
pub async fn grpc_server(
    gateway: Arc<Gateway>,
    admission: Arc<Admission>,
    console: Arc<crate::operators::Console>,
    shutdown: CancellationToken,
    settings: GrpcSettings<'_>,
) -> Result<GrpcRouter, tonic::transport::Error> {
    let GrpcSettings {
        tls,
        max_letter_bytes,
        in_flight_per_stream,
        max_bytes_in_flight,
        transport,
    } = settings;
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
        .client_auth_optional(true)
        .timeout(transport.tls_handshake_timeout);
    let wire_limit = max_letter_bytes.saturating_add(ENVELOPE);
    let directory = gateway.directory.clone();
    let door = DoorLayer::new(
        gateway.directory.clone(),
        console.roster.clone(),
        MethodLimits {
            letter: wire_limit,
            question: transport.question_message_limit_usize(),
        },
        Budget::new(max_bytes_in_flight),
    );
    let service = LetterGatewayServer::new(GatewayService {
        gateway,
        admission,
        shutdown,
        in_flight: in_flight_per_stream.max(1),
        wire_limit: wire_limit as u64,
    })
    // The door enforces each method's limit before this; tonic's own check stays behind it.
    .max_decoding_message_size(wire_limit.saturating_add(1024));
    let mut builder = Server::builder()
        .tls_config(tls_config)?
        .initial_connection_window_size(Some(transport.connection_window_u32()))
        .initial_stream_window_size(Some(transport.stream_window_u32()))
        .max_concurrent_streams(Some(transport.max_concurrent_streams))
        .http2_max_pending_accept_reset_streams(Some(transport.max_pending_reset_streams))
        .http2_max_local_error_reset_streams(Some(transport.max_local_error_reset_streams))
        .http2_max_header_list_size(Some(transport.max_header_list_size_u32()))
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(transport.keepalive_interval))
        .http2_keepalive_timeout(Some(transport.keepalive_timeout))
        .layer(door);
    let router = builder
        .add_service(health_service)
        .add_service(service)
        .add_service(super::registry_admin::RegistryAdminService::server(
            directory,
            console.clone(),
        ))
        .add_service(super::operations::OperationsService::server(console));
    Ok(match reflection {
        Ok(r) => router.add_service(r),
        Err(e) => {
            tracing::warn!(error = %e, "server reflection unavailable");
            router
        }
    })
}
