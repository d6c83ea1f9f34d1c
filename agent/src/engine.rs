//! Runs a scan: chooses the benchmark, selects the profile's rules, evaluates them
//! in parallel over one shared set of facts, and scores the result.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::iter::{IntoParallelRefIterator, ParallelIterator};
use time::OffsetDateTime;

use crate::content::{self, Benchmark, Rule};
use crate::error::AgentError;
use crate::facts::{kv, Facts};
use crate::model::{Outcome, Profile, Severity, SeverityCounts, Status};

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub root: PathBuf,
    /// Our benchmark ID, or `None` to choose from the root's os-release.
    pub benchmark: Option<String>,
    pub profile: Profile,
    /// Rule IDs reported `exempted` instead of evaluated.
    pub exempt: BTreeSet<String>,
}

/// The outcome of one rule in a scan.
#[derive(Debug, Clone)]
pub struct RuleResult {
    pub rule: &'static Rule,
    pub status: Status,
    pub evidence: Vec<String>,
}

/// Counts and score of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// passed ÷ (passed + failed + error) × 100, one decimal; 0 when nothing was scored.
    pub score: f64,
    pub passed: usize,
    pub failed: usize,
    pub error: usize,
    pub not_applicable: usize,
    pub not_checked: usize,
    pub exempted: usize,
    /// Failed rules per severity.
    pub failed_by_severity: SeverityCounts,
}

/// Identity of the scanned system.
#[derive(Debug, Clone)]
pub struct HostInfo {
    pub hostname: String,
    pub os: String,
}

/// A finished scan.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub benchmark: &'static Benchmark,
    pub profile: Profile,
    pub root: PathBuf,
    pub live: bool,
    pub host: HostInfo,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
    pub duration_ms: u64,
    pub results: Vec<RuleResult>,
    pub summary: Summary,
}

/// Scores a list of statuses per SPEC §4.
pub fn summarize(results: impl IntoIterator<Item = (Status, Severity)>) -> Summary {
    let mut s = Summary::default();
    for (status, sev) in results {
        match status {
            Status::Pass => s.passed += 1,
            Status::Fail => {
                s.failed += 1;
                s.failed_by_severity.add(sev);
            }
            Status::Error => s.error += 1,
            Status::NotApplicable => s.not_applicable += 1,
            Status::NotChecked => s.not_checked += 1,
            Status::Exempted => s.exempted += 1,
        }
    }
    if let Some(score) = rampart_report::score(s.passed as u32, s.failed as u32, s.error as u32) {
        s.score = score;
    }
    s
}

/// Checks that the root is a directory and says whether it is the live system.
pub fn open_root(root: &Path) -> Result<(PathBuf, bool), AgentError> {
    let bad = |reason: String| AgentError::BadRoot {
        path: root.display().to_string(),
        reason,
    };
    let unreadable = |source| AgentError::RootUnreadable {
        path: root.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(root).map_err(unreadable)?;
    if !meta.is_dir() {
        return Err(bad("it is not a directory".into()));
    }
    let canon = root.canonicalize().map_err(unreadable)?;
    std::fs::read_dir(&canon).map_err(unreadable)?;
    let live = canon == Path::new("/");
    Ok((canon, live))
}

/// The os-release of the root: (ID, VERSION_ID, PRETTY_NAME, file read).
pub fn os_release(facts: &Facts) -> Option<(String, String, String, String)> {
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Ok(Some(text)) = facts.read(path) {
            let s = kv::parse(&text, path, kv::Separator::Equals);
            let get = |k: &str| {
                kv::last(&s, k, false)
                    .map(|x| x.value.clone())
                    .unwrap_or_default()
            };
            return Some((
                get("ID"),
                get("VERSION_ID"),
                get("PRETTY_NAME"),
                path.to_string(),
            ));
        }
    }
    None
}

/// Chooses the benchmark: the one named, or the one whose OS matches os-release.
pub fn choose_benchmark(
    facts: &Facts,
    requested: Option<&str>,
) -> Result<&'static Benchmark, AgentError> {
    let all = content::benchmarks()?;
    let names = || {
        all.iter()
            .map(|b| b.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(id) = requested {
        return all
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| AgentError::UnknownBenchmark(id.to_string(), names()));
    }
    let (id, version, pretty, src) = os_release(facts).ok_or(AgentError::NoOsRelease)?;
    all.iter()
        .find(|b| b.is_for(&id, &version))
        .ok_or_else(|| AgentError::UnsupportedOs {
            os: if pretty.is_empty() {
                format!("{id} {version}")
            } else {
                pretty
            },
            source_file: src,
            supported: names(),
        })
}

fn host_info(facts: &Facts) -> HostInfo {
    let hostname = if facts.is_live() {
        facts
            .read_runtime("/proc/sys/kernel/hostname")
            .ok()
            .flatten()
    } else {
        None
    }
    .or_else(|| facts.read("/etc/hostname").ok().flatten())
    .map(|h| h.trim().to_string())
    .filter(|h| !h.is_empty())
    .unwrap_or_else(|| "unknown".into());
    let os = os_release(facts)
        .map(|o| {
            if o.2.is_empty() {
                format!("{} {}", o.0, o.1)
            } else {
                o.2
            }
        })
        .unwrap_or_default();
    HostInfo { hostname, os }
}

/// Evaluates one rule. Manual rules are `not_checked`; an offline root adds a note
/// to rules whose outcome could not consider runtime state.
pub fn evaluate(rule: &'static Rule, facts: &Facts) -> RuleResult {
    let outcome = match (&rule.check, &rule.pending) {
        (None, Some(needs)) => Outcome::new(
            Status::NotChecked,
            vec![format!(
                "not evaluated by this version of the agent (it needs {needs}): review by \
                 hand; never counted as passed"
            )],
        ),
        (None, None) => Outcome::new(
            Status::NotChecked,
            vec!["manual recommendation: review by hand; never counted as passed".into()],
        ),
        (Some(check), _) => {
            let mut o = check.eval(facts);
            if o.evidence.is_empty() {
                o.evidence.push("the check produced no evidence".into());
            }
            o
        }
    };
    RuleResult {
        rule,
        status: outcome.status,
        evidence: outcome.evidence,
    }
}

/// Runs a scan of `facts` against `benchmark` at `profile`. When `facts` is
/// cancelled midway the report is incomplete; callers check [`Facts::cancelled`].
pub fn scan_with(
    facts: &Facts,
    benchmark: &'static Benchmark,
    profile: Profile,
    exempt: &BTreeSet<String>,
) -> ScanReport {
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let rules: Vec<&'static Rule> = benchmark
        .rules
        .iter()
        .filter(|r| r.in_profile(profile))
        .collect();
    let results: Vec<RuleResult> = rules
        .par_iter()
        .map(|rule| {
            // Checked between rules: a cancelled scan evaluates nothing more.
            if facts.cancelled() {
                RuleResult {
                    rule,
                    status: Status::Error,
                    evidence: vec!["not evaluated: the scan was cancelled".into()],
                }
            } else if exempt.contains(&rule.id) {
                RuleResult {
                    rule,
                    status: Status::Exempted,
                    evidence: vec!["exempted by the operator".into()],
                }
            } else {
                evaluate(rule, facts)
            }
        })
        .collect();
    let summary = summarize(results.iter().map(|r| (r.status, r.rule.severity)));
    ScanReport {
        benchmark,
        profile,
        root: facts.root().to_path_buf(),
        live: facts.is_live(),
        host: host_info(facts),
        started_at,
        finished_at: OffsetDateTime::now_utc(),
        duration_ms: t0.elapsed().as_millis() as u64,
        results,
        summary,
    }
}

/// Opens the root, chooses the benchmark and runs the scan.
pub fn scan(cfg: &ScanConfig) -> Result<ScanReport, AgentError> {
    let (root, live) = open_root(&cfg.root)?;
    let facts = Facts::new(&root, live);
    let benchmark = choose_benchmark(&facts, cfg.benchmark.as_deref())?;
    for id in &cfg.exempt {
        if !benchmark.rules.iter().any(|r| &r.id == id) {
            return Err(AgentError::UnknownExemption(
                id.clone(),
                benchmark.id.clone(),
            ));
        }
    }
    let mut report = scan_with(&facts, benchmark, cfg.profile, &cfg.exempt);
    report.root = cfg.root.clone();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_cancelled_scan_stops_walking_and_evaluating() {
        let files: Vec<(String, &str)> = (0..50)
            .map(|i| (format!("srv/d{}/f{i}", i % 5), ""))
            .chain([
                (
                    "etc/os-release".to_string(),
                    "ID=debian\nVERSION_ID=\"12\"\n",
                ),
                ("etc/passwd".to_string(), "root:x:0:0::/root:/bin/sh\n"),
                ("etc/group".to_string(), "root:x:0:\n"),
            ])
            .collect();
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        let t = crate::checks::test_tree(&refs, &[]);
        let flag = Arc::new(AtomicBool::new(false));
        let facts = Facts::with_cancel(t.path(), false, flag.clone());
        let b = choose_benchmark(&facts, None).unwrap();
        // Not cancelled: the walk sees every entry.
        let whole = Facts::new(t.path(), false);
        assert!(crate::facts::walk::walk(&whole).unwrap().entries >= 50);
        flag.store(true, Ordering::SeqCst);
        assert!(facts.cancelled());
        let w = crate::facts::walk::walk(&facts).unwrap();
        assert_eq!(w.entries, 0);
        assert!(
            w.errors.iter().any(|e| e.contains("scan cancelled")),
            "{w:?}"
        );
        let report = scan_with(&facts, b, Profile::ALL[0], &BTreeSet::new());
        assert!(report.results.iter().all(|r| r.status == Status::Error
            && r.evidence == ["not evaluated: the scan was cancelled"]));
    }

    #[test]
    fn score_excludes_unscored_statuses() {
        use Severity::*;
        use Status::*;
        let s = summarize([
            (Pass, Low),
            (Pass, Low),
            (Fail, Critical),
            (Error, Low),
            (NotApplicable, Low),
            (NotChecked, Low),
            (Exempted, High),
        ]);
        assert_eq!(s.score, 50.0);
        assert_eq!(
            (
                s.passed,
                s.failed,
                s.error,
                s.not_applicable,
                s.not_checked,
                s.exempted
            ),
            (2, 1, 1, 1, 1, 1)
        );
        assert_eq!(
            s.failed_by_severity.iter().collect::<Vec<_>>(),
            [(Critical, 1), (High, 0), (Medium, 0), (Low, 0)]
        );
        assert_eq!(
            summarize([(Pass, Low), (Fail, Low), (Fail, Low)]).score,
            33.3
        );
        assert_eq!(summarize([]).score, 0.0);
    }
}
