//! The gateway's own certificate authority: the TLS server identity and the senders' client
//! certificates.
//!
//! Senders authenticate to the gateway with mutual TLS, and the gateway records a sender by the
//! SHA-256 [`fingerprint`] of its certificate. Rather than depend on an outside PKI, the gateway
//! keeps a small CA of its own in one directory (mode 0700; every file in it 0600):
//!
//! - `ca.pem`, `ca.key`: the self-signed CA, created on first use and never replaced, because
//!   every sender trusts the gateway through it and every issued certificate chains to it;
//! - `server.pem`, `server.key`: the gateway's TLS server certificate, signed by the CA.
//!
//! Sender certificates are not stored here: [`Pki::issue_sender`] returns them and the caller
//! decides where they go.
//!
//! A running gateway and an admin command may open the same directory at the same moment, so
//! files are published without locks: each is written in full under a temporary name, fsynced,
//! then hard-linked to its final name. A hard link fails if the name is taken, so exactly one
//! writer wins and the others adopt its files. A private key is always published before its
//! certificate; hence a certificate without its key means a damaged directory, and a key without
//! its certificate means either a creator in mid-publish (we wait briefly) or a damaged directory.
//! Either damage is reported, never repaired by making a new CA.
//!
//! rcgen cannot read certificates back without its x509-parser feature, so the CA's
//! parameters are rebuilt by [`ca_params`] whenever it signs. An issued certificate chains to
//! `ca.pem` because the issuer name it carries is encoded from the same distinguished name and it
//! is signed with the key from `ca.key`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

mod ca;
mod files;
mod identity;

pub use ca::SENDER_VALIDITY;
use ca::{ca_params, check_pair, check_subject, leaf_params, leaf_params_for, new_ca};
use files::{TempFile, ensure_dir, read, read_pair, sync_dir};
pub use identity::{IssuedCert, fingerprint, hex, parse_fingerprint};

// The directory's file names.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

/// The organisational unit of every operator certificate: its role, for people reading it.
pub const OPERATOR_ROLE: &str = "brevdue operator";

/// Why the certificate authority could not be opened or could not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{present} exists but {missing} does not: the certificate directory is damaged; restore \
         {missing} from a backup (a new CA is not made, as senders would no longer trust it)"
    )]
    Incomplete { present: String, missing: String },
    #[error("{file}: not a usable private key: {source}")]
    BadKey {
        file: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{file}: does not hold a PEM certificate")]
    BadCert { file: String },
    #[error("{cert} was not made for the key in {key}: the pair has been mixed up")]
    KeyMismatch { cert: String, key: String },
    #[error("cannot make {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("sender {field} {value:?} cannot go in a certificate: {problem}")]
    Subject {
        field: &'static str,
        value: String,
        problem: &'static str,
    },
    #[error("the system random number generator failed")]
    Random,
}

/// The gateway's certificate authority, kept as files in one directory.
#[derive(Debug, Clone)]
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Opens the gateway's certificate authority in `dir` (mode 0700), creating it on first use:
    /// `ca.pem` (self-signed CA, CN "brevdue gateway CA", key usages cert-sign + CRL-sign, valid 20 years) and `ca.key` (mode 0600).
    pub fn open_or_create(dir: &Path) -> Result<Pki, PkiError> {
        ensure_dir(dir)?;
        let pki = Pki {
            dir: dir.to_path_buf(),
        };
        let (cert_pem, key_pem) = pki.load_or_publish(CA_CERT, CA_KEY, new_ca)?;
        check_pair(&pki.path(CA_CERT), &cert_pem, &pki.path(CA_KEY), &key_pem)?;
        Ok(pki)
    }

    /// The CA certificate (PEM): what senders install to trust the gateway, and what the
    /// gateway trusts sender certificates by.
    pub fn ca_pem(&self) -> Result<String, PkiError> {
        read(&self.path(CA_CERT))
    }

    /// The gateway's TLS server certificate and key (PEM), kept as server.pem/server.key (0600) in dir and created on first use,
    /// signed by the CA, SANs `localhost`, `127.0.0.1` and `::1`, EKU serverAuth, valid 2 years.
    pub fn server_identity(&self) -> Result<(String, String), PkiError> {
        let (cert_pem, key_pem) =
            self.load_or_publish(SERVER_CERT, SERVER_KEY, || self.new_server())?;
        check_pair(
            &self.path(SERVER_CERT),
            &cert_pem,
            &self.path(SERVER_KEY),
            &key_pem,
        )?;
        Ok((cert_pem, key_pem))
    }

    /// Issues a client certificate for a sender: CN "<cvr> <name>" (and O = name), EKU clientAuth, valid [`SENDER_VALIDITY`], signed by the CA.
    /// Nothing is written to disk here (the caller writes the files); returns cert PEM, key PEM and the SHA-256 fingerprint of the cert DER.
    pub fn issue_sender(&self, cvr: &str, name: &str) -> Result<IssuedCert, PkiError> {
        self.issue_sender_for(cvr, name, SENDER_VALIDITY)
    }

    /// [`issue_sender`](Self::issue_sender) valid for `validity`.
    pub fn issue_sender_for(
        &self,
        cvr: &str,
        name: &str,
        validity: time::Duration,
    ) -> Result<IssuedCert, PkiError> {
        check_subject("CVR", cvr)?;
        check_subject("name", name)?;
        let what = || format!("a certificate for sender {cvr}");
        let mut params = leaf_params_for(Vec::new(), &what(), validity)?;
        let not_after = params.not_after;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{cvr} {name}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let (cert, key) = self.sign(&params, &what())?;
        Ok(IssuedCert {
            expires_at_ms: i64::try_from(not_after.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX),
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a client certificate for an operator: CN "operator <name>", OU "brevdue
    /// operator" (the role, so a person reading the certificate sees what it is for), EKU
    /// clientAuth, valid `validity`, signed by the CA. The gateway itself authorises by the
    /// fingerprint recorded for the operator, never by these names. Nothing is written to disk.
    pub fn issue_operator(
        &self,
        name: &str,
        validity: time::Duration,
    ) -> Result<IssuedCert, PkiError> {
        check_subject("name", name)?;
        let what = || format!("a certificate for operator {name}");
        let mut params = leaf_params_for(Vec::new(), &what(), validity)?;
        let not_after = params.not_after;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("operator {name}"));
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, OPERATOR_ROLE);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let (cert, key) = self.sign(&params, &what())?;
        Ok(IssuedCert {
            expires_at_ms: i64::try_from(not_after.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(i64::MAX),
            fingerprint: fingerprint(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn new_server(&self) -> Result<(String, String), PkiError> {
        let what = "the gateway's server certificate";
        let sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
        let mut params = leaf_params(sans, what)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "brevdue gateway");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let (cert, key) = self.sign(&params, what)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Signs `params` with the stored CA for a new key pair.
    fn sign(
        &self,
        params: &CertificateParams,
        what: &str,
    ) -> Result<(Certificate, KeyPair), PkiError> {
        let ca_key_path = self.path(CA_KEY);
        let ca_key =
            KeyPair::from_pem(&read(&ca_key_path)?).map_err(|source| PkiError::BadKey {
                file: ca_key_path.display().to_string(),
                source,
            })?;
        let generate = |source| PkiError::Generate {
            what: what.to_string(),
            source,
        };
        // Only the name, key-identifier method and key usages of these params reach the issued
        // certificate; the validity rebuilt here is never written anywhere.
        let issuer = Issuer::new(ca_params().map_err(generate)?, ca_key);
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        Ok((cert, key))
    }

    /// Returns the (certificate, key) PEMs stored under the given names, publishing the pair
    /// `create` makes if there is none yet. When several processes race, all get the winner's.
    fn load_or_publish(
        &self,
        cert_name: &str,
        key_name: &str,
        create: impl FnOnce() -> Result<(String, String), PkiError>,
    ) -> Result<(String, String), PkiError> {
        let cert_path = self.path(cert_name);
        let key_path = self.path(key_name);
        if let Some(pair) = read_pair(&cert_path, &key_path)? {
            return Ok(pair);
        }
        let (cert_pem, key_pem) = create()?;
        // Both are complete on disk before either is visible under its real name.
        let key_tmp = TempFile::write(&self.dir, key_name, &key_pem)?;
        let cert_tmp = TempFile::write(&self.dir, cert_name, &cert_pem)?;
        if key_tmp.publish(&key_path)? {
            // Our key is the one; nobody else publishes a certificate for a key they lost with,
            // so a taken certificate name means it was there, keyless, before we looked. Take our
            // key back so the directory is left as damaged as we found it, not mismatched.
            if !cert_tmp.publish(&cert_path)? {
                let _ = fs::remove_file(&key_path);
                return Err(PkiError::Incomplete {
                    present: cert_path.display().to_string(),
                    missing: key_path.display().to_string(),
                });
            }
        }
        sync_dir(&self.dir)?;
        read_pair(&cert_path, &key_path)?.ok_or_else(|| PkiError::Incomplete {
            present: key_path.display().to_string(),
            missing: cert_path.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::crypto::ring::default_provider;
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::server::WebPkiClientVerifier;
    use rustls::server::danger::ClientCertVerifier;
    use std::os::unix::fs::PermissionsExt;
    use std::thread;

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    use super::identity::hex;
    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
    }

    fn roots(ca_pem: &str) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(der(ca_pem)).expect("CA is a usable trust anchor");
        Arc::new(roots)
    }

    fn client_verifier(ca_pem: &str) -> Arc<dyn ClientCertVerifier> {
        WebPkiClientVerifier::builder_with_provider(roots(ca_pem), Arc::new(default_provider()))
            .build()
            .expect("client verifier")
    }

    fn server_verifier(ca_pem: &str) -> Arc<WebPkiServerVerifier> {
        WebPkiServerVerifier::builder_with_provider(roots(ca_pem), Arc::new(default_provider()))
            .build()
            .expect("server verifier")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn sender_cert_from_reopened_ca_verifies_as_client() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::open_or_create(dir.path()).unwrap();
        let ca_pem = first.ca_pem().unwrap();

        let again = Pki::open_or_create(dir.path()).unwrap();
        let issued = again.issue_sender("12345674", "Aarhus Kommune").unwrap();
        let cert = der(&issued.cert_pem);
        assert_eq!(issued.fingerprint, fingerprint(&cert));
        assert!(KeyPair::from_pem(&issued.key_pem).is_ok());

        client_verifier(&ca_pem)
            .verify_client_cert(&cert, &[], UnixTime::now())
            .expect("sender certificate chains to ca.pem");
    }

    #[test]
    fn server_cert_verifies_for_localhost_and_loopback_ip() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open_or_create(dir.path()).unwrap();
        let (cert_pem, key_pem) = pki.server_identity().unwrap();
        assert!(KeyPair::from_pem(&key_pem).is_ok());
        let verifier = server_verifier(&pki.ca_pem().unwrap());
        let cert = der(&cert_pem);
        for name in [
            ServerName::try_from("localhost").unwrap(),
            ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
            ServerName::try_from("::1").unwrap(),
        ] {
            verifier
                .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
                .unwrap_or_else(|e| panic!("server cert for {name:?}: {e}"));
        }
        let elsewhere = ServerName::try_from("example.org").unwrap();
        assert!(
            verifier
                .verify_server_cert(&cert, &[], &elsewhere, &[], UnixTime::now())
                .is_err()
        );

        // Created once, then reused, also by another handle on the same directory.
        let again = Pki::open_or_create(dir.path()).unwrap();
        assert_eq!(again.server_identity().unwrap(), (cert_pem, key_pem));
    }

    #[test]
    fn cert_from_another_ca_is_rejected() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let ours = Pki::open_or_create(ours.path()).unwrap();
        let theirs = Pki::open_or_create(theirs.path()).unwrap();
        assert_ne!(ours.ca_pem().unwrap(), theirs.ca_pem().unwrap());

        let foreign = theirs.issue_sender("12345674", "Aarhus Kommune").unwrap();
        let result = client_verifier(&ours.ca_pem().unwrap()).verify_client_cert(
            &der(&foreign.cert_pem),
            &[],
            UnixTime::now(),
        );
        assert!(result.is_err());

        // A sender certificate is not a server certificate, even from the right CA.
        let sender = ours.issue_sender("12345674", "Aarhus Kommune").unwrap();
        let as_server = server_verifier(&ours.ca_pem().unwrap()).verify_server_cert(
            &der(&sender.cert_pem),
            &[],
            &ServerName::try_from("localhost").unwrap(),
            &[],
            UnixTime::now(),
        );
        assert!(as_server.is_err());
    }

    #[test]
    fn keys_are_0600_and_dir_is_0700() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("pki");
        let pki = Pki::open_or_create(&dir).unwrap();
        pki.server_identity().unwrap();
        assert_eq!(mode(&dir), 0o700);
        for name in [CA_KEY, SERVER_KEY, CA_CERT, SERVER_CERT] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }

        // A pre-existing, too-open directory is tightened.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        Pki::open_or_create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn reopening_keeps_the_ca_and_fingerprints_differ() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::open_or_create(dir.path()).unwrap();
        let ca_bytes = fs::read(dir.path().join(CA_CERT)).unwrap();
        let key_bytes = fs::read(dir.path().join(CA_KEY)).unwrap();
        let a = first.issue_sender("12345674", "Aarhus Kommune").unwrap();

        let second = Pki::open_or_create(dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join(CA_CERT)).unwrap(), ca_bytes);
        assert_eq!(fs::read(dir.path().join(CA_KEY)).unwrap(), key_bytes);
        let b = second.issue_sender("12345674", "Aarhus Kommune").unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.key_pem, b.key_pem);
        // Nothing was written for the senders, and no temp files were left.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, [CA_KEY, CA_CERT]);
    }

    #[test]
    fn concurrent_openers_agree_on_one_ca() {
        let dir = tempfile::tempdir().unwrap();
        let results: Vec<(String, String)> = thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let pki = Pki::open_or_create(dir.path()).unwrap();
                        (pki.ca_pem().unwrap(), pki.server_identity().unwrap().0)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.windows(2).all(|w| w[0] == w[1]));
        let names = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(names, 4, "only the four published files remain");
    }

    #[test]
    fn missing_ca_key_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        Pki::open_or_create(dir.path()).unwrap();
        let ca_bytes = fs::read(dir.path().join(CA_CERT)).unwrap();
        fs::remove_file(dir.path().join(CA_KEY)).unwrap();

        let err = Pki::open_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, PkiError::Incomplete { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("ca.pem exists") && msg.contains("ca.key does not"),
            "{msg}"
        );
        assert!(!dir.path().join(CA_KEY).exists());
        assert_eq!(fs::read(dir.path().join(CA_CERT)).unwrap(), ca_bytes);
    }

    #[test]
    fn missing_ca_cert_is_an_error_after_a_grace_period() {
        let dir = tempfile::tempdir().unwrap();
        Pki::open_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(CA_CERT)).unwrap();

        let err = Pki::open_or_create(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ca.key exists") && msg.contains("ca.pem does not"),
            "{msg}"
        );
        assert!(!dir.path().join(CA_CERT).exists());
    }

    #[test]
    fn mixed_up_pair_is_detected() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        Pki::open_or_create(ours.path()).unwrap();
        Pki::open_or_create(theirs.path()).unwrap();
        fs::copy(theirs.path().join(CA_KEY), ours.path().join(CA_KEY)).unwrap();
        let err = Pki::open_or_create(ours.path()).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err:?}");
    }

    #[test]
    fn bad_sender_subjects_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open_or_create(dir.path()).unwrap();
        for (cvr, name) in [("", "A"), ("12345674", " "), ("12345674", "A\nB")] {
            let err = pki.issue_sender(cvr, name).unwrap_err();
            assert!(matches!(err, PkiError::Subject { .. }), "{err:?}");
        }
    }

    #[test]
    fn operator_cert_verifies_as_client_and_carries_its_role() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::open_or_create(dir.path()).unwrap();
        let issued = pki
            .issue_operator("alice", time::Duration::days(30))
            .unwrap();
        let cert = der(&issued.cert_pem);
        assert_eq!(issued.fingerprint, fingerprint(&cert));
        client_verifier(&pki.ca_pem().unwrap())
            .verify_client_cert(&cert, &[], UnixTime::now())
            .expect("operator certificate chains to ca.pem");
        let der_bytes: &[u8] = cert.as_ref();
        assert!(
            der_bytes
                .windows(OPERATOR_ROLE.len())
                .any(|w| w == OPERATOR_ROLE.as_bytes())
        );
        assert!(pki.issue_operator("a\nb", time::Duration::days(1)).is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_der() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hex(&fingerprint(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
