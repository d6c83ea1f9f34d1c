//! The collector's TLS: rustls with the collector's CA on the agents' port, client
//! certificates optional at the TLS layer (enrollment has none yet) but checked
//! against a CRL, so a revoked agent is refused at the handshake. That configuration
//! is rebuilt on revocation; each new connection uses the current one.
//!
//! The REST port, when `rest_tls` is on, serves the same server certificate without
//! client certificates.
//!
//! The server certificate (issued by the collector's CA for `server_names`) is held
//! in one [`ServerCert`] that both configurations resolve on every handshake, so
//! [`TlsState::renew_if_due`] swaps it for new connections without a restart, while
//! connections already open carry on.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::ca::{Ca, CaError};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA could not issue the server certificate.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// rustls refused the certificate, key or CRL.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What identifies the server certificate currently served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// End of validity, Unix seconds.
    pub not_after_unix: i64,
}

/// The current server certificate with its key; every handshake on either port
/// asks it for the certificate to present.
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<(Arc<CertifiedKey>, CertInfo)>,
}

impl ServerCert {
    /// Serial and expiry of the certificate new connections get.
    pub fn info(&self) -> CertInfo {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    fn set(&self, key: Arc<CertifiedKey>, info: CertInfo) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (key, info);
    }
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clone(),
        )
    }
}

/// The current server configurations and what is needed to rebuild or renew them.
pub struct TlsState {
    names: Vec<String>,
    lifetime: Duration,
    ca_der: Vec<u8>,
    cert: Arc<ServerCert>,
    current: RwLock<Arc<ServerConfig>>,
    rest: Arc<ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Issues a server certificate for `names`, valid for `lifetime`, with its key.
fn issue(
    ca: &Ca,
    names: &[String],
    lifetime: Duration,
) -> Result<(Arc<CertifiedKey>, CertInfo), TlsError> {
    let validity = time::Duration::try_from(lifetime)
        .map_err(|e| TlsError::Config(format!("server certificate lifetime: {e}")))?;
    let (issued, key) = ca.issue_server(names, validity)?;
    let chain = vec![
        CertificateDer::from(issued.der),
        CertificateDer::from(ca.cert_der().to_vec()),
    ];
    let key = provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let info = CertInfo {
        serial: issued.serial,
        not_after_unix: issued.not_after.unix_timestamp(),
    };
    Ok((Arc::new(CertifiedKey::new(chain, key)), info))
}

impl TlsState {
    /// A server certificate for `names` valid for `lifetime`, signed by `ca`, and
    /// configurations with `crl`.
    pub fn new(
        ca: &Ca,
        names: &[String],
        lifetime: Duration,
        crl: Vec<u8>,
    ) -> Result<TlsState, TlsError> {
        let (key, info) = issue(ca, names, lifetime)?;
        let cert = Arc::new(ServerCert {
            current: RwLock::new((key, info)),
        });
        let mut rest = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(cert.clone());
        rest.alpn_protocols = vec![b"http/1.1".to_vec()];
        let state = TlsState {
            names: names.to_vec(),
            lifetime,
            ca_der: ca.cert_der().to_vec(),
            cert,
            current: RwLock::new(Arc::new(placeholder())),
            rest: Arc::new(rest),
        };
        state.rebuild(crl)?;
        Ok(state)
    }

    /// Rebuilds the agents' port's configuration with a new CRL; new connections
    /// use it.
    pub fn rebuild(&self, crl: Vec<u8>) -> Result<(), TlsError> {
        let cfg = |e: String| TlsError::Config(e);
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca_der.clone()))
            .map_err(|e| cfg(e.to_string()))?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .with_crls(vec![CertificateRevocationListDer::from(crl)])
            .only_check_end_entity_revocation()
            .allow_unauthenticated()
            .build()
            .map_err(|e| cfg(e.to_string()))?;
        let mut sc = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| cfg(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.cert.clone());
        sc.alpn_protocols = vec![b"h2".to_vec()];
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(sc);
        Ok(())
    }

    /// Issues a new server certificate when less than a third of its lifetime is
    /// left at `now_unix`; new connections on both ports get it. Returns the new
    /// certificate's identity when it renewed.
    pub fn renew_if_due(&self, ca: &Ca, now_unix: i64) -> Result<Option<CertInfo>, TlsError> {
        let left = self.cert.info().not_after_unix - now_unix;
        let third = i64::try_from(self.lifetime.as_secs() / 3).unwrap_or(i64::MAX);
        if left >= third {
            return Ok(None);
        }
        let (key, info) = issue(ca, &self.names, self.lifetime)?;
        self.cert.set(key, info.clone());
        Ok(Some(info))
    }

    /// The server certificate both ports present.
    pub fn server_cert(&self) -> &ServerCert {
        &self.cert
    }

    /// An acceptor for the agents' port with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// An acceptor for the REST port (HTTPS, no client certificates).
    pub fn rest_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.rest.clone())
    }
}

// Only used transiently before the first rebuild.
fn placeholder() -> ServerConfig {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new()))
        })
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_when_a_third_of_the_lifetime_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(dir.path()).unwrap();
        let crl = ca
            .crl(
                &[],
                crate::clock::system_ms() as u64,
                time::Duration::days(1),
            )
            .unwrap();
        let names = vec!["localhost".to_string()];
        let tls = TlsState::new(&ca, &names, Duration::from_secs(30), crl).unwrap();
        let first = tls.server_cert().info();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!((first.not_after_unix - now - 30).abs() <= 2, "{first:?}");
        // Two thirds left: nothing to do.
        assert_eq!(tls.renew_if_due(&ca, now + 5).unwrap(), None);
        assert_eq!(tls.server_cert().info(), first);
        // Less than a third left: a new certificate, served from now on.
        let renewed = tls.renew_if_due(&ca, now + 25).unwrap().expect("renewed");
        assert_ne!(renewed.serial, first.serial);
        assert_eq!(tls.server_cert().info(), renewed);
    }
}
