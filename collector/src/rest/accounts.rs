//! Users and enrollment tokens: create, list, revoke. Secrets are shown once, at
//! creation; listings never show a secret or its hash.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{body, ApiError, ApiResult, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;
use crate::store::{TokenRecord, UserRecord};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenRequest {
    /// Terraform project the enrolled agents belong to.
    project: Option<String>,
    /// Lifetime in seconds.
    #[serde(default = "default_ttl")]
    #[schema(default = 86400, minimum = 1, maximum = 31622400)]
    ttl_seconds: i64,
    /// How many agents may enroll with it.
    #[serde(default = "default_uses")]
    #[schema(default = 1, minimum = 1, maximum = 100000)]
    max_uses: u32,
}
fn default_ttl() -> i64 {
    86400
}
fn default_uses() -> u32 {
    1
}

#[derive(Serialize, ToSchema)]
pub(super) struct TokenResponse {
    id: String,
    /// The secret, shown once; only its hash is stored.
    token: String,
    expires_at_ms: i64,
    /// SHA-256 of the collector's CA certificate, for the agent to pin.
    ca_fingerprint: String,
}

/// Create an enrollment token
///
/// Needs the provisioner role.
#[utoipa::path(
    post,
    path = "/api/v1/enrollment-tokens",
    tag = "enrollment",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "The new token, with its secret", body = TokenResponse),
        (status = 403, description = "The project is exempt from scanning and the caller is not an admin", body = ErrorBody),
        (status = 422, description = "Invalid body, project, lifetime or number of uses", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_token(
    State(app): State<Arc<App>>,
    c: Caller,
    raw: axum::body::Bytes,
) -> ApiResult<TokenResponse> {
    c.require(Role::Provisioner)?;
    let r: TokenRequest = body(&raw)?;
    let (id, token, expires_at_ms) = app.create_token(
        r.project.as_deref(),
        r.ttl_seconds,
        r.max_uses,
        &c.name,
        c.role,
    )?;
    Ok(Json(TokenResponse {
        id,
        token,
        expires_at_ms,
        ca_fingerprint: app.ca.fingerprint(),
    }))
}

/// An enrollment token as listings show it: never its secret, nor the secret's hash.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenDto {
    id: String,
    project: Option<String>,
    created_by: String,
    created_at_ms: i64,
    expires_at_ms: i64,
    /// Whether it has expired by now.
    expired: bool,
    max_uses: u32,
    /// Enrollments made with it so far.
    uses: u32,
    revoked: bool,
}

fn token_dto(t: TokenRecord, now: i64) -> TokenDto {
    TokenDto {
        expired: now >= t.expires_at_ms,
        id: t.id,
        project: t.project,
        created_by: t.created_by,
        created_at_ms: t.created_at_ms,
        expires_at_ms: t.expires_at_ms,
        max_uses: t.max_uses,
        uses: t.uses,
        revoked: t.revoked,
    }
}

/// List enrollment tokens
///
/// Newest first. Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/enrollment-tokens",
    tag = "enrollment",
    responses((status = 200, description = "Every enrollment token", body = Vec<TokenDto>)),
    security(("bearer" = []))
)]
pub(super) async fn list_tokens(
    State(app): State<Arc<App>>,
    c: Caller,
) -> ApiResult<Vec<TokenDto>> {
    c.require(Role::Provisioner)?;
    let now = app.clock.now_ms();
    Ok(Json(
        app.tokens()?
            .into_iter()
            .map(|t| token_dto(t, now))
            .collect(),
    ))
}

/// Revoke an enrollment token
///
/// No agent enrolls with it from now on; agents that already enrolled keep their
/// certificates. Revoking a revoked token changes nothing. Needs the admin role.
#[utoipa::path(
    delete,
    path = "/api/v1/enrollment-tokens/{id}",
    tag = "enrollment",
    params(("id" = String, Path, description = "Token ID", min_length = 1)),
    responses(
        (status = 200, description = "The token, revoked", body = TokenDto),
        (status = 404, description = "No token has that ID", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke_token(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<TokenDto> {
    c.require(Role::Admin)?;
    Ok(Json(token_dto(
        app.revoke_token(&id, &c.name)?,
        app.clock.now_ms(),
    )))
}

/// A role (SPEC §4), from least to most powerful.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // Only describes the strings the API takes and shows.
pub(super) enum RoleName {
    Viewer,
    User,
    Provisioner,
    Admin,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserRequest {
    /// 1-64 letters, digits, `-`, `_`, `.` or `@`; never reused.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
    #[schema(value_type = RoleName)]
    role: String,
    /// A console password (12-1024 bytes), stored as argon2id; none: the user has
    /// an API token only.
    #[schema(min_length = 12, max_length = 1024)]
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UserResponse {
    name: String,
    #[schema(value_type = RoleName)]
    role: String,
    /// Shown once; only its hash is stored.
    token: String,
}

/// Create a user
///
/// The user's API token is in the answer, and only there. Needs the admin role.
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = UserRequest,
    responses(
        (status = 201, description = "The new user, with its token", body = UserResponse),
        (status = 409, description = "A user of that name exists (or existed)", body = ErrorBody),
        (status = 422, description = "Invalid body, name, role or password", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_user(
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
    let token = app.add_user_with_password(&r.name, role, r.password.as_deref(), &c.name)?;
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            name: r.name,
            role: role.as_str().into(),
            token,
        }),
    ))
}

/// A user as listings show it: never the token, nor its hash.
#[derive(Serialize, ToSchema)]
pub(super) struct UserDto {
    name: String,
    #[schema(value_type = RoleName)]
    role: String,
    created_at_ms: i64,
    /// A revoked user's token is refused.
    revoked: bool,
    /// Whether the user can sign in to the console.
    has_password: bool,
}

fn user_dto(u: UserRecord) -> UserDto {
    UserDto {
        has_password: u.password_hash.is_some(),
        name: u.name,
        role: u.role,
        created_at_ms: u.created_at_ms,
        revoked: u.revoked,
    }
}

/// List users
///
/// By name, revoked ones included. Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    responses((status = 200, description = "Every user", body = Vec<UserDto>)),
    security(("bearer" = []))
)]
pub(super) async fn list_users(State(app): State<Arc<App>>, c: Caller) -> ApiResult<Vec<UserDto>> {
    c.require(Role::Admin)?;
    Ok(Json(app.users()?.into_iter().map(user_dto).collect()))
}

/// Revoke a user
///
/// Their API token is refused from the next request on. Revoking a revoked user
/// changes nothing. Nobody revokes themselves, and the last active admin cannot be
/// revoked (409). Needs the admin role.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "User name", min_length = 1)),
    responses(
        (status = 200, description = "The user, revoked", body = UserDto),
        (status = 404, description = "No user has that name", body = ErrorBody),
        (status = 409, description = "The caller themselves, or the last active admin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke_user(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(name): Path<String>,
) -> ApiResult<UserDto> {
    c.require(Role::Admin)?;
    Ok(Json(user_dto(app.revoke_user(&name, &c.name)?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordRequest {
    /// The new console password, 12-1024 bytes.
    #[schema(min_length = 12, max_length = 1024)]
    password: String,
}

/// Set a user's console password
///
/// Replaces the password (or sets a first one); every console session of the user
/// ends. Audited, without the password. Needs the admin role.
#[utoipa::path(
    put,
    path = "/api/v1/users/{name}/password",
    tag = "users",
    params(("name" = String, Path, description = "User name", min_length = 1)),
    request_body = PasswordRequest,
    responses(
        (status = 204, description = "Set"),
        (status = 404, description = "No user has that name", body = ErrorBody),
        (status = 409, description = "The user is revoked", body = ErrorBody),
        (status = 422, description = "Invalid body or password", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn set_password(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(name): Path<String>,
    raw: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    c.require(Role::Admin)?;
    let r: PasswordRequest = body(&raw)?;
    app.set_password(&name, &r.password, &c.name)?;
    Ok(StatusCode::NO_CONTENT)
}
