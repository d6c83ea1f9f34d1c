//! Rule metadata of the benchmarks this collector knows. It is built from the same
//! compiled-in content as the agent (both crates live in one workspace), never from
//! what an agent sends: an agent can neither change a rule's title, remediation or
//! severity nor, through severities, the enforcement of other VMs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rampart_agent::content;
use rampart_report::{Profile, Severity};
use serde::{Deserialize, Serialize};

/// Rule metadata of one benchmark.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Catalog {
    pub content_version: String,
    pub benchmark_id: String,
    pub benchmark_title: String,
    pub benchmark_version: String,
    pub rules: BTreeMap<String, CatalogRule>,
}

/// One rule's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CatalogRule {
    pub title: String,
    pub section: String,
    pub description: String,
    pub remediation: String,
    pub severity: Severity,
    pub level: u32,
    pub automated: bool,
    /// The profiles that include the rule.
    #[serde(default)]
    pub profiles: Vec<Profile>,
}

impl Catalog {
    /// IDs of the rules of `profile`.
    pub fn profile_rules(&self, profile: Profile) -> Vec<&str> {
        self.rules
            .iter()
            .filter(|(_, r)| r.profiles.contains(&profile))
            .map(|(id, _)| id.as_str())
            .collect()
    }
}

/// Every compiled-in benchmark's catalog, by benchmark ID.
pub struct Catalogs {
    by_benchmark: HashMap<String, Arc<Catalog>>,
}

impl Catalogs {
    /// The catalogs of the content compiled into this build.
    pub fn builtin() -> Result<Catalogs, String> {
        let all = content::benchmarks().map_err(|e| format!("compiled-in content: {e}"))?;
        let by_benchmark = all
            .iter()
            .map(|b| {
                let rules = b
                    .rules
                    .iter()
                    .map(|r| {
                        (
                            r.id.clone(),
                            CatalogRule {
                                title: r.title.clone(),
                                section: r.section.clone(),
                                description: r.description.clone(),
                                remediation: r.remediation.clone(),
                                severity: r.severity,
                                level: r.level.into(),
                                automated: r.automated,
                                profiles: r.profiles(),
                            },
                        )
                    })
                    .collect();
                let c = Catalog {
                    content_version: content::content_version(&b.id),
                    benchmark_id: b.id.clone(),
                    benchmark_title: b.title.clone(),
                    benchmark_version: b.version.clone(),
                    rules,
                };
                (b.id.clone(), Arc::new(c))
            })
            .collect();
        Ok(Catalogs { by_benchmark })
    }

    /// The catalog for an agent's content version (`<benchmark>@<build>`): the
    /// benchmark's compiled-in catalog, whatever build the agent is.
    pub fn for_version(&self, content_version: &str) -> Option<Arc<Catalog>> {
        let bench = content_version.split('@').next().unwrap_or_default();
        self.by_benchmark.get(bench).cloned()
    }

    /// Whether some known benchmark has a rule with this ID.
    pub fn knows_rule(&self, id: &str) -> bool {
        self.by_benchmark.values().any(|c| c.rules.contains_key(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogs_cover_the_agent_content() {
        let c = Catalogs::builtin().unwrap();
        let deb = c.for_version("debian-12@9.9.9+0000").unwrap();
        assert_eq!(deb.benchmark_id, "debian-12");
        // Every compiled-in rule is there with its profiles; level 2 includes level 1.
        let l1 = deb.profile_rules(Profile::ALL[0]);
        let l2 = deb.profile_rules(Profile::ALL[1]);
        assert!(!l1.is_empty() && l1.len() < l2.len());
        assert!(l1.iter().all(|id| l2.contains(id)));
        assert!(c.for_version("no-such@1").is_none());
    }
}
