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

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::limits::echo;

/// Largest identity document (and, apart, its signature) accepted.
pub const DOCUMENT_BYTES: usize = 12 * 1024;
/// Largest AWS signature (base64 of an RSA signature of up to 8192 bits).
pub const SIGNATURE_BYTES: usize = 2 * 1024;
/// The rsaEncryption public key algorithm.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
/// Deepest certificate chain followed from an Azure signer to a root.
const MAX_CHAIN: usize = 5;

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

/// A JWKS key: RSA modulus and exponent.
#[derive(Debug, Clone)]
struct Jwk {
    kid: String,
    n: Vec<u8>,
    e: Vec<u8>,
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

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// Parses a JWKS document: its RSA keys with a `kid`.
fn parse_jwks(text: &[u8]) -> Result<Vec<Jwk>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Key>,
    }
    #[derive(Deserialize)]
    struct Key {
        kty: String,
        #[serde(default)]
        kid: String,
        #[serde(default)]
        n: String,
        #[serde(default)]
        e: String,
    }
    let set: Set = serde_json::from_slice(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: Vec<Jwk> = set
        .keys
        .into_iter()
        .filter(|k| k.kty == "RSA" && !k.kid.is_empty())
        .map(|k| {
            Ok(Jwk {
                n: b64url(&k.n).ok_or_else(|| format!("key {}: bad n", k.kid))?,
                e: b64url(&k.e).ok_or_else(|| format!("key {}: bad e", k.kid))?,
                kid: k.kid,
            })
        })
        .collect::<Result<_, String>>()?;
    if keys.is_empty() {
        return Err("holds no RSA key with a kid".into());
    }
    Ok(keys)
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
        "aws" => verify_aws(anchors, doc)?,
        "gcp" => verify_gcp(anchors, doc, claim, now)?,
        _ => verify_azure(anchors, doc, claim, now)?,
    };
    let same = if doc.provider == "azure" {
        // Azure VM IDs: any case; SMBIOS (what DMI shows) may hold the first three
        // fields byte-swapped on older VMs.
        v.instance_id.eq_ignore_ascii_case(claim.instance_id)
            || swapped_uuid(claim.instance_id)
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

/// A UUID with its first three fields byte-reversed (the mixed-endian SMBIOS form).
fn swapped_uuid(u: &str) -> Option<String> {
    let parts: Vec<&str> = u.split('-').collect();
    let ok = parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return None;
    }
    let rev = |p: &str| -> String {
        (0..p.len())
            .step_by(2)
            .rev()
            .map(|i| &p[i..i + 2])
            .collect()
    };
    Some(format!(
        "{}-{}-{}-{}-{}",
        rev(parts[0]),
        rev(parts[1]),
        rev(parts[2]),
        parts[3],
        parts[4]
    ))
}

fn text<'a>(b: &'a [u8], what: &str) -> Result<&'a str, Failure> {
    std::str::from_utf8(b).map_err(|_| Failure::Malformed(format!("{what} is not UTF-8")))
}

// ---- AWS

fn verify_aws(a: &Anchors, doc: &Document<'_>) -> Result<Verified, Failure> {
    let sig_text: String = text(doc.signature, "the signature")?
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig_text)
        .map_err(|_| Failure::Malformed("the signature is not base64".into()))?;
    // AWS's "RSA" certificates hold 1024-bit keys (hence ring's legacy variant).
    let alg = &ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY;
    let signer = a.aws.iter().find(|(_, key)| {
        ring::signature::UnparsedPublicKey::new(alg, key)
            .verify(doc.document, &sig)
            .is_ok()
    });
    let Some((name, _)) = signer else {
        return Err(Failure::UntrustedSigner(
            "the signature verifies with none of the configured AWS certificates".into(),
        ));
    };
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Iid {
        instance_id: String,
        #[serde(default)]
        region: String,
        #[serde(default)]
        account_id: String,
    }
    let iid: Iid = serde_json::from_slice(doc.document)
        .map_err(|e| Failure::Malformed(format!("AWS document: {}", echo(&e.to_string()))))?;
    Ok(Verified {
        detail: format!(
            "AWS instance identity document (account {}, region {}) signed by {}",
            echo(&iid.account_id),
            echo(&iid.region),
            echo(name)
        ),
        instance_id: iid.instance_id,
    })
}

// ---- GCP

fn verify_gcp(
    a: &Anchors,
    doc: &Document<'_>,
    claim: &Claim<'_>,
    now: i64,
) -> Result<Verified, Failure> {
    let jwt = text(doc.document, "the token")?.trim();
    let mut parts = jwt.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::Malformed("the token is not a JWT".into()));
    };
    let bad = |what: &str| Failure::Malformed(format!("the token's {what} is not base64url"));
    let (header, payload, sig) = (
        b64url(h).ok_or_else(|| bad("header"))?,
        b64url(p).ok_or_else(|| bad("payload"))?,
        b64url(s).ok_or_else(|| bad("signature"))?,
    );
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: String,
    }
    let header: Header = serde_json::from_slice(&header)
        .map_err(|_| Failure::Malformed("the token's header is not JSON".into()))?;
    if header.alg != "RS256" {
        return Err(Failure::Malformed(format!(
            "the token is signed with {}, not RS256",
            echo(&header.alg)
        )));
    }
    let Some(key) = a.gcp.iter().find(|k| k.kid == header.kid) else {
        return Err(Failure::UntrustedSigner(format!(
            "key {} is not in the configured JWKS",
            echo(&header.kid)
        )));
    };
    let signed = &jwt.as_bytes()[..h.len() + 1 + p.len()];
    ring::signature::RsaPublicKeyComponents {
        n: &key.n,
        e: &key.e,
    }
    .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
    .map_err(|_| Failure::BadSignature(format!("RS256 with key {}", echo(&key.kid))))?;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        iss: String,
        #[serde(default)]
        aud: serde_json::Value,
        iat: i64,
        exp: i64,
        google: Option<Google>,
    }
    #[derive(Deserialize)]
    struct Google {
        compute_engine: Option<Gce>,
    }
    #[derive(Deserialize)]
    struct Gce {
        instance_id: String,
        #[serde(default)]
        project_id: String,
        #[serde(default)]
        zone: String,
    }
    let c: Claims = serde_json::from_slice(&payload)
        .map_err(|e| Failure::Malformed(format!("the token's claims: {}", echo(&e.to_string()))))?;
    if c.iss != "https://accounts.google.com" && c.iss != "accounts.google.com" {
        return Err(Failure::Malformed(format!(
            "the token's issuer is {}",
            echo(&c.iss)
        )));
    }
    let want = gcp_audience(claim.key_sha256);
    let aud_ok = match &c.aud {
        serde_json::Value::String(s) => *s == want,
        serde_json::Value::Array(v) => v.iter().any(|x| x.as_str() == Some(want.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(Failure::WrongBinding(format!(
            "the token's audience is {}, not this CSR's key",
            echo(&c.aud.to_string())
        )));
    }
    fresh(a, c.iat, Some(c.exp), now)?;
    let Some(gce) = c.google.and_then(|g| g.compute_engine) else {
        return Err(Failure::Malformed(
            "the token has no google.compute_engine claims (format=full)".into(),
        ));
    };
    Ok(Verified {
        detail: format!(
            "GCP identity token (project {}, zone {}) signed by Google key {}",
            echo(&gce.project_id),
            echo(&gce.zone),
            echo(&key.kid)
        ),
        instance_id: gce.instance_id,
    })
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

// ---- Azure

/// Azure's time stamps: `MM/DD/YY HH:MM:SS -0000`.
fn azure_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s.trim(), "%m/%d/%y %H:%M:%S %z")
        .ok()
        .map(|t| t.timestamp())
}

fn verify_azure(
    a: &Anchors,
    doc: &Document<'_>,
    claim: &Claim<'_>,
    now: i64,
) -> Result<Verified, Failure> {
    #[derive(Deserialize)]
    struct Attested {
        encoding: String,
        signature: String,
    }
    let att: Attested = serde_json::from_slice(doc.document)
        .map_err(|_| Failure::Malformed("the attested document is not JSON".into()))?;
    if att.encoding != "pkcs7" {
        return Err(Failure::Malformed(format!(
            "encoding {} is not pkcs7",
            echo(&att.encoding)
        )));
    }
    let b64: String = att
        .signature
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Failure::Malformed("the PKCS#7 signature is not base64".into()))?;
    let sd = cms::signed_data(&der).map_err(|e| Failure::Malformed(format!("PKCS#7: {e}")))?;
    // The signer certificate: named by issuer and serial (or key identifier).
    let certs: Vec<X509Certificate<'_>> = sd
        .certificates
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    let signer = certs
        .iter()
        .find(|c| match &sd.signer_id {
            cms::SignerId::IssuerSerial { issuer, serial } => {
                c.issuer().as_raw() == *issuer && strip_zeros(c.raw_serial()) == strip_zeros(serial)
            }
            cms::SignerId::KeyId(id) => c
                .extensions()
                .iter()
                .find_map(|e| match e.parsed_extension() {
                    x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                        Some(k.0 == *id)
                    }
                    _ => None,
                })
                .unwrap_or(false),
        })
        .ok_or_else(|| {
            Failure::Malformed("the PKCS#7 does not hold its signer's certificate".into())
        })?;
    // The signature over the content (through the signed attributes when present).
    let digest_alg = match sd.digest_oid.as_str() {
        cms::SHA256 => &ring::digest::SHA256,
        cms::SHA384 => &ring::digest::SHA384,
        cms::SHA512 => &ring::digest::SHA512,
        other => {
            return Err(Failure::Malformed(format!(
                "digest algorithm {} is not supported",
                echo(other)
            )))
        }
    };
    let sig_alg: &dyn ring::signature::VerificationAlgorithm = match sd.digest_oid.as_str() {
        cms::SHA256 => &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        cms::SHA384 => &ring::signature::RSA_PKCS1_2048_8192_SHA384,
        _ => &ring::signature::RSA_PKCS1_2048_8192_SHA512,
    };
    let signed: Vec<u8> = match &sd.signed_attrs {
        Some(attrs) => {
            let digest = ring::digest::digest(digest_alg, &sd.content);
            if attrs.message_digest.as_deref() != Some(digest.as_ref()) {
                return Err(Failure::BadSignature(
                    "the signed message digest is not the content's".into(),
                ));
            }
            attrs.der_as_set.clone()
        }
        None => sd.content.clone(),
    };
    ring::signature::UnparsedPublicKey::new(sig_alg, &signer.public_key().subject_public_key.data)
        .verify(&signed, &sd.signature)
        .map_err(|_| Failure::BadSignature("RSA with the signer certificate's key".into()))?;
    // The signer is Azure's, and chains to a configured root.
    let names = cert_names(signer);
    if !names.iter().any(|n| {
        a.azure_signer_names
            .iter()
            .any(|w| w.eq_ignore_ascii_case(n))
    }) {
        return Err(Failure::UntrustedSigner(format!(
            "the signer certificate names {}, not {}",
            echo(&names.join(", ")),
            a.azure_signer_names.join(", ")
        )));
    }
    chain_to_root(a, signer, &sd.certificates, now)?;
    // The content: nonce (the binding), VM ID, time stamps.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Content {
        #[serde(default)]
        nonce: String,
        vm_id: String,
        time_stamp: Stamps,
        #[serde(default)]
        subscription_id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stamps {
        created_on: String,
        expires_on: String,
    }
    let c: Content = serde_json::from_slice(&sd.content).map_err(|e| {
        Failure::Malformed(format!("the attested content: {}", echo(&e.to_string())))
    })?;
    let want = azure_nonce(claim.key_sha256);
    if c.nonce != want {
        return Err(Failure::WrongBinding(format!(
            "the nonce is {}, not this CSR's key",
            echo(&c.nonce)
        )));
    }
    let (Some(created), Some(expires)) = (
        azure_time(&c.time_stamp.created_on),
        azure_time(&c.time_stamp.expires_on),
    ) else {
        return Err(Failure::Malformed("unreadable time stamps".into()));
    };
    fresh(a, created, Some(expires), now)?;
    Ok(Verified {
        detail: format!(
            "Azure attested document (subscription {}) signed by {}",
            echo(&c.subscription_id),
            echo(&names.first().cloned().unwrap_or_default())
        ),
        instance_id: c.vm_id,
    })
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|x| **x == 0).count();
    &b[n..]
}

/// DNS names of the subject alternative name, then common names.
fn cert_names(c: &X509Certificate<'_>) -> Vec<String> {
    let mut out = vec![];
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                out.push(d.to_string());
            }
        }
    }
    for cn in c.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            out.push(s.to_string());
        }
    }
    out
}

fn parse_cert(d: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(d).ok().map(|(_, c)| c)
}

/// Follows issuers from `leaf` (through the document's certificates and the
/// configured intermediates) to a configured root; every certificate on the way
/// must be valid now and signed by the next.
fn chain_to_root(
    a: &Anchors,
    leaf: &X509Certificate<'_>,
    bundled: &[Vec<u8>],
    now: i64,
) -> Result<(), Failure> {
    let roots: Vec<X509Certificate<'_>> =
        a.azure_roots.iter().filter_map(|d| parse_cert(d)).collect();
    let pool: Vec<X509Certificate<'_>> = bundled
        .iter()
        .chain(&a.azure_intermediates)
        .filter_map(|d| parse_cert(d))
        .collect();
    let valid = |c: &X509Certificate<'_>| {
        let t = c.validity();
        t.not_before.timestamp() <= now && now <= t.not_after.timestamp()
    };
    let mut cur = leaf.clone();
    for _ in 0..MAX_CHAIN {
        if !valid(&cur) {
            return Err(Failure::UntrustedSigner(format!(
                "certificate {} is not valid now",
                echo(&cur.subject().to_string())
            )));
        }
        if let Some(root) = roots.iter().find(|r| {
            r.subject().as_raw() == cur.issuer().as_raw()
                && cur.verify_signature(Some(r.public_key())).is_ok()
        }) {
            if !valid(root) {
                return Err(Failure::UntrustedSigner("the root is not valid now".into()));
            }
            return Ok(());
        }
        let next = pool.iter().find(|p| {
            p.subject().as_raw() == cur.issuer().as_raw()
                && p.as_raw() != cur.as_raw()
                && cur.verify_signature(Some(p.public_key())).is_ok()
                && p.is_ca()
        });
        match next {
            Some(n) => cur = n.clone(),
            None => {
                return Err(Failure::UntrustedSigner(format!(
                    "no configured root vouches for {}",
                    echo(&cur.issuer().to_string())
                )))
            }
        }
    }
    Err(Failure::UntrustedSigner("the chain is too long".into()))
}

/// Just enough CMS (RFC 5652) to read one SignedData: strict DER lengths, BER
/// indefinite lengths accepted, every read bounded.
mod cms {
    pub const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    pub const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    pub const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
    const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

    pub enum SignerId {
        IssuerSerial { issuer: Vec<u8>, serial: Vec<u8> },
        KeyId(Vec<u8>),
    }

    pub struct SignedAttrs {
        /// The attributes re-tagged as a SET: what the signature covers.
        pub der_as_set: Vec<u8>,
        pub message_digest: Option<Vec<u8>>,
    }

    pub struct SignedData {
        pub content: Vec<u8>,
        pub certificates: Vec<Vec<u8>>,
        pub signer_id: SignerId,
        pub digest_oid: String,
        pub signed_attrs: Option<SignedAttrs>,
        pub signature: Vec<u8>,
    }

    /// One element: its tag, contents and whole encoding.
    #[derive(Clone, Copy)]
    struct Tlv<'a> {
        tag: u8,
        body: &'a [u8],
        raw: &'a [u8],
    }

    const MAX_DEPTH: usize = 24;

    fn header(input: &[u8]) -> Result<(u8, Option<usize>, usize), String> {
        let tag = *input.first().ok_or("truncated")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte tags are not supported".into());
        }
        let l0 = *input.get(1).ok_or("truncated")?;
        if l0 < 0x80 {
            return Ok((tag, Some(l0 as usize), 2));
        }
        if l0 == 0x80 {
            return Ok((tag, None, 2));
        }
        let n = (l0 & 0x7f) as usize;
        if n > 4 {
            return Err("length too long".into());
        }
        let bytes = input.get(2..2 + n).ok_or("truncated")?;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
        Ok((tag, Some(len), 2 + n))
    }

    fn tlv_at(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let (tag, len, hl) = header(input)?;
        match len {
            Some(len) => {
                let end = hl.checked_add(len).ok_or("length overflow")?;
                let body = input.get(hl..end).ok_or("truncated")?;
                Ok((
                    Tlv {
                        tag,
                        body,
                        raw: &input[..end],
                    },
                    &input[end..],
                ))
            }
            None => {
                if tag & 0x20 == 0 {
                    return Err("indefinite length on a primitive".into());
                }
                let mut rest = &input[hl..];
                loop {
                    if rest.starts_with(&[0, 0]) {
                        let body_len = input.len() - hl - rest.len();
                        let end = hl + body_len + 2;
                        return Ok((
                            Tlv {
                                tag,
                                body: &input[hl..hl + body_len],
                                raw: &input[..end],
                            },
                            &input[end..],
                        ));
                    }
                    let (_, r) = tlv_at(rest, depth + 1)?;
                    rest = r;
                }
            }
        }
    }

    fn tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
        tlv_at(input, 0)
    }

    /// The children of a constructed element (end-of-contents markers skipped).
    fn children(body: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
        let mut out = vec![];
        let mut rest = body;
        while !rest.is_empty() {
            if rest.starts_with(&[0, 0]) {
                rest = &rest[2..];
                continue;
            }
            let (t, r) = tlv(rest)?;
            out.push(t);
            rest = r;
            if out.len() > 256 {
                return Err("too many elements".into());
            }
        }
        Ok(out)
    }

    fn expect<'a>(t: Option<&Tlv<'a>>, tag: u8, what: &str) -> Result<Tlv<'a>, String> {
        match t {
            Some(t) if t.tag == tag => Ok(*t),
            _ => Err(format!("expected {what}")),
        }
    }

    fn oid(body: &[u8]) -> Result<String, String> {
        let first = *body.first().ok_or("empty OID")?;
        let mut parts = vec![(first / 40).min(2) as u64];
        parts.push(first as u64 - parts[0] * 40);
        let mut v: u64 = 0;
        for b in &body[1..] {
            v = v.checked_mul(128).ok_or("OID arc too large")? | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                parts.push(v);
                v = 0;
            }
        }
        Ok(parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."))
    }

    /// An OCTET STRING's bytes, primitive or constructed (BER chunks).
    fn octets(t: &Tlv<'_>, depth: usize) -> Result<Vec<u8>, String> {
        match t.tag {
            0x04 => Ok(t.body.to_vec()),
            0x24 if depth < 4 => {
                let mut out = vec![];
                for c in children(t.body)? {
                    out.extend(octets(&c, depth + 1)?);
                }
                Ok(out)
            }
            _ => Err("expected an OCTET STRING".into()),
        }
    }

    fn algorithm(t: &Tlv<'_>) -> Result<String, String> {
        let c = children(t.body)?;
        oid(expect(c.first(), 0x06, "an algorithm OID")?.body)
    }

    pub fn signed_data(der: &[u8]) -> Result<SignedData, String> {
        let (ci, rest) = tlv(der)?;
        if ci.tag != 0x30 || !rest.is_empty() {
            return Err("not one ContentInfo".into());
        }
        let ci = children(ci.body)?;
        if oid(expect(ci.first(), 0x06, "a content type")?.body)? != SIGNED_DATA {
            return Err("not SignedData".into());
        }
        let wrapped = children(expect(ci.get(1), 0xa0, "content")?.body)?;
        let sd = children(expect(wrapped.first(), 0x30, "SignedData")?.body)?;
        // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos
        let encap = children(expect(sd.get(2), 0x30, "encapsulated content")?.body)?;
        let econtent =
            children(expect(encap.get(1), 0xa0, "the signed content (detached?)")?.body)?;
        let content = octets(econtent.first().ok_or("empty content")?, 0)?;
        let mut certificates = vec![];
        let mut i = 3;
        if let Some(t) = sd.get(i).filter(|t| t.tag == 0xa0) {
            for c in children(t.body)? {
                if c.tag == 0x30 {
                    certificates.push(c.raw.to_vec());
                }
            }
            i += 1;
        }
        if sd.get(i).is_some_and(|t| t.tag == 0xa1) {
            i += 1;
        }
        let infos = children(expect(sd.get(i), 0x31, "signer infos")?.body)?;
        if infos.len() != 1 {
            return Err(format!("{} signers; exactly one is expected", infos.len()));
        }
        let si = children(expect(infos.first(), 0x30, "a signer info")?.body)?;
        let sid = si.get(1).ok_or("no signer identifier")?;
        let signer_id = match sid.tag {
            0x30 => {
                let p = children(sid.body)?;
                SignerId::IssuerSerial {
                    issuer: expect(p.first(), 0x30, "an issuer")?.raw.to_vec(),
                    serial: expect(p.get(1), 0x02, "a serial number")?.body.to_vec(),
                }
            }
            0x80 => SignerId::KeyId(sid.body.to_vec()),
            _ => return Err("unknown signer identifier".into()),
        };
        let digest_oid = algorithm(&expect(si.get(2), 0x30, "a digest algorithm")?)?;
        let mut j = 3;
        let mut signed_attrs = None;
        if let Some(t) = si.get(j).filter(|t| t.tag == 0xa0) {
            let mut der_as_set = t.raw.to_vec();
            der_as_set[0] = 0x31;
            let mut message_digest = None;
            for attr in children(t.body)? {
                let a = children(attr.body)?;
                if oid(expect(a.first(), 0x06, "an attribute type")?.body)? == MESSAGE_DIGEST {
                    let vals = children(expect(a.get(1), 0x31, "attribute values")?.body)?;
                    message_digest = Some(octets(vals.first().ok_or("no digest")?, 0)?);
                }
            }
            signed_attrs = Some(SignedAttrs {
                der_as_set,
                message_digest,
            });
            j += 1;
        }
        let _sig_alg = algorithm(&expect(si.get(j), 0x30, "a signature algorithm")?)?;
        let signature = expect(si.get(j + 1), 0x04, "a signature")?.body.to_vec();
        Ok(SignedData {
            content,
            certificates,
            signer_id,
            digest_oid,
            signed_attrs,
            signature,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn garbage_and_truncations_are_errors_not_panics() {
            // A hand-built ContentInfo skeleton, then every prefix of it and noise.
            let skeleton: &[u8] = &[
                0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
                0x80, 0x30, 0x03, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00,
            ];
            for n in 0..skeleton.len() {
                assert!(signed_data(&skeleton[..n]).is_err(), "prefix {n}");
            }
            assert!(signed_data(skeleton).is_err());
            for bad in [
                &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
                &[0x30, 0x85, 1, 1, 1, 1, 1],
                &[0x04, 0x80, 0, 0],
                &[0x1f, 0x01],
                &[0x30; 64],
                &[0x30, 0x80].repeat(64),
            ] {
                assert!(signed_data(bad).is_err());
            }
        }

        #[test]
        fn oids_read() {
            assert_eq!(
                oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02]).unwrap(),
                SIGNED_DATA
            );
            assert_eq!(
                oid(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]).unwrap(),
                SHA256
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
