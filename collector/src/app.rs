//! The collector's domain: enrollment, the scan lifecycle, scoring and enforcement,
//! the handover gate, releases, settings and agent revocation. Transport layers
//! (gRPC, REST) call these operations; they never touch the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;

mod accounts;
mod agents;
pub mod alerts;
mod catalogs;
mod cluster;
mod enrollment;
mod handover;
mod observe;
mod overview;
mod scans;
mod sessions;
mod settings;
pub mod signin;
mod targets;

pub use crate::catalog::{Catalog, CatalogRule};
pub use accounts::valid_user_name;
pub use enrollment::{labels_of, Refusal};
pub use overview::{Overview, RECENT_SCANS, TREND_DAYS};
pub use scans::complete;
pub use settings::SettingsRecord;
pub use targets::{TargetSpec, AGENT_BINARY};

use crate::ca::Ca;
use crate::catalog::Catalogs;
use crate::config::Config;
use crate::limits::RateLimiter;
pub use crate::metrics::Metrics;
use crate::policy::{self, Settings};
use crate::store::{AuditRecord, Store, StoreError};

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
    /// Whether a signed instance identity document vouched for the instance ID.
    pub identity_verified: bool,
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

/// A stream's command queue. Commands are boxed: a channel allocates its slots 32
/// at a time when made, which every connected agent would hold for its stream's life.
pub type CommandTx = mpsc::Sender<Box<Command>>;

/// A connected agent's stream, as the app sees it.
struct Live {
    tx: CommandTx,
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
    /// What the collector holds of each running scan between its batches.
    in_flight: Mutex<HashMap<String, scans::InFlight>>,
    /// When this process started: after a restart every running scan gets a whole
    /// timeout from here.
    started_ms: i64,
    /// Trust anchors for signed instance identity documents.
    identity_anchors: crate::identity::Anchors,
    /// Failed console sign-ins, and the password hashes running.
    signin_failures: signin::SignInFailures,
    /// Host names and addresses of every agent, for searches.
    hosts: agents::HostDirectory,
    /// This collector's name among those sharing the store, and whether it holds
    /// the background lease (see `cluster`).
    instance: String,
    leader: std::sync::atomic::AtomicBool,
    /// Scans of targets over SSH (`targets`).
    ssh: targets::SshRunner,
}

/// The settings as stored (the defaults when none are).
fn stored_settings(store: &dyn Store) -> Result<Settings> {
    let mut settings = match store.get_meta(SETTINGS_KEY)? {
        Some(bytes) => {
            let rec: SettingsRecord = serde_json::from_slice(&bytes)
                .map_err(|e| AppError::Invalid(format!("stored settings are unreadable: {e}")))?;
            Settings::try_from(&rec).map_err(AppError::Invalid)?
        }
        None => Settings::default(),
    };
    settings.webhook_secret = store
        .get_meta(WEBHOOK_SECRET_KEY)?
        .filter(|k| !k.is_empty())
        .map(|k| policy::WebhookSecret(String::from_utf8_lossy(&k).into_owned()));
    Ok(settings)
}

const SETTINGS_KEY: &str = "settings";
const WEBHOOK_SECRET_KEY: &str = "webhook_secret";

impl App {
    /// Makes the store's writes durable (before anything is acknowledged), timed
    /// for `/metrics`.
    pub(crate) fn sync_store(&self) -> Result<()> {
        let t = std::time::Instant::now();
        self.store.sync()?;
        self.metrics.store_synced(t.elapsed());
        Ok(())
    }

    pub fn new(store: Arc<dyn Store>, ca: Ca, config: Config) -> Result<App> {
        let settings = stored_settings(&*store)?;
        let hosts = agents::HostDirectory::default();
        let revoked = store
            .agents()?
            .into_iter()
            .inspect(|a| hosts.note(a))
            .filter(|a| a.revoked)
            .map(|a| a.id)
            .collect();
        let catalogs = Catalogs::builtin().map_err(AppError::Invalid)?;
        let identity_anchors = crate::identity::Anchors::load(&config.instance_identity)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
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
            in_flight: Mutex::new(HashMap::new()),
            started_ms: now_ms(),
            webhook_wake: tokio::sync::Notify::new(),
            identity_anchors,
            signin_failures: Default::default(),
            hosts,
            instance: crate::auth::new_id("collector-")
                .map_err(|e| AppError::Invalid(e.to_string()))?,
            leader: std::sync::atomic::AtomicBool::new(false),
            ssh: Default::default(),
        })
    }

    pub fn set_on_revoke(&self, f: Box<dyn Fn() + Send + Sync>) {
        *self.on_revoke.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Begins a backup for `actor` (`crate::backup`): audited, then the store's cut.
    /// A backup already being taken, or a store backed up with its own tools
    /// (PostgreSQL), is a conflict that says so.
    pub fn begin_backup(&self, actor: &str) -> Result<Box<dyn crate::store::Snapshot>> {
        crate::backup::begin(&*self.store, actor).map_err(|e| match e {
            crate::backup::BackupError::Store(StoreError::Refused(m)) => AppError::Conflict(m),
            crate::backup::BackupError::Store(e) => AppError::Store(e),
            e => AppError::Invalid(e.to_string()),
        })
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled_store::SledStore;
    use crate::store::{AgentRecord, ResultRecord, ScanFilter, ScanStatus};

    fn app(dir: &std::path::Path) -> App {
        app_with(dir, Config::default().results_retention_days)
    }

    #[test]
    fn a_command_that_does_not_fit_is_not_lost() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        agent(&app, "ag-1", None, "");
        let (tx, mut rx) = mpsc::channel(1);
        let end = Arc::new(StreamEnd::default());
        let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        app.attach("ag-1", tx, end, resync.clone()).unwrap();
        // The one slot is taken by the first scan request: the cancel and the next
        // scan request cannot be queued.
        let first = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        assert!(!resync.load(std::sync::atomic::Ordering::SeqCst));
        app.cancel_scan(&first.id, "test").unwrap();
        let second = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        assert!(
            resync.load(std::sync::atomic::Ordering::SeqCst),
            "the stream is told to re-read pending scans"
        );
        // What it re-reads holds the scan that did not fit.
        let pending = app.pending_commands("ag-1").unwrap();
        assert!(
            pending
                .iter()
                .any(|c| matches!(c, Command::Scan { scan_id, .. } if *scan_id == second.id)),
            "{pending:?}"
        );
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn revocation_ends_a_live_stream_and_refuses_a_new_one() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        agent(&app, "ag-1", None, "");
        let (tx, _rx) = mpsc::channel(4);
        let end = Arc::new(StreamEnd::default());
        let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        app.attach("ag-1", tx.clone(), end.clone(), resync.clone())
            .unwrap();
        app.revoke_agent("ag-1", "admin").unwrap();
        assert_eq!(end.reason().as_deref(), Some("agent ag-1 is revoked"));
        assert!(app.attach("ag-1", tx, end, resync).is_err());
        assert!(app.ensure_live("ag-1").is_err());
        assert!(app.store.agent("ag-1").unwrap().unwrap().revoked);
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
                identity: Default::default(),
                replaced_certs: Vec::new(),
                ssh: None,
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
    fn retention_deletes_old_results_and_keeps_the_summary() {
        let d = tempfile::tempdir().unwrap();
        let app = app_with(d.path(), 30);
        agent(&app, "ag-1", None, "");
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        let results = full_results(&app, &scan);
        for batch in results.chunks(100) {
            app.record_results("ag-1", &scan.id, "debian-12@test", batch)
                .unwrap();
        }
        let done = app
            .scan_finished("ag-1", &scan.id, results.len() as u32, "debian-12@test")
            .unwrap();
        assert_eq!(
            done.status,
            ScanStatus::Completed,
            "{:?}",
            done.failure_reason
        );
        // Within the retention: nothing goes.
        let now = now_ms();
        assert_eq!(app.apply_retention(now + 29 * 86_400_000).unwrap(), 0);
        assert_eq!(app.store.results(&scan.id).unwrap().len(), results.len());
        assert!(!app.results_expired(&done));
        // Past it: the results go, the summary stays, and the deletion is audited.
        assert_eq!(app.apply_retention(now + 31 * 86_400_000).unwrap(), 1);
        assert!(app.store.results(&scan.id).unwrap().is_empty());
        assert_eq!(app.store.scan(&scan.id).unwrap().unwrap(), done);
        let (log, _) = app.store.audit(0, 5).unwrap();
        assert!(
            log.iter()
                .any(|e| e.action == "retention.results"
                    && e.detail.starts_with("results of 1 scans"))
        );
        assert_eq!(app.metrics.results_pruned_scans.get(), 1);
        // 0 keeps results for ever.
        let d2 = tempfile::tempdir().unwrap();
        let keep = app_with(d2.path(), 0);
        assert_eq!(keep.apply_retention(now + 10_000 * 86_400_000).unwrap(), 0);
    }

    #[test]
    fn a_scan_whose_batches_keep_coming_is_not_expired() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let timeout = app.config.scan_timeout_secs as i64 * 1000;
        agent(&app, "ag-1", None, "");
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        let started = app.store.scan(&scan.id).unwrap().unwrap().last_progress_ms;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let cat = app.catalog("debian-12@test").unwrap().unwrap();
        let rule = cat.profile_rules(&scan.profile)[0].to_string();
        let r = ResultRecord {
            rule_id: rule,
            status: "pass".into(),
            evidence: vec![],
        };
        app.record_results("ag-1", &scan.id, "debian-12@test", &[r])
            .unwrap();
        // The stored record still says the start; the batch a second later counts.
        let stale = started + timeout + 500;
        assert_eq!(app.expire_stalled_at(stale).unwrap(), 0);
        assert_eq!(
            app.store.scan(&scan.id).unwrap().unwrap().status,
            ScanStatus::Running
        );
        // Silence past the timeout from that batch: it fails, with the reason.
        assert_eq!(app.expire_stalled_at(started + timeout + 3000).unwrap(), 1);
        let s = app.store.scan(&scan.id).unwrap().unwrap();
        assert_eq!(s.status, ScanStatus::Failed);
        assert!(s.failure_reason.unwrap().contains("no progress"));
    }

    /// Every rule of the scan's profile, passing (manual ones not checked).
    fn full_results(app: &App, scan: &crate::store::ScanRecord) -> Vec<ResultRecord> {
        let cat = app.catalog("debian-12@test").unwrap().unwrap();
        cat.profile_rules(&scan.profile)
            .iter()
            .map(|id| ResultRecord {
                rule_id: id.to_string(),
                status: if cat.rules[*id].automated {
                    "pass"
                } else {
                    "not_checked"
                }
                .into(),
                evidence: vec![],
            })
            .collect()
    }

    #[test]
    fn counts_are_the_latest_status_of_each_rule_with_or_without_a_restart() {
        for restart in [false, true] {
            let d = tempfile::tempdir().unwrap();
            let mut app = app(d.path());
            agent(&app, "ag-1", None, "");
            let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
            app.scan_started("ag-1", &scan.id).unwrap();
            let mut all = full_results(&app, &scan);
            let (first, rest) = all.split_at(all.len() / 2);
            // The first rule fails in the first batch, then passes when sent again.
            let mut early = first.to_vec();
            early[0].status = "fail".into();
            app.record_results("ag-1", &scan.id, "debian-12@test", &early)
                .unwrap();
            if restart {
                drop(app);
                app = self::app(d.path());
            }
            app.record_results("ag-1", &scan.id, "debian-12@test", rest)
                .unwrap();
            app.record_results("ag-1", &scan.id, "debian-12@test", &first[..1])
                .unwrap();
            let done = app
                .scan_finished("ag-1", &scan.id, all.len() as u32, "debian-12@test")
                .unwrap();
            all.retain(|r| r.status == "pass");
            assert_eq!(done.status, ScanStatus::Completed, "restart {restart}");
            assert_eq!(
                (done.passed as usize, done.failed),
                (all.len(), 0),
                "restart {restart}"
            );
        }
    }

    fn app_with(dir: &std::path::Path, results_retention_days: u32) -> App {
        let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
        let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
        let config = Config {
            results_retention_days,
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        App::new(store, ca, config).unwrap()
    }

    #[test]
    fn metrics_count_expiring_certificates_and_each_scan_once_where_it_ends() {
        let d = tempfile::tempdir().unwrap();
        let app = app(d.path());
        let day = 86_400_000;
        // Expiring in 2 days, in 30 days, and in 1 day but revoked.
        for (id, left, revoked) in [("ag-1", 2, false), ("ag-2", 30, false), ("ag-3", 1, true)] {
            agent(&app, id, None, "");
            let mut a = app.store.agent(id).unwrap().unwrap();
            a.cert_not_after_ms = now_ms() + left * day;
            a.revoked = revoked;
            app.store.put_agent(&a).unwrap();
        }
        app.refresh_fleet_metrics();
        let sample = |name: &str| -> f64 {
            let text = app.metrics.render(&app.scrape(0));
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        assert_eq!(sample("rampart_agent_certificates_expiring"), 1.0);
        assert!(sample("rampart_store_size_bytes") > 0.0);
        assert!(sample("rampart_data_filesystem_size_bytes") > 0.0);
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        assert_eq!(sample("rampart_scans{status=\"running\"}"), 1.0);
        app.cancel_scan(&scan.id, "ann").unwrap();
        // A second cancel is refused and counts nothing.
        assert!(app.cancel_scan(&scan.id, "ann").is_err());
        assert_eq!(
            sample("rampart_scans_created_total{trigger=\"manual\"}"),
            1.0
        );
        assert_eq!(
            sample("rampart_scans_ended_total{status=\"cancelled\",trigger=\"manual\"}"),
            1.0
        );
        assert_eq!(sample("rampart_scans{status=\"cancelled\"}"), 1.0);
        let sync = sample("rampart_store_sync_duration_seconds_count");
        assert!(sync >= 2.0, "{sync}");
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
