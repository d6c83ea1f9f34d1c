//! Enrolled agents (list, revoke) and the CA they pin.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{query, ApiResult, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;
use crate::store::AgentRecord;

/// An enrolled agent.
#[derive(Serialize, ToSchema)]
pub(super) struct AgentDto {
    id: String,
    hostname: String,
    ip_addresses: Vec<String>,
    provider: String,
    instance_id: String,
    os: String,
    project: Option<String>,
    /// Fixed at enrollment, like the instance ID and the project.
    labels: std::collections::BTreeMap<String, String>,
    enrolled_at_ms: i64,
    last_seen_ms: i64,
    cert_not_after_ms: i64,
    revoked: bool,
    connected: bool,
    /// Whether the provider's signed instance identity document (AWS, Azure, GCP)
    /// vouched for `provider` and `instance_id` at enrollment; otherwise they are
    /// only what the VM said.
    identity_verified: bool,
    /// What vouched for the identity, or why it is not verified.
    identity_detail: String,
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
        labels: a.labels,
        enrolled_at_ms: a.enrolled_at_ms,
        last_seen_ms: a.last_seen_ms,
        cert_not_after_ms: a.cert_not_after_ms,
        revoked: a.revoked,
        connected,
        identity_verified: a.identity.verified,
        identity_detail: a.identity.detail,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AgentQuery {
    /// Cursor: only agents whose ID sorts after this one (the `next` of the page
    /// before).
    after: Option<String>,
    /// Agents per page, 1-1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<usize>,
}

/// One page of agents, in ID order.
#[derive(Serialize, ToSchema)]
pub(super) struct AgentPage {
    agents: Vec<AgentDto>,
    per_page: usize,
    /// Pass as `after` for the next page; null on the last page.
    next: Option<String>,
}

/// List agents
///
/// In ID order, a page at a time (`after` = the `next` of the page before). Needs
/// the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "agents",
    params(AgentQuery),
    responses(
        (status = 200, description = "One page of enrolled agents", body = AgentPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_agents(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<AgentPage> {
    c.require(Role::Admin)?;
    let q: AgentQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(500).clamp(1, 1000);
    // One more than a page tells whether another page follows.
    let mut agents = app.agent_page(q.after.as_deref(), per_page + 1)?;
    let next = (agents.len() > per_page).then(|| {
        agents.truncate(per_page);
        agents.last().map(|a| a.id.clone())
    });
    let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    let on = app.connected_among(&ids);
    Ok(Json(AgentPage {
        agents: agents
            .into_iter()
            .map(|a| {
                let connected = on.contains(&a.id);
                agent_dto(a, connected)
            })
            .collect(),
        per_page,
        next: next.flatten(),
    }))
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
pub(super) async fn revoke_agent(
    State(app): State<Arc<App>>,
    c: Caller,
    Path(id): Path<String>,
) -> ApiResult<AgentDto> {
    c.require(Role::Admin)?;
    Ok(Json(agent_dto(app.revoke_agent(&id, &c.name)?, false)))
}

/// The collector's CA, which agents pin.
#[derive(Serialize, ToSchema)]
pub(super) struct CaDto {
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
pub(super) async fn ca(State(app): State<Arc<App>>, c: Caller) -> ApiResult<CaDto> {
    c.require(Role::Provisioner)?;
    Ok(Json(CaDto {
        fingerprint: app.ca.fingerprint(),
        certificate_pem: app.ca.cert_pem().to_string(),
    }))
}
