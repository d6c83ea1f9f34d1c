//! `file.*` checks: ownership and permission of files named by paths or globs.

use serde::Deserialize;

use crate::checks::common::{describe_meta, judge_meta, parse_mode};
use crate::facts::accounts::accounts;
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// What a missing file means for a check.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// The recommendation does not apply (the default).
    #[default]
    NotApplicable,
    /// A missing file meets the recommendation.
    Pass,
    /// The file must exist.
    Fail,
}

/// The `file.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every file matching `paths` (globs allowed) has a mode no looser than
    /// `max_mode` and an owner and group from the allowed lists.
    #[serde(rename = "file.perms")]
    Perms {
        paths: Vec<String>,
        /// Octal, e.g. `"0640"`: bits outside it must be clear.
        max_mode: Option<String>,
        /// Allowed owners (names or numeric IDs). Empty: any.
        #[serde(default)]
        owner: Vec<String>,
        /// Allowed groups (names or numeric IDs). Empty: any.
        #[serde(default)]
        group: Vec<String>,
        /// What it means when no path matches.
        #[serde(default)]
        missing: Missing,
    },
    /// The file must not exist (e.g. a deny list replaced by an allow list).
    #[serde(rename = "file.absent")]
    Absent { paths: Vec<String> },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self {
            Check::Perms {
                paths,
                max_mode,
                owner,
                group,
                missing,
            } => {
                let max = match max_mode.as_deref().map(parse_mode).transpose() {
                    Ok(m) => m,
                    Err(e) => return Outcome::error(e),
                };
                perms(facts, paths, max, owner, group, *missing)
            }
            Check::Absent { paths } => {
                let mut found = Vec::new();
                for p in paths {
                    match expand(facts, p) {
                        Ok(v) => found.extend(v),
                        Err(e) => return e.into(),
                    }
                }
                if found.is_empty() {
                    Outcome::pass(format!("{} not present", paths.join(", ")))
                } else {
                    Outcome::new(
                        Status::Fail,
                        found.into_iter().map(|p| format!("{p} exists")).collect(),
                    )
                }
            }
        }
    }
}

/// Paths matching `pattern` inside the root (a plain path matches itself if it exists).
pub fn expand(facts: &Facts, pattern: &str) -> Result<Vec<String>, FactError> {
    if pattern.contains(['*', '?', '[']) {
        facts.glob(pattern)
    } else {
        Ok(facts
            .lstat(pattern)?
            .map(|_| vec![pattern.to_string()])
            .unwrap_or_default())
    }
}

fn perms(
    facts: &Facts,
    paths: &[String],
    max: Option<u32>,
    owner: &[String],
    group: &[String],
    missing: Missing,
) -> Outcome {
    let acc = accounts(facts).ok();
    let acc = acc.as_deref();
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut any = false;
    for pattern in paths {
        let matched = match expand(facts, pattern) {
            Ok(v) => v,
            Err(e) => return e.into(),
        };
        for p in matched {
            let m = match facts.stat(&p) {
                Ok(Some(m)) => m,
                Ok(None) => continue, // a dangling symlink: nothing to judge
                Err(e) => return e.into(),
            };
            any = true;
            let bad = judge_meta(&m, max, owner, group, acc);
            if bad.is_empty() {
                found.push(describe_meta(&m, acc));
            } else {
                failures.extend(bad);
            }
        }
    }
    if !any {
        let what = format!("{} not present", paths.join(", "));
        return match missing {
            Missing::NotApplicable => Outcome::not_applicable(what),
            Missing::Pass => Outcome::pass(what),
            Missing::Fail => Outcome::fail(what),
        };
    }
    Outcome::from_findings(failures, found)
}
