//! Daemon mode: `enroll` obtains a client certificate with a bootstrap token;
//! `run` keeps one mutual-TLS stream to the collector, scans when asked, spools
//! every finished scan to disk and resends it until the collector acknowledges it.
//! The collector can choose a scan's profile and exemptions, nothing else: the
//! agent never runs anything it is sent.

pub mod config;
pub mod identity;
pub mod session;
pub mod spool;
pub mod tls;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::EnrollRequest;
use serde::{Deserialize, Serialize};

use config::{normalize_fingerprint, validate_url, AgentConfig};

/// Everything that stops `enroll` or `run`.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad flags or configuration.
    #[error("{0}")]
    Config(String),
    /// The collector answered with a refusal (bad token, revoked, …).
    #[error("the collector refused: {0}")]
    Refused(String),
    /// The collector could not be reached or the TLS handshake failed.
    #[error("cannot reach the collector: {0}")]
    Unreachable(String),
    /// Local state could not be read or written.
    #[error("{path}: {reason}")]
    State { path: PathBuf, reason: String },
}

fn state_err(path: &Path, e: impl std::fmt::Display) -> DaemonError {
    DaemonError::State {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
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

/// Writes a file atomically with `mode` (temporary file, fsync, rename).
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), DaemonError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| state_err(&tmp, e))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .map_err(|e| state_err(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| state_err(path, e))
}

impl Identity {
    pub fn load(dir: &Path) -> Result<Identity, DaemonError> {
        let read = |f: &str| {
            fs::read(dir.join(f)).map_err(|e| {
                state_err(&dir.join(f), format!("{e} (has this agent been enrolled?)"))
            })
        };
        let state: AgentState = serde_json::from_slice(&read(STATE_FILE)?)
            .map_err(|e| state_err(&dir.join(STATE_FILE), e))?;
        Ok(Identity {
            state,
            cert_der: read(CERT_FILE)?,
            key_der: read(KEY_FILE)?,
        })
    }

    pub fn save(&self, dir: &Path) -> Result<(), DaemonError> {
        fs::create_dir_all(dir).map_err(|e| state_err(dir, e))?;
        write_file(&dir.join(KEY_FILE), &self.key_der, 0o600)?;
        write_file(&dir.join(CERT_FILE), &self.cert_der, 0o644)?;
        let json = serde_json::to_vec_pretty(&self.state).map_err(|e| state_err(dir, e))?;
        write_file(&dir.join(STATE_FILE), &json, 0o644)
    }
}

/// A fresh key pair and a CSR for it (PKCS#8 DER key, DER CSR).
pub fn new_key_and_csr(common_name: &str) -> Result<(Vec<u8>, Vec<u8>), DaemonError> {
    let key = rcgen::KeyPair::generate()
        .map_err(|e| DaemonError::Config(format!("cannot generate a key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let csr = params
        .serialize_request(&key)
        .map_err(|e| DaemonError::Config(format!("cannot build a CSR: {e}")))?;
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
}

/// Enrolls: the private key is generated here and never leaves the host.
pub async fn enroll(mut a: EnrollArgs) -> Result<String, DaemonError> {
    for p in [&mut a.config_path, &mut a.state_dir, &mut a.root] {
        *p = std::path::absolute(&*p).map_err(|e| state_err(p, e))?;
    }
    let pin = normalize_fingerprint(&a.ca_fingerprint).map_err(DaemonError::Config)?;
    validate_url(&a.collector).map_err(DaemonError::Config)?;
    if a.token.trim().is_empty() {
        return Err(DaemonError::Config("the enrollment token is empty".into()));
    }
    let facts = crate::facts::Facts::new(Path::new("/"), true);
    let who = identity::detect(&facts);
    let host = who.hostname.clone();
    let (key_der, csr_der) = new_key_and_csr(&host)?;
    let cfg = tls::client_config(&pin, None).map_err(DaemonError::Config)?;
    let channel = tls::channel(&a.collector, cfg).map_err(DaemonError::Config)?;
    let resp = EnrollmentClient::new(channel)
        .enroll(EnrollRequest {
            token: a.token.trim().to_string(),
            csr_der,
            hostname: host,
            labels: a.labels.clone().into_iter().collect(),
            instance_id: who.instance_id,
            provider: who.provider,
        })
        .await
        .map_err(session::status_error)?
        .into_inner();
    if tls::sha256_hex(&resp.ca_certificate_der) != pin {
        return Err(DaemonError::Refused(
            "the collector returned a CA that does not match the pinned fingerprint".into(),
        ));
    }
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
    let cfg = AgentConfig {
        collector: a.collector,
        ca_fingerprint: pin,
        state_dir: a.state_dir,
        root: a.root,
        labels: a.labels,
        batch_size: 100,
        spool_max_scans: 50,
        renew_before_secs: None,
    };
    if let Some(parent) = a.config_path.parent() {
        fs::create_dir_all(parent).map_err(|e| state_err(parent, e))?;
    }
    write_file(&a.config_path, cfg.to_toml().as_bytes(), 0o644)?;
    Ok(resp.agent_id)
}
