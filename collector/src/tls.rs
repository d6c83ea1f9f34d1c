//! The agents' port: rustls with the collector's CA, client certificates optional
//! at the TLS layer (enrollment has none yet) but checked against a CRL, so a
//! revoked agent is refused at the handshake. The configuration is rebuilt on
//! revocation; each new connection uses the current one.
//!
//! The REST port, when `rest_tls` is on, serves the same server certificate
//! (issued by the collector's CA for `server_names`) without client certificates.

use std::net::SocketAddr;
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
use tokio_stream::{Stream, StreamExt};

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
    rest: Arc<ServerConfig>,
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
        let key_der = key.serialize_der();
        let mut rest = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.clone())),
            )
            .map_err(|e| TlsError::Config(e.to_string()))?;
        rest.alpn_protocols = vec![b"http/1.1".to_vec()];
        let state = TlsState {
            chain,
            key_der,
            ca_der: ca.cert_der().to_vec(),
            current: RwLock::new(Arc::new(placeholder())),
            rest: Arc::new(rest),
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
pub fn incoming(
    listener: TcpListener,
    tls: Arc<TlsState>,
) -> impl Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    ReceiverStream::new(handshakes(listener, move || tls.acceptor())).map(|(s, _)| Ok(s))
}

/// The REST port over TLS, for `axum::serve`.
pub struct RestListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl RestListener {
    pub fn new(listener: TcpListener, tls: Arc<TlsState>) -> std::io::Result<RestListener> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(tls.rest.clone());
        let rx = handshakes(listener, move || acceptor.clone());
        Ok(RestListener { local, rx })
    }
}

impl axum::serve::Listener for RestListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts connections and runs their handshakes concurrently, each bounded by a
/// timeout; failures are logged, never fatal.
fn handshakes(
    listener: TcpListener,
    acceptor: impl Fn() -> TlsAcceptor + Send + 'static,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
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
            let acceptor = acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "tls handshake refused"),
                    Err(_) => tracing::warn!(%peer, "tls handshake timed out"),
                }
            });
        }
    });
    rx
}
