//! The settings as the API shows and takes them (SPEC §4 settings; admin only).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rampart_report::Profile;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

use super::{body, ApiError, ApiResult, Caller, ErrorBody};
use crate::app::{App, SettingsRecord};
use crate::auth::Role;
use crate::policy::Settings;

/// The settings
///
/// Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/settings",
    tag = "settings",
    responses((status = 200, description = "Every setting", body = SettingsDto)),
    security(("bearer" = []))
)]
pub(super) async fn get_settings(State(app): State<Arc<App>>, c: Caller) -> ApiResult<SettingsDto> {
    c.require(Role::Admin)?;
    Ok(Json(SettingsRecord::from(&app.settings()).into()))
}

/// Change the settings
///
/// Audited with the old and new values (the webhook URL redacted); connected agents
/// get the new settings. A webhook URL whose host is a loopback (unless the
/// collector's config sets `webhook_allow_loopback`), link-local, cloud metadata,
/// unspecified, multicast or broadcast address is refused; host names are checked
/// when each delivery resolves them. Needs the admin role.
#[utoipa::path(
    put,
    path = "/api/v1/settings",
    tag = "settings",
    request_body = SettingsDto,
    responses(
        (status = 200, description = "The settings now in force", body = SettingsDto),
        (status = 422, description = "Invalid body or setting", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn put_settings(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<SettingsDto> {
    c.require(Role::Admin)?;
    let r = SettingsRecord::from(body::<SettingsDto>(&raw)?);
    let s = Settings::try_from(&r).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    crate::policy::check_webhook_destination(&s.webhook_url, app.config.webhook_allow_loopback)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    let s = app.update_settings(s, &c.name)?;
    Ok(Json(SettingsRecord::from(&s).into()))
}

/// Every setting; a `PUT` gives them all.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsDto {
    /// Enable CIS scanning.
    scanning_enabled: bool,
    /// Enforcement mode.
    #[schema(schema_with = mode_schema)]
    mode: String,
    /// CIS profile scanned.
    #[schema(schema_with = profile_schema)]
    profile: String,
    /// Minimum pass score, 0-100.
    #[schema(minimum = 0, maximum = 100)]
    min_score: f64,
    /// In `block` mode, block when a critical rule failed.
    block_on_critical: bool,
    /// In `block` mode, block when a high rule failed.
    block_on_high: bool,
    /// An agent's first enrollment starts a scan.
    scan_on_provision: bool,
    /// Scan on the cron schedule.
    schedule_enabled: bool,
    /// Five-field cron expression, e.g. `0 3 * * *`.
    schedule_cron: String,
    /// SSH user for agentless scans.
    ssh_user: String,
    /// Rule IDs skipped everywhere.
    exempt_rules: Vec<String>,
    /// Terraform projects never scanned and never blocked.
    exempt_projects: Vec<String>,
    /// Where warn-mode alerts are posted (http or https URL); empty: nowhere. Shown
    /// in full only here: logs and the audit log show it redacted.
    #[serde(default)]
    webhook_url: String,
    /// Write-only key that signs each alert (HMAC-SHA256, 16-512 bytes). Absent
    /// leaves the stored one unchanged; `""` removes it. Never shown.
    #[serde(default, skip_serializing)]
    #[schema(write_only)]
    webhook_secret: Option<String>,
    /// Read-only: whether a webhook secret is set (ignored in a `PUT`).
    #[serde(default)]
    #[schema(read_only)]
    webhook_secret_set: bool,
}

fn enum_schema(values: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
}

fn mode_schema() -> ObjectBuilder {
    enum_schema(&["audit", "warn", "block"])
}

fn profile_schema() -> ObjectBuilder {
    enum_schema(&Profile::NAMES)
}

impl From<SettingsRecord> for SettingsDto {
    fn from(r: SettingsRecord) -> Self {
        SettingsDto {
            scanning_enabled: r.scanning_enabled,
            mode: r.mode,
            profile: r.profile,
            min_score: r.min_score,
            block_on_critical: r.block_on_critical,
            block_on_high: r.block_on_high,
            scan_on_provision: r.scan_on_provision,
            schedule_enabled: r.schedule_enabled,
            schedule_cron: r.schedule_cron,
            ssh_user: r.ssh_user,
            exempt_rules: r.exempt_rules,
            exempt_projects: r.exempt_projects,
            webhook_url: r.webhook_url,
            webhook_secret: None,
            webhook_secret_set: r.webhook_secret_set,
        }
    }
}

impl From<SettingsDto> for SettingsRecord {
    fn from(d: SettingsDto) -> Self {
        SettingsRecord {
            scanning_enabled: d.scanning_enabled,
            mode: d.mode,
            profile: d.profile,
            min_score: d.min_score,
            block_on_critical: d.block_on_critical,
            block_on_high: d.block_on_high,
            scan_on_provision: d.scan_on_provision,
            schedule_enabled: d.schedule_enabled,
            schedule_cron: d.schedule_cron,
            ssh_user: d.ssh_user,
            exempt_rules: d.exempt_rules,
            exempt_projects: d.exempt_projects,
            webhook_url: d.webhook_url,
            webhook_secret: d.webhook_secret,
            webhook_secret_set: false,
        }
    }
}
