//! Per-scan reports shared by the collector (REST downloads) and the agent
//! (`check --format json|html|arf`): one plain data model of a scan document, [`Doc`],
//! and three pure renderers over it, [`json`] (the versioned JSON scan document,
//! docs/scan-document.md), [`html`] (one self-contained file) and [`arf`] (SCAP
//! Asset Reporting Format 1.1 with an XCCDF 1.2 benchmark in a SCAP 1.3 source data
//! stream and an XCCDF 1.2 TestResult).
//!
//! It also holds the vocabulary the agent and the collector share (`vocab`):
//! [`Status`], [`Severity`], [`SeverityCounts`], [`Profile`] and [`Role`], [`score`]
//! and the order of rule IDs, [`cmp_rule_ids`].
//!
//! Every string in a [`Doc`] is untrusted (host names, evidence quoting file contents,
//! catalogue text sent by an agent): both renderers escape all of it, and drop
//! characters that XML 1.0 forbids.

mod arf;
mod escape;
mod html;
mod json;
mod time;
mod vocab;

pub use arf::arf;
pub use escape::{escape_html, escape_xml};
pub use html::html;
pub use json::{json, JSON_SCHEMA, JSON_VERSION};
pub use time::{format_ms, rfc3339_millis, rfc3339_ms};
pub use vocab::{
    cmp_rule_ids, score, Profile, Role, Severity, SeverityCounts, SeverityCountsByName, Status,
    UnknownProfile,
};

/// One scan, as a report shows it.
#[derive(Debug, Clone, Default)]
pub struct Doc {
    /// The scan's ID; empty for an offline `check`.
    pub scan_id: String,
    pub host: Host,
    pub benchmark: Benchmark,
    /// The profile scanned.
    pub profile: Profile,
    /// Every profile of the benchmark that the document knows of (the scanned one
    /// included), in display order.
    pub profiles: Vec<Profile>,
    /// `pending`, `running`, `completed`, `failed`, `cancelled`.
    pub status: String,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// When the report was rendered.
    pub generated_ms: i64,
    /// Passed ÷ scored × 100; `None` while there is none.
    pub score: Option<f64>,
    pub counts: Counts,
    /// Handover enforcement; `None` where there is none (an offline `check`).
    pub handover: Option<Handover>,
    /// What a collector records about the scan; `None` for an agent's `check`.
    pub record: Option<Record>,
    /// The tree an agent's `check` read; `None` for a scan a collector recorded.
    pub root: Option<Root>,
    /// Every rule of the benchmark the document knows of; rules outside the scanned
    /// profile have no status.
    pub rules: Vec<Rule>,
}

/// The scanned host.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub name: String,
    pub ip_addresses: Vec<String>,
    pub provider: String,
    pub instance_id: String,
    pub os: String,
    /// The agent's ID, where an agent reported the scan.
    pub agent_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct Benchmark {
    /// Our identifier, e.g. `debian-12`; empty when unknown.
    pub id: String,
    pub title: String,
    pub version: String,
    /// The version of the agent's content the catalogue came from; empty when
    /// unknown.
    pub content_version: String,
}

/// What a collector records about a scan besides its results.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub project: Option<String>,
    /// `provision`, `schedule`, `manual` or `ssh`.
    pub trigger: String,
    pub created_ms: i64,
    /// Why the scanner failed (status `failed`).
    pub failure_reason: Option<String>,
}

/// The tree an agent's `check` read.
#[derive(Debug, Clone, Default)]
pub struct Root {
    pub path: String,
    /// Whether it is the running host (`/`), so that runtime state was examined.
    pub live: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub error: u32,
    pub not_applicable: u32,
    pub not_checked: u32,
    pub exempted: u32,
    /// Failed rules per severity.
    pub failed_by_severity: SeverityCounts,
}

/// Whether the scan blocks the host's handover, why, and who released it.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    pub blocked: bool,
    pub reasons: Vec<String>,
    pub released_by: Option<String>,
    pub released_at_ms: Option<i64>,
}

/// One rule and, when it was part of the scan, its result.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// The CIS recommendation number, e.g. `5.2.4`.
    pub id: String,
    pub title: String,
    /// The title of the section holding the rule; empty when unknown.
    pub section: String,
    /// `None` when unknown.
    pub severity: Option<Severity>,
    /// The CIS level (1 or 2); `None` when unknown.
    pub level: Option<u8>,
    /// Whether the benchmark automates the rule; `None` when unknown.
    pub automated: Option<bool>,
    pub description: String,
    pub remediation: String,
    /// The profiles (of [`Doc::profiles`]) that select the rule.
    pub profiles: Vec<Profile>,
    /// `None`: not part of this scan (outside the profile).
    pub status: Option<Status>,
    pub evidence: Vec<String>,
}

/// The colour band of a score (SPEC §4 overview): green ≥ 90, amber ≥ 70, red below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// Known severities most severe first, unknown last.
fn severity_rank(s: Option<Severity>) -> usize {
    s.map_or(Severity::ALL.len(), |s| s as usize)
}

/// The scanned rules grouped by section (sections in the order of their first rule
/// ID), failures first within a section, then by severity, then by ID.
pub fn grouped(doc: &Doc) -> Vec<(String, Vec<(&Rule, Status)>)> {
    let mut groups: Vec<(String, Vec<(&Rule, Status)>)> = Vec::new();
    for r in &doc.rules {
        let Some(st) = r.status else { continue };
        let section = match r.section.trim() {
            "" => "Other",
            s => s,
        };
        match groups.iter_mut().find(|(s, _)| s == section) {
            Some((_, rs)) => rs.push((r, st)),
            None => groups.push((section.to_string(), vec![(r, st)])),
        }
    }
    for (_, rs) in &mut groups {
        rs.sort_by(|(a, sa), (b, sb)| {
            sa.rank()
                .cmp(&sb.rank())
                .then_with(|| severity_rank(a.severity).cmp(&severity_rank(b.severity)))
                .then_with(|| cmp_rule_ids(&a.id, &b.id))
        });
    }
    let first = |rs: &[(&Rule, Status)]| -> String {
        rs.iter()
            .map(|(r, _)| r.id.clone())
            .min_by(|a, b| cmp_rule_ids(a, b))
            .unwrap_or_default()
    };
    groups.sort_by(|(_, a), (_, b)| cmp_rule_ids(&first(a), &first(b)));
    groups
}

impl Doc {
    /// The host as people know it: host name, else first address, else agent ID.
    pub fn host_label(&self) -> String {
        let h = &self.host;
        if !h.name.trim().is_empty() {
            h.name.trim().to_string()
        } else if let Some(ip) = h.ip_addresses.first() {
            ip.clone()
        } else if !h.agent_id.is_empty() {
            h.agent_id.clone()
        } else {
            "unknown host".to_string()
        }
    }

    /// Further facts for a report's header, in order (project, trigger, creation,
    /// failure; or the root a `check` read).
    pub fn details(&self) -> Vec<(String, String)> {
        let mut d = Vec::new();
        if let Some(r) = &self.record {
            if let Some(p) = &r.project {
                d.push(("Project".to_string(), p.clone()));
            }
            d.push(("Trigger".to_string(), r.trigger.clone()));
            d.push(("Created".to_string(), format_ms(r.created_ms)));
            if let Some(f) = &r.failure_reason {
                d.push(("Failure".to_string(), f.clone()));
            }
        }
        if let Some(r) = &self.root {
            let path = if r.live {
                r.path.clone()
            } else {
                format!("{} (offline root: runtime state not examined)", r.path)
            };
            d.push(("Root".to_string(), path));
        }
        d
    }

    /// `Title version`, or a note that the benchmark is unknown.
    pub fn benchmark_label(&self) -> String {
        let b = &self.benchmark;
        match (b.title.trim(), b.version.trim()) {
            ("", _) if b.id.is_empty() => "unknown benchmark (no rule catalogue received)".into(),
            ("", _) => b.id.clone(),
            (t, "") => t.to_string(),
            (t, v) => format!("{t} {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_colour_band() {
        assert_eq!(Band::of(90.0), Band::Green);
        assert_eq!(Band::of(89.9), Band::Amber);
        assert_eq!(Band::of(70.0), Band::Amber);
        assert_eq!(Band::of(69.99), Band::Red);
    }
}

/// A small document for the renderers' unit tests.
#[cfg(test)]
pub(crate) mod testdoc {
    use super::*;

    pub fn rule(id: &str, section: &str, severity: &str, status: Option<Status>, ev: &str) -> Rule {
        Rule {
            id: id.into(),
            title: format!("Title of a {severity} rule"),
            section: section.into(),
            severity: Severity::parse(severity),
            level: Some(1),
            automated: Some(true),
            description: "Why it matters.".into(),
            remediation: "Do the <right> thing & check.".into(),
            profiles: if status.is_some() {
                vec![Profile::ALL[0]]
            } else {
                vec![]
            },
            status,
            evidence: if ev.is_empty() {
                vec![]
            } else {
                vec![ev.into()]
            },
        }
    }

    pub fn doc(score: Option<f64>) -> Doc {
        Doc {
            scan_id: "s1".into(),
            host: Host {
                name: "web-<1>".into(),
                ip_addresses: vec!["10.0.0.5".into()],
                provider: "aws".into(),
                instance_id: "i-123".into(),
                os: "Debian 12".into(),
                agent_id: "a1".into(),
            },
            benchmark: Benchmark {
                id: "debian-12".into(),
                title: "CIS Debian Linux 12 Benchmark".into(),
                version: "1.1.0".into(),
                content_version: "v1".into(),
            },
            profile: Profile::ALL[0],
            profiles: vec![Profile::ALL[0], Profile::ALL[1]],
            status: "completed".into(),
            started_ms: Some(1_700_000_000_000),
            finished_ms: Some(1_700_000_060_000),
            generated_ms: 1_700_000_200_000,
            score,
            counts: Counts {
                passed: 2,
                failed: 2,
                failed_by_severity: [Severity::Critical, Severity::Low].into_iter().collect(),
                ..Counts::default()
            },
            handover: Some(Handover {
                blocked: true,
                reasons: vec!["1 critical CIS check(s) failed <b>".into()],
                released_by: Some("alice".into()),
                released_at_ms: Some(1_700_000_100_000),
            }),
            record: Some(Record {
                project: Some("web".into()),
                trigger: "provision".into(),
                created_ms: 1_699_999_990_000,
                failure_reason: None,
            }),
            root: None,
            rules: vec![
                rule("1.1.1", "Filesystem", "low", Some(Status::Pass), "ok"),
                rule(
                    "1.1.2",
                    "Filesystem",
                    "medium",
                    Some(Status::Pass),
                    "ok too",
                ),
                rule(
                    "1.1.10",
                    "Filesystem",
                    "low",
                    Some(Status::Fail),
                    "/etc/motd contains <script>alert(1)</script>",
                ),
                rule(
                    "5.4.1",
                    "User accounts",
                    "critical",
                    Some(Status::Fail),
                    "toor has UID 0 \"quoted\" & 'single'",
                ),
                rule("9.9", "Other things", "low", None, ""),
            ],
        }
    }
}
