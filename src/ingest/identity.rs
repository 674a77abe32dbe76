//! Who is calling: the client certificate presented in the TLS handshake, looked up by its
//! SHA-256 fingerprint among the certificates issued to registered senders.
//!
//! One rule for every path in: [`admit`] decides from the fingerprint and the live sender
//! directory. The door ([`super::door`]) applies it to every call before any body is read, and
//! an open `SubmitBatch` stream applies it again at every letter ([`recheck`]), so a sender
//! suspended (or a certificate withdrawn) while a stream is open is refused at its next letter
//! exactly as a new call would be.
//!
//! Operators are looked up the same way among the operator certificates in use
//! ([`identify_operator`]). The two kinds never cross: a sender's certificate on an operator
//! service, or an operator's on a sender service, is refused as the wrong role
//! (PERMISSION_DENIED), not as unknown, so the person at the other end knows which
//! certificate to use.

use tonic::Request;
use tonic::transport::CertificateDer;

use crate::directory::Directory;
use crate::domain::{OperatorName, SenderInfo};
use crate::operators::Roster;
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

/// The operator the door let in; handlers of operator services read it from the request's
/// extensions, as sender handlers read [`Caller`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub name: OperatorName,
    /// SHA-256 of the leaf certificate.
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

/// [`identify`] for a sender service, telling an operator's certificate apart from an unknown
/// one: the operator is refused as the wrong role.
pub fn identify_sender(
    directory: &Directory,
    roster: &Roster,
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<Caller, AuthError> {
    match identify(directory, certs) {
        Err(AuthError::UnknownCertificate) if leaf_of(roster, certs).is_some() => {
            Err(AuthError::OperatorOnSenderService)
        }
        other => other,
    }
}

fn leaf_of(roster: &Roster, certs: Option<&[CertificateDer<'static>]>) -> Option<OperatorName> {
    let leaf = certs.and_then(|c| c.first())?;
    roster.operator_by_cert(&fingerprint(leaf.as_ref()))
}

/// The operator behind the certificates of a connection (the leaf first), or why it is
/// refused: a sender's certificate is the wrong role, any other is unknown.
pub fn identify_operator(
    roster: &Roster,
    directory: &Directory,
    certs: Option<&[CertificateDer<'static>]>,
) -> Result<Operator, AuthError> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or(AuthError::NoCertificate)?;
    let fingerprint = fingerprint(leaf.as_ref());
    if let Some(name) = roster.operator_by_cert(&fingerprint) {
        return Ok(Operator { name, fingerprint });
    }
    if let Some(sender) = directory.sender_by_cert(&fingerprint) {
        tracing::info!(sender = %sender.cvr, "refused a sender certificate on an operator service");
        return Err(AuthError::SenderOnOperatorService);
    }
    Err(AuthError::UnknownOperator)
}

/// The operator the door identified. A request that did not come through the door has none
/// and is refused as anonymous.
pub fn operator<T>(request: &Request<T>) -> Result<Operator, AuthError> {
    request
        .extensions()
        .get::<Operator>()
        .cloned()
        .ok_or(AuthError::NoCertificate)
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
