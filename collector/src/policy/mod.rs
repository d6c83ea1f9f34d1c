//! Settings, score, enforcement and the handover decision (SPEC §4) as pure
//! functions, and the rules for webhook URLs: their shape, where they may point (never
//! loopback unless the collector's config allows it, never link-local or cloud
//! metadata, unspecified, multicast or broadcast addresses) and how they are shown in
//! logs and the audit log (redacted: a webhook URL often carries a credential in its
//! path).

mod webhook_url;

use webhook_url::check_webhook_url;
pub use webhook_url::{check_webhook_destination, ip_refusal, redact_url};

use std::collections::BTreeSet;

use rampart_report::{Profile, Severity, SeverityCounts};

use crate::store::{ScanRecord, ScanStatus};

/// How results are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Record only; never block.
    #[default]
    Audit,
    /// Record, and alert where block mode would have blocked.
    Warn,
    /// Block handover of a VM whose completed scan breaks the policy.
    Block,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "audit" => Mode::Audit,
            "warn" => Mode::Warn,
            "block" => Mode::Block,
            _ => return None,
        })
    }
}

/// Organisation settings (admin only), with SPEC §4's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub scanning_enabled: bool,
    pub mode: Mode,
    pub profile: Profile,
    /// 0–100.
    pub min_score: f64,
    pub block_on_critical: bool,
    pub block_on_high: bool,
    pub scan_on_provision: bool,
    pub schedule_enabled: bool,
    /// Standard 5-field crontab expression.
    pub schedule_cron: String,
    pub ssh_user: String,
    pub exempt_rules: BTreeSet<String>,
    pub exempt_projects: BTreeSet<String>,
    /// Where warn-mode alerts are delivered (http or https); empty: nowhere.
    pub webhook_url: String,
    /// The key that signs deliveries (HMAC-SHA256).
    pub webhook_secret: Option<WebhookSecret>,
}

/// A webhook signing key. It is kept in clear (it must sign), so it is never shown:
/// `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scanning_enabled: true,
            mode: Mode::Audit,
            profile: Profile::default(),
            min_score: 70.0,
            block_on_critical: true,
            block_on_high: false,
            scan_on_provision: true,
            schedule_enabled: false,
            schedule_cron: "0 3 * * *".into(),
            ssh_user: "ubuntu".into(),
            exempt_rules: BTreeSet::new(),
            exempt_projects: BTreeSet::new(),
            webhook_url: String::new(),
            webhook_secret: None,
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("minimum score {0} is not between 0 and 100")]
    MinScore(String),
    #[error("unknown profile `{0}`; expected level1-server, level2-server, level1-workstation or level2-workstation")]
    Profile(String),
    #[error("schedule `{0}` is not a 5-field crontab expression: {1}")]
    Cron(String, String),
    /// The URL (shown redacted) is malformed.
    #[error("webhook_url `{0}` {1}")]
    WebhookUrl(String, &'static str),
    /// The URL (shown redacted) names an address webhooks may not reach.
    #[error("webhook_url `{url}` {why}")]
    WebhookDestination { url: String, why: String },
    #[error("webhook_secret must be 16 to 512 bytes")]
    WebhookSecret,
}

impl Settings {
    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(0.0..=100.0).contains(&self.min_score) || self.min_score.is_nan() {
            return Err(SettingsError::MinScore(self.min_score.to_string()));
        }
        crate::schedule::parse(&self.schedule_cron)
            .map_err(|e| SettingsError::Cron(self.schedule_cron.clone(), e))?;
        if !self.webhook_url.is_empty() {
            check_webhook_url(&self.webhook_url)
                .map_err(|why| SettingsError::WebhookUrl(redact_url(&self.webhook_url), why))?;
        }
        // An empty secret in a request means "remove it".
        if let Some(WebhookSecret(k)) = &self.webhook_secret {
            if !k.is_empty() && !(16..=512).contains(&k.len()) {
                return Err(SettingsError::WebhookSecret);
            }
        }
        Ok(())
    }
}

/// Counts of one scan, as the agent reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub error: u32,
    pub not_applicable: u32,
    pub failed_by_severity: SeverityCounts,
}

/// The scan's score ([`rampart_report::score`]).
pub fn score(c: &Counts) -> Option<f64> {
    rampart_report::score(c.passed, c.failed, c.error)
}

/// What enforcement decided for a completed scan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Handover is blocked (block mode only).
    pub blocked: bool,
    /// An alert is due (warn mode, where block mode would have blocked).
    pub alert: bool,
    /// Every reason the policy was broken, in words.
    pub reasons: Vec<String>,
}

/// Applies the policy to a completed scan of a VM in `project`.
pub fn enforce(s: &Settings, c: &Counts, project: Option<&str>) -> Verdict {
    if project.is_some_and(|p| s.exempt_projects.contains(p)) {
        return Verdict::default();
    }
    let mut reasons = Vec::new();
    for (sev, blocks) in [
        (Severity::Critical, s.block_on_critical),
        (Severity::High, s.block_on_high),
    ] {
        let n = c.failed_by_severity.get(sev);
        if blocks && n > 0 {
            reasons.push(format!("{n} {sev} CIS check(s) failed"));
        }
    }
    match score(c) {
        Some(sc) if sc < s.min_score => reasons.push(format!(
            "score {sc:.1}% is below the minimum of {}%",
            trim(s.min_score)
        )),
        None if s.min_score > 0.0 => reasons.push("no rule could be scored".into()),
        _ => {}
    }
    let broken = !reasons.is_empty();
    Verdict {
        blocked: broken && s.mode == Mode::Block,
        alert: broken && s.mode == Mode::Warn,
        reasons,
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// What the handover gate decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub allowed: bool,
    /// `allowed`, `released`, `exempt`, `pending`, `blocked`, `failed`.
    pub state: &'static str,
    pub reasons: Vec<String>,
    /// The decision rests on the agent's newest scan (its ID is shown).
    pub on_scan: bool,
}

/// The handover decision for an agent of `project` whose newest scan is `latest`.
pub fn handover(s: &Settings, project: Option<&str>, latest: Option<&ScanRecord>) -> Handover {
    let answer = |allowed, state, reasons: Vec<String>, on_scan| Handover {
        allowed,
        state,
        reasons,
        on_scan,
    };
    if let Some(p) = project.filter(|p| s.exempt_projects.contains(*p)) {
        return answer(
            true,
            "exempt",
            vec![format!("project {p} is exempt from scanning")],
            false,
        );
    }
    if !s.scanning_enabled {
        return answer(
            true,
            "allowed",
            vec!["CIS scanning is disabled".into()],
            false,
        );
    }
    let Some(scan) = latest else {
        return answer(
            false,
            "pending",
            vec!["no scan has been made yet".into()],
            false,
        );
    };
    match scan.status {
        ScanStatus::Pending => answer(
            false,
            "pending",
            vec![format!("scan {} is pending", scan.id)],
            true,
        ),
        ScanStatus::Running => answer(
            false,
            "pending",
            vec![format!("scan {} is running", scan.id)],
            true,
        ),
        ScanStatus::Failed => answer(
            false,
            "failed",
            vec![format!(
                "scan {} failed: {}",
                scan.id,
                scan.failure_reason.clone().unwrap_or_default()
            )],
            true,
        ),
        ScanStatus::Cancelled => answer(
            false,
            "pending",
            vec![format!("scan {} was cancelled; no completed scan", scan.id)],
            true,
        ),
        ScanStatus::Completed => match (&scan.released_by, scan.blocked) {
            (Some(by), true) => answer(
                true,
                "released",
                vec![format!(
                    "released by {by} despite: {}",
                    scan.block_reasons.join("; ")
                )],
                true,
            ),
            (None, true) => answer(false, "blocked", scan.block_reasons.clone(), true),
            (_, false) => answer(true, "allowed", vec![], true),
        },
    }
}

#[cfg(test)]
mod tests;
