//! The agent's side of TLS: it trusts exactly one CA, the one whose SHA-256 it was
//! given at enrollment (pinning), and connects over HTTP/2 with or without its
//! client certificate.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rcgen::PublicKeyData;
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

/// The URI SAN that names an agent in its certificate (as the collector's CA writes it).
pub fn agent_uri(agent_id: &str) -> String {
    format!("urn:rampart:agent:{agent_id}")
}

/// The SubjectPublicKeyInfo (DER) of a PKCS#8 private key.
fn key_spki(key_der: &[u8]) -> Result<Vec<u8>, String> {
    let key = rcgen::KeyPair::try_from(key_der)
        .map_err(|e| format!("the private key does not parse: {e}"))?;
    Ok(key.subject_public_key_info())
}

/// Whether `cert_der` certifies the public half of `key_der` (PKCS#8).
pub fn key_matches_certificate(key_der: &[u8], cert_der: &[u8]) -> Result<bool, String> {
    let cert = CertificateDer::from(cert_der);
    let ee = webpki::EndEntityCert::try_from(&cert)
        .map_err(|e| format!("the certificate does not parse: {e}"))?;
    Ok(ee.subject_public_key_info().as_ref() == key_spki(key_der)?.as_slice())
}

/// Checks a certificate the collector issued to this agent (at enrollment or on
/// renewal) before it is saved: it parses, is signed by `ca_der` (the pinned CA) for
/// client authentication, is valid at `now`, names `agent_id` in its URI SAN and
/// certifies our own key `key_der`. The error says which check failed.
pub fn check_agent_certificate(
    cert_der: &[u8],
    key_der: &[u8],
    ca_der: &[u8],
    agent_id: &str,
    now: UnixTime,
) -> Result<(), String> {
    let cert = CertificateDer::from(cert_der);
    let ee = webpki::EndEntityCert::try_from(&cert)
        .map_err(|e| format!("it does not parse as a certificate: {e}"))?;
    let ca = CertificateDer::from(ca_der);
    let anchor = webpki::anchor_from_trusted_cert(&ca)
        .map_err(|e| format!("the pinned CA certificate does not parse: {e}"))?;
    ee.verify_for_usage(
        provider().signature_verification_algorithms.all,
        &[anchor],
        &[],
        now,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| match e {
        webpki::Error::CertExpired { .. } => "it has expired".to_string(),
        webpki::Error::CertNotValidYet { .. } => "it is not valid yet".to_string(),
        webpki::Error::UnknownIssuer => "it is not signed by the pinned CA".to_string(),
        other => format!("it does not verify against the pinned CA: {other}"),
    })?;
    let want = agent_uri(agent_id);
    if !ee.valid_uri_names().any(|u| u == want) {
        return Err(format!(
            "it does not name this agent ({want}) in its URI SAN"
        ));
    }
    if ee.subject_public_key_info().as_ref() != key_spki(key_der)?.as_slice() {
        return Err("it certifies another key than this agent's".into());
    }
    Ok(())
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

/// Why a client configuration or a channel could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the protocol versions or the client certificate and key.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The collector's host is not a valid server name.
    #[error("collector host in {url}: {source}")]
    ServerName {
        url: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The collector URL is not a valid URI.
    #[error("collector URL {url}: {source}")]
    Url {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A client configuration pinned to `pin`, presenting `identity` (cert chain, PKCS#8 key) if given.
pub fn client_config(
    pin: &str,
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> Result<ClientConfig, TlsError> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCa::new(pin)));
    let mut cfg = match identity {
        Some((chain, key)) => b.with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(key.into()),
        )?,
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A lazily connecting gRPC channel to `url` (`https://host:port`) over `cfg`.
pub fn channel(url: &str, cfg: ClientConfig) -> Result<Channel, TlsError> {
    let hostport = url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        None => hostport.clone(),
    };
    let server_name = ServerName::try_from(host).map_err(|source| TlsError::ServerName {
        url: url.to_string(),
        source,
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
        .map_err(|source| TlsError::Url {
            url: url.to_string(),
            source,
        })?
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    use time::OffsetDateTime;

    /// A CA: its certificate (DER) and what signs with it.
    fn ca(name: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(365);
        let cert = p.self_signed(&key).unwrap();
        (cert.der().to_vec(), Issuer::new(p, key))
    }

    /// An agent certificate as the collector issues one, for `key`, naming `agent`,
    /// valid from `from` to `to` days from now.
    fn issue(
        issuer: &Issuer<'_, KeyPair>,
        key: &KeyPair,
        agent: &str,
        from: i64,
        to: i64,
    ) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, agent);
        p.subject_alt_names = vec![SanType::URI(agent_uri(agent).try_into().unwrap())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        p.not_before = now + time::Duration::days(from);
        p.not_after = now + time::Duration::days(to);
        p.signed_by(key, issuer).unwrap().der().to_vec()
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn a_renewed_certificate_must_be_ours_from_the_pinned_ca_and_current() {
        let (ca_der, issuer) = ca("pinned CA");
        let (_, other_issuer) = ca("another CA");
        let key = KeyPair::generate().unwrap();
        let key_der = key.serialize_der();
        let other_key = KeyPair::generate().unwrap();
        let check =
            |cert: &[u8]| check_agent_certificate(cert, &key_der, &ca_der, "agent-1", now());

        assert_eq!(check(&issue(&issuer, &key, "agent-1", -1, 30)), Ok(()));
        let refusals = [
            (issue(&issuer, &other_key, "agent-1", -1, 30), "another key"),
            (
                issue(&issuer, &key, "agent-2", -1, 30),
                "does not name this agent",
            ),
            (
                issue(&other_issuer, &key, "agent-1", -1, 30),
                "not signed by the pinned CA",
            ),
            (issue(&issuer, &key, "agent-1", -30, -1), "expired"),
            (issue(&issuer, &key, "agent-1", 2, 30), "not valid yet"),
            (b"not a certificate".to_vec(), "does not parse"),
        ];
        for (cert, why) in refusals {
            let err = check(&cert).unwrap_err();
            assert!(err.contains(why), "expected `{why}`, got `{err}`");
        }
        // A certificate for a CA key is no client certificate either.
        assert!(check(&ca_der).is_err());
    }

    #[test]
    fn keys_are_matched_with_their_certificates() {
        let (_, issuer) = ca("pinned CA");
        let key = KeyPair::generate().unwrap();
        let other = KeyPair::generate().unwrap();
        let cert = issue(&issuer, &key, "agent-1", -1, 30);
        assert_eq!(
            key_matches_certificate(&key.serialize_der(), &cert),
            Ok(true)
        );
        assert_eq!(
            key_matches_certificate(&other.serialize_der(), &cert),
            Ok(false)
        );
        assert!(key_matches_certificate(b"junk", &cert).is_err());
    }
}
