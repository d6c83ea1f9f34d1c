//! The scans of targets: started by the schedule or a person, claimed by one collector
//! where several share a store, run over SSH, their document read back and recorded.

use rampart_report::Status;

use super::*;

/// The parts of `check --format json` a scan over SSH reads. The versioned scan
/// document (docs/scan-document.md) kept these fields where the agent's earlier
/// document had them, so an older agent on a target is read the same way.
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
    status: Status,
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
        let now = self.clock.now_ms();
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
    pub(super) fn fleet_ssh_key(&self, key: &SshKey) -> Result<Option<String>> {
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

    /// Starts a pending scan of a target, in the background; without a started
    /// runner (unit tests, administrative commands) it stays pending.
    pub(in crate::app) fn run_ssh_scan(&self, s: &ScanRecord) {
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
        self.store.lease(
            &claim(agent_id),
            &self.instance,
            self.clock.now_ms(),
            CLAIM_MS,
        )?;
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status == ScanStatus::Running
            && s.last_progress_ms < self.clock.now_ms() - self.progress_written_every_ms()
        {
            s.last_progress_ms = self.clock.now_ms();
            self.store.put_scan(&s)?;
        }
        Ok(())
    }

    /// Marks the scan running and gathers what the SSH client needs; `None` when
    /// there is nothing to run (the scan is no longer pending, or failed here).
    pub(super) fn ssh_prepare(
        &self,
        agent_id: &str,
        scan_id: &str,
    ) -> Result<Option<ssh::ScanJob>> {
        let s = self.own_scan(agent_id, scan_id)?;
        if s.status != ScanStatus::Pending {
            return Ok(None);
        }
        // One collector runs it, whichever claims the target first; the claim is
        // given up at once when nothing runs after all.
        if !self.store.lease(
            &claim(agent_id),
            &self.instance,
            self.clock.now_ms(),
            CLAIM_MS,
        )? {
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
        if let Err(error) =
            self.store
                .lease(&claim(agent_id), &self.instance, self.clock.now_ms(), 0)
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
            profile: s.profile,
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
    pub(super) fn ssh_finish(
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
            a.last_seen_ms = self.clock.now_ms();
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
                let e = ScanError::NotDocument(e);
                return self.fail_scan(scan_id, &e.to_string());
            }
        };
        let s = self.own_scan(agent_id, scan_id)?;
        if doc.profile != s.profile.name() {
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
