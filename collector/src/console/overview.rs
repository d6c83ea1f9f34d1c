//! The Overview (SPEC §4): the four figures, each a link to the scans behind it, and
//! the 20 most recent scans. Viewers and users get the page without scan data.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;

use super::view::{self, band, Chrome, ScanRow};
use super::{Page, Ui};
use crate::app::App;
use crate::auth::Role;

pub struct FleetView {
    pub average: String,
    pub average_band: &'static str,
    pub average_words: String,
    pub vms_scanned: usize,
    pub completed: usize,
    pub vms_blocked: usize,
    pub pass_rate: String,
    pub min_score: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    c: Chrome,
    role: &'static str,
    fleet: Option<FleetView>,
    /// The 30-day average-score trend, and the same figures as (day, average, scans).
    chart: Option<super::vms::Chart>,
    trend: Vec<(String, String, u64)>,
    rows: Vec<ScanRow>,
    table_id: &'static str,
    sort: Option<super::view::SortHeads>,
    caption: &'static str,
    is_admin: bool,
}

pub async fn page(State(app): State<Arc<App>>, ui: Ui) -> Page {
    let u = &ui.0;
    let mut page = OverviewPage {
        c: Chrome::new("Overview", Some(u), "overview"),
        role: u.role.as_str(),
        fleet: None,
        chart: None,
        trend: Vec::new(),
        rows: Vec::new(),
        table_id: "recent",
        sort: None,
        caption: "The 20 most recent scans, newest first",
        is_admin: u.role >= Role::Admin,
    };
    if u.role >= Role::Provisioner {
        let o = app
            .overview()
            .map_err(|e| super::Failure::from(e).with_user(u))?;
        let f = &o.fleet;
        let average = (f.vms_scanned > 0).then(|| f.latest_score_sum / f.vms_scanned as f64);
        let pass = (f.completed_scans > 0)
            .then(|| f.completed_meeting as f64 * 100.0 / f.completed_scans as f64);
        page.fleet = Some(FleetView {
            average: view::score_text(average),
            average_band: band(average),
            average_words: match band(average) {
                "green" => "good (90 or more)".into(),
                "amber" => "fair (70 to 90)".into(),
                "red" => "poor (below 70)".into(),
                _ => "no completed scan yet".into(),
            },
            vms_scanned: f.vms_scanned,
            completed: f.completed_scans,
            vms_blocked: f.vms_blocked,
            pass_rate: pass.map_or_else(|| "–".into(), |p| format!("{p:.1}%")),
            min_score: format!("{}", o.min_score),
        });
        let span = f64::from(crate::app::TREND_DAYS - 1);
        let day_label = |day: u32| {
            view::when(i64::from(day) * 86_400_000)
                .get(..10)
                .unwrap_or_default()
                .to_string()
        };
        let points: Vec<(f64, String, f64)> = o
            .trend
            .iter()
            .filter(|d| d.completed > 0)
            .map(|d| {
                (
                    f64::from(d.day - o.trend_from) / span,
                    day_label(d.day),
                    d.score_sum / d.completed as f64,
                )
            })
            .collect();
        page.chart = super::vms::chart_at(&points);
        page.trend = o
            .trend
            .iter()
            .rev()
            .filter(|d| d.completed > 0)
            .map(|d| {
                (
                    day_label(d.day),
                    format!("{:.1}", d.score_sum / d.completed as f64),
                    d.completed,
                )
            })
            .collect();
        page.rows = o
            .recent
            .iter()
            .map(|(s, a)| ScanRow::new(s, a.as_ref()))
            .collect();
    }
    Ok(view::html(&page))
}
