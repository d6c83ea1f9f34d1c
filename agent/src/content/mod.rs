//! Benchmark content: declarative TOML files compiled into the binary, one
//! directory per benchmark under `agent/content/`. Each rule maps a CIS
//! recommendation number to a typed [`Check`], with its levels, profiles, severity
//! and text in the project's own words. Content is validated when it is loaded.

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::checks::Check;
use crate::model::{Profile, Role, Severity};

/// One content file: its name (for error messages) and text.
type Source = (&'static str, &'static str);

macro_rules! content {
    ($dir:literal: $($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!("../../content/", $dir, "/", $file)))),+]
    };
}

/// Every benchmark compiled into the agent: `benchmark.toml` first, then rule files.
/// Base benchmarks come before those that inherit from them.
const SOURCES: &[&[Source]] = &[
    content!("debian-12":
        "benchmark.toml", "1.toml", "2.toml", "3.toml", "4.toml", "5.toml", "6.toml", "7.toml", "7-2.toml"),
    content!("ubuntu-22.04":
        "benchmark.toml", "1.toml", "2.toml", "3.toml", "4.toml", "5.toml", "6.toml", "7.toml"),
    content!("ubuntu-24.04":
        "benchmark.toml", "1.toml", "2.toml", "3.toml", "4.toml", "5.toml", "6.toml", "7.toml"),
];

/// Why content could not be loaded. Content ships inside the binary, so this is
/// caught by the test suite, never by an operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// A file is not valid TOML or does not match the content schema.
    #[error("{file}: {reason}")]
    Syntax { file: String, reason: String },
    /// A rule breaks a content invariant (duplicate ID, missing text, …).
    #[error("{file}: rule {id}: {reason}")]
    Invalid {
        file: String,
        id: String,
        reason: String,
    },
}

/// A benchmark: its identity and its rules, ordered by recommendation number.
#[derive(Debug)]
pub struct Benchmark {
    /// Our identifier, e.g. `debian-12`.
    pub id: String,
    pub title: String,
    pub version: String,
    /// The os-release `ID` and `VERSION_ID`s this benchmark is for.
    pub os_id: String,
    pub os_versions: Vec<String>,
    /// Section number → title.
    pub sections: BTreeMap<String, String>,
    /// The benchmark that rules with `from` inherit from.
    pub base: Option<String>,
    pub rules: Vec<Rule>,
}

/// One CIS recommendation.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    /// The title of the nearest section containing the rule.
    pub section: String,
    pub description: String,
    pub remediation: String,
    pub severity: Severity,
    /// Why the severity differs from the catalogue's proposal, when it does.
    pub severity_reason: Option<String>,
    /// The lowest level the rule belongs to.
    pub level: u8,
    /// Level in the server profiles (`None`: not in them).
    pub server: Option<u8>,
    /// Level in the workstation profiles (`None`: not in them).
    pub workstation: Option<u8>,
    pub automated: bool,
    /// `None` for manual recommendations.
    pub check: Option<Check>,
    /// The base benchmark's rule this one inherits from, if any.
    pub inherited_from: Option<String>,
    /// Whether the check itself is the base rule's (so are its fixtures).
    pub inherits_check: bool,
}

impl Rule {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBenchmark {
    id: String,
    title: String,
    version: String,
    os_id: String,
    os_versions: Vec<String>,
    sections: BTreeMap<String, String>,
    /// The benchmark whose rules `from` refers to.
    base: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    /// Inherit every field not given here from this rule of the base benchmark.
    from: Option<String>,
    title: Option<String>,
    description: Option<String>,
    remediation: Option<String>,
    severity: Option<Severity>,
    severity_reason: Option<String>,
    level: u8,
    profiles: RawProfiles,
    automated: Option<bool>,
    check: Option<Check>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfiles {
    server: Option<u8>,
    workstation: Option<u8>,
}

/// All compiled-in benchmarks, parsed and validated once.
pub fn benchmarks() -> Result<&'static [Benchmark], ContentError> {
    static ALL: OnceLock<Result<Vec<Benchmark>, ContentError>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut out: Vec<Benchmark> = Vec::new();
        for s in SOURCES {
            let b = load(s, &out)?;
            out.push(b);
        }
        Ok(out)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// Identifies the compiled-in content: a hash of every content file. Rule
/// metadata travels to the collector once per content version.
pub fn content_version(benchmark_id: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for files in SOURCES {
        for (name, text) in *files {
            for b in name.bytes().chain(text.bytes()) {
                h ^= b as u64;
                h = h.wrapping_mul(0x100000001b3);
            }
        }
    }
    format!("{benchmark_id}@{}+{h:016x}", env!("CARGO_PKG_VERSION"))
}

/// The benchmark with our identifier `id`.
pub fn benchmark(id: &str) -> Result<Option<&'static Benchmark>, ContentError> {
    Ok(benchmarks()?.iter().find(|b| b.id == id))
}

/// Parses and validates one benchmark's files.
pub fn load(files: &[Source], loaded: &[Benchmark]) -> Result<Benchmark, ContentError> {
    let syntax = |file: &str, e: toml::de::Error| ContentError::Syntax {
        file: file.to_string(),
        reason: e.to_string(),
    };
    let (head_name, head_text) = files.first().copied().unwrap_or(("benchmark.toml", ""));
    let head: RawBenchmark = toml::from_str(head_text).map_err(|e| syntax(head_name, e))?;
    let base = match &head.base {
        Some(id) => {
            Some(
                loaded
                    .iter()
                    .find(|b| &b.id == id)
                    .ok_or_else(|| ContentError::Syntax {
                        file: head_name.to_string(),
                        reason: format!("base benchmark `{id}` is not loaded before this one"),
                    })?,
            )
        }
        None => None,
    };
    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    for (file, text) in &files[1..] {
        let raw: RawFile = toml::from_str(text).map_err(|e| syntax(file, e))?;
        for r in raw.rule {
            let invalid = |reason: &str| ContentError::Invalid {
                file: file.to_string(),
                id: r.id.clone(),
                reason: reason.to_string(),
            };
            if !r
                .id
                .split('.')
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
            {
                return Err(invalid("the ID is not a dotted recommendation number"));
            }
            if !seen.insert(r.id.clone()) {
                return Err(invalid("duplicate rule ID"));
            }
            let parent = match &r.from {
                Some(from) => {
                    let b = base.ok_or_else(|| {
                        invalid("`from` needs a `base` benchmark in benchmark.toml")
                    })?;
                    Some(b.rules.iter().find(|x| &x.id == from).ok_or_else(|| {
                        invalid(&format!(
                            "`from` names {from}, which is not a rule of {}",
                            b.id
                        ))
                    })?)
                }
                None => None,
            };
            let pick = |own: &Option<String>, inherited: Option<&String>| -> String {
                own.clone()
                    .or_else(|| inherited.cloned())
                    .unwrap_or_default()
            };
            let title = pick(&r.title, parent.map(|p| &p.title));
            let description = pick(&r.description, parent.map(|p| &p.description));
            let remediation = pick(&r.remediation, parent.map(|p| &p.remediation));
            let severity = r
                .severity
                .or(parent.map(|p| p.severity))
                .ok_or_else(|| invalid("the severity is missing"))?;
            let automated = r
                .automated
                .or(parent.map(|p| p.automated))
                .ok_or_else(|| invalid("`automated` is missing"))?;
            let check = match (&r.check, r.automated) {
                (Some(c), _) => Some(c.clone()),
                // A rule made manual here does not inherit the base's check.
                (None, Some(false)) => None,
                (None, _) => parent.and_then(|p| p.check.clone()),
            };
            let severity_reason = r
                .severity_reason
                .clone()
                .or_else(|| parent.and_then(|p| p.severity_reason.clone()));
            for (what, text) in [
                ("title", &title),
                ("description", &description),
                ("remediation", &remediation),
            ] {
                if text.trim().len() < 10 {
                    return Err(invalid(&format!("the {what} is missing or too short")));
                }
            }
            match (automated, check.is_some()) {
                (true, false) => return Err(invalid("an automated rule needs a check")),
                (false, true) => return Err(invalid("a manual rule must not have a check")),
                _ => {}
            }
            let levels: Vec<u8> = [r.profiles.server, r.profiles.workstation]
                .into_iter()
                .flatten()
                .collect();
            if levels.is_empty() || levels.iter().any(|l| !(1..=2).contains(l)) {
                return Err(invalid(
                    "profiles must give a level 1 or 2 for server and/or workstation",
                ));
            }
            if levels.iter().min() != Some(&r.level) {
                return Err(invalid(
                    "`level` must be the lowest level among its profiles",
                ));
            }
            let section = section_of(&head.sections, &r.id)
                .ok_or_else(|| invalid("no section title covers this ID"))?;
            rules.push(Rule {
                section,
                title: title.trim().to_string(),
                description: description.trim().to_string(),
                remediation: remediation.trim().to_string(),
                severity,
                severity_reason,
                level: r.level,
                server: r.profiles.server,
                workstation: r.profiles.workstation,
                automated,
                check,
                inherited_from: r.from.clone(),
                inherits_check: parent.is_some() && r.check.is_none() && automated,
                id: r.id,
            });
        }
    }
    rules.sort_by_key(|a| id_key(&a.id));
    Ok(Benchmark {
        id: head.id,
        title: head.title,
        version: head.version,
        os_id: head.os_id,
        os_versions: head.os_versions,
        sections: head.sections,
        base: head.base,
        rules,
    })
}

/// The numeric sort key of a dotted ID: `1.10` after `1.9`.
pub fn id_key(id: &str) -> Vec<u32> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect()
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
mod tests {
    use super::*;

    const HEAD: Source = (
        "benchmark.toml",
        "id='t'\ntitle='T'\nversion='1'\nos_id='debian'\nos_versions=['12']\n[sections]\n'1'='Setup'\n",
    );

    fn rule(id: &str, extra: &str) -> String {
        format!(
            "[[rule]]\nid='{id}'\ntitle='A title long enough'\ndescription='A description long enough'\n\
             remediation='A remediation long enough'\nseverity='low'\nlevel=1\nprofiles={{server=1}}\n{extra}\n"
        )
    }

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    #[test]
    fn compiled_content_is_valid() {
        let b = benchmarks().expect("compiled-in content must load");
        assert!(!b.is_empty());
    }

    #[test]
    fn rejects_malformed_content() {
        let check = "automated=true\ncheck={kind='file.absent', paths=['/x']}";
        let cases: Vec<(String, &str)> = vec![
            (
                rule("1.1", check) + &rule("1.1", check),
                "duplicate rule ID",
            ),
            (
                rule("1.2", "automated=true\ncheck={kind='file.nonsense'}"),
                "file.nonsense",
            ),
            (
                rule("1.3", "automated=true\ncheck={kind='bogus.thing'}"),
                "unknown check family",
            ),
            (rule("1.4", "automated=true"), "needs a check"),
            (
                rule(
                    "1.5",
                    "automated=false\ncheck={kind='file.absent', paths=['/x']}",
                ),
                "must not have a check",
            ),
            (
                rule("1.6", check).replace("A title long enough", ""),
                "title is missing",
            ),
            (rule("x.1", check), "dotted recommendation number"),
            (rule("2.1", check), "no section title"),
            (
                rule("1.7", check).replace("server=1", ""),
                "profiles must give",
            ),
        ];
        for (text, want) in cases {
            let err = load(&[HEAD, ("r.toml", leak(text.clone()))], &[])
                .expect_err(&text)
                .to_string();
            assert!(err.contains(want), "expected {want:?} in {err:?}");
        }
    }

    #[test]
    fn derived_benchmarks_inherit_and_override() {
        let base = load(
            &[
                HEAD,
                (
                    "r.toml",
                    leak(rule(
                        "1.1",
                        "automated=true\ncheck={kind='file.absent', paths=['/x']}",
                    )),
                ),
            ],
            &[],
        )
        .unwrap();
        let head = (
            "benchmark.toml",
            "id='u'\ntitle='U'\nversion='1'\nos_id='ubuntu'\nos_versions=['24.04']\nbase='t'\n[sections]\n'1'='Setup'\n'2'='Other'\n",
        );
        let rules = "[[rule]]\nid='2.1'\nfrom='1.1'\nlevel=2\nprofiles={server=2}\n\n\
                     [[rule]]\nid='2.2'\nfrom='1.1'\nlevel=1\nprofiles={server=1}\nautomated=false\ntitle='A different title here'\n";
        let b = load(&[head, ("r.toml", rules)], std::slice::from_ref(&base)).unwrap();
        let (a, m) = (&b.rules[0], &b.rules[1]);
        assert_eq!(
            (a.title.as_str(), a.level, a.automated, a.check.is_some()),
            ("A title long enough", 2, true, true)
        );
        assert_eq!(a.inherited_from.as_deref(), Some("1.1"));
        assert_eq!(
            (m.title.as_str(), m.automated, m.check.is_some()),
            ("A different title here", false, false)
        );
        let bad = "[[rule]]\nid='2.3'\nfrom='9.9'\nlevel=1\nprofiles={server=1}\n";
        let e = load(&[head, ("r.toml", bad)], std::slice::from_ref(&base))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a rule of t"), "{e}");
        assert!(load(&[head, ("r.toml", bad)], &[])
            .unwrap_err()
            .to_string()
            .contains("base benchmark"));
    }

    #[test]
    fn profiles_include_lower_levels() {
        let text = rule("1.1", "automated=false").replace("server=1", "server=1, workstation=2");
        let b = load(&[HEAD, ("r.toml", leak(text))], &[]).unwrap();
        let r = &b.rules[0];
        let names: Vec<&str> = r.profiles().iter().map(|p| p.name()).collect();
        assert_eq!(
            names,
            ["level1-server", "level2-server", "level2-workstation"]
        );
        assert_eq!(r.section, "Setup");
    }
}
