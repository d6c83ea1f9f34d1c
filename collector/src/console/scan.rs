//! One scan: its detail page with its rules and what changed since the VM's scan
//! before, each rule's own page, the refreshing progress, report downloads, and the
//! actions on it (release after a confirmation page, scan again, cancel).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use rampart_report::{cmp_rule_ids, Severity, Status};
use serde::Deserialize;

use super::scans::set;
use super::view::{self, Chrome, ScanRow};
use super::{Failure, Page, Ui};
use crate::app::App;
use crate::auth::Role;
use crate::rest::ReportKind;
use crate::store::{AgentRecord, ScanCursor, ScanFilter, ScanRecord};

/// One rule of a scan as the detail page shows it.
pub struct RuleView {
    id: String,
    title: String,
    section: String,
    severity: &'static str,
    status: &'static str,
    status_label: &'static str,
    description: String,
    remediation: String,
    evidence: Vec<String>,
    /// Failed and errored rules carry their evidence and remediation in the page; every
    /// rule's ID links to its own page with everything (a 300-rule page stays light).
    full: bool,
    /// The page's order: failures first, as in the reports, then by severity.
    rank: (u8, usize),
}

/// A rule whose status changed since the VM's scan before.
pub struct Change {
    id: String,
    title: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "scan.html")]
struct DetailPage {
    c: Chrome,
    row: ScanRow,
    scan: ScanRecord,
    agent: Option<AgentRecord>,
    benchmark: String,
    rules: Vec<RuleView>,
    shown_total: usize,
    results_expired: bool,
    is_admin: bool,
    flash: Option<String>,
    rq: RuleQuery,
    changes: Option<Vec<Change>>,
    previous: Option<String>,
    statuses: [&'static str; 6],
    severities: [&'static str; 4],
    csrf: String,
}

impl DetailPage {
    fn finished(&self) -> String {
        self.scan.finished_at_ms.map(view::when).unwrap_or_default()
    }
    fn released_at(&self) -> String {
        self.scan.released_at_ms.map(view::when).unwrap_or_default()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RuleQuery {
    status: Option<String>,
    severity: Option<String>,
    q: Option<String>,
    released: Option<String>,
}

fn status_label(s: Option<Status>) -> &'static str {
    match s {
        Some(Status::Pass) => "Pass",
        Some(Status::Fail) => "Fail",
        Some(Status::Error) => "Error",
        Some(Status::NotApplicable) => "Not applicable",
        Some(Status::NotChecked) => "Not checked (manual)",
        Some(Status::Exempted) => "Exempted",
        None => "Not in this profile",
    }
}

/// Failures first, as in the reports (a rule outside the profile last), then the most
/// severe first (an unknown severity last).
fn rank(st: Option<Status>, sev: Option<Severity>) -> (u8, usize) {
    (
        st.map_or(u8::MAX, Status::rank),
        sev.map_or(Severity::ALL.len(), |s| s as usize),
    )
}

fn severity_name(s: Option<Severity>) -> &'static str {
    s.map_or("", Severity::as_str)
}

pub async fn detail(
    State(app): State<Arc<App>>,
    ui: Ui,
    Path(id): Path<String>,
    Query(rq): Query<RuleQuery>,
) -> Page {
    let u = ui.require(Role::Provisioner, "Scan details")?;
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    let (scan, results) = app.scan_with_results(&id).map_err(fail)?;
    let agent = app.agent(&scan.agent_id).ok();
    let cat = app.catalog_for_scan(&scan);
    let now = app.clock.now_ms();
    let doc = crate::report::doc(
        &crate::report::ReportInput {
            scan: &scan,
            agent: agent.as_ref(),
            catalog: cat.as_deref(),
            results: &results,
        },
        now,
    );
    let want_status = set(&rq.status).map(str::to_string);
    let want_sev = set(&rq.severity).map(str::to_string);
    let search = set(&rq.q).map(str::to_lowercase);
    let mut rules: Vec<RuleView> = doc
        .rules
        .iter()
        .filter(|r| r.status.is_some())
        .map(|r| RuleView {
            id: r.id.clone(),
            title: r.title.clone(),
            section: r.section.clone(),
            severity: severity_name(r.severity),
            status: r.status.map_or("", Status::as_str),
            status_label: status_label(r.status),
            description: r.description.clone(),
            remediation: r.remediation.clone(),
            evidence: r.evidence.clone(),
            full: matches!(r.status, Some(Status::Fail | Status::Error)),
            rank: rank(r.status, r.severity),
        })
        .collect();
    let shown_total = rules.len();
    rules.retain(|r| {
        want_status.as_deref().is_none_or(|s| r.status == s)
            && want_sev.as_deref().is_none_or(|s| r.severity == s)
            && search.as_deref().is_none_or(|q| {
                r.id.to_lowercase().contains(q) || r.title.to_lowercase().contains(q)
            })
    });
    rules.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| cmp_rule_ids(&a.id, &b.id)));
    // What changed since this VM's scan before (when both still have results).
    let prev = app
        .scan_page(
            &ScanFilter {
                agent_id: Some(scan.agent_id.clone()),
                ..Default::default()
            },
            &ScanCursor {
                before: Some(scan.id.clone()),
                ..Default::default()
            },
            1,
        )
        .map_err(fail)?
        .0
        .into_iter()
        .next();
    let mut previous = None;
    let changes = match prev {
        Some(p) if !results.is_empty() && !app.results_expired(&p) => {
            previous = Some(p.id.clone());
            let (_, before) = app.scan_with_results(&p.id).map_err(fail)?;
            let old: HashMap<&str, Status> = before
                .iter()
                .map(|r| (r.rule_id.as_str(), r.status))
                .collect();
            let titles: HashMap<&str, &str> = doc
                .rules
                .iter()
                .map(|r| (r.id.as_str(), r.title.as_str()))
                .collect();
            let mut ch: Vec<Change> = results
                .iter()
                .filter(|r| old.get(r.rule_id.as_str()) != Some(&r.status))
                .map(|r| Change {
                    id: r.rule_id.clone(),
                    title: titles
                        .get(r.rule_id.as_str())
                        .copied()
                        .unwrap_or("")
                        .to_string(),
                    before: old
                        .get(r.rule_id.as_str())
                        .map_or("not scanned", |s| status_label(Some(*s)))
                        .to_string(),
                    after: status_label(Some(r.status)).to_string(),
                })
                .collect();
            ch.sort_by(|a, b| cmp_rule_ids(&a.id, &b.id));
            Some(ch)
        }
        _ => None,
    };
    let host = view::host_of(&scan, agent.as_ref());
    let page = DetailPage {
        c: Chrome::new(&format!("Scan of {host}"), Some(u), "scans"),
        row: ScanRow::new(&scan, agent.as_ref()),
        benchmark: if doc.benchmark.title.is_empty() {
            "–".into()
        } else {
            format!("{} {}", doc.benchmark.title, doc.benchmark.version)
        },
        results_expired: app.results_expired(&scan),
        is_admin: u.role >= Role::Admin,
        // Said only when the scan really was released (never from the URL alone).
        flash: set(&rq.released)
            .and(scan.released_by.as_ref())
            .map(|by| format!("The handover was released by {by}.")),
        scan,
        agent,
        rules,
        shown_total,
        rq,
        changes,
        previous,
        statuses: Status::ALL.map(Status::as_str),
        severities: Severity::ALL.map(Severity::as_str),
        csrf: u.session.csrf.clone(),
    };
    Ok(view::html(&page))
}

#[derive(Template)]
#[template(path = "rule.html")]
struct RulePage {
    c: Chrome,
    scan_id: String,
    host: String,
    r: RuleView,
}

/// One rule of a scan on its own page: description, evidence, remediation.
pub async fn rule(
    State(app): State<Arc<App>>,
    ui: Ui,
    Path((id, rule_id)): Path<(String, String)>,
) -> Page {
    let u = ui.require(Role::Provisioner, "Scan details")?;
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    let (scan, results) = app.scan_with_results(&id).map_err(fail)?;
    let agent = app.agent(&scan.agent_id).ok();
    let cat = app.catalog_for_scan(&scan);
    let doc = crate::report::doc(
        &crate::report::ReportInput {
            scan: &scan,
            agent: agent.as_ref(),
            catalog: cat.as_deref(),
            results: &results,
        },
        app.clock.now_ms(),
    );
    let r = doc
        .rules
        .into_iter()
        .find(|r| r.id == rule_id && r.status.is_some())
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                format!(
                    "Scan {id} has no result for rule {}.",
                    crate::limits::echo(&rule_id)
                ),
            )
            .with_user(u)
        })?;
    let host = view::host_of(&scan, agent.as_ref());
    Ok(view::html(&RulePage {
        c: Chrome::new(&format!("{} on {host}", r.id), Some(u), "scans"),
        scan_id: scan.id.clone(),
        host,
        r: RuleView {
            status: r.status.map_or("", Status::as_str),
            status_label: status_label(r.status),
            full: true,
            rank: rank(r.status, r.severity),
            id: r.id,
            title: r.title,
            section: r.section,
            severity: severity_name(r.severity),
            description: r.description,
            remediation: r.remediation,
            evidence: r.evidence,
        },
    }))
}

#[derive(Template)]
#[template(path = "progress.html")]
struct Progress {
    row: ScanRow,
}

/// The state of a scan, for the detail page to refresh while it runs.
pub async fn progress(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    let u = ui.require(Role::Provisioner, "Scan details")?;
    Ok(view::html(&Progress {
        row: row_of(&app, u, &id)?,
    }))
}

/// A scan's row from its record alone (no results), for the refreshing views.
fn row_of(app: &App, u: &crate::app::signin::ConsoleUser, id: &str) -> Result<ScanRow, Failure> {
    let s = app
        .scan_record(id)
        .map_err(|e| Failure::from(e).with_user(u))?;
    let a = app.agent(&s.agent_id).ok();
    Ok(ScanRow::new(&s, a.as_ref()))
}

/// One row of a scan list, which a pending or running row fetches every few seconds
/// to replace itself (it stops once the scan has ended).
#[derive(Template)]
#[template(source = "{% include \"scan_row.html\" %}", ext = "html")]
struct RowFragment {
    r: ScanRow,
    is_admin: bool,
}

pub async fn row(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    let u = ui.require(Role::Provisioner, "Scan Results")?;
    Ok(view::html(&RowFragment {
        r: row_of(&app, u, &id)?,
        is_admin: u.role >= Role::Admin,
    }))
}

fn report(app: &App, ui: &Ui, id: &str, kind: ReportKind) -> Page {
    let u = ui.require(Role::Provisioner, "Reports")?;
    crate::rest::scan_report(app, id, kind).map_err(|e| Failure::from(e).with_user(u))
}

pub async fn report_html(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    report(&app, &ui, &id, ReportKind::Html)
}
pub async fn report_json(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    report(&app, &ui, &id, ReportKind::Json)
}
pub async fn report_arf(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    report(&app, &ui, &id, ReportKind::Arf)
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    c: Chrome,
    row: ScanRow,
    agent: Option<AgentRecord>,
    reasons: Vec<String>,
    csrf: String,
}

pub async fn release_form(State(app): State<Arc<App>>, ui: Ui, Path(id): Path<String>) -> Page {
    let u = ui.require(Role::Admin, "Releasing a handover")?;
    let (s, _) = app
        .scan_with_results(&id)
        .map_err(|e| Failure::from(e).with_user(u))?;
    if !s.is_blocking() {
        return Err(Failure::new(
            StatusCode::CONFLICT,
            "This scan does not block a handover: there is nothing to release.",
        )
        .with_user(u));
    }
    let a = app.agent(&s.agent_id).ok();
    Ok(view::html(&ReleasePage {
        c: Chrome::new("Release a handover", Some(u), "scans"),
        row: ScanRow::new(&s, a.as_ref()),
        agent: a,
        reasons: s.block_reasons.clone(),
        csrf: u.session.csrf.clone(),
    }))
}

pub async fn release(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Page {
    let (_, u) = ui.form::<serde::de::IgnoredAny>(
        &app,
        &headers,
        &body,
        Role::Admin,
        "Releasing a handover",
    )?;
    app.release(&id, &u.name)
        .map_err(|e| Failure::from(e).with_user(u))?;
    Ok(Redirect::to(&format!("/ui/scans/{}?released=1", view::url_encode(&id))).into_response())
}

/// "Scan again" (provisioner and admin): a manual scan of the scan's VM; on to it.
pub async fn rescan(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Page {
    let (_, u) = ui.form::<serde::de::IgnoredAny>(
        &app,
        &headers,
        &body,
        Role::Provisioner,
        "Scanning again",
    )?;
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    let (s, _) = app.scan_with_results(&id).map_err(fail)?;
    match app.create_scan(&s.agent_id, "manual", &u.name).map_err(fail)? {
        Some(new) => Ok(Redirect::to(&format!("/ui/scans/{}", view::url_encode(&new.id))).into_response()),
        None => Err(Failure::new(
            StatusCode::CONFLICT,
            "No scan was made: scanning is turned off, or this VM's project is exempt from scanning.",
        )
        .with_user(u)),
    }
}

/// Cancel (admin) a pending or running scan.
pub async fn cancel(
    State(app): State<Arc<App>>,
    ui: Ui,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Page {
    let (_, u) =
        ui.form::<serde::de::IgnoredAny>(&app, &headers, &body, Role::Admin, "Cancelling a scan")?;
    app.cancel_scan(&id, &u.name)
        .map_err(|e| Failure::from(e).with_user(u))?;
    Ok(Redirect::to(&format!("/ui/scans/{}", view::url_encode(&id))).into_response())
}
