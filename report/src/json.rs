//! The JSON scan document (docs/scan-document.md): a serde view of a [`Doc`], the
//! one JSON form of a scan that `check --format json` prints and the collector's
//! `report.json` serves. Versioned: `schema` and `version` come first; additive
//! changes keep the version, removals and renames bump it.
//!
//! Times are RFC 3339 with milliseconds; failures per severity are by name
//! ([`SeverityCountsByName`]); `results` holds the rules of the scanned profile only,
//! in rule-ID order.

use serde::Serialize;

use crate::time::rfc3339_millis;
use crate::{cmp_rule_ids, Band, Doc, Severity, SeverityCountsByName, Status};

/// The document's `schema` value.
pub const JSON_SCHEMA: &str = "rampart-scan";
/// The document's `version`: bumped when a field is removed or renamed.
pub const JSON_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    version: u32,
    generated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scan_id: Option<&'a str>,
    status: &'a str,
    profile: &'a str,
    benchmark: BenchmarkView<'a>,
    host: HostView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<i64>,
    summary: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    handover: Option<HandoverView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    root: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<bool>,
    results: Vec<ResultView<'a>>,
}

#[derive(Serialize)]
struct BenchmarkView<'a> {
    id: &'a str,
    title: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    content_version: &'a str,
}

#[derive(Serialize)]
struct HostView<'a> {
    hostname: &'a str,
    os: &'a str,
    ip_addresses: &'a [String],
    #[serde(skip_serializing_if = "str::is_empty")]
    provider: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    instance_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    agent_id: &'a str,
}

#[derive(Serialize)]
struct Summary {
    score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score_band: Option<Band>,
    passed: u32,
    failed: u32,
    error: u32,
    not_applicable: u32,
    not_checked: u32,
    exempted: u32,
    failed_by_severity: SeverityCountsByName,
}

#[derive(Serialize)]
struct HandoverView<'a> {
    blocked: bool,
    reasons: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    released_by: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    released_at: Option<String>,
}

#[derive(Serialize)]
struct ResultView<'a> {
    id: &'a str,
    title: &'a str,
    section: &'a str,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<Severity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    automated: Option<bool>,
    description: &'a str,
    remediation: &'a str,
    evidence: &'a [String],
}

fn view(doc: &Doc) -> Document<'_> {
    let c = &doc.counts;
    let mut results: Vec<ResultView<'_>> = doc
        .rules
        .iter()
        .filter_map(|r| {
            Some(ResultView {
                id: &r.id,
                title: &r.title,
                section: &r.section,
                status: r.status?,
                severity: r.severity,
                level: r.level,
                automated: r.automated,
                description: &r.description,
                remediation: &r.remediation,
                evidence: &r.evidence,
            })
        })
        .collect();
    results.sort_by(|a, b| cmp_rule_ids(a.id, b.id));
    Document {
        schema: JSON_SCHEMA,
        version: JSON_VERSION,
        generated_at: rfc3339_millis(doc.generated_ms),
        scan_id: (!doc.scan_id.is_empty()).then_some(doc.scan_id.as_str()),
        status: &doc.status,
        profile: doc.profile.name(),
        benchmark: BenchmarkView {
            id: &doc.benchmark.id,
            title: &doc.benchmark.title,
            version: &doc.benchmark.version,
            content_version: &doc.benchmark.content_version,
        },
        host: HostView {
            hostname: &doc.host.name,
            os: &doc.host.os,
            ip_addresses: &doc.host.ip_addresses,
            provider: &doc.host.provider,
            instance_id: &doc.host.instance_id,
            agent_id: &doc.host.agent_id,
        },
        started_at: doc.started_ms.map(rfc3339_millis),
        finished_at: doc.finished_ms.map(rfc3339_millis),
        duration_ms: doc
            .started_ms
            .zip(doc.finished_ms)
            .map(|(s, f)| f.saturating_sub(s).max(0)),
        summary: Summary {
            score: doc.score,
            score_band: doc.score.map(Band::of),
            passed: c.passed,
            failed: c.failed,
            error: c.error,
            not_applicable: c.not_applicable,
            not_checked: c.not_checked,
            exempted: c.exempted,
            failed_by_severity: c.failed_by_severity.into(),
        },
        handover: doc.handover.as_ref().map(|h| HandoverView {
            blocked: h.blocked,
            reasons: &h.reasons,
            released_by: h.released_by.as_deref(),
            released_at: h.released_at_ms.map(rfc3339_millis),
        }),
        project: doc.record.as_ref().and_then(|r| r.project.as_deref()),
        trigger: doc.record.as_ref().map(|r| r.trigger.as_str()),
        created_at: doc.record.as_ref().map(|r| rfc3339_millis(r.created_ms)),
        failure_reason: doc
            .record
            .as_ref()
            .and_then(|r| r.failure_reason.as_deref()),
        root: doc.root.as_ref().map(|r| r.path.as_str()),
        live: doc.root.as_ref().map(|r| r.live),
        results,
    }
}

/// The JSON scan document of `doc`, pretty-printed, ending in a newline.
pub fn json(doc: &Doc) -> String {
    // Serialising plain structs of strings, numbers and enums cannot fail.
    serde_json::to_string_pretty(&view(doc)).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdoc::doc;
    use crate::Root;

    /// The document's shape, pinned: a change here is a change of the public format
    /// (docs/scan-document.md), and a removal or rename needs a new version.
    const GOLDEN: &str = r#"{
  "schema": "rampart-scan",
  "version": 1,
  "generated_at": "2023-11-14T22:16:40.000Z",
  "scan_id": "s1",
  "status": "completed",
  "profile": "level1-server",
  "benchmark": {
    "id": "debian-12",
    "title": "CIS Debian Linux 12 Benchmark",
    "version": "1.1.0",
    "content_version": "v1"
  },
  "host": {
    "hostname": "web-<1>",
    "os": "Debian 12",
    "ip_addresses": [
      "10.0.0.5"
    ],
    "provider": "aws",
    "instance_id": "i-123",
    "agent_id": "a1"
  },
  "started_at": "2023-11-14T22:13:20.000Z",
  "finished_at": "2023-11-14T22:14:20.000Z",
  "duration_ms": 60000,
  "summary": {
    "score": 50.0,
    "score_band": "red",
    "passed": 2,
    "failed": 2,
    "error": 0,
    "not_applicable": 0,
    "not_checked": 0,
    "exempted": 0,
    "failed_by_severity": {
      "critical": 1,
      "high": 0,
      "medium": 0,
      "low": 1
    }
  },
  "handover": {
    "blocked": true,
    "reasons": [
      "1 critical CIS check(s) failed <b>"
    ],
    "released_by": "alice",
    "released_at": "2023-11-14T22:15:00.000Z"
  },
  "project": "web",
  "trigger": "provision",
  "created_at": "2023-11-14T22:13:10.000Z",
  "results": [
    {
      "id": "1.1.1",
      "title": "Title of a low rule",
      "section": "Filesystem",
      "status": "pass",
      "severity": "low",
      "level": 1,
      "automated": true,
      "description": "Why it matters.",
      "remediation": "Do the <right> thing & check.",
      "evidence": [
        "ok"
      ]
    }
  ]
}
"#;

    #[test]
    fn the_document_has_the_documented_shape() {
        let mut d = doc(Some(50.0));
        d.rules.truncate(1);
        assert_eq!(json(&d), GOLDEN);
    }

    #[test]
    fn a_check_has_root_and_live_and_no_collector_fields() {
        let mut d = doc(None);
        d.scan_id.clear();
        d.handover = None;
        d.record = None;
        d.root = Some(Root {
            path: "/mnt/image".into(),
            live: false,
        });
        let v: serde_json::Value = serde_json::from_str(&json(&d)).unwrap();
        assert_eq!(v["root"], "/mnt/image");
        assert_eq!(v["live"], false);
        assert!(v["summary"]["score"].is_null());
        for absent in ["scan_id", "handover", "project", "trigger", "created_at"] {
            assert!(v.get(absent).is_none(), "{absent} in {v}");
        }
        assert!(v["summary"].get("score_band").is_none());
        // Rules outside the profile (no status) are not results.
        let ids: Vec<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["1.1.1", "1.1.2", "1.1.10", "5.4.1"]);
    }
}
