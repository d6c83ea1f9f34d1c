//! Agentless scans over SSH: the collector's public key, and the targets it scans
//! (register, list, show, change, remove). A target's scans are asked for like an
//! agent's (`POST /api/v1/scans` with its ID) and listed with every other scan.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{body, ApiError, ApiResult, Caller, ErrorBody};
use crate::app::{App, TargetSpec};
use crate::auth::Role;
use crate::store::AgentRecord;

/// The collector's SSH public key, for targets' `authorized_keys`.
#[derive(Serialize, ToSchema)]
pub(super) struct SshKeyDto {
    /// One `authorized_keys` line (`ssh-ed25519 … rampart-collector`).
    public_key: String,
    /// The key's SHA-256 fingerprint (`SHA256:…`).
    fingerprint: String,
}

/// The collector's SSH public key
///
/// Add it to the SSH user's `authorized_keys` on the targets. Needs the
/// provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/ssh",
    tag = "targets",
    responses(
        (status = 200, description = "The public key", body = SshKeyDto),
    ),
    security(("bearer" = []))
)]
pub(super) async fn ssh_key(State(app): State<Arc<App>>, c: Caller) -> ApiResult<SshKeyDto> {
    c.require(Role::Provisioner)?;
    let key = app.ssh_key().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the SSH key pair is not loaded yet".into(),
        )
    })?;
    Ok(Json(SshKeyDto {
        public_key: key.public_openssh().to_string(),
        fingerprint: key.fingerprint().to_string(),
    }))
}

/// A target as registered or changed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetRequest {
    /// Host name or IP address the collector connects to.
    #[schema(min_length = 1, max_length = 253)]
    host: String,
    /// SSH port (default 22).
    #[schema(minimum = 1, maximum = 65535)]
    port: Option<u16>,
    /// User to connect as; default: the settings' SSH user.
    user: Option<String>,
    /// The host key's SHA-256 fingerprint (`SHA256:…`), pinned; without one the
    /// first key seen is recorded (trust on first use) and any later change fails
    /// the scan.
    host_key: Option<String>,
    /// Terraform project (fixed at registration).
    project: Option<String>,
    /// Cloud provider (fixed at registration).
    provider: Option<String>,
    /// Instance ID, for the handover gate (fixed at registration).
    instance_id: Option<String>,
}

impl TargetRequest {
    fn spec(self) -> TargetSpec {
        TargetSpec {
            host: self.host,
            port: self.port,
            user: self.user,
            host_key: self.host_key,
            project: self.project,
            provider: self.provider,
            instance_id: self.instance_id,
        }
    }
}

/// A target scanned over SSH.
#[derive(Serialize, ToSchema)]
pub(super) struct TargetDto {
    id: String,
    host: String,
    port: u16,
    /// The user it connects as (none: the settings' SSH user).
    user: Option<String>,
    /// The host key fingerprint pinned or first seen; none until the first scan.
    host_key: Option<String>,
    /// Whether `host_key` was given (pinned) rather than first seen.
    host_key_pinned: bool,
    /// The host name the last scan found (the `host` until then).
    hostname: String,
    os: String,
    project: Option<String>,
    provider: String,
    instance_id: String,
    registered_at_ms: i64,
    /// When a scan last reached it; 0: never.
    last_scanned_ms: i64,
}

fn target_dto(a: AgentRecord) -> Option<TargetDto> {
    let t = a.ssh?;
    Some(TargetDto {
        id: a.id,
        host: t.host,
        port: t.port,
        user: t.user,
        host_key: t.host_key,
        host_key_pinned: t.host_key_pinned,
        hostname: a.hostname,
        os: a.os,
        project: a.project,
        provider: a.provider,
        instance_id: a.instance_id,
        registered_at_ms: a.enrolled_at_ms,
        last_scanned_ms: a.last_seen_ms,
    })
}

fn dto(a: AgentRecord) -> Result<TargetDto, ApiError> {
    target_dto(a).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "target not found".into()))
}

/// A registered target, and its first scan when scan-on-provision is on.
#[derive(Serialize, ToSchema)]
pub(super) struct RegisteredDto {
    target: TargetDto,
    /// The provision scan's ID.
    scan_id: Option<String>,
}

/// Register a target
///
/// Audited. With scan-on-provision on, its first scan starts at once. Needs the
/// provisioner role.
#[utoipa::path(
    post,
    path = "/api/v1/targets",
    tag = "targets",
    request_body = TargetRequest,
    responses(
        (status = 200, description = "The target", body = RegisteredDto),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn register(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<RegisteredDto> {
    c.require(Role::Provisioner)?;
    let r: TargetRequest = body(&raw)?;
    let (t, scan) = app.register_target(&r.spec(), &c.name)?;
    Ok(Json(RegisteredDto {
        target: dto(t)?,
        scan_id: scan.map(|s| s.id),
    }))
}

/// Every target, in ID order.
#[derive(Serialize, ToSchema)]
pub(super) struct TargetList {
    targets: Vec<TargetDto>,
}

/// List targets
///
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/targets",
    tag = "targets",
    responses((status = 200, description = "Every target", body = TargetList)),
    security(("bearer" = []))
)]
pub(super) async fn list(State(app): State<Arc<App>>, c: Caller) -> ApiResult<TargetList> {
    c.require(Role::Provisioner)?;
    Ok(Json(TargetList {
        targets: app.targets()?.into_iter().filter_map(target_dto).collect(),
    }))
}

/// Show a target
///
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/targets/{id}",
    tag = "targets",
    params(("id" = String, Path, description = "Target ID", min_length = 1)),
    responses(
        (status = 200, description = "The target", body = TargetDto),
        (status = 404, description = "No target has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_target(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<TargetDto> {
    c.require(Role::Provisioner)?;
    Ok(Json(dto(app.target(&id)?)?))
}

/// Change a target
///
/// Host, port, user and host key (a key given is pinned; none clears the pin, and
/// the next scan trusts the key it sees first). Project, provider and instance ID
/// are fixed at registration and must be left out. Audited. Needs the provisioner
/// role.
#[utoipa::path(
    put,
    path = "/api/v1/targets/{id}",
    tag = "targets",
    params(("id" = String, Path, description = "Target ID", min_length = 1)),
    request_body = TargetRequest,
    responses(
        (status = 200, description = "The target, changed", body = TargetDto),
        (status = 404, description = "No target has that ID", body = ErrorBody),
        (status = 422, description = "Invalid body", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> ApiResult<TargetDto> {
    c.require(Role::Provisioner)?;
    let r: TargetRequest = body(&raw)?;
    if r.project.is_some() || r.provider.is_some() || r.instance_id.is_some() {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "project, provider and instance_id are fixed at registration".into(),
        ));
    }
    Ok(Json(dto(app.update_target(&id, &r.spec(), &c.name)?)?))
}

/// Remove a target
///
/// It is never scanned again; its scans stay. Audited. Needs the provisioner role.
#[utoipa::path(
    delete,
    path = "/api/v1/targets/{id}",
    tag = "targets",
    params(("id" = String, Path, description = "Target ID", min_length = 1)),
    responses(
        (status = 200, description = "The target, removed", body = TargetDto),
        (status = 404, description = "No target has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn remove(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<TargetDto> {
    c.require(Role::Provisioner)?;
    Ok(Json(dto(app.remove_target(&id, &c.name)?)?))
}
