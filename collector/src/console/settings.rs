//! Settings (admin; SPEC §4): every setting in one form, checked as the API checks
//! them (unknown exempted rule IDs named), saved through the same operation, so the
//! audit log has the old and new values and connected agents get the change.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use rampart_report::Profile;
use serde::Deserialize;

use super::view::{self, Chrome};
use super::{Failure, Page, Ui};
use crate::app::signin::ConsoleUser;
use crate::app::{App, SettingsRecord};
use crate::auth::Role;
use crate::policy::Settings;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    c: Chrome,
    s: SettingsRecord,
    exempt_rules: String,
    exempt_projects: String,
    csrf: String,
    saved: Option<String>,
    error: Option<String>,
    modes: [&'static str; 3],
    profiles: [&'static str; 4],
    /// The collector's SSH public key, for the targets' `authorized_keys`.
    ssh_key: Option<String>,
}

fn page(
    app: &App,
    u: &ConsoleUser,
    s: SettingsRecord,
    saved: Option<String>,
    error: Option<String>,
) -> SettingsPage {
    SettingsPage {
        c: Chrome::new("Settings", Some(u), "settings"),
        exempt_rules: s.exempt_rules.join("\n"),
        exempt_projects: s.exempt_projects.join("\n"),
        s,
        csrf: u.session.csrf.clone(),
        saved,
        error,
        ssh_key: app.ssh_key().map(|k| k.public_openssh().to_string()),
        modes: ["audit", "warn", "block"],
        profiles: Profile::NAMES,
    }
}

#[derive(Deserialize)]
pub struct Saved {
    saved: Option<String>,
}

pub async fn form_page(app: &App, u: &ConsoleUser, saved: bool) -> Page {
    let s = SettingsRecord::from(&app.settings());
    Ok(view::html(&page(
        app,
        u,
        s,
        saved.then(|| "Settings saved; connected agents have them now.".to_string()),
        None,
    )))
}

pub async fn form(State(app): State<Arc<App>>, ui: Ui, Query(q): Query<Saved>) -> Page {
    let u = ui.require(Role::Admin, "Settings")?;
    form_page(&app, u, q.saved.is_some()).await
}

/// The form as the browser sends it: checkboxes are present only when ticked.
#[derive(Deserialize)]
struct SettingsForm {
    scanning_enabled: Option<String>,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    min_score: String,
    block_on_critical: Option<String>,
    block_on_high: Option<String>,
    scan_on_provision: Option<String>,
    schedule_enabled: Option<String>,
    #[serde(default)]
    schedule_cron: String,
    #[serde(default)]
    ssh_user: String,
    #[serde(default)]
    exempt_rules: String,
    #[serde(default)]
    exempt_projects: String,
    #[serde(default)]
    webhook_url: String,
    #[serde(default)]
    webhook_secret: String,
    remove_webhook_secret: Option<String>,
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// The record the form describes, or what is wrong with it, in words.
fn record(f: &SettingsForm, app: &App) -> Result<SettingsRecord, String> {
    let min_score = f
        .min_score
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            format!(
                "Minimum pass score `{}` is not a number from 0 to 100.",
                crate::limits::echo(&f.min_score)
            )
        })?;
    let exempt_rules = lines(&f.exempt_rules);
    let unknown: Vec<&str> = exempt_rules
        .iter()
        .filter(|id| !app.knows_rule(id))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Exempted rule IDs not in any known benchmark: {}.",
            unknown
                .iter()
                .map(|s| crate::limits::echo(s))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(SettingsRecord {
        scanning_enabled: f.scanning_enabled.is_some(),
        mode: f.mode.clone(),
        profile: f.profile.clone(),
        min_score,
        block_on_critical: f.block_on_critical.is_some(),
        block_on_high: f.block_on_high.is_some(),
        scan_on_provision: f.scan_on_provision.is_some(),
        schedule_enabled: f.schedule_enabled.is_some(),
        schedule_cron: f.schedule_cron.trim().to_string(),
        ssh_user: f.ssh_user.trim().to_string(),
        exempt_rules,
        exempt_projects: lines(&f.exempt_projects),
        webhook_url: f.webhook_url.trim().to_string(),
        webhook_secret: if f.remove_webhook_secret.is_some() {
            Some(String::new())
        } else if f.webhook_secret.is_empty() {
            None
        } else {
            Some(f.webhook_secret.clone())
        },
        webhook_secret_set: false,
    })
}

pub async fn save(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) =
        ui.form::<SettingsForm>(&app, &headers, &body, Role::Admin, "Changing settings")?;
    let refused = |rec: SettingsRecord, why: String| {
        let mut shown = rec;
        shown.webhook_secret_set = app.settings().webhook_secret.is_some();
        Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            view::html(&page(
                &app,
                u,
                shown,
                None,
                Some(format!("Not saved: {why}")),
            )),
        )
            .into_response())
    };
    let rec = match record(&f, &app) {
        Ok(r) => r,
        Err(why) => {
            // Show what was sent, so that nothing typed is lost.
            let mut shown = SettingsRecord::from(&app.settings());
            shown.exempt_rules = lines(&f.exempt_rules);
            shown.schedule_cron = f.schedule_cron.clone();
            return refused(shown, why);
        }
    };
    let s = match Settings::try_from(&rec) {
        Ok(s) => s,
        Err(why) => return refused(rec, format!("{why}.")),
    };
    if let Err(e) =
        crate::policy::check_webhook_destination(&s.webhook_url, app.config.webhook_allow_loopback)
    {
        return refused(rec, format!("{e}."));
    }
    match app.update_settings(s, &u.name) {
        Ok(_) => Ok(Redirect::to("/ui/settings?saved=1").into_response()),
        Err(crate::app::AppError::Invalid(why)) => refused(rec, format!("{why}.")),
        Err(e) => Err(Failure::from(e).with_user(u)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_drop_blanks() {
        assert_eq!(lines(" 1.1.1 \n\n2.2\r\n"), ["1.1.1", "2.2"]);
    }
}
