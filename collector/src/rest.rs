//! The REST API under `/api/v1`: every request carries a bearer token; no token is
//! 401, the wrong role is 403 (SPEC §4 roles). DTOs are the API's own types, and what
//! the OpenAPI document (`openapi`) describes: each handler carries its
//! `#[utoipa::path]`, and a unit test fails for a route without one.
//!
//! Here: errors, the caller, the router, reports, health, metrics and downloads; the
//! other endpoints live in the submodules named after them. Every request is bounded
//! in time (`rest_request_timeout_secs`, then 408); `/metrics` asks for a token when
//! the listener is on the network (`metrics_access`).

mod accounts;
mod agents;
mod audit;
mod backup;
mod openapi;
mod overview;
mod reports;
mod scans;
mod settings;
mod targets;
mod webhook;

use reports::{report_arf, report_html, report_json};
pub(crate) use reports::{scan_report, ReportKind};

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio_stream::StreamExt;
use utoipa::ToSchema;

use crate::app::{App, AppError};
use crate::auth::Role;
use crate::limits::echo;
use agents::{ca, list_agents, revoke_agent};
use audit::audit;
use scans::{cancel, get_scan, handover, list_scans, manual_scan, release};
use settings::{get_settings, put_settings};

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
            AppError::Rejected(e) => ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            AppError::Conflict(m) => ApiError(StatusCode::CONFLICT, m),
            AppError::Refused(m) => ApiError(StatusCode::FORBIDDEN, m),
            AppError::Limited(m) => ApiError(StatusCode::TOO_MANY_REQUESTS, m),
            AppError::Ca(e) => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            AppError::Unavailable(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, m),
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

/// What the REST port's handlers need beyond the app: the network's state and
/// bounds, which live outside the domain.
pub struct RestContext {
    /// The server certificate's state, for its expiry in `/metrics`.
    pub tls: Arc<crate::tls::TlsState>,
    /// Connections refused by the caps of either port.
    pub conns: Arc<crate::net::ConnStats>,
    /// `/download/` files, slots and checksums.
    pub downloads: crate::downloads::Downloads,
    /// `/metrics` asks for a token of `metrics_role` (see `Config::metrics_access`).
    pub metrics_need_token: bool,
    pub metrics_role: Role,
    /// Time a request has to send its body and get its answer.
    pub request_timeout: std::time::Duration,
}

/// Bounds the time a request takes until its answer starts (a slow body included):
/// then 408 with the error body.
async fn request_timeout(
    ctx: Arc<RestContext>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(ctx.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request was not complete within {} s",
                ctx.request_timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The REST port: the API and, beside it, the console (`crate::console`), both bounded
/// in body size and time and run off the async workers.
pub fn router(app: Arc<App>, ctx: Arc<RestContext>) -> Router {
    Router::new()
        .merge(crate::console::router())
        .merge(api())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            off_the_workers,
        ))
        .layer(axum::middleware::from_fn({
            let ctx = ctx.clone();
            move |req, next| request_timeout(ctx.clone(), req, next)
        }))
        // Outermost: what the timeout answers is timed too.
        .layer(axum::middleware::from_fn_with_state(app.clone(), timed))
        .layer(axum::Extension(ctx))
        .with_state(app)
}

/// The API's routes; every error of theirs is an [`ErrorBody`].
fn api() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/download/{name}", get(download))
        .route("/metrics", get(metrics))
        .route("/ca.pem", get(ca_pem))
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
        .route("/api/v1/scans/{id}/report.arf.xml", get(report_arf))
        .route("/api/v1/overview", get(overview::overview))
        .route("/api/v1/scans/{id}/release", post(release))
        .route("/api/v1/scans/{id}/cancel", post(cancel))
        .route("/api/v1/handover/{id}", get(handover))
        .route("/api/v1/settings", get(get_settings).put(put_settings))
        .route("/api/v1/agents", get(list_agents))
        .route("/api/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/api/v1/ca", get(ca))
        .route("/api/v1/ssh", get(targets::ssh_key))
        .route(
            "/api/v1/targets",
            get(targets::list).post(targets::register),
        )
        .route(
            "/api/v1/targets/{id}",
            get(targets::get_target)
                .put(targets::update)
                .delete(targets::remove),
        )
        .route(
            "/api/v1/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route("/api/v1/users/{name}", delete(accounts::revoke_user))
        .route(
            "/api/v1/users/{name}/password",
            axum::routing::put(accounts::set_password),
        )
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/admin/backup", get(backup::backup))
        .route("/api/v1/webhook/deliveries", get(webhook::deliveries))
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
}

/// The largest request body accepted, and how long a client may take to send it.
const BODY_BYTES: usize = 2 * 1024 * 1024;
const BODY_SECS: u64 = 30;

/// Handlers read and write the store, which blocks (sled, fsync). The request body
/// is read here first, bounded in size and time, on the async workers; then the
/// handler runs where blocking is allowed (`block_in_place`), so that no store work
/// holds up the workers that every other connection shares, and no slow client
/// holds a thread while it trickles its body.
async fn off_the_workers(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(
        std::time::Duration::from_secs(BODY_SECS),
        axum::body::to_bytes(body, BODY_BYTES),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            app.metrics.refused(crate::metrics::Limit::RestBodySize);
            return ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {BODY_BYTES} bytes, or could not be read"),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request body did not arrive within {BODY_SECS} s"),
            )
            .into_response()
        }
    };
    let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    let handle = Handle::current();
    if handle.runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(next.run(req)))
    } else {
        next.run(req).await
    }
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
/// The collector's counters, gauges and histograms in the OpenMetrics text format
/// (which Prometheus reads), each with its help text. No token while
/// the REST listener is on loopback (the default `metrics_access = "auto"`); on a
/// network address a bearer token of `metrics_role` (default admin) is needed.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Counters, gauges and histograms (OpenMetrics text)", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, description = "A token is needed here and none (or an unknown one) was given", body = ErrorBody),
        (status = 403, description = "The token's role is below `metrics_role`", body = ErrorBody),
    ),
    security(())
)]
async fn metrics(
    State(app): State<Arc<App>>,
    axum::Extension(ctx): axum::Extension<Arc<RestContext>>,
    caller: Result<Caller, ApiError>,
) -> Result<Response, ApiError> {
    if ctx.metrics_need_token {
        caller?.require(ctx.metrics_role)?;
    }
    let body = app
        .metrics
        .render(&app.scrape(ctx.tls.server_cert().info().not_after_unix));
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// Times every request by its route template for `/metrics`, in a span that names
/// the scan or agent the path is about (`scan_id`, `agent_id`) for the log lines
/// written while it is answered.
async fn timed(
    State(app): State<Arc<App>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let (mut parts, body) = req.into_parts();
    let id = axum::extract::RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|p| p.iter().find(|(k, _)| *k == "id").map(|(_, v)| echo(v)));
    let req = axum::extract::Request::from_parts(parts, body);
    let r = route.as_deref().unwrap_or("unmatched");
    let span = tracing::info_span!(
        "http_request",
        method = %method,
        route = r,
        scan_id = tracing::field::Empty,
        agent_id = tracing::field::Empty
    );
    if let Some(id) = id {
        if r.contains("/scans/{id}") {
            span.record("scan_id", id.as_str());
        } else if ["/agents/{id}", "/handover/{id}", "/vms/{id}"]
            .iter()
            .any(|p| r.contains(p))
        {
            span.record("agent_id", id.as_str());
        }
    }
    let t = std::time::Instant::now();
    let resp = next.run(req).instrument(span).await;
    app.metrics.http_request(
        route.as_deref(),
        method.as_str(),
        resp.status().as_u16(),
        t.elapsed(),
    );
    resp
}

/// Raw bytes, as the schema of a binary download.
pub(crate) struct Binary;

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
/// Files are streamed; at most `max_concurrent_downloads` are served at once.
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
        (status = 503, description = "Every download slot is taken (`max_concurrent_downloads`); see `Retry-After`", body = ErrorBody),
    ),
    security(())
)]
async fn download(
    axum::Extension(ctx): axum::Extension<Arc<RestContext>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    use crate::downloads::DownloadError;
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
    let refused = |e: DownloadError| match e {
        DownloadError::NotFound(_) => {
            ApiError(StatusCode::NOT_FOUND, e.to_string()).into_response()
        }
        DownloadError::Busy(_) => (
            [(header::RETRY_AFTER, "5")],
            ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        )
            .into_response(),
    };
    if let Some(file) = name.strip_suffix(".sha256") {
        let sum = match ctx.downloads.sha256(file).await {
            Ok(s) => s,
            Err(DownloadError::NotFound(_)) => {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("{name} is not available for download"),
                ))
            }
            Err(e) => return Ok(refused(e)),
        };
        let body = format!("{sum}  {file}\n");
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response());
    }
    let opened = match ctx.downloads.open(&name).await {
        Ok(o) => o,
        Err(e) => return Ok(refused(e)),
    };
    let slot = opened.slot;
    // The slot goes with the body: freed when the last chunk is sent or the client
    // goes away.
    let chunks =
        tokio_util::io::ReaderStream::with_capacity(opened.file, 64 * 1024).map(move |chunk| {
            let _ = &slot;
            chunk
        });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, opened.len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

/// The CA certificate, for bootstrapping
///
/// No token: a new VM fetches it once, checks its SHA-256 against the fingerprint it
/// was given, then trusts it for HTTPS to this port and for enrollment.
#[utoipa::path(
    get,
    path = "/ca.pem",
    tag = "enrollment",
    responses((status = 200, description = "The collector's CA certificate (PEM)", body = String, content_type = "application/x-pem-file")),
    security(())
)]
async fn ca_pem(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        app.ca.cert_pem().to_string(),
    )
        .into_response()
}
