//! What the gateway's certificates say: the CA's parameters (the one definition both creating
//! and signing with the CA use), those of every end-entity certificate, the checks on a
//! sender's subject, and the check that a stored certificate belongs to its key.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};

use super::{CA_CERT, PkiError};

/// The CA's common name. Issued certificates name their issuer by it, so changing it orphans
/// every certificate already issued.
const CA_COMMON_NAME: &str = "brevdue gateway CA";

const CA_VALIDITY: Duration = Duration::days(20 * 365);
/// The server certificate's lifetime; senders' certificates get the configured one.
const LEAF_VALIDITY: Duration = Duration::days(2 * 365);
/// A sender's certificate unless configured otherwise: a year, so a lost key stops working by
/// itself within one.
pub const SENDER_VALIDITY: Duration = Duration::days(365);

/// Certificates start this far in the past so that a peer whose clock is a little behind does
/// not reject a certificate made moments ago.
const BACKDATE: Duration = Duration::hours(1);

/// The CA's parameters. The only definition of the CA's name and usages: both creating the CA
/// and signing with it use this, which is what makes issued certificates chain to `ca.pem`.
pub(super) fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    Ok(params)
}

pub(super) fn new_ca() -> Result<(String, String), PkiError> {
    let generate = |source| PkiError::Generate {
        what: format!("the CA ({CA_CERT})"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let cert = ca_params()
        .and_then(|params| params.self_signed(&key))
        .map_err(generate)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Parameters shared by every end-entity certificate; the caller adds the name and purpose.
pub(super) fn leaf_params(sans: Vec<String>, what: &str) -> Result<CertificateParams, PkiError> {
    leaf_params_for(sans, what, LEAF_VALIDITY)
}

/// [`leaf_params`] valid for `validity` from now.
pub(super) fn leaf_params_for(
    sans: Vec<String>,
    what: &str,
    validity: Duration,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::new(sans).map_err(|source| PkiError::Generate {
        what: what.to_string(),
        source,
    })?;
    // Drop rcgen's placeholder common name; the caller sets the real one.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // rcgen's default serial is a hash of the subject key, and every certificate gets a fresh
    // key, so serials are unique. Random serials would add nothing.
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + validity;
    Ok(params)
}

/// Rejects a sender CVR or name that would make a misleading subject.
pub(super) fn check_subject(field: &'static str, value: &str) -> Result<(), PkiError> {
    let problem = if value.trim().is_empty() {
        "it is empty"
    } else if value.trim() != value {
        "it has leading or trailing spaces"
    } else if value.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(PkiError::Subject {
        field,
        value: value.to_string(),
        problem,
    })
}

/// Checks that the certificate holds the key's public half. Without an X.509 parser this is a
/// byte search, but a public key is long and random enough that a match cannot be by chance.
pub(super) fn check_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
) -> Result<(), PkiError> {
    let der =
        CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| PkiError::BadCert {
            file: cert_path.display().to_string(),
        })?;
    let key = KeyPair::from_pem(key_pem).map_err(|source| PkiError::BadKey {
        file: key_path.display().to_string(),
        source,
    })?;
    let public = key.public_key_raw();
    if public.is_empty() || !der.windows(public.len()).any(|w| w == public) {
        return Err(PkiError::KeyMismatch {
            cert: cert_path.display().to_string(),
            key: key_path.display().to_string(),
        });
    }
    Ok(())
}
