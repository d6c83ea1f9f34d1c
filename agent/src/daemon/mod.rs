//! Daemon mode: `enroll` obtains a client certificate with a bootstrap token;
//! `run` keeps one mutual-TLS stream to the collector, scans when asked, spools
//! every finished scan to disk and resends it until the collector acknowledges it.
//! The collector can choose a scan's profile and exemptions, nothing else: the
//! agent never runs anything it is sent.

pub mod config;
pub mod identity;
pub mod iid;
pub mod session;
pub mod spool;
pub mod tls;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{EnrollRequest, InstanceIdentityDocument};
use serde::{Deserialize, Serialize};

use config::{normalize_fingerprint, validate_url, AgentConfig};

/// Everything that stops `enroll` or `run`.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad flags or configuration: a message we compose from the value.
    #[error("{0}")]
    Config(String),
    /// The configuration file could not be read or is invalid.
    #[error(transparent)]
    ConfigFile(#[from] config::ConfigError),
    /// The scan root cannot be scanned (unreadable, an unknown operating system).
    #[error(transparent)]
    Root(Box<crate::error::AgentError>),
    /// The TLS client configuration or the channel to the collector could not be built.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The spool could not be opened, read or changed.
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    /// A key or a CSR could not be made or read.
    #[error("{what}: {source}")]
    Key {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A local resource other than the state could not be had (the token file, a
    /// signal handler, the runtime).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The scan task panicked or was aborted.
    #[error("scan task failed: {0}")]
    ScanTask(#[source] tokio::task::JoinError),
    /// The collector answered with a refusal (bad token, revoked, …).
    #[error("the collector refused: {0}")]
    Refused(String),
    /// The collector could not be reached or the TLS handshake failed.
    #[error("cannot reach the collector: {0}")]
    Unreachable(String),
    /// Local state could not be read or written.
    #[error("{path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state file is missing or unreadable: the agent is likely not enrolled.
    #[error("{path}: {source} (has this agent been enrolled?)")]
    NotEnrolled {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The state file does not parse, or could not be serialised.
    #[error("{path}: {source}")]
    StateJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Local state is not as it must be (a message we compose: missing, mismatched).
    #[error("{path}: {reason}")]
    State { path: PathBuf, reason: String },
}

/// A state file or directory that could not be read or written.
fn state_io(path: &Path, source: std::io::Error) -> DaemonError {
    DaemonError::StateIo {
        path: path.to_path_buf(),
        source,
    }
}

/// Local state that is not as it must be, in our words.
fn state_err(path: &Path, reason: &str) -> DaemonError {
    DaemonError::State {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn key_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> DaemonError {
    move |source| DaemonError::Key { what, source }
}

/// What enrollment leaves in the state directory besides key and certificates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentState {
    pub agent_id: String,
    pub cert_not_after_unix: i64,
    /// When the current certificate was received (its lifetime starts about then).
    #[serde(default)]
    pub cert_received_unix: i64,
}

/// The agent's identity on disk.
pub struct Identity {
    pub state: AgentState,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
}

pub const KEY_FILE: &str = "agent.key";
pub const CERT_FILE: &str = "agent.crt";
pub const CA_FILE: &str = "ca.crt";
pub const STATE_FILE: &str = "agent.json";
/// The key of an enrollment that has not completed: a retry (the answer was lost)
/// presents the same key, and the collector answers with the same agent.
pub const PENDING_KEY_FILE: &str = "enroll.key";
/// Suffix of a new key or certificate written but not yet put in place.
const NEXT: &str = "next";

/// A temporary file name of its own beside `path`: no two writers (nor a file left
/// by a crash) ever share one.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{n}.{nanos:08x}.tmp",
        std::process::id()
    ))
}

/// fsyncs a directory, so that a rename in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), DaemonError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| state_io(dir, e))
}

/// Writes a file atomically with exactly `mode`, whatever the umask: a new temporary
/// file of its own name, created with `mode` from the start (never wider, not even
/// for a moment), written and fsynced, then renamed over `path`; the directory is
/// fsynced after the rename.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), DaemonError> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(state_io(&tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(state_io(path, e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates the state directory (0700 where it is created).
fn create_state_dir(dir: &Path) -> Result<(), DaemonError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| state_io(dir, e))
}

/// Reads a file that may be missing.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, DaemonError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(state_io(path, e)),
    }
}

fn next_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(format!("{file}.{NEXT}"))
}

/// Puts a new key and certificate (written beside them as `*.next`) in place:
/// certificate first, then key, then the directory is fsynced. A crash in between
/// leaves a state that [`load_pair`] completes.
fn commit_pair(dir: &Path) -> Result<(), DaemonError> {
    for file in [CERT_FILE, KEY_FILE] {
        let next = next_path(dir, file);
        if next.exists() {
            fs::rename(&next, dir.join(file)).map_err(|e| state_io(&next, e))?;
        }
    }
    sync_dir(dir)
}

/// Whether the key and certificate belong together (false when either is unreadable).
fn pair_matches(key: &[u8], cert: &[u8]) -> bool {
    tls::key_matches_certificate(key, cert).unwrap_or(false)
}

/// Reads the key and certificate, never one without the other: a replacement cut
/// short by a crash is completed when the new pair is whole and matches, and
/// discarded otherwise; a key that does not match its certificate is refused. A key
/// readable by others (left by an older version) is made 0600.
fn load_pair(dir: &Path) -> Result<(Vec<u8>, Vec<u8>), DaemonError> {
    let (key_path, cert_path) = (dir.join(KEY_FILE), dir.join(CERT_FILE));
    let (key_next, cert_next) = (next_path(dir, KEY_FILE), next_path(dir, CERT_FILE));
    let key = read_optional(&key_path)?;
    let cert = read_optional(&cert_path)?;
    let new_key = read_optional(&key_next)?;
    let new_cert = read_optional(&cert_next)?;
    if new_key.is_some() || new_cert.is_some() {
        let k = new_key.as_ref().or(key.as_ref());
        let c = new_cert.as_ref().or(cert.as_ref());
        if let (Some(k), Some(c)) = (k, c) {
            if pair_matches(k, c) {
                tracing::warn!(dir = %dir.display(), "completing a key and certificate replacement cut short");
                commit_pair(dir)?;
                return Ok((c.clone(), k.clone()));
            }
        }
        tracing::warn!(dir = %dir.display(), "discarding a half-written key or certificate replacement");
        for p in [&key_next, &cert_next] {
            match fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(state_io(p, e)),
                _ => {}
            }
        }
    }
    let missing = |p: &Path| state_err(p, "missing (has this agent been enrolled?)");
    let key = key.ok_or_else(|| missing(&key_path))?;
    let cert = cert.ok_or_else(|| missing(&cert_path))?;
    if !pair_matches(&key, &cert) {
        return Err(state_err(
            &key_path,
            &format!("does not match {CERT_FILE}; enroll this agent again"),
        ));
    }
    let mode = fs::metadata(&key_path)
        .map_err(|e| state_io(&key_path, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(path = %key_path.display(), mode = format!("{:o}", mode & 0o777), "the private key was readable by others; made 0600");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600))
            .map_err(|e| state_io(&key_path, e))?;
    }
    Ok((cert, key))
}

impl Identity {
    pub fn load(dir: &Path) -> Result<Identity, DaemonError> {
        let state_path = dir.join(STATE_FILE);
        let state = fs::read(&state_path).map_err(|source| DaemonError::NotEnrolled {
            path: state_path.clone(),
            source,
        })?;
        let state: AgentState =
            serde_json::from_slice(&state).map_err(|source| DaemonError::StateJson {
                path: state_path.clone(),
                source,
            })?;
        let (cert_der, key_der) = load_pair(dir)?;
        Ok(Identity {
            state,
            cert_der,
            key_der,
        })
    }

    /// Saves key, certificate and state. The key (0600) and certificate are written
    /// in full beside the current ones before either replaces its predecessor, so
    /// that [`Identity::load`] never pairs a key with another key's certificate.
    pub fn save(&self, dir: &Path) -> Result<(), DaemonError> {
        create_state_dir(dir)?;
        write_file(&next_path(dir, KEY_FILE), &self.key_der, 0o600)?;
        write_file(&next_path(dir, CERT_FILE), &self.cert_der, 0o644)?;
        commit_pair(dir)?;
        let json =
            serde_json::to_vec_pretty(&self.state).map_err(|source| DaemonError::StateJson {
                path: dir.to_path_buf(),
                source,
            })?;
        write_file(&dir.join(STATE_FILE), &json, 0o644)
    }
}

/// The CA certificate saved at enrollment, if it still has the pinned fingerprint.
pub fn pinned_ca(dir: &Path, pin: &str) -> Result<Vec<u8>, DaemonError> {
    let path = dir.join(CA_FILE);
    let der = fs::read(&path).map_err(|e| state_io(&path, e))?;
    if tls::sha256_hex(&der) != pin {
        return Err(state_err(&path, "does not match the pinned CA fingerprint"));
    }
    Ok(der)
}

/// A fresh key pair and a CSR for it (PKCS#8 DER key, DER CSR).
pub fn new_key_and_csr(common_name: &str) -> Result<(Vec<u8>, Vec<u8>), DaemonError> {
    let key = rcgen::KeyPair::generate().map_err(key_err("cannot generate a key"))?;
    csr_for(key, common_name)
}

/// A CSR for an existing PKCS#8 key (DER).
pub fn key_and_csr_from(
    key_der: &[u8],
    common_name: &str,
) -> Result<(Vec<u8>, Vec<u8>), DaemonError> {
    let key = rcgen::KeyPair::try_from(key_der)
        .map_err(key_err("cannot read the pending enrollment key"))?;
    csr_for(key, common_name)
}

fn csr_for(key: rcgen::KeyPair, common_name: &str) -> Result<(Vec<u8>, Vec<u8>), DaemonError> {
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let csr = params
        .serialize_request(&key)
        .map_err(key_err("cannot build a CSR"))?;
    Ok((key.serialize_der(), csr.der().to_vec()))
}

/// `rampart-agent enroll` flags.
#[derive(Debug, Clone)]
pub struct EnrollArgs {
    pub collector: String,
    pub token: String,
    pub ca_fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub config_path: PathBuf,
    pub state_dir: PathBuf,
    pub root: PathBuf,
    /// The metadata service (`http://HOST[:PORT]`); default: `metadata_url` of an
    /// existing configuration file, else [`iid::DEFAULT_METADATA_URL`].
    pub metadata_url: Option<String>,
    /// Where DMI and cloud-init data are read (`/` on a VM).
    pub identity_root: PathBuf,
}

/// The hex SHA-256 of the SubjectPublicKeyInfo of a PKCS#8 key (DER): what binds a
/// signed identity document to this enrollment (the collector hashes the CSR's).
pub fn key_sha256(key_der: &[u8]) -> Result<String, DaemonError> {
    use rcgen::PublicKeyData;
    let key =
        rcgen::KeyPair::try_from(key_der).map_err(key_err("cannot read the enrollment key"))?;
    Ok(tls::sha256_hex(&key.subject_public_key_info()))
}

/// `metadata_url` of an existing agent configuration file, if it names one (the
/// rest of the file need not be complete: enrollment writes it anew).
fn configured_metadata_url(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let v: toml::Value = toml::from_str(&text).ok()?;
    v.get("metadata_url")?.as_str().map(String::from)
}

/// The provider's signed identity document, when it offers one and answers in
/// time; `None` (with a warning) otherwise: enrollment then goes on unverified.
async fn signed_identity(
    provider: &str,
    metadata_url: &str,
    key_der: &[u8],
) -> Option<InstanceIdentityDocument> {
    if !matches!(provider, "aws" | "gcp" | "azure") {
        return None;
    }
    let hash = key_sha256(key_der).ok()?;
    match iid::fetch(provider, metadata_url, &hash, iid::FETCH_TIMEOUT).await {
        Ok(d) => Some(InstanceIdentityDocument {
            provider: d.provider,
            document: d.document,
            signature: d.signature,
        }),
        Err(e) => {
            eprintln!(
                "rampart-agent: no signed instance identity document ({e}); enrolling unverified"
            );
            None
        }
    }
}

/// Enrolls: the private key is generated here and never leaves the host.
pub async fn enroll(mut a: EnrollArgs) -> Result<String, DaemonError> {
    for p in [&mut a.config_path, &mut a.state_dir, &mut a.root] {
        *p = std::path::absolute(&*p).map_err(|e| state_io(p, e))?;
    }
    let pin = normalize_fingerprint(&a.ca_fingerprint).map_err(DaemonError::Config)?;
    validate_url(&a.collector).map_err(DaemonError::Config)?;
    if a.token.trim().is_empty() {
        return Err(DaemonError::Config("the enrollment token is empty".into()));
    }
    let facts = crate::facts::Facts::new(&a.identity_root, true);
    let who = identity::detect(&facts);
    let host = who.hostname.clone();
    // The key is kept before it is used, so that a retry after a lost answer is
    // the same enrollment (the collector spends no second use of the token).
    let pending = a.state_dir.join(PENDING_KEY_FILE);
    let (key_der, csr_der) = match read_optional(&pending)? {
        Some(k) => key_and_csr_from(&k, &host)?,
        None => {
            let (k, c) = new_key_and_csr(&host)?;
            create_state_dir(&a.state_dir)?;
            write_file(&pending, &k, 0o600)?;
            (k, c)
        }
    };
    // The flag, else what an existing agent.toml says (an image can pre-seed it).
    if a.metadata_url.is_none() {
        a.metadata_url = configured_metadata_url(&a.config_path);
    }
    if let Some(u) = &a.metadata_url {
        config::validate_metadata_url(u).map_err(DaemonError::Config)?;
    }
    let metadata_url = a
        .metadata_url
        .clone()
        .unwrap_or_else(|| iid::DEFAULT_METADATA_URL.to_string());
    let identity_document = signed_identity(&who.provider, &metadata_url, &key_der).await;
    let cfg = tls::client_config(&pin, None)?;
    let channel = tls::channel(&a.collector, cfg)?;
    let resp = EnrollmentClient::new(channel)
        .enroll(EnrollRequest {
            token: a.token.trim().to_string(),
            csr_der,
            hostname: host,
            labels: a.labels.clone().into_iter().collect(),
            instance_id: who.instance_id,
            provider: who.provider,
            identity_document,
        })
        .await
        .map_err(session::status_error)?
        .into_inner();
    if tls::sha256_hex(&resp.ca_certificate_der) != pin {
        return Err(DaemonError::Refused(
            "the collector returned a CA that does not match the pinned fingerprint".into(),
        ));
    }
    tls::check_agent_certificate(
        &resp.certificate_der,
        &key_der,
        &resp.ca_certificate_der,
        &resp.agent_id,
        rustls::pki_types::UnixTime::now(),
    )
    .map_err(|why| DaemonError::Refused(format!("the certificate the collector issued: {why}")))?;
    let id = Identity {
        state: AgentState {
            agent_id: resp.agent_id.clone(),
            cert_not_after_unix: resp.not_after_unix,
            cert_received_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        },
        cert_der: resp.certificate_der,
        key_der,
    };
    id.save(&a.state_dir)?;
    write_file(&a.state_dir.join(CA_FILE), &resp.ca_certificate_der, 0o644)?;
    let _ = fs::remove_file(&pending);
    let cfg = AgentConfig {
        collector: a.collector,
        ca_fingerprint: pin,
        state_dir: a.state_dir,
        root: a.root,
        labels: a.labels,
        batch_size: config::DEFAULT_BATCH,
        spool_max_scans: 50,
        renew_before_secs: None,
        metadata_url: a.metadata_url,
    };
    if let Some(parent) = a.config_path.parent() {
        fs::create_dir_all(parent).map_err(|e| state_io(parent, e))?;
    }
    write_file(&a.config_path, cfg.to_toml().as_bytes(), 0o644)?;
    Ok(resp.agent_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity with a fresh key and a (self-signed) certificate for it.
    fn identity(agent: &str) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{agent}.test")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Identity {
            state: AgentState {
                agent_id: agent.into(),
                cert_not_after_unix: 0,
                cert_received_unix: 0,
            },
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn each_file_has_its_own_temporary_and_exact_mode() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("state");
        fs::create_dir_all(&dir).unwrap();
        // What an interrupted write of the old code left: the temporary file every
        // state file shared, world-readable. It must not become the key.
        fs::write(dir.join("agent.tmp"), b"stale").unwrap();
        fs::set_permissions(dir.join("agent.tmp"), fs::Permissions::from_mode(0o666)).unwrap();
        let id = identity("a1");
        id.save(&dir).unwrap();
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir.join(CERT_FILE)), 0o644);
        assert_eq!(mode(&dir.join(STATE_FILE)), 0o644);
        assert_eq!(fs::read(dir.join(KEY_FILE)).unwrap(), id.key_der);
        let left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp") || n.ends_with(".next"))
            .collect();
        assert_eq!(left, ["agent.tmp"], "temporary files left behind");
        // A key left readable by others (by an older version) is tightened at load.
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        Identity::load(&dir).unwrap();
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
    }

    /// Every point at which a renewal can be cut short loads a key with its own
    /// certificate: the new pair when it is whole, the old one otherwise.
    #[test]
    fn a_crash_never_pairs_a_key_with_another_certificate() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let (old, new) = (identity("a1"), identity("a1"));
        let loaded = |dir: &Path| {
            let id = Identity::load(dir).unwrap();
            (id.key_der, id.cert_der)
        };
        let reset = || {
            for f in [KEY_FILE, CERT_FILE] {
                let _ = fs::remove_file(next_path(dir, f));
            }
            old.save(dir).unwrap();
        };
        let stage = |key: bool, cert: bool| {
            if key {
                write_file(&next_path(dir, KEY_FILE), &new.key_der, 0o600).unwrap();
            }
            if cert {
                write_file(&next_path(dir, CERT_FILE), &new.cert_der, 0o644).unwrap();
            }
        };
        let new_pair = (new.key_der.clone(), new.cert_der.clone());
        let old_pair = (old.key_der.clone(), old.cert_der.clone());

        // Both new files written, none renamed: the new pair is completed.
        reset();
        stage(true, true);
        assert_eq!(loaded(dir), new_pair);
        assert!(!next_path(dir, KEY_FILE).exists());
        assert_eq!(loaded(dir), new_pair);
        // The certificate renamed, the key not yet.
        reset();
        stage(true, true);
        fs::rename(next_path(dir, CERT_FILE), dir.join(CERT_FILE)).unwrap();
        assert_eq!(loaded(dir), new_pair);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        // Only the new key written: discarded, the old pair stays.
        reset();
        stage(true, false);
        assert_eq!(loaded(dir), old_pair);
        assert!(!next_path(dir, KEY_FILE).exists());
        // A key that does not belong to the certificate is refused, never used.
        reset();
        fs::write(dir.join(KEY_FILE), &new.key_der).unwrap();
        let err = Identity::load(dir).err().expect("a mismatched pair loads");
        assert!(
            err.to_string().contains("does not match agent.crt"),
            "{err}"
        );
    }
}
