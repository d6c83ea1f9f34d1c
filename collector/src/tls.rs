//! The agents' port: rustls with the collector's CA, client certificates optional
//! at the TLS layer (enrollment has none yet) but checked against a CRL, so a
//! revoked agent is refused at the handshake. The configuration is rebuilt on
//! revocation; each new connection uses the current one.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::ca::{Ca, CaError};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The current server configuration and what is needed to rebuild it.
pub struct TlsState {
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
    ca_der: Vec<u8>,
    current: RwLock<Arc<ServerConfig>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsState {
    /// A server certificate for `names` signed by `ca`, and a config with `crl`.
    pub fn new(ca: &Ca, names: &[String], crl: Vec<u8>) -> Result<TlsState, TlsError> {
        let (issued, key) = ca.issue_server(names, time::Duration::days(90))?;
        let chain = vec![
            CertificateDer::from(issued.der),
            CertificateDer::from(ca.cert_der().to_vec()),
        ];
        let state = TlsState {
            chain,
            key_der: key.serialize_der(),
            ca_der: ca.cert_der().to_vec(),
            current: RwLock::new(Arc::new(placeholder())),
        };
        state.rebuild(crl)?;
        Ok(state)
    }

    /// Rebuilds the configuration with a new CRL; new connections use it.
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
            .with_single_cert(
                self.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(|e| cfg(e.to_string()))?;
        sc.alpn_protocols = vec![b"h2".to_vec()];
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(sc);
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
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

/// Accepted, handshaken TLS connections for tonic's `serve_with_incoming`.
/// Handshakes run concurrently, each bounded by a timeout; failures are logged and
/// counted, never fatal.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<TlsState>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "tls handshake refused"),
                    Err(_) => tracing::warn!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
