//! The door: every call on the gRPC port passes here, after the TLS handshake and before tonic
//! reads a byte of its body.
//!
//! It decides who is calling from the client certificate alone ([`super::identity`]), so an
//! anonymous, unregistered or suspended caller is refused with a fixed status while its upload
//! is still in the transport (and dropped there), and it puts each method's message limit on
//! the body ([`super::frames`]): a few KiB for questions, the letter limit for letters, whose
//! bytes are also counted against the gateway's byte budget before they are decoded.
//!
//! Who may call is one rule, by the service the path names ([`role_of`]): health
//! (`grpc.health.v1.Health`) is answered without a certificate, so probes need none, and its
//! requests are a service name held to a tiny limit; the letter services
//! ([`SENDER_SERVICES`]) require a registered, unsuspended sender; the operator services
//! ([`OPERATOR_SERVICES`]) require an operator certificate in use, and a sender's certificate
//! there (or an operator's on a sender service) is refused PERMISSION_DENIED; any other
//! service (reflection) requires a certificate the TLS handshake verified against the gateway
//! CA. Operator and other calls get the question limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::directory::Directory;
use crate::operators::Roster;

use super::frames::{Budget, Ledger, LimitedFrames, OverLimit};
use super::identity::{identify_operator, identify_sender};
use super::status::AuthError;

/// The largest health request: a service name.
const HEALTH_LIMIT: usize = 1024;

/// What each kind of method may send in one message.
#[derive(Clone, Copy, Debug)]
pub struct MethodLimits {
    /// SubmitLetter and SubmitBatch: the letter limit plus room for the envelope. A letter
    /// over it is skipped and answered TOO_LARGE; one under it but over the letter limit is
    /// decoded and rejected by validation with the exact excess.
    pub letter: usize,
    /// Every other method (GetStatus, CheckRecipient, reflection, ...).
    pub question: usize,
}

/// Who may call a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Anyone, without a certificate: health probes.
    Anyone,
    /// A registered, unsuspended sender: the letter services.
    Sender,
    /// An operator whose certificate is in use: the operator services.
    Operator,
    /// Any certificate the gateway CA issued: whatever else is on the port (reflection).
    AnyCertificate,
}

const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// The services only senders may call.
pub const SENDER_SERVICES: &[&str] = &["brevdue.v1.LetterGateway"];

/// The services only operators may call. A new operator service is added here and nowhere
/// else: the door then refuses senders on it and hands its handlers an `Operator`.
pub const OPERATOR_SERVICES: &[&str] = &["brevdue.v1.Operations", "brevdue.v1.RegistryAdmin"];

/// The one rule: who may call the service a gRPC path names (`/package.Service/Method`).
pub fn role_of(service: &str) -> Role {
    if service == HEALTH_SERVICE {
        Role::Anyone
    } else if SENDER_SERVICES.contains(&service) {
        Role::Sender
    } else if OPERATOR_SERVICES.contains(&service) {
        Role::Operator
    } else {
        Role::AnyCertificate
    }
}

/// Which door a path goes through: the role, and for senders which limit the method gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Health,
    Letters(&'static str),
    Sender(&'static str),
    Operator,
    /// An operator's batch of registry changes: larger than a question.
    OperatorBatch,
    Other,
}

impl Kind {
    fn of(path: &str) -> Kind {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .unwrap_or(("", ""));
        match role_of(service) {
            Role::Anyone => Kind::Health,
            Role::Operator if service == "brevdue.v1.RegistryAdmin" && method == "ApplyChanges" => {
                Kind::OperatorBatch
            }
            Role::Operator => Kind::Operator,
            Role::AnyCertificate => Kind::Other,
            Role::Sender => match method {
                "SubmitLetter" => Kind::Letters("SubmitLetter"),
                "SubmitBatch" => Kind::Letters("SubmitBatch"),
                "GetStatus" => Kind::Sender("GetStatus"),
                "CheckRecipient" => Kind::Sender("CheckRecipient"),
                _ => Kind::Sender("LetterGateway"),
            },
        }
    }
}

struct Shared {
    directory: Arc<Directory>,
    roster: Arc<Roster>,
    limits: MethodLimits,
    budget: Budget,
}

/// The tower layer that puts the door in front of every service of the gRPC server.
#[derive(Clone)]
pub struct DoorLayer {
    shared: Arc<Shared>,
}

impl DoorLayer {
    pub fn new(
        directory: Arc<Directory>,
        roster: Arc<Roster>,
        limits: MethodLimits,
        budget: Budget,
    ) -> Self {
        DoorLayer {
            shared: Arc::new(Shared {
                directory,
                roster,
                limits,
                budget,
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for DoorLayer {
    type Service = Door<S>;

    fn layer(&self, inner: S) -> Door<S> {
        Door {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Door<S> {
    inner: S,
    shared: Arc<Shared>,
}

type DoorFuture<E> = Pin<Box<dyn Future<Output = Result<http::Response<Body>, E>> + Send>>;

impl<S> Door<S> {
    /// Checks the caller; on success the request carries what the handlers need.
    fn admit(&self, req: &mut http::Request<Body>, kind: Kind) -> Result<(), AuthError> {
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|i| i.peer_certs());
        match kind {
            Kind::Health => Ok(()),
            Kind::Letters(_) | Kind::Sender(_) => {
                let caller = identify_sender(
                    &self.shared.directory,
                    &self.shared.roster,
                    certs.as_deref().map(Vec::as_slice),
                )?;
                req.extensions_mut().insert(caller);
                Ok(())
            }
            Kind::Operator | Kind::OperatorBatch => {
                let operator = identify_operator(
                    &self.shared.roster,
                    &self.shared.directory,
                    certs.as_deref().map(Vec::as_slice),
                )?;
                req.extensions_mut().insert(operator);
                Ok(())
            }
            // The handshake verified any certificate presented against the gateway CA.
            Kind::Other => match certs {
                Some(c) if !c.is_empty() => Ok(()),
                _ => Err(AuthError::NoCertificate),
            },
        }
    }
}

impl<S> tonic::codegen::Service<http::Request<Body>> for Door<S>
where
    S: tonic::codegen::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = DoorFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let kind = Kind::of(req.uri().path());
        if let Err(refused) = self.admit(&mut req, kind) {
            // The body is dropped unread: the transport resets the stream and discards what
            // the client still sends.
            let response = Status::from(refused).into_http::<Body>();
            return Box::pin(async move { Ok(response) });
        }
        let limits = self.shared.limits;
        let (method, limit, over, budget) = match kind {
            Kind::Health => ("Health", HEALTH_LIMIT, OverLimit::Refuse, None),
            Kind::Letters(m) => (
                m,
                limits.letter,
                OverLimit::Skip,
                Some(self.shared.budget.clone()),
            ),
            Kind::Sender(m) => (m, limits.question, OverLimit::Refuse, None),
            Kind::Operator => ("operator request", limits.question, OverLimit::Refuse, None),
            Kind::OperatorBatch => (
                "ApplyChanges",
                super::registry_admin::MAX_CHANGES_BYTES,
                OverLimit::Refuse,
                None,
            ),
            Kind::Other => ("request", limits.question, OverLimit::Refuse, None),
        };
        let ledger = Arc::new(Ledger::default());
        if matches!(kind, Kind::Letters(_)) {
            req.extensions_mut().insert(ledger.clone());
        }
        let req = req.map(|body| {
            Body::new(LimitedFrames::new(
                body, method, limit, over, ledger, budget,
            ))
        });
        // The usual tower hand-over: the clone that was made ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_through_the_right_door() {
        assert_eq!(Kind::of("/grpc.health.v1.Health/Check"), Kind::Health);
        assert_eq!(
            Kind::of("/brevdue.v1.LetterGateway/SubmitBatch"),
            Kind::Letters("SubmitBatch")
        );
        assert_eq!(
            Kind::of("/brevdue.v1.LetterGateway/CheckRecipient"),
            Kind::Sender("CheckRecipient")
        );
        // A method added later is a sender's question until it says otherwise.
        assert_eq!(
            Kind::of("/brevdue.v1.LetterGateway/WatchEvents"),
            Kind::Sender("LetterGateway")
        );
        assert_eq!(
            Kind::of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Kind::Other
        );
        assert_eq!(Kind::of("/brevdue.v1.Operations/StartJob"), Kind::Operator);
        assert_eq!(
            Kind::of("/brevdue.v1.RegistryAdmin/ApplyChanges"),
            Kind::OperatorBatch
        );
        assert_eq!(
            Kind::of("/brevdue.v1.RegistryAdmin/GetRegistryState"),
            Kind::Operator
        );
        // A path that only starts like a service is not that service.
        assert_eq!(Kind::of("/brevdue.v1.OperationsX/StartJob"), Kind::Other);
        assert_eq!(Kind::of("garbage"), Kind::Other);
    }

    #[test]
    fn one_rule_names_each_role() {
        assert_eq!(role_of("grpc.health.v1.Health"), Role::Anyone);
        assert_eq!(role_of("brevdue.v1.LetterGateway"), Role::Sender);
        for service in OPERATOR_SERVICES {
            assert_eq!(role_of(service), Role::Operator);
            assert!(!SENDER_SERVICES.contains(service));
        }
        assert!(OPERATOR_SERVICES.contains(&"brevdue.v1.Operations"));
        assert!(OPERATOR_SERVICES.contains(&"brevdue.v1.RegistryAdmin"));
    }
}
