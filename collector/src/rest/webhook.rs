//! Warn-mode alert deliveries: every attempt of every webhook delivery, newest first
//! (admin only).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{query, ApiResult, Caller, ErrorBody};
use crate::app::App;
use crate::auth::Role;
use crate::store::DeliveryState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    /// Page number, from 0.
    #[serde(default)]
    page: usize,
    /// Attempts per page, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    per_page: Option<usize>,
}

/// One attempt to deliver a warn-mode alert.
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptDto {
    delivery_id: String,
    scan_id: String,
    /// 1 for the first attempt of a delivery.
    attempt: u32,
    at_ms: i64,
    /// The receiver's HTTP status, when it answered.
    http_status: Option<u16>,
    /// Why the attempt failed (connection, TLS, timeout, non-2xx), if it did.
    error: Option<String>,
    /// `delivered`, `retrying` (see `next_attempt_ms`) or `failed` (given up).
    #[schema(schema_with = outcome_schema)]
    outcome: &'static str,
    /// When the next attempt is due, while the delivery is retrying.
    next_attempt_ms: Option<i64>,
}

fn outcome_schema() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["delivered", "retrying", "failed"]))
}

/// One page of delivery attempts, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct AttemptPage {
    attempts: Vec<AttemptDto>,
    /// Attempts in all.
    total: usize,
}

/// Webhook delivery attempts
///
/// Every attempt to deliver a warn-mode alert, newest first, paginated. Needs the
/// admin role.
#[utoipa::path(
    get,
    path = "/api/v1/webhook/deliveries",
    tag = "settings",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of attempts", body = AttemptPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(super) async fn deliveries(
    State(app): State<Arc<App>>,
    c: Caller,
    uri: axum::http::Uri,
) -> ApiResult<AttemptPage> {
    c.require(Role::Admin)?;
    let q: PageQuery = query(&uri)?;
    let per_page = q.per_page.unwrap_or(100).clamp(1, 1000);
    let (page, total) = app.webhook_attempts(q.page.saturating_mul(per_page), per_page)?;
    let attempts = page
        .into_iter()
        .map(|a| AttemptDto {
            outcome: match a.state {
                DeliveryState::Delivered => "delivered",
                DeliveryState::Pending => "retrying",
                DeliveryState::Failed => "failed",
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
