//! The agent's scans in the protocol's terms: statuses, severities, evidence within
//! the protocol's bounds, and the rule catalogue.

use rampart_proto::v1::{RuleCatalog, RuleInfo, Severity};

use crate::content;

/// Evidence trimmed to the protocol's bounds (lines cut at a character boundary,
/// the rest summarised in a last line), so the collector never refuses a scan for
/// its size.
pub fn fit_evidence(evidence: &[String]) -> Vec<String> {
    use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
    const NOTE: usize = 64;
    let mut out = Vec::new();
    let mut total = 0;
    for (i, line) in evidence.iter().enumerate() {
        let mut l = line.clone();
        if l.len() > EVIDENCE_LINE_BYTES {
            let mut cut = EVIDENCE_LINE_BYTES - NOTE;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
            l.push_str(" … (line cut)");
        }
        if out.len() + 1 >= EVIDENCE_LINES || total + l.len() + NOTE > EVIDENCE_BYTES {
            out.push(format!("… and {} more line(s)", evidence.len() - i));
            return out;
        }
        total += l.len();
        out.push(l);
    }
    out
}

pub(super) fn catalog(b: &content::Benchmark, version: &str) -> RuleCatalog {
    RuleCatalog {
        content_version: version.to_string(),
        benchmark_id: b.id.clone(),
        benchmark_title: b.title.clone(),
        benchmark_version: b.version.clone(),
        rules: b
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                title: r.title.clone(),
                section: r.section.clone(),
                description: r.description.clone(),
                remediation: r.remediation.clone(),
                severity: Severity::from(r.severity) as i32,
                level: r.level as u32,
                automated: r.automated,
                rule_slug: r.slug.clone().unwrap_or_default(),
            })
            .collect(),
    }
}
