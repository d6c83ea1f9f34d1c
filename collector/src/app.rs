//! The collector's domain: enrollment, the scan lifecycle, scoring and enforcement,
//! the handover gate, releases, settings and agent revocation. Transport layers
//! (gRPC, REST) call these operations; they never touch the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rampart_report::Profile;
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
use crate::clock::Clock;
use crate::config::Config;
use crate::limits::RateLimiter;
pub use crate::metrics::Metrics;
use crate::policy::{self, Settings};
use crate::store::{AuditRecord, Store, StoreError};

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
    /// The request's content is refused by a typed check (answered as
    /// [`AppError::Invalid`]: HTTP 422, gRPC INVALID_ARGUMENT).
    #[error(transparent)]
    Rejected(#[from] Rejected),
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

/// Why the content of a request was refused, with the typed source: every variant
/// is answered the same way (see [`AppError::Rejected`]), so the answer is written once
/// per surface and a new variant cannot be forgotten there.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// New settings fail their check.
    #[error(transparent)]
    Settings(#[from] crate::policy::SettingsError),
    /// The instance-identity trust anchors do not load.
    #[error(transparent)]
    Anchors(#[from] crate::identity::AnchorError),
    /// A backup cannot be begun for a reason other than the store's.
    #[error(transparent)]
    Backup(crate::backup::BackupError),
    /// A record could not be encoded.
    #[error(transparent)]
    Encode(serde_json::Error),
}

impl From<crate::policy::SettingsError> for AppError {
    fn from(e: crate::policy::SettingsError) -> Self {
        AppError::Rejected(Rejected::Settings(e))
    }
}

impl From<crate::identity::AnchorError> for AppError {
    fn from(e: crate::identity::AnchorError) -> Self {
        AppError::Rejected(Rejected::Anchors(e))
    }
}

/// What the collector tells a connected agent to do. The agent chooses nothing else.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Settings {
        scanning_enabled: bool,
        profile: Profile,
        exempt_rules: Vec<String>,
        schedule_cron: String,
        schedule_offset_s: u32,
    },
    Scan {
        scan_id: String,
        profile: Profile,
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
    /// When it was attached (this collector's clock, ms).
    since_ms: i64,
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
    /// Every "now" of the domain, and the background loops' sleeps.
    pub clock: Clock,
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
    /// API tokens found in the store a moment ago.
    tokens_seen: accounts::TokenCache,
    /// Failed console sign-ins, and the password hashes running.
    signin_failures: signin::SignInFailures,
    /// Host names and addresses of every agent, for searches.
    hosts: agents::HostDirectory,
    /// This collector's name among those sharing the store, and whether it holds
    /// the background lease (see `cluster`).
    instance: String,
    leader: std::sync::atomic::AtomicBool,
    /// Collectors sharing the store as of the last heartbeat (at least 1): the
    /// deployment-wide enrollment rates are divided among them.
    collectors: std::sync::atomic::AtomicUsize,
    /// Scans of targets over SSH (`targets`).
    ssh: targets::SshRunner,
    /// The threads that handle agents' messages (`ingest`), started at first use.
    ingest: std::sync::OnceLock<Option<crate::ingest::Pool>>,
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
    /// Inside a deferred round (`crate::ingest`), only notes that the round owes a
    /// sync.
    pub(crate) fn sync_store(&self) -> Result<()> {
        if crate::ingest::defer_sync() {
            return Ok(()); // the round syncs before it acknowledges anything
        }
        self.sync_now()
    }

    /// Makes the store's writes durable now, in a deferred round or not.
    pub(crate) fn sync_now(&self) -> Result<()> {
        let t = std::time::Instant::now();
        self.store.sync()?;
        self.metrics.store_synced(t.elapsed());
        Ok(())
    }

    /// An app on the system clock.
    pub fn new(store: Arc<dyn Store>, ca: Ca, config: Config) -> Result<App> {
        App::with_clock(store, ca, config, Clock::system())
    }

    /// An app whose "now" and background sleeps are `clock`'s.
    pub fn with_clock(store: Arc<dyn Store>, ca: Ca, config: Config, clock: Clock) -> Result<App> {
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
        let identity_anchors = crate::identity::Anchors::load(&config.instance_identity)?;
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
            started_ms: clock.now_ms(),
            clock,
            webhook_wake: tokio::sync::Notify::new(),
            identity_anchors,
            tokens_seen: Default::default(),
            signin_failures: Default::default(),
            hosts,
            instance: crate::auth::new_id("collector-")?,
            leader: std::sync::atomic::AtomicBool::new(false),
            collectors: std::sync::atomic::AtomicUsize::new(1),
            ssh: Default::default(),
            ingest: std::sync::OnceLock::new(),
        })
    }

    /// Runs `handle` (an agent's message) on the ingest pool (`crate::ingest`): its
    /// result comes back once what it wrote is durable.
    pub async fn ingest<T: Send + 'static>(
        &self,
        handle: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, crate::ingest::Failed> {
        let pool = self.ingest.get_or_init(|| {
            let store = self.store.clone();
            let timed = self.metrics.store_synced_fn();
            let sync: crate::ingest::Syncer = Arc::new(move |due| {
                if !due {
                    return store.settle().map_err(|e| e.to_string());
                }
                let t = std::time::Instant::now();
                let r = store.sync().map_err(|e| e.to_string());
                timed(t.elapsed());
                r
            });
            // On PostgreSQL every write waits for its commit, a round trip: as many
            // threads as the store has connections.
            let threads = match self.config.store {
                Some(_) => self.config.store_pool_size,
                None => crate::ingest::Pool::threads_for_machine(),
            };
            crate::ingest::Pool::start(threads, sync)
                .inspect_err(|e| tracing::error!(error = %e, "cannot start the ingest threads"))
                .ok()
        });
        match pool {
            Some(p) => p.run(handle).await,
            None => Err(crate::ingest::Failed::Lost),
        }
    }

    pub fn set_on_revoke(&self, f: Box<dyn Fn() + Send + Sync>) {
        *self.on_revoke.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Begins a backup for `actor` (`crate::backup`): audited, then the store's cut.
    /// A backup already being taken, or a store backed up with its own tools
    /// (PostgreSQL), is a conflict that says so.
    pub fn begin_backup(&self, actor: &str) -> Result<Box<dyn crate::store::Snapshot>> {
        crate::backup::begin(&*self.store, actor, self.clock.now_ms()).map_err(|e| match e {
            crate::backup::BackupError::Store(StoreError::Refused(m)) => AppError::Conflict(m),
            crate::backup::BackupError::Store(e) => AppError::Store(e),
            e => AppError::Rejected(Rejected::Backup(e)),
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
            at_ms: self.clock.now_ms(),
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
pub(crate) mod tests;
