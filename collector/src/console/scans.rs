//! Scan Results (every scan, filtered, paged by cursor, all state in the URL) and its
//! CSV. One scan's pages and actions are in `scan`.
//!
//! Filters the store indexes (status, blocked, project, dates as key ranges) page from
//! the store; the others (provider, score range, host or IP) are applied to what the
//! store returns, examining at most [`EXAMINE`] scans per page, so that a page costs
//! the same on a store of a million scans. A page that stopped there says so and links
//! on from where it stopped.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::view::{self, Chrome, ScanRow};
use super::{Failure, Page, Ui};
use crate::app::App;
use crate::auth::Role;
use crate::store::{AgentRecord, ScanCursor, ScanFilter, ScanRecord, ScanStatus};

/// Rows per page.
const PER_PAGE: usize = 50;
/// Most scans examined for one page when a filter the store does not index is set.
const EXAMINE: usize = 5000;
/// Scans read from the store at a time.
const BATCH: usize = 500;

/// The list's query, exactly as the filter form sends it (empty fields are unset).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListQuery {
    status: Option<String>,
    blocked: Option<String>,
    project: Option<String>,
    provider: Option<String>,
    min_score: Option<String>,
    max_score: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    /// Cursor: scans older than this scan ID.
    before: Option<String>,
}

pub(super) fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filters, checked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filters {
    status: Option<ScanStatus>,
    blocked: bool,
    project: Option<String>,
    provider: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    /// Creation time range, `[from, to)` in ms.
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    q: Option<String>,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` as the ms of its first instant (UTC).
fn parse_date(field: &str, s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "{field} `{}` is not a date (YYYY-MM-DD)",
            crate::limits::echo(s)
        )
    };
    let p: Vec<&str> = s.split('-').collect();
    let [y, m, d] = p.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * 86_400_000)
}

fn parse_score(field: &str, s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| (0.0..=100.0).contains(v))
        .ok_or_else(|| {
            format!(
                "{field} `{}` must be a number from 0 to 100",
                crate::limits::echo(s)
            )
        })
}

impl Filters {
    pub fn parse(q: &ListQuery) -> Result<Filters, String> {
        let status = match set(&q.status) {
            None => None,
            Some(s) => Some(match s {
                "pending" => ScanStatus::Pending,
                "running" => ScanStatus::Running,
                "completed" => ScanStatus::Completed,
                "failed" => ScanStatus::Failed,
                "cancelled" => ScanStatus::Cancelled,
                other => {
                    return Err(format!(
                        "status `{}` is not pending, running, completed, failed or cancelled",
                        crate::limits::echo(other)
                    ))
                }
            }),
        };
        let text = |field: &str, v: &Option<String>| -> Result<Option<String>, String> {
            match set(v) {
                Some(s) if s.len() > 256 => Err(format!("{field} is longer than 256 characters")),
                other => Ok(other.map(String::from)),
            }
        };
        let f = Filters {
            status,
            blocked: matches!(set(&q.blocked), Some("1" | "true" | "on")),
            project: text("project", &q.project)?,
            provider: text("provider", &q.provider)?,
            min: set(&q.min_score)
                .map(|s| parse_score("min_score", s))
                .transpose()?,
            max: set(&q.max_score)
                .map(|s| parse_score("max_score", s))
                .transpose()?,
            from_ms: set(&q.from).map(|s| parse_date("from", s)).transpose()?,
            to_ms: set(&q.to)
                .map(|s| parse_date("to", s).map(|ms| ms + 86_400_000))
                .transpose()?,
            q: text("q", &q.q)?.map(|s| s.to_lowercase()),
        };
        if let (Some(a), Some(b)) = (f.min, f.max) {
            if a > b {
                return Err(format!("min_score {a} is above max_score {b}"));
            }
        }
        if let (Some(a), Some(b)) = (f.from_ms, f.to_ms) {
            if a >= b {
                return Err("from is after to".into());
            }
        }
        Ok(f)
    }

    /// Whether a filter the store does not index is set.
    fn needs_examining(&self) -> bool {
        self.provider.is_some() || self.min.is_some() || self.max.is_some() || self.q.is_some()
    }

    fn store_filter(&self) -> ScanFilter {
        ScanFilter {
            status: self.status,
            project: self.project.clone(),
            agent_id: None,
            blocked: self.blocked,
        }
    }

    /// The key range of the dates, with the page's cursor.
    fn cursor(&self, before: Option<&str>) -> ScanCursor {
        let to = self.to_ms.map(|ms| format!("sc-{ms:013}"));
        let before = match (before.map(String::from), to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        ScanCursor {
            before,
            after: self.from_ms.map(|ms| format!("sc-{ms:013}")),
        }
    }

    fn matches(&self, s: &ScanRecord, a: Option<&AgentRecord>) -> bool {
        let score_ok = |bound: Option<f64>, ok: fn(f64, f64) -> bool| {
            bound.is_none_or(|b| s.score.is_some_and(|v| ok(v, b)))
        };
        self.provider
            .as_ref()
            .is_none_or(|p| a.is_some_and(|a| a.provider.eq_ignore_ascii_case(p)))
            && score_ok(self.min, |v, b| v >= b)
            && score_ok(self.max, |v, b| v <= b)
            && self.q.as_ref().is_none_or(|q| {
                a.is_some_and(|a| {
                    a.hostname.to_lowercase().contains(q)
                        || a.ip_addresses.iter().any(|ip| ip.contains(q.as_str()))
                }) || s.agent_id.to_lowercase().contains(q)
            })
    }
}

/// The agents of the scans shown, each read once per request.
#[derive(Default)]
struct Agents(HashMap<String, Option<AgentRecord>>);

impl Agents {
    fn of(&mut self, app: &App, id: &str) -> Option<AgentRecord> {
        self.0
            .entry(id.to_string())
            .or_insert_with(|| app.agent(id).ok())
            .clone()
    }
}

/// Most VMs a host or IP search may match and still be answered from the per-agent
/// index; a broader search walks the list instead.
const SEARCH_AGENTS: usize = 200;

/// A page of the scans of `agents` that match the other filters, newest first, and
/// where the next page starts.
fn scans_of_agents(
    app: &App,
    f: &Filters,
    agents: &[AgentRecord],
    before: Option<&str>,
    want: usize,
) -> crate::app::Result<(Vec<ScanRow>, Option<String>)> {
    let mut all: Vec<(ScanRecord, &AgentRecord)> = Vec::new();
    let mut more = false;
    for a in agents {
        let mut filter = f.store_filter();
        filter.agent_id = Some(a.id.clone());
        let mut cursor = f.cursor(before);
        // Enough of this agent's scans to fill the page after the other filters.
        let mut taken = 0;
        loop {
            let (scans, next) = app.scan_page(&filter, &cursor, BATCH)?;
            for s in scans {
                if f.matches(&s, Some(a)) {
                    all.push((s, a));
                    taken += 1;
                }
            }
            match next {
                Some(n) if taken < want => cursor.before = Some(n),
                Some(_) => {
                    more = true;
                    break;
                }
                None => break,
            }
        }
    }
    all.sort_by(|x, y| y.0.id.cmp(&x.0.id));
    if all.len() > want {
        more = true;
        all.truncate(want);
    }
    let next = more
        .then(|| all.last().map(|(s, _)| s.id.clone()))
        .flatten();
    Ok((
        all.iter().map(|(s, a)| ScanRow::new(s, Some(a))).collect(),
        next,
    ))
}

/// How a walk over the list ended.
struct Walked {
    /// Where the next page starts, if more scans may match.
    next: Option<String>,
    /// The walk stopped at [`EXAMINE`] scans before filling the page.
    cut_short: bool,
}

/// Visits matching scans newest first from `before`, until `want` matched, `budget`
/// scans were examined, or `visit` answers false (its reader went away).
fn walk(
    app: &App,
    f: &Filters,
    before: Option<&str>,
    want: usize,
    budget: usize,
    visit: &mut dyn FnMut(&ScanRecord, Option<&AgentRecord>) -> bool,
) -> crate::app::Result<Walked> {
    let filter = f.store_filter();
    let mut cursor = f.cursor(before);
    let mut agents = Agents::default();
    let (mut matched, mut examined) = (0usize, 0usize);
    loop {
        let (scans, next) = app.scan_page(&filter, &cursor, BATCH)?;
        for s in &scans {
            examined += 1;
            let a = agents.of(app, &s.agent_id);
            if f.matches(s, a.as_ref()) {
                let go_on = visit(s, a.as_ref());
                matched += 1;
                if matched == want || !go_on {
                    return Ok(Walked {
                        next: Some(s.id.clone()),
                        cut_short: false,
                    });
                }
            }
            if examined >= budget {
                return Ok(Walked {
                    next: Some(s.id.clone()),
                    cut_short: true,
                });
            }
        }
        match next {
            Some(n) => cursor.before = Some(n),
            None => {
                return Ok(Walked {
                    next: None,
                    cut_short: false,
                })
            }
        }
    }
}

#[derive(Template)]
#[template(path = "scans.html")]
struct ListPage {
    c: Chrome,
    q: ListQuery,
    error: Option<String>,
    rows: Vec<ScanRow>,
    table_id: &'static str,
    caption: String,
    is_admin: bool,
    statuses: [&'static str; 5],
    /// The query without the cursor, for the CSV, the first page and the next.
    query: String,
    next: Option<String>,
    cut_short: bool,
    paged: bool,
}

impl ListPage {
    fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }
}

/// The query string of the filters (without the cursor), as the form would send it.
fn query_string(q: &ListQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("status", &q.status),
        ("blocked", &q.blocked),
        ("project", &q.project),
        ("provider", &q.provider),
        ("min_score", &q.min_score),
        ("max_score", &q.max_score),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
    ] {
        if let Some(v) = set(v) {
            parts.push(format!("{k}={}", view::url_encode(v)));
        }
    }
    parts.join("&")
}

pub async fn list(State(app): State<Arc<App>>, ui: Ui, uri: axum::http::Uri) -> Page {
    let u = ui.require(Role::Provisioner, "Scan Results")?;
    let q: ListQuery = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).with_user(u))?;
    let mut page = ListPage {
        c: Chrome::new("Scan Results", Some(u), "scans"),
        query: query_string(&q),
        q: q.clone(),
        error: None,
        rows: Vec::new(),
        table_id: "scans",
        caption: String::new(),
        is_admin: u.role >= Role::Admin,
        statuses: ["pending", "running", "completed", "failed", "cancelled"],
        next: None,
        cut_short: false,
        paged: set(&q.before).is_some(),
    };
    let f = match Filters::parse(&q) {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(format!("Not applied: {e}."));
            return Ok((StatusCode::BAD_REQUEST, view::html(&page)).into_response());
        }
    };
    let before = set(&q.before);
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    // A host or IP search names few VMs: their scans come from the per-agent index.
    let searched = match &f.q {
        Some(q) => app.search_hosts(q, SEARCH_AGENTS).map_err(fail)?,
        None => None,
    };
    if let Some(agents) = searched {
        let (rows, next) = scans_of_agents(&app, &f, &agents, before, PER_PAGE).map_err(fail)?;
        page.caption = format!(
            "{} scans of the {} VMs matching the search on this page, newest first",
            rows.len(),
            agents.len()
        );
        page.rows = rows;
        page.next = next;
    } else if f.needs_examining() {
        let mut rows = Vec::new();
        let w = walk(&app, &f, before, PER_PAGE, EXAMINE, &mut |s, a| {
            rows.push(ScanRow::new(s, a));
            true
        })
        .map_err(fail)?;
        page.caption = format!("{} matching scans on this page, newest first", rows.len());
        page.rows = rows;
        page.next = w.next;
        page.cut_short = w.cut_short;
    } else {
        let (scans, next) = app
            .scan_page(&f.store_filter(), &f.cursor(before), PER_PAGE)
            .map_err(fail)?;
        let mut agents = Agents::default();
        page.rows = scans
            .iter()
            .map(|s| ScanRow::new(s, agents.of(&app, &s.agent_id).as_ref()))
            .collect();
        // The total only where counters know it (and no date range narrows it).
        let total = if f.from_ms.is_none() && f.to_ms.is_none() {
            app.scan_total(&f.store_filter()).map_err(fail)?
        } else {
            None
        };
        page.caption = match total {
            Some(t) => format!(
                "{t} matching scans in all; {} on this page, newest first",
                page.rows.len()
            ),
            None => format!("{} scans on this page, newest first", page.rows.len()),
        };
        page.next = next;
    }
    Ok(view::html(&page))
}

/// A CSV cell: quoted when it must be (RFC 4180), and a leading `=`, `+`, `-`, `@`,
/// tab or carriage return neutralised with `'` so that no spreadsheet runs it.
pub fn csv_cell(s: &str) -> String {
    // Spreadsheets skip leading spaces, and some read full-width signs as formulas.
    let risky = s.starts_with(['\t', '\r'])
        || s.trim_start()
            .starts_with(['=', '+', '-', '@', '＝', '＋', '－', '＠']);
    let s = if risky {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV exports running at once (each holds a thread while it reads the store), and
/// the most time one may take.
const EXPORTS_AT_ONCE: usize = 4;
const EXPORT_TIME: std::time::Duration = std::time::Duration::from_secs(600);
static EXPORTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`EXPORTS_AT_ONCE`] export slots, given back when dropped.
struct ExportSlot;

impl ExportSlot {
    fn take() -> Option<ExportSlot> {
        use std::sync::atomic::Ordering;
        if EXPORTS.fetch_add(1, Ordering::AcqRel) >= EXPORTS_AT_ONCE {
            EXPORTS.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ExportSlot)
    }
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        EXPORTS.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

pub const CSV_HEADER: &str = "scan_id,agent_id,host,provider,project,status,score,blocked,released_by,critical_failed,high_failed,created_at,finished_at\r\n";

fn csv_row(s: &ScanRecord, a: Option<&AgentRecord>) -> String {
    let cells = [
        s.id.clone(),
        s.agent_id.clone(),
        view::host_of(s, a),
        a.map(|a| a.provider.clone()).unwrap_or_default(),
        s.project.clone().unwrap_or_default(),
        view::status_str(s.status).to_string(),
        s.score.map(|v| format!("{v:.1}")).unwrap_or_default(),
        s.is_blocking().to_string(),
        s.released_by.clone().unwrap_or_default(),
        s.failed_by_severity[0].to_string(),
        s.failed_by_severity[1].to_string(),
        rampart_report::rfc3339_ms(s.created_at_ms),
        s.finished_at_ms
            .map(rampart_report::rfc3339_ms)
            .unwrap_or_default(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The filtered list, every page, as CSV; streamed as the store is read.
pub async fn csv(State(app): State<Arc<App>>, ui: Ui, uri: axum::http::Uri) -> Page {
    let u = ui.require(Role::Provisioner, "The CSV export")?;
    let q: ListQuery = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).with_user(u))?;
    let f = Filters::parse(&q).map_err(|e| {
        Failure::new(StatusCode::BAD_REQUEST, format!("Not exported: {e}.")).with_user(u)
    })?;
    let slot = ExportSlot::take().ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{EXPORTS_AT_ONCE} CSV exports are running; try again in a minute."),
        )
        .with_user(u)
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let deadline = std::time::Instant::now() + EXPORT_TIME;
        let mut buf = String::from(CSV_HEADER);
        // A reader that went away (the channel closed) stops the walk.
        let r = walk(&app, &f, None, usize::MAX, usize::MAX, &mut |s, a| {
            buf.push_str(&csv_row(s, a));
            (buf.len() < 64 * 1024 || tx.blocking_send(Ok(std::mem::take(&mut buf))).is_ok())
                && std::time::Instant::now() < deadline
        });
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                "a CSV export took longer than its {} s and stopped",
                EXPORT_TIME.as_secs()
            );
            let _ = tx.blocking_send(Err(std::io::Error::other("the export took too long")));
            return;
        }
        if let Err(e) = r {
            tracing::error!(error = %e, "CSV export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            return;
        }
        if !buf.is_empty() {
            let _ = tx.blocking_send(Ok(buf));
        }
    });
    let body = axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"rampart-scans.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_neutralised() {
        assert_eq!(csv_cell("web-1"), "web-1");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_cell("\r=x"), "\"'\r=x\"");
        assert_eq!(csv_cell(" =HYPERLINK(1)"), "' =HYPERLINK(1)");
        assert_eq!(csv_cell("＝1+1"), "'＝1+1");
    }

    #[test]
    fn filters_are_checked_and_name_the_field() {
        let q = |f: fn(&mut ListQuery)| {
            let mut q = ListQuery::default();
            f(&mut q);
            Filters::parse(&q)
        };
        assert_eq!(q(|_| {}).unwrap(), Filters::default());
        assert!(q(|q| q.status = Some("done".into()))
            .unwrap_err()
            .contains("status `done`"));
        assert!(q(|q| q.min_score = Some("101".into()))
            .unwrap_err()
            .contains("min_score"));
        assert!(q(|q| q.max_score = Some("x".into()))
            .unwrap_err()
            .contains("max_score"));
        assert!(q(|q| q.from = Some("2026-13-01".into()))
            .unwrap_err()
            .contains("from"));
        assert!(q(|q| {
            q.min_score = Some("80".into());
            q.max_score = Some("20".into())
        })
        .unwrap_err()
        .contains("above"));
        let f = q(|q| {
            q.from = Some("2026-12-05".into());
            q.to = Some("2026-12-05".into());
            q.blocked = Some("1".into());
            q.status = Some(" ".into());
        })
        .unwrap();
        assert!(f.blocked && f.status.is_none());
        // 2026-12-05T00:00:00Z = 1796428800000 ms; `to` includes the whole day.
        assert_eq!(f.from_ms, Some(1_796_428_800_000));
        assert_eq!(f.to_ms, Some(1_796_428_800_000 + 86_400_000));
        let c = f.cursor(Some("sc-9999999999999-x"));
        assert_eq!(c.before.as_deref(), Some("sc-1796515200000"));
        assert_eq!(c.after.as_deref(), Some("sc-1796428800000"));
    }

    fn app_with_scans(dir: &std::path::Path, n: usize) -> App {
        let store = std::sync::Arc::new(
            crate::store::sled_store::SledStore::open(&dir.join("db")).unwrap(),
        );
        for i in 0..n {
            let s = ScanRecord::pending(
                format!("sc-{i:013}-0"),
                "ag-1",
                None,
                "manual",
                "level1-server",
                i as i64,
            );
            crate::store::Store::put_scan(&*store, &s).unwrap();
        }
        let ca = crate::ca::Ca::open_or_create(&dir.join("ca")).unwrap();
        App::new(store, ca, crate::config::Config::default()).unwrap()
    }

    #[test]
    fn a_walk_stops_when_its_reader_goes() {
        // The CSV export's reader going away (visit answers false) ends the walk at
        // once, however many scans are left: it kept reading the whole store.
        let d = tempfile::tempdir().unwrap();
        let app = app_with_scans(d.path(), 1200);
        let mut seen = 0;
        let w = walk(
            &app,
            &Filters::default(),
            None,
            usize::MAX,
            usize::MAX,
            &mut |_, _| {
                seen += 1;
                seen < 3
            },
        )
        .unwrap();
        assert_eq!(seen, 3);
        assert_eq!(w.next.as_deref(), Some("sc-0000000001197-0"));
        // A reader that stays gets every scan, over several store batches.
        let mut all = 0;
        let w = walk(
            &app,
            &Filters::default(),
            None,
            usize::MAX,
            usize::MAX,
            &mut |_, _| {
                all += 1;
                true
            },
        )
        .unwrap();
        assert_eq!((all, w.next), (1200, None));
    }

    #[test]
    fn exports_are_bounded() {
        let slots: Vec<ExportSlot> = (0..EXPORTS_AT_ONCE)
            .map_while(|_| ExportSlot::take())
            .collect();
        assert_eq!(slots.len(), EXPORTS_AT_ONCE);
        assert!(ExportSlot::take().is_none(), "one more is refused");
        drop(slots);
        assert!(ExportSlot::take().is_some(), "given back when done");
    }

    #[test]
    fn dates_are_days_since_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 5), 20_792);
    }
}
