//! The provider's signed instance identity document, fetched from its metadata
//! service at enrollment so the collector can verify the instance ID the agent
//! claims. Only for AWS, Azure and GCP; a short timeout and a size bound on every
//! answer; any failure means "no document" and the enrollment goes on unverified.
//!
//! Where the provider signs caller data, the document is bound to the enrollment
//! key: GCP's audience and Azure's nonce are derived from the SHA-256 of the CSR's
//! SubjectPublicKeyInfo, so a document captured on one VM cannot enroll another key.
//! AWS signs nothing of ours: its document and signature are static per instance.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

/// Where the metadata services answer (the same link-local address on all three).
pub const DEFAULT_METADATA_URL: &str = "http://169.254.169.254";
/// The whole fetch (all requests of one provider) gives up after this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer read from the metadata service (the collector's bound too).
pub const MAX_ANSWER_BYTES: usize = 12 * 1024;
/// The Azure IMDS API version of the attested document.
const AZURE_API_VERSION: &str = "2020-09-01";

/// A document as the collector wants it (see `InstanceIdentityDocument` in the proto).
#[derive(Debug, Clone, PartialEq)]
pub struct SignedIdentity {
    pub provider: String,
    pub document: Vec<u8>,
    pub signature: Vec<u8>,
}

/// Why no document was fetched; logged, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The provider offers no signed document we know.
    #[error("provider {0} offers no signed identity document")]
    Unsupported(String),
    /// The metadata URL is not `http://HOST[:PORT]`.
    #[error("metadata URL `{0}` must be http://HOST[:PORT]")]
    BadUrl(String),
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("the metadata service did not answer within {0:?}")]
    Timeout(Duration),
    /// The TCP connection failed.
    #[error("metadata service: {0}")]
    Connect(#[source] std::io::Error),
    /// The HTTP exchange failed.
    #[error("metadata service: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a header value we were given is invalid).
    #[error("metadata service: {0}")]
    Request(#[from] hyper::http::Error),
    /// A status other than 200.
    #[error("metadata service answered {status} for {path}")]
    Status { status: u16, path: String },
    /// The answer is over [`MAX_ANSWER_BYTES`].
    #[error("the metadata service's answer is over {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// GCP's audience for the key whose SubjectPublicKeyInfo hashes to `key_sha256`
/// (the collector computes the same).
pub fn gcp_audience(key_sha256: &str) -> String {
    format!("urn:rampart:enroll:{key_sha256}")
}

/// Azure's nonce for that key: 32 hex digits (Azure takes up to 32 alphanumerics).
pub fn azure_nonce(key_sha256: &str) -> String {
    key_sha256.chars().take(32).collect()
}

/// Percent-encodes a query value.
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `host:port` of an `http://HOST[:PORT]` URL.
fn authority(base: &str) -> Result<String, FetchError> {
    let bad = || FetchError::BadUrl(base.chars().take(100).collect());
    let rest = base.strip_prefix("http://").ok_or_else(bad)?;
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains(['/', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    let has_port = match hostport.rsplit_once(':') {
        Some((h, p)) => !h.ends_with(':') && p.parse::<u16>().is_ok(),
        None => false,
    };
    Ok(if has_port {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    })
}

/// One HTTP/1.1 request on a fresh connection; the body, bounded.
async fn request(
    addr: &str,
    method: hyper::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Vec<u8>, FetchError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(FetchError::Connect)?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Some(chunk) = frame.data_ref() {
            if out.len() + chunk.len() > MAX_ANSWER_BYTES {
                driver.abort();
                return Err(FetchError::TooLarge);
            }
            out.extend_from_slice(chunk);
        }
    }
    driver.abort();
    if status != 200 {
        return Err(FetchError::Status {
            status,
            path: path.split('?').next().unwrap_or_default().to_string(),
        });
    }
    Ok(out)
}

async fn fetch_inner(
    provider: &str,
    addr: &str,
    key_sha256: &str,
) -> Result<SignedIdentity, FetchError> {
    let get = hyper::Method::GET;
    let (document, signature) = match provider {
        "aws" => {
            // IMDSv2: a session token first, then the document and its signature.
            let token = request(
                addr,
                hyper::Method::PUT,
                "/latest/api/token",
                &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
            )
            .await?;
            let token = String::from_utf8_lossy(&token).trim().to_string();
            let h = [("X-aws-ec2-metadata-token", token.as_str())];
            let doc = request(
                addr,
                get.clone(),
                "/latest/dynamic/instance-identity/document",
                &h,
            )
            .await?;
            let sig = request(addr, get, "/latest/dynamic/instance-identity/signature", &h).await?;
            (doc, sig)
        }
        "gcp" => {
            let path = format!(
                "/computeMetadata/v1/instance/service-accounts/default/identity?audience={}&format=full",
                query_value(&gcp_audience(key_sha256))
            );
            let jwt = request(addr, get, &path, &[("Metadata-Flavor", "Google")]).await?;
            (jwt, vec![])
        }
        "azure" => {
            let path = format!(
                "/metadata/attested/document?api-version={AZURE_API_VERSION}&nonce={}",
                azure_nonce(key_sha256)
            );
            let doc = request(addr, get, &path, &[("Metadata", "true")]).await?;
            (doc, vec![])
        }
        other => return Err(FetchError::Unsupported(other.chars().take(32).collect())),
    };
    Ok(SignedIdentity {
        provider: provider.to_string(),
        document,
        signature,
    })
}

/// Fetches `provider`'s signed document from the metadata service at `base_url`
/// (`http://HOST[:PORT]`), bound to the key hashing to `key_sha256` where the
/// provider allows, within `timeout`.
pub async fn fetch(
    provider: &str,
    base_url: &str,
    key_sha256: &str,
    timeout: Duration,
) -> Result<SignedIdentity, FetchError> {
    if !matches!(provider, "aws" | "gcp" | "azure") {
        return Err(FetchError::Unsupported(provider.chars().take(32).collect()));
    }
    let addr = authority(base_url)?;
    tokio::time::timeout(timeout, fetch_inner(provider, &addr, key_sha256))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bindings() {
        for (url, want) in [
            ("http://169.254.169.254", Some("169.254.169.254:80")),
            ("http://127.0.0.1:8080/", Some("127.0.0.1:8080")),
            ("http://[::1]:81", Some("[::1]:81")),
            (
                "http://metadata.google.internal",
                Some("metadata.google.internal:80"),
            ),
            ("https://169.254.169.254", None),
            ("http://a/b", None),
            ("http://", None),
            ("http://u@h:1", None),
        ] {
            assert_eq!(authority(url).ok().as_deref(), want, "{url}");
        }
        let h = "ab".repeat(32);
        assert_eq!(
            query_value(&gcp_audience(&h)),
            format!("urn%3Arampart%3Aenroll%3A{h}")
        );
        assert_eq!(azure_nonce(&h), "ab".repeat(16));
    }

    #[tokio::test]
    async fn unsupported_providers_and_bad_urls_are_errors() {
        // (timeouts and dead services: tests/tests/identity.rs; the agent's own tree
        // never holds a listener.)
        let e = fetch("vmware", DEFAULT_METADATA_URL, "00", FETCH_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Unsupported(_)), "{e}");
        let e = fetch("gcp", "ftp://x", "00", FETCH_TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::BadUrl(_)), "{e}");
    }
}
