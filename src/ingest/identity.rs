//! Who is calling: the client certificate presented in the TLS handshake, looked up by its
//! SHA-256 fingerprint among the certificates issued to registered senders.

use tonic::{Request, Status};

use crate::directory::Directory;
use crate::domain::SenderInfo;
use crate::pki::fingerprint;

/// The sender behind a request, or the gRPC error that refuses it.
pub fn authenticate<T>(directory: &Directory, request: &Request<T>) -> Result<SenderInfo, Status> {
    let certs = request.peer_certs().ok_or_else(|| {
        Status::unauthenticated(
            "no client certificate: connect with the certificate and key that `brevdue senders add` wrote",
        )
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate was presented"))?;
    let sender = directory
        .sender_by_cert(&fingerprint(leaf.as_ref()))
        .ok_or_else(|| {
            Status::unauthenticated(
                "this client certificate is not registered to any sender (was it re-issued?)",
            )
        })?;
    if sender.suspended {
        tracing::info!(sender = %sender.cvr, "refused a suspended sender");
        return Err(Status::permission_denied(format!(
            "sender {} is suspended; contact the gateway operator",
            sender.cvr
        )));
    }
    Ok(sender)
}
