//! Benchmark content: declarative TOML files compiled into the binary, found under
//! `agent/content/` by `build.rs`. Rules (`rules/*.toml`) say what to check once per
//! concept, keyed by a stable slug; each benchmark (`benchmarks/*.toml`) maps its CIS
//! recommendation numbers to those rules, with its own levels and profiles, and
//! carries the text of its manual recommendations. Content is validated when loaded.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use rampart_report::cmp_rule_ids;
use serde::Deserialize;

use crate::checks::Check;
use crate::model::{Profile, Role, Severity};

/// One content file: its name (for error messages) and text.
type Source = (&'static str, &'static str);

// `RULE_FILES` and `BENCHMARK_FILES`, every file of content/rules and
// content/benchmarks in name order; written by build.rs.
include!(concat!(env!("OUT_DIR"), "/content_files.rs"));

/// Why content could not be loaded. Content ships inside the binary, so this is
/// caught by the test suite, never by an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A file is not valid TOML or does not match the content schema.
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    /// A rule or control breaks a content invariant (duplicate, missing text, …).
    #[error("{file}: {id}: {reason}")]
    Invalid {
        file: String,
        id: String,
        reason: String,
    },
}

/// A benchmark: its identity and its recommendations, ordered by number.
#[derive(Debug)]
pub struct Benchmark {
    /// Our identifier, e.g. `debian-12`.
    pub id: String,
    pub title: String,
    pub version: String,
    /// The os-release `ID` and `VERSION_ID`s this benchmark is for (a version also
    /// matches its point releases: `9` matches `9.4`).
    pub os_id: String,
    pub os_versions: Vec<String>,
    /// Other os-release IDs the benchmark is chosen for: rebuilds of the same
    /// distribution (Rocky, Alma, Oracle Linux for RHEL).
    pub os_like: Vec<String>,
    /// Section number → title.
    pub sections: BTreeMap<String, String>,
    pub rules: Vec<Rule>,
}

impl Benchmark {
    /// Whether the benchmark is the one for a system whose os-release says `id` and
    /// `version`: its own ID or a rebuild's, and one of its versions or a point
    /// release of one (`9` covers `9.4`).
    pub fn is_for(&self, id: &str, version: &str) -> bool {
        (self.os_id == id || self.os_like.iter().any(|l| l == id))
            && self.os_versions.iter().any(|v| {
                version == v
                    || version
                        .strip_prefix(v.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    }
}

/// One CIS recommendation of a benchmark, with the rule that checks it resolved
/// (the rule's text and check, or its variant for this benchmark).
#[derive(Debug)]
pub struct Rule {
    /// The CIS recommendation number.
    pub id: String,
    /// The slug of the rule that checks it; `None` for manual recommendations.
    pub slug: Option<String>,
    pub title: String,
    /// The title of the nearest section containing the recommendation.
    pub section: String,
    pub description: String,
    pub remediation: String,
    pub severity: Severity,
    /// Why the severity differs from the catalogue's proposal, when it does.
    pub severity_reason: Option<String>,
    /// The lowest level the recommendation belongs to.
    pub level: u8,
    /// Level in the server profiles (`None`: not in them).
    pub server: Option<u8>,
    /// Level in the workstation profiles (`None`: not in them).
    pub workstation: Option<u8>,
    pub automated: bool,
    /// An automated recommendation this agent does not evaluate yet: what it lacks.
    /// It is reported `not_checked` like a manual one and never scored.
    pub pending: Option<String>,
    /// `None` for manual and pending recommendations.
    pub check: Option<Check>,
    /// The variant whose check replaces the rule's own check here, if any (its
    /// fixtures name this benchmark).
    pub check_variant: Option<String>,
}

impl Rule {
    /// Whether the benchmark numbers it automated, evaluated yet or not.
    pub fn automated_in_benchmark(&self) -> bool {
        self.automated || self.pending.is_some()
    }

    /// Whether the rule belongs to `profile` (level 2 includes level 1).
    pub fn in_profile(&self, profile: Profile) -> bool {
        let lvl = match profile.role {
            Role::Server => self.server,
            Role::Workstation => self.workstation,
        };
        matches!(lvl, Some(l) if l <= profile.level)
    }

    /// The profiles that include this rule.
    pub fn profiles(&self) -> Vec<Profile> {
        Profile::ALL
            .into_iter()
            .filter(|p| self.in_profile(*p))
            .collect()
    }
}

/// A rule of `rules/*.toml`: one concept, whatever the benchmark numbers it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    title: String,
    description: String,
    remediation: String,
    severity: Severity,
    severity_reason: Option<String>,
    /// Why the rule matters, beyond the description (optional, not yet reported).
    #[allow(dead_code)]
    rationale: Option<String>,
    /// Where the rule's facts are documented (optional, not yet reported).
    #[allow(dead_code)]
    #[serde(default)]
    references: Vec<String>,
    check: Check,
    /// Benchmark ID or os-release ID → what differs there.
    #[serde(default)]
    variants: BTreeMap<String, RawVariant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariant {
    title: Option<String>,
    description: Option<String>,
    remediation: Option<String>,
    severity: Option<Severity>,
    severity_reason: Option<String>,
    check: Option<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenchmark {
    id: String,
    title: String,
    version: String,
    os_id: String,
    os_versions: Vec<String>,
    #[serde(default)]
    os_like: Vec<String>,
    sections: BTreeMap<String, String>,
    #[serde(default)]
    controls: BTreeMap<String, RawControl>,
    #[serde(default)]
    manual: BTreeMap<String, RawManual>,
    #[serde(default)]
    pending: BTreeMap<String, RawPending>,
}

/// A part of a benchmark kept in a file of its own (`benchmark = "<id>"`), so a long
/// benchmark reads by section.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPart {
    benchmark: String,
    #[serde(default)]
    sections: BTreeMap<String, String>,
    #[serde(default)]
    controls: BTreeMap<String, RawControl>,
    #[serde(default)]
    manual: BTreeMap<String, RawManual>,
    #[serde(default)]
    pending: BTreeMap<String, RawPending>,
}

/// What a benchmark's files say of its recommendations, all parts merged.
#[derive(Default)]
struct RawBody {
    sections: BTreeMap<String, String>,
    /// Automated recommendations: CIS ID → rule and profile levels.
    controls: BTreeMap<String, RawControl>,
    /// Manual recommendations: CIS ID → profile levels and text.
    manual: BTreeMap<String, RawManual>,
    /// Automated recommendations not evaluated yet: CIS ID → levels, title, need.
    pending: BTreeMap<String, RawPending>,
}

impl RawBody {
    /// Adds `other` (a part file) to this body; an ID given twice is an error.
    fn merge(&mut self, other: RawPart) -> Result<(), String> {
        fn add<V>(into: &mut BTreeMap<String, V>, from: BTreeMap<String, V>) -> Result<(), String> {
            for (k, v) in from {
                if into.insert(k.clone(), v).is_some() {
                    return Err(k);
                }
            }
            Ok(())
        }
        add(&mut self.sections, other.sections)?;
        add(&mut self.controls, other.controls)?;
        add(&mut self.manual, other.manual)?;
        add(&mut self.pending, other.pending)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPending {
    server: Option<u8>,
    workstation: Option<u8>,
    title: String,
    severity: Severity,
    severity_reason: Option<String>,
    /// What the agent lacks to evaluate it (a fact, a check family).
    needs: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    rule: String,
    server: Option<u8>,
    workstation: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManual {
    server: Option<u8>,
    workstation: Option<u8>,
    title: String,
    description: String,
    remediation: String,
    severity: Severity,
    severity_reason: Option<String>,
}

/// All compiled-in benchmarks, parsed and validated once.
pub fn benchmarks() -> Result<&'static [Benchmark], ContentError> {
    static ALL: OnceLock<Result<Vec<Benchmark>, ContentError>> = OnceLock::new();
    ALL.get_or_init(|| load(RULE_FILES, BENCHMARK_FILES))
        .as_deref()
        .map_err(Clone::clone)
}

/// Identifies the compiled-in content: a hash of every content file. Rule
/// metadata travels to the collector once per content version.
pub fn content_version(benchmark_id: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for (name, text) in RULE_FILES.iter().chain(BENCHMARK_FILES) {
        for b in name.bytes().chain(text.bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{benchmark_id}@{}+{h:016x}", env!("CARGO_PKG_VERSION"))
}

/// The benchmark with our identifier `id`.
pub fn benchmark(id: &str) -> Result<Option<&'static Benchmark>, ContentError> {
    Ok(benchmarks()?.iter().find(|b| b.id == id))
}

/// Parses and validates rule files and benchmark files.
pub fn load(
    rule_files: &[Source],
    benchmark_files: &[Source],
) -> Result<Vec<Benchmark>, ContentError> {
    let syntax = |file: &str, e: toml::de::Error| ContentError::Syntax {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let invalid = |file: &str, id: &str, reason: &str| ContentError::Invalid {
        file: file.to_string(),
        id: id.to_string(),
        reason: reason.to_string(),
    };
    // slug → (file, rule)
    let mut rules: HashMap<String, (&str, RawRule)> = HashMap::new();
    for (file, text) in rule_files {
        let raw: BTreeMap<String, RawRule> = toml::from_str(text).map_err(|e| syntax(file, e))?;
        for (slug, rule) in raw {
            if slug.is_empty()
                || !slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                return Err(invalid(
                    file,
                    &slug,
                    "a rule slug is snake_case: a-z, 0-9 and _",
                ));
            }
            if let Some((other, _)) = rules.get(&slug) {
                return Err(invalid(
                    file,
                    &slug,
                    &format!("duplicate rule slug (also in {other})"),
                ));
            }
            rules.insert(slug, (file, rule));
        }
    }
    // A benchmark is one head file (`id = …`) and any number of part files
    // (`benchmark = …`), merged in name order.
    let mut heads: Vec<(&str, RawBenchmark, RawBody)> = Vec::new();
    let mut parts = Vec::new();
    for (file, text) in benchmark_files {
        let table: toml::Table = toml::from_str(text).map_err(|e| syntax(file, e))?;
        if table.contains_key("benchmark") {
            let part: RawPart = toml::from_str(text).map_err(|e| syntax(file, e))?;
            parts.push((*file, part));
        } else {
            let mut head: RawBenchmark = toml::from_str(text).map_err(|e| syntax(file, e))?;
            let body = RawBody {
                sections: std::mem::take(&mut head.sections),
                controls: std::mem::take(&mut head.controls),
                manual: std::mem::take(&mut head.manual),
                pending: std::mem::take(&mut head.pending),
            };
            if heads.iter().any(|(_, h, _)| h.id == head.id) {
                return Err(invalid(file, &head.id, "benchmark defined twice"));
            }
            heads.push((*file, head, body));
        }
    }
    for (file, part) in parts {
        let id = part.benchmark.clone();
        let (_, _, body) = heads
            .iter_mut()
            .find(|(_, h, _)| h.id == id)
            .ok_or_else(|| invalid(file, &id, "part of a benchmark no file defines"))?;
        body.merge(part)
            .map_err(|key| invalid(file, &key, &format!("given twice in benchmark {id}")))?;
    }
    // A variant is chosen by benchmark ID or, failing that, by os-release ID.
    for (slug, (file, rule)) in &rules {
        for key in rule.variants.keys() {
            if !heads
                .iter()
                .any(|(_, h, _)| &h.id == key || &h.os_id == key)
            {
                return Err(invalid(
                    file,
                    slug,
                    &format!("variant `{key}` names no benchmark and no os-release ID"),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (file, head, body) in heads {
        let mut list = Vec::new();
        for id in body.pending.keys() {
            if body.manual.contains_key(id) || body.controls.contains_key(id) {
                return Err(invalid(file, id, "pending and also checked or manual"));
            }
        }
        for (id, c) in &body.controls {
            if body.manual.contains_key(id) {
                return Err(invalid(file, id, "both automated and manual"));
            }
            let (_, rule) = rules
                .get(&c.rule)
                .ok_or_else(|| invalid(file, id, &format!("no rule `{}`", c.rule)))?;
            let variant = rule
                .variants
                .get(&head.id)
                .map(|v| (&head.id, v))
                .or_else(|| rule.variants.get(&head.os_id).map(|v| (&head.os_id, v)));
            let v = variant.map(|(_, v)| v);
            let text = |own: &String, pick: fn(&RawVariant) -> &Option<String>| -> String {
                v.and_then(|v| pick(v).clone())
                    .unwrap_or_else(|| own.clone())
            };
            list.push(Resolved {
                id: id.clone(),
                slug: Some(c.rule.clone()),
                title: text(&rule.title, |v| &v.title),
                description: text(&rule.description, |v| &v.description),
                remediation: text(&rule.remediation, |v| &v.remediation),
                severity: v.and_then(|v| v.severity).unwrap_or(rule.severity),
                severity_reason: v
                    .and_then(|v| v.severity_reason.clone())
                    .or_else(|| rule.severity_reason.clone()),
                server: c.server,
                workstation: c.workstation,
                check: Some(
                    v.and_then(|v| v.check.clone())
                        .unwrap_or_else(|| rule.check.clone()),
                ),
                check_variant: variant
                    .filter(|(_, v)| v.check.is_some())
                    .map(|(k, _)| k.clone()),
                pending: None,
            });
        }
        for (id, m) in &body.manual {
            list.push(Resolved {
                id: id.clone(),
                slug: None,
                title: m.title.clone(),
                description: m.description.clone(),
                remediation: m.remediation.clone(),
                severity: m.severity,
                severity_reason: m.severity_reason.clone(),
                server: m.server,
                workstation: m.workstation,
                check: None,
                check_variant: None,
                pending: None,
            });
        }
        for (id, p) in &body.pending {
            list.push(Resolved {
                id: id.clone(),
                slug: None,
                title: p.title.clone(),
                description: format!(
                    "This version of the agent does not evaluate this recommendation yet: it \
                     needs {}.",
                    p.needs.trim()
                ),
                remediation: "Review it by hand until the agent evaluates it.".into(),
                severity: p.severity,
                severity_reason: p.severity_reason.clone(),
                server: p.server,
                workstation: p.workstation,
                check: None,
                check_variant: None,
                pending: Some(p.needs.trim().to_string()),
            });
        }
        let mut benchmark_rules = Vec::new();
        for r in list {
            benchmark_rules.push(r.validate(file, &body.sections)?);
        }
        benchmark_rules.sort_by(|a, b| cmp_rule_ids(&a.id, &b.id));
        out.push(Benchmark {
            id: head.id,
            title: head.title,
            version: head.version,
            os_id: head.os_id,
            os_versions: head.os_versions,
            os_like: head.os_like,
            sections: body.sections,
            rules: benchmark_rules,
        });
    }
    Ok(out)
}

/// A recommendation with its rule and variant merged, before validation.
struct Resolved {
    id: String,
    slug: Option<String>,
    title: String,
    description: String,
    remediation: String,
    severity: Severity,
    severity_reason: Option<String>,
    server: Option<u8>,
    workstation: Option<u8>,
    check: Option<Check>,
    check_variant: Option<String>,
    pending: Option<String>,
}

impl Resolved {
    fn validate(
        self,
        file: &str,
        sections: &BTreeMap<String, String>,
    ) -> Result<Rule, ContentError> {
        let invalid = |reason: &str| ContentError::Invalid {
            file: file.to_string(),
            id: self.id.clone(),
            reason: reason.to_string(),
        };
        if !self
            .id
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(invalid("the ID is not a dotted recommendation number"));
        }
        for (what, text) in [
            ("title", &self.title),
            ("description", &self.description),
            ("remediation", &self.remediation),
        ] {
            if text.trim().len() < 10 {
                return Err(invalid(&format!("the {what} is missing or too short")));
            }
        }
        let levels: Vec<u8> = [self.server, self.workstation]
            .into_iter()
            .flatten()
            .collect();
        if levels.is_empty() || levels.iter().any(|l| !(1..=2).contains(l)) {
            return Err(invalid(
                "profiles must give a level 1 or 2 for server and/or workstation",
            ));
        }
        let section = section_of(sections, &self.id)
            .ok_or_else(|| invalid("no section title covers this ID"))?;
        Ok(Rule {
            section,
            title: self.title.trim().to_string(),
            description: self.description.trim().to_string(),
            remediation: self.remediation.trim().to_string(),
            severity: self.severity,
            severity_reason: self.severity_reason,
            level: levels.iter().copied().min().unwrap_or(1),
            server: self.server,
            workstation: self.workstation,
            automated: self.check.is_some(),
            pending: self.pending,
            check: self.check,
            check_variant: self.check_variant,
            slug: self.slug,
            id: self.id,
        })
    }
}

fn section_of(sections: &BTreeMap<String, String>, id: &str) -> Option<String> {
    let mut prefix = id;
    while let Some((head, _)) = prefix.rsplit_once('.') {
        if let Some(t) = sections.get(head) {
            return Some(t.clone());
        }
        prefix = head;
    }
    None
}

#[cfg(test)]
mod tests;
