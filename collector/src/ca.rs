//! The collector's certificate authority: created on first start in the data
//! directory (key file mode 0600), it signs agents' CSRs and the collector's own
//! server certificate. Agents pin it by the SHA-256 fingerprint of its DER.
//!
//! It also remembers every agent certificate replaced by a renewal
//! (`superseded-serials`, append-only, one `<serial hex> <not after, Unix s>` per
//! line): every CRL it signs lists them until they expire, so an old certificate
//! is refused at the TLS handshake as soon as its replacement is issued.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Why the CA could not act.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing the CA files failed.
    #[error("CA file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CA files exist but cannot be used.
    #[error("CA material in {path} is unusable: {reason}")]
    Corrupt {
        path: PathBuf,
        #[source]
        reason: Unusable,
    },
    /// An agent's certificate signing request is malformed or its signature is wrong.
    #[error("invalid certificate signing request: {0}")]
    BadCsr(#[source] rcgen::Error),
    /// Certificate or CRL generation failed.
    #[error("cannot issue certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate cannot be issued from what was given (a serial that is not hex).
    #[error("cannot issue certificate: {0}")]
    Issue(String),
    /// The random number generator failed, so no serial number could be drawn.
    #[error("cannot issue certificate: {0}")]
    Random(#[from] crate::auth::RandomError),
}

/// Why CA material on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    /// The file lacks what it must hold (a message we compose).
    #[error("{0}")]
    Missing(&'static str),
    /// The key or certificate does not parse.
    #[error("{0}")]
    Parse(#[source] rcgen::Error),
}

impl From<CaError> for crate::app::AppError {
    fn from(e: CaError) -> Self {
        match e {
            CaError::Random(r) => r.into(),
            e => crate::app::AppError::Ca(e),
        }
    }
}

/// An issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub pem: String,
    pub serial: String,
    pub not_after: OffsetDateTime,
}

/// The CA: its key and certificate.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    /// `<dir>/superseded-serials`.
    superseded_path: PathBuf,
    /// Serialises appends to the superseded list.
    superseded_lock: Mutex<()>,
}

const KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "ca.crt";
const SUPERSEDED_FILE: &str = "superseded-serials";
/// A superseded certificate stays on the CRL this long after it expires (clock skew).
const SUPERSEDED_GRACE_SECS: i64 = 86_400;

/// Where the CA certificate of the collector with data directory `data_dir` is kept
/// (the CA lives in `<data_dir>/ca`).
pub fn cert_path(data_dir: &Path) -> PathBuf {
    data_dir.join("ca").join(CERT_FILE)
}

/// The URI SAN that names an agent in its certificate.
pub fn agent_uri(agent_id: &str) -> String {
    format!("urn:rampart:agent:{agent_id}")
}

impl Ca {
    /// Loads the CA from `dir`, creating it on first start.
    pub fn open_or_create(dir: &Path) -> Result<Ca, CaError> {
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let superseded_path = dir.join(SUPERSEDED_FILE);
        if key_path.exists() || cert_path.exists() {
            return Ca::load(&key_path, &cert_path, superseded_path);
        }
        let ca = Ca::generate(superseded_path)?;
        fs::create_dir_all(dir).map_err(|e| CaError::Io {
            path: dir.into(),
            source: e,
        })?;
        write_private(&key_path, ca.key_pem.as_bytes())?;
        write_private(&cert_path, ca.cert_pem.as_bytes())?;
        Ok(ca)
    }

    fn generate(superseded_path: PathBuf) -> Result<Ca, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // A unique name per collector, so that a certificate from another
        // collector's CA is reported as an unknown issuer, not a bad signature.
        let serial = random_serial()?;
        let tag: String = serial
            .as_ref()
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        dn.push(DnType::CommonName, format!("Rampart collector CA {tag}"));
        dn.push(DnType::OrganizationName, "Rampart");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(3650);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            key_pem,
            superseded_path,
            superseded_lock: Mutex::new(()),
        })
    }

    fn load(key_path: &Path, cert_path: &Path, superseded_path: PathBuf) -> Result<Ca, CaError> {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| CaError::Io {
                path: p.into(),
                source: e,
            })
        };
        let corrupt = |p: &Path, reason: Unusable| CaError::Corrupt {
            path: p.into(),
            reason,
        };
        let unusable = |p: &Path| {
            let path = p.to_path_buf();
            move |e| CaError::Corrupt {
                path,
                reason: Unusable::Parse(e),
            }
        };
        let key = KeyPair::from_pem(&read(key_path)?).map_err(unusable(key_path))?;
        let cert_pem = read(cert_path)?;
        let der = pem_der(&cert_pem)
            .ok_or_else(|| corrupt(cert_path, Unusable::Missing("no CERTIFICATE block")))?;
        let key_pem = key.serialize_pem();
        let issuer =
            Issuer::from_ca_cert_der(&der.clone().into(), key).map_err(unusable(cert_path))?;
        Ok(Ca {
            issuer,
            cert_der: der,
            cert_pem,
            key_pem,
            superseded_path,
            superseded_lock: Mutex::new(()),
        })
    }

    /// When the CA certificate expires (Unix time).
    pub fn not_after_unix(&self) -> Option<i64> {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.cert_der).ok()?;
        Some(cert.validity().not_after.timestamp())
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex: what agents pin.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert_der)
    }

    /// Signs an agent's CSR. Only the CSR's public key is used: subject, SAN, usages
    /// and validity are the collector's choice, never the requester's.
    pub fn sign_agent(
        &self,
        csr_der: &[u8],
        agent_id: &str,
        validity: Duration,
    ) -> Result<Issued, CaError> {
        let csr = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .map_err(CaError::BadCsr)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, "Rampart agents");
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            agent_uri(agent_id).try_into().map_err(CaError::Generate)?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.finish(params, &csr.public_key, validity)
    }

    /// Issues the collector's own server certificate for `names` (DNS names or IPs).
    pub fn issue_server(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<(Issued, KeyPair), CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Rampart collector");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issued = self.finish(params, &key, validity)?;
        Ok((issued, key))
    }

    fn finish(
        &self,
        mut params: CertificateParams,
        public_key: &impl rcgen::PublicKeyData,
        validity: Duration,
    ) -> Result<Issued, CaError> {
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + validity;
        let serial = random_serial()?;
        let serial_hex = serial.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        params.serial_number = Some(serial);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(public_key, &self.issuer)?;
        Ok(Issued {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            serial: serial_hex,
            not_after: params.not_after,
        })
    }
}

impl Ca {
    /// Records that the agent certificate `serial` (hex), valid until
    /// `not_after_unix`, was replaced by a renewal: every CRL signed from now on
    /// lists it until it expires. The record is synced to disk before this returns.
    pub fn supersede(&self, serial: &str, not_after_unix: i64) -> Result<(), CaError> {
        if serial.is_empty() || hex_decode(serial).is_none() {
            return Err(CaError::Issue(format!(
                "superseded serial `{}` is not hex",
                serial.chars().take(80).collect::<String>()
            )));
        }
        let path = &self.superseded_path;
        let io = |e| CaError::Io {
            path: path.clone(),
            source: e,
        };
        let _guard = self
            .superseded_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        // A line torn by a crash is completed by a newline, so it stays one bad line.
        let torn = f.metadata().map_err(io)?.len() > 0 && !last_byte_is_newline(path);
        let line = format!(
            "{}{serial} {not_after_unix}\n",
            if torn { "\n" } else { "" }
        );
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// Serial numbers (hex) of superseded certificates that have not expired yet.
    /// A line torn by a crash (no valid serial) is skipped: the renewal that wrote
    /// it failed, so its certificate is still the agent's current one.
    pub fn superseded_serials(&self) -> Result<Vec<String>, CaError> {
        let text = match fs::read_to_string(&self.superseded_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(CaError::Io {
                    path: self.superseded_path.clone(),
                    source: e,
                })
            }
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            let (Some(serial), Some(not_after), None) = (parts.next(), parts.next(), parts.next())
            else {
                tracing::warn!(path = %self.superseded_path.display(), "skipping a torn line");
                continue;
            };
            let Ok(not_after) = not_after.parse::<i64>() else {
                tracing::warn!(path = %self.superseded_path.display(), "skipping a torn line");
                continue;
            };
            if hex_decode(serial).is_none() {
                tracing::warn!(path = %self.superseded_path.display(), "skipping a torn line");
                continue;
            }
            if not_after.saturating_add(SUPERSEDED_GRACE_SECS) >= now {
                out.push(serial.to_ascii_lowercase());
            }
        }
        Ok(out)
    }

    /// A CRL listing `revoked` (serial numbers in hex) and every superseded
    /// certificate that has not expired, valid for `validity`.
    pub fn crl(
        &self,
        revoked: &[String],
        number: u64,
        validity: Duration,
    ) -> Result<Vec<u8>, CaError> {
        let now = OffsetDateTime::now_utc();
        let mut serials: Vec<String> = revoked.iter().map(|s| s.to_ascii_lowercase()).collect();
        serials.extend(self.superseded_serials()?);
        serials.sort();
        serials.dedup();
        let mut certs = Vec::new();
        for serial in &serials {
            let bytes =
                hex_decode(serial).ok_or_else(|| CaError::Issue(format!("bad serial {serial}")))?;
            certs.push(rcgen::RevokedCertParams {
                serial_number: SerialNumber::from_slice(&bytes),
                revocation_time: now,
                reason_code: Some(rcgen::RevocationReason::CessationOfOperation),
                invalidity_date: None,
            });
        }
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - Duration::minutes(5),
            next_update: now + validity,
            crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer)?;
        Ok(crl.der().to_vec())
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The serial number of a certificate (DER), in hex as [`Issued::serial`] holds it.
pub fn serial_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(
        cert.tbs_certificate
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Whether two serial numbers in hex are one number (case and leading zero bytes,
/// which DER's integer encoding drops, aside).
pub fn same_serial(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        let mut s = s.to_ascii_lowercase();
        while s.len() > 2 && s.starts_with("00") {
            s.drain(..2);
        }
        s
    };
    !a.is_empty() && norm(a) == norm(b)
}

/// SHA-256 of `der`, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn last_byte_is_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut b = [0u8; 1];
    fs::File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut b)
        })
        .is_ok_and(|()| b[0] == b'\n')
}

fn random_serial() -> Result<SerialNumber, CaError> {
    serial_from(crate::auth::system_random())
}

/// A positive 127-bit serial number; fails, issuing nothing, when `rng` does.
fn serial_from(rng: &dyn crate::auth::RandomSource) -> Result<SerialNumber, CaError> {
    let mut b = crate::auth::random_bytes::<16>(rng)?;
    b[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&b))
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64_decode(&body)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        if n < 2 {
            return None;
        }
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
    }
    Some(out)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), CaError> {
    let io = |e| CaError::Io {
        path: path.into(),
        source: e,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn csr(key: &KeyPair, sans: Vec<String>) -> Vec<u8> {
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, "evil");
        p.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn created_once_then_reloaded_with_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = Ca::open_or_create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let b = Ca::open_or_create(dir.path()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
        // Certificates issued after a reload chain to the same CA.
        let key = KeyPair::generate().unwrap();
        let issued = b
            .sign_agent(&csr(&key, vec![]), "agent-1", Duration::days(30))
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(a.cert_der()).unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok());
    }

    #[test]
    fn agent_certificates_ignore_what_the_csr_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let issued = ca
            .sign_agent(
                &csr(&key, vec!["collector.example".into()]),
                "agent-7",
                Duration::days(30),
            )
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(cn, "agent-7");
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, vec!["URI(urn:rampart:agent:agent-7)".to_string()]);
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            rcgen::PublicKeyData::der_bytes(&key)
        );
        let days = (issued.not_after - OffsetDateTime::now_utc()).whole_days();
        assert!((29..=30).contains(&days));
    }

    #[test]
    fn garbage_csr_and_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(dir.path()).unwrap();
        assert!(matches!(
            ca.sign_agent(b"not a csr", "a", Duration::days(1)),
            Err(CaError::BadCsr(_))
        ));
        fs::write(dir.path().join(CERT_FILE), "garbage").unwrap();
        assert!(matches!(
            Ca::open_or_create(dir.path()),
            Err(CaError::Corrupt { .. })
        ));
    }

    /// The serial numbers (lowercase hex) a CRL lists.
    fn crl_serials(der: &[u8]) -> Vec<String> {
        let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
        crl.iter_revoked_certificates()
            .map(|r| r.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
            .collect()
    }

    #[test]
    fn superseded_certificates_stay_on_every_crl_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::open_or_create(dir.path()).unwrap();
        let key = KeyPair::generate().unwrap();
        let old = ca
            .sign_agent(&csr(&key, vec![]), "agent-1", Duration::days(30))
            .unwrap();
        let new = ca
            .sign_agent(&csr(&key, vec![]), "agent-1", Duration::days(30))
            .unwrap();
        let crl = ca.crl(&[], 1, Duration::days(1)).unwrap();
        assert!(crl_serials(&crl).is_empty());
        // Renewal: the old certificate is superseded, and listed from now on, also
        // after a restart (the list is on disk), beside revoked serials.
        ca.supersede(&old.serial, old.not_after.unix_timestamp())
            .unwrap();
        let expired_long_ago = OffsetDateTime::now_utc().unix_timestamp() - 3 * 86_400;
        ca.supersede("0badc0de", expired_long_ago).unwrap();
        let reloaded = Ca::open_or_create(dir.path()).unwrap();
        assert_eq!(
            reloaded.superseded_serials().unwrap(),
            std::slice::from_ref(&old.serial)
        );
        let got = crl_serials(
            &reloaded
                .crl(&["0a0b".into()], 2, Duration::days(1))
                .unwrap(),
        );
        let want = |s: &str| s.trim_start_matches("00").to_string();
        assert!(got.iter().any(|s| want(s) == want(&old.serial)), "{got:?}");
        assert!(got.iter().any(|s| s == "0a0b"), "{got:?}");
        assert!(!got.iter().any(|s| want(s) == want(&new.serial)), "{got:?}");
        assert!(!got.iter().any(|s| s == "0badc0de"), "expired: {got:?}");
        let mode = fs::metadata(dir.path().join(SUPERSEDED_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // Nonsense is refused, and a line torn by a crash neither hides the others
        // nor stops the CA.
        assert!(matches!(ca.supersede("zz", 0), Err(CaError::Issue(_))));
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(SUPERSEDED_FILE))
            .unwrap();
        f.write_all(b"0a1").unwrap();
        ca.supersede(&new.serial, new.not_after.unix_timestamp())
            .unwrap();
        assert_eq!(
            ca.superseded_serials().unwrap(),
            [old.serial.clone(), new.serial.clone()]
        );
    }

    #[test]
    fn a_failing_generator_issues_no_serial() {
        struct Zeros;
        impl crate::auth::RandomSource for Zeros {
            fn fill(&self, buf: &mut [u8]) -> Result<(), crate::auth::RandomError> {
                buf.fill(0);
                Err(crate::auth::RandomError)
            }
        }
        assert!(matches!(serial_from(&Zeros), Err(CaError::Random(_))));
        assert!(serial_from(crate::auth::system_random()).is_ok());
        // It reaches callers as "unavailable", not as a bad request.
        let e = crate::app::AppError::from(CaError::Random(crate::auth::RandomError));
        assert!(matches!(e, crate::app::AppError::Unavailable(_)), "{e:?}");
    }
}
