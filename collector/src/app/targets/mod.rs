//! Targets scanned over SSH: registration, changes, removal, and the scans
//! themselves. A target is stored as an agent whose record carries `ssh` (never
//! enrolled, no certificate), so that its scans are scored, enforced, gated,
//! listed and reported exactly like an agent's: the results of a scan over SSH go
//! through [`App::record_results`] and [`App::scan_finished`], the agent's path.

mod runner;

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::Deserialize;

use super::{App, AppError, Result};
use crate::auth;
use crate::limits::echo;
use crate::ssh::{self, ScanError, SshKey};
use crate::store::{AgentRecord, ResultRecord, ScanRecord, ScanStatus, SshTarget};

/// The file of the download directory that is copied to targets.
pub const AGENT_BINARY: &str = "rampart-agent";
/// The largest agent binary copied.
const AGENT_BINARY_BYTES: u64 = 256 << 20;
/// How long a collector's claim on a target's scan lasts unless renewed (every 5 s
/// while the scan runs): where collectors share a store, one runs it, and another
/// may take over a pending scan once the claimant is gone.
const CLAIM_MS: i64 = 30_000;
/// A pending scan of a target older than this with nobody running it (its
/// collector stopped or died first) is started by the lease holder.
const ORPHAN_MS: i64 = 60_000;

/// How every target's ID begins (agents' IDs begin otherwise): the targets are a
/// range of the host directory, not a walk over every agent.
const TARGET_ID_PREFIX: &str = "tg-";

/// The meta key holding the SSH public key of the collectors sharing the store.
const SSH_KEY_META: &str = "ssh/public_key";

/// The lease that says which collector runs a target's scan.
fn claim(agent_id: &str) -> String {
    format!("ssh-scan/{agent_id}")
}

/// What runs scans over SSH in this process (set when the server starts).
#[derive(Default)]
pub struct SshRunner {
    key: OnceLock<Arc<SshKey>>,
    /// Why this collector may not scan over SSH: its key is not the one the store
    /// recorded (collectors sharing a store must share the key the targets trust).
    refused: OnceLock<String>,
    app: OnceLock<(Weak<App>, tokio::runtime::Handle)>,
    slots: OnceLock<Arc<tokio::sync::Semaphore>>,
}

/// A target as registered or changed through the API.
#[derive(Debug, Clone, Default)]
pub struct TargetSpec {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub host_key: Option<String>,
    pub project: Option<String>,
    pub provider: Option<String>,
    pub instance_id: Option<String>,
}

fn invalid(m: String) -> AppError {
    AppError::Invalid(m)
}

fn check_word(what: &str, v: &str, max: usize, extra: &str) -> Result<()> {
    if v.is_empty()
        || v.len() > max
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        return Err(invalid(format!(
            "{what} `{}` must be 1 to {max} letters, digits or `{extra}`",
            echo(v)
        )));
    }
    Ok(())
}

impl TargetSpec {
    /// Checks every field against its bound and alphabet.
    fn validate(&self) -> Result<()> {
        check_word("host", &self.host, crate::limits::HOSTNAME_BYTES, ".-:_")?;
        if self.host.starts_with('-') {
            return Err(invalid("host must not start with `-`".into()));
        }
        if self.port == Some(0) {
            return Err(invalid("port must be between 1 and 65535".into()));
        }
        if let Some(u) = &self.user {
            check_word("user", u, 32, "._-")?;
            if u.starts_with('-') {
                return Err(invalid("user must not start with `-`".into()));
            }
        }
        if let Some(k) = &self.host_key {
            if !ssh::valid_fingerprint(k) {
                return Err(invalid(format!(
                    "host_key `{}` must be a SHA-256 fingerprint as `ssh-keygen -l` prints it (SHA256:…)",
                    echo(k)
                )));
            }
        }
        if let Some(p) = &self.project {
            check_word("project", p, 128, "._-/")?;
        }
        if let Some(p) = &self.provider {
            check_word("provider", p, crate::limits::SHORT_FIELD_BYTES, "._-")?;
        }
        if let Some(i) = &self.instance_id {
            check_word("instance_id", i, crate::limits::INSTANCE_ID_BYTES, "._-:/")?;
        }
        Ok(())
    }
}

impl App {
    /// The collector's SSH key pair, once the server has started.
    pub fn ssh_key(&self) -> Option<Arc<SshKey>> {
        self.ssh.key.get().cloned()
    }

    /// Registers a target; with scan-on-provision on, its first scan is created.
    pub fn register_target(
        &self,
        spec: &TargetSpec,
        actor: &str,
    ) -> Result<(AgentRecord, Option<ScanRecord>)> {
        spec.validate()?;
        let now = self.clock.now_ms();
        let rec = AgentRecord {
            id: auth::new_id(TARGET_ID_PREFIX)?,
            hostname: spec.host.clone(),
            ip_addresses: vec![],
            provider: spec.provider.clone().unwrap_or_default(),
            instance_id: spec.instance_id.clone().unwrap_or_default(),
            os: String::new(),
            project: spec.project.clone(),
            labels: Default::default(),
            enrolled_at_ms: now,
            last_seen_ms: 0,
            cert_serial: String::new(),
            cert_not_after_ms: 0,
            revoked: false,
            identity: Default::default(),
            replaced_certs: Vec::new(),
            renewed_at_ms: 0,
            ssh: Some(SshTarget {
                host: spec.host.clone(),
                port: spec.port.unwrap_or(22),
                user: spec.user.clone(),
                host_key: spec.host_key.clone(),
                host_key_pinned: spec.host_key.is_some(),
            }),
        };
        self.store.put_agent(&rec)?;
        self.hosts.note(&rec);
        self.tell_others(crate::store::Event::Agent {
            agent_id: rec.id.clone(),
        });
        self.audit(
            actor,
            "target.register",
            Some(&rec.id),
            format!(
                "host {}, port {}, user {}, project {:?}, host key {}",
                spec.host,
                spec.port.unwrap_or(22),
                spec.user.as_deref().unwrap_or("(the settings' SSH user)"),
                spec.project,
                spec.host_key.as_deref().unwrap_or("trusted on first use")
            ),
        )?;
        self.sync_store()?;
        let scan = if self.settings().scan_on_provision {
            self.create_scan(&rec.id, "provision", actor)?
        } else {
            None
        };
        Ok((rec, scan))
    }

    /// Live targets (not removed), by ID: the target IDs of the host directory,
    /// read at once.
    pub fn targets(&self) -> Result<Vec<AgentRecord>> {
        let ids = self.hosts.ids_with_prefix(TARGET_ID_PREFIX);
        let mut t: Vec<AgentRecord> = self
            .store
            .agents_by_id(&ids)?
            .into_iter()
            .filter(|a| a.ssh.is_some() && !a.revoked)
            .collect();
        t.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(t)
    }

    /// A live target.
    pub fn target(&self, id: &str) -> Result<AgentRecord> {
        self.store
            .agent(id)?
            .filter(|a| a.ssh.is_some() && !a.revoked)
            .ok_or_else(|| AppError::NotFound(format!("target {id}")))
    }

    /// Changes how a target is reached: host, port, user, host key (a new key is
    /// pinned; none clears the pin, so the next scan trusts on first use). The
    /// project, provider and instance ID are fixed at registration.
    pub fn update_target(&self, id: &str, spec: &TargetSpec, actor: &str) -> Result<AgentRecord> {
        spec.validate()?;
        self.target(id)?;
        let new = SshTarget {
            host: spec.host.clone(),
            port: spec.port.unwrap_or(22),
            user: spec.user.clone(),
            host_key: spec.host_key.clone(),
            host_key_pinned: spec.host_key.is_some(),
        };
        let mut old = None;
        let rec = self
            .store
            .update_agent(id, &mut |a| {
                old = a.ssh.clone();
                a.ssh = Some(new.clone());
                a.hostname = new.host.clone();
            })?
            .ok_or_else(|| AppError::NotFound(format!("target {id}")))?;
        self.hosts.note(&rec);
        self.tell_others(crate::store::Event::Agent {
            agent_id: rec.id.clone(),
        });
        self.audit(
            actor,
            "target.update",
            Some(id),
            format!("old {old:?}; new {new:?}"),
        )?;
        self.sync_store()?;
        Ok(rec)
    }

    /// Removes a target: it is never scanned again; its scans stay.
    pub fn remove_target(&self, id: &str, actor: &str) -> Result<AgentRecord> {
        self.target(id)?;
        let rec = self
            .store
            .update_agent(id, &mut |a| a.revoked = true)?
            .ok_or_else(|| AppError::NotFound(format!("target {id}")))?;
        self.audit(actor, "target.remove", Some(id), "removed")?;
        self.sync_store()?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests;
