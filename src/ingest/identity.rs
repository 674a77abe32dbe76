//! Who is calling: the client certificate presented in the TLS handshake, looked up by its
//! SHA-256 fingerprint among the certificates issued to registered senders.

use tonic::Request;

use crate::directory::Directory;
use crate::domain::SenderInfo;
use crate::pki::fingerprint;

use super::status::AuthError;

/// The sender behind a request, or why it is refused.
pub fn authenticate<T>(
    directory: &Directory,
    request: &Request<T>,
) -> Result<SenderInfo, AuthError> {
    let certs = request.peer_certs().ok_or(AuthError::NoCertificate)?;
    let leaf = certs.first().ok_or(AuthError::NoCertificate)?;
    let sender = directory
        .sender_by_cert(&fingerprint(leaf.as_ref()))
        .ok_or(AuthError::UnknownCertificate)?;
    if sender.suspended {
        tracing::info!(sender = %sender.cvr, "refused a suspended sender");
        return Err(AuthError::Suspended(sender.cvr));
    }
    Ok(sender)
}
