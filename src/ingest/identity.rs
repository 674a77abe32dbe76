//! Who is calling: the client certificate presented in the TLS handshake, looked up by its
//! SHA-256 fingerprint among the certificates issued to registered senders.
//!
//! One rule for every path in: [`admit`] decides from the fingerprint and the live sender
//! directory. The door ([`super::door`]) applies it to every call before any body is read, and
//! an open `SubmitBatch` stream applies it again at every letter ([`recheck`]), so a sender
//! suspended (or a certificate withdrawn) while a stream is open is refused at its next letter
//! exactly as a new call would be.

use tonic::Request;
use tonic::transport::CertificateDer;

use crate::directory::Directory;
use crate::domain::SenderInfo;
use crate::pki::fingerprint;

use super::status::AuthError;

/// The sender the door let in, as it was when the call started; handlers read it from the
/// request's extensions.
#[derive(Clone, Debug)]
pub struct Caller {
    pub sender: SenderInfo,
    /// SHA-256 of the leaf certificate: what [`recheck`] looks up again.
    pub fingerprint: [u8; 32],
}

/// The one rule: the certificate must be registered to a sender, and the sender not suspended.
pub fn admit(directory: &Directory, fingerprint: &[u8; 32]) -> Result<SenderInfo, AuthError> {
    let sender = directory
        .sender_by_cert(fingerprint)
        .ok_or(AuthError::UnknownCertificate)?;
    if sender.suspended {
        tracing::info!(sender = %sender.cvr, "refused a suspended sender");
        return Err(AuthError::Suspended(sender.cvr));
    }
    Ok(sender)
}

/// The caller behind the certificates of a connection (the leaf first), or why it is refused.
pub fn identify(
    directory: &Directory,
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<Caller, AuthError> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or(AuthError::NoCertificate)?;
    let fingerprint = fingerprint(leaf.as_ref());
    let sender = admit(directory, &fingerprint)?;
    Ok(Caller {
        sender,
        fingerprint,
    })
}

/// The caller as it is now: the same rule as at the door, for a call already let in.
pub fn recheck(directory: &Directory, caller: &Caller) -> Result<SenderInfo, AuthError> {
    admit(directory, &caller.fingerprint)
}

/// The caller the door identified. A request that did not come through the door (a server
/// built without it) has none and is refused as anonymous.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, AuthError> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or(AuthError::NoCertificate)
}

/// The sender behind a request, by the one rule: the door's caller checked again, or (for a
/// request that did not come through the door) the connection's certificate.
pub fn authenticate<T>(
    directory: &Directory,
    request: &Request<T>,
) -> Result<SenderInfo, AuthError> {
    match request.extensions().get::<Caller>() {
        Some(caller) => recheck(directory, caller),
        None => identify(
            directory,
            request.peer_certs().as_deref().map(Vec::as_slice),
        )
        .map(|c| c.sender),
    }
}
