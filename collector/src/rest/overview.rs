//! The overview (SPEC §4 views): the fleet's figures and the most recent scans, from
//! figures the store maintains (never a walk over every scan).

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use rampart_report::Severity;
use serde::Serialize;
use utoipa::ToSchema;

use super::scans::ScanStatusDto;
use super::{ApiResult, Caller};
use crate::app::App;
use crate::auth::Role;
use crate::report::Band;

/// The colour band of a score: green ≥ 90, amber ≥ 70, red below.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum BandDto {
    Green,
    Amber,
    Red,
}

impl From<Band> for BandDto {
    fn from(b: Band) -> Self {
        match b {
            Band::Green => BandDto::Green,
            Band::Amber => BandDto::Amber,
            Band::Red => BandDto::Red,
        }
    }
}

/// A scan among the 20 most recent (SPEC §4 overview).
#[derive(Serialize, ToSchema)]
pub(super) struct RecentScanDto {
    id: String,
    agent_id: String,
    host: String,
    hostname: Option<String>,
    ip_addresses: Vec<String>,
    provider: Option<String>,
    project: Option<String>,
    score: Option<f64>,
    score_band: Option<BandDto>,
    status: ScanStatusDto,
    critical_failures: u32,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
    blocked: bool,
    released: bool,
    can_release: bool,
}

/// The fleet at a glance.
#[derive(Serialize, ToSchema)]
pub(super) struct OverviewDto {
    /// Mean score of each VM's latest completed scan; null when none.
    average_score: Option<f64>,
    average_score_band: Option<BandDto>,
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

/// The overview
///
/// Average score, VMs scanned and blocked, pass rate, and the 20 most recent scans.
/// Needs the provisioner role.
#[utoipa::path(
    get,
    path = "/api/v1/overview",
    tag = "scans",
    responses((status = 200, description = "The overview", body = OverviewDto)),
    security(("bearer" = []))
)]
pub(super) async fn overview(State(app): State<Arc<App>>, c: Caller) -> ApiResult<OverviewDto> {
    c.require(Role::Provisioner)?;
    let o = app.overview()?;
    let f = &o.fleet;
    let average_score = (f.vms_scanned > 0)
        .then(|| f.latest_score_sum / f.vms_scanned as f64)
        .map(|v| (v * 10.0).round() / 10.0);
    let recent_scans = o
        .recent
        .iter()
        .map(|(s, a)| {
            let a = a.as_ref();
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
                score_band: s.score.map(|v| Band::of(v).into()),
                status: s.status.into(),
                critical_failures: s.failed_by_severity.get(Severity::Critical),
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
        average_score_band: average_score.map(|v| Band::of(v).into()),
        vms_scanned: f.vms_scanned,
        vms_blocked: f.vms_blocked,
        pass_rate: (f.completed_scans > 0).then(|| {
            ((f.completed_meeting as f64 / f.completed_scans as f64) * 1000.0).round() / 10.0
        }),
        min_score: o.min_score,
        completed_scans: f.completed_scans,
        recent_scans,
    }))
}
