//! dpkg's database of packages, read as `dpkg-query` reads it: the status file
//! (`/var/lib/dpkg/status`), then the pending updates of an interrupted or unfinished
//! dpkg run (`/var/lib/dpkg/updates/`, files named by digits only, in name order),
//! each of whose records replaces the package's record in the status file.
//!
//! The files are deb822 stanzas as dpkg parses them: separated by empty lines (a
//! line of spaces continues the field before it), field names in any case, values
//! continued on lines that start with a space or a tab. A package name is folded to
//! lower case, as dpkg stores it; the `Status` words (`want flag status`) are read in
//! any case and on any lines. What dpkg refuses to read is an error here too: a line
//! that is not a field, a field given twice in a stanza, a `Status` that is not three
//! known words (an empty one too), a package and architecture twice in the status file,
//! update files whose names differ in length.
//!
//! dpkg's states, as the `pkg.*` checks judge them (a false pass is the worst bug,
//! so a package whose files may be on disk is never judged absent):
//! - **installed** — `installed`, `triggers-awaited`, `triggers-pending`, with the
//!   `ok` flag: unpacked and configured;
//! - **present** — `half-installed`, `unpacked`, `half-configured`, and any of the
//!   installed states flagged `reinstreq` (broken, to be reinstalled): some or all
//!   of its files are there, but dpkg does not call it installed. `pkg.installed`,
//!   `pkg.absent` and `pkg.min_version` all fail on it;
//! - **absent** — `config-files` (only configuration files left) and
//!   `not-installed`.
//!
//! A name can have an instance per architecture (Multi-Arch: same): it is installed
//! when one instance is; its version is the oldest installed instance's.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::{FactError, Facts};

/// dpkg's database of installed packages, inside the root.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Where dpkg journals changes not yet merged into the status file.
pub const DPKG_UPDATES: &str = "/var/lib/dpkg/updates";

/// What dpkg says about one package's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpkgState {
    /// Unpacked and configured (`installed`, `triggers-*` with the `ok` flag).
    Installed,
    /// Files (partly) on disk, not installed: dpkg's status, e.g. `unpacked`, or
    /// `reinst-required`.
    Present(String),
    /// No files of its own: `config-files`, `not-installed`.
    Absent,
}

/// One package instance (a name and an architecture) of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub arch: String,
    pub state: DpkgState,
    pub version: Option<String>,
}

/// The packages of a dpkg database, by name; every instance of a name.
#[derive(Debug, Clone, Default)]
pub struct DpkgDb {
    pub instances: Vec<Instance>,
    /// The files read: the status file, then each update.
    pub files: Vec<String>,
}

/// Reads the status file and the pending updates; `Ok(None)` when the root has no
/// status file.
pub fn read(facts: &Facts) -> Result<Option<DpkgDb>, FactError> {
    if facts.lstat(DPKG_STATUS)?.is_none() {
        return Ok(None);
    }
    let text = facts
        .read(DPKG_STATUS)?
        .ok_or_else(|| FactError::Unreadable {
            path: DPKG_STATUS.into(),
            reason: "no dpkg status database".into(),
        })?;
    let mut by_key: BTreeMap<(String, String), Instance> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    // `unique`: the status file holds one record per package and architecture; an
    // update file's later record replaces an earlier one, as dpkg reads them.
    let mut add = |path: &str, text: &str, unique: bool| -> Result<(), FactError> {
        let mut seen = std::collections::BTreeSet::new();
        for i in parse(text).map_err(|reason| FactError::Malformed {
            path: path.to_string(),
            reason,
        })? {
            let key = (i.name.clone(), i.arch.clone());
            if !seen.insert(key.clone()) && unique {
                return Err(FactError::Malformed {
                    path: path.to_string(),
                    reason: format!(
                        "package {} ({}) has two records; dpkg refuses the database",
                        key.0,
                        if key.1.is_empty() {
                            "no architecture"
                        } else {
                            &key.1
                        }
                    ),
                });
            }
            if by_key.insert(key.clone(), i).is_none() {
                order.push(key);
            }
        }
        Ok(())
    };
    add(DPKG_STATUS, &text, true)?;
    let mut files = vec![DPKG_STATUS.to_string()];
    let updates: Vec<String> = facts
        .list_dir(DPKG_UPDATES)?
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if let (Some(a), Some(b)) = (
        updates.first(),
        updates.iter().find(|n| n.len() != updates[0].len()),
    ) {
        return Err(FactError::Malformed {
            path: DPKG_UPDATES.into(),
            reason: format!("update files `{a}` and `{b}` have names of different lengths; dpkg refuses the database"),
        });
    }
    for name in updates {
        let path = format!("{DPKG_UPDATES}/{name}");
        if let Some(t) = facts.read(&path)? {
            add(&path, &t, false)?;
            files.push(path);
        }
    }
    Ok(Some(DpkgDb {
        instances: order
            .into_iter()
            .filter_map(|k| by_key.remove(&k))
            .collect(),
        files,
    }))
}

/// The stanzas of a status or update file, as (lower-case field name, value) lists.
fn stanzas(text: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line);
                }
                None => return Err(format!("line {}: a continuation line with no field", n + 1)),
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: `{line}` is not a field", n + 1));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("line {}: `{name}` is not a field name", n + 1));
        }
        let name = name.to_ascii_lowercase();
        if cur.iter().any(|(k, _)| *k == name) {
            return Err(format!(
                "line {}: a second `{name}` field in one stanza",
                n + 1
            ));
        }
        cur.push((name, value.to_string()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// The package instances of a status or update file.
pub fn parse(text: &str) -> Result<Vec<Instance>, String> {
    let mut out = Vec::new();
    for stanza in stanzas(text)? {
        let field = |f: &str| {
            stanza
                .iter()
                .find(|(k, _)| k == f)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let Some(name) = field("package") else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        // A Status field, even empty, is read (dpkg refuses an empty one).
        let status = stanza.iter().find(|(k, _)| k == "status");
        let state = match status {
            Some((_, s)) => state(s.trim()).map_err(|e| format!("package {name}: {e}"))?,
            None => DpkgState::Absent,
        };
        out.push(Instance {
            arch: field("architecture").unwrap_or("").to_ascii_lowercase(),
            version: field("version").map(String::from),
            name,
            state,
        });
    }
    Ok(out)
}

/// The state a `Status: want flag status` value stands for.
fn state(status: &str) -> Result<DpkgState, String> {
    let words: Vec<String> = status
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let [want, flag, st] = words.as_slice() else {
        return Err(format!("Status `{status}` is not `want flag status`"));
    };
    if !["unknown", "install", "hold", "deinstall", "purge"].contains(&want.as_str()) {
        return Err(format!("Status `{status}`: unknown want `{want}`"));
    }
    let reinstreq = match flag.as_str() {
        "ok" => false,
        "reinstreq" => true,
        _ => return Err(format!("Status `{status}`: unknown flag `{flag}`")),
    };
    Ok(match st.as_str() {
        "installed" | "triggers-awaited" | "triggers-pending" if !reinstreq => DpkgState::Installed,
        "installed" | "triggers-awaited" | "triggers-pending" => {
            DpkgState::Present(format!("flagged reinst-required (broken) in state {st}"))
        }
        "half-installed" | "unpacked" | "half-configured" => DpkgState::Present(st.clone()),
        "config-files" | "not-installed" => DpkgState::Absent,
        _ => return Err(format!("Status `{status}`: unknown status `{st}`")),
    })
}

/// Compares two Debian versions (epoch:upstream-revision) as dpkg does.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| cmp_part(ua, ub))
        .then_with(|| cmp_part(ra, rb))
}

fn cmp_part(a: &str, b: &str) -> Ordering {
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    let (mut a, mut b) = (a, b);
    loop {
        if a.is_empty() && b.is_empty() {
            return Ordering::Equal;
        }
        // Non-digit prefix, compared with dpkg's character order.
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (pa, pb) = (&a[..na], &b[..nb]);
        let mut ca = pa.chars();
        let mut cb = pb.chars();
        loop {
            let (x, y) = (ca.next(), cb.next());
            if x.is_none() && y.is_none() {
                break;
            }
            let o = order(x).cmp(&order(y));
            if o != Ordering::Equal {
                return o;
            }
        }
        a = &a[na..];
        b = &b[nb..];
        let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let xa = a[..da].trim_start_matches('0');
        let xb = b[..db].trim_start_matches('0');
        let o = xa.len().cmp(&xb.len()).then_with(|| xa.cmp(xb));
        if o != Ordering::Equal {
            return o;
        }
        a = &a[da..];
        b = &b[db..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_version_order() {
        for (a, b, o) in [
            ("1.5.2-6", "1.5.2-6", Equal),
            ("1.5.2-6+deb12u1", "1.5.2-6", Greater),
            ("1.5.2-5", "1.5.2-6", Less),
            ("1.0~rc1", "1.0", Less),
            ("1:0.1", "9.9", Greater),
            ("1.10", "1.9", Greater),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
        }
    }

    fn states(text: &str) -> Vec<(String, String, DpkgState)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|i| (i.name, i.arch, i.state))
            .collect()
    }

    #[test]
    fn stanzas_as_dpkg_reads_them() {
        let present = |s: &str| DpkgState::Present(s.into());
        assert_eq!(
            states(
                "package: A\nSTATUS: Install OK\n Installed\n\n\nPackage: b\nStatus: hold reinstreq installed\nDescription: x\n Package: c\n Status: install ok installed\n\nPackage: d\nStatus: install ok half-configured\nArchitecture: I386\n\nPackage: e\nStatus: purge ok config-files\n"
            ),
            vec![
                ("a".into(), "".into(), DpkgState::Installed),
                ("b".into(), "".into(), present("flagged reinst-required (broken) in state installed")),
                ("d".into(), "i386".into(), present("half-configured")),
                ("e".into(), "".into(), DpkgState::Absent),
            ]
        );
        for bad in [
            "Package: a\nStatus: install ok\n",
            "Package: a\nStatus: install ok gone\n",
            "Package: a\nStatus: install ok installed\n \nPackage: b\n",
            "Package: a\n# comment\n",
            " continued\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was read");
        }
    }
}
