//! Per-scan reports (SPEC §4 "Reports, per scan"): the JSON scan document, the HTML
//! file and the ARF document, rendered by `rampart-report` (the one implementation
//! the agent's `check` uses too) from [`doc`]. All are pure functions of a scan record,
//! its stored results, the rule catalogue the agent sent and the agent's record.
//!
//! Every string that comes from an agent or a catalogue (host name, evidence, which
//! quotes file contents, titles, remediation) is untrusted: the renderers escape it.

use std::collections::BTreeMap;

use rampart_report as rr;

pub use rampart_report::{cmp_rule_ids, Band};

use crate::app::Catalog;
use crate::store::{AgentRecord, ResultRecord, ScanRecord};

/// Everything a report is made from.
pub struct ReportInput<'a> {
    pub scan: &'a ScanRecord,
    pub agent: Option<&'a AgentRecord>,
    pub catalog: Option<&'a Catalog>,
    pub results: &'a [ResultRecord],
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

/// The report document of a scan: every rule of the catalogue (rules without a
/// result were outside the scanned profile), plus any result the catalogue lacks.
pub fn doc(input: &ReportInput, generated_at_ms: i64) -> rr::Doc {
    let s = input.scan;
    let results: BTreeMap<&str, &ResultRecord> = input
        .results
        .iter()
        .map(|r| (r.rule_id.as_str(), r))
        .collect();
    let rule = |id: &str, meta: Option<&crate::app::CatalogRule>| {
        let result = results.get(id);
        let evidence = result.map(|r| r.evidence.clone()).unwrap_or_default();
        let status = result.map(|r| r.status);
        rr::Rule {
            id: id.to_string(),
            title: meta.map(|m| m.title.clone()).unwrap_or_default(),
            section: meta.map(|m| m.section.clone()).unwrap_or_default(),
            severity: meta.map(|m| m.severity),
            level: meta.and_then(|m| u8::try_from(m.level).ok()),
            automated: meta.map(|m| m.automated),
            description: meta.map(|m| m.description.clone()).unwrap_or_default(),
            remediation: meta.map(|m| m.remediation.clone()).unwrap_or_default(),
            // The agent reports every rule of the profile it scanned, and only those.
            profiles: if status.is_some() {
                vec![s.profile]
            } else {
                Vec::new()
            },
            status,
            evidence,
        }
    };
    let mut rules: Vec<rr::Rule> = input
        .catalog
        .map(|c| c.rules.iter().map(|(id, m)| rule(id, Some(m))).collect())
        .unwrap_or_default();
    for id in results.keys() {
        if !input.catalog.is_some_and(|c| c.rules.contains_key(*id)) {
            rules.push(rule(id, None));
        }
    }
    rules.sort_by(|a, b| cmp_rule_ids(&a.id, &b.id));
    let agent = input.agent;
    rr::Doc {
        scan_id: s.id.clone(),
        host: rr::Host {
            name: agent.map(|a| a.hostname.clone()).unwrap_or_default(),
            ip_addresses: agent.map(|a| a.ip_addresses.clone()).unwrap_or_default(),
            provider: agent.map(|a| a.provider.clone()).unwrap_or_default(),
            instance_id: agent.map(|a| a.instance_id.clone()).unwrap_or_default(),
            os: agent.map(|a| a.os.clone()).unwrap_or_default(),
            agent_id: s.agent_id.clone(),
        },
        benchmark: input
            .catalog
            .map(|c| rr::Benchmark {
                id: c.benchmark_id.clone(),
                title: c.benchmark_title.clone(),
                version: c.benchmark_version.clone(),
                content_version: c.content_version.clone(),
            })
            .unwrap_or_default(),
        profile: s.profile,
        profiles: vec![s.profile],
        status: s.status.as_str().to_string(),
        started_ms: s.started_at_ms,
        finished_ms: s.finished_at_ms,
        generated_ms: generated_at_ms,
        score: s.score,
        counts: rr::Counts {
            passed: s.passed,
            failed: s.failed,
            error: s.error,
            not_applicable: s.not_applicable,
            not_checked: s.not_checked,
            exempted: s.exempted,
            failed_by_severity: s.failed_by_severity,
        },
        handover: Some(rr::Handover {
            blocked: s.blocked,
            reasons: s.block_reasons.clone(),
            released_by: s.released_by.clone(),
            released_at_ms: s.released_at_ms,
        }),
        record: Some(rr::Record {
            project: s.project.clone(),
            trigger: s.trigger.clone(),
            created_ms: s.created_at_ms,
            failure_reason: s.failure_reason.clone(),
        }),
        root: None,
        rules,
    }
}

/// The self-contained HTML report.
pub fn html(input: &ReportInput, generated_at_ms: i64) -> String {
    rr::html(&doc(input, generated_at_ms))
}

/// The SCAP ARF 1.1 report.
pub fn arf(input: &ReportInput, generated_at_ms: i64) -> String {
    rr::arf(&doc(input, generated_at_ms))
}

/// The JSON scan document (docs/scan-document.md), the one `check --format json`
/// prints too.
pub fn json(input: &ReportInput, generated_at_ms: i64) -> String {
    rr::json(&doc(input, generated_at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::CatalogRule;
    use crate::store::ScanStatus;
    use rampart_report::{Profile, Severity, Status};

    fn scan(score: Option<f64>) -> ScanRecord {
        ScanRecord {
            id: "s1".into(),
            agent_id: "a1".into(),
            project: Some("web".into()),
            status: ScanStatus::Completed,
            trigger: "provision".into(),
            profile: Profile::default(),
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
            failed_by_severity: [Severity::Critical, Severity::Medium].into_iter().collect(),
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
            identity: Default::default(),
            replaced_certs: Vec::new(),
            renewed_at_ms: 0,
            ssh: None,
        }
    }

    fn rule(section: &str, severity: &str) -> CatalogRule {
        CatalogRule {
            title: format!("Title of a {severity} rule"),
            section: section.into(),
            description: "Why it matters.".into(),
            remediation: "Do the <right> thing & check.".into(),
            severity: Severity::parse(severity).unwrap(),
            level: 1,
            automated: true,
            profiles: vec![Profile::default()],
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
            status: Status::parse(st).unwrap(),
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
        let j: serde_json::Value = serde_json::from_str(&json(
            &ReportInput {
                scan: &s,
                agent: Some(&a),
                catalog: Some(&c),
                results: &r,
            },
            0,
        ))
        .unwrap();
        assert_eq!(j["schema"], "rampart-scan");
        assert_eq!(j["version"], 1);
        let rules = j["results"].as_array().unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1.1.1", "1.1.2", "1.1.10", "5.4.1"]);
        assert_eq!(rules[3]["severity"], "critical");
        assert_eq!(rules[3]["section"], "User accounts");
        assert_eq!(rules[3]["description"], "Why it matters.");
        assert_eq!(j["scan_id"], "s1");
        assert_eq!(j["summary"]["score_band"], "red");
        assert_eq!(j["summary"]["failed_by_severity"]["critical"], 1);
        assert_eq!(j["handover"]["released_by"], "alice");
        assert_eq!(j["trigger"], "provision");
        assert_eq!(j["host"]["provider"], "aws");
        assert_eq!(j["host"]["agent_id"], "a1");
        assert_eq!(j["benchmark"]["version"], "1.1.0");
        assert_eq!(j["benchmark"]["content_version"], "v1");
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

    #[test]
    fn arf_has_every_catalogue_rule_once_with_its_status() {
        let (s, a, mut c, mut r) = (scan(Some(50.0)), agent(), catalog(), results());
        c.rules.insert("6.1".into(), rule("Maintenance", "low"));
        r.push(ResultRecord {
            rule_id: "7.7".into(),
            status: Status::Error,
            evidence: vec!["the check could not read bogus".into()],
        });
        let input = ReportInput {
            scan: &s,
            agent: Some(&a),
            catalog: Some(&c),
            results: &r,
        };
        let d = doc(&input, 0);
        let ids: Vec<&str> = d.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1.1.1", "1.1.2", "1.1.10", "5.4.1", "6.1", "7.7"]);
        // Outside the profile: no status; a result the catalogue lacks is listed.
        assert_eq!(d.rules[4].status, None);
        assert_eq!(d.rules[5].status, Some(rampart_report::Status::Error));
        assert!(d.rules[5].evidence[0].contains("bogus"));
        let x = arf(&input, 0);
        for (id, want) in [
            ("1.1.10", "fail"),
            ("1.1.1", "pass"),
            ("6.1", "notselected"),
            ("7.7", "error"),
        ] {
            let tag = format!("<rule-result idref=\"xccdf_org.rampart_rule_{id}\"");
            assert_eq!(x.matches(&tag).count(), 1, "{id}");
            let rest = &x[x.find(&tag).unwrap()..];
            assert!(rest.contains(&format!("<result>{want}</result>")), "{id}");
            assert!(rest.find(&format!("<result>{want}</result>")) < rest.find("</rule-result>"));
        }
        assert!(x.contains("xccdf_org.rampart_benchmark_debian12"));
        assert!(!x.contains("<ai:hostname>"), "web-<1> is no host name");
    }
}
