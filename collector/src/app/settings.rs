//! Settings: their on-disk form, reading and replacing them.

use rampart_report::UnknownProfile;
use serde::{Deserialize, Serialize};

use super::{App, AppError, Result, SETTINGS_KEY, WEBHOOK_SECRET_KEY};
use crate::policy::{self, Mode, Settings};

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
            profile: s.profile.name().into(),
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
            profile: r
                .profile
                .parse()
                .map_err(|e: UnknownProfile| policy::SettingsError::Profile(e.0).to_string())?,
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

impl App {
    /// Webhook delivery attempts, newest first, and how many there are.
    pub fn webhook_attempts(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<crate::store::AttemptRecord>, usize)> {
        Ok(self.store.attempts(offset, limit)?)
    }

    pub fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the settings. `webhook_secret: None` leaves the stored secret as it
    /// is; an empty one removes it.
    pub fn update_settings(&self, mut new: Settings, actor: &str) -> Result<Settings> {
        new.validate()?;
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
        let bytes = serde_json::to_vec(&rec)
            .map_err(|e| AppError::Rejected(crate::app::Rejected::Encode(e)))?;
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
        self.sync_store()?;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = new;
        for agent in self.connected() {
            self.send(&agent, self.settings_command(&agent));
        }
        self.tell_others(crate::store::Event::Settings);
        Ok(self.settings())
    }

    /// Reads the settings again (another collector changed them); connected agents
    /// get them when they differ from what this collector had.
    pub(super) fn reload_settings(&self) -> Result<()> {
        let new = super::stored_settings(&*self.store)?;
        let changed = {
            let mut cur = self.settings.write().unwrap_or_else(|p| p.into_inner());
            let changed = *cur != new;
            *cur = new;
            changed
        };
        if changed {
            for agent in self.connected() {
                self.send(&agent, self.settings_command(&agent));
            }
        }
        Ok(())
    }
}
