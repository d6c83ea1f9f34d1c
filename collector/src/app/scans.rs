//! The scan lifecycle: creation, progress, results, completion with score and
//! enforcement, failure, expiry and cancellation.

use std::collections::HashMap;

use super::{App, AppError, Command, Result};
use crate::auth;
use crate::policy::{self, Counts};
use crate::store::{ResultRecord, ScanFilter, ScanRecord, ScanStatus};
use rampart_report::{Severity, Status};

/// A scan `create_scans` has to send.
struct Made {
    scan: ScanRecord,
    /// Written now (not the agent's pending scan, found).
    new: bool,
    /// A target's: it runs over SSH.
    over_ssh: bool,
}

impl App {
    /// Creates a pending scan for an agent and asks it to run, unless scanning is off
    /// or its project is exempt (then `None`).
    pub fn create_scan(
        &self,
        agent_id: &str,
        trigger: &str,
        actor: &str,
    ) -> Result<Option<ScanRecord>> {
        Ok(self
            .create_scans(&[agent_id.to_string()], trigger, actor)?
            .pop())
    }

    /// [`Self::create_scan`] for each agent, all made durable by one sync before any
    /// is sent: a whole project's or a schedule slot's scans cost one sync, not one
    /// each. At the first error the scans made before it are still synced and sent,
    /// then the error is returned.
    pub fn create_scans(
        &self,
        agent_ids: &[String],
        trigger: &str,
        actor: &str,
    ) -> Result<Vec<ScanRecord>> {
        let mut made = Vec::new();
        let (failed, due) = crate::ingest::deferring(|| {
            for a in agent_ids {
                match self.record_scan(a, trigger, actor) {
                    Ok(Some(m)) => made.push(m),
                    Ok(None) => {}
                    Err(e) => return Some(e),
                }
            }
            None
        });
        if due {
            // Nothing is sent before the scans are durable, wherever this runs.
            self.sync_now()?;
        } else {
            self.store.settle()?;
        }
        for m in &made {
            if m.new {
                self.metrics.scan_created(&m.scan.trigger);
            }
            // A target's scans run over SSH; a target's pending scan is already
            // queued to run here.
            match (m.over_ssh, m.new) {
                (true, true) => self.run_ssh_scan(&m.scan),
                (true, false) => {}
                (false, _) => self.send_scan(&m.scan),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(made.into_iter().map(|m| m.scan).collect()),
        }
    }

    /// Writes a new pending scan, or finds the agent's pending one; `None` when no
    /// scan is to run. Its sync is deferred to the caller.
    fn record_scan(&self, agent_id: &str, trigger: &str, actor: &str) -> Result<Option<Made>> {
        let a = self.agent(agent_id)?;
        let s = self.settings();
        if a.revoked {
            return Err(AppError::Invalid(format!("agent {agent_id} is revoked")));
        }
        if !s.scanning_enabled
            || a.project
                .as_ref()
                .is_some_and(|p| s.exempt_projects.contains(p))
        {
            return Ok(None);
        }
        // One pending scan per agent at most: a scan that has not started yet will
        // run with the settings of its time anyway.
        // No scan is created while one is pending, so a pending scan is the agent's
        // newest: one index lookup, however many scans the agent has.
        if let Some(p) = self
            .store
            .latest_scan(agent_id)?
            .filter(|p| p.status == ScanStatus::Pending)
        {
            return Ok(Some(Made {
                scan: p,
                new: false,
                over_ssh: a.ssh.is_some(),
            }));
        }
        let now = self.clock.now_ms();
        let id = format!("sc-{now:013}-{}", &auth::new_id("")?[..8]);
        // A target's scans, whatever asked for them, run over SSH: trigger `ssh`.
        let (kind, recorded) = match a.ssh {
            Some(_) => ("target", "ssh"),
            None => ("agent", trigger),
        };
        let rec = ScanRecord::pending(id, agent_id, a.project.clone(), recorded, s.profile, now);
        self.store.put_scan(&rec)?;
        self.audit(
            actor,
            "scan.create",
            Some(&rec.id),
            format!("{trigger} scan of {kind} {agent_id}"),
        )?;
        self.sync_store()?; // deferred: `create_scans` syncs once for all
        Ok(Some(Made {
            scan: rec,
            new: true,
            over_ssh: a.ssh.is_some(),
        }))
    }

    /// Sends a pending scan to its agent, here or, when it is not connected here,
    /// through whichever collector it is connected to.
    fn send_scan(&self, s: &ScanRecord) {
        if !self.send(&s.agent_id, self.scan_command(s)) && !self.is_connected(&s.agent_id) {
            self.tell_others(crate::store::Event::Scan {
                agent_id: s.agent_id.clone(),
                scan_id: s.id.clone(),
            });
        }
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A scan goes from pending to running: from here on its statuses are tallied
    /// as its batches are stored.
    fn start_tally(&self, scan_id: &str) {
        self.in_flight().insert(
            scan_id.to_string(),
            InFlight {
                progress_ms: self.clock.now_ms(),
                statuses: Some(HashMap::new()),
            },
        );
    }

    /// A batch was stored (or, with none, a scan over SSH is still running).
    pub(super) fn made_progress(&self, scan_id: &str, results: &[ResultRecord]) {
        let mut f = self.in_flight();
        let e = f.entry(scan_id.to_string()).or_insert(InFlight {
            progress_ms: 0,
            // Started before this process (a restart): the store has the earlier
            // batches, and the tally would miss them.
            statuses: None,
        });
        e.progress_ms = self.clock.now_ms();
        if let Some(t) = e.statuses.as_mut() {
            for r in results {
                t.insert(r.rule_id.clone(), r.status);
            }
        }
    }

    fn progress_of(&self, scan_id: &str) -> Option<i64> {
        self.in_flight().get(scan_id).map(|f| f.progress_ms)
    }

    /// A finished scan's progress is in its record for good.
    fn forget_progress(&self, scan_id: &str) {
        self.in_flight().remove(scan_id);
    }

    /// A scan's record alone (no results); `NotFound` names the ID.
    pub fn scan_record(&self, id: &str) -> Result<ScanRecord> {
        self.store
            .scan(id)?
            .ok_or_else(|| AppError::NotFound(format!("scan {id}")))
    }

    /// A scan with its results, for views and reports; `NotFound` names the ID.
    pub fn scan_with_results(&self, id: &str) -> Result<(ScanRecord, Vec<ResultRecord>)> {
        let s = self
            .store
            .scan(id)?
            .ok_or_else(|| AppError::NotFound(format!("scan {id}")))?;
        let results = self.store.results(id)?;
        Ok((s, results))
    }

    pub(super) fn own_scan(&self, agent_id: &str, scan_id: &str) -> Result<ScanRecord> {
        let s = self
            .store
            .scan(scan_id)?
            .ok_or_else(|| AppError::Invalid(format!("unknown scan {scan_id}")))?;
        if s.agent_id != agent_id {
            return Err(AppError::Invalid(format!(
                "scan {scan_id} belongs to another agent"
            )));
        }
        Ok(s)
    }

    pub fn scan_started(&self, agent_id: &str, scan_id: &str) -> Result<()> {
        let mut s = self.own_scan(agent_id, scan_id)?;
        match s.status {
            ScanStatus::Pending => {
                s.status = ScanStatus::Running;
                s.started_at_ms = Some(self.clock.now_ms());
                self.start_tally(scan_id);
            }
            ScanStatus::Running => {} // a resend after reconnecting
            _ => return Ok(()),       // already final: nothing to change
        }
        s.last_progress_ms = self.clock.now_ms();
        // Not synced: nothing is acknowledged for a start. A start lost in a crash
        // is made again by the agent's resend, or by its first batch (which syncs).
        self.store.put_scan(&s)?;
        Ok(())
    }

    /// Stores a batch durably; returns once it is on disk.
    pub fn record_results(
        &self,
        agent_id: &str,
        scan_id: &str,
        content_version: &str,
        results: &[ResultRecord],
    ) -> Result<()> {
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status.is_final() {
            return Ok(()); // late resend of a finished scan: already durable
        }
        if let Some(why) = self.check_results(&s, content_version, results)? {
            // The agent's content does not match the collector's: the scan fails with
            // the reason, and the batch is acknowledged so that it is not resent.
            s.status = ScanStatus::Failed;
            s.failure_reason = Some(why);
            s.finished_at_ms = Some(self.clock.now_ms());
            self.store.put_scan(&s)?;
            self.forget_progress(&s.id);
            self.sync_store()?;
            self.metrics.scan_ended(&s);
            return Ok(());
        }
        let t = std::time::Instant::now();
        self.store
            .put_results(scan_id, results, self.clock.now_ms())?;
        self.metrics.store_written(t.elapsed());
        if s.status == ScanStatus::Pending {
            // Results without ScanStarted: the scan runs from now.
            s.status = ScanStatus::Running;
            s.started_at_ms = Some(self.clock.now_ms());
            s.last_progress_ms = self.clock.now_ms();
            self.store.put_scan(&s)?;
            self.start_tally(scan_id);
        } else if s.last_progress_ms < self.clock.now_ms() - self.progress_written_every_ms() {
            // Progress lives in this process's memory; now and then it is written,
            // so that a collector sharing the store judges a stalled scan right.
            s.last_progress_ms = self.clock.now_ms();
            self.store.put_scan(&s)?;
        }
        self.made_progress(scan_id, results);
        self.sync_store()?;
        self.metrics.results.inc_by(results.len() as u64);
        Ok(())
    }

    /// Checks a batch against the scan. Over a bound (batch size, evidence): an error
    /// that ends the stream. A rule outside the scan's profile of the benchmark the
    /// collector knows, or a status that rule cannot have: `Some(reason)`, and the
    /// scan fails with it.
    fn check_results(
        &self,
        s: &ScanRecord,
        content_version: &str,
        results: &[ResultRecord],
    ) -> Result<Option<String>> {
        use crate::limits::{echo, RESULTS_PER_BATCH};
        if results.len() > RESULTS_PER_BATCH {
            return Err(AppError::Invalid(format!(
                "a batch of {} results; at most {RESULTS_PER_BATCH} are accepted",
                results.len()
            )));
        }
        for r in results {
            crate::limits::result(&r.rule_id, &r.evidence).map_err(|e| AppError::Invalid(e.0))?;
        }
        let Some(catalog) = self.catalog(content_version)? else {
            return Ok(Some(format!(
                "the agent's content `{}` is no benchmark this collector knows",
                echo(content_version)
            )));
        };
        for r in results {
            let Some(rule) = catalog.rules.get(&r.rule_id) else {
                return Ok(Some(format!(
                    "rule {} is not in benchmark {} as this collector knows it",
                    echo(&r.rule_id),
                    catalog.benchmark_id
                )));
            };
            if !rule.profiles.contains(&s.profile) {
                return Ok(Some(format!(
                    "rule {} is not in profile {} of benchmark {}",
                    r.rule_id, s.profile, catalog.benchmark_id
                )));
            }
            let ok = match r.status {
                // A manual recommendation is never passed or failed.
                Status::NotChecked => !rule.automated,
                s if s.is_scored() => rule.automated,
                _ => true,
            };
            if !ok {
                return Ok(Some(format!(
                    "rule {} cannot have status {}",
                    r.rule_id, r.status
                )));
            }
        }
        Ok(None)
    }

    /// Completes a scan: counts, score and enforcement from the stored results.
    pub fn scan_finished(
        &self,
        agent_id: &str,
        scan_id: &str,
        expected: u32,
        content_version: &str,
    ) -> Result<ScanRecord> {
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status.is_final() {
            return Ok(s);
        }
        let mut queued = false;
        // Each rule's latest status: tallied as the batches came, or (a scan that
        // began before this process started) read back from the store.
        let tally = self
            .in_flight()
            .get_mut(scan_id)
            .and_then(|f| f.statuses.take());
        let results: Vec<(String, Status)> = match tally {
            Some(t) => t.into_iter().collect(),
            None => self
                .store
                .results(scan_id)?
                .into_iter()
                .map(|r| (r.rule_id, r.status))
                .collect(),
        };
        s.content_version = Some(content_version.to_string());
        let catalog = self.catalog(content_version)?;
        let wanted: Vec<&str> = catalog
            .as_ref()
            .map(|c| c.profile_rules(s.profile))
            .unwrap_or_default();
        let reported: std::collections::HashSet<&str> =
            results.iter().map(|(id, _)| id.as_str()).collect();
        let missing = wanted.iter().filter(|id| !reported.contains(**id)).count();
        if results.len() as u32 != expected {
            s.status = ScanStatus::Failed;
            s.failure_reason = Some(format!(
                "the agent reported {expected} results but {} arrived",
                results.len()
            ));
        } else if wanted.is_empty() || missing > 0 {
            // A scan counts only when it covers its whole profile.
            s.status = ScanStatus::Failed;
            s.failure_reason = Some(format!(
                "the scan covers {} of the {} rules of profile {}",
                wanted.len() - missing,
                wanted.len(),
                s.profile
            ));
        } else {
            let severity = |id: &str| {
                catalog
                    .as_ref()
                    .and_then(|c| c.rules.get(id))
                    .map_or(Severity::Medium, |r| r.severity)
            };
            let (mut c, mut nc, mut ex) = (Counts::default(), 0, 0);
            for (rule_id, status) in &results {
                match status {
                    Status::Pass => c.passed += 1,
                    Status::Fail => {
                        c.failed += 1;
                        c.failed_by_severity.add(severity(rule_id));
                    }
                    Status::Error => c.error += 1,
                    Status::NotApplicable => c.not_applicable += 1,
                    Status::NotChecked => nc += 1,
                    Status::Exempted => ex += 1,
                }
            }
            let settings = self.settings();
            let verdict = complete(&mut s, &settings, &c, (nc, ex));
            if verdict.alert {
                self.audit(
                    "system",
                    "policy.warn",
                    Some(scan_id),
                    format!("would block: {}", verdict.reasons.join("; ")),
                )?;
                super::alerts::enqueue(self, &settings, &s)?;
                queued = true;
            }
        }
        s.finished_at_ms = Some(self.clock.now_ms());
        s.last_progress_ms = self.clock.now_ms();
        self.store.put_scan(&s)?;
        self.forget_progress(&s.id);
        self.sync_store()?;
        self.metrics.scan_ended(&s);
        self.webhook_wake.notify_one();
        if queued && !self.is_leader() {
            self.tell_others(crate::store::Event::Webhook);
        }
        Ok(s)
    }

    /// Fails a scan that is not final yet with `reason` (a scan over SSH: the
    /// collector's own words).
    pub(super) fn fail_scan(&self, scan_id: &str, reason: &str) -> Result<()> {
        let Some(mut s) = self.store.scan(scan_id)? else {
            return Err(AppError::NotFound(format!("scan {scan_id}")));
        };
        if s.status.is_final() {
            return Ok(());
        }
        s.status = ScanStatus::Failed;
        s.failure_reason = Some(reason.chars().take(crate::limits::REASON_CHARS).collect());
        s.finished_at_ms = Some(self.clock.now_ms());
        self.store.put_scan(&s)?;
        self.forget_progress(&s.id);
        self.sync_store()?;
        self.metrics.scan_ended(&s);
        Ok(())
    }

    pub fn scan_failed(&self, agent_id: &str, scan_id: &str, reason: &str) -> Result<()> {
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status.is_final() {
            return Ok(());
        }
        s.status = ScanStatus::Failed;
        s.failure_reason = Some(format!(
            "the agent reported: {}",
            reason
                .chars()
                .take(crate::limits::REASON_CHARS)
                .collect::<String>()
        ));
        s.finished_at_ms = Some(self.clock.now_ms());
        self.store.put_scan(&s)?;
        self.forget_progress(&s.id);
        self.sync_store()?;
        self.metrics.scan_ended(&s);
        Ok(())
    }

    /// Fails running or pending-but-started scans that made no progress within the timeout.
    /// How stale a running scan's stored progress may grow: a quarter of the timeout.
    pub(super) fn progress_written_every_ms(&self) -> i64 {
        self.config.scan_timeout_secs as i64 * 1000 / 4
    }

    pub fn expire_stalled(&self) -> Result<usize> {
        self.expire_stalled_at(self.clock.now_ms())
    }

    pub(crate) fn expire_stalled_at(&self, now: i64) -> Result<usize> {
        let limit = now - self.config.scan_timeout_secs as i64 * 1000;
        let f = ScanFilter {
            status: Some(ScanStatus::Running),
            ..Default::default()
        };
        let (running, _) = self.store.scans(&f, 0, usize::MAX)?;
        let mut ended = Vec::new();
        let last = |s: &ScanRecord| {
            let seen = self.progress_of(&s.id).unwrap_or(i64::MIN);
            s.last_progress_ms.max(seen).max(self.started_ms)
        };
        for mut s in running.into_iter().filter(|s| last(s) < limit) {
            s.status = ScanStatus::Failed;
            s.failure_reason = Some(format!(
                "no progress from the agent for {} s",
                self.config.scan_timeout_secs
            ));
            s.finished_at_ms = Some(self.clock.now_ms());
            self.store.put_scan(&s)?;
            self.forget_progress(&s.id);
            ended.push(s);
        }
        if !ended.is_empty() {
            self.sync_store()?;
        }
        for s in &ended {
            self.metrics.scan_ended(s);
        }
        Ok(ended.len())
    }

    /// Deletes the per-rule results of finished scans created before the retention
    /// (`results_retention_days`), and the result files that held only those; the
    /// scans' summaries stay. Returns how many scans lost their results.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize> {
        let days = self.config.results_retention_days;
        if days == 0 {
            return Ok(0);
        }
        let cut = now_ms - days as i64 * 86_400_000;
        let n = self.store.prune_results(cut)?;
        if n > 0 {
            self.metrics.results_pruned_scans.inc_by(n as u64);
            self.audit(
                "system",
                "retention.results",
                None,
                format!("results of {n} scans created over {days} days ago deleted"),
            )?;
            self.sync_store()?;
        }
        Ok(n)
    }

    /// Whether the retention has passed over this scan's results (they are gone, or
    /// going at the next pass).
    pub fn results_expired(&self, s: &ScanRecord) -> bool {
        let days = self.config.results_retention_days;
        days > 0
            && s.status.is_final()
            && s.created_at_ms < self.clock.now_ms() - days as i64 * 86_400_000
    }

    pub fn cancel_scan(&self, scan_id: &str, actor: &str) -> Result<ScanRecord> {
        let mut s = self
            .store
            .scan(scan_id)?
            .ok_or_else(|| AppError::NotFound(format!("scan {scan_id}")))?;
        if s.status.is_final() {
            return Err(AppError::Invalid(
                format!("scan {scan_id} is already {:?}", s.status).to_lowercase(),
            ));
        }
        s.status = ScanStatus::Cancelled;
        s.finished_at_ms = Some(self.clock.now_ms());
        self.store.put_scan(&s)?;
        self.forget_progress(&s.id);
        self.audit(actor, "scan.cancel", Some(scan_id), "cancelled")?;
        self.sync_store()?;
        self.metrics.scan_ended(&s);
        self.send(
            &s.agent_id,
            Command::Cancel {
                scan_id: scan_id.into(),
            },
        );
        Ok(s)
    }
}

/// Completes a scan from its counts: status, score, counts, failures by severity
/// and the policy's verdict, which is returned. The one place a completed scan's
/// summary is made (the load generator's seeding too).
pub fn complete(
    s: &mut ScanRecord,
    settings: &policy::Settings,
    c: &Counts,
    (not_checked, exempted): (u32, u32),
) -> policy::Verdict {
    let verdict = policy::enforce(settings, c, s.project.as_deref());
    s.status = ScanStatus::Completed;
    s.score = policy::score(c);
    (
        s.passed,
        s.failed,
        s.error,
        s.not_applicable,
        s.not_checked,
        s.exempted,
    ) = (
        c.passed,
        c.failed,
        c.error,
        c.not_applicable,
        not_checked,
        exempted,
    );
    s.failed_by_severity = c.failed_by_severity;
    s.blocked = verdict.blocked;
    s.block_reasons = verdict.reasons.clone();
    verdict
}

/// What the collector holds of a running scan between its batches.
pub(crate) struct InFlight {
    /// When its last batch was stored: kept here rather than by rewriting the scan
    /// record for every batch.
    pub progress_ms: i64,
    /// Each rule's latest status, when every batch went through this process: the
    /// scan then completes without reading its results back.
    pub statuses: Option<HashMap<String, Status>>,
}
