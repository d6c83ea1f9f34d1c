//! The scan documents simulated agents send: one result per rule of the requested
//! profile of CIS Debian 12, as the real agent would report it. Statuses come from a
//! real scan of a Debian root when one was recorded (`rampart-agent check --format
//! json`), otherwise from a fixed mix; a little jitter flips a few outcomes so that
//! no two scans are byte-identical.

use std::collections::HashMap;
use std::path::Path;

use rampart_agent::content::{self, Benchmark};
use rampart_agent::model::Profile;
use rampart_proto::v1::{RuleResult, RuleStatus};

use crate::{Error, Result};

/// The benchmark the simulated agents run.
pub const BENCHMARK: &str = "debian-12";

/// A small deterministic generator (splitmix64): reproducible runs, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A real scan's outcome per rule ID: status and evidence.
#[derive(Debug, Default, Clone)]
pub struct Recorded(pub HashMap<String, (String, Vec<String>)>);

impl Recorded {
    /// Reads the JSON document of `rampart-agent check --format json`.
    pub fn from_report(json: &[u8]) -> Result<Recorded> {
        let v: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| Error::Config(format!("recorded scan is not JSON: {e}")))?;
        let results = v["results"]
            .as_array()
            .ok_or_else(|| Error::Config("recorded scan has no `results`".into()))?;
        let mut out = HashMap::new();
        for r in results {
            let (Some(id), Some(status)) = (r["id"].as_str(), r["status"].as_str()) else {
                continue;
            };
            let evidence = r["evidence"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(id.to_string(), (status.to_string(), evidence));
        }
        Ok(Recorded(out))
    }

    /// Runs the real agent on `root` (a Debian 12 tree) at level 2, which covers
    /// every server rule, and records its results.
    pub fn scan_root(agent: &Path, root: &Path) -> Result<Recorded> {
        let out = std::process::Command::new(agent)
            .args([
                "check",
                "--format",
                "json",
                "--profile",
                "level2-server",
                "--root",
            ])
            .arg(root)
            .output()
            .map_err(|e| Error::Io {
                what: format!("run {}", agent.display()),
                source: e,
            })?;
        // Exit code 1 means "below --fail-under", which is not asked for here; the
        // document is on stdout either way.
        if out.stdout.is_empty() {
            return Err(Error::Config(format!(
                "{} check --root {} printed nothing: {}",
                agent.display(),
                root.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Recorded::from_report(&out.stdout)
    }
}

/// Debian 12's compiled-in content.
pub fn benchmark() -> Result<&'static Benchmark> {
    content::benchmark(BENCHMARK)
        .map_err(|e| Error::Config(format!("content: {e}")))?
        .ok_or_else(|| Error::Config(format!("no benchmark {BENCHMARK} compiled in")))
}

/// The content version a simulated agent announces in its hello (computed once:
/// it hashes every content file).
pub fn content_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| content::content_version(BENCHMARK))
        .clone()
}

/// How many rules a profile of Debian 12 has (0 for an unknown profile).
pub fn rule_count(profile: &str) -> usize {
    static COUNTS: std::sync::OnceLock<Vec<(&'static str, usize)>> = std::sync::OnceLock::new();
    let counts = COUNTS.get_or_init(|| {
        let Ok(b) = benchmark() else {
            return vec![];
        };
        Profile::ALL
            .into_iter()
            .map(|p| (p.name(), b.rules.iter().filter(|r| r.in_profile(p)).count()))
            .collect()
    });
    counts
        .iter()
        .find(|(name, _)| *name == profile)
        .map_or(0, |(_, n)| *n)
}

/// The server profile whose scans carry at least `results` results (the largest
/// one when none does).
pub fn profile_for_results(results: usize) -> &'static str {
    ["level1-server", "level2-server"]
        .into_iter()
        .find(|p| rule_count(p) >= results)
        .unwrap_or("level2-server")
}

fn synthetic(rule: &content::Rule, rng: &mut Rng) -> (RuleStatus, Vec<String>) {
    if !rule.automated {
        return (
            RuleStatus::NotChecked,
            vec!["manual recommendation: review by hand".into()],
        );
    }
    let roll = rng.below(100);
    let (status, words) = match roll {
        0..=69 => (RuleStatus::Pass, "as recommended"),
        70..=91 => (RuleStatus::Fail, "differs from the recommendation"),
        92..=93 => (RuleStatus::Error, "could not be read"),
        _ => (RuleStatus::NotApplicable, "does not apply to this host"),
    };
    let evidence = vec![
        format!("{}: {words}", rule.title),
        format!(
            "checked /etc and /usr/lib for `{}` (section {}), value found: {}",
            rule.id,
            rule.section,
            rng.below(1000)
        ),
    ];
    (status, evidence)
}

fn wire(status: &str, automated: bool) -> Option<RuleStatus> {
    Some(match (status, automated) {
        ("pass", true) => RuleStatus::Pass,
        ("fail", true) => RuleStatus::Fail,
        ("error", true) => RuleStatus::Error,
        ("not_applicable", _) => RuleStatus::NotApplicable,
        ("not_checked", false) => RuleStatus::NotChecked,
        _ => return None,
    })
}

/// The results of one scan of `profile`: exactly one per rule of the profile, in
/// content order; `exempt` rules are reported as exempted, as the agent does.
pub fn results(
    profile: &str,
    exempt: &[String],
    recorded: Option<&Recorded>,
    rng: &mut Rng,
) -> Result<Vec<RuleResult>> {
    let p = Profile::parse(profile)
        .ok_or_else(|| Error::Config(format!("unknown profile `{profile}`")))?;
    let b = benchmark()?;
    let mut out = Vec::new();
    for rule in b.rules.iter().filter(|r| r.in_profile(p)) {
        let (status, evidence) = if exempt.contains(&rule.id) {
            (
                RuleStatus::Exempted,
                vec!["exempted by the collector's settings".into()],
            )
        } else {
            let real = recorded
                .and_then(|r| r.0.get(&rule.id))
                .and_then(|(s, e)| Some((wire(s, rule.automated)?, e.clone())));
            match real {
                // Jitter: one automated outcome in twenty flips between pass and fail.
                Some((RuleStatus::Pass, e)) if rng.below(20) == 0 => (RuleStatus::Fail, e),
                Some((RuleStatus::Fail, e)) if rng.below(20) == 0 => (RuleStatus::Pass, e),
                Some(found) => found,
                None => synthetic(rule, rng),
            }
        };
        out.push(RuleResult {
            rule_id: rule.id.clone(),
            status: status as i32,
            evidence: fit(evidence),
        });
    }
    Ok(out)
}

/// Evidence within the protocol's bounds (a recorded line may be longer).
fn fit(mut evidence: Vec<String>) -> Vec<String> {
    use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
    evidence.truncate(EVIDENCE_LINES.saturating_sub(1));
    let mut total = 0;
    let mut out = Vec::new();
    for mut l in evidence {
        if l.len() > EVIDENCE_LINE_BYTES / 2 {
            let mut cut = EVIDENCE_LINE_BYTES / 2;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
        }
        if total + l.len() > EVIDENCE_BYTES / 2 {
            break;
        }
        total += l.len();
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(r: &RuleResult) -> RuleStatus {
        RuleStatus::try_from(r.status).unwrap()
    }

    #[test]
    fn one_result_per_rule_of_the_profile_with_valid_statuses() {
        let b = benchmark().unwrap();
        for profile in ["level1-server", "level2-server", "level1-workstation"] {
            let p = Profile::parse(profile).unwrap();
            let mut rng = Rng::new(7);
            let got = results(profile, &[], None, &mut rng).unwrap();
            let want: Vec<&str> = b
                .rules
                .iter()
                .filter(|r| r.in_profile(p))
                .map(|r| r.id.as_str())
                .collect();
            let ids: Vec<&str> = got.iter().map(|r| r.rule_id.as_str()).collect();
            assert_eq!(ids, want, "{profile}");
            for r in &got {
                let rule = b.rules.iter().find(|x| x.id == r.rule_id).unwrap();
                let s = status_of(r);
                let ok = match s {
                    RuleStatus::NotChecked => !rule.automated,
                    RuleStatus::Pass | RuleStatus::Fail | RuleStatus::Error => rule.automated,
                    RuleStatus::NotApplicable => true,
                    _ => false,
                };
                assert!(ok, "{profile} {}: {s:?}", r.rule_id);
                assert!(!r.evidence.is_empty(), "{}", r.rule_id);
            }
        }
    }

    #[test]
    fn exemptions_and_recorded_outcomes_are_used() {
        let b = benchmark().unwrap();
        let auto = b
            .rules
            .iter()
            .find(|r| r.automated && r.server == Some(1))
            .unwrap();
        let manual = b
            .rules
            .iter()
            .find(|r| !r.automated && r.server == Some(1))
            .unwrap();
        let other = b
            .rules
            .iter()
            .find(|r| r.automated && r.server == Some(1) && r.id != auto.id)
            .unwrap();
        let rec = Recorded::from_report(
            serde_json::json!({"results": [
                {"id": auto.id, "status": "not_applicable", "evidence": ["recorded line"]},
                // A recorded status the rule cannot have is not replayed.
                {"id": manual.id, "status": "pass", "evidence": ["impossible"]},
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let got = results(
            "level1-server",
            std::slice::from_ref(&other.id),
            Some(&rec),
            &mut Rng::new(1),
        )
        .unwrap();
        let find = |id: &str| got.iter().find(|r| r.rule_id == id).unwrap();
        assert_eq!(status_of(find(&auto.id)), RuleStatus::NotApplicable);
        assert_eq!(find(&auto.id).evidence, ["recorded line"]);
        assert_eq!(status_of(find(&manual.id)), RuleStatus::NotChecked);
        assert_eq!(status_of(find(&other.id)), RuleStatus::Exempted);
    }

    #[test]
    fn results_flag_picks_a_profile() {
        assert!(rule_count("level2-server") > rule_count("level1-server"));
        assert_eq!(profile_for_results(1), "level1-server");
        assert_eq!(profile_for_results(300), "level2-server");
        assert_eq!(profile_for_results(100_000), "level2-server");
        assert_eq!(rule_count("nonsense"), 0);
    }
}
