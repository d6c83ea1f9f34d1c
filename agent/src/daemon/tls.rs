//! The agent's side of TLS: it trusts exactly one CA, the one whose SHA-256 it was
//! given at enrollment (pinning), and connects over HTTP/2 with or without its
//! client certificate.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of DER bytes, lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Accepts a server chain only if it contains the pinned CA and the server's
/// certificate verifies against that CA (name, validity, signature).
#[derive(Debug)]
pub struct PinnedCa {
    pin: String,
}

impl PinnedCa {
    pub fn new(pin: &str) -> PinnedCa {
        PinnedCa {
            pin: pin.to_string(),
        }
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(format!(
                    "the collector's CA does not match the pinned fingerprint {}",
                    self.pin
                ))
            })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration pinned to `pin`, presenting `identity` (cert chain, PKCS#8 key) if given.
pub fn client_config(
    pin: &str,
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Result<ClientConfig, String> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa::new(pin)));
    let mut cfg = match identity {
        Some((chain, key)) => b
            .with_client_auth_cert(
                chain.into_iter().map(CertificateDer::from).collect(),
                PrivateKeyDer::Pkcs8(key.into()),
            )
            .map_err(|e| e.to_string())?,
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A lazily connecting gRPC channel to `url` (`https://host:port`) over `cfg`.
pub fn channel(url: &str, cfg: ClientConfig) -> Result<Channel, String> {
    let hostport = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => hostport.clone(),
    };
    let server_name =
        ServerName::try_from(host).map_err(|e| format!("collector host in {url}: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
        .map_err(|e| format!("collector URL {url}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(10))
        .http2_keep_alive_interval(std::time::Duration::from_secs(30));
    Ok(endpoint.connect_with_connector_lazy(tower::service_fn(
        move |_uri: tonic::transport::Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let hostport = hostport.clone();
            async move {
                let tcp = TcpStream::connect(&hostport).await?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        },
    )))
}

/// After a failed connection, finds out what the TLS layer said: with TLS 1.3 a
/// refused client certificate only shows as a closed connection at the first
/// request, so this does one handshake and one read to catch the server's alert.
pub async fn diagnose(url: &str, cfg: ClientConfig) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let hostport = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())?;
    let name = ServerName::try_from(host).ok()?;
    let fut = async {
        let tcp = TcpStream::connect(&hostport)
            .await
            .map_err(|e| format!("TCP connect to {hostport}: {e}"))?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let mut b = [0u8; 1];
        match tokio::time::timeout(std::time::Duration::from_secs(2), tls.read(&mut b)).await {
            Ok(Err(e)) => Err(format!("TLS: {e}")),
            _ => Ok(()),
        }
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), fut).await {
        Ok(Err(e)) => Some(e),
        _ => None,
    }
}
