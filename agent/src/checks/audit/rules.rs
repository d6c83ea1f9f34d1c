//! Semantic matching of what a recommendation requires against the audit rules
//! that [`crate::facts::audit`] reads: a requirement expands into atoms (one per
//! architecture and system call), and a rule covers an atom when every event the
//! atom asks for is audited by it, looser filters included.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::facts::audit::{
    normalise_path, normalise_value, parse_filter, parse_num, AuditRule, Filter, Kind, Op, RuleSet,
    ID_FIELDS,
};

/// What a recommendation needs audited, as written in the content.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A file or directory whose accesses are audited (`-w` or `-F path=`/`dir=`).
    #[serde(default)]
    pub path: Option<String>,
    /// Access types for `path` (`r`, `w`, `x`, `a`).
    #[serde(default)]
    pub perms: Option<String>,
    /// System calls audited (each, for each `arch`).
    #[serde(default)]
    pub syscalls: Vec<String>,
    /// Architectures: `b64`, `b32`. Default both.
    #[serde(default)]
    pub arch: Vec<String>,
    /// Filters every matching event meets, e.g. `auid>=UID_MIN`, `auid!=unset`,
    /// `exit=-EACCES`. A rule with fewer (or looser) filters also covers.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Field comparisons (`-C`), e.g. `euid!=uid`.
    #[serde(default)]
    pub compare: Vec<String>,
}

/// A requirement resolved for one architecture and (optionally) one syscall.
#[derive(Debug, Clone)]
pub struct Atom {
    pub arch: String,
    pub syscall: Option<String>,
    pub path: Option<String>,
    pub perms: Option<String>,
    pub filters: Vec<Filter>,
    pub compares: Vec<Filter>,
}

impl Requirement {
    /// Expands into atoms with `UID_MIN` substituted.
    pub fn atoms(&self, uid_min: u32) -> Result<Vec<Atom>, String> {
        let arches: Vec<String> = if self.arch.is_empty() {
            vec!["b64".into(), "b32".into()]
        } else {
            self.arch.clone()
        };
        let mut filters = Vec::new();
        for f in &self.filters {
            let s = f.replace("UID_MIN", &uid_min.to_string());
            filters.push(parse_filter(&s).ok_or_else(|| format!("bad filter {f} in content"))?);
        }
        let mut compares = Vec::new();
        for c in &self.compare {
            let mut f = parse_filter(c).ok_or_else(|| format!("bad comparison {c} in content"))?;
            if matches!(f.op, Op::Eq | Op::Ne) && f.value < f.field {
                std::mem::swap(&mut f.field, &mut f.value);
            }
            compares.push(f);
        }
        let path = self.path.as_deref().map(normalise_path);
        let perms = self
            .perms
            .as_ref()
            .map(|p| p.chars().collect::<BTreeSet<char>>().into_iter().collect());
        let mut out = Vec::new();
        for arch in &arches {
            let base = Atom {
                arch: normalise_value("arch", arch),
                syscall: None,
                path: path.clone(),
                perms: perms.clone(),
                filters: filters.clone(),
                compares: compares.clone(),
            };
            if self.syscalls.is_empty() {
                out.push(base);
            } else {
                for s in &self.syscalls {
                    out.push(Atom {
                        syscall: Some(s.to_ascii_lowercase()),
                        ..base.clone()
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Atom {
    /// The rule that would meet this atom, in auditctl syntax.
    pub fn suggest(&self) -> String {
        let f: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!(" -F {}", f.text()))
            .collect();
        let c: Vec<String> = self
            .compares
            .iter()
            .map(|f| format!(" -C {}", f.text()))
            .collect();
        match (&self.syscall, &self.path) {
            (None, Some(p)) if self.filters.is_empty() && self.compares.is_empty() => {
                format!("-w {p} -p {}", self.perms.as_deref().unwrap_or("rwxa"))
            }
            (None, Some(p)) => format!(
                "-a always,exit -F path={p}{}{}{}",
                self.perms
                    .as_deref()
                    .map(|x| format!(" -F perm={x}"))
                    .unwrap_or_default(),
                f.concat(),
                c.concat()
            ),
            (Some(s), _) => format!(
                "-a always,exit -F arch={} -S {s}{}{}",
                self.arch,
                c.concat(),
                f.concat()
            ),
            (None, None) => format!(
                "-a always,exit -F arch={}{}{}",
                self.arch,
                c.concat(),
                f.concat()
            ),
        }
    }
}

fn is_ancestor_or_self(dir: &str, path: &str) -> bool {
    dir == path
        || dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn superset(have: &str, want: &str) -> bool {
    want.chars().all(|c| have.contains(c))
}

fn num(v: &str) -> Option<i128> {
    if v == "unset" {
        return Some(4294967295);
    }
    parse_num(v)
}

/// Whether every event meeting `q` also meets `r` (so a rule filtering on `r`
/// misses none of the required events).
pub fn implies(q: &Filter, r: &Filter) -> bool {
    if q.field != r.field {
        return false;
    }
    if q.op == r.op && q.value == r.value {
        return true;
    }
    let (Some(qv), Some(rv)) = (num(&q.value), num(&r.value)) else {
        return false;
    };
    // The set of values q admits, as an inclusive range (None: not a range).
    let range = |op: Op, v: i128| -> Option<(i128, i128)> {
        Some(match op {
            Op::Eq => (v, v),
            Op::Ge => (v, i128::MAX),
            Op::Gt => (v.saturating_add(1), i128::MAX),
            Op::Le => (i128::MIN, v),
            Op::Lt => (i128::MIN, v.saturating_sub(1)),
            _ => return None,
        })
    };
    match (range(q.op, qv), r.op) {
        (Some((lo, hi)), Op::Ne) => rv < lo || rv > hi,
        (Some((lo, hi)), op) => match range(op, rv) {
            Some((rlo, rhi)) => rlo <= lo && hi <= rhi,
            None => false,
        },
        // q excludes one value: only r excluding the same value is implied.
        (None, _) => false,
    }
}

/// Whether every event meeting all of `qs` also meets `r`. Numeric filters on the
/// same field are combined, so `auid>=1000 auid!=unset` implies `auid<4294967295`
/// (IDs are 32-bit, `unset` being the largest).
pub fn implied_by(qs: &[Filter], r: &Filter) -> bool {
    let same: Vec<&Filter> = qs.iter().filter(|q| q.field == r.field).collect();
    if same.iter().any(|q| implies(q, r)) {
        return true;
    }
    let Some(rv) = num(&r.value) else {
        return false;
    };
    let (mut lo, mut hi) = if ID_FIELDS.contains(&r.field.as_str()) {
        (0i128, 4294967295i128)
    } else {
        (i128::MIN, i128::MAX)
    };
    let mut excluded = Vec::new();
    for q in &same {
        let Some(v) = num(&q.value) else { return false };
        match q.op {
            Op::Eq => {
                lo = lo.max(v);
                hi = hi.min(v);
            }
            Op::Ge => lo = lo.max(v),
            Op::Gt => lo = lo.max(v.saturating_add(1)),
            Op::Le => hi = hi.min(v),
            Op::Lt => hi = hi.min(v.saturating_sub(1)),
            Op::Ne => excluded.push(v),
            _ => return false,
        }
    }
    // Exclusions at the edges of the range narrow it.
    while lo <= hi {
        if excluded.contains(&lo) || excluded.contains(&hi) {
            if lo == hi {
                return true; // nothing is left: vacuous
            }
            if excluded.contains(&lo) {
                lo += 1;
            } else {
                hi -= 1;
            }
            continue;
        }
        break;
    }
    if lo > hi {
        return true; // nothing is required on this field: vacuous
    }
    match r.op {
        Op::Eq => lo == rv && hi == rv,
        Op::Ne => rv < lo || rv > hi || excluded.contains(&rv),
        Op::Ge => lo >= rv,
        Op::Gt => lo > rv,
        Op::Le => hi <= rv,
        Op::Lt => hi < rv,
        _ => false,
    }
}

/// Whether rule `r` (ignoring its action) matches every event the atom describes.
pub fn covers(r: &Kind, a: &Atom) -> bool {
    match r {
        Kind::Watch { path, perms } => {
            let Some(ap) = &a.path else { return false };
            a.syscall.is_none()
                && a.compares.is_empty()
                && is_ancestor_or_self(path, ap)
                && superset(perms, a.perms.as_deref().unwrap_or(""))
        }
        Kind::Rule {
            list,
            syscalls,
            filters,
            compares,
            ..
        } => {
            if list != "exit" {
                return false;
            }
            let all_syscalls = syscalls.is_empty() || syscalls.iter().any(|s| s == "all");
            // Arch: an explicit filter must match; without one, named syscalls are
            // the native (64-bit) ones, while rules on all syscalls match any arch.
            let arch = filters.iter().find(|f| f.field == "arch");
            let arch_ok = match arch {
                Some(f) => f.op == Op::Eq && f.value == a.arch,
                None => all_syscalls || a.arch == "b64",
            };
            if !arch_ok {
                return false;
            }
            match &a.syscall {
                Some(s) => {
                    if !all_syscalls && !syscalls.contains(s) {
                        return false;
                    }
                }
                None => {
                    if !all_syscalls {
                        return false;
                    }
                }
            }
            for f in filters {
                let ok = match f.field.as_str() {
                    "arch" => true,
                    "path" => f.op == Op::Eq && a.path.as_deref() == Some(f.value.as_str()),
                    "dir" => {
                        f.op == Op::Eq
                            && a.path
                                .as_deref()
                                .is_some_and(|p| is_ancestor_or_self(&f.value, p))
                    }
                    "perm" => {
                        f.op == Op::Eq && superset(&f.value, a.perms.as_deref().unwrap_or("rwxa"))
                    }
                    _ => implied_by(&a.filters, f),
                };
                if !ok {
                    return false;
                }
            }
            // A rule without a path filter must not stand in for a path requirement
            // unless it audits every syscall (handled above) — it then matches more.
            compares.iter().all(|c| a.compares.iter().any(|q| q == c))
        }
        _ => false,
    }
}

/// The result of looking for one atom in the rule set.
pub enum Found<'a> {
    Covered(&'a AuditRule),
    /// Covered by a rule, but an earlier `never` rule takes the events first.
    Suppressed {
        by: &'a AuditRule,
        rule: &'a AuditRule,
    },
    Missing,
}

/// Finds the first `always` rule covering `a`, unless a `never` rule before it
/// also covers it.
pub fn find<'a>(set: &'a RuleSet, a: &Atom) -> Found<'a> {
    let mut never: Option<&AuditRule> = None;
    for r in &set.rules {
        let is_never = matches!(&r.kind, Kind::Rule { action, .. } if action == "never");
        if !covers(&r.kind, a) {
            continue;
        }
        if is_never {
            never.get_or_insert(r);
            continue;
        }
        return match never {
            Some(n) => Found::Suppressed { by: n, rule: r },
            None => Found::Covered(r),
        };
    }
    Found::Missing
}

/// A `never` rule on the task list without filters: no syscall is audited at all.
pub fn task_never(set: &RuleSet) -> Option<&AuditRule> {
    set.rules.iter().find(|r| {
        matches!(&r.kind, Kind::Rule { list, action, filters, syscalls, .. }
            if list == "task" && action == "never" && filters.is_empty() && syscalls.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::audit::parse_line;

    fn set(text: &str) -> RuleSet {
        let mut s = RuleSet::default();
        for (n, l) in text.lines().enumerate() {
            if let Ok((kind, _)) = parse_line(l) {
                s.rules.push(AuditRule {
                    kind,
                    source: format!("t:{}", n + 1),
                    text: l.into(),
                });
            }
        }
        s
    }

    fn req(toml_text: &str) -> Requirement {
        toml::from_str(toml_text).unwrap()
    }

    fn all_covered(s: &RuleSet, r: &Requirement) -> bool {
        r.atoms(1000)
            .unwrap()
            .iter()
            .all(|a| matches!(find(s, a), Found::Covered(_)))
    }

    #[test]
    fn implication_of_filters() {
        let f = |s: &str| parse_filter(s).unwrap();
        assert!(implies(&f("auid>=1000"), &f("auid>=500")));
        assert!(!implies(&f("auid>=500"), &f("auid>=1000")));
        assert!(implies(&f("auid>=1000"), &f("auid>999")));
        assert!(implies(&f("auid!=unset"), &f("auid!=4294967295")));
        assert!(implies(&f("auid=0"), &f("auid!=unset")));
        assert!(!implies(&f("auid>=1000"), &f("auid!=unset")));
        assert!(!implies(&f("auid>=1000"), &f("uid>=1000")));
        let q = [f("auid>=1000"), f("auid!=unset")];
        assert!(implied_by(&q, &f("auid<4294967295")));
        assert!(implied_by(&q, &f("auid<=4294967294")));
        assert!(implied_by(&q, &f("auid!=-1")));
        assert!(!implied_by(&q, &f("auid<4294967294")));
        assert!(!implied_by(&[f("auid>=1000")], &f("auid<4294967295")));
        assert!(!implied_by(&q, &f("uid=0")));
    }

    #[test]
    fn syscall_requirements_match_semantically() {
        let r = req("syscalls = ['chmod', 'fchmod']\nfilters = ['auid>=UID_MIN', 'auid!=unset']");
        let s = set(
            "-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=unset -k perm_mod\n\
                     -a always,exit -F arch=b32 -S chmod -F auid>=1000 -F auid!=-1 -k perm_mod\n\
                     -a exit,always -F arch=b32 -S fchmod -F auid>=1000 -k other",
        );
        assert!(all_covered(&s, &r));
        // Only b64: the 32-bit syscalls are missing.
        let s = set("-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=unset");
        assert!(!all_covered(&s, &r));
        // A narrower rule (extra uid filter) does not cover.
        let s = set(
            "-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F uid=0\n\
                     -a always,exit -F arch=b32 -S chmod,fchmod -F auid>=1000",
        );
        assert!(!all_covered(&s, &r));
        // No arch: the syscall names are the native ones only.
        let s = set("-a always,exit -S chmod,fchmod -F auid>=1000");
        assert!(!all_covered(&s, &r));
        // A never rule first takes the events.
        let s = set(
            "-a never,exit -F arch=b64 -S chmod\n-a always,exit -F arch=b64 -S chmod,fchmod\n\
                     -a always,exit -F arch=b32 -S chmod,fchmod",
        );
        let atoms = r.atoms(1000).unwrap();
        assert!(matches!(find(&s, &atoms[0]), Found::Suppressed { .. }));
        assert!(matches!(find(&s, &atoms[1]), Found::Covered(_)));
    }

    #[test]
    fn watch_requirements() {
        let r = req("path = '/etc/sudoers.d/'\nperms = 'wa'");
        assert!(all_covered(&set("-w /etc/sudoers.d -p wa -k scope"), &r));
        assert!(all_covered(&set("-w /etc/ -p rwa"), &r));
        assert!(all_covered(&set("-w /etc/sudoers.d/"), &r));
        assert!(!all_covered(&set("-w /etc/sudoers.d -p w"), &r));
        assert!(!all_covered(&set("-w /etc/sudoers -p wa"), &r));
        assert!(all_covered(
            &set("-a always,exit -F dir=/etc/sudoers.d -F perm=wa -k scope"),
            &r
        ));
        assert!(!all_covered(
            &set("-a always,exit -F arch=b64 -F dir=/etc/sudoers.d -F perm=wa"),
            &r
        ));
        let r = req("path = '/var/run/utmp'\nperms = 'wa'");
        assert!(all_covered(&set("-w /run/utmp -p wa"), &r));
        let r =
            req("path = '/usr/bin/chcon'\nperms = 'x'\nfilters = ['auid>=UID_MIN', 'auid!=unset']");
        assert!(all_covered(&set("-a always,exit -F path=/usr/bin/chcon -F perm=x -F auid>=1000 -F auid!=unset -k perm_chng"), &r));
        assert!(all_covered(&set("-w /usr/bin/chcon -p x"), &r));
        assert!(!all_covered(
            &set("-a always,exit -F path=/usr/bin/chcon -F perm=x -F auid>=1001"),
            &r
        ));
        assert!(!all_covered(
            &set("-a always,exit -F path=/usr/bin/chcon -F perm=w -F auid>=1000"),
            &r
        ));
    }

    #[test]
    fn comparisons() {
        let r = req("syscalls = ['execve']\ncompare = ['euid!=uid']\nfilters = ['auid!=unset']");
        let s = set("-a always,exit -F arch=b64 -C euid!=uid -F auid!=unset -S execve -k user_emulation\n\
                     -a always,exit -F arch=b32 -C uid!=euid -F auid!=-1 -S execve -k user_emulation");
        assert!(all_covered(&s, &r));
        let s = set("-a always,exit -F arch=b64 -F auid!=unset -S execve\n-a always,exit -F arch=b32 -S execve");
        assert!(
            all_covered(&s, &r),
            "a rule without the comparison audits more"
        );
    }
}
