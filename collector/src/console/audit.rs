//! The audit log (admin; SPEC §4): newest first, filtered by action and actor (state in
//! the URL), paged by cursor as the API pages it, with the hash chain checked for the
//! entries on the page. Verifying the whole chain reads every entry, which a page view
//! must not do on a large store; `rampart-collector audit verify` does that.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::view::{self, Chrome};
use super::{Failure, Page, Ui};
use crate::app::App;
use crate::auth::Role;
use crate::store::audit_chain::{self, ChainBreak};
use crate::store::{AuditFilter, AuditRecord};

/// Entries per page.
const PER_PAGE: usize = 50;
/// The longest action or actor a filter takes.
const MAX_FILTER: usize = 128;

/// Actions the collector records, offered as suggestions in the filter form.
const ACTIONS: [&str; 20] = [
    "agent.enroll",
    "agent.reenroll",
    "agent.renew",
    "agent.revoke",
    "agent.supersede",
    "console.signin",
    "console.signin_failed",
    "console.signout",
    "enrollment.refused",
    "policy.warn",
    "retention.results",
    "scan.cancel",
    "scan.create",
    "scan.release",
    "settings.change",
    "token.create",
    "token.revoke",
    "user.create",
    "user.password",
    "user.revoke",
];

/// The page's query, as the filter form and the pager links send it.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    /// Cursor: entries older than this sequence number.
    before: Option<String>,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The filter and cursor of a query, or what is wrong with it.
fn parse(q: &AuditQuery) -> Result<(AuditFilter, Option<u64>), String> {
    let text = |field: &str, v: &Option<String>| match set(v) {
        Some(s) if s.len() > MAX_FILTER => {
            Err(format!("{field} is longer than {MAX_FILTER} characters"))
        }
        other => Ok(other.map(String::from)),
    };
    let before = match set(&q.before) {
        None => None,
        Some(b) => Some(b.parse::<u64>().map_err(|_| {
            format!(
                "before `{}` is not a sequence number",
                crate::limits::echo(b)
            )
        })?),
    };
    Ok((
        AuditFilter {
            action: text("action", &q.action)?,
            actor: text("actor", &q.actor)?,
        },
        before,
    ))
}

/// The query string of the filters (without the cursor).
fn query_string(f: &AuditFilter) -> String {
    [("action", &f.action), ("actor", &f.actor)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", view::url_encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// The chain's state on a page, in words.
pub struct ChainState {
    pub intact: bool,
    pub words: String,
}

/// What the page says of its entries' chain (see [`audit_chain::verify_window`]).
pub fn chain_state(result: Result<usize, ChainBreak>) -> ChainState {
    match result {
        Ok(0) => ChainState {
            intact: true,
            words: "No entries are shown, so there is no chain to check on this page.".into(),
        },
        Ok(1) => ChainState {
            intact: true,
            words: "The entry shown chains correctly: its hash matches its content and \
                    links to the entry before it."
                .into(),
        },
        Ok(n) => ChainState {
            intact: true,
            words: format!(
                "The {n} entries shown chain correctly: each one's hash matches its \
                 content and links to the entry before it."
            ),
        },
        Err(b) => ChainState {
            intact: false,
            words: format!(
                "The chain is broken at seq {}: {}. The log was changed outside the \
                 collector; stop it and run `rampart-collector audit verify`.",
                b.seq, b.problem
            ),
        },
    }
}

/// The entries just below the shown ones that are not shown themselves (a filtered
/// page, or the page's oldest entry), one key-range read each.
fn neighbours(app: &App, shown: &[AuditRecord]) -> crate::app::Result<Vec<AuditRecord>> {
    let mut out: Vec<AuditRecord> = Vec::new();
    let all = AuditFilter::default();
    for e in shown {
        let below = e.seq.saturating_sub(1);
        if below == 0 || shown.iter().any(|s| s.seq == below) || out.iter().any(|s| s.seq == below)
        {
            continue;
        }
        // The newest entry older than `e`: `below` itself unless it is missing.
        out.extend(app.audit_log(&all, Some(e.seq), 0, 1)?.entries);
    }
    Ok(out)
}

/// One entry as the table shows it.
pub struct Row {
    seq: u64,
    when: String,
    actor: String,
    action: String,
    target: String,
    detail: String,
}

impl From<&AuditRecord> for Row {
    fn from(e: &AuditRecord) -> Row {
        Row {
            seq: e.seq,
            when: view::when(e.at_ms),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone().unwrap_or_default(),
            detail: e.detail.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    action: String,
    actor: String,
    actions: [&'static str; 20],
    error: Option<String>,
    chain: Option<ChainState>,
    rows: Vec<Row>,
    caption: String,
    /// The filters' query string, for the pager.
    query: String,
    next: Option<u64>,
    paged: bool,
}

pub async fn page(State(app): State<Arc<App>>, ui: Ui, uri: axum::http::Uri) -> Page {
    let u = ui.require(Role::Admin, "The audit log")?;
    let q: AuditQuery = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, e.body_text()).with_user(u))?;
    let mut page = AuditPage {
        c: Chrome::new("Audit log", Some(u), "audit"),
        action: set(&q.action).unwrap_or_default().to_string(),
        actor: set(&q.actor).unwrap_or_default().to_string(),
        actions: ACTIONS,
        error: None,
        chain: None,
        rows: Vec::new(),
        caption: String::new(),
        query: String::new(),
        next: None,
        paged: set(&q.before).is_some(),
    };
    let (filter, before) = match parse(&q) {
        Ok(p) => p,
        Err(e) => {
            page.error = Some(format!("Not applied: {e}."));
            return Ok((StatusCode::BAD_REQUEST, view::html(&page)).into_response());
        }
    };
    let fail = |e: crate::app::AppError| Failure::from(e).with_user(u);
    let list = app.audit_log(&filter, before, 0, PER_PAGE).map_err(fail)?;
    let below = neighbours(&app, &list.entries).map_err(fail)?;
    page.chain = Some(chain_state(audit_chain::verify_window(
        &list.entries,
        &below,
    )));
    page.caption = format!(
        "{} matching entries in all; {} on this page, newest first",
        list.total,
        list.entries.len()
    );
    page.rows = list.entries.iter().map(Row::from).collect();
    page.query = query_string(&filter);
    page.next = list.next;
    Ok(view::html(&page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit_chain::Break;

    fn q(action: &str, actor: &str, before: &str) -> AuditQuery {
        let v = |s: &str| Some(s.to_string());
        AuditQuery {
            action: v(action),
            actor: v(actor),
            before: v(before),
        }
    }

    #[test]
    fn queries_are_checked() {
        let (f, b) = parse(&q(" user.create ", "", "")).unwrap();
        assert_eq!(
            (f.action.as_deref(), f.actor, b),
            (Some("user.create"), None, None)
        );
        let (f, b) = parse(&q("", "ada@ops", "120")).unwrap();
        assert_eq!((f.actor.as_deref(), b), (Some("ada@ops"), Some(120)));
        assert_eq!(query_string(&f), "actor=ada%40ops");
        assert!(parse(&q("", "", "-1")).unwrap_err().contains("before"));
        assert!(parse(&q("", "", "x<y>")).unwrap_err().contains("x<y>"));
        assert!(parse(&q(&"a".repeat(129), "", ""))
            .unwrap_err()
            .contains("action"));
        let all = AuditQuery::default();
        assert_eq!(query_string(&parse(&all).unwrap().0), "");
    }

    #[test]
    fn the_chain_state_is_said_in_words() {
        let s = chain_state(Ok(50));
        assert!(s.intact && s.words.starts_with("The 50 entries shown chain correctly"));
        assert!(chain_state(Ok(1)).words.starts_with("The entry shown"));
        assert!(chain_state(Ok(0)).intact);
        let s = chain_state(Err(ChainBreak {
            seq: 7,
            problem: Break::Hash {
                stored: "a".into(),
                computed: "b".into(),
            },
        }));
        assert!(!s.intact);
        assert!(s.words.contains("broken at seq 7") && s.words.contains("edited"));
    }
}
