//! Scans (SPEC §4 lifecycle): list, detail, manual scans, cancel; the handover gate
//! and releases.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rampart_report::SeverityCountsByName;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{body, query, ApiError, ApiResult, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;
use crate::store::{ScanCursor, ScanFilter, ScanRecord, ScanStatus};

/// A scan's state (SPEC §4 lifecycle).
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum ScanStatusDto {
    Pending,
    Running,
    Completed,
    /// The scanner failed; not a compliance failure.
    Failed,
    Cancelled,
}

impl From<ScanStatus> for ScanStatusDto {
    fn from(s: ScanStatus) -> Self {
        match s {
            ScanStatus::Pending => ScanStatusDto::Pending,
            ScanStatus::Running => ScanStatusDto::Running,
            ScanStatus::Completed => ScanStatusDto::Completed,
            ScanStatus::Failed => ScanStatusDto::Failed,
            ScanStatus::Cancelled => ScanStatusDto::Cancelled,
        }
    }
}

/// A scan as the API shows it.
#[derive(Serialize, ToSchema)]
pub(super) struct ScanDto {
    id: String,
    agent_id: String,
    hostname: Option<String>,
    project: Option<String>,
    status: ScanStatusDto,
    /// `provision`, `schedule` or `manual`; `ssh` for every scan of a target.
    trigger: String,
    profile: String,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    score: Option<f64>,
    passed: u32,
    failed: u32,
    error: u32,
    not_applicable: u32,
    not_checked: u32,
    exempted: u32,
    failed_by_severity: SeverityCountsByName,
    blocked: bool,
    block_reasons: Vec<String>,
    released_by: Option<String>,
    released_at_ms: Option<i64>,
    failure_reason: Option<String>,
}

fn scan_dto(app: &App, s: ScanRecord) -> ScanDto {
    let hostname = app.hostname_of(&s.agent_id);
    scan_dto_of(s, hostname)
}

/// A scan with its VM's host name as already read.
fn scan_dto_of(s: ScanRecord, hostname: Option<String>) -> ScanDto {
    ScanDto {
        hostname,
        failed_by_severity: s.failed_by_severity.into(),
        id: s.id,
        agent_id: s.agent_id,
        project: s.project,
        status: s.status.into(),
        trigger: s.trigger,
        profile: s.profile.name().into(),
        created_at_ms: s.created_at_ms,
        started_at_ms: s.started_at_ms,
        finished_at_ms: s.finished_at_ms,
        score: s.score,
        passed: s.passed,
        failed: s.failed,
        error: s.error,
        not_applicable: s.not_applicable,
        not_checked: s.not_checked,
        exempted: s.exempted,
        blocked: s.blocked,
        block_reasons: s.block_reasons,
        released_by: s.released_by,
        released_at_ms: s.released_at_ms,
        failure_reason: s.failure_reason,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ScanQuery {
    /// Only scans in this state.
    #[param(value_type = Option<ScanStatusDto>)]
    status: Option<String>,
    /// Only scans of this Terraform project.
    project: Option<String>,
    /// Only scans of this agent.
    agent_id: Option<String>,
    /// `true`: only scans that block a handover (blocked and not released).
    blocked: Option<bool>,
    /// Cursor: only scans older than this scan ID (the `next` of the page before).
    before: Option<String>,
    /// Cursor: only scans newer than this scan ID.
    after: Option<String>,
    /// Page number, from 0, counted from the cursor; `page` × `per_page` at most
    /// 100000 (beyond, follow `next`).
    #[serde(default)]
    page: usize,
    /// Scans per page, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<usize>,
}

/// The most scans a page number may skip; deeper pages are reached by cursor.
const MAX_OFFSET: usize = 100_000;

/// One page of scans, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct ScanPage {
    scans: Vec<ScanDto>,
    /// Every scan matching the filters.
    total: usize,
    page: usize,
    per_page: usize,
    /// Pass as `before` for the next page; null on the last page.
    next: Option<String>,
}

fn parse_status(s: &str) -> Result<ScanStatus, ApiError> {
    Ok(match s {
        "pending" => ScanStatus::Pending,
        "running" => ScanStatus::Running,
        "completed" => ScanStatus::Completed,
        "failed" => ScanStatus::Failed,
        "cancelled" => ScanStatus::Cancelled,
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("status `{s}` is not pending, running, completed, failed or cancelled"),
            ))
        }
    })
}

/// List scans
///
/// Newest first, filtered and paginated by cursor (`before` = the `next` of the
/// page before) or page number. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans",
    tag = "scans",
    params(ScanQuery),
    responses(
        (status = 200, description = "One page of scans", body = ScanPage),
        (status = 400, description = "Invalid query, or a page too deep", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_scans(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<ScanPage> {
    c.require(Role::Provisioner)?;
    let q: ScanQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let offset = q.page.saturating_mul(per_page);
    if offset > MAX_OFFSET {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("page {} is too deep; follow `next` with `before`", q.page),
        ));
    }
    let filter = ScanFilter {
        status: q.status.as_deref().map(parse_status).transpose()?,
        project: q.project,
        agent_id: q.agent_id,
        blocked: q.blocked.unwrap_or(false),
    };
    let cursor = ScanCursor {
        before: q.before,
        after: q.after,
        oldest_first: false,
    };
    let l = app.list_scans(&filter, &cursor, offset, per_page)?;
    let agents = app.agents_of_scans(&l.scans)?;
    Ok(Json(ScanPage {
        scans: l
            .scans
            .into_iter()
            .map(|s| {
                let host = agents.get(&s.agent_id).map(|a| a.hostname.clone());
                scan_dto_of(s, host)
            })
            .collect(),
        total: l.total,
        page: q.page,
        per_page,
        next: l.next,
    }))
}

/// One rule's result, with the rule's metadata when the agent sent its catalog.
#[derive(Serialize, ToSchema)]
pub(super) struct ResultDto {
    /// Rule ID.
    id: String,
    /// `pass`, `fail`, `error`, `not_applicable`, `not_checked` or `exempted`.
    status: String,
    title: Option<String>,
    section: Option<String>,
    severity: Option<String>,
    remediation: Option<String>,
    evidence: Vec<String>,
}

/// A scan and every rule's result.
#[derive(Serialize, ToSchema)]
pub(super) struct ScanDetail {
    scan: ScanDto,
    results: Vec<ResultDto>,
    /// True when the per-rule results were deleted by the collector's retention
    /// (`results_retention_days`); the scan's summary stays.
    results_expired: bool,
}

/// One scan with its results
///
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}",
    tag = "scans",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The scan and its results", body = ScanDetail),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_scan(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDetail> {
    c.require(Role::Provisioner)?;
    let (s, results) = app.scan_with_results(&id)?;
    let results_expired = results.is_empty() && app.results_expired(&s);
    let cat = app.catalog_for_scan(&s);
    let results = results
        .into_iter()
        .map(|r| {
            let meta = cat.as_ref().and_then(|c| c.rules.get(&r.rule_id));
            ResultDto {
                title: meta.map(|m| m.title.clone()),
                section: meta.map(|m| m.section.clone()),
                severity: meta.map(|m| m.severity.as_str().into()),
                remediation: meta.map(|m| m.remediation.clone()),
                id: r.rule_id,
                status: r.status.as_str().into(),
                evidence: r.evidence,
            }
        })
        .collect();
    Ok(Json(ScanDetail {
        scan: scan_dto(&app, s),
        results,
        results_expired,
    }))
}

/// Exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ManualScan {
    /// Scan this agent (agent ID or cloud instance ID).
    agent_id: Option<String>,
    /// Scan every agent of this Terraform project that is not revoked.
    project: Option<String>,
}

/// Start scans by hand
///
/// Scans of exempt projects, or while scanning is disabled, are not created.
/// Needs the provisioner role.
#[utoipa::path(
    post,
    path = "/api/v1/scans",
    tag = "scans",
    request_body = ManualScan,
    responses(
        (status = 201, description = "The scans created (maybe none)", body = Vec<ScanDto>),
        (status = 400, description = "Neither or both of agent_id and project", body = ErrorBody),
        (status = 404, description = "No such agent", body = ErrorBody),
        (status = 422, description = "Invalid body, or the agent is revoked", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn manual_scan(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> Result<(StatusCode, Json<Vec<ScanDto>>), ApiError> {
    c.require(Role::Provisioner)?;
    let r: ManualScan = body(&raw)?;
    let agents: Vec<String> = match (r.agent_id, r.project) {
        (Some(a), None) => vec![app.find_agent(&a)?.id],
        (None, Some(p)) => app.agents_of_project(&p)?,
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give exactly one of agent_id or project".into(),
            ))
        }
    };
    // A project's scans share one sync.
    let made = app.create_scans(&agents, "manual", &c.name)?;
    let out = made.into_iter().map(|s| scan_dto(&app, s)).collect();
    Ok((StatusCode::CREATED, Json(out)))
}

/// Release a blocked handover
///
/// Recorded with the admin's name and the time. Needs the admin role.
#[utoipa::path(
    post,
    path = "/api/v1/scans/{id}/release",
    tag = "handover",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The scan, released", body = ScanDto),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
        (status = 422, description = "The scan is not blocked, or was released", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn release(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDto> {
    c.require(Role::Admin)?;
    let s = app.release(&id, &c.name)?;
    Ok(Json(scan_dto(&app, s)))
}

/// Cancel a pending or running scan
///
/// Needs the admin role.
#[utoipa::path(
    post,
    path = "/api/v1/scans/{id}/cancel",
    tag = "scans",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The scan, cancelled", body = ScanDto),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
        (status = 422, description = "The scan has already ended", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn cancel(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDto> {
    c.require(Role::Admin)?;
    let s = app.cancel_scan(&id, &c.name)?;
    Ok(Json(scan_dto(&app, s)))
}

/// Whether a VM may be handed over now, and why (not).
#[derive(Serialize, ToSchema)]
pub(super) struct GateDto {
    agent_id: String,
    /// The cloud instance ID the agent enrolled with (empty if none): a pipeline
    /// checks that the answer is about the VM it made.
    instance_id: String,
    /// The agent's host name.
    hostname: String,
    allowed: bool,
    /// `allowed`, `released`, `exempt`, `pending`, `blocked` or `failed`.
    state: &'static str,
    reasons: Vec<String>,
    scan_id: Option<String>,
    /// Whether the provider's signed instance identity document vouched for
    /// `instance_id` at enrollment (otherwise it is only what the VM said).
    identity_verified: bool,
}

/// The handover gate
///
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/handover/{id}",
    tag = "handover",
    params(("id" = String, Path, description = "Agent ID or cloud instance ID", min_length = 1)),
    responses(
        (status = 200, description = "The gate's answer", body = GateDto),
        (status = 404, description = "No such agent or instance", body = ErrorBody),
        (status = 409, description = "The instance ID is claimed by more than one live agent", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn handover(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<GateDto> {
    c.require(Role::Provisioner)?;
    let g = app.handover(&id)?;
    Ok(Json(GateDto {
        agent_id: g.agent_id,
        instance_id: g.instance_id,
        hostname: g.hostname,
        allowed: g.allowed,
        state: g.state,
        reasons: g.reasons,
        scan_id: g.scan_id,
        identity_verified: g.identity_verified,
    }))
}
