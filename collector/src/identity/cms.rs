//! Just enough CMS (RFC 5652) to read one SignedData: strict DER lengths, BER
//! indefinite lengths accepted, every read bounded.

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
    let econtent = children(expect(encap.get(1), 0xa0, "the signed content (detached?)")?.body)?;
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
