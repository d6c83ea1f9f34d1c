//! Signed instance identity documents: what a cloud provider says about a VM, checked
//! at enrollment against trust anchors the operator configured (`[instance_identity]`).
//!
//! - **AWS**: the JSON instance identity document and its base64 RSA SHA-256
//!   signature (`/latest/dynamic/instance-identity/signature`), verified with the
//!   region's AWS "RSA" certificate. AWS signs no caller data, so the document cannot
//!   be bound to the enrollment key: a captured document verifies for anyone.
//! - **GCP**: the instance identity token, a JWT signed RS256 with a key of Google's
//!   JWKS, asked for with `format=full` and audience [`gcp_audience`] (a hash of the
//!   CSR's public key): a token captured on one VM cannot enroll another key.
//! - **Azure**: the attested document, a CMS SignedData whose signer certificate
//!   (`metadata.azure.com`) chains to a configured root, asked for with nonce
//!   [`azure_nonce`] (the same hash).
//!
//! Every check is pure: anchors are loaded once ([`Anchors::load`]), and [`verify`]
//! takes the document, what the enrollment claims and the time. Nothing here panics
//! on what a caller sends; every failure is a [`Failure`] whose words quote at most a
//! short prefix of the input.
//!
//! Files: this one holds the configuration, the anchors, the claim and the failure,
//! and [`verify`], which checks what every provider shares and hands the document to
//! `aws`, `gcp` or `azure`; `cms` is the small DER reader of Azure's PKCS#7.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::limits::echo;

mod aws;
mod azure;
mod cms;
mod gcp;

use gcp::{parse_jwks, Jwk};

/// Largest identity document (and, apart, its signature) accepted.
pub const DOCUMENT_BYTES: usize = 12 * 1024;
/// Largest AWS signature (base64 of an RSA signature of up to 8192 bits).
pub const SIGNATURE_BYTES: usize = 2 * 1024;
/// The rsaEncryption public key algorithm.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// The GCP audience an agent asks for: binds the token to the enrollment key.
pub fn gcp_audience(spki_sha256_hex: &str) -> String {
    format!("urn:rampart:enroll:{spki_sha256_hex}")
}

/// The Azure nonce an agent asks for (32 alphanumerics at most, 128 bits of the hash).
pub fn azure_nonce(spki_sha256_hex: &str) -> String {
    spki_sha256_hex.chars().take(32).collect()
}

/// `[instance_identity]` in the collector's config: where the trust anchors are and
/// what is required. Parsed without side effects; [`Anchors::load`] reads the files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// PEM files of AWS's per-region "RSA" certificates (the ones for the
    /// base64-encoded signature). Empty: AWS documents are not verified.
    pub aws_certificates: Vec<PathBuf>,
    /// Google's JWKS (`https://www.googleapis.com/oauth2/v3/certs`), saved to a
    /// file. Unset: GCP tokens are not verified.
    pub gcp_jwks: Option<PathBuf>,
    /// PEM files of the roots an Azure signer must chain to. Empty: Azure documents
    /// are not verified.
    pub azure_roots: Vec<PathBuf>,
    /// PEM files of intermediate certificates, for chains the document omits.
    pub azure_intermediates: Vec<PathBuf>,
    /// Names (DNS SAN or common name) an Azure signer certificate must carry.
    pub azure_signer_names: Vec<String>,
    /// A GCP token issued, or an Azure document created, longer ago than this is stale.
    pub max_age_secs: i64,
    /// Clock difference tolerated between the provider and the collector.
    pub clock_skew_secs: i64,
    /// Refuse every enrollment whose identity is not verified.
    pub require_verified: bool,
    /// Refuse enrollments into these projects (from the token) whose identity is not
    /// verified.
    pub require_verified_projects: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            aws_certificates: vec![],
            gcp_jwks: None,
            azure_roots: vec![],
            azure_intermediates: vec![],
            azure_signer_names: vec!["metadata.azure.com".into()],
            max_age_secs: 3600,
            clock_skew_secs: 300,
            require_verified: false,
            require_verified_projects: vec![],
        }
    }
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(60..=7 * 86_400).contains(&self.max_age_secs) {
            return Err("instance_identity.max_age_secs must be between 60 and 604800".into());
        }
        if !(0..=3600).contains(&self.clock_skew_secs) {
            return Err("instance_identity.clock_skew_secs must be between 0 and 3600".into());
        }
        if !self.azure_roots.is_empty() && self.azure_signer_names.is_empty() {
            return Err(
                "instance_identity.azure_signer_names must name at least one signer".into(),
            );
        }
        Ok(())
    }

    /// Whether an enrollment into `project` must have a verified identity.
    pub fn requires_verified(&self, project: Option<&str>) -> bool {
        self.require_verified
            || project.is_some_and(|p| self.require_verified_projects.iter().any(|x| x == p))
    }
}

/// The trust anchors, loaded from the files [`IdentityConfig`] names.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    /// (file name, PKCS#1 RSA public key) per AWS certificate.
    aws: Vec<(String, Vec<u8>)>,
    gcp: Vec<Jwk>,
    azure_roots: Vec<Vec<u8>>,
    azure_intermediates: Vec<Vec<u8>>,
    azure_signer_names: Vec<String>,
    max_age_secs: i64,
    clock_skew_secs: i64,
}

/// Why anchors could not be loaded (at start-up: the collector does not start).
#[derive(Debug, thiserror::Error)]
#[error("instance_identity: {path}: {reason}")]
pub struct AnchorError {
    pub path: PathBuf,
    pub reason: String,
}

fn pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, AnchorError> {
    let err = |reason: String| AnchorError {
        path: path.into(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut out = vec![];
    for pem in x509_parser::pem::Pem::iter_from_buffer(&text) {
        let pem = pem.map_err(|e| err(format!("not PEM: {e}")))?;
        if pem.label == "CERTIFICATE" {
            X509Certificate::from_der(&pem.contents)
                .map_err(|e| err(format!("unreadable certificate: {e}")))?;
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(err("holds no certificate".into()));
    }
    Ok(out)
}

impl Anchors {
    /// Reads every file the configuration names; any unreadable one is an error.
    pub fn load(c: &IdentityConfig) -> Result<Anchors, AnchorError> {
        let mut a = Anchors {
            azure_signer_names: c.azure_signer_names.clone(),
            max_age_secs: c.max_age_secs,
            clock_skew_secs: c.clock_skew_secs,
            ..Default::default()
        };
        for p in &c.aws_certificates {
            for der in pem_certificates(p)? {
                let bad = |reason: String| AnchorError {
                    path: p.clone(),
                    reason,
                };
                let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
                if cert.public_key().algorithm.algorithm.to_id_string() != RSA_ENCRYPTION {
                    return Err(bad(
                        "holds no RSA key: use the region's AWS \"RSA\" certificate (the one for the base64-encoded signature)".into(),
                    ));
                }
                let key = cert.public_key().subject_public_key.data.to_vec();
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                a.aws.push((name, key));
            }
        }
        if let Some(p) = &c.gcp_jwks {
            let text = std::fs::read(p).map_err(|e| AnchorError {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            a.gcp = parse_jwks(&text).map_err(|reason| AnchorError {
                path: p.clone(),
                reason,
            })?;
        }
        for p in &c.azure_roots {
            a.azure_roots.extend(pem_certificates(p)?);
        }
        for p in &c.azure_intermediates {
            a.azure_intermediates.extend(pem_certificates(p)?);
        }
        Ok(a)
    }

    /// Whether documents of `provider` can be verified here.
    pub fn has(&self, provider: &str) -> bool {
        match provider {
            "aws" => !self.aws.is_empty(),
            "gcp" => !self.gcp.is_empty(),
            "azure" => !self.azure_roots.is_empty(),
            _ => false,
        }
    }
}

/// What the enrollment claims, against which a document is checked.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub provider: &'a str,
    /// Empty when the agent could not tell: the document's is taken.
    pub instance_id: &'a str,
    /// Hex SHA-256 of the CSR's SubjectPublicKeyInfo.
    pub key_sha256: &'a str,
}

/// A document as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    pub provider: &'a str,
    pub document: &'a [u8],
    pub signature: &'a [u8],
}

/// A document that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The instance ID the provider signed (what the agent is enrolled with).
    pub instance_id: String,
    /// What vouched for it, in words (for the API and the audit log).
    pub detail: String,
}

/// Why a document did not verify.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    /// The document or its signature is over its bound.
    #[error("the identity document is {0} bytes; at most {DOCUMENT_BYTES} are accepted")]
    Oversized(usize),
    /// Not a provider this collector knows documents of.
    #[error("identity documents of provider `{0}` are not known")]
    UnknownProvider(String),
    /// The document is of another provider than the enrollment claims.
    #[error("the identity document is from {doc} but the enrollment claims {claim}")]
    ProviderMismatch { doc: String, claim: String },
    /// No anchors for this provider are configured: not a refusal, just unverified.
    #[error("no trust anchors for {0} documents are configured")]
    NoAnchors(String),
    /// The document cannot be read.
    #[error("unreadable identity document: {0}")]
    Malformed(String),
    /// The signature does not verify with the key it names.
    #[error("the identity document's signature does not verify: {0}")]
    BadSignature(String),
    /// The signer is not one of, or does not chain to, the configured anchors.
    #[error("the identity document's signer is not trusted: {0}")]
    UntrustedSigner(String),
    /// The document is about another instance.
    #[error("the identity document is for instance {doc}, not {claim}")]
    InstanceMismatch { doc: String, claim: String },
    /// Too old, or not yet valid.
    #[error("the identity document is stale: {0}")]
    Stale(String),
    /// Asked for another key (GCP audience, Azure nonce).
    #[error("the identity document is bound to another key: {0}")]
    WrongBinding(String),
}

/// Verifies `doc` against the anchors and the claim at `now` (Unix seconds).
pub fn verify(
    anchors: &Anchors,
    doc: &Document<'_>,
    claim: &Claim<'_>,
    now: i64,
) -> Result<Verified, Failure> {
    if doc.document.len() > DOCUMENT_BYTES {
        return Err(Failure::Oversized(doc.document.len()));
    }
    if doc.signature.len() > SIGNATURE_BYTES {
        return Err(Failure::Oversized(doc.signature.len()));
    }
    if !matches!(doc.provider, "aws" | "gcp" | "azure") {
        return Err(Failure::UnknownProvider(echo(doc.provider)));
    }
    if doc.provider != claim.provider {
        return Err(Failure::ProviderMismatch {
            doc: doc.provider.into(),
            claim: echo(claim.provider),
        });
    }
    if !anchors.has(doc.provider) {
        return Err(Failure::NoAnchors(doc.provider.into()));
    }
    let v = match doc.provider {
        "aws" => aws::verify(anchors, doc)?,
        "gcp" => gcp::verify(anchors, doc, claim, now)?,
        _ => azure::verify(anchors, doc, claim, now)?,
    };
    let same = if doc.provider == "azure" {
        // Azure VM IDs: any case; SMBIOS (what DMI shows) may hold the first three
        // fields byte-swapped on older VMs.
        v.instance_id.eq_ignore_ascii_case(claim.instance_id)
            || azure::swapped_uuid(claim.instance_id)
                .is_some_and(|s| v.instance_id.eq_ignore_ascii_case(&s))
    } else {
        v.instance_id == claim.instance_id
    };
    if !claim.instance_id.is_empty() && !same {
        return Err(Failure::InstanceMismatch {
            doc: echo(&v.instance_id),
            claim: echo(claim.instance_id),
        });
    }
    Ok(v)
}

fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str, Failure> {
    std::str::from_utf8(b).map_err(|_| Failure::Malformed(format!("{what} is not UTF-8")))
}

/// Issued not too long ago, not in the future, not expired (skew allowed).
fn fresh(a: &Anchors, issued: i64, expires: Option<i64>, now: i64) -> Result<(), Failure> {
    let skew = a.clock_skew_secs;
    if issued > now.saturating_add(skew) {
        return Err(Failure::Stale(format!(
            "issued {} s in the future",
            issued.saturating_sub(now)
        )));
    }
    if now.saturating_sub(issued) > a.max_age_secs {
        return Err(Failure::Stale(format!(
            "issued {} s ago; at most {} s are accepted",
            now.saturating_sub(issued),
            a.max_age_secs
        )));
    }
    if let Some(exp) = expires {
        if now > exp.saturating_add(skew) {
            return Err(Failure::Stale(format!(
                "expired {} s ago",
                now.saturating_sub(exp)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::azure::{azure_time, swapped_uuid};
    use super::*;
    use base64::Engine;

    fn anchors() -> Anchors {
        // Keys that verify nothing: enough to get past "no anchors".
        Anchors {
            aws: vec![("none.pem".into(), vec![0x30, 0x00])],
            gcp: vec![Jwk {
                kid: "k1".into(),
                n: vec![1; 256],
                e: vec![1, 0, 1],
            }],
            azure_roots: vec![vec![0x30, 0x00]],
            azure_signer_names: vec!["metadata.azure.com".into()],
            max_age_secs: 3600,
            clock_skew_secs: 300,
            ..Default::default()
        }
    }

    fn check(provider: &str, document: &[u8], signature: &[u8]) -> Failure {
        verify(
            &anchors(),
            &Document {
                provider,
                document,
                signature,
            },
            &Claim {
                provider,
                instance_id: "i-1",
                key_sha256: &"ab".repeat(32),
            },
            1_700_000_000,
        )
        .unwrap_err()
    }

    #[test]
    fn garbage_is_refused_in_words() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |h: &str, p: &str| format!("{}.{}.{}", b64(h), b64(p), b64("sig"));
        // (provider, document, signature, words the failure must hold)
        let cases: Vec<(&str, Vec<u8>, Vec<u8>, &str)> = vec![
            ("aws", b"{}".to_vec(), b"%%%".to_vec(), "not base64"),
            (
                "aws",
                b"{}".to_vec(),
                b"AAAA".to_vec(),
                "none of the configured",
            ),
            ("aws", vec![0xff; 10], vec![0xff], "not UTF-8"),
            ("gcp", b"not a jwt".to_vec(), vec![], "not a JWT"),
            ("gcp", b"a.b.c.d".to_vec(), vec![], "not a JWT"),
            ("gcp", b"!!.!!.!!".to_vec(), vec![], "not base64url"),
            (
                "gcp",
                jwt("[]", "{}").into_bytes(),
                vec![],
                "header is not JSON",
            ),
            (
                "gcp",
                jwt(r#"{"alg":"none"}"#, "{}").into_bytes(),
                vec![],
                "not RS256",
            ),
            (
                "gcp",
                jwt(r#"{"alg":"RS256","kid":"other"}"#, "{}").into_bytes(),
                vec![],
                "not in the configured JWKS",
            ),
            (
                "gcp",
                jwt(r#"{"alg":"RS256","kid":"k1"}"#, "{}").into_bytes(),
                vec![],
                "does not verify",
            ),
            ("azure", b"[]".to_vec(), vec![], "not JSON"),
            (
                "azure",
                br#"{"encoding":"der","signature":""}"#.to_vec(),
                vec![],
                "not pkcs7",
            ),
            (
                "azure",
                br#"{"encoding":"pkcs7","signature":"***"}"#.to_vec(),
                vec![],
                "not base64",
            ),
            (
                "azure",
                br#"{"encoding":"pkcs7","signature":"MAA="}"#.to_vec(),
                vec![],
                "PKCS#7",
            ),
            ("aws", vec![b'x'; DOCUMENT_BYTES + 1], vec![], "bytes"),
            ("ibm", b"{}".to_vec(), vec![], "not known"),
        ];
        for (provider, doc, sig, want) in cases {
            let f = check(provider, &doc, &sig).to_string();
            assert!(
                f.contains(want),
                "{provider} {:?}: {f}",
                echo(&String::from_utf8_lossy(&doc))
            );
            assert!(f.len() < 400, "{f}");
        }
    }

    #[test]
    fn provider_and_anchors_come_first() {
        let none = Anchors::default();
        let d = Document {
            provider: "gcp",
            document: b"x",
            signature: b"",
        };
        let claim = |provider| Claim {
            provider,
            instance_id: "",
            key_sha256: "00",
        };
        assert_eq!(
            verify(&none, &d, &claim("gcp"), 0),
            Err(Failure::NoAnchors("gcp".into()))
        );
        assert!(matches!(
            verify(&none, &d, &claim("aws"), 0),
            Err(Failure::ProviderMismatch { .. })
        ));
    }

    #[test]
    fn freshness_and_times() {
        let a = anchors();
        let now = 1_700_000_000;
        // (issued, expires, ok)
        for (iat, exp, ok) in [
            (now - 10, Some(now + 3590), true),
            (now + 200, Some(now + 3800), true),
            (now + 400, Some(now + 4000), false),
            (now - 3700, Some(now + 100), false),
            (now - 100, Some(now - 400), false),
            (now - 100, Some(now - 200), true),
            (i64::MIN, Some(i64::MIN), false),
            (i64::MAX, Some(i64::MAX), false),
        ] {
            assert_eq!(fresh(&a, iat, exp, now).is_ok(), ok, "{iat} {exp:?}");
        }
        assert_eq!(azure_time("11/28/18 00:16:17 -0000"), Some(1_543_364_177));
        assert_eq!(azure_time("2018-11-28"), None);
    }

    #[test]
    fn anchors_that_cannot_be_read_stop_the_start() {
        let d = tempfile::tempdir().unwrap();
        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let ec = d.path().join("ec.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ec, cert.pem()).unwrap();
        // (configuration, words of the error)
        for (c, want) in [
            (
                IdentityConfig {
                    aws_certificates: vec![d.path().join("missing.pem")],
                    ..Default::default()
                },
                "missing.pem",
            ),
            (
                IdentityConfig {
                    azure_roots: vec![junk.clone()],
                    ..Default::default()
                },
                "holds no certificate",
            ),
            (
                IdentityConfig {
                    aws_certificates: vec![ec],
                    ..Default::default()
                },
                "holds no RSA key",
            ),
            (
                IdentityConfig {
                    gcp_jwks: Some(junk),
                    ..Default::default()
                },
                "not a JWKS",
            ),
        ] {
            let e = Anchors::load(&c).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        let none = Anchors::load(&IdentityConfig::default()).unwrap();
        assert!(!none.has("aws") && !none.has("gcp") && !none.has("azure"));
    }

    #[test]
    fn jwks_and_config() {
        let jwks = br#"{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB","alg":"RS256"},{"kty":"EC","kid":"b"}]}"#;
        let k = parse_jwks(jwks).unwrap();
        assert_eq!((k.len(), k[0].kid.as_str()), (1, "a"));
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
        assert!(parse_jwks(b"nope").is_err());
        let c = IdentityConfig {
            require_verified_projects: vec!["prod".into()],
            ..Default::default()
        };
        assert!(c.requires_verified(Some("prod")));
        assert!(!c.requires_verified(Some("dev")) && !c.requires_verified(None));
        assert!(c.validate().is_ok());
        let bad = IdentityConfig {
            max_age_secs: 1,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_age_secs"));
        assert_eq!(azure_nonce(&"ab".repeat(32)).len(), 32);
        assert_eq!(
            swapped_uuid("8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0d").as_deref(),
            Some("3c9b5b8e-2a1d-3b4f-9c4d-5e6f7a8b9c0d")
        );
        assert_eq!(swapped_uuid("i-0123"), None);
        assert_eq!(swapped_uuid("8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0"), None);
    }
}
