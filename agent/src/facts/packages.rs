//! Installed packages: the dpkg status database (`/var/lib/dpkg/status`) on Debian
//! and Ubuntu, the rpm database ([`super::rpmdb`], `/var/lib/rpm/rpmdb.sqlite`) on
//! RHEL, Amazon Linux and other rpm systems.
//!
//! A root with a dpkg status file is a dpkg system, whatever else it holds: an rpm
//! database beside it belongs to Debian's `rpm` tool (for building or converting
//! packages), not to the packages the system runs. Only a root without one is read
//! through rpm's database.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::rpmdb::{self, RPMDB};
use super::{FactError, Facts};

pub use super::rpmdb::compare_rpm_versions;
use crate::facts::Fact;

/// dpkg's database of installed packages, inside the root.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// Which package manager's database the packages come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Dpkg,
    Rpm,
}

/// The package database of the root.
#[derive(Debug, Clone, Default)]
pub struct Packages {
    /// Installed packages: name → version. dpkg's `[epoch:]upstream[-revision]`;
    /// rpm's `[epoch:]version-release` (the epoch only when the package has one),
    /// the newest when a name is installed more than once (kernels, multilib).
    pub installed: BTreeMap<String, String>,
    /// Where the database was read.
    pub source: String,
    /// Whose database it is, and so which version order applies.
    pub format: Format,
}

impl Packages {
    pub fn version(&self, name: &str) -> Option<&str> {
        self.installed.get(name).map(String::as_str)
    }
    pub fn is_installed(&self, name: &str) -> bool {
        self.installed.contains_key(name)
    }
    /// `name version` or `name not installed`, for evidence.
    pub fn describe(&self, name: &str) -> String {
        match self.version(name) {
            Some(v) => format!("package {name} {v} is installed ({})", self.source),
            None => format!("package {name} is not installed ({})", self.source),
        }
    }
    /// Compares two versions in this database's order: dpkg's or rpm's.
    pub fn compare_versions(&self, a: &str, b: &str) -> Ordering {
        match self.format {
            Format::Dpkg => compare_versions(a, b),
            Format::Rpm => compare_rpm_versions(a, b),
        }
    }
}

/// Reads the root's package database once per scan: dpkg's status file when the
/// root has one (even one that cannot be read: that is an error, not a reason to
/// look elsewhere), else rpm's database. A root with neither is an error: the
/// package facts cannot be known.
pub fn packages(facts: &Facts) -> Result<Arc<Packages>, FactError> {
    facts.get::<Packages>()
}

impl Fact for Packages {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        if facts.lstat(DPKG_STATUS)?.is_some() {
            let text = facts
                .read(DPKG_STATUS)?
                .ok_or_else(|| FactError::Unreadable {
                    path: DPKG_STATUS.into(),
                    reason: "no dpkg status database".into(),
                })?;
            return Ok(parse_status(&text, DPKG_STATUS));
        }
        match Option::clone(&*rpmdb::installed(facts)?) {
            Some(db) => Ok(from_rpmdb(db)),
            None => Err(FactError::Unreadable {
                path: DPKG_STATUS.into(),
                reason: format!("no dpkg status database, and no rpm database at {RPMDB}"),
            }),
        }
    }
}

/// The packages of an rpm database, each name with its newest `[epoch:]version-release`.
fn from_rpmdb(db: rpmdb::RpmDb) -> Packages {
    let mut installed: BTreeMap<String, String> = BTreeMap::new();
    for p in db.packages {
        let evr = p.evr();
        match installed.get(&p.name) {
            Some(have) if compare_rpm_versions(have, &evr).is_ge() => {}
            _ => {
                installed.insert(p.name, evr);
            }
        }
    }
    Packages {
        installed,
        source: db.source,
        format: Format::Rpm,
    }
}

/// Parses dpkg's status file: stanzas separated by blank lines; a package counts as
/// installed when its Status ends in `installed` (not `config-files`, not `half-installed`).
pub fn parse_status(text: &str, source: &str) -> Packages {
    let mut pkgs = Packages {
        source: source.to_string(),
        ..Default::default()
    };
    for stanza in text.split("\n\n") {
        let (mut name, mut status, mut version) = (None, None, None);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status:") {
                status = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim());
            }
        }
        if let (Some(n), Some(s)) = (name, status) {
            if s.split_whitespace().last() == Some("installed") {
                pkgs.installed
                    .insert(n.to_string(), version.unwrap_or("").to_string());
            }
        }
    }
    pkgs
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
    fn status_stanzas() {
        let p = parse_status(
            "Package: a\nStatus: install ok installed\nVersion: 1.0\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n",
            "/s",
        );
        assert!(p.is_installed("a"));
        assert!(!p.is_installed("b"));
    }

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
}
