//! The collector's domain: enrollment, the scan lifecycle, scoring and enforcement,
//! the handover gate, releases, settings and agent revocation. Transport layers
//! (gRPC, REST) call these operations; they never touch the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

mod accounts;
mod enrollment;

pub use crate::catalog::{Catalog, CatalogRule};
pub use enrollment::{labels_of, Refusal};

use crate::auth;
use crate::ca::Ca;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::limits::RateLimiter;
use crate::policy::{self, Counts, Mode, Settings};
use crate::store::{
    AgentRecord, AuditRecord, ResultRecord, ScanFilter, ScanRecord, ScanStatus, Store, StoreError,
};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Errors of domain operations, each mapped to a gRPC status or HTTP code by its caller.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request names something that does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is malformed or not allowed in the current state.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what exists (a name taken, the last admin).
    #[error("{0}")]
    Conflict(String),
    /// Credentials were refused.
    #[error("{0}")]
    Refused(String),
    /// Issuing a certificate failed.
    #[error(transparent)]
    Ca(crate::ca::CaError),
    /// The caller went over a rate limit; it may retry later.
    #[error("{0}")]
    Limited(String),
    /// A dependency the collector needs (its random number generator) failed:
    /// nothing was issued; the caller may retry (HTTP 503, gRPC UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T> = std::result::Result<T, AppError>;

/// What the collector tells a connected agent to do. The agent chooses nothing else.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Settings {
        scanning_enabled: bool,
        profile: String,
        exempt_rules: Vec<String>,
        schedule_cron: String,
        schedule_offset_s: u32,
    },
    Scan {
        scan_id: String,
        profile: String,
        exempt_rules: Vec<String>,
    },
    Cancel {
        scan_id: String,
    },
}

/// The on-disk form of settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SettingsRecord {
    pub scanning_enabled: bool,
    pub mode: String,
    pub profile: String,
    pub min_score: f64,
    pub block_on_critical: bool,
    pub block_on_high: bool,
    pub scan_on_provision: bool,
    pub schedule_enabled: bool,
    pub schedule_cron: String,
    pub ssh_user: String,
    pub exempt_rules: Vec<String>,
    pub exempt_projects: Vec<String>,
    /// Where warn-mode alerts go (http or https); empty: nowhere.
    #[serde(default)]
    pub webhook_url: String,
    /// Write-only, never serialised (kept under its own key on disk). In a request:
    /// absent leaves it unchanged, `""` removes it.
    #[serde(default, skip_serializing)]
    pub webhook_secret: Option<String>,
    /// Read-only: whether a webhook secret is set.
    #[serde(default)]
    pub webhook_secret_set: bool,
}

impl From<&Settings> for SettingsRecord {
    fn from(s: &Settings) -> Self {
        SettingsRecord {
            scanning_enabled: s.scanning_enabled,
            mode: match s.mode {
                Mode::Audit => "audit",
                Mode::Warn => "warn",
                Mode::Block => "block",
            }
            .into(),
            profile: s.profile.clone(),
            min_score: s.min_score,
            block_on_critical: s.block_on_critical,
            block_on_high: s.block_on_high,
            scan_on_provision: s.scan_on_provision,
            schedule_enabled: s.schedule_enabled,
            schedule_cron: s.schedule_cron.clone(),
            ssh_user: s.ssh_user.clone(),
            exempt_rules: s.exempt_rules.iter().cloned().collect(),
            exempt_projects: s.exempt_projects.iter().cloned().collect(),
            webhook_url: s.webhook_url.clone(),
            webhook_secret: None,
            webhook_secret_set: s.webhook_secret.is_some(),
        }
    }
}

impl TryFrom<&SettingsRecord> for Settings {
    type Error = String;
    fn try_from(r: &SettingsRecord) -> std::result::Result<Self, String> {
        let s = Settings {
            scanning_enabled: r.scanning_enabled,
            mode: Mode::parse(&r.mode)
                .ok_or_else(|| format!("mode `{}` is not audit, warn or block", r.mode))?,
            profile: r.profile.clone(),
            min_score: r.min_score,
            block_on_critical: r.block_on_critical,
            block_on_high: r.block_on_high,
            scan_on_provision: r.scan_on_provision,
            schedule_enabled: r.schedule_enabled,
            schedule_cron: r.schedule_cron.clone(),
            ssh_user: r.ssh_user.clone(),
            exempt_rules: r.exempt_rules.iter().cloned().collect(),
            exempt_projects: r.exempt_projects.iter().cloned().collect(),
            webhook_url: r.webhook_url.clone(),
            webhook_secret: r.webhook_secret.clone().map(policy::WebhookSecret),
        };
        s.validate().map_err(|e| e.to_string())?;
        Ok(s)
    }
}

/// The answer of the handover gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub allowed: bool,
    /// `allowed`, `released`, `exempt`, `pending`, `blocked`, `failed`.
    pub state: &'static str,
    pub reasons: Vec<String>,
    pub agent_id: String,
    pub instance_id: String,
    pub hostname: String,
    pub scan_id: Option<String>,
}

/// What a hello says about the VM now.
#[derive(Debug, Clone, Default)]
pub struct HelloInfo {
    pub hostname: String,
    pub ip_addresses: Vec<String>,
    pub os: String,
    /// Compared with the enrolled one, never stored.
    pub instance_id: String,
}

/// A successful enrollment.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub agent_id: String,
    pub cert_der: Vec<u8>,
    pub not_after_ms: i64,
    pub provision_scan: Option<String>,
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub enrollments_total: std::sync::atomic::AtomicU64,
    pub enrollments_refused_total: std::sync::atomic::AtomicU64,
    pub results_total: std::sync::atomic::AtomicU64,
    pub scans_completed_total: std::sync::atomic::AtomicU64,
    pub streams_rejected_total: std::sync::atomic::AtomicU64,
    /// Refused enrollments by reason, in [`Refusal::ALL`] order.
    pub enrollments_refused_by_reason: [std::sync::atomic::AtomicU64; 6],
    /// Agent streams ended because they went over a limit.
    pub agent_limit_refusals_total: std::sync::atomic::AtomicU64,
}

impl Metrics {
    /// The refusal counters in the Prometheus text format.
    pub fn render_refusals(&self) -> String {
        let mut out = String::from(
            "# HELP rampart_enrollment_refusals_total Enrollments refused, by reason.\n\
             # TYPE rampart_enrollment_refusals_total counter\n",
        );
        for (i, r) in Refusal::ALL.iter().enumerate() {
            out.push_str(&format!(
                "rampart_enrollment_refusals_total{{reason=\"{}\"}} {}\n",
                r.as_str(),
                self.enrollments_refused_by_reason[i].load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP rampart_agent_limit_refusals_total Agent streams ended for going over a rate limit.\n\
             # TYPE rampart_agent_limit_refusals_total counter\n\
             rampart_agent_limit_refusals_total {}\n",
            self.agent_limit_refusals_total.load(std::sync::atomic::Ordering::Relaxed)
        ));
        out
    }

    pub fn refusal(&self, why: Refusal) {
        if let Some(i) = Refusal::ALL.iter().position(|r| *r == why) {
            bump(&self.enrollments_refused_by_reason[i], 1);
        }
    }
}

/// A connected agent's stream, as the app sees it.
struct Live {
    tx: mpsc::Sender<Command>,
    /// Ends the stream (revocation, or a newer stream of the same agent).
    end: Arc<StreamEnd>,
    /// A command could not be queued: the stream re-reads pending scans.
    resync: Arc<std::sync::atomic::AtomicBool>,
}

/// Tells a stream to end, and why.
#[derive(Default)]
pub struct StreamEnd {
    pub notify: tokio::sync::Notify,
    pub reason: Mutex<Option<String>>,
}

impl StreamEnd {
    pub fn end(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.notify.notify_one();
    }
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The collector's state shared by every transport.
pub struct App {
    pub store: Arc<dyn Store>,
    pub ca: Ca,
    pub config: Config,
    settings: RwLock<Settings>,
    sessions: Mutex<HashMap<String, Live>>,
    catalogs: Catalogs,
    /// Revoked agents, kept in memory so every message checks it cheaply.
    revoked: RwLock<HashSet<String>>,
    enroll_global: RateLimiter,
    enroll_per_source: RateLimiter,
    renewals: RateLimiter,
    agent_messages: RateLimiter,
    pub metrics: Metrics,
    /// Called after a revocation so the TLS layer refuses the certificate.
    on_revoke: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    /// Serialises changes to users, so that checks such as "not the last admin"
    /// hold when the change is written.
    accounts: Mutex<()>,
    /// Wakes the webhook sender when a delivery is queued.
    pub webhook_wake: tokio::sync::Notify,
}

const SETTINGS_KEY: &str = "settings";
const WEBHOOK_SECRET_KEY: &str = "webhook_secret";

fn bump(c: &std::sync::atomic::AtomicU64, n: u64) {
    c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

impl App {
    pub fn new(store: Arc<dyn Store>, ca: Ca, config: Config) -> Result<App> {
        let mut settings = match store.get_meta(SETTINGS_KEY)? {
            Some(bytes) => {
                let rec: SettingsRecord = serde_json::from_slice(&bytes).map_err(|e| {
                    AppError::Invalid(format!("stored settings are unreadable: {e}"))
                })?;
                Settings::try_from(&rec).map_err(AppError::Invalid)?
            }
            None => Settings::default(),
        };
        settings.webhook_secret = store
            .get_meta(WEBHOOK_SECRET_KEY)?
            .filter(|k| !k.is_empty())
            .map(|k| policy::WebhookSecret(String::from_utf8_lossy(&k).into_owned()));
        let revoked = store
            .agents()?
            .into_iter()
            .filter(|a| a.revoked)
            .map(|a| a.id)
            .collect();
        let catalogs = Catalogs::builtin().map_err(AppError::Invalid)?;
        let lim = config.limits.clone();
        let per_sec = config.max_messages_per_sec;
        Ok(App {
            store,
            ca,
            settings: RwLock::new(settings),
            sessions: Mutex::new(HashMap::new()),
            catalogs,
            revoked: RwLock::new(revoked),
            enroll_global: RateLimiter::new(
                lim.enroll_per_second,
                Duration::from_secs(1),
                lim.enroll_per_second,
            ),
            enroll_per_source: RateLimiter::new(
                lim.enroll_per_source_per_minute,
                Duration::from_secs(60),
                lim.enroll_per_source_per_minute,
            ),
            renewals: RateLimiter::new(1, Duration::from_secs(lim.renew_interval_secs.max(1)), 1),
            agent_messages: RateLimiter::new(per_sec, Duration::from_secs(1), per_sec),
            config,
            metrics: Metrics::default(),
            on_revoke: Mutex::new(None),
            accounts: Mutex::new(()),
            webhook_wake: tokio::sync::Notify::new(),
        })
    }

    pub fn set_on_revoke(&self, f: Box<dyn Fn() + Send + Sync>) {
        *self.on_revoke.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: impl Into<String>,
    ) -> Result<()> {
        let detail = detail.into();
        tracing::info!(actor, action, target, %detail, "audit");
        self.store.append_audit(&AuditRecord {
            seq: 0,
            at_ms: now_ms(),
            actor: actor.into(),
            action: action.into(),
            target: target.map(String::from),
            detail,
            // Chained by the store.
            prev_hash: String::new(),
            hash: String::new(),
        })?;
        Ok(())
    }

    // ---- agents ----

    pub fn agent(&self, id: &str) -> Result<AgentRecord> {
        self.store
            .agent(id)?
            .ok_or_else(|| AppError::NotFound(format!("agent {id}")))
    }

    /// Serial numbers of revoked agents' certificates (for the CRL).
    pub fn revoked_serials(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .agents()?
            .into_iter()
            .filter(|a| a.revoked)
            .map(|a| a.cert_serial)
            .collect())
    }

    /// Revokes an agent's certificate and drops its connection; revoking a revoked
    /// agent changes nothing.
    pub fn revoke_agent(&self, id: &str, actor: &str) -> Result<AgentRecord> {
        let mut was_revoked = false;
        let a = self
            .store
            .update_agent(id, &mut |a| {
                was_revoked = a.revoked;
                a.revoked = true;
            })?
            .ok_or_else(|| AppError::NotFound(format!("agent {id}")))?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        // Its live stream ends now, whatever it is doing.
        if let Some(live) = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            live.end.end(format!("agent {id} is revoked"));
        }
        if was_revoked {
            return Ok(a);
        }
        self.audit(
            actor,
            "agent.revoke",
            Some(id),
            format!("certificate {} revoked", a.cert_serial),
        )?;
        self.store.sync()?;
        self.revocations_changed();
        Ok(a)
    }

    /// Tells the TLS layer that the set of refused certificates changed.
    pub(crate) fn revocations_changed(&self) {
        if let Some(f) = self
            .on_revoke
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f();
        }
    }

    // ---- sessions ----

    /// Whether the agent was revoked (an in-memory set, updated on revocation).
    pub fn is_revoked(&self, agent_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(agent_id)
    }

    /// Refuses a revoked agent.
    pub fn ensure_live(&self, agent_id: &str) -> Result<()> {
        if self.is_revoked(agent_id) {
            return Err(AppError::Refused(format!("agent {agent_id} is revoked")));
        }
        Ok(())
    }

    /// Takes one message from the agent's per-second budget (all its streams).
    pub fn allow_message(&self, agent_id: &str) -> bool {
        self.agent_messages.allow(agent_id)
    }

    /// Registers a connected agent's stream. An agent has one live stream: an
    /// older one is told to end. A revoked agent is refused.
    pub fn attach(
        &self,
        agent_id: &str,
        tx: mpsc::Sender<Command>,
        end: Arc<StreamEnd>,
        resync: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<()> {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the sessions lock, which revocation also takes.
        self.ensure_live(agent_id)?;
        if let Some(old) = s.insert(agent_id.into(), Live { tx, end, resync }) {
            old.end
                .end(format!("agent {agent_id} opened a newer stream"));
        }
        Ok(())
    }

    pub fn detach(&self, agent_id: &str, tx: &mpsc::Sender<Command>) {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if s.get(agent_id).is_some_and(|cur| cur.tx.same_channel(tx)) {
            s.remove(agent_id);
        }
    }

    /// Queues a command for a connected agent. When its queue is full the command
    /// is not lost: scans are in the store, and the stream re-reads them.
    fn send(&self, agent_id: &str, cmd: Command) -> bool {
        let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(live) = s.get(agent_id) else {
            return false;
        };
        match live.tx.try_send(cmd) {
            Ok(()) => true,
            Err(_) => {
                live.resync.store(true, std::sync::atomic::Ordering::SeqCst);
                false
            }
        }
    }

    pub fn connected(&self) -> Vec<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The settings command for an agent.
    pub fn settings_command(&self, agent_id: &str) -> Command {
        let s = self.settings();
        let window = chrono::Duration::seconds(self.config.schedule_window_secs);
        Command::Settings {
            scanning_enabled: s.scanning_enabled,
            profile: s.profile.clone(),
            exempt_rules: s.exempt_rules.iter().cloned().collect(),
            schedule_cron: if s.schedule_enabled {
                s.schedule_cron.clone()
            } else {
                String::new()
            },
            schedule_offset_s: crate::schedule::agent_offset(agent_id, window).num_seconds() as u32,
        }
    }

    /// Scan requests an agent should receive when it connects: its pending scans.
    pub fn pending_commands(&self, agent_id: &str) -> Result<Vec<Command>> {
        let f = ScanFilter {
            status: Some(ScanStatus::Pending),
            project: None,
            agent_id: Some(agent_id.into()),
        };
        let (scans, _) = self.store.scans(&f, 0, 100)?;
        Ok(scans
            .into_iter()
            .rev()
            .map(|s| self.scan_command(&s))
            .collect())
    }

    fn scan_command(&self, s: &ScanRecord) -> Command {
        Command::Scan {
            scan_id: s.id.clone(),
            profile: s.profile.clone(),
            exempt_rules: self.settings().exempt_rules.iter().cloned().collect(),
        }
    }

    /// Records what a hello says that may change over a VM's life (host name,
    /// addresses, OS); identity (instance ID, provider, project, labels) was fixed at
    /// enrollment and stays. A hello that differs in identity is logged, not applied.
    pub fn hello(&self, agent_id: &str, h: &HelloInfo) -> Result<()> {
        let mut claimed_other = None;
        self.store
            .update_agent(agent_id, &mut |a| {
                a.last_seen_ms = now_ms();
                a.hostname = h.hostname.clone();
                a.ip_addresses = h.ip_addresses.clone();
                a.os = h.os.clone();
                claimed_other = (!h.instance_id.is_empty() && h.instance_id != a.instance_id)
                    .then(|| a.instance_id.clone());
            })?
            .ok_or_else(|| AppError::NotFound(format!("agent {agent_id}")))?;
        if let Some(enrolled) = claimed_other {
            tracing::warn!(
                %agent_id,
                claimed = %crate::limits::echo(&h.instance_id),
                %enrolled,
                "hello claims another instance ID than the one enrolled; ignored"
            );
        }
        Ok(())
    }

    // ---- catalogs ----

    /// The collector's own rule metadata for an agent's content version (never what
    /// an agent sent).
    pub fn catalog(&self, version: &str) -> Result<Option<Arc<Catalog>>> {
        Ok(self.catalogs.for_version(version))
    }

    /// The rule metadata a scan was made with (the newest catalog the collector has
    /// for the scan's benchmark content), for titles and severities in views.
    pub fn catalog_for_scan(&self, s: &ScanRecord) -> Option<Arc<Catalog>> {
        s.content_version
            .as_deref()
            .and_then(|v| self.catalog(v).ok().flatten())
    }

    // ---- scans ----

    /// Creates a pending scan for an agent and asks it to run, unless scanning is off
    /// or its project is exempt (then `None`).
    pub fn create_scan(
        &self,
        agent_id: &str,
        trigger: &str,
        actor: &str,
    ) -> Result<Option<ScanRecord>> {
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
        let pending = ScanFilter {
            status: Some(ScanStatus::Pending),
            project: None,
            agent_id: Some(agent_id.into()),
        };
        if let Some(p) = self.store.scans(&pending, 0, 1)?.0.into_iter().next() {
            self.send(agent_id, self.scan_command(&p));
            return Ok(Some(p));
        }
        let now = now_ms();
        let id = format!("sc-{now:013}-{}", &auth::new_id("")?[..8]);
        let rec = ScanRecord::pending(id, agent_id, a.project.clone(), trigger, &s.profile, now);
        self.store.put_scan(&rec)?;
        self.audit(
            actor,
            "scan.create",
            Some(&rec.id),
            format!("{trigger} scan of agent {agent_id}"),
        )?;
        self.store.sync()?;
        self.send(agent_id, self.scan_command(&rec));
        Ok(Some(rec))
    }

    fn own_scan(&self, agent_id: &str, scan_id: &str) -> Result<ScanRecord> {
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
                s.started_at_ms = Some(now_ms());
            }
            ScanStatus::Running => {} // a resend after reconnecting
            _ => return Ok(()),       // already final: nothing to change
        }
        s.last_progress_ms = now_ms();
        self.store.put_scan(&s)?;
        self.store.sync()?;
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
            s.finished_at_ms = Some(now_ms());
            self.store.put_scan(&s)?;
            self.store.sync()?;
            return Ok(());
        }
        self.store.put_results(scan_id, results)?;
        if s.status == ScanStatus::Pending {
            s.status = ScanStatus::Running;
            s.started_at_ms = Some(now_ms());
        }
        s.last_progress_ms = now_ms();
        self.store.put_scan(&s)?;
        self.store.sync()?;
        bump(&self.metrics.results_total, results.len() as u64);
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
            if !rule.profiles.iter().any(|p| *p == s.profile) {
                return Ok(Some(format!(
                    "rule {} is not in profile {} of benchmark {}",
                    r.rule_id, s.profile, catalog.benchmark_id
                )));
            }
            let ok = match r.status.as_str() {
                // A manual recommendation is never passed or failed.
                "not_checked" => !rule.automated,
                "pass" | "fail" | "error" => rule.automated,
                "not_applicable" | "exempted" => true,
                _ => false,
            };
            if !ok {
                return Ok(Some(format!(
                    "rule {} cannot have status {}",
                    r.rule_id,
                    echo(&r.status)
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
        let results = self.store.results(scan_id)?;
        s.content_version = Some(content_version.to_string());
        let catalog = self.catalog(content_version)?;
        let wanted: Vec<&str> = catalog
            .as_ref()
            .map(|c| c.profile_rules(&s.profile))
            .unwrap_or_default();
        let missing = wanted
            .iter()
            .filter(|id| !results.iter().any(|r| r.rule_id == **id))
            .count();
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
                    .map(|r| r.severity.clone())
                    .unwrap_or_else(|| "medium".into())
            };
            let (mut c, mut na, mut nc, mut ex) = (Counts::default(), 0, 0, 0);
            let mut sev = [0u32; 4];
            for r in &results {
                match r.status.as_str() {
                    "pass" => c.passed += 1,
                    "fail" => {
                        c.failed += 1;
                        match severity(&r.rule_id).as_str() {
                            "critical" => sev[0] += 1,
                            "high" => sev[1] += 1,
                            "low" => sev[3] += 1,
                            _ => sev[2] += 1,
                        }
                    }
                    "error" => c.error += 1,
                    "not_applicable" => na += 1,
                    "not_checked" => nc += 1,
                    _ => ex += 1,
                }
            }
            c.failed_critical = sev[0];
            c.failed_high = sev[1];
            c.not_applicable = na;
            let settings = self.settings();
            let verdict = policy::enforce(&settings, &c, s.project.as_deref());
            s.status = ScanStatus::Completed;
            s.score = policy::score(&c);
            (
                s.passed,
                s.failed,
                s.error,
                s.not_applicable,
                s.not_checked,
                s.exempted,
            ) = (c.passed, c.failed, c.error, na, nc, ex);
            s.failed_by_severity = sev;
            s.blocked = verdict.blocked;
            s.block_reasons = verdict.reasons.clone();
            if verdict.alert {
                self.audit(
                    "system",
                    "policy.warn",
                    Some(scan_id),
                    format!("would block: {}", verdict.reasons.join("; ")),
                )?;
                crate::webhook::enqueue(self, &settings, &s)?;
            }
            bump(&self.metrics.scans_completed_total, 1);
        }
        s.finished_at_ms = Some(now_ms());
        s.last_progress_ms = now_ms();
        self.store.put_scan(&s)?;
        self.store.sync()?;
        self.webhook_wake.notify_one();
        Ok(s)
    }

    pub fn scan_failed(&self, agent_id: &str, scan_id: &str, reason: &str) -> Result<()> {
        let mut s = self.own_scan(agent_id, scan_id)?;
        if s.status.is_final() {
            return Ok(());
        }
        s.status = ScanStatus::Failed;
        s.failure_reason = Some(format!(
            "the agent reported: {}",
            reason.chars().take(500).collect::<String>()
        ));
        s.finished_at_ms = Some(now_ms());
        self.store.put_scan(&s)?;
        self.store.sync()?;
        Ok(())
    }

    /// Fails running or pending-but-started scans that made no progress within the timeout.
    pub fn expire_stalled(&self) -> Result<usize> {
        let limit = now_ms() - self.config.scan_timeout_secs as i64 * 1000;
        let f = ScanFilter {
            status: Some(ScanStatus::Running),
            ..Default::default()
        };
        let (running, _) = self.store.scans(&f, 0, usize::MAX)?;
        let mut n = 0;
        for mut s in running.into_iter().filter(|s| s.last_progress_ms < limit) {
            s.status = ScanStatus::Failed;
            s.failure_reason = Some(format!(
                "no progress from the agent for {} s",
                self.config.scan_timeout_secs
            ));
            s.finished_at_ms = Some(now_ms());
            self.store.put_scan(&s)?;
            n += 1;
        }
        if n > 0 {
            self.store.sync()?;
        }
        Ok(n)
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
        s.finished_at_ms = Some(now_ms());
        self.store.put_scan(&s)?;
        self.audit(actor, "scan.cancel", Some(scan_id), "cancelled")?;
        self.store.sync()?;
        self.send(
            &s.agent_id,
            Command::Cancel {
                scan_id: scan_id.into(),
            },
        );
        Ok(s)
    }

    // ---- handover ----

    /// Finds an agent by its ID or by the cloud instance ID it enrolled with. An
    /// instance ID names at most one live agent (enrollment refuses a second); should
    /// stored data hold two, the answer is a conflict, never a guess.
    pub fn find_agent(&self, id: &str) -> Result<AgentRecord> {
        if let Some(a) = self.store.agent(id)? {
            return Ok(a);
        }
        if id.is_empty() {
            return Err(AppError::NotFound("agent or instance".into()));
        }
        let mut found: Vec<AgentRecord> = self
            .store
            .agents()?
            .into_iter()
            .filter(|a| !a.revoked && a.instance_id == id)
            .collect();
        match found.len() {
            0 => Err(AppError::NotFound(format!("agent or instance {id}"))),
            1 => Ok(found.remove(0)),
            n => Err(AppError::Conflict(format!(
                "instance {id} is claimed by {n} agents; revoke all but one"
            ))),
        }
    }

    pub fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        let f = ScanFilter {
            agent_id: Some(agent_id.into()),
            ..Default::default()
        };
        Ok(self.store.scans(&f, 0, 1)?.0.into_iter().next())
    }

    pub fn handover(&self, id: &str) -> Result<Gate> {
        let a = self.find_agent(id)?;
        let s = self.settings();
        let gate = |allowed, state, reasons: Vec<String>, scan: Option<&ScanRecord>| Gate {
            allowed,
            state,
            reasons,
            agent_id: a.id.clone(),
            instance_id: a.instance_id.clone(),
            hostname: a.hostname.clone(),
            scan_id: scan.map(|s| s.id.clone()),
        };
        if a.project
            .as_ref()
            .is_some_and(|p| s.exempt_projects.contains(p))
        {
            return Ok(gate(
                true,
                "exempt",
                vec![format!(
                    "project {} is exempt from scanning",
                    a.project.clone().unwrap_or_default()
                )],
                None,
            ));
        }
        if !s.scanning_enabled {
            return Ok(gate(
                true,
                "allowed",
                vec!["CIS scanning is disabled".into()],
                None,
            ));
        }
        let Some(scan) = self.latest_scan(&a.id)? else {
            return Ok(gate(
                false,
                "pending",
                vec!["no scan has been made yet".into()],
                None,
            ));
        };
        Ok(match scan.status {
            ScanStatus::Pending | ScanStatus::Running => gate(
                false,
                "pending",
                vec![format!(
                    "scan {} is {}",
                    scan.id,
                    if scan.status == ScanStatus::Pending {
                        "pending"
                    } else {
                        "running"
                    }
                )],
                Some(&scan),
            ),
            ScanStatus::Failed => gate(
                false,
                "failed",
                vec![format!(
                    "scan {} failed: {}",
                    scan.id,
                    scan.failure_reason.clone().unwrap_or_default()
                )],
                Some(&scan),
            ),
            ScanStatus::Cancelled => gate(
                false,
                "pending",
                vec![format!("scan {} was cancelled; no completed scan", scan.id)],
                Some(&scan),
            ),
            ScanStatus::Completed if scan.blocked && scan.released_by.is_some() => gate(
                true,
                "released",
                vec![format!(
                    "released by {} despite: {}",
                    scan.released_by.clone().unwrap_or_default(),
                    scan.block_reasons.join("; ")
                )],
                Some(&scan),
            ),
            ScanStatus::Completed if scan.blocked => {
                gate(false, "blocked", scan.block_reasons.clone(), Some(&scan))
            }
            ScanStatus::Completed => gate(true, "allowed", vec![], Some(&scan)),
        })
    }

    /// Releases a blocked scan (admin); recorded with the admin's identity and time.
    pub fn release(&self, scan_id: &str, actor: &str) -> Result<ScanRecord> {
        let mut s = self
            .store
            .scan(scan_id)?
            .ok_or_else(|| AppError::NotFound(format!("scan {scan_id}")))?;
        if !s.blocked {
            return Err(AppError::Invalid(format!("scan {scan_id} is not blocked")));
        }
        if s.released_by.is_some() {
            return Err(AppError::Invalid(format!(
                "scan {scan_id} was already released"
            )));
        }
        s.released_by = Some(actor.into());
        s.released_at_ms = Some(now_ms());
        self.store.put_scan(&s)?;
        self.audit(
            actor,
            "scan.release",
            Some(scan_id),
            format!(
                "handover of agent {} released despite: {}",
                s.agent_id,
                s.block_reasons.join("; ")
            ),
        )?;
        self.store.sync()?;
        Ok(s)
    }

    // ---- settings ----

    /// Replaces the settings. `webhook_secret: None` leaves the stored secret as it
    /// is; an empty one removes it.
    pub fn update_settings(&self, mut new: Settings, actor: &str) -> Result<Settings> {
        new.validate()
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let old = self.settings();
        new.webhook_secret = match new.webhook_secret.take() {
            None => old.webhook_secret.clone(),
            Some(k) if k.0.is_empty() => None,
            Some(k) => Some(k),
        };
        if !new.webhook_url.is_empty() && new.webhook_secret.is_none() {
            return Err(AppError::Invalid(
                "webhook_url needs a webhook_secret to sign deliveries".into(),
            ));
        }
        let rec = SettingsRecord::from(&new);
        let bytes = serde_json::to_vec(&rec).map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store.put_meta(SETTINGS_KEY, &bytes)?;
        let secret = new.webhook_secret.as_ref().map(|k| k.0.as_bytes());
        self.store
            .put_meta(WEBHOOK_SECRET_KEY, secret.unwrap_or_default())?;
        // The secret itself never reaches the audit log: only that it changed.
        // Nor does the webhook URL, which often carries a token: it is redacted.
        let redacted = |mut r: SettingsRecord| {
            r.webhook_url = policy::redact_url(&r.webhook_url);
            serde_json::to_string(&r).unwrap_or_default()
        };
        let (old_json, new_json) = (redacted(SettingsRecord::from(&old)), redacted(rec.clone()));
        let secret_note = if old.webhook_secret != new.webhook_secret {
            "; webhook_secret (changed)"
        } else {
            ""
        };
        self.audit(
            actor,
            "settings.change",
            None,
            format!("old {old_json} new {new_json}{secret_note}"),
        )?;
        self.store.sync()?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = new;
        for agent in self.connected() {
            self.send(&agent, self.settings_command(&agent));
        }
        Ok(self.settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled_store::SledStore;

    fn app(dir: &std::path::Path) -> App {
        let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
        let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
        App::new(store, ca, Config::default()).unwrap()
    }

    fn agent(app: &App, id: &str, project: Option<&str>, instance: &str) {
        app.store
            .put_agent(&AgentRecord {
                id: id.into(),
                hostname: format!("{id}.example"),
                ip_addresses: vec![],
                provider: "aws".into(),
                instance_id: instance.into(),
                os: String::new(),
                project: project.map(String::from),
                labels: Default::default(),
                enrolled_at_ms: 0,
                last_seen_ms: 0,
                cert_serial: "01".into(),
                cert_not_after_ms: 0,
                revoked: false,
            })
            .unwrap();
    }

    #[test]
    fn gate_by_instance_id_exempt_projects_and_disabled_scanning() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        agent(&app, "ag-1", Some("web"), "i-0abc");
        agent(&app, "ag-2", Some("lab"), "i-0def");
        let g = app.handover("i-0abc").unwrap();
        assert_eq!(
            (g.allowed, g.state, g.agent_id.as_str()),
            (false, "pending", "ag-1")
        );
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        assert_eq!(
            app.handover("ag-1").unwrap().reasons,
            vec![format!("scan {} is pending", scan.id)]
        );
        assert!(matches!(
            app.handover("i-missing"),
            Err(AppError::NotFound(_))
        ));
        let mut s = app.settings();
        s.exempt_projects.insert("lab".into());
        app.update_settings(s, "admin").unwrap();
        assert!(
            app.create_scan("ag-2", "manual", "test").unwrap().is_none(),
            "exempt projects are never scanned"
        );
        let g = app.handover("i-0def").unwrap();
        assert_eq!((g.allowed, g.state), (true, "exempt"));
        let mut s = app.settings();
        s.scanning_enabled = false;
        app.update_settings(s, "admin").unwrap();
        assert!(app.create_scan("ag-1", "manual", "test").unwrap().is_none());
        assert_eq!(app.handover("ag-1").unwrap().state, "allowed");
        // Every settings change is audited with old and new values.
        let (log, _) = app.store.audit(0, 10).unwrap();
        let change = log.iter().find(|e| e.action == "settings.change").unwrap();
        assert!(change.detail.contains("old ") && change.detail.contains("new "));
    }

    #[test]
    fn a_cancelled_scan_accepts_no_more_results() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        agent(&app, "ag-1", None, "");
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        let c = app.cancel_scan(&scan.id, "ann").unwrap();
        assert_eq!(c.status, ScanStatus::Cancelled);
        let r = ResultRecord {
            rule_id: "1.1.1".into(),
            status: "pass".into(),
            evidence: vec![],
        };
        // A late batch and finish from the agent are acknowledged but change nothing.
        app.record_results("ag-1", &scan.id, "debian-12@test", &[r])
            .unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        let s = app.scan_finished("ag-1", &scan.id, 1, "v1").unwrap();
        assert_eq!(s.status, ScanStatus::Cancelled);
        assert!(app.store.results(&scan.id).unwrap().is_empty());
        assert!(matches!(
            app.cancel_scan(&scan.id, "ann"),
            Err(AppError::Invalid(m)) if m.contains("already cancelled")
        ));
        let (log, _) = app.store.audit(0, 10).unwrap();
        assert!(log.iter().any(|e| e.action == "scan.cancel"
            && e.actor == "ann"
            && e.target.as_deref() == Some(scan.id.as_str())));
        // Nor is it sent again to an agent that connects.
        assert!(app.pending_commands("ag-1").unwrap().is_empty());
    }

    #[test]
    fn scheduled_scans_follow_the_crontab_and_the_agent_offset() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        agent(&app, "ag-1", None, "");
        let mut s = app.settings();
        s.schedule_enabled = true;
        s.schedule_cron = "0 3 * * *".into();
        app.update_settings(s, "admin").unwrap();
        let window = chrono::Duration::seconds(app.config.schedule_window_secs);
        let due = crate::schedule::parse("0 3 * * *")
            .unwrap()
            .next_for_agent("ag-1", chrono::Utc::now(), window)
            .unwrap();
        let count = |app: &App| app.store.scans(&ScanFilter::default(), 0, 100).unwrap().1;
        crate::server::scheduled_scans_for_test(
            &app,
            due - chrono::Duration::seconds(10),
            due - chrono::Duration::seconds(1),
        )
        .unwrap();
        assert_eq!(count(&app), 0, "not yet due");
        crate::server::scheduled_scans_for_test(&app, due - chrono::Duration::seconds(1), due)
            .unwrap();
        assert_eq!(count(&app), 1, "due exactly at the agent's offset");
        let (scans, _) = app.store.scans(&ScanFilter::default(), 0, 1).unwrap();
        assert_eq!(scans[0].trigger, "schedule");
    }
}
