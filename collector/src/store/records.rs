//! The records the store keeps, and the filters, cursors and lists of its queries.
//! Records are the on-disk format: they derive `Serialize` on purpose.

use rampart_report::{Profile, SeverityCounts, Status};
use serde::{Deserialize, Serialize};

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
    /// When its certificate was last renewed (0: never), so that every collector
    /// sharing the store bounds renewals alike.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub renewed_at_ms: i64,
    /// Set for a target scanned over SSH (`crate::ssh`): registered through the
    /// API, never enrolled, so it has no certificate and never connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshTarget>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
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
    /// On the CRL. A renewal's answer can be lost on its way, leaving the agent with
    /// only the certificate it renewed with: that one stays accepted until the agent
    /// is seen with a newer one, or renews again. Records from before: refused.
    #[serde(default = "refused_before")]
    pub refused: bool,
}

fn refused_before() -> bool {
    true
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
    /// Stored as its name.
    pub profile: Profile,
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
    /// Failed counts per severity (stored as `[critical, high, medium, low]`).
    pub failed_by_severity: SeverityCounts,
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
        profile: Profile,
        now_ms: i64,
    ) -> ScanRecord {
        ScanRecord {
            id,
            agent_id: agent_id.into(),
            project,
            status: ScanStatus::Pending,
            trigger: trigger.into(),
            profile,
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
            failed_by_severity: SeverityCounts::default(),
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
    /// Stored as its name (`pass`, `not_applicable`, …).
    pub status: Status,
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

/// The agents an ID may name at the handover gate, each with its newest scan (see
/// [`super::Store::gate_candidates`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GateCandidates {
    /// The agent with this ID, revoked or not.
    pub by_id: Option<(AgentRecord, Option<ScanRecord>)>,
    /// The live agents enrolled with this (non-empty) instance ID, by agent ID.
    pub by_instance: Vec<(AgentRecord, Option<ScanRecord>)>,
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
