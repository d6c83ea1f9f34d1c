//! Warn-mode alerts: when a scan completes in warn mode and the policy would have
//! blocked it, a webhook delivery is queued in the store with the scan (the caller
//! syncs both). `crate::webhook` sends what is queued.

use serde::Serialize;

use super::{App, AppError, Result};
use crate::policy::Settings;
use crate::store::{DeliveryRecord, DeliveryState, ScanRecord};

/// The event a warn-mode alert reports.
pub const EVENT: &str = "scan.would_block";

/// The JSON body of an alert: a wire format, kept stable.
#[derive(Serialize)]
struct AlertBody<'a> {
    event: &'a str,
    delivery_id: &'a str,
    scan_id: &'a str,
    agent_id: &'a str,
    host: &'a str,
    project: Option<&'a str>,
    score: Option<f64>,
    mode: &'a str,
    reasons: &'a [String],
    link: String,
    finished_at_ms: Option<i64>,
}

/// Queues an alert for a completed scan when a webhook is configured; the caller
/// syncs the store with the scan. Nothing is sent here.
pub fn enqueue(app: &App, settings: &Settings, scan: &ScanRecord) -> Result<()> {
    if settings.webhook_url.is_empty() {
        return Ok(());
    }
    let host = app
        .store
        .agent(&scan.agent_id)?
        .map(|a| a.hostname)
        .unwrap_or_default();
    let now = app.clock.now_ms();
    let id = format!("wh-{now:013}-{}", &crate::auth::new_id("")?[..8]);
    let body = AlertBody {
        event: EVENT,
        delivery_id: &id,
        scan_id: &scan.id,
        agent_id: &scan.agent_id,
        host: &host,
        project: scan.project.as_deref(),
        score: scan.score,
        mode: "warn",
        reasons: &scan.block_reasons,
        link: format!("{}/api/v1/scans/{}", app.config.public_base(), scan.id),
        finished_at_ms: scan.finished_at_ms.or(Some(now)),
    };
    let body =
        serde_json::to_string(&body).map_err(|e| AppError::Invalid(format!("alert body: {e}")))?;
    app.store.put_delivery(&DeliveryRecord {
        id: id.clone(),
        scan_id: scan.id.clone(),
        url: settings.webhook_url.clone(),
        body,
        created_at_ms: now,
        attempts: 0,
        state: DeliveryState::Pending,
        next_attempt_ms: Some(now),
    })?;
    tracing::info!(delivery_id = %id, scan_id = %scan.id, "webhook delivery queued");
    Ok(())
}
