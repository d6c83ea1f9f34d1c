//! Targets scanned over SSH: registration, changes, removal, and the scans
//! themselves. A target is stored as an agent whose record carries `ssh` (never
//! enrolled, no certificate), so that its scans are scored, enforced, gated,
//! listed and reported exactly like an agent's: the results of a scan over SSH go
//! through [`App::record_results`] and [`App::scan_finished`], the agent's path.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use serde::Deserialize;

use super::{now_ms, App, AppError, Result};
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

/// The parts of `check --format json` a scan over SSH reads.
#[derive(Deserialize)]
struct Document {
    benchmark: DocBenchmark,
    profile: String,
    host: DocHost,
    results: Vec<DocRule>,
}

#[derive(Deserialize)]
struct DocBenchmark {
    id: String,
}

#[derive(Deserialize)]
struct DocHost {
    hostname: String,
    os: String,
}

#[derive(Deserialize)]
struct DocRule {
    id: String,
    status: String,
    #[serde(default)]
    evidence: Vec<String>,
}

impl App {
    /// Gives the server's SSH key pair and runtime: from now on scans of targets run
    /// (at most `ssh_max_concurrent_scans` at a time), beginning with those left
    /// pending by an earlier run.
    pub fn start_ssh(self: &Arc<Self>, key: Arc<SshKey>, rt: tokio::runtime::Handle) {
        match self.fleet_ssh_key(&key) {
            Ok(None) => {}
            Ok(Some(why)) => {
                tracing::error!("{why}");
                let _ = self.ssh.refused.set(why);
            }
            Err(error) => tracing::error!(%error, "cannot check the SSH key against the store's"),
        }
        let _ = self.ssh.key.set(key);
        let _ = self.ssh.slots.set(Arc::new(tokio::sync::Semaphore::new(
            self.config.ssh_max_concurrent_scans,
        )));
        let _ = self.ssh.app.set((Arc::downgrade(self), rt));
        if let Err(error) = self.run_pending_ssh_scans(None) {
            tracing::error!(%error, "cannot read the SSH targets");
        }
    }

    /// Starts the targets' pending scans created at least `min_age_ms` ago (`None`:
    /// any age): at start every one (left by an earlier run), and on the lease holder's rounds those a
    /// collector that stopped or died never ran. Each runs once: the collector
    /// that claims the target runs it (see [`CLAIM_MS`]).
    pub fn run_pending_ssh_scans(&self, min_age_ms: Option<i64>) -> Result<usize> {
        let now = now_ms();
        let mut n = 0;
        for t in self.targets()? {
            if let Some(s) = self.store.latest_scan(&t.id)? {
                let old = min_age_ms.is_none_or(|age| s.created_at_ms <= now - age);
                if s.status == ScanStatus::Pending && old {
                    self.run_ssh_scan(&s);
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Records this collector's SSH public key in the store, the first time; after
    /// that, why this collector may not scan (its key is another), if it may not.
    fn fleet_ssh_key(&self, key: &SshKey) -> Result<Option<String>> {
        let ours = key.public_openssh();
        match self.store.get_meta(SSH_KEY_META)? {
            None => {
                self.store.put_meta(SSH_KEY_META, ours.as_bytes())?;
                self.sync_store()?;
                Ok(None)
            }
            Some(k) if k == ours.as_bytes() => Ok(None),
            Some(k) => Ok(Some(format!(
                "this collector's SSH key ({}) is not the one the targets were given ({}): \
                 copy the first collector's <data_dir>/ssh here (collectors sharing a store \
                 share one SSH key)",
                key.fingerprint(),
                String::from_utf8_lossy(&k)
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ))),
        }
    }

    /// Pending scans of targets that nobody runs, for the lease holder's round.
    pub fn run_orphaned_ssh_scans(&self) -> Result<usize> {
        self.run_pending_ssh_scans(Some(ORPHAN_MS))
    }

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
        let now = now_ms();
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

    /// Starts a pending scan of a target, in the background; without a started
    /// runner (unit tests, administrative commands) it stays pending.
    pub(super) fn run_ssh_scan(&self, s: &ScanRecord) {
        let Some((app, rt)) = self.ssh.app.get() else {
            return;
        };
        let Some(app) = app.upgrade() else {
            return;
        };
        let (scan_id, agent_id) = (s.id.clone(), s.agent_id.clone());
        rt.spawn(async move { app.ssh_scan(agent_id, scan_id).await });
    }

    async fn ssh_scan(self: Arc<Self>, agent_id: String, scan_id: String) {
        let Some(slots) = self.ssh.slots.get().cloned() else {
            return;
        };
        let Ok(_slot) = slots.acquire_owned().await else {
            return;
        };
        let app = self.clone();
        let (a, s) = (agent_id.clone(), scan_id.clone());
        let job = match tokio::task::spawn_blocking(move || app.ssh_prepare(&a, &s)).await {
            Ok(Ok(Some(job))) => job,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::error!(%error, scan_id, "cannot start the scan over SSH");
                return;
            }
            Err(error) => {
                tracing::error!(%error, scan_id, "cannot start the scan over SSH");
                return;
            }
        };
        let Some(key) = self.ssh_key() else {
            return;
        };
        let scan = ssh::scan(&key, &job);
        tokio::pin!(scan);
        // The scan is alive while it runs: stalled-scan expiry (wherever it runs)
        // must not end it, and the claim on the target is kept.
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let out = loop {
            tokio::select! {
                out = &mut scan => break out,
                _ = tick.tick() => {
                    self.made_progress(&scan_id, &[]);
                    let (app, a, s) = (self.clone(), agent_id.clone(), scan_id.clone());
                    let kept = tokio::task::spawn_blocking(move || app.ssh_alive(&a, &s)).await;
                    if let Ok(Err(error)) = kept {
                        tracing::warn!(%error, scan_id, "cannot renew the claim on a scan over SSH");
                    }
                }
            }
        };
        let app = self.clone();
        let done = tokio::task::spawn_blocking(move || {
            let r = app.ssh_finish(&agent_id, &scan_id, out);
            // Done: another collector may run the target's next scan at once.
            app.unclaim(&agent_id);
            r
        });
        match done.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot record the scan over SSH"),
            Err(error) => tracing::error!(%error, "cannot record the scan over SSH"),
        }
    }

    /// Renews this collector's claim on the target while its scan runs, and keeps the
    /// stored progress fresh enough that no collector's stalled-scan expiry ends it.
    fn ssh_alive(&self, agent_id: &str, scan_id: &str) -> Result<()> {
        self.store
            .lease(&claim(agent_id), &self.instance, now_ms(), CLAIM_MS)?;
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status == ScanStatus::Running
            && s.last_progress_ms < now_ms() - self.progress_written_every_ms()
        {
            s.last_progress_ms = now_ms();
            self.store.put_scan(&s)?;
        }
        Ok(())
    }

    /// Marks the scan running and gathers what the SSH client needs; `None` when
    /// there is nothing to run (the scan is no longer pending, or failed here).
    fn ssh_prepare(&self, agent_id: &str, scan_id: &str) -> Result<Option<ssh::ScanJob>> {
        let s = self.own_scan(agent_id, scan_id)?;
        if s.status != ScanStatus::Pending {
            return Ok(None);
        }
        // One collector runs it, whichever claims the target first; the claim is
        // given up at once when nothing runs after all.
        if !self
            .store
            .lease(&claim(agent_id), &self.instance, now_ms(), CLAIM_MS)?
        {
            return Ok(None);
        }
        let job = self.ssh_prepare_claimed(agent_id, scan_id);
        if !matches!(job, Ok(Some(_))) {
            self.unclaim(agent_id);
        }
        job
    }

    /// Gives up this collector's claim on a target: another may run its next scan.
    fn unclaim(&self, agent_id: &str) {
        if let Err(error) = self
            .store
            .lease(&claim(agent_id), &self.instance, now_ms(), 0)
        {
            tracing::warn!(%error, agent_id, "cannot give up the claim on a target");
        }
    }

    fn ssh_prepare_claimed(&self, agent_id: &str, scan_id: &str) -> Result<Option<ssh::ScanJob>> {
        // It may have been run meanwhile by the claim's last holder.
        let s = self.own_scan(agent_id, scan_id)?;
        if s.status != ScanStatus::Pending {
            return Ok(None);
        }
        if let Some(why) = self.ssh.refused.get() {
            self.fail_scan(scan_id, why)?;
            return Ok(None);
        }
        let a = self.agent(agent_id)?;
        let Some(t) = a.ssh.clone().filter(|_| !a.revoked) else {
            self.fail_scan(scan_id, "the target was removed")?;
            return Ok(None);
        };
        self.scan_started(agent_id, scan_id)?;
        let path = self.config.download_dir().join(AGENT_BINARY);
        let agent = match read_binary(&path) {
            Ok(b) => b,
            Err(e) => {
                self.fail_scan(scan_id, &ScanError::NoBinary(e).to_string())?;
                return Ok(None);
            }
        };
        let settings = self.settings();
        let c = &self.config;
        Ok(Some(ssh::ScanJob {
            host: t.host,
            port: t.port,
            user: t.user.unwrap_or_else(|| settings.ssh_user.clone()),
            host_key: t.host_key,
            profile: s.profile.clone(),
            exempt: settings.exempt_rules.iter().cloned().collect(),
            agent: Arc::new(agent),
            limits: ssh::Timeouts {
                connect: Duration::from_secs(c.ssh_connect_timeout_secs),
                step: Duration::from_secs(c.ssh_step_timeout_secs),
                check: Duration::from_secs(c.ssh_check_timeout_secs),
                max_output: c.ssh_max_output_bytes,
                allow_loopback: c.ssh_allow_loopback,
            },
        }))
    }

    /// Records what a scan over SSH brought: the host key first seen, then the
    /// results through the agent's path, or the failure with its reason.
    fn ssh_finish(
        &self,
        agent_id: &str,
        scan_id: &str,
        out: std::result::Result<ssh::ScanOutput, ScanError>,
    ) -> Result<()> {
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                if let ScanError::HostKeyMismatch { expected, seen } = &e {
                    self.audit(
                        "system",
                        "target.host_key_mismatch",
                        Some(agent_id),
                        format!("scan {scan_id}: expected {expected}, presented {seen}"),
                    )?;
                }
                tracing::warn!(agent_id, scan_id, reason = %e, "scan over SSH failed");
                return self.fail_scan(scan_id, &e.to_string());
            }
        };
        // Trust on first use: the first key seen is kept, and audited.
        let mut first = false;
        let mut other = None;
        self.store.update_agent(agent_id, &mut |a| {
            if let Some(t) = a.ssh.as_mut() {
                match &t.host_key {
                    None => {
                        t.host_key = Some(out.host_key.clone());
                        first = true;
                    }
                    Some(k) if *k != out.host_key => other = Some(k.clone()),
                    Some(_) => {}
                }
            }
            a.last_seen_ms = now_ms();
        })?;
        if let Some(expected) = other {
            // Another scan recorded a different key meanwhile.
            let e = ScanError::HostKeyMismatch {
                expected,
                seen: out.host_key.clone(),
            };
            return self.fail_scan(scan_id, &e.to_string());
        }
        if first {
            self.audit(
                "system",
                "target.host_key_recorded",
                Some(agent_id),
                format!("trusted on first use: {}", out.host_key),
            )?;
        }
        let doc: Document = match serde_json::from_slice(&out.document) {
            Ok(d) => d,
            Err(e) => {
                let e = ScanError::BadOutput(e.to_string());
                return self.fail_scan(scan_id, &e.to_string());
            }
        };
        let s = self.own_scan(agent_id, scan_id)?;
        if doc.profile != s.profile {
            let e = ScanError::BadOutput(format!(
                "it is of profile {}, not {}",
                echo(&doc.profile),
                s.profile
            ));
            return self.fail_scan(scan_id, &e.to_string());
        }
        if let Some(rec) = self.store.update_agent(agent_id, &mut |a| {
            a.os = doc
                .host
                .os
                .chars()
                .take(crate::limits::SHORT_FIELD_BYTES)
                .collect();
            if !doc.host.hostname.is_empty()
                && doc.host.hostname.len() <= crate::limits::HOSTNAME_BYTES
            {
                a.hostname = doc.host.hostname.clone();
            }
        })? {
            self.hosts.note(&rec);
        }
        let version = rampart_agent::content::content_version(&doc.benchmark.id);
        let results: Vec<ResultRecord> = doc
            .results
            .into_iter()
            .map(|r| ResultRecord {
                evidence: rampart_agent::daemon::session::fit_evidence(&r.evidence),
                rule_id: r.id,
                status: r.status,
            })
            .collect();
        for batch in results.chunks(crate::limits::RESULTS_PER_BATCH) {
            if let Err(e) = self.record_results(agent_id, scan_id, &version, batch) {
                let e = ScanError::BadOutput(e.to_string());
                return self.fail_scan(scan_id, &e.to_string());
            }
        }
        self.scan_finished(agent_id, scan_id, results.len() as u32, &version)?;
        Ok(())
    }
}

fn read_binary(path: &std::path::Path) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    f.take(AGENT_BINARY_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if out.len() as u64 > AGENT_BINARY_BYTES {
        return Err(format!(
            "{} is over {AGENT_BINARY_BYTES} bytes",
            path.display()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Ca;
    use crate::config::Config;
    use crate::store::sled_store::SledStore;

    fn app(dir: &std::path::Path) -> App {
        let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
        let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
        let config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        App::new(store, ca, config).unwrap()
    }

    fn spec(host: &str) -> TargetSpec {
        TargetSpec {
            host: host.into(),
            ..Default::default()
        }
    }

    #[test]
    fn targets_are_validated() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        for (s, ok) in [
            (spec("10.0.0.7"), true),
            (spec("web-1.example"), true),
            (spec("fe80::1"), true),
            (spec(""), false),
            (spec("-oProxyCommand=x"), false),
            (spec("a b"), false),
            (spec(&"a".repeat(254)), false),
            (
                TargetSpec {
                    port: Some(0),
                    ..spec("h")
                },
                false,
            ),
            (
                TargetSpec {
                    user: Some("ubuntu".into()),
                    ..spec("h")
                },
                true,
            ),
            (
                TargetSpec {
                    user: Some("-l".into()),
                    ..spec("h")
                },
                false,
            ),
            (
                TargetSpec {
                    user: Some("a;b".into()),
                    ..spec("h")
                },
                false,
            ),
            (
                TargetSpec {
                    host_key: Some(fp.into()),
                    ..spec("h")
                },
                true,
            ),
            (
                TargetSpec {
                    host_key: Some("SHA256:short".into()),
                    ..spec("h")
                },
                false,
            ),
            (
                TargetSpec {
                    project: Some("web/prod".into()),
                    ..spec("h")
                },
                true,
            ),
            (
                TargetSpec {
                    project: Some("a b".into()),
                    ..spec("h")
                },
                false,
            ),
            (
                TargetSpec {
                    instance_id: Some("i-0abc".into()),
                    ..spec("h")
                },
                true,
            ),
        ] {
            assert_eq!(app.register_target(&s, "ann").is_ok(), ok, "{s:?}");
        }
    }

    #[test]
    fn a_target_is_registered_scanned_as_ssh_changed_and_removed_with_audit() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let (t, scan) = app
            .register_target(
                &TargetSpec {
                    project: Some("web".into()),
                    instance_id: Some("i-0abc".into()),
                    ..spec("10.0.0.7")
                },
                "ann",
            )
            .unwrap();
        // Scan-on-provision is on by default; without a runner the scan waits.
        let scan = scan.expect("a provision scan");
        assert_eq!(
            (scan.trigger.as_str(), scan.status),
            ("ssh", ScanStatus::Pending)
        );
        assert_eq!(scan.project.as_deref(), Some("web"));
        let ssh = t.ssh.clone().unwrap();
        assert_eq!((ssh.port, ssh.user, ssh.host_key), (22, None, None));
        // The gate finds it by instance ID, like an agent.
        assert_eq!(app.handover("i-0abc").unwrap().agent_id, t.id);
        // A second request while one is pending is the same scan.
        let again = app.create_scan(&t.id, "manual", "ann").unwrap().unwrap();
        assert_eq!(again.id, scan.id);
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        let changed = app
            .update_target(
                &t.id,
                &TargetSpec {
                    port: Some(2222),
                    user: Some("scan".into()),
                    host_key: Some(fp.into()),
                    ..spec("10.0.0.8")
                },
                "ann",
            )
            .unwrap();
        let ssh = changed.ssh.unwrap();
        assert_eq!(
            (
                ssh.host.as_str(),
                ssh.port,
                ssh.host_key.as_deref(),
                ssh.host_key_pinned
            ),
            ("10.0.0.8", 2222, Some(fp), true)
        );
        assert_eq!(app.targets().unwrap().len(), 1);
        app.remove_target(&t.id, "ann").unwrap();
        assert!(app.targets().unwrap().is_empty());
        // It had no certificate: the CRL names none for it.
        assert!(app.revoked_serials().unwrap().is_empty());
        assert!(matches!(app.target(&t.id), Err(AppError::NotFound(_))));
        assert!(app.create_scan(&t.id, "manual", "ann").is_err());
        // An agent is no target.
        assert!(matches!(
            app.update_target("ag-none", &spec("h"), "ann"),
            Err(AppError::NotFound(_))
        ));
        let (log, _) = app.store.audit(0, 20).unwrap();
        for action in ["target.register", "target.update", "target.remove"] {
            assert!(
                log.iter().any(|e| e.action == action && e.actor == "ann"),
                "{action}"
            );
        }
    }

    #[test]
    fn what_a_scan_brings_back_is_recorded_or_fails_the_scan_with_its_reason() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        let run = |out: std::result::Result<ssh::ScanOutput, ScanError>| {
            let (t, scan) = app.register_target(&spec("h"), "ann").unwrap();
            let scan = scan.unwrap();
            app.scan_started(&t.id, &scan.id).unwrap();
            app.ssh_finish(&t.id, &scan.id, out).unwrap();
            (
                app.target(&t.id).unwrap(),
                app.store.scan(&scan.id).unwrap().unwrap(),
            )
        };
        // Output that is no scan document: failed, but the key seen is recorded.
        let (t, s) = run(Ok(ssh::ScanOutput {
            document: b"sudo: unknown user".to_vec(),
            host_key: fp.into(),
        }));
        assert_eq!(s.status, ScanStatus::Failed);
        let why = s.failure_reason.unwrap();
        assert!(why.contains("not a scan document"), "{why}");
        assert_eq!(t.ssh.unwrap().host_key.as_deref(), Some(fp));
        // A document of another profile.
        let doc = serde_json::json!({
            "benchmark": {"id": "debian-12"}, "profile": "level2-server",
            "host": {"hostname": "h", "os": "Debian"}, "results": []
        });
        let (_, s) = run(Ok(ssh::ScanOutput {
            document: doc.to_string().into_bytes(),
            host_key: fp.into(),
        }));
        assert!(s.failure_reason.unwrap().contains("profile level2-server"));
        // A mismatch: failed with the reason, and audited.
        let (t, s) = run(Err(ScanError::HostKeyMismatch {
            expected: fp.into(),
            seen: "SHA256:other".into(),
        }));
        assert!(s.failure_reason.unwrap().starts_with("host key mismatch"));
        assert_eq!(t.ssh.unwrap().host_key, None, "nothing recorded");
        let (log, _) = app.store.audit(0, 50).unwrap();
        for action in ["target.host_key_recorded", "target.host_key_mismatch"] {
            assert!(log.iter().any(|e| e.action == action), "{action}");
        }
    }

    #[test]
    fn schedules_and_manual_requests_scan_targets_over_ssh() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let mut s = app.settings();
        s.scan_on_provision = false;
        s.schedule_enabled = true;
        s.schedule_cron = "0 3 * * *".into();
        app.update_settings(s, "admin").unwrap();
        let (t, none) = app.register_target(&spec("h"), "ann").unwrap();
        assert!(none.is_none(), "scan-on-provision is off");
        let window = chrono::Duration::seconds(app.config.schedule_window_secs);
        let due = crate::schedule::parse("0 3 * * *")
            .unwrap()
            .next_for_agent(&t.id, chrono::Utc::now(), window)
            .unwrap();
        crate::server::scheduled_scans_for_test(&app, due - chrono::Duration::seconds(1), due)
            .unwrap();
        let scheduled = app
            .store
            .latest_scan(&t.id)
            .unwrap()
            .expect("a scheduled scan");
        assert_eq!(scheduled.trigger, "ssh");
        let (log, _) = app.store.audit(0, 5).unwrap();
        assert!(log.iter().any(|e| e.action == "scan.create"
            && e.detail == format!("schedule scan of target {}", t.id)));
        // Once it is over, a manual request makes the next one.
        app.fail_scan(&scheduled.id, "test").unwrap();
        let manual = app.create_scan(&t.id, "manual", "ann").unwrap().unwrap();
        assert_ne!(manual.id, scheduled.id);
        assert_eq!(manual.trigger, "ssh");
    }

    /// Where collectors share a store, the one that claims a target runs its scan;
    /// the others leave it alone until the claim is given up or runs out.
    #[test]
    fn a_target_claimed_by_another_collector_is_left_to_it() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let (t, scan) = app.register_target(&spec("10.0.0.7"), "ann").unwrap();
        let scan = scan.expect("scan on provision");
        let status = || app.store.scan(&scan.id).unwrap().unwrap();
        assert!(app
            .store
            .lease(&claim(&t.id), "another-collector", now_ms(), CLAIM_MS)
            .unwrap());
        assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
        assert_eq!(status().status, ScanStatus::Pending, "left to the claimant");
        // A pending scan nobody runs is picked up by the lease holder's round only
        // once it is old enough.
        assert_eq!(app.run_pending_ssh_scans(Some(ORPHAN_MS)).unwrap(), 0);
        assert_eq!(app.run_pending_ssh_scans(Some(0)).unwrap(), 1);
        // Given up: this collector claims it and starts it (here it fails at once:
        // no agent binary in the download directory).
        app.store
            .lease(&claim(&t.id), "another-collector", now_ms(), 0)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
        let s = status();
        assert_eq!(s.status, ScanStatus::Failed, "{s:?}");
        assert!(
            s.failure_reason
                .as_deref()
                .unwrap_or_default()
                .contains("agent binary"),
            "{s:?}"
        );
        // ... and, since nothing runs, gave the claim up again.
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(app
            .store
            .lease(&claim(&t.id), "another-collector", now_ms(), CLAIM_MS)
            .unwrap());
    }

    /// Collectors sharing a store share the SSH key the targets trust: the first
    /// records it, and one with another key fails its scans saying what to copy.
    #[test]
    fn a_collector_with_another_ssh_key_fails_its_scans_saying_why() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let first = SshKey::open_or_create(&d.path().join("first")).unwrap();
        let other = SshKey::open_or_create(&d.path().join("other")).unwrap();
        assert_eq!(app.fleet_ssh_key(&first).unwrap(), None, "recorded");
        assert_eq!(app.fleet_ssh_key(&first).unwrap(), None, "the same key");
        let why = app.fleet_ssh_key(&other).unwrap().expect("another key");
        assert!(why.contains(other.fingerprint()), "{why}");
        assert!(
            why.contains("copy the first collector's <data_dir>/ssh"),
            "{why}"
        );
        let _ = app.ssh.refused.set(why.clone());
        let (t, scan) = app.register_target(&spec("10.0.0.7"), "ann").unwrap();
        let scan = scan.expect("scan on provision");
        assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
        let s = app.store.scan(&scan.id).unwrap().unwrap();
        assert_eq!(s.status, ScanStatus::Failed);
        assert_eq!(s.failure_reason.as_deref(), Some(why.as_str()));
    }
}
