//! Azure: the attested document, a CMS SignedData whose signer certificate chains to
//! a configured root, bound to the enrollment key by its nonce.

use base64::Engine;
use serde::Deserialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{azure_nonce, cms, fresh, Anchors, Claim, Document, Failure, Verified};
use crate::limits::echo;

/// Deepest certificate chain followed from an Azure signer to a root.
const MAX_CHAIN: usize = 5;

/// A UUID with its first three fields byte-reversed (the mixed-endian SMBIOS form).
pub(super) fn swapped_uuid(u: &str) -> Option<String> {
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

/// Azure's time stamps: `MM/DD/YY HH:MM:SS -0000`.
pub(super) fn azure_time(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_str(s.trim(), "%m/%d/%y %H:%M:%S %z")
        .ok()
        .map(|t| t.timestamp())
}

pub(super) fn verify(
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
