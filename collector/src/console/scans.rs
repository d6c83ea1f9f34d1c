//! Scan Results (every scan, filtered, paged by cursor, all state in the URL) and its
//! CSV. One scan's pages and actions are in `scan`.
//!
//! Filters the store indexes (status, blocked, project, dates as key ranges) page from
//! the store; the others (provider, score range, host or IP) are applied to what the
//! store returns, examining at most [`EXAMINE`] scans per page, so that a page costs
//! the same on a store of a million scans. A page that stopped there says so and links
//! on from where it stopped.
//!
//! Four orders, each read from an index (so every page of every order costs the same):
//! newest or oldest first (the scans' key range, walked either way), and lowest or
//! highest score first (completed scans only: the others have no score); in a score
//! order every filter is applied to what the score index returns.

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
    /// The order: `newest` (unset), `oldest`, `score_low` or `score_high`.
    sort: Option<String>,
    /// Cursor of the newest-first order: scans older than this scan ID.
    before: Option<String>,
    /// Cursor of the other orders: scans past this scan ID in the order.
    after: Option<String>,
}

/// The list's order.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Order {
    #[default]
    Newest,
    Oldest,
    ScoreLow,
    ScoreHigh,
}

impl Order {
    /// (URL value, label), in the order the form offers them.
    pub const ALL: [(Order, &'static str, &'static str); 4] = [
        (Order::Newest, "newest", "Newest first"),
        (Order::Oldest, "oldest", "Oldest first"),
        (Order::ScoreLow, "score_low", "Lowest score first"),
        (Order::ScoreHigh, "score_high", "Highest score first"),
    ];

    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|o| o.0 == self)
            .map_or("newest", |o| o.1)
    }

    fn by_score(self) -> bool {
        matches!(self, Order::ScoreLow | Order::ScoreHigh)
    }

    /// How the caption says it.
    fn words(self) -> &'static str {
        match self {
            Order::Newest => "newest first",
            Order::Oldest => "oldest first",
            Order::ScoreLow => "completed scans, lowest score first",
            Order::ScoreHigh => "completed scans, highest score first",
        }
    }

    /// The URL parameter that carries where a page starts.
    fn cursor_param(self) -> &'static str {
        if self == Order::Newest {
            "before"
        } else {
            "after"
        }
    }
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
    order: Order,
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
            order: match set(&q.sort) {
                None => Order::Newest,
                Some(v) => Order::ALL
                    .iter()
                    .find(|o| o.1 == v)
                    .map(|o| o.0)
                    .ok_or_else(|| {
                        format!(
                            "sort `{}` is not newest, oldest, score_low or score_high",
                            crate::limits::echo(v)
                        )
                    })?,
            },
        };
        if f.order.by_score() && f.status.is_some_and(|st| st != ScanStatus::Completed) {
            return Err(
                "a score order lists completed scans only; choose status completed or any".into(),
            );
        }
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

    /// Whether a filter the store does not index is set (in a score order, none is).
    fn needs_examining(&self) -> bool {
        self.order.by_score()
            || self.provider.is_some()
            || self.min.is_some()
            || self.max.is_some()
            || self.q.is_some()
    }

    fn store_filter(&self) -> ScanFilter {
        ScanFilter {
            status: self.status,
            project: self.project.clone(),
            agent_id: None,
            blocked: self.blocked,
        }
    }

    /// The key range of the dates, narrowed by where the page starts (`past`: the
    /// last scan of the page before, in a date order).
    fn cursor(&self, past: Option<&str>) -> ScanCursor {
        let to = self.to_ms.map(|ms| format!("sc-{ms:013}"));
        let from = self.from_ms.map(|ms| format!("sc-{ms:013}"));
        let past = past.map(String::from);
        let oldest_first = self.order == Order::Oldest;
        let (before, after) = if oldest_first {
            (to, past.max(from))
        } else {
            let before = match (past, to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (before, from)
        };
        ScanCursor {
            before,
            after,
            oldest_first,
        }
    }

    /// Whether a scan's creation time is in the date range.
    fn in_dates(&self, s: &ScanRecord) -> bool {
        self.from_ms.is_none_or(|t| s.created_at_ms >= t)
            && self.to_ms.is_none_or(|t| s.created_at_ms < t)
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
    /// Reads the agents of `scans` not read yet, at once.
    fn load(&mut self, app: &App, scans: &[ScanRecord]) {
        let missing: Vec<&ScanRecord> = scans
            .iter()
            .filter(|s| !self.0.contains_key(&s.agent_id))
            .collect();
        if missing.is_empty() {
            return;
        }
        // On an error, each is asked for alone (and fails alone) by `of`.
        if let Ok(found) = app.agents_of_scans(missing.iter().copied()) {
            for s in &missing {
                self.0
                    .insert(s.agent_id.clone(), found.get(&s.agent_id).cloned());
            }
        }
    }

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
                Some(n) if taken < want => cursor = cursor.following(n),
                Some(_) => {
                    more = true;
                    break;
                }
                None => break,
            }
        }
    }
    all.sort_by(|x, y| y.0.id.cmp(&x.0.id));
    if f.order == Order::Oldest {
        all.reverse();
    }
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

/// Batches of scans in a list's order, read from the store.
enum Source {
    /// A date order: the filter's index, from a cursor.
    Dates(ScanFilter, Option<ScanCursor>),
    /// A score order: the score index, past a scan (`None` after the last batch).
    Scores {
        low_first: bool,
        past: Option<Option<Box<ScanRecord>>>,
    },
}

impl Source {
    fn new(app: &App, f: &Filters, past: Option<&str>) -> crate::app::Result<Source> {
        Ok(if f.order.by_score() {
            Source::Scores {
                low_first: f.order == Order::ScoreLow,
                past: Some(
                    past.map(|id| app.scan_record(id).map(Box::new))
                        .transpose()?,
                ),
            }
        } else {
            Source::Dates(f.store_filter(), Some(f.cursor(past)))
        })
    }

    /// The next batch, empty once every scan was read.
    fn next(&mut self, app: &App) -> crate::app::Result<Vec<ScanRecord>> {
        match self {
            Source::Dates(filter, cursor) => {
                let Some(c) = cursor.take() else {
                    return Ok(Vec::new());
                };
                let (scans, next) = app.scan_page(filter, &c, BATCH)?;
                *cursor = next.map(|n| c.following(n));
                Ok(scans)
            }
            Source::Scores { low_first, past } => {
                let Some(p) = past.take() else {
                    return Ok(Vec::new());
                };
                let scans = app.scans_by_score(*low_first, p.as_deref(), BATCH)?;
                if scans.len() == BATCH {
                    *past = Some(scans.last().cloned().map(Box::new));
                }
                Ok(scans)
            }
        }
    }

    /// The store applied the filter and date range itself.
    fn filtered(&self) -> bool {
        matches!(self, Source::Dates(..))
    }
}

/// Visits matching scans in the list's order from `past` (where the page before
/// ended), until `want` matched, `budget` scans were examined, or `visit` answers
/// false (its reader went away).
fn walk(
    app: &App,
    f: &Filters,
    past: Option<&str>,
    want: usize,
    budget: usize,
    visit: &mut dyn FnMut(&ScanRecord, Option<&AgentRecord>) -> bool,
) -> crate::app::Result<Walked> {
    let mut source = Source::new(app, f, past)?;
    let store_filter = f.store_filter();
    let mut agents = Agents::default();
    let (mut matched, mut examined) = (0usize, 0usize);
    loop {
        let scans = source.next(app)?;
        if scans.is_empty() {
            return Ok(Walked {
                next: None,
                cut_short: false,
            });
        }
        let filtered = source.filtered();
        agents.load(app, &scans);
        for s in &scans {
            examined += 1;
            let a = agents.of(app, &s.agent_id);
            let stored = filtered || (store_filter.matches(s) && f.in_dates(s));
            if stored && f.matches(s, a.as_ref()) {
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
    /// The URL parameter of `next`.
    cursor_param: &'static str,
    cut_short: bool,
    paged: bool,
    orders: [(Order, &'static str, &'static str); 4],
    order: &'static str,
    sort: Option<view::SortHeads>,
}

impl ListPage {
    fn value<'a>(&self, v: &'a Option<String>) -> &'a str {
        v.as_deref().unwrap_or("")
    }
}

/// The sortable column heads of the list: the link each leads to (its order, or the
/// reverse when it is the current one) and its `aria-sort`.
fn sort_heads(q: &ListQuery, order: Order) -> view::SortHeads {
    let mut rest = q.clone();
    rest.sort = None;
    let base = query_string(&rest);
    let href = |o: Order| {
        let mut h = String::from("/ui/scans?");
        if !base.is_empty() {
            h.push_str(&base);
            h.push('&');
        }
        h.push_str("sort=");
        h.push_str(o.name());
        h
    };
    let (score, score_aria) = match order {
        Order::ScoreLow => (Order::ScoreHigh, "ascending"),
        Order::ScoreHigh => (Order::ScoreLow, "descending"),
        _ => (Order::ScoreLow, ""),
    };
    let (date, date_aria) = match order {
        Order::Newest => (Order::Oldest, "descending"),
        Order::Oldest => (Order::Newest, "ascending"),
        _ => (Order::Newest, ""),
    };
    view::SortHeads {
        score_href: href(score),
        score_aria,
        date_href: href(date),
        date_aria,
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
        ("sort", &q.sort),
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
        cursor_param: "before",
        cut_short: false,
        paged: set(&q.before).is_some() || set(&q.after).is_some(),
        orders: Order::ALL,
        order: "newest",
        sort: None,
    };
    let f = match Filters::parse(&q) {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(format!("Not applied: {e}."));
            return Ok((StatusCode::BAD_REQUEST, view::html(&page)).into_response());
        }
    };
    page.order = f.order.name();
    page.cursor_param = f.order.cursor_param();
    page.sort = Some(sort_heads(&q, f.order));
    let past = set(if f.order == Order::Newest {
        &q.before
    } else {
        &q.after
    });
    let words = f.order.words();
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    // A host or IP search names few VMs: their scans come from the per-agent index.
    let searched = match &f.q {
        Some(q) if !f.order.by_score() => app.search_hosts(q, SEARCH_AGENTS).map_err(fail)?,
        _ => None,
    };
    if let Some(agents) = searched {
        let (rows, next) = scans_of_agents(&app, &f, &agents, past, PER_PAGE).map_err(fail)?;
        page.caption = format!(
            "{} scans of the {} VMs matching the search on this page, {words}",
            rows.len(),
            agents.len()
        );
        page.rows = rows;
        page.next = next;
    } else if f.needs_examining() {
        let mut rows = Vec::new();
        let w = walk(&app, &f, past, PER_PAGE, EXAMINE, &mut |s, a| {
            rows.push(ScanRow::new(s, a));
            true
        })
        .map_err(fail)?;
        page.caption = format!("{} matching scans on this page, {words}", rows.len());
        page.rows = rows;
        page.next = w.next;
        page.cut_short = w.cut_short;
    } else {
        let (scans, next) = app
            .scan_page(&f.store_filter(), &f.cursor(past), PER_PAGE)
            .map_err(fail)?;
        let mut agents = Agents::default();
        agents.load(&app, &scans);
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
                "{t} matching scans in all; {} on this page, {words}",
                page.rows.len()
            ),
            None => format!("{} scans on this page, {words}", page.rows.len()),
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

/// Sends the filtered list as CSV in chunks of about 64 KiB, in the list's order,
/// until done, the reader goes (`send` answers false) or `deadline` passes; a
/// failure or the deadline ends the stream with an error, so that the download is
/// seen to be cut short rather than taken for the whole list.
fn export(
    app: &App,
    f: &Filters,
    deadline: std::time::Instant,
    send: &mut dyn FnMut(Result<String, std::io::Error>) -> bool,
) {
    let mut buf = String::from(CSV_HEADER);
    let mut gone = false;
    let r = walk(app, f, None, usize::MAX, usize::MAX, &mut |s, a| {
        buf.push_str(&csv_row(s, a));
        if buf.len() >= 64 * 1024 && !send(Ok(std::mem::take(&mut buf))) {
            gone = true;
        }
        !gone && std::time::Instant::now() < deadline
    });
    if gone {
        return;
    }
    if std::time::Instant::now() >= deadline {
        tracing::warn!(
            "a CSV export took longer than its {} s and stopped",
            EXPORT_TIME.as_secs()
        );
        send(Err(std::io::Error::other("the export took too long")));
        return;
    }
    if let Err(e) = r {
        tracing::error!(error = %e, "CSV export stopped");
        send(Err(std::io::Error::other(e.to_string())));
        return;
    }
    if !buf.is_empty() {
        send(Ok(buf));
    }
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
        export(&app, &f, deadline, &mut |chunk| {
            tx.blocking_send(chunk).is_ok()
        });
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
        assert!(q(|q| q.q = Some("x".repeat(257)))
            .unwrap_err()
            .contains("q is longer than 256"));
        assert!(q(|q| q.project = Some("p".repeat(256))).is_ok());
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
        app_with(dir, n, |_, _| {})
    }

    /// An app whose store holds `n` scans made by `make` from pending ones.
    fn app_with(dir: &std::path::Path, n: usize, make: fn(usize, &mut ScanRecord)) -> App {
        let store = std::sync::Arc::new(
            crate::store::sled_store::SledStore::open(&dir.join("db")).unwrap(),
        );
        for i in 0..n {
            let mut s = ScanRecord::pending(
                format!("sc-{i:013}-0"),
                "ag-1",
                None,
                "manual",
                "level1-server",
                i as i64,
            );
            make(i, &mut s);
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

    /// Every scan a walk visits, in order, and how it ended.
    fn walked(app: &App, q: fn(&mut ListQuery), budget: usize) -> (Vec<ScanRecord>, Walked) {
        let mut lq = ListQuery::default();
        q(&mut lq);
        let f = Filters::parse(&lq).unwrap();
        let mut seen = Vec::new();
        let w = walk(app, &f, None, usize::MAX, budget, &mut |s, _| {
            seen.push(s.clone());
            true
        })
        .unwrap();
        (seen, w)
    }

    /// Scan `i`: completed with score `i * 37 % 101` (ties: several scans share one),
    /// in project `web` when `i` is a multiple of 3; every seventh still pending.
    fn scored(i: usize, s: &mut ScanRecord) {
        if !i.is_multiple_of(7) {
            s.status = ScanStatus::Completed;
            s.score = Some((i * 37 % 101) as f64);
        }
        if i.is_multiple_of(3) {
            s.project = Some("web".into());
        }
    }

    #[test]
    fn every_order_walks_the_whole_list_in_its_order() {
        // Over several store batches (500), with ties in score broken by scan ID.
        let d = tempfile::tempdir().unwrap();
        let app = app_with(d.path(), 1300, scored);
        let ids = |v: &[ScanRecord]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
        let (newest, _) = walked(&app, |_| {}, usize::MAX);
        let (mut oldest, _) = walked(&app, |q| q.sort = Some("oldest".into()), usize::MAX);
        assert_eq!(newest.len(), 1300);
        oldest.reverse();
        assert_eq!(ids(&oldest), ids(&newest));

        let key = |s: &ScanRecord| (s.score.unwrap() as i64, s.id.clone());
        let (low, _) = walked(&app, |q| q.sort = Some("score_low".into()), usize::MAX);
        let completed = (0..1300).filter(|i| i % 7 != 0).count();
        assert_eq!(low.len(), completed, "completed scans only");
        assert!(low.windows(2).all(|w| key(&w[0]) < key(&w[1])), "ascending");
        let (high, _) = walked(&app, |q| q.sort = Some("score_high".into()), usize::MAX);
        assert!(
            high.windows(2).all(|w| key(&w[0]) > key(&w[1])),
            "descending"
        );
        assert_eq!(high.len(), completed);

        // In a score order the store's filters and the dates still apply.
        let (web, _) = walked(
            &app,
            |q| {
                q.sort = Some("score_high".into());
                q.project = Some("web".into());
                q.min_score = Some("50".into());
            },
            usize::MAX,
        );
        let want = (0..1300)
            .filter(|i| i % 7 != 0 && i % 3 == 0 && i * 37 % 101 >= 50)
            .count();
        assert_eq!(web.len(), want);
        assert!(web.iter().all(|s| s.project.as_deref() == Some("web")));
        assert!(web.windows(2).all(|w| key(&w[0]) > key(&w[1])));

        // A page of a score order stops at its budget and says so.
        let (some, w) = walked(
            &app,
            |q| {
                q.sort = Some("score_low".into());
                q.project = Some("nowhere".into());
            },
            100,
        );
        assert!(some.is_empty() && w.cut_short && w.next.is_some());
    }

    #[test]
    fn orders_and_their_cursors() {
        let q = |f: fn(&mut ListQuery)| {
            let mut q = ListQuery::default();
            f(&mut q);
            Filters::parse(&q)
        };
        assert_eq!(q(|_| {}).unwrap().order, Order::Newest);
        assert_eq!(
            q(|q| q.sort = Some("oldest".into())).unwrap().order,
            Order::Oldest
        );
        assert!(q(|q| q.sort = Some("host".into()))
            .unwrap_err()
            .contains("sort `host`"));
        assert!(q(|q| {
            q.sort = Some("score_low".into());
            q.status = Some("failed".into());
        })
        .unwrap_err()
        .contains("completed scans only"));
        // Oldest first: the page starts after the cursor, but never before `from`.
        let f = q(|q| {
            q.sort = Some("oldest".into());
            q.from = Some("2026-12-05".into());
            q.to = Some("2026-12-06".into());
        })
        .unwrap();
        let c = f.cursor(Some("sc-0000000000001-x"));
        assert!(c.oldest_first);
        assert_eq!(c.after.as_deref(), Some("sc-1796428800000"));
        let c = f.cursor(Some("sc-1796430000000-x"));
        assert_eq!(c.after.as_deref(), Some("sc-1796430000000-x"));
        assert_eq!(c.before.as_deref(), Some("sc-1796601600000"));
        // The heads: each leads to its order, the current one to its reverse; the
        // filters stay, the cursor goes.
        let lq = ListQuery {
            project: Some("web".into()),
            sort: Some("score_low".into()),
            after: Some("sc-1".into()),
            ..Default::default()
        };
        let h = sort_heads(&lq, Order::ScoreLow);
        assert_eq!(h.score_href, "/ui/scans?project=web&sort=score_high");
        assert_eq!(h.score_aria, "ascending");
        assert_eq!(h.date_href, "/ui/scans?project=web&sort=newest");
        assert_eq!(h.date_aria, "");
        let h = sort_heads(&ListQuery::default(), Order::Newest);
        assert_eq!(h.date_href, "/ui/scans?sort=oldest");
        assert_eq!(h.date_aria, "descending");
        assert_eq!(h.score_href, "/ui/scans?sort=score_low");
    }

    #[test]
    fn an_export_past_its_deadline_ends_in_an_error() {
        let d = tempfile::tempdir().unwrap();
        let app = app_with_scans(d.path(), 3000);
        let f = Filters::default();
        let mut chunks: Vec<Result<String, std::io::Error>> = Vec::new();
        // In time: every scan, then the stream ends cleanly.
        export(
            &app,
            &f,
            std::time::Instant::now() + std::time::Duration::from_secs(600),
            &mut |c| {
                chunks.push(c);
                true
            },
        );
        assert!(chunks.iter().all(Result::is_ok));
        let csv: String = chunks.drain(..).map(Result::unwrap).collect();
        assert_eq!(csv.lines().count(), 3001);
        // Past the deadline: what was read, then an error that names it.
        export(&app, &f, std::time::Instant::now(), &mut |c| {
            chunks.push(c);
            true
        });
        let last = chunks.pop().unwrap().unwrap_err();
        assert!(last.to_string().contains("too long"), "{last}");
        assert!(chunks.iter().all(Result::is_ok));
        let partial: usize = chunks
            .iter()
            .map(|c| c.as_ref().unwrap().lines().count())
            .sum();
        assert!(partial < 3001, "cut short: {partial} lines");
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
