//! World-writable and unowned files, from the shared filesystem walk.

use super::files::mount_table;
use super::WalkScope;
use crate::checks::common::MAX_LISTED;
use crate::facts::walk::walk;
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

// ---------------------------------------------------------------------------
// Filesystem walk: world-writable and unowned files

/// `find -path` matching: `*` matches any run of characters, `/` included.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

pub(super) struct Scope {
    patterns: Vec<String>,
    prefixes: Vec<String>,
    notes: Vec<String>,
}

impl Scope {
    fn new(facts: &Facts, s: &WalkScope) -> Result<Scope, FactError> {
        let table = mount_table(facts)?;
        let mut prefixes = Vec::new();
        let mut notes = Vec::new();
        for m in &table {
            if m.target == "/" {
                continue;
            }
            let by_type = s
                .skip_fstypes
                .iter()
                .any(|t| m.fstype == *t || m.fstype.starts_with(&format!("{t}.")));
            let by_mount = s.skip_mounts.iter().any(|p| wildcard(p, &m.target));
            if by_type || by_mount {
                prefixes.push(m.target.trim_end_matches('/').to_string());
                notes.push(format!("{} ({}) left out", m.target, m.fstype));
            }
        }
        Ok(Scope {
            patterns: s.exclude.clone(),
            prefixes,
            notes,
        })
    }

    fn excluded(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| wildcard(p, path))
            || self
                .prefixes
                .iter()
                .any(|x| path == x || path.starts_with(&format!("{x}/")))
    }
}

pub(super) fn list_findings(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    let n = items.len();
    if n > MAX_LISTED {
        items.truncate(MAX_LISTED);
        items.push(format!("… and {} more", n - MAX_LISTED));
    }
    items
}

pub(super) fn walk_summary(
    w: &crate::facts::walk::WalkResult,
    scope: &Scope,
    ev: &mut Vec<String>,
) {
    let mut s = format!("{} entries walked on local filesystems", w.entries);
    if !w.skipped.is_empty() {
        s.push_str(&format!(
            "; pseudo, network and memory filesystems skipped: {}",
            w.skipped.len()
        ));
    }
    ev.push(s);
    ev.extend(scope.notes.iter().cloned());
    let errs: Vec<&String> = w
        .errors
        .iter()
        .filter(|e| !scope.excluded(e.split(':').next().unwrap_or("")))
        .collect();
    if !errs.is_empty() {
        ev.push(format!(
            "{} directories could not be read and were not examined (first: {})",
            errs.len(),
            errs[0]
        ));
    }
}

pub(super) fn world_writable(facts: &Facts, s: &WalkScope) -> Result<Outcome, FactError> {
    let w = walk(facts)?;
    let scope = Scope::new(facts, s)?;
    let mut bad = Vec::new();
    for m in w
        .world_writable_files
        .iter()
        .filter(|m| !scope.excluded(&m.path))
    {
        bad.push(format!(
            "{}: world-writable file (mode {:04o})",
            m.path, m.mode
        ));
    }
    for m in w
        .world_writable_dirs_without_sticky
        .iter()
        .filter(|m| !scope.excluded(&m.path))
    {
        bad.push(format!(
            "{}: world-writable directory without the sticky bit (mode {:04o})",
            m.path, m.mode
        ));
    }
    let mut ev = list_findings(bad);
    let failed = !ev.is_empty();
    walk_summary(&w, &scope, &mut ev);
    if !failed {
        ev.insert(
            0,
            "no world-writable files, and every world-writable directory has the sticky bit".into(),
        );
    }
    Ok(Outcome::new(
        if failed { Status::Fail } else { Status::Pass },
        ev,
    ))
}

pub(super) fn unowned(facts: &Facts, s: &WalkScope) -> Result<Outcome, FactError> {
    let w = walk(facts)?;
    let scope = Scope::new(facts, s)?;
    let mut bad = Vec::new();
    for m in w.unowned.iter().filter(|m| !scope.excluded(&m.path)) {
        bad.push(format!(
            "{}: owner UID {} is not in /etc/passwd",
            m.path, m.uid
        ));
    }
    for m in w.ungrouped.iter().filter(|m| !scope.excluded(&m.path)) {
        bad.push(format!(
            "{}: group GID {} is not in /etc/group",
            m.path, m.gid
        ));
    }
    let mut ev = list_findings(bad);
    let failed = !ev.is_empty();
    walk_summary(&w, &scope, &mut ev);
    if !failed {
        ev.insert(
            0,
            "every file and directory has an owner and group known to passwd and group".into(),
        );
    }
    Ok(Outcome::new(
        if failed { Status::Fail } else { Status::Pass },
        ev,
    ))
}
