//! What every page shows around its content (title, navigation, the user), and the
//! small formatting every view shares: times, scores, statuses, host labels, URLs.

use axum::response::{IntoResponse, Response};
use rampart_report::Severity;

use super::assets::Assets;
use crate::app::signin::ConsoleUser;
use crate::auth::Role;
use crate::store::{AgentRecord, ScanRecord, ScanStatus};

/// The signed-in user as the navigation shows them.
pub struct Who {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    /// Provisioners and admins see compliance results.
    pub sees_scans: bool,
    pub is_admin: bool,
}

/// Around every page: its title, the current section and the user.
pub struct Chrome {
    pub title: String,
    pub user: Option<Who>,
    /// Which navigation entry is this page's (`overview`, `scans`, `enroll`,
    /// `settings`, `users`, `audit`).
    pub current: &'static str,
    pub css: &'static str,
    pub htmx: &'static str,
    pub js: &'static str,
}

impl Chrome {
    pub fn new(title: &str, user: Option<&ConsoleUser>, current: &'static str) -> Chrome {
        let a = Assets::get();
        Chrome {
            title: title.to_string(),
            user: user.map(|u| Who {
                name: u.name.clone(),
                role: u.role.as_str(),
                csrf: u.session.csrf.clone(),
                sees_scans: u.role >= Role::Provisioner,
                is_admin: u.role >= Role::Admin,
            }),
            current,
            css: a.css_path(),
            htmx: a.htmx_path(),
            js: a.js_path(),
        }
    }

    /// `aria-current` for the navigation entry `name`.
    pub fn is(&self, name: &str) -> bool {
        self.current == name
    }
}

/// Renders a template as an HTML answer; a template that fails is a 500 in the log.
pub fn html<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => axum::response::Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console template failed to render");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2026-11-27 05:14 UTC`.
pub fn when(ms: i64) -> String {
    let full = rampart_report::format_ms(ms);
    // "YYYY-MM-DD HH:MM:SS UTC" → without the seconds.
    match (full.get(..16), full.get(19..)) {
        (Some(a), Some(b)) => format!("{a}{b}"),
        _ => full,
    }
}

/// A score with one decimal, or a dash.
pub fn score_text(score: Option<f64>) -> String {
    score.map_or_else(|| "–".to_string(), |s| format!("{s:.1}"))
}

/// The colour band of a score (green ≥ 90, amber ≥ 70, red below), for CSS.
pub fn band(score: Option<f64>) -> &'static str {
    match score {
        Some(s) if s >= 90.0 => "green",
        Some(s) if s >= 70.0 => "amber",
        Some(_) => "red",
        None => "none",
    }
}

/// The status as written: see [`ScanStatus::as_str`].
pub fn status_str(s: ScanStatus) -> &'static str {
    s.as_str()
}

/// A host's name, or its first address, or its agent ID: what a person recognises.
pub fn host_of(scan: &ScanRecord, agent: Option<&AgentRecord>) -> String {
    crate::report::host_label(scan, agent)
}

/// One scan as lists show it.
/// The sortable heads of a scan table (Score and Date): where each leads, and its
/// `aria-sort` when the table is in its order (empty otherwise).
pub struct SortHeads {
    pub score_href: String,
    pub score_aria: &'static str,
    pub date_href: String,
    pub date_aria: &'static str,
}

pub struct ScanRow {
    pub id: String,
    pub agent_id: String,
    pub host: String,
    pub ip: String,
    pub provider: String,
    pub project: String,
    pub score: String,
    pub band: &'static str,
    pub status: &'static str,
    /// The status badge's words: the status, and the verdict of a blocking scan.
    pub badge: String,
    pub critical: u32,
    pub date: String,
    /// Blocked and not released.
    pub blocking: bool,
    pub running: bool,
}

impl ScanRow {
    pub fn new(s: &ScanRecord, a: Option<&AgentRecord>) -> ScanRow {
        let blocking = s.is_blocking();
        let status = status_str(s.status);
        let badge = if blocking {
            format!("{status}, blocked")
        } else if s.blocked {
            format!("{status}, released")
        } else {
            status.to_string()
        };
        ScanRow {
            id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            host: host_of(s, a),
            ip: a
                .and_then(|a| a.ip_addresses.first().cloned())
                .unwrap_or_default(),
            provider: a
                .map(|a| a.provider.clone())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "–".into()),
            project: s.project.clone().unwrap_or_default(),
            score: score_text(s.score),
            band: band(s.score),
            status,
            badge,
            critical: s.failed_by_severity.get(Severity::Critical),
            date: when(s.created_at_ms),
            blocking,
            running: matches!(s.status, ScanStatus::Pending | ScanStatus::Running),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            url_encode("/ui/scans?status=a b&x=<"),
            "%2Fui%2Fscans%3Fstatus%3Da%20b%26x%3D%3C"
        );
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(score_text(Some(64.25)), "64.2");
        assert_eq!(score_text(None), "–");
        assert_eq!(
            [
                band(Some(90.0)),
                band(Some(89.9)),
                band(Some(70.0)),
                band(Some(69.9)),
                band(None)
            ],
            ["green", "amber", "amber", "red", "none"]
        );
    }
}
