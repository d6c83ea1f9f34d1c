//! The append-only, hash-chained audit log, filtered and paginated by key range.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{query, ApiError, ApiResult, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;
use crate::store::{AuditFilter, AuditRecord};

/// The most entries a page number may skip; deeper pages are reached by cursor.
const MAX_OFFSET: usize = 100_000;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Cursor: only entries older than this sequence number (the `next` of the
    /// page before).
    before: Option<u64>,
    /// Page number, from 0, counted from the cursor; `page` × `per_page` at most
    /// 100000 (beyond, follow `next`).
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
pub(super) struct AuditEntryDto {
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
pub(super) struct AuditPage {
    entries: Vec<AuditEntryDto>,
    /// Entries matching the filters.
    total: usize,
    /// Pass as `before` for the next page; null on the last page.
    next: Option<u64>,
}

/// The audit log
///
/// Newest first, filtered and paginated by cursor (`before` = the `next` of the page
/// before) or page number; read by key range, never whole. Needs the admin role.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of entries", body = AuditPage),
        (status = 400, description = "Invalid query, or a page too deep", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn audit(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<AuditPage> {
    c.require(Role::Admin)?;
    let q: AuditQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    let offset = q.page.saturating_mul(per_page);
    if offset > MAX_OFFSET {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("page {} is too deep; follow `next` with `before`", q.page),
        ));
    }
    let filter = AuditFilter {
        action: q.action,
        actor: q.actor,
    };
    let l = app.audit_log(&filter, q.before, offset, per_page)?;
    Ok(Json(AuditPage {
        entries: l.entries.into_iter().map(AuditEntryDto::from).collect(),
        total: l.total,
        next: l.next,
    }))
}
