//! Agentless scans over SSH: the collector's own key pair ([`SshKey`]) and the
//! client that scans one target ([`scan`]). russh (built on ring) speaks SSH; no
//! `ssh` program is run.
//!
//! A scan connects as the target's user, checks the host key against the one
//! pinned or first seen, copies the agent binary of the download directory into a
//! fresh private directory, checks its SHA-256 there, runs `sudo -n … check
//! --format json` under a time limit, reads at most a bounded amount of output and
//! removes the directory. Every step is timed out. What the output means (results,
//! score, enforcement) is `crate::app`'s business, as for an agent's scan.

mod client;

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use client::{scan, ScanJob, ScanOutput, Timeouts};
use russh::keys::ssh_key::{private::Ed25519Keypair, HashAlg, LineEnding, PrivateKey};

/// The private key's file name in `<data_dir>/ssh/`.
pub const KEY_FILE: &str = "id_ed25519";

/// Why the collector's key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file.
    #[error("ssh key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not an OpenSSH private key, or not one this collector can use.
    #[error("ssh key {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Why a scan over SSH failed, in words a person can act on (they become the
/// failed scan's reason).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The address is not one the collector may connect to (a message we compose).
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// Nothing listens on the port, or the host cannot be reached.
    #[error("cannot connect to {addr}: {}", client::connect_words(source))]
    Unreachable {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A step took longer than its limit.
    #[error("timed out after {secs} s while {step}")]
    Timeout { step: &'static str, secs: u64 },
    /// The host key differs from the one pinned or first seen.
    #[error("host key mismatch: expected {expected}, the host presented {seen}; the key is not accepted (update the target's host key if the change is legitimate)")]
    HostKeyMismatch { expected: String, seen: String },
    /// The server refused the collector's key for the user.
    #[error("authentication refused for user {user}: add the collector's public key (GET /api/v1/ssh) to its authorized_keys")]
    AuthRefused { user: String },
    /// `sudo -n` wants a password.
    #[error("sudo needs a password for user {user}: the scan needs passwordless sudo")]
    SudoNeedsPassword { user: String },
    /// The target's machine is not the agent binary's.
    #[error("unsupported architecture {target}: the agent binary is built for {binary}")]
    UnsupportedArch { target: String, binary: String },
    /// Copying the binary failed, or it arrived different.
    #[error("copying the agent to the target failed: {0}")]
    Copy(String),
    /// The agent exited with an error.
    #[error("the agent exited with {status}: {stderr}")]
    Agent { status: String, stderr: String },
    /// The agent's output is over the bound.
    #[error("the agent's output is over {0} bytes")]
    OutputTooLarge(usize),
    /// The output is not JSON of a scan document's shape.
    #[error("the agent's output is not a scan document: {0}")]
    NotDocument(#[source] serde_json::Error),
    /// The output is a scan document we cannot take (a message we compose).
    #[error("the agent's output is not a scan document: {0}")]
    BadOutput(String),
    /// The SSH protocol or transport failed.
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    /// The SSH server did not do what the scan needs (a message we compose).
    #[error("ssh: {0}")]
    Session(String),
    /// The agent binary to copy is not available on the collector.
    #[error("the agent binary {0}")]
    NoBinary(String),
}

/// The collector's SSH key pair: ed25519, made on first start, the private key
/// 0600 in `<data_dir>/ssh/`.
pub struct SshKey {
    private: Arc<PrivateKey>,
    public: String,
    fingerprint: String,
}

impl SshKey {
    /// Loads the key pair from `dir`, or makes it (the directory 0700, the key 0600).
    pub fn open_or_create(dir: &Path) -> Result<SshKey, KeyError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            let seed = random_seed().map_err(|reason| KeyError::Invalid {
                path: path.clone(),
                reason,
            })?;
            let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            key.set_comment("rampart-collector");
            let pem = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| KeyError::Invalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            // Written beside and renamed, so a crash never leaves half a key.
            let tmp = dir.join(format!("{KEY_FILE}.tmp"));
            let _ = fs::remove_file(&tmp);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(pem.as_bytes()).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, &path).map_err(io(&path))?;
            tracing::info!(path = %path.display(), "ssh key pair created");
        }
        let meta = fs::metadata(&path).map_err(io(&path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(KeyError::Invalid {
                path,
                reason: format!(
                    "mode {:o} lets others read it; it must be 0600",
                    meta.permissions().mode() & 0o777
                ),
            });
        }
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        let private = PrivateKey::from_openssh(&text).map_err(|e| KeyError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let public = private
            .public_key()
            .to_openssh()
            .map_err(|e| KeyError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let fingerprint = private
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string();
        Ok(SshKey {
            private: Arc::new(private),
            public,
            fingerprint,
        })
    }

    /// The public key as one `authorized_keys` line.
    pub fn public_openssh(&self) -> &str {
        &self.public
    }

    /// The public key's SHA-256 fingerprint, `SHA256:…`.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn private(&self) -> Arc<PrivateKey> {
        self.private.clone()
    }
}

fn random_seed() -> Result<[u8; 32], String> {
    use ring::rand::SecureRandom as _;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| "the random number generator failed".to_string())?;
    Ok(seed)
}

/// Whether `s` is a host key fingerprint as `ssh-keygen -l -E sha256` prints it.
pub fn valid_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// The machine (`uname -m`) an ELF binary is built for, if it is one we know.
pub fn elf_machine(head: &[u8]) -> Option<&'static str> {
    if head.len() < 20 || &head[..4] != b"\x7fELF" {
        return None;
    }
    // e_machine, little-endian (both machines we name are).
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => Some("x86_64"),
        183 => Some("aarch64"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_pair_is_made_once_private_and_reloaded() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("ssh");
        let a = SshKey::open_or_create(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(
            a.public_openssh().starts_with("ssh-ed25519 "),
            "{}",
            a.public
        );
        assert!(valid_fingerprint(a.fingerprint()), "{}", a.fingerprint());
        let b = SshKey::open_or_create(&dir).unwrap();
        assert_eq!(a.public_openssh(), b.public_openssh());
        // A key others can read is refused, as ssh refuses it.
        fs::set_permissions(dir.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            SshKey::open_or_create(&dir),
            Err(KeyError::Invalid { reason, .. }) if reason.contains("0600")
        ));
    }

    #[test]
    fn fingerprints_and_machines() {
        for (s, ok) in [
            ("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", true),
            ("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF", false),
            ("MD5:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", false),
            ("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSu;U", false),
        ] {
            assert_eq!(valid_fingerprint(s), ok, "{s}");
        }
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(20, 0);
        elf[18] = 62;
        assert_eq!(elf_machine(&elf), Some("x86_64"));
        elf[18] = 183;
        assert_eq!(elf_machine(&elf), Some("aarch64"));
        assert_eq!(elf_machine(b"#!/bin/sh\nsleep 100\n"), None);
    }
}
