//! AWS: the JSON instance identity document and its base64 RSA SHA-256 signature,
//! verified with the region's AWS "RSA" certificate.

use base64::Engine;
use serde::Deserialize;

use super::{text, Anchors, Document, Failure, Verified};
use crate::limits::echo;

pub(super) fn verify(a: &Anchors, doc: &Document<'_>) -> Result<Verified, Failure> {
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
