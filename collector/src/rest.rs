//! The REST API under `/api/v1`: every request carries a bearer token; no token is
//! 401, the wrong role is 403 (SPEC §4 roles). DTOs here are the API's own types, and
//! what the OpenAPI document (`openapi`) describes: each handler carries its
//! `#[utoipa::path]`, and a unit test fails for a route without one.

mod accounts;
mod openapi;
mod overview;
mod settings;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::{App, AppError, SettingsRecord};
use crate::auth::Role;
use crate::policy::Settings;
use crate::store::{AgentRecord, AuditRecord, ScanFilter, ScanRecord, ScanStatus};
use settings::SettingsDto;

/// An API error: a status code and a message in words.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in words.
    error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, format!("{m} not found")),
            AppError::Invalid(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, m),
            AppError::Conflict(m) => ApiError(StatusCode::CONFLICT, m),
            AppError::Refused(m) => ApiError(StatusCode::FORBIDDEN, m),
            AppError::Ca(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            AppError::Store(e) => {
                tracing::error!(error = %e, "store failure");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable".into(),
                )
            }
        }
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Turns axum's own plain-text rejections (a path segment that is not UTF-8, a body
/// over the limit) into the API's error body, keeping status and headers: every error
/// of this API is an [`ErrorBody`].
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let text = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError(status, text).into_response();
    for (k, v) in &parts.headers {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Parses a request body after the caller's role was checked, so that a caller
/// without the role learns only that (403), whatever the body holds.
fn body<T: serde::de::DeserializeOwned>(bytes: &axum::body::Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("invalid request body: {e}"),
        )
    })
}

/// Parses a query string after the caller's role was checked (as [`body`] does).
fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

/// The authenticated caller.
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "this needs the {} role; {} has {}",
                    role.as_str(),
                    self.name,
                    self.role.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let unauth = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.into());
        let h = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauth("missing bearer token"))?;
        let token = h
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauth("malformed Authorization header"))?;
        let (name, role) = app
            .authenticate(token.trim())?
            .ok_or_else(|| unauth("unknown or revoked token"))?;
        Ok(Caller { name, role })
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/download/{name}", get(download))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/enrollment-tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route(
            "/api/v1/enrollment-tokens/{id}",
            delete(accounts::revoke_token),
        )
        .route("/api/v1/scans", get(list_scans).post(manual_scan))
        .route("/api/v1/scans/{id}", get(get_scan))
        .route("/api/v1/scans/{id}/report.html", get(report_html))
        .route("/api/v1/scans/{id}/report.json", get(report_json))
        .route("/api/v1/overview", get(overview::overview))
        .route("/api/v1/scans/{id}/release", post(release))
        .route("/api/v1/scans/{id}/cancel", post(cancel))
        .route("/api/v1/handover/{id}", get(handover))
        .route("/api/v1/settings", get(get_settings).put(put_settings))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/api/v1/ca", get(ca))
        .route(
            "/api/v1/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/api/v1/users/{name}", delete(accounts::revoke_user))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/docs", get(openapi::page))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint".into(),
            )
        })
        .layer(axum::middleware::map_response(json_errors))
        .with_state(app)
}

/// Liveness
///
/// `ok` while the collector serves. No token needed.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Serving", body = String, content_type = "text/plain; charset=utf-8")),
    security(())
)]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics
///
/// The collector's counters in the Prometheus text format. No token needed.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Counters and gauges", body = String,
        content_type = "text/plain; version=0.0.4")),
    security(())
)]
async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let m = &app.metrics;
    let body = format!(
        "# TYPE rampart_enrollments_total counter\nrampart_enrollments_total {}\n\
         # TYPE rampart_enrollments_refused_total counter\nrampart_enrollments_refused_total {}\n\
         # TYPE rampart_results_total counter\nrampart_results_total {}\n\
         # TYPE rampart_scans_completed_total counter\nrampart_scans_completed_total {}\n\
         # TYPE rampart_streams_rejected_total counter\nrampart_streams_rejected_total {}\n\
         # TYPE rampart_agents_connected gauge\nrampart_agents_connected {}\n",
        m.enrollments_total.load(Ordering::Relaxed),
        m.enrollments_refused_total.load(Ordering::Relaxed),
        m.results_total.load(Ordering::Relaxed),
        m.scans_completed_total.load(Ordering::Relaxed),
        m.streams_rejected_total.load(Ordering::Relaxed),
        app.connected().len(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// A scan's state (SPEC §4 lifecycle).
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatusDto {
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
pub struct ScanDto {
    id: String,
    agent_id: String,
    hostname: Option<String>,
    project: Option<String>,
    status: ScanStatusDto,
    /// `provision`, `schedule` or `manual`.
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
    failed_by_severity: SeverityDto,
    blocked: bool,
    block_reasons: Vec<String>,
    released_by: Option<String>,
    released_at_ms: Option<i64>,
    failure_reason: Option<String>,
}

/// Failed rules by severity.
#[derive(Serialize, ToSchema)]
struct SeverityDto {
    critical: u32,
    high: u32,
    medium: u32,
    low: u32,
}

fn scan_dto(app: &App, s: ScanRecord) -> ScanDto {
    let hostname = app
        .store
        .agent(&s.agent_id)
        .ok()
        .flatten()
        .map(|a| a.hostname);
    ScanDto {
        hostname,
        failed_by_severity: SeverityDto {
            critical: s.failed_by_severity[0],
            high: s.failed_by_severity[1],
            medium: s.failed_by_severity[2],
            low: s.failed_by_severity[3],
        },
        id: s.id,
        agent_id: s.agent_id,
        project: s.project,
        status: s.status.into(),
        trigger: s.trigger,
        profile: s.profile,
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
struct ScanQuery {
    /// Only scans in this state.
    #[param(value_type = Option<ScanStatusDto>)]
    status: Option<String>,
    /// Only scans of this Terraform project.
    project: Option<String>,
    /// Only scans of this agent.
    agent_id: Option<String>,
    /// Page number, from 0.
    #[serde(default)]
    page: usize,
    /// Scans per page, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    per_page: Option<usize>,
}

/// One page of scans, newest first.
#[derive(Serialize, ToSchema)]
struct ScanPage {
    scans: Vec<ScanDto>,
    total: usize,
    page: usize,
    per_page: usize,
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
/// Newest first, filtered and paginated. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans",
    tag = "scans",
    params(ScanQuery),
    responses(
        (status = 200, description = "One page of scans", body = ScanPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_scans(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<ScanPage> {
    c.require(Role::Provisioner)?;
    let q: ScanQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
    let filter = ScanFilter {
        status: q.status.as_deref().map(parse_status).transpose()?,
        project: q.project,
        agent_id: q.agent_id,
    };
    let (scans, total) = app
        .store
        .scans(&filter, q.page.saturating_mul(per_page), per_page)
        .map_err(AppError::from)?;
    Ok(Json(ScanPage {
        scans: scans.into_iter().map(|s| scan_dto(&app, s)).collect(),
        total,
        page: q.page,
        per_page,
    }))
}

/// One rule's result, with the rule's metadata when the agent sent its catalog.
#[derive(Serialize, ToSchema)]
struct ResultDto {
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
struct ScanDetail {
    scan: ScanDto,
    results: Vec<ResultDto>,
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
async fn get_scan(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDetail> {
    c.require(Role::Provisioner)?;
    let s = app
        .store
        .scan(&id)
        .map_err(AppError::from)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("scan {id} not found")))?;
    let results = app.store.results(&id).map_err(AppError::from)?;
    let cat = app.catalog_for_scan(&s);
    let results = results
        .into_iter()
        .map(|r| {
            let meta = cat.as_ref().and_then(|c| c.rules.get(&r.rule_id));
            ResultDto {
                title: meta.map(|m| m.title.clone()),
                section: meta.map(|m| m.section.clone()),
                severity: meta.map(|m| m.severity.clone()),
                remediation: meta.map(|m| m.remediation.clone()),
                id: r.rule_id,
                status: r.status,
                evidence: r.evidence,
            }
        })
        .collect();
    Ok(Json(ScanDetail {
        scan: scan_dto(&app, s),
        results,
    }))
}

/// Exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ManualScan {
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
async fn manual_scan(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> Result<(StatusCode, Json<Vec<ScanDto>>), ApiError> {
    c.require(Role::Provisioner)?;
    let r: ManualScan = body(&raw)?;
    let agents: Vec<String> = match (r.agent_id, r.project) {
        (Some(a), None) => vec![app.find_agent(&a)?.id],
        (None, Some(p)) => app
            .store
            .agents()
            .map_err(AppError::from)?
            .into_iter()
            .filter(|a| a.project.as_ref() == Some(&p) && !a.revoked)
            .map(|a| a.id)
            .collect(),
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give exactly one of agent_id or project".into(),
            ))
        }
    };
    let mut out = Vec::new();
    for a in agents {
        if let Some(s) = app.create_scan(&a, "manual", &c.name)? {
            out.push(scan_dto(&app, s));
        }
    }
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
async fn release(
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
async fn cancel(
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
struct GateDto {
    agent_id: String,
    allowed: bool,
    /// `allowed`, `released`, `exempt`, `pending`, `blocked` or `failed`.
    state: &'static str,
    reasons: Vec<String>,
    scan_id: Option<String>,
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
    ),
    security(("bearer" = []))
)]
async fn handover(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<GateDto> {
    c.require(Role::Provisioner)?;
    let g = app.handover(&id)?;
    Ok(Json(GateDto {
        agent_id: g.agent_id,
        allowed: g.allowed,
        state: g.state,
        reasons: g.reasons,
        scan_id: g.scan_id,
    }))
}

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
async fn get_settings(State(app): State<Arc<App>>, c: Caller) -> ApiResult<SettingsDto> {
    c.require(Role::Admin)?;
    Ok(Json(SettingsRecord::from(&app.settings()).into()))
}

/// Change the settings
///
/// Audited with the old and new values; connected agents get the new settings.
/// Needs the admin role.
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
async fn put_settings(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<SettingsDto> {
    c.require(Role::Admin)?;
    let r = SettingsRecord::from(body::<SettingsDto>(&raw)?);
    let s = Settings::try_from(&r).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let s = app.update_settings(s, &c.name)?;
    Ok(Json(SettingsRecord::from(&s).into()))
}

/// An enrolled agent.
#[derive(Serialize, ToSchema)]
struct AgentDto {
    id: String,
    hostname: String,
    ip_addresses: Vec<String>,
    provider: String,
    instance_id: String,
    os: String,
    project: Option<String>,
    enrolled_at_ms: i64,
    last_seen_ms: i64,
    cert_not_after_ms: i64,
    revoked: bool,
    connected: bool,
}

fn agent_dto(a: AgentRecord, connected: bool) -> AgentDto {
    AgentDto {
        id: a.id,
        hostname: a.hostname,
        ip_addresses: a.ip_addresses,
        provider: a.provider,
        instance_id: a.instance_id,
        os: a.os,
        project: a.project,
        enrolled_at_ms: a.enrolled_at_ms,
        last_seen_ms: a.last_seen_ms,
        cert_not_after_ms: a.cert_not_after_ms,
        revoked: a.revoked,
        connected,
    }
}

/// List agents
///
/// Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    responses((status = 200, description = "Every enrolled agent", body = Vec<AgentDto>)),
    security(("bearer" = []))
)]
async fn list_agents(State(app): State<Arc<App>>, c: Caller) -> ApiResult<Vec<AgentDto>> {
    c.require(Role::Admin)?;
    let connected = app.connected();
    Ok(Json(
        app.store
            .agents()
            .map_err(AppError::from)?
            .into_iter()
            .map(|a| {
                let on = connected.contains(&a.id);
                agent_dto(a, on)
            })
            .collect(),
    ))
}

/// Revoke an agent
///
/// Its certificate is refused from now on and its connection dropped. Revoking a
/// revoked agent changes nothing. Needs the admin role.
#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/revoke",
    tag = "agents",
    params(("id" = String, Path, description = "Agent ID", min_length = 1)),
    responses(
        (status = 200, description = "The agent, revoked", body = AgentDto),
        (status = 404, description = "No agent has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn revoke_agent(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<AgentDto> {
    c.require(Role::Admin)?;
    Ok(Json(agent_dto(app.revoke_agent(&id, &c.name)?, false)))
}

/// The collector's CA, which agents pin.
#[derive(Serialize, ToSchema)]
struct CaDto {
    /// SHA-256 of the certificate (DER), hex.
    fingerprint: String,
    certificate_pem: String,
}

/// The CA certificate
///
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/ca",
    tag = "enrollment",
    responses((status = 200, description = "The CA certificate and its fingerprint", body = CaDto)),
    security(("bearer" = []))
)]
async fn ca(State(app): State<Arc<App>>, c: Caller) -> ApiResult<CaDto> {
    c.require(Role::Provisioner)?;
    Ok(Json(CaDto {
        fingerprint: app.ca.fingerprint(),
        certificate_pem: app.ca.cert_pem().to_string(),
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Page number, from 0.
    #[serde(default)]
    page: usize,
    /// Entries per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<usize>,
    /// Only entries of this action, e.g. `scan.release`.
    action: Option<String>,
    /// Only entries of this actor.
    actor: Option<String>,
}

/// One entry of the append-only, hash-chained audit log.
#[derive(Serialize, ToSchema)]
struct AuditEntryDto {
    /// Position in the log, from 1.
    seq: u64,
    at_ms: i64,
    /// A user name, `agent:<id>`, `cli` or `system`.
    actor: String,
    /// What happened, e.g. `scan.release`, `user.revoke`, `enrollment.refused`.
    action: String,
    /// What it happened to (scan, agent, token ID, user name), if anything.
    target: Option<String>,
    detail: String,
    /// SHA-256 (hex) of the entry before.
    prev_hash: String,
    /// SHA-256 (hex) of this entry, `prev_hash` included.
    hash: String,
}

impl From<AuditRecord> for AuditEntryDto {
    fn from(e: AuditRecord) -> Self {
        AuditEntryDto {
            seq: e.seq,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// One page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
struct AuditPage {
    entries: Vec<AuditEntryDto>,
    /// Entries matching the filters.
    total: usize,
}

/// The audit log
///
/// Newest first, filtered and paginated. Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of entries", body = AuditPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn audit(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<AuditPage> {
    c.require(Role::Admin)?;
    let q: AuditQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    let (all, _) = app.store.audit(0, usize::MAX).map_err(AppError::from)?;
    let matching: Vec<_> = all
        .into_iter()
        .filter(|e| {
            q.action.as_ref().is_none_or(|a| &e.action == a)
                && q.actor.as_ref().is_none_or(|a| &e.actor == a)
        })
        .collect();
    let total = matching.len();
    Ok(Json(AuditPage {
        entries: matching
            .into_iter()
            .skip(q.page.saturating_mul(per_page))
            .take(per_page)
            .map(AuditEntryDto::from)
            .collect(),
        total,
    }))
}

// ---- reports and overview ----

/// Renders one scan's report with `render`; the body, its content type and the
/// attachment's file name.
fn scan_report(
    app: &App,
    id: &str,
    ext: &str,
    content_type: &'static str,
    render: impl FnOnce(&crate::report::ReportInput) -> String,
) -> Result<Response, ApiError> {
    let s = app
        .store
        .scan(id)
        .map_err(AppError::from)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("scan {id} not found")))?;
    let agent = app.store.agent(&s.agent_id).map_err(AppError::from)?;
    let results = app.store.results(id).map_err(AppError::from)?;
    let cat = app.catalog_for_scan(&s);
    let input = crate::report::ReportInput {
        scan: &s,
        agent: agent.as_ref(),
        catalog: cat.as_deref(),
        results: &results,
    };
    let body = render(&input);
    let name = crate::report::file_name(&crate::report::host_label(&s, agent.as_ref()), &s.id, ext);
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::HeaderName::from_static("x-content-type-options"),
                "nosniff".to_string(),
            ),
        ],
        body,
    )
        .into_response())
}

/// The scan's HTML report
///
/// Self-contained, as an attachment. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}/report.html",
    tag = "reports",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The report", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn report_html(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Provisioner)?;
    let now = crate::app::now_ms();
    let mut resp = scan_report(&app, &id, "html", "text/html; charset=utf-8", |i| {
        crate::report::html(i, now)
    })?;
    // The report's own inline style and script only; nothing is ever loaded.
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:",
        ),
    );
    Ok(resp)
}

/// The scan's JSON report
///
/// Full structured data with every rule's details, as an attachment. Needs the
/// provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/scans/{id}/report.json",
    tag = "reports",
    params(("id" = String, Path, description = "Scan ID", min_length = 1)),
    responses(
        (status = 200, description = "The report", body = Object, content_type = "application/json"),
        (status = 404, description = "No scan has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn report_json(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Provisioner)?;
    let now = crate::app::now_ms();
    scan_report(&app, &id, "json", "application/json", |i| {
        serde_json::to_string_pretty(&crate::report::json(i, now)).unwrap_or_default()
    })
}

/// Raw bytes, as the schema of a binary download.
struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .content_media_type("application/octet-stream")
            .into()
    }
}

impl ToSchema for Binary {}

/// Download an agent binary or package
///
/// Serves the agent's binaries and packages to VMs at first boot (no token: they have
/// none yet, and nothing here is secret), with `NAME.sha256` computed from the file.
#[utoipa::path(
    get,
    path = "/download/{name}",
    tag = "operations",
    params(("name" = String, Path, description = "File name, or the file name and `.sha256`",
        pattern = r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}$")),
    responses(
        (status = 200, description = "The file, or with `.sha256` its SHA-256 as `sha256sum` prints it",
            content(
                (Binary = "application/octet-stream"),
                (String = "text/plain; charset=utf-8"),
            )),
        (status = 400, description = "Not a download name", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
    ),
    security(())
)]
async fn download(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if !valid {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{name}` is not a download name"),
        ));
    }
    let dir = app.config.download_dir();
    let (file, sum) = match name.strip_suffix(".sha256") {
        Some(base) => (base.to_string(), true),
        None => (name.clone(), false),
    };
    let path = dir.join(&file);
    let bytes = tokio::fs::read(&path).await.map_err(|_| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("{name} is not available for download"),
        )
    })?;
    if sum {
        let body = format!("{}  {file}\n", crate::ca::fingerprint(&bytes));
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
