//! Per-scan reports (SPEC §4 "Reports, per scan"): one self-contained HTML file and
//! the full JSON document. Both are pure functions of a scan record, its stored
//! results, the rule catalogue the agent sent and the agent's record.
//!
//! Every string that comes from an agent or a catalogue (host name, evidence, which
//! quotes file contents, titles, remediation) is untrusted: the HTML escapes all of it.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::app::Catalog;
use crate::store::{AgentRecord, ResultRecord, ScanRecord, ScanStatus};

/// Everything a report is made from.
pub struct ReportInput<'a> {
    pub scan: &'a ScanRecord,
    pub agent: Option<&'a AgentRecord>,
    pub catalog: Option<&'a Catalog>,
    pub results: &'a [ResultRecord],
}

/// The colour band of a score (SPEC §4 overview): green ≥ 90, amber ≥ 70, red below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Green,
    Amber,
    Red,
}

impl Band {
    pub fn of(score: f64) -> Band {
        if score >= 90.0 {
            Band::Green
        } else if score >= 70.0 {
            Band::Amber
        } else {
            Band::Red
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Band::Green => "green",
            Band::Amber => "amber",
            Band::Red => "red",
        }
    }
}

/// Escapes text for HTML element content and double- or single-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab/newline have no business in a report.
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The host a scan belongs to, as people know it: host name, else first address,
/// else the agent ID.
pub fn host_label(scan: &ScanRecord, agent: Option<&AgentRecord>) -> String {
    match agent {
        Some(a) if !a.hostname.trim().is_empty() => a.hostname.trim().to_string(),
        Some(a) if !a.ip_addresses.is_empty() => a.ip_addresses[0].clone(),
        _ => scan.agent_id.clone(),
    }
}

/// `rampart-<host>-<scan id>.<ext>`, with anything outside `[A-Za-z0-9._-]` replaced,
/// so that the name is safe inside a quoted `Content-Disposition` header and on disk.
pub fn file_name(host: &str, scan_id: &str, ext: &str) -> String {
    let clean = |s: &str| -> String {
        let t: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        t.trim_start_matches('.').to_string()
    };
    let host = match clean(host) {
        h if h.is_empty() => "host".to_string(),
        h => h,
    };
    format!("rampart-{host}-{}.{ext}", clean(scan_id))
}

/// Formats milliseconds since the epoch as UTC, e.g. `2026-11-27 05:14:38 UTC`.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn status_str(s: ScanStatus) -> &'static str {
    match s {
        ScanStatus::Pending => "pending",
        ScanStatus::Running => "running",
        ScanStatus::Completed => "completed",
        ScanStatus::Failed => "failed",
        ScanStatus::Cancelled => "cancelled",
    }
}

/// Failures first, then errors, then passes, then the rest.
fn status_rank(s: &str) -> u8 {
    match s {
        "fail" => 0,
        "error" => 1,
        "pass" => 2,
        "not_checked" => 3,
        "not_applicable" => 4,
        "exempted" => 5,
        _ => 6,
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        "low" => 3,
        _ => 4,
    }
}

/// Orders CIS IDs numerically, component by component (`1.2.10` after `1.2.9`).
pub fn cmp_rule_ids(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// One rule of the report, its result joined with its catalogue entry.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    pub id: String,
    pub title: Option<String>,
    pub section: Option<String>,
    pub status: String,
    pub severity: Option<String>,
    pub evidence: Vec<String>,
    pub remediation: Option<String>,
    pub description: Option<String>,
}

fn rows(input: &ReportInput) -> Vec<RuleRow> {
    input
        .results
        .iter()
        .map(|r| {
            let meta = input.catalog.and_then(|c| c.rules.get(&r.rule_id));
            RuleRow {
                id: r.rule_id.clone(),
                title: meta.map(|m| m.title.clone()),
                section: meta.map(|m| m.section.clone()),
                status: r.status.clone(),
                severity: meta.map(|m| m.severity.clone()),
                evidence: r.evidence.clone(),
                remediation: meta.map(|m| m.remediation.clone()),
                description: meta.map(|m| m.description.clone()),
            }
        })
        .collect()
}

/// Rules grouped by section (sections in the order of their first rule ID), failures
/// first within a section, then by severity, then by ID.
pub fn grouped(input: &ReportInput) -> Vec<(String, Vec<RuleRow>)> {
    let mut by: BTreeMap<String, Vec<RuleRow>> = BTreeMap::new();
    for r in rows(input) {
        let s = r
            .section
            .clone()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "Other".to_string());
        by.entry(s).or_default().push(r);
    }
    let mut groups: Vec<(String, Vec<RuleRow>)> = by.into_iter().collect();
    for (_, rs) in &mut groups {
        rs.sort_by(|a, b| {
            status_rank(&a.status)
                .cmp(&status_rank(&b.status))
                .then_with(|| {
                    severity_rank(a.severity.as_deref().unwrap_or(""))
                        .cmp(&severity_rank(b.severity.as_deref().unwrap_or("")))
                })
                .then_with(|| cmp_rule_ids(&a.id, &b.id))
        });
    }
    let first = |rs: &[RuleRow]| -> String {
        rs.iter()
            .map(|r| r.id.clone())
            .min_by(|a, b| cmp_rule_ids(a, b))
            .unwrap_or_default()
    };
    groups.sort_by(|(_, a), (_, b)| cmp_rule_ids(&first(a), &first(b)));
    groups
}

// ---------------------------------------------------------------- JSON

#[derive(Serialize)]
struct JsonSeverity {
    critical: u32,
    high: u32,
    medium: u32,
    low: u32,
}

#[derive(Serialize)]
struct JsonHost {
    agent_id: String,
    hostname: Option<String>,
    ip_addresses: Vec<String>,
    provider: Option<String>,
    instance_id: Option<String>,
    os: Option<String>,
}

#[derive(Serialize)]
struct JsonBenchmark {
    id: String,
    title: String,
    version: String,
    content_version: String,
}

#[derive(Serialize)]
struct JsonScan<'a> {
    id: &'a str,
    agent_id: &'a str,
    hostname: Option<&'a str>,
    project: Option<&'a str>,
    status: ScanStatus,
    trigger: &'a str,
    profile: &'a str,
    created_at_ms: i64,
    started_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    score: Option<f64>,
    score_band: Option<Band>,
    passed: u32,
    failed: u32,
    error: u32,
    not_applicable: u32,
    not_checked: u32,
    exempted: u32,
    failed_by_severity: JsonSeverity,
    blocked: bool,
    block_reasons: &'a [String],
    released_by: Option<&'a str>,
    released_at_ms: Option<i64>,
    failure_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    report_format: &'static str,
    generated_at_ms: i64,
    scan: JsonScan<'a>,
    host: JsonHost,
    benchmark: Option<JsonBenchmark>,
    rules: Vec<RuleRow>,
}

/// The full JSON report: the scan as the API shows it, the host, the benchmark and
/// every rule with its details, in rule-ID order.
pub fn json(input: &ReportInput, generated_at_ms: i64) -> serde_json::Value {
    let s = input.scan;
    let mut rules = rows(input);
    rules.sort_by(|a, b| cmp_rule_ids(&a.id, &b.id));
    let report = JsonReport {
        report_format: "rampart-scan-report/1",
        generated_at_ms,
        scan: JsonScan {
            id: &s.id,
            agent_id: &s.agent_id,
            hostname: input.agent.map(|a| a.hostname.as_str()),
            project: s.project.as_deref(),
            status: s.status,
            trigger: &s.trigger,
            profile: &s.profile,
            created_at_ms: s.created_at_ms,
            started_at_ms: s.started_at_ms,
            finished_at_ms: s.finished_at_ms,
            score: s.score,
            score_band: s.score.map(Band::of),
            passed: s.passed,
            failed: s.failed,
            error: s.error,
            not_applicable: s.not_applicable,
            not_checked: s.not_checked,
            exempted: s.exempted,
            failed_by_severity: JsonSeverity {
                critical: s.failed_by_severity[0],
                high: s.failed_by_severity[1],
                medium: s.failed_by_severity[2],
                low: s.failed_by_severity[3],
            },
            blocked: s.blocked,
            block_reasons: &s.block_reasons,
            released_by: s.released_by.as_deref(),
            released_at_ms: s.released_at_ms,
            failure_reason: s.failure_reason.as_deref(),
        },
        host: JsonHost {
            agent_id: s.agent_id.clone(),
            hostname: input.agent.map(|a| a.hostname.clone()),
            ip_addresses: input
                .agent
                .map(|a| a.ip_addresses.clone())
                .unwrap_or_default(),
            provider: input.agent.map(|a| a.provider.clone()),
            instance_id: input.agent.map(|a| a.instance_id.clone()),
            os: input.agent.map(|a| a.os.clone()),
        },
        benchmark: input.catalog.map(|c| JsonBenchmark {
            id: c.benchmark_id.clone(),
            title: c.benchmark_title.clone(),
            version: c.benchmark_version.clone(),
            content_version: c.content_version.clone(),
        }),
        rules,
    };
    serde_json::to_value(report).unwrap_or(serde_json::Value::Null)
}

// ---------------------------------------------------------------- HTML

const CSS: &str = r#"
:root{--green:#1e7b34;--amber:#b26a00;--red:#b3261e;--grey:#5f6368;--line:#d9dce1}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
.sub{color:var(--grey);margin:0 0 16px}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 16px}
.meta dt{color:var(--grey)}.meta dd{margin:0}
.score{display:inline-block;font-size:28px;font-weight:700;padding:6px 16px;border-radius:8px;color:#fff}
.band-green{background:var(--green)}.band-amber{background:var(--amber)}.band-red{background:var(--red)}.band-none{background:var(--grey)}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}
.counts span{border:1px solid var(--line);border-radius:6px;padding:4px 10px}
.alert{border-left:4px solid var(--red);background:#fdecea;padding:8px 12px;margin:12px 0}
.ok{border-left:4px solid var(--green);background:#e8f5ec;padding:8px 12px;margin:12px 0}
table{width:100%;border-collapse:collapse;margin:4px 0 12px}
th,td{text-align:left;vertical-align:top;border-bottom:1px solid var(--line);padding:6px 8px}
th{background:#f0f2f5;font-weight:600}
td.id{white-space:nowrap;font-family:ui-monospace,Menlo,Consolas,monospace}
.st{font-weight:700;text-transform:uppercase;font-size:12px;white-space:nowrap}
.st-fail{color:var(--red)}.st-error{color:var(--amber)}.st-pass{color:var(--green)}
.st-not_applicable,.st-not_checked,.st-exempted{color:var(--grey)}
.sev-critical{color:var(--red);font-weight:700}.sev-high{color:var(--red)}
pre{white-space:pre-wrap;word-break:break-word;margin:0;font:12px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f6f8fa;padding:4px 6px;border-radius:4px}
details summary{cursor:pointer;color:var(--grey)}
.filter{margin:16px 0}.filter label{margin-right:12px}
footer{color:var(--grey);font-size:12px;margin-top:32px}
@media print{
 body{background:#fff;font-size:11px}main{max-width:none;padding:0}
 .filter{display:none}
 .score,.band-green,.band-amber,.band-red{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 tr{break-inside:avoid}h2{break-after:avoid}
 details>*{display:block}details summary{display:none}
 tr.hidden{display:table-row}
}
tr.hidden{display:none}
"#;

/// A small progressive enhancement: checkboxes that hide rows by status. Without
/// JavaScript the checkboxes do nothing and every row stays visible.
const SCRIPT: &str = r#"
(function(){
 var boxes=document.querySelectorAll('.filter input[type=checkbox]');
 function apply(){
  var on={};boxes.forEach(function(b){on[b.value]=b.checked;});
  document.querySelectorAll('tr[data-status]').forEach(function(r){
   r.classList.toggle('hidden',on[r.getAttribute('data-status')]===false);
  });
 }
 boxes.forEach(function(b){b.addEventListener('change',apply);});
 document.querySelector('.filter').hidden=false;
})();
"#;

fn status_label(s: &str) -> &str {
    match s {
        "fail" => "fail",
        "pass" => "pass",
        "error" => "error",
        "not_applicable" => "n/a",
        "not_checked" => "not checked",
        "exempted" => "exempted",
        other => other,
    }
}

/// A CSS class suffix for a status: only known values, never agent text.
fn status_class(s: &str) -> &'static str {
    match s {
        "fail" => "fail",
        "pass" => "pass",
        "error" => "error",
        "not_applicable" => "not_applicable",
        "not_checked" => "not_checked",
        "exempted" => "exempted",
        _ => "other",
    }
}

fn severity_class(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "high" => "high",
        "medium" => "medium",
        "low" => "low",
        _ => "other",
    }
}

/// The HTML report: one self-contained document, no external assets.
pub fn html(input: &ReportInput, generated_at_ms: i64) -> String {
    use std::fmt::Write;
    let s = input.scan;
    let e = escape;
    let host = host_label(s, input.agent);
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rampart CIS report: {} ({})</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        e(&host),
        e(&s.id)
    );
    let _ = writeln!(o, "<h1>CIS compliance report: {}</h1>", e(&host));
    let bench = input
        .catalog
        .map(|c| {
            if c.benchmark_version.is_empty() {
                c.benchmark_title.clone()
            } else {
                format!("{} {}", c.benchmark_title, c.benchmark_version)
            }
        })
        .unwrap_or_else(|| "unknown benchmark (no rule catalogue received)".into());
    let _ = writeln!(
        o,
        "<p class=\"sub\">{} · profile {}</p>",
        e(&bench),
        e(&s.profile)
    );

    // Score.
    match s.score {
        Some(v) => {
            let b = Band::of(v);
            let _ = writeln!(
                o,
                "<p><span class=\"score band-{}\" data-band=\"{}\">{v:.1}%</span></p>",
                b.as_str(),
                b.as_str()
            );
        }
        None => {
            let _ = writeln!(
                o,
                "<p><span class=\"score band-none\" data-band=\"none\">no score</span></p>"
            );
        }
    }

    // Identity.
    o.push_str("<dl class=\"meta\">\n");
    let mut meta = |k: &str, v: &str| {
        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", e(k), e(v));
    };
    if let Some(a) = input.agent {
        meta("Host name", &a.hostname);
        meta("IP addresses", &a.ip_addresses.join(", "));
        meta("Provider", &a.provider);
        if !a.instance_id.is_empty() {
            meta("Instance", &a.instance_id);
        }
        if !a.os.is_empty() {
            meta("Operating system", &a.os);
        }
    }
    meta("Agent", &s.agent_id);
    if let Some(p) = &s.project {
        meta("Project", p);
    }
    meta("Benchmark", &bench);
    meta("Profile", &s.profile);
    meta("Scan", &s.id);
    meta("Status", status_str(s.status));
    meta("Trigger", &s.trigger);
    meta("Created", &format_ms(s.created_at_ms));
    if let Some(t) = s.finished_at_ms {
        meta("Finished", &format_ms(t));
    }
    if let Some(r) = &s.failure_reason {
        meta("Failure", r);
    }
    o.push_str("</dl>\n");

    // Counts.
    let _ = writeln!(
        o,
        "<div class=\"counts\"><span>passed <b>{}</b></span><span>failed <b>{}</b></span>\
         <span>error <b>{}</b></span><span>not applicable <b>{}</b></span>\
         <span>not checked <b>{}</b></span><span>exempted <b>{}</b></span>\
         <span>failed critical <b>{}</b></span><span>failed high <b>{}</b></span>\
         <span>failed medium <b>{}</b></span><span>failed low <b>{}</b></span></div>",
        s.passed,
        s.failed,
        s.error,
        s.not_applicable,
        s.not_checked,
        s.exempted,
        s.failed_by_severity[0],
        s.failed_by_severity[1],
        s.failed_by_severity[2],
        s.failed_by_severity[3]
    );

    // Handover.
    if s.blocked {
        o.push_str("<div class=\"alert\"><b>Handover blocked</b><ul>\n");
        for r in &s.block_reasons {
            let _ = writeln!(o, "<li>{}</li>", e(r));
        }
        o.push_str("</ul>");
        match (&s.released_by, s.released_at_ms) {
            (Some(who), when) => {
                let _ = write!(
                    o,
                    "<p>Released by <b>{}</b>{}.</p>",
                    e(who),
                    when.map(|t| format!(" on {}", e(&format_ms(t))))
                        .unwrap_or_default()
                );
            }
            _ => o.push_str("<p>Not released.</p>"),
        }
        o.push_str("</div>\n");
    } else if s.status == ScanStatus::Completed {
        o.push_str("<div class=\"ok\">Handover not blocked by this scan.</div>\n");
    }

    // Filter (hidden until the script runs).
    o.push_str("<div class=\"filter\" hidden>Show: ");
    for (v, l) in [
        ("fail", "fail"),
        ("error", "error"),
        ("pass", "pass"),
        ("not_checked", "not checked"),
        ("not_applicable", "n/a"),
        ("exempted", "exempted"),
    ] {
        let _ = write!(
            o,
            "<label><input type=\"checkbox\" value=\"{v}\" checked> {l}</label>"
        );
    }
    o.push_str("</div>\n");

    // Rules.
    let groups = grouped(input);
    if groups.is_empty() {
        o.push_str("<p>No rule results were recorded for this scan.</p>\n");
    }
    for (section, rules) in &groups {
        let fails = rules.iter().filter(|r| r.status == "fail").count();
        let _ = writeln!(
            o,
            "<section>\n<h2>{} <small>({} rule(s), {} failed)</small></h2>",
            e(section),
            rules.len(),
            fails
        );
        o.push_str(
            "<table>\n<thead><tr><th>ID</th><th>Rule</th><th>Status</th><th>Severity</th>\
             <th>Evidence</th><th>Remediation</th></tr></thead>\n<tbody>\n",
        );
        for r in rules {
            let sev = r.severity.as_deref().unwrap_or("");
            let _ = write!(
                o,
                "<tr data-status=\"{}\" data-rule=\"{}\"><td class=\"id\">{}</td><td>{}</td>\
                 <td class=\"st st-{}\">{}</td><td class=\"sev-{}\">{}</td><td>",
                status_class(&r.status),
                e(&r.id),
                e(&r.id),
                e(r.title.as_deref().unwrap_or("(no title in catalogue)")),
                status_class(&r.status),
                e(status_label(&r.status)),
                severity_class(sev),
                e(if sev.is_empty() { "–" } else { sev }),
            );
            if r.evidence.is_empty() {
                o.push('–');
            } else {
                let _ = write!(o, "<pre>{}</pre>", e(&r.evidence.join("\n")));
            }
            o.push_str("</td><td>");
            match r.remediation.as_deref() {
                Some(rem) if !rem.trim().is_empty() => {
                    let _ = write!(
                        o,
                        "<details{}><summary>remediation</summary><pre>{}</pre></details>",
                        if r.status == "fail" { " open" } else { "" },
                        e(rem.trim())
                    );
                }
                _ => o.push('–'),
            }
            o.push_str("</td></tr>\n");
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }
    let _ = writeln!(
        o,
        "<footer>Generated by Rampart on {}.</footer>\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>",
        e(&format_ms(generated_at_ms))
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::CatalogRule;

    fn scan(score: Option<f64>) -> ScanRecord {
        ScanRecord {
            id: "s1".into(),
            agent_id: "a1".into(),
            project: Some("web".into()),
            status: ScanStatus::Completed,
            trigger: "provision".into(),
            profile: "level1-server".into(),
            created_at_ms: 1_700_000_000_000,
            started_at_ms: None,
            finished_at_ms: Some(1_700_000_060_000),
            last_progress_ms: 0,
            score,
            passed: 2,
            failed: 2,
            error: 0,
            not_applicable: 0,
            not_checked: 0,
            exempted: 0,
            failed_by_severity: [1, 0, 1, 0],
            blocked: true,
            block_reasons: vec!["1 critical CIS check(s) failed <b>".into()],
            released_by: Some("alice".into()),
            released_at_ms: Some(1_700_000_100_000),
            failure_reason: None,
            content_version: Some("v1".into()),
        }
    }

    fn agent() -> AgentRecord {
        AgentRecord {
            id: "a1".into(),
            hostname: "web-<1>".into(),
            ip_addresses: vec!["10.0.0.5".into()],
            provider: "aws".into(),
            instance_id: "i-123".into(),
            os: "Debian 12".into(),
            project: Some("web".into()),
            labels: Default::default(),
            enrolled_at_ms: 0,
            last_seen_ms: 0,
            cert_serial: String::new(),
            cert_not_after_ms: 0,
            revoked: false,
        }
    }

    fn rule(section: &str, severity: &str) -> CatalogRule {
        CatalogRule {
            title: format!("Title of a {severity} rule"),
            section: section.into(),
            description: "Why it matters.".into(),
            remediation: "Do the <right> thing & check.".into(),
            severity: severity.into(),
            level: 1,
            automated: true,
        }
    }

    fn catalog() -> Catalog {
        let mut c = Catalog {
            content_version: "v1".into(),
            benchmark_id: "debian12".into(),
            benchmark_title: "CIS Debian Linux 12 Benchmark".into(),
            benchmark_version: "1.1.0".into(),
            rules: Default::default(),
        };
        c.rules.insert("1.1.1".into(), rule("Filesystem", "low"));
        c.rules.insert("1.1.2".into(), rule("Filesystem", "medium"));
        c.rules.insert("1.1.10".into(), rule("Filesystem", "low"));
        c.rules
            .insert("5.4.1".into(), rule("User accounts", "critical"));
        c
    }

    fn results() -> Vec<ResultRecord> {
        let r = |id: &str, st: &str, ev: &str| ResultRecord {
            rule_id: id.into(),
            status: st.into(),
            evidence: vec![ev.into()],
        };
        vec![
            r("1.1.1", "pass", "ok"),
            r("1.1.2", "pass", "ok too"),
            r(
                "1.1.10",
                "fail",
                "/etc/motd contains <script>alert(1)</script>",
            ),
            r("5.4.1", "fail", "toor has UID 0 \"quoted\" & 'single'"),
        ]
    }

    fn render(score: Option<f64>) -> String {
        let (s, a, c, r) = (scan(score), agent(), catalog(), results());
        html(
            &ReportInput {
                scan: &s,
                agent: Some(&a),
                catalog: Some(&c),
                results: &r,
            },
            1_700_000_200_000,
        )
    }

    #[test]
    fn evidence_and_agent_strings_are_escaped() {
        let h = render(Some(50.0));
        assert!(!h.contains("<script>alert(1)</script>"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!h.contains("web-<1>"));
        assert!(h.contains("web-&lt;1&gt;"));
        assert!(h.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
        assert!(h.contains("Do the &lt;right&gt; thing &amp; check."));
        assert!(h.contains("failed &lt;b&gt;"));
        // The only script element is the report's own filter.
        assert_eq!(h.matches("<script").count(), 1);
        assert_eq!(escape("a\u{7}b"), "a\u{FFFD}b");
    }

    #[test]
    fn failures_come_first_within_a_section_and_sections_in_id_order() {
        let h = render(Some(50.0));
        let pos = |id: &str| {
            h.find(&format!("data-rule=\"{id}\""))
                .unwrap_or_else(|| panic!("rule {id} missing"))
        };
        // 1.1.10 failed: before the passes of its section, despite its ID.
        assert!(pos("1.1.10") < pos("1.1.1"));
        // Within a status, by severity: the medium 1.1.2 before the low 1.1.1.
        assert!(pos("1.1.2") < pos("1.1.1"));
        // Sections ordered by their first rule ID, not by name or failures.
        assert!(pos("1.1.1") < pos("5.4.1"));
        assert!(h.find("Filesystem").unwrap() < h.find("User accounts").unwrap());
    }

    #[test]
    fn score_colour_band() {
        assert_eq!(Band::of(90.0), Band::Green);
        assert_eq!(Band::of(89.9), Band::Amber);
        assert_eq!(Band::of(70.0), Band::Amber);
        assert_eq!(Band::of(69.99), Band::Red);
        assert!(render(Some(95.0)).contains("class=\"score band-green\""));
        assert!(render(Some(75.0)).contains("class=\"score band-amber\""));
        assert!(render(Some(50.0)).contains("class=\"score band-red\""));
        assert!(render(None).contains("band-none"));
    }

    #[test]
    fn header_names_host_provider_benchmark_and_release() {
        let h = render(Some(50.0));
        for want in [
            "10.0.0.5",
            "aws",
            "CIS Debian Linux 12 Benchmark 1.1.0",
            "level1-server",
            "Handover blocked",
            "Released by <b>alice</b>",
            "2023-11-14 22:15:00 UTC",
        ] {
            assert!(h.contains(want), "missing {want}");
        }
        assert!(!h.contains("http://") && !h.contains("https://"));
    }

    #[test]
    fn json_has_every_rule_with_details() {
        let (s, a, c, r) = (scan(Some(50.0)), agent(), catalog(), results());
        let j = json(
            &ReportInput {
                scan: &s,
                agent: Some(&a),
                catalog: Some(&c),
                results: &r,
            },
            0,
        );
        let rules = j["rules"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1.1.1", "1.1.2", "1.1.10", "5.4.1"]);
        assert_eq!(rules[3]["severity"], "critical");
        assert_eq!(rules[3]["section"], "User accounts");
        assert_eq!(rules[3]["description"], "Why it matters.");
        assert_eq!(j["scan"]["score_band"], "red");
        assert_eq!(j["scan"]["released_by"], "alice");
        assert_eq!(j["host"]["provider"], "aws");
        assert_eq!(j["benchmark"]["version"], "1.1.0");
    }

    #[test]
    fn file_names_are_header_safe() {
        assert_eq!(file_name("web-1", "S1", "html"), "rampart-web-1-S1.html");
        assert_eq!(
            file_name("a\"b/c\r\nd", "x", "json"),
            "rampart-a_b_c__d-x.json"
        );
        assert_eq!(file_name("..", "x", "json"), "rampart-host-x.json");
    }
}
