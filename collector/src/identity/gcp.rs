//! GCP: the instance identity token, a JWT signed RS256 with a key of Google's JWKS,
//! bound to the enrollment key by its audience.

use base64::Engine;
use serde::Deserialize;

use super::{fresh, gcp_audience, text, Anchors, Claim, Document, Failure, Verified};
use crate::limits::echo;

/// A JWKS key: RSA modulus and exponent.
#[derive(Debug, Clone)]
pub(super) struct Jwk {
    pub(super) kid: String,
    pub(super) n: Vec<u8>,
    pub(super) e: Vec<u8>,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// Parses a JWKS document: its RSA keys with a `kid`.
pub(super) fn parse_jwks(text: &[u8]) -> Result<Vec<Jwk>, String> {
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

pub(super) fn verify(
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
