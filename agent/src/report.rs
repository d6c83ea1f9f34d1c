//! Output of `check` and `rules`: the scan's report document ([`scan_doc`]), which
//! `rampart-report` renders as JSON (docs/scan-document.md, a public boundary: tools
//! and the collector read it), HTML and ARF exactly as the collector does; the
//! human-readable text table; the rule list.

use std::fmt::Write as _;

use serde::Serialize;

use crate::content::{Benchmark, Rule};
use crate::engine::ScanReport;
use crate::model::{Profile, Status};

#[derive(Serialize)]
pub struct BenchmarkDto<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub version: &'a str,
}

#[derive(Serialize)]
pub struct HostDto<'a> {
    pub hostname: &'a str,
    pub os: &'a str,
}

/// One rule's fields, as `rules --format json` lists them.
#[derive(Serialize)]
pub struct RuleDto<'a> {
    pub id: &'a str,
    /// The slug of the content rule that checks it; absent for manual ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    pub title: &'a str,
    pub section: &'a str,
    pub severity: &'static str,
    pub level: u8,
    pub automated: bool,
    /// Automated in the benchmark but not evaluated by this agent yet.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profiles: Option<Vec<&'static str>>,
    pub description: &'a str,
    pub remediation: &'a str,
}

impl<'a> RuleDto<'a> {
    fn of(rule: &'a Rule) -> RuleDto<'a> {
        RuleDto {
            id: &rule.id,
            rule: rule.slug.as_deref(),
            title: &rule.title,
            section: &rule.section,
            severity: rule.severity.as_str(),
            level: rule.level,
            automated: rule.automated,
            pending: rule.pending.is_some(),
            profiles: None,
            description: &rule.description,
            remediation: &rule.remediation,
        }
    }
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The report document of a scan (`check --format json|html|arf`): every rule of the
/// benchmark with the profiles that select it; the scanned profile's rules with their
/// result. `identity` adds what the daemon would tell a collector (live host only).
pub fn scan_doc(
    r: &ScanReport,
    identity: Option<&crate::daemon::identity::HostInfo>,
    generated_at: time::OffsetDateTime,
) -> rampart_report::Doc {
    use rampart_report as rr;
    let results: std::collections::HashMap<&str, &crate::engine::RuleResult> = r
        .results
        .iter()
        .map(|res| (res.rule.id.as_str(), res))
        .collect();
    let rules = r
        .benchmark
        .rules
        .iter()
        .map(|rule| {
            let res = results.get(rule.id.as_str());
            rr::Rule {
                id: rule.id.clone(),
                title: rule.title.clone(),
                section: rule.section.clone(),
                severity: Some(rule.severity),
                level: Some(rule.level),
                automated: Some(rule.automated),
                description: rule.description.clone(),
                remediation: rule.remediation.clone(),
                profiles: rule.profiles(),
                status: res.map(|x| x.status),
                evidence: res.map(|x| x.evidence.clone()).unwrap_or_default(),
            }
        })
        .collect();
    let s = &r.summary;
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    let id = identity.cloned().unwrap_or_default();
    let pick = |a: &str, b: &str| {
        if a.trim().is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    rr::Doc {
        scan_id: String::new(),
        host: rr::Host {
            name: pick(&id.hostname, &r.host.hostname),
            ip_addresses: id.ip_addresses.clone(),
            provider: id.provider.clone(),
            instance_id: id.instance_id.clone(),
            os: pick(&id.os, &r.host.os),
            agent_id: String::new(),
        },
        benchmark: rr::Benchmark {
            id: r.benchmark.id.clone(),
            title: r.benchmark.title.clone(),
            version: r.benchmark.version.clone(),
            content_version: crate::content::content_version(&r.benchmark.id),
        },
        profile: r.profile,
        profiles: Profile::ALL.to_vec(),
        status: "completed".into(),
        started_ms: Some(unix_ms(r.started_at)),
        finished_ms: Some(unix_ms(r.finished_at)),
        generated_ms: unix_ms(generated_at),
        score: Some(s.score),
        counts: rr::Counts {
            passed: n(s.passed),
            failed: n(s.failed),
            error: n(s.error),
            not_applicable: n(s.not_applicable),
            not_checked: n(s.not_checked),
            exempted: n(s.exempted),
            failed_by_severity: s.failed_by_severity,
        },
        handover: None,
        record: None,
        root: Some(rr::Root {
            path: r.root.display().to_string(),
            live: r.live,
        }),
        rules,
    }
}

/// Every rule of the benchmark (optionally only a profile's) as JSON.
pub fn rules_json(b: &Benchmark, rules: &[&Rule]) -> String {
    #[derive(Serialize)]
    struct RulesDto<'a> {
        benchmark: BenchmarkDto<'a>,
        rules: Vec<RuleDto<'a>>,
    }
    let dto = RulesDto {
        benchmark: BenchmarkDto {
            id: &b.id,
            title: &b.title,
            version: &b.version,
        },
        rules: rules
            .iter()
            .map(|r| RuleDto {
                profiles: Some(r.profiles().iter().map(|p| p.name()).collect()),
                ..RuleDto::of(r)
            })
            .collect(),
    };
    serde_json::to_string_pretty(&dto).unwrap_or_default() + "\n"
}

fn paint(s: &str, code: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

fn status_label(s: Status, colour: bool) -> String {
    let (text, code) = match s {
        Status::Pass => ("PASS", "32"),
        Status::Fail => ("FAIL", "31;1"),
        Status::Error => ("ERROR", "35"),
        Status::NotApplicable => ("N/A", "2"),
        Status::NotChecked => ("MANUAL", "33"),
        Status::Exempted => ("EXEMPT", "36"),
    };
    paint(&format!("{text:<6}"), code, colour)
}

/// A readable table grouped by section, summary last.
pub fn scan_text(r: &ScanReport, colour: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} — {} — host {} ({}) — root {}{}",
        r.benchmark.title,
        r.benchmark.version,
        r.profile,
        r.host.hostname,
        r.host.os,
        r.root.display(),
        if r.live {
            ""
        } else {
            " (offline root: runtime state not examined)"
        }
    );
    let mut section = "";
    for res in &r.results {
        if res.rule.section != section {
            section = &res.rule.section;
            let _ = writeln!(out, "\n{}", paint(section, "1", colour));
        }
        let _ = writeln!(
            out,
            "  {} {:<10} {:<8} {}",
            status_label(res.status, colour),
            res.rule.id,
            res.rule.severity.as_str(),
            res.rule.title
        );
        if matches!(res.status, Status::Fail | Status::Error) {
            for e in res.evidence.iter().take(5) {
                let _ = writeln!(out, "         {}", paint(e, "2", colour));
            }
            if res.evidence.len() > 5 {
                let _ = writeln!(out, "         … and {} more", res.evidence.len() - 5);
            }
        }
    }
    let s = &r.summary;
    let by_severity: Vec<String> = s
        .failed_by_severity
        .iter()
        .map(|(sev, n)| format!("{n} {sev}"))
        .collect();
    let _ = writeln!(
        out,
        "\nScore {:.1}% — {} passed, {} failed, {} error, {} not applicable, {} manual, {} exempted \
         — failed by severity: {} — {} ms",
        s.score,
        s.passed,
        s.failed,
        s.error,
        s.not_applicable,
        s.not_checked,
        s.exempted,
        by_severity.join(", "),
        r.duration_ms
    );
    out
}

/// `rules --format text`.
pub fn rules_text(b: &Benchmark, rules: &[&Rule]) -> String {
    let mut out = format!(
        "{} {} — {} recommendations\n",
        b.title,
        b.version,
        rules.len()
    );
    let mut section = "";
    for r in rules {
        if r.section != section {
            section = &r.section;
            let _ = writeln!(out, "\n{section}");
        }
        let profiles: Vec<&str> = r.profiles().iter().map(|p| p.name()).collect();
        let _ = writeln!(
            out,
            "  {:<10} {:<8} {:<6} {}  [{}]",
            r.id,
            r.severity.as_str(),
            match (r.automated, r.pending.is_some()) {
                (true, _) => "auto",
                (false, true) => "pending",
                (false, false) => "manual",
            },
            r.title,
            profiles.join(", ")
        );
    }
    out
}

/// The coverage document (`docs/COVERAGE.md`): per benchmark and top-level section,
/// how many recommendations exist, are automated, and are implemented by a check.
pub fn coverage_markdown(benchmarks: &[Benchmark]) -> String {
    let mut out = String::from(
        "# Benchmark coverage\n\nGenerated from the compiled-in content by `rampart-agent coverage`; \
         a test fails when this file is stale. *Implemented* counts automated recommendations \
         evaluated by a typed check; manual ones, and automated ones not evaluated yet, are \
         listed and reported `not_checked`.\n",
    );
    for b in benchmarks {
        let _ = writeln!(out, "\n## {} {} (`{}`)\n", b.title, b.version, b.id);
        let _ = writeln!(
            out,
            "| section | recommendations | automated | implemented | manual |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        let mut sections: Vec<&str> = b
            .rules
            .iter()
            .map(|r| r.id.split('.').next().unwrap_or(""))
            .collect();
        sections.dedup();
        let mut totals = [0usize; 4];
        for sec in sections {
            let rules: Vec<&Rule> = b
                .rules
                .iter()
                .filter(|r| r.id.split('.').next() == Some(sec))
                .collect();
            let row = [
                rules.len(),
                rules.iter().filter(|r| r.automated_in_benchmark()).count(),
                rules
                    .iter()
                    .filter(|r| r.automated && r.check.is_some())
                    .count(),
                rules.iter().filter(|r| !r.automated_in_benchmark()).count(),
            ];
            for (t, v) in totals.iter_mut().zip(row) {
                *t += v;
            }
            let title = b.sections.get(sec).map(String::as_str).unwrap_or("");
            let _ = writeln!(
                out,
                "| {sec} {title} | {} | {} | {} | {} |",
                row[0], row[1], row[2], row[3]
            );
        }
        let _ = writeln!(
            out,
            "| **total** | **{}** | **{}** | **{}** | **{}** |",
            totals[0], totals[1], totals[2], totals[3]
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Facts;

    #[test]
    fn report_document_holds_every_rule_once_with_its_profiles() {
        let b = crate::content::benchmark("debian-12").unwrap().unwrap();
        let t = tempfile::tempdir().unwrap();
        let profile = Profile::parse("level1-server").unwrap();
        let exempt: std::collections::BTreeSet<String> = [b
            .rules
            .iter()
            .find(|r| r.in_profile(profile))
            .unwrap()
            .id
            .clone()]
        .into();
        let r = crate::engine::scan_with(&Facts::new(t.path(), false), b, profile, &exempt);
        let doc = scan_doc(&r, None, r.finished_at);
        assert_eq!(doc.rules.len(), b.rules.len());
        let ids: std::collections::HashSet<&str> =
            doc.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), b.rules.len());
        for (d, rule) in doc.rules.iter().zip(&b.rules) {
            assert_eq!(d.status.is_some(), rule.in_profile(profile), "{}", rule.id);
            assert_eq!(d.profiles.len(), rule.profiles().len(), "{}", rule.id);
        }
        let exempted = doc.rules.iter().find(|d| exempt.contains(&d.id)).unwrap();
        assert_eq!(exempted.status, Some(rampart_report::Status::Exempted));
        let arf = rampart_report::arf(&doc);
        let outside = b.rules.iter().filter(|r| !r.in_profile(profile)).count();
        assert_eq!(arf.matches("<rule-result ").count(), b.rules.len());
        assert_eq!(
            arf.matches("<result>notselected</result>").count(),
            outside + exempt.len()
        );
        assert_eq!(doc.counts.failed as usize, r.summary.failed);
    }
}
