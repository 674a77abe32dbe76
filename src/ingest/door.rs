//! The door: every call on the gRPC port passes here, after the TLS handshake and before tonic
//! reads a byte of its body.
//!
//! It decides who is calling from the client certificate alone ([`super::identity`]), so an
//! anonymous, unregistered or suspended caller is refused with a fixed status while its upload
//! is still in the transport (and dropped there), and it puts each method's message limit on
//! the body ([`super::frames`]): a few KiB for questions, the letter limit for letters, whose
//! bytes are also counted against the gateway's byte budget before they are decoded.
//!
//! Health (`grpc.health.v1.Health`) is answered without a certificate, so probes need none; its
//! requests are a service name and are held to a tiny limit. Letter services require a
//! registered, unsuspended sender. Any other service on the port (reflection, operator
//! services) requires a certificate the TLS handshake verified against the gateway CA, and
//! authorises in its own handlers, within the question limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::directory::Directory;

use super::frames::{Budget, Ledger, LimitedFrames, OverLimit};
use super::identity::identify;
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

/// Which door a path goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Health,
    Letters(&'static str),
    Sender(&'static str),
    Other,
}

const GATEWAY: &str = "/brevdue.v1.LetterGateway/";

impl Kind {
    fn of(path: &str) -> Kind {
        if path.starts_with("/grpc.health.v1.Health/") {
            return Kind::Health;
        }
        match path.strip_prefix(GATEWAY) {
            Some("SubmitLetter") => Kind::Letters("SubmitLetter"),
            Some("SubmitBatch") => Kind::Letters("SubmitBatch"),
            Some("GetStatus") => Kind::Sender("GetStatus"),
            Some("CheckRecipient") => Kind::Sender("CheckRecipient"),
            Some(_) => Kind::Sender("LetterGateway"),
            None => Kind::Other,
        }
    }
}

struct Shared {
    directory: Arc<Directory>,
    limits: MethodLimits,
    budget: Budget,
}

/// The tower layer that puts the door in front of every service of the gRPC server.
#[derive(Clone)]
pub struct DoorLayer {
    shared: Arc<Shared>,
}

impl DoorLayer {
    pub fn new(directory: Arc<Directory>, limits: MethodLimits, budget: Budget) -> Self {
        DoorLayer {
            shared: Arc::new(Shared {
                directory,
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
                let caller = identify(&self.shared.directory, certs.as_deref().map(Vec::as_slice))?;
                req.extensions_mut().insert(caller);
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
    }
}
