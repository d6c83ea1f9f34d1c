//! The REST API under `/api/v1`: every request carries a bearer token; no token is
//! 401, the wrong role is 403 (SPEC §4 roles). DTOs here are the API's own types.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::app::{App, AppError, SettingsRecord};
use crate::auth::Role;
use crate::policy::Settings;
use crate::store::{AgentRecord, ScanFilter, ScanRecord, ScanStatus};

/// An API error: a status code and a message in words.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, format!("{m} not found")),
            AppError::Invalid(m) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, m),
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
            .ok_or_else(|| unauth("unknown token"))?;
        Ok(Caller { name, role })
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/download/{name}", get(download))
        .route("/metrics", get(metrics))
        .route("/ca.pem", get(ca_pem))
        .route("/api/v1/enrollment-tokens", post(create_token))
        .route("/api/v1/scans", get(list_scans).post(manual_scan))
        .route("/api/v1/scans/{id}", get(get_scan))
        .route("/api/v1/scans/{id}/report.html", get(report_html))
        .route("/api/v1/scans/{id}/report.json", get(report_json))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/scans/{id}/release", post(release))
        .route("/api/v1/scans/{id}/cancel", post(cancel))
        .route("/api/v1/handover/{id}", get(handover))
        .route("/api/v1/settings", get(get_settings).put(put_settings))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/api/v1/ca", get(ca))
        .route("/api/v1/users", post(create_user))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/webhook/deliveries", get(webhook_deliveries))
        .with_state(app)
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    project: Option<String>,
    #[serde(default = "default_ttl")]
    ttl_seconds: i64,
    #[serde(default = "default_uses")]
    max_uses: u32,
}
fn default_ttl() -> i64 {
    86400
}
fn default_uses() -> u32 {
    1
}

#[derive(Serialize)]
struct TokenResponse {
    id: String,
    token: String,
    expires_at_ms: i64,
    ca_fingerprint: String,
}

async fn create_token(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<TokenResponse> {
    c.require(Role::Provisioner)?;
    let r: TokenRequest = body(&raw)?;
    let (id, token, expires_at_ms) =
        app.create_token(r.project.as_deref(), r.ttl_seconds, r.max_uses, &c.name)?;
    Ok(Json(TokenResponse {
        id,
        token,
        expires_at_ms,
        ca_fingerprint: app.ca.fingerprint(),
    }))
}

/// A scan as the API shows it.
#[derive(Serialize)]
pub struct ScanDto {
    id: String,
    agent_id: String,
    hostname: Option<String>,
    project: Option<String>,
    status: ScanStatus,
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

#[derive(Serialize)]
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
        status: s.status,
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

#[derive(Deserialize)]
struct ScanQuery {
    status: Option<String>,
    project: Option<String>,
    agent_id: Option<String>,
    #[serde(default)]
    page: usize,
    per_page: Option<usize>,
}

#[derive(Serialize)]
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

async fn list_scans(
    State(app): State<Arc<App>>,
    c: Caller,
    Query(q): Query<ScanQuery>,
) -> ApiResult<ScanPage> {
    c.require(Role::Provisioner)?;
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

#[derive(Serialize)]
struct ResultDto {
    id: String,
    status: String,
    title: Option<String>,
    section: Option<String>,
    severity: Option<String>,
    remediation: Option<String>,
    evidence: Vec<String>,
}

#[derive(Serialize)]
struct ScanDetail {
    scan: ScanDto,
    results: Vec<ResultDto>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualScan {
    agent_id: Option<String>,
    project: Option<String>,
}

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

async fn release(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDto> {
    c.require(Role::Admin)?;
    let s = app.release(&id, &c.name)?;
    Ok(Json(scan_dto(&app, s)))
}

async fn cancel(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<ScanDto> {
    c.require(Role::Admin)?;
    let s = app.cancel_scan(&id, &c.name)?;
    Ok(Json(scan_dto(&app, s)))
}

#[derive(Serialize)]
struct GateDto {
    agent_id: String,
    allowed: bool,
    state: &'static str,
    reasons: Vec<String>,
    scan_id: Option<String>,
}

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

async fn get_settings(State(app): State<Arc<App>>, c: Caller) -> ApiResult<SettingsRecord> {
    c.require(Role::Admin)?;
    Ok(Json(SettingsRecord::from(&app.settings())))
}

async fn put_settings(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<SettingsRecord> {
    c.require(Role::Admin)?;
    let r: SettingsRecord = body(&raw)?;
    let s = Settings::try_from(&r).map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let s = app.update_settings(s, &c.name)?;
    Ok(Json(SettingsRecord::from(&s)))
}

#[derive(Serialize)]
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

async fn revoke_agent(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<AgentDto> {
    c.require(Role::Admin)?;
    Ok(Json(agent_dto(app.revoke_agent(&id, &c.name)?, false)))
}

#[derive(Serialize)]
struct CaDto {
    fingerprint: String,
    certificate_pem: String,
}

async fn ca(State(app): State<Arc<App>>, c: Caller) -> ApiResult<CaDto> {
    c.require(Role::Provisioner)?;
    Ok(Json(CaDto {
        fingerprint: app.ca.fingerprint(),
        certificate_pem: app.ca.cert_pem().to_string(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    name: String,
    role: String,
}

#[derive(Serialize)]
struct UserResponse {
    name: String,
    role: String,
    /// Shown once; only its hash is stored.
    token: String,
}

async fn create_user(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> Result<(StatusCode, Json<UserResponse>), ApiError> {
    c.require(Role::Admin)?;
    let r: UserRequest = body(&raw)?;
    let role = Role::parse(&r.role).ok_or_else(|| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "role `{}` is not viewer, user, provisioner or admin",
                r.role
            ),
        )
    })?;
    let token = app.add_user(&r.name, role, &c.name)?;
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            name: r.name,
            role: role.as_str().into(),
            token,
        }),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    page: usize,
    per_page: Option<usize>,
    action: Option<String>,
    actor: Option<String>,
}

#[derive(Serialize)]
struct AuditPage {
    entries: Vec<crate::store::AuditRecord>,
    total: usize,
}

async fn audit(
    State(app): State<Arc<App>>,
    c: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AuditPage> {
    c.require(Role::Admin)?;
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

#[derive(Serialize)]
struct RecentScanDto {
    id: String,
    agent_id: String,
    host: String,
    hostname: Option<String>,
    ip_addresses: Vec<String>,
    provider: Option<String>,
    project: Option<String>,
    score: Option<f64>,
    score_band: Option<crate::report::Band>,
    status: ScanStatus,
    critical_failures: u32,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
    blocked: bool,
    released: bool,
    can_release: bool,
}

#[derive(Serialize)]
struct OverviewDto {
    /// Mean score of each VM's latest completed scan; null when none.
    average_score: Option<f64>,
    average_score_band: Option<crate::report::Band>,
    /// VMs with at least one completed scan.
    vms_scanned: usize,
    /// VMs whose latest scan is blocked and not released.
    vms_blocked: usize,
    /// Percentage of completed scans meeting the minimum score; null when none.
    pass_rate: Option<f64>,
    min_score: f64,
    completed_scans: usize,
    recent_scans: Vec<RecentScanDto>,
}

async fn overview(State(app): State<Arc<App>>, c: Caller) -> ApiResult<OverviewDto> {
    c.require(Role::Provisioner)?;
    let (all, _) = app
        .store
        .scans(&ScanFilter::default(), 0, usize::MAX)
        .map_err(AppError::from)?;
    let min_score = app.settings().min_score;
    // Scans come newest first: the first seen per agent is its latest.
    let mut latest: HashMap<&str, &ScanRecord> = HashMap::new();
    let mut latest_completed: HashMap<&str, f64> = HashMap::new();
    let (mut completed, mut meeting) = (0usize, 0usize);
    for s in &all {
        latest.entry(s.agent_id.as_str()).or_insert(s);
        if s.status == ScanStatus::Completed {
            completed += 1;
            let score = s.score.unwrap_or(0.0);
            if score >= min_score {
                meeting += 1;
            }
            latest_completed.entry(s.agent_id.as_str()).or_insert(score);
        }
    }
    let average_score = (!latest_completed.is_empty())
        .then(|| latest_completed.values().sum::<f64>() / latest_completed.len() as f64)
        .map(|v| (v * 10.0).round() / 10.0);
    let vms_blocked = latest
        .values()
        .filter(|s| s.blocked && s.released_by.is_none())
        .count();
    let mut agents: HashMap<String, AgentRecord> = HashMap::new();
    let recent_scans = all
        .iter()
        .take(20)
        .map(|s| {
            if !agents.contains_key(&s.agent_id) {
                if let Ok(Some(a)) = app.store.agent(&s.agent_id) {
                    agents.insert(s.agent_id.clone(), a);
                }
            }
            let a = agents.get(&s.agent_id);
            let released = s.released_by.is_some();
            RecentScanDto {
                id: s.id.clone(),
                agent_id: s.agent_id.clone(),
                host: crate::report::host_label(s, a),
                hostname: a.map(|a| a.hostname.clone()),
                ip_addresses: a.map(|a| a.ip_addresses.clone()).unwrap_or_default(),
                provider: a.map(|a| a.provider.clone()),
                project: s.project.clone(),
                score: s.score,
                score_band: s.score.map(crate::report::Band::of),
                status: s.status,
                critical_failures: s.failed_by_severity[0],
                created_at_ms: s.created_at_ms,
                finished_at_ms: s.finished_at_ms,
                blocked: s.blocked,
                released,
                can_release: c.role >= Role::Admin && s.blocked && !released,
            }
        })
        .collect();
    Ok(Json(OverviewDto {
        average_score,
        average_score_band: average_score.map(crate::report::Band::of),
        vms_scanned: latest_completed.len(),
        vms_blocked,
        pass_rate: (completed > 0)
            .then(|| ((meeting as f64 / completed as f64) * 1000.0).round() / 10.0),
        min_score,
        completed_scans: completed,
        recent_scans,
    }))
}

/// Serves the agent's binaries and packages to VMs at first boot (no token: they have
/// none yet, and nothing here is secret), with `NAME.sha256` computed from the file.
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

/// The CA certificate for bootstrapping (no token: a VM checks its SHA-256 against
/// a pinned fingerprint, then trusts it for HTTPS to this port).
async fn ca_pem(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        app.ca.cert_pem().to_string(),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    page: usize,
    per_page: Option<usize>,
}

/// One webhook delivery attempt.
#[derive(Serialize)]
struct AttemptDto {
    delivery_id: String,
    scan_id: String,
    attempt: u32,
    at_ms: i64,
    /// The receiver's HTTP status, when it answered.
    http_status: Option<u16>,
    /// Why the attempt failed (connection, TLS, timeout, non-2xx), if it did.
    error: Option<String>,
    /// `delivered`, `retrying` (see `next_attempt_ms`) or `failed` (given up).
    outcome: &'static str,
    next_attempt_ms: Option<i64>,
}

#[derive(Serialize)]
struct AttemptPage {
    attempts: Vec<AttemptDto>,
    total: usize,
}

async fn webhook_deliveries(
    State(app): State<Arc<App>>,
    c: Caller,
    Query(q): Query<PageQuery>,
) -> ApiResult<AttemptPage> {
    c.require(Role::Admin)?;
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    let (page, total) = app
        .store
        .attempts(q.page.saturating_mul(per_page), per_page)
        .map_err(AppError::from)?;
    let attempts = page
        .into_iter()
        .map(|a| AttemptDto {
            outcome: match a.state {
                crate::store::DeliveryState::Delivered => "delivered",
                crate::store::DeliveryState::Pending => "retrying",
                crate::store::DeliveryState::Failed => "failed",
            },
            delivery_id: a.delivery_id,
            scan_id: a.scan_id,
            attempt: a.attempt,
            at_ms: a.at_ms,
            http_status: a.http_status,
            error: a.error,
            next_attempt_ms: a.next_attempt_ms,
        })
        .collect();
    Ok(Json(AttemptPage { attempts, total }))
}
