//! A VM's page: its identity, labels, enrollment, last contact and certificate, its
//! handover state, the score history of its recent scans (an SVG drawn here, with the
//! same figures in a table), and revocation (admin).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;

use super::view::{self, Chrome, ScanRow};
use super::{Failure, Page, Ui};
use crate::app::{App, Gate};
use crate::auth::Role;
use crate::store::{AgentRecord, ScanCursor, ScanFilter, ScanRecord, ScanStatus};

/// Scans the history shows.
const HISTORY: usize = 60;

/// A line chart of scores (0–100) over the given points, oldest first: the polyline
/// and the dots, in a 600×160 box (`viewBox`), with a `<title>` per dot.
pub struct Chart {
    pub points: String,
    pub dots: Vec<(f64, f64, String)>,
}

/// Draws `scores` (oldest first; `(label, score)`) evenly spaced into the chart's box.
pub fn chart(scores: &[(String, f64)]) -> Option<Chart> {
    let n = scores.len();
    let placed: Vec<(f64, String, f64)> = scores
        .iter()
        .enumerate()
        .map(|(i, (label, s))| {
            let at = if n == 1 {
                0.5
            } else {
                i as f64 / (n - 1) as f64
            };
            (at, label.clone(), *s)
        })
        .collect();
    chart_at(&placed)
}

/// Draws `(position from 0 to 1, label, score)` points into the chart's box.
pub fn chart_at(points: &[(f64, String, f64)]) -> Option<Chart> {
    if points.is_empty() {
        return None;
    }
    let (w, h, pad) = (600.0, 160.0, 10.0);
    let round = |v: f64| (v * 10.0).round() / 10.0;
    let dots: Vec<(f64, f64, String)> = points
        .iter()
        .map(|(at, label, s)| {
            (
                round(pad + (w - 2.0 * pad) * at.clamp(0.0, 1.0)),
                round(pad + (h - 2.0 * pad) * (1.0 - s.clamp(0.0, 100.0) / 100.0)),
                format!("{label}: {s:.1}"),
            )
        })
        .collect();
    let points = dots
        .iter()
        .map(|(x, y, _)| format!("{x},{y}"))
        .collect::<Vec<_>>()
        .join(" ");
    Some(Chart { points, dots })
}

#[derive(Template)]
#[template(path = "vm.html")]
struct VmPage {
    c: Chrome,
    a: AgentRecord,
    host: String,
    gate: Option<Gate>,
    rows: Vec<ScanRow>,
    chart: Option<Chart>,
    history: Vec<(String, String)>,
    enrolled: String,
    last_seen: String,
    cert_expires: String,
    is_admin: bool,
    csrf: String,
    table_id: &'static str,
    sort: Option<super::view::SortHeads>,
    caption: String,
    error: Option<String>,
}

pub async fn page(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    let u = ui.require(Role::Provisioner, "A VM's page")?;
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    let a = app.agent(&id).map_err(fail)?;
    let scans: Vec<ScanRecord> = app
        .scan_page(
            &ScanFilter {
                agent_id: Some(a.id.clone()),
                ..Default::default()
            },
            &ScanCursor::default(),
            HISTORY,
        )
        .map_err(fail)?
        .0;
    let scores: Vec<(String, f64)> = scans
        .iter()
        .rev()
        .filter(|s| s.status == ScanStatus::Completed)
        .filter_map(|s| s.score.map(|v| (view::when(s.created_at_ms), v)))
        .collect();
    let host = if a.hostname.trim().is_empty() {
        a.id.clone()
    } else {
        a.hostname.clone()
    };
    let page = VmPage {
        c: Chrome::new(&format!("VM {host}"), Some(u), "scans"),
        gate: app.handover(&a.id).ok(),
        rows: scans.iter().map(|s| ScanRow::new(s, Some(&a))).collect(),
        chart: chart(&scores),
        history: scores
            .iter()
            .rev()
            .map(|(d, s)| (d.clone(), format!("{s:.1}")))
            .collect(),
        enrolled: view::when(a.enrolled_at_ms),
        last_seen: view::when(a.last_seen_ms),
        cert_expires: view::when(a.cert_not_after_ms),
        is_admin: u.role >= Role::Admin,
        csrf: u.session.csrf.clone(),
        table_id: "vm-scans",
        sort: None,
        caption: format!("The {} newest scans of this VM", scans.len()),
        error: None,
        host,
        a,
    };
    Ok(view::html(&page))
}

#[derive(Deserialize)]
struct RevokeForm {
    confirm: Option<String>,
}

/// Revokes the VM's agent (admin): its certificate is refused and its stream ends.
pub async fn revoke(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Page {
    let (f, u) =
        ui.form::<RevokeForm>(&app, &headers, &body, Role::Admin, "Revoking a VM's agent")?;
    if f.confirm.as_deref() != Some("yes") {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Tick the box that confirms the revocation; nothing was revoked.",
        )
        .with_user(u));
    }
    app.revoke_agent(&id, &u.name)
        .map_err(|e| Failure::from(e).with_user(u))?;
    Ok(Redirect::to(&format!("/ui/vms/{}", view::url_encode(&id))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_sit_at_their_place() {
        let c = chart_at(&[(0.0, "a".into(), 50.0), (1.0, "b".into(), 100.0)]).unwrap();
        assert_eq!(c.points, "10,80 590,10");
    }

    #[test]
    fn chart_maps_scores_into_the_box() {
        assert!(chart(&[]).is_none());
        let c = chart(&[("a".into(), 100.0), ("b".into(), 0.0), ("c".into(), 50.0)]).unwrap();
        assert_eq!(c.points, "10,10 300,150 590,80");
        assert_eq!(c.dots[1].2, "b: 0.0");
        let one = chart(&[("a".into(), 120.0)]).unwrap();
        assert_eq!(
            one.points, "300,10",
            "one scan sits in the middle; scores clamp to 100"
        );
    }
}
