//! Storage behind one trait. sled (embedded, on disk) is the default backend;
//! PostgreSQL ([`pg`]) serves fleets that outgrow one collector. Every backend must
//! pass [`conformance::run`]; [`brute_force`] is the oracle it compares with.
//!
//! Records here are the on-disk format: they derive `Serialize` on purpose.

pub mod audit_chain;
pub mod brute_force;
pub mod codec;
pub mod conformance;
mod event;
pub mod pg;
pub mod result_log;
pub mod sled_index;
pub mod sled_snapshot;
pub mod sled_store;

pub use event::Event;
use serde::{Deserialize, Serialize};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("stored record {key} is unreadable: {reason}")]
    Decode { key: String, reason: String },
    /// The store cannot do this now (a backup is already being taken) or at all (a
    /// backend backed up with its own tools); the words say which.
    #[error("{0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An enrolled agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub instance_id: String,
    #[serde(default)]
    pub os: String,
    /// Terraform project, from the enrollment token.
    pub project: Option<String>,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    pub enrolled_at_ms: i64,
    pub last_seen_ms: i64,
    pub cert_serial: String,
    pub cert_not_after_ms: i64,
    pub revoked: bool,
    /// Whether a signed instance identity document vouched for the instance ID at
    /// enrollment (records from before this field: not verified).
    #[serde(default)]
    pub identity: IdentityCheck,
    /// Certificates a renewal replaced and that have not expired yet: on the CRL of
    /// every collector sharing the store.
    #[serde(default)]
    pub replaced_certs: Vec<ReplacedCert>,
    /// Set for a target scanned over SSH (`crate::ssh`): registered through the
    /// API, never enrolled, so it has no certificate and never connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshTarget>,
}

/// How the collector reaches a target over SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshTarget {
    /// Host name or IP address.
    pub host: String,
    pub port: u16,
    /// The user to connect as; none: the settings' SSH user.
    #[serde(default)]
    pub user: Option<String>,
    /// The host key's SHA-256 fingerprint (`SHA256:…`, as `ssh-keygen -l` prints
    /// it): given at registration (pinned) or recorded at the first scan (trust on
    /// first use). Any other key fails the scan.
    #[serde(default)]
    pub host_key: Option<String>,
    /// Whether `host_key` was given by the caller rather than first seen.
    #[serde(default)]
    pub host_key_pinned: bool,
}

/// A client certificate a renewal replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplacedCert {
    pub serial: String,
    pub not_after_ms: i64,
}

/// The outcome of checking an enrollment's signed instance identity document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdentityCheck {
    pub verified: bool,
    /// What vouched for the identity, or why it is not verified, in words.
    #[serde(default)]
    pub detail: String,
}

/// A bootstrap token; only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub hash: String,
    pub project: Option<String>,
    pub created_by: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub max_uses: u32,
    pub uses: u32,
    pub revoked: bool,
}

/// What happened when a token was presented.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenUse {
    /// Accepted; the use was counted.
    Accepted(TokenRecord),
    Unknown,
    Expired,
    UsedUp,
    Revoked,
}

/// Scan lifecycle states (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl ScanStatus {
    /// The status as the API, reports and metrics write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Pending => "pending",
            ScanStatus::Running => "running",
            ScanStatus::Completed => "completed",
            ScanStatus::Failed => "failed",
            ScanStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            ScanStatus::Completed | ScanStatus::Failed | ScanStatus::Cancelled
        )
    }
}

/// A scan of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Time-ordered: sorting IDs sorts scans by creation.
    pub id: String,
    pub agent_id: String,
    pub project: Option<String>,
    pub status: ScanStatus,
    /// `provision`, `schedule` or `manual`; `ssh` for every scan of a target.
    pub trigger: String,
    pub profile: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub last_progress_ms: i64,
    pub score: Option<f64>,
    pub passed: u32,
    pub failed: u32,
    pub error: u32,
    pub not_applicable: u32,
    pub not_checked: u32,
    pub exempted: u32,
    /// Failed counts: critical, high, medium, low.
    pub failed_by_severity: [u32; 4],
    pub blocked: bool,
    pub block_reasons: Vec<String>,
    pub released_by: Option<String>,
    pub released_at_ms: Option<i64>,
    pub failure_reason: Option<String>,
    /// The agent's content version the results belong to.
    #[serde(default)]
    pub content_version: Option<String>,
}

impl ScanRecord {
    /// A new pending scan: nothing counted, nothing decided yet.
    pub fn pending(
        id: String,
        agent_id: &str,
        project: Option<String>,
        trigger: &str,
        profile: &str,
        now_ms: i64,
    ) -> ScanRecord {
        ScanRecord {
            id,
            agent_id: agent_id.into(),
            project,
            status: ScanStatus::Pending,
            trigger: trigger.into(),
            profile: profile.into(),
            created_at_ms: now_ms,
            started_at_ms: None,
            finished_at_ms: None,
            last_progress_ms: now_ms,
            score: None,
            passed: 0,
            failed: 0,
            error: 0,
            not_applicable: 0,
            not_checked: 0,
            exempted: 0,
            failed_by_severity: [0; 4],
            blocked: false,
            block_reasons: vec![],
            released_by: None,
            released_at_ms: None,
            failure_reason: None,
            content_version: None,
        }
    }
}

/// One rule's result in a scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub rule_id: String,
    pub status: String,
    pub evidence: Vec<String>,
}

/// A filter over scans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFilter {
    pub status: Option<ScanStatus>,
    pub project: Option<String>,
    pub agent_id: Option<String>,
    /// Only scans that block a handover: blocked and not released.
    pub blocked: bool,
}

impl ScanFilter {
    pub fn matches(&self, s: &ScanRecord) -> bool {
        self.status.is_none_or(|st| s.status == st)
            && self
                .project
                .as_ref()
                .is_none_or(|p| s.project.as_ref() == Some(p))
            && self.agent_id.as_ref().is_none_or(|a| &s.agent_id == a)
            && (!self.blocked || s.is_blocking())
    }
}

/// A completed scan's place in the score order: its score (none counts as 0) in
/// hundredths, which is as fine as scores are shown and counted.
pub fn score_key(s: &ScanRecord) -> i64 {
    (s.score.unwrap_or(0.0) * 100.0).round() as i64
}

impl ScanRecord {
    /// Blocked and not released: the scan stops a handover.
    pub fn is_blocking(&self) -> bool {
        self.blocked && self.released_by.is_none()
    }
}

/// Where a page of scans starts, by key range: scans strictly older than `before`
/// and strictly newer than `after` (scan IDs, which sort by creation); newest first,
/// or oldest first if asked (then a page's `next` is the next page's `after`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanCursor {
    pub before: Option<String>,
    pub after: Option<String>,
    pub oldest_first: bool,
}

impl ScanCursor {
    /// The cursor of the page after the one that ended at `last`.
    pub fn following(&self, last: String) -> ScanCursor {
        let mut c = self.clone();
        if self.oldest_first {
            c.after = Some(last);
        } else {
            c.before = Some(last);
        }
        c
    }
}

/// A page of scans, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanList {
    pub scans: Vec<ScanRecord>,
    /// Every scan matching the filter (whatever the cursor).
    pub total: usize,
    /// The cursor (`before`) of the next page, if there are more scans.
    pub next: Option<String>,
}

/// The fleet's figures for the overview.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fleet {
    /// Completed scans, and those of them whose score (none counts as 0) meets the
    /// minimum score.
    pub completed_scans: usize,
    pub completed_meeting: usize,
    /// Agents with a completed scan, and the sum of their latest completed scores.
    pub vms_scanned: usize,
    pub latest_score_sum: f64,
    /// Agents whose latest scan is blocked and not released.
    pub vms_blocked: usize,
}

/// One UTC day's completed scans (by creation day): how many, and their scores'
/// sum (to a hundredth), for the overview's trend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayScores {
    /// Days since the Unix epoch.
    pub day: u32,
    pub completed: u64,
    pub score_sum: f64,
}

/// A filter over the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
}

impl AuditFilter {
    pub fn matches(&self, e: &AuditRecord) -> bool {
        self.action.as_ref().is_none_or(|a| &e.action == a)
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
    }
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditList {
    pub entries: Vec<AuditRecord>,
    /// Every entry matching the filter.
    pub total: usize,
    /// The cursor (`before`, a sequence number) of the next page, if there is one.
    pub next: Option<u64>,
}

/// A person or pipeline that calls the REST API; only the token's SHA-256 is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// `viewer`, `user`, `provisioner` or `admin`.
    pub role: String,
    pub token_hash: String,
    pub created_at_ms: i64,
    /// A revoked user's token is refused; the record stays so that the audit log's
    /// actor names keep meaning one identity.
    #[serde(default)]
    pub revoked: bool,
    /// The console password as an argon2id PHC string; none: no console sign-in.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// When the password last changed: console sessions older than this are over.
    #[serde(default)]
    pub password_changed_at_ms: i64,
}

/// A console session; only the SHA-256 of the cookie's secret is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session secret: the record's key.
    pub id_hash: String,
    pub user: String,
    /// The token every state-changing form of this session carries.
    pub csrf: String,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
}

/// One entry of the append-only, hash-chained audit log (see [`audit_chain`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1; assigned by the store.
    #[serde(default)]
    pub seq: u64,
    pub at_ms: i64,
    /// Who acted: a user name, `agent:<id>`, or `system`.
    pub actor: String,
    /// What happened, e.g. `scan.release`, `settings.change`, `enrollment.refused`.
    pub action: String,
    /// What it happened to (scan, agent, token ID), if anything.
    pub target: Option<String>,
    /// Details in words or JSON.
    pub detail: String,
    /// SHA-256 (hex) of the entry before, [`audit_chain::GENESIS`] for the first;
    /// assigned by the store.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this entry, `prev_hash` included; assigned by the store.
    #[serde(default)]
    pub hash: String,
}

/// Where a webhook delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer arrived.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}

/// One alert to deliver to the webhook: the exact body that is signed and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// Time-ordered.
    pub id: String,
    pub scan_id: String,
    pub url: String,
    pub body: String,
    pub created_at_ms: i64,
    pub attempts: u32,
    pub state: DeliveryState,
    /// When the next attempt is due (pending only).
    pub next_attempt_ms: Option<i64>,
}

/// One delivery attempt and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub scan_id: String,
    /// From 1.
    pub attempt: u32,
    pub at_ms: i64,
    /// The HTTP status, when an answer arrived.
    pub http_status: Option<u16>,
    /// Why no usable answer arrived (connection, TLS, timeout, non-2xx).
    pub error: Option<String>,
    /// The delivery's state after this attempt.
    pub state: DeliveryState,
    /// When the next attempt is due, if there is one.
    pub next_attempt_ms: Option<i64>,
}

/// The parts of a store a backup holds, each a set of records (key → value) in the
/// backend's own encoding. Console sessions are left out (people sign in again), and
/// so are the store's own bookkeeping and indexes, which a restore rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Meta,
    Agents,
    Tokens,
    Users,
    Scans,
    /// Where each batch of results is (sled: locators into the result log's files).
    Results,
    Audit,
    Deliveries,
    Attempts,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Meta,
        Section::Agents,
        Section::Tokens,
        Section::Users,
        Section::Scans,
        Section::Results,
        Section::Audit,
        Section::Deliveries,
        Section::Attempts,
    ];

    /// Its number in a backup file (from 1).
    pub fn id(self) -> u8 {
        self as u8 + 1
    }

    pub fn from_id(id: u8) -> Option<Section> {
        Section::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// Its place in [`Section::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Section::Meta => "meta",
            Section::Agents => "agents",
            Section::Tokens => "tokens",
            Section::Users => "users",
            Section::Scans => "scans",
            Section::Results => "results",
            Section::Audit => "audit",
            Section::Deliveries => "deliveries",
            Section::Attempts => "attempts",
        }
    }
}

/// One record of a snapshot: key and value as the backend stores them.
pub type SnapshotRecord = (Vec<u8>, Vec<u8>);

/// A file of the store's own (sled: a result log day file) as it was at the cut.
pub struct SnapshotFile {
    /// Its path inside the data directory, e.g. `db/results/00020000.results`.
    pub name: String,
    /// Its length at the cut; bytes appended since are not part of the snapshot.
    pub len: u64,
    /// Opened at the cut, so that it reads even if it is deleted since.
    pub file: std::fs::File,
}

/// A store as it was at one moment (the cut), read while the collector goes on
/// writing. Dropping it ends the snapshot.
pub trait Snapshot: Send {
    /// The records of `section` as they were at the cut, each once, mostly in key
    /// order (records deleted since the cut come last). One walk at a time; a section
    /// may be walked again (a backup counts its records first).
    fn records(&self, section: Section) -> Box<dyn Iterator<Item = Result<SnapshotRecord>> + '_>;
    /// The store's files as they were at the cut.
    fn files(&self) -> &[SnapshotFile];
    /// The last audit entry at the cut: its sequence number and hash (0 and
    /// [`audit_chain::GENESIS`] for an empty log).
    fn audit_head(&self) -> (u64, String);
    /// How long writes were held to take the cut.
    fn pause(&self) -> std::time::Duration;
}

/// The storage contract. Writes are durable when [`Store::sync`] returns.
pub trait Store: Send + Sync + 'static {
    fn put_agent(&self, a: &AgentRecord) -> Result<()>;
    /// Atomically applies `change` to the stored agent (compare-and-swap: a change
    /// made meanwhile by another writer is never undone; `change` may run again on
    /// the fresher record). Returns the record as written, `None` if unknown.
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>>;
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>>;
    /// The agents among `ids` that exist, in any order: one read for a page's
    /// worth of rows where a backend is a round trip away.
    fn agents_by_id(&self, ids: &[String]) -> Result<Vec<AgentRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.agent(id)?);
        }
        Ok(out)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>>;
    /// Up to `limit` agents in ID order, after the agent `after` (exclusive).
    fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        Ok(brute_force::agent_page(self.agents()?, after, limit))
    }
    /// Agents that are not revoked and enrolled with this (non-empty) instance ID.
    fn agents_by_instance(&self, instance_id: &str) -> Result<Vec<AgentRecord>> {
        Ok(brute_force::agents_by_instance(self.agents()?, instance_id))
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()>;
    /// The token with that hash, as it is (no use counted).
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Atomically checks a token (by hash) and counts one use if it is valid at `now_ms`.
    fn use_token(&self, hash: &str, now_ms: i64) -> Result<TokenUse>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Atomically marks the token with that ID revoked (with respect to
    /// [`Store::use_token`]); returns the record as it was before, `None` if unknown.
    fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>>;

    fn put_scan(&self, s: &ScanRecord) -> Result<()>;
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>>;
    /// Matching scans, newest first, `offset` skipped, at most `limit`; and the total.
    fn scans(
        &self,
        filter: &ScanFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, usize)>;

    /// Matching scans, newest first, in the cursor's key range, `offset` skipped, at
    /// most `limit`; the total of the filter and the cursor of the next page.
    fn scan_list(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        offset: usize,
        limit: usize,
    ) -> Result<ScanList> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::scan_list(&all, filter, cursor, offset, limit))
    }
    /// Matching scans, newest first, in the cursor's key range, at most `limit`, and
    /// the cursor of the next page: [`Store::scan_list`] without the total, so that its
    /// cost follows the page whatever the filter.
    fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        let l = self.scan_list(filter, cursor, 0, limit)?;
        Ok((l.scans, l.next))
    }
    /// Completed scans ordered by [`score_key`] then ID, lowest first or highest first,
    /// strictly past `past` (a scan of the list) in that order, at most `limit`.
    fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::scans_by_score(&all, low_first, past, limit))
    }
    /// How many scans match, when a counter knows it (no walk); `None` otherwise.
    fn scan_total(&self, _filter: &ScanFilter) -> Result<Option<usize>> {
        Ok(None)
    }
    /// The agent's newest scan.
    fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        let f = ScanFilter {
            agent_id: Some(agent_id.into()),
            ..Default::default()
        };
        Ok(self.scans(&f, 0, 1)?.0.into_iter().next())
    }
    /// The overview's figures, `min_score` being the score a completed scan must meet.
    fn fleet(&self, min_score: f64) -> Result<Fleet> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::fleet(&all, min_score))
    }

    /// Completed scans per UTC creation day, for the days `from_day..from_day+days`
    /// that have any, oldest first.
    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::daily_scores(&all, from_day, days))
    }

    /// Upserts results: a rule's result is stored once per scan, whatever is resent.
    fn put_results(&self, scan_id: &str, results: &[ResultRecord]) -> Result<()>;
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>>;
    /// Retention: drops the results of finished scans created before `before_ms`,
    /// keeping the scans themselves (their counts, score and verdict). Returns how
    /// many scans lost their results; a second call with the same time finds none.
    fn prune_results(&self, before_ms: i64) -> Result<usize>;

    fn put_user(&self, u: &UserRecord) -> Result<()>;
    fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRecord>>;
    fn users(&self) -> Result<Vec<UserRecord>>;
    /// The user with that name.
    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Ok(self.users()?.into_iter().find(|u| u.name == name))
    }

    /// Console sessions (by the SHA-256 of their secret).
    fn put_session(&self, s: &SessionRecord) -> Result<()>;
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;
    /// Ends one session; whether it existed.
    fn delete_session(&self, id_hash: &str) -> Result<bool>;
    /// Ends every session for which `keep` answers false; returns how many ended.
    fn delete_sessions(&self, keep: &mut dyn FnMut(&SessionRecord) -> bool) -> Result<usize>;

    /// Appends to the audit log and returns the entry's sequence number. The store
    /// assigns `seq`, `prev_hash` and `hash` with [`audit_chain::seal`], atomically
    /// with respect to other appends, whatever the caller put in them.
    fn append_audit(&self, entry: &AuditRecord) -> Result<u64>;
    /// Audit entries from the newest, `offset` skipped, at most `limit`; and the total.
    fn audit(&self, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, usize)>;

    /// Matching audit entries from the newest, older than `before` (a sequence
    /// number), `offset` skipped, at most `limit`; the total of the filter.
    fn audit_list(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<AuditList> {
        let (all, _) = self.audit(0, usize::MAX)?;
        Ok(brute_force::audit_list(&all, filter, before, offset, limit))
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<()>;
    /// Deliveries still pending, oldest first.
    fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>>;
    /// Every delivery, whatever its state, oldest first (for a move between stores).
    fn deliveries(&self) -> Result<Vec<DeliveryRecord>>;
    fn append_attempt(&self, a: &AttemptRecord) -> Result<()>;
    /// Attempts from the newest, `offset` skipped, at most `limit`; and the total.
    fn attempts(&self, offset: usize, limit: usize) -> Result<(Vec<AttemptRecord>, usize)>;

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Every meta entry, by key (for a move between stores).
    fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`: granted
    /// when nobody holds it, `holder` already does, or the last holder's time ran out
    /// (atomically: two collectors never both hold it). Work that must run once for
    /// every collector sharing a store (retention, schedules, stalled scans, webhook
    /// deliveries) runs where the lease is held.
    fn lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    /// Records that collector `instance` holds agent `agent_id`'s stream (where
    /// several collectors share the store; nothing to record for one).
    fn stream_opened(&self, _agent_id: &str, _instance: &str, _now_ms: i64) -> Result<()> {
        Ok(())
    }
    /// Records that the stream `instance` opened at `since_ms` has ended (unless a
    /// newer one has been recorded since).
    fn stream_closed(&self, _agent_id: &str, _instance: &str, _since_ms: i64) -> Result<()> {
        Ok(())
    }
    /// Collector `instance` is alive at `now_ms`.
    fn heartbeat(&self, _instance: &str, _now_ms: i64) -> Result<()> {
        Ok(())
    }
    /// Those of `ids` whose stream another collector than `instance` holds, one
    /// whose heartbeat is no older than `alive_since_ms`.
    fn streams_elsewhere(
        &self,
        _ids: &[String],
        _instance: &str,
        _alive_since_ms: i64,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Periodic upkeep of the store's layout, run where the lease is held (and by
    /// `migrate` once it has copied): PostgreSQL makes its monthly partitions ahead
    /// of time and forgets the streams of collectors long silent. Nothing to do for a
    /// store without any.
    fn maintain(&self, _now_ms: i64) -> Result<()> {
        Ok(())
    }

    /// Bytes the store takes where it is kept (for `/metrics`), if known.
    fn size_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Tells the other collectors sharing this store about a change (see
    /// [`Event`]); a store that only one collector uses has nobody to tell.
    fn publish(&self, _event: &Event) -> Result<()> {
        Ok(())
    }
    /// What other collectors publish, from now on; `None` for a store no other
    /// collector shares. Events can be lost while the connection is down: a
    /// [`Event::Resync`] then says that anything may have changed.
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Event>> {
        None
    }

    /// Begins a point-in-time snapshot for a backup (`crate::backup`): `before_cut`
    /// runs first (the backup's audit entry, so that the snapshot holds it), then the
    /// store takes its cut, and the snapshot reads the records as they were at that
    /// moment while writes go on. One at a time. A backend with backup tools of its
    /// own (PostgreSQL: `pg_dump`) refuses, without running `before_cut`.
    fn snapshot(&self, _before_cut: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Snapshot>> {
        Err(StoreError::Refused(
            "this store has no built-in backup: back the database up with its own tools \
             (PostgreSQL: pg_dump, see docs/postgres.md), and the data directory's ca/ beside it"
                .into(),
        ))
    }

    /// Makes every write so far durable (survives a crash of the process or the host).
    /// Concurrent callers may share one flush; none returns before its writes are
    /// durable.
    fn sync(&self) -> Result<()>;
}
