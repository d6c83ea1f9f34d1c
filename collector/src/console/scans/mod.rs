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

mod export;

pub use export::csv;

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

#[cfg(test)]
mod tests;
