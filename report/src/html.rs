//! The HTML report: one self-contained document (inline CSS, no external assets),
//! readable without JavaScript and on paper; a status filter where JavaScript runs.

use std::fmt::Write;

use crate::escape::escape_html as e;
use crate::{format_ms, grouped, Band, Doc, Severity, Status};

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

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Fail => "fail",
        Status::Pass => "pass",
        Status::Error => "error",
        Status::NotApplicable => "n/a",
        Status::NotChecked => "not checked",
        Status::Exempted => "exempted",
    }
}

/// A CSS class suffix for a severity: only known values, never catalogue text.
fn severity_class(s: Option<Severity>) -> &'static str {
    s.map_or("other", Severity::as_str)
}

/// The HTML report of `doc`.
pub fn html(doc: &Doc) -> String {
    let host = doc.host_label();
    let mut o = String::with_capacity(64 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Rampart CIS report: {}{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        e(&host),
        if doc.scan_id.is_empty() {
            String::new()
        } else {
            format!(" ({})", e(&doc.scan_id))
        }
    );
    let _ = writeln!(o, "<h1>CIS compliance report: {}</h1>", e(&host));
    let bench = doc.benchmark_label();
    let _ = writeln!(
        o,
        "<p class=\"sub\">{} · profile {}</p>",
        e(&bench),
        e(doc.profile.name())
    );

    // Score.
    match doc.score {
        Some(v) => {
            let b = Band::of(v).as_str();
            let _ = writeln!(
                o,
                "<p><span class=\"score band-{b}\" data-band=\"{b}\">{v:.1}%</span></p>"
            );
        }
        None => o.push_str(
            "<p><span class=\"score band-none\" data-band=\"none\">no score</span></p>\n",
        ),
    }

    // Identity.
    o.push_str("<dl class=\"meta\">\n");
    let mut meta = |k: &str, v: &str| {
        if !v.trim().is_empty() {
            let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", e(k), e(v));
        }
    };
    let h = &doc.host;
    meta("Host name", &h.name);
    meta("IP addresses", &h.ip_addresses.join(", "));
    meta("Provider", &h.provider);
    meta("Instance", &h.instance_id);
    meta("Operating system", &h.os);
    meta("Agent", &h.agent_id);
    for (k, v) in doc.details() {
        meta(&k, &v);
    }
    meta("Benchmark", &bench);
    meta("Profile", doc.profile.name());
    meta("Scan", &doc.scan_id);
    meta("Status", &doc.status);
    if let Some(t) = doc.started_ms {
        meta("Started", &format_ms(t));
    }
    if let Some(t) = doc.finished_ms {
        meta("Finished", &format_ms(t));
    }
    o.push_str("</dl>\n");

    // Counts.
    let c = &doc.counts;
    let _ = write!(
        o,
        "<div class=\"counts\"><span>passed <b>{}</b></span><span>failed <b>{}</b></span>\
         <span>error <b>{}</b></span><span>not applicable <b>{}</b></span>\
         <span>not checked <b>{}</b></span><span>exempted <b>{}</b></span>",
        c.passed, c.failed, c.error, c.not_applicable, c.not_checked, c.exempted,
    );
    for (sev, n) in c.failed_by_severity.iter() {
        let _ = write!(o, "<span>failed {sev} <b>{n}</b></span>");
    }
    o.push_str("</div>\n");

    // Handover.
    match &doc.handover {
        Some(hd) if hd.blocked => {
            o.push_str("<div class=\"alert\"><b>Handover blocked</b><ul>\n");
            for r in &hd.reasons {
                let _ = writeln!(o, "<li>{}</li>", e(r));
            }
            o.push_str("</ul>");
            match &hd.released_by {
                Some(who) => {
                    let _ = write!(
                        o,
                        "<p>Released by <b>{}</b>{}.</p>",
                        e(who),
                        hd.released_at_ms
                            .map(|t| format!(" on {}", e(&format_ms(t))))
                            .unwrap_or_default()
                    );
                }
                None => o.push_str("<p>Not released.</p>"),
            }
            o.push_str("</div>\n");
        }
        Some(_) if doc.status == "completed" => {
            o.push_str("<div class=\"ok\">Handover not blocked by this scan.</div>\n");
        }
        _ => {}
    }

    // Filter (hidden until the script runs).
    o.push_str("<div class=\"filter\" hidden>Show: ");
    for s in Status::ALL {
        let _ = write!(
            o,
            "<label><input type=\"checkbox\" value=\"{}\" checked> {}</label>",
            s.as_str(),
            status_label(s)
        );
    }
    o.push_str("</div>\n");

    // Rules.
    let groups = grouped(doc);
    if groups.is_empty() {
        o.push_str("<p>No rule results were recorded for this scan.</p>\n");
    }
    for (section, rules) in &groups {
        let fails = rules.iter().filter(|(_, s)| *s == Status::Fail).count();
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
        for (r, st) in rules {
            let sev = r.severity;
            let title = match r.title.trim() {
                "" => "(no title in catalogue)",
                t => t,
            };
            let _ = write!(
                o,
                "<tr data-status=\"{}\" data-rule=\"{}\"><td class=\"id\">{}</td><td>{}</td>\
                 <td class=\"st st-{}\">{}</td><td class=\"sev-{}\">{}</td><td>",
                st.as_str(),
                e(&r.id),
                e(&r.id),
                e(title),
                st.as_str(),
                status_label(*st),
                severity_class(sev),
                sev.map_or("–", Severity::as_str),
            );
            if r.evidence.is_empty() {
                o.push('–');
            } else {
                let _ = write!(o, "<pre>{}</pre>", e(&r.evidence.join("\n")));
            }
            o.push_str("</td><td>");
            match r.remediation.trim() {
                "" => o.push('–'),
                rem => {
                    let _ = write!(
                        o,
                        "<details{}><summary>remediation</summary><pre>{}</pre></details>",
                        if *st == Status::Fail { " open" } else { "" },
                        e(rem)
                    );
                }
            }
            o.push_str("</td></tr>\n");
        }
        o.push_str("</tbody>\n</table>\n</section>\n");
    }
    let _ = writeln!(
        o,
        "<footer>Generated by Rampart on {}.</footer>\n</main>\n<script>{SCRIPT}</script>\n</body>\n</html>",
        e(&format_ms(doc.generated_ms))
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdoc::{doc, rule};

    #[test]
    fn evidence_and_agent_strings_are_escaped() {
        let h = html(&doc(Some(50.0)));
        assert!(!h.contains("<script>alert(1)</script>"), "{h}");
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!h.contains("web-<1>"));
        assert!(h.contains("web-&lt;1&gt;"));
        assert!(h.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
        assert!(h.contains("Do the &lt;right&gt; thing &amp; check."));
        assert!(h.contains("failed &lt;b&gt;"));
        // The only script element is the report's own filter.
        assert_eq!(h.matches("<script").count(), 1);
    }

    #[test]
    fn failures_come_first_within_a_section_and_sections_in_id_order() {
        let h = html(&doc(Some(50.0)));
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
        // A rule outside the profile is not a row.
        assert!(!h.contains("data-rule=\"9.9\""));
        assert_eq!(h.matches("<tr data-status=").count(), 4);
    }

    #[test]
    fn score_colour_band() {
        assert!(html(&doc(Some(95.0))).contains("class=\"score band-green\""));
        assert!(html(&doc(Some(75.0))).contains("class=\"score band-amber\""));
        assert!(html(&doc(Some(50.0))).contains("class=\"score band-red\""));
        assert!(html(&doc(None)).contains("band-none"));
    }

    #[test]
    fn header_names_host_provider_benchmark_and_release() {
        let h = html(&doc(Some(50.0)));
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
    fn no_handover_section_without_enforcement() {
        let mut d = doc(Some(95.0));
        d.handover = None;
        let h = html(&d);
        assert!(!h.contains("Handover"));
        d.rules = vec![rule("1.1", "Other", "low", None, "")];
        assert!(html(&d).contains("No rule results were recorded"));
    }
}
