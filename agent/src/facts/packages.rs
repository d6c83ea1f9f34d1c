//! Installed packages: dpkg's database ([`super::dpkg`]: `/var/lib/dpkg/status` and
//! its pending updates) on Debian and Ubuntu, the rpm database ([`super::rpmdb`],
//! `/var/lib/rpm/rpmdb.sqlite`) on RHEL, Amazon Linux and other rpm systems.
//!
//! A root with a dpkg status file is a dpkg system, whatever else it holds: an rpm
//! database beside it belongs to Debian's `rpm` tool (for building or converting
//! packages), not to the packages the system runs. Only a root without one is read
//! through rpm's database.
//!
//! A package is *installed* (unpacked and configured: what `pkg.installed` and
//! `pkg.min_version` ask for), *present* (dpkg only: some of its files may be on
//! disk, but dpkg does not call it installed — `pkg.absent` fails on it, and so does
//! every other check; see [`super::dpkg`] for the states) or absent.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::dpkg::{self, DpkgState};
use super::rpmdb::{self, RPMDB};
use super::{FactError, Facts};

pub use super::dpkg::{compare_versions, DPKG_STATUS};
pub use super::rpmdb::compare_rpm_versions;
use crate::facts::Fact;

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
    /// Installed packages: name → version. dpkg's `[epoch:]upstream[-revision]`, the
    /// oldest when a name is installed for several architectures; rpm's
    /// `[epoch:]version-release` (the epoch only when the package has one), the
    /// newest when a name is installed more than once (kernels, multilib).
    pub installed: BTreeMap<String, String>,
    /// Packages that are not installed but whose files may be on disk (dpkg's
    /// `half-installed`, `unpacked`, `half-configured`, or flagged `reinst-required`):
    /// name → that state, in words.
    pub partial: BTreeMap<String, String>,
    /// Installed names with a present instance too (dpkg: another architecture
    /// unpacked, half-installed...): name → the oldest such instance, in words, and
    /// its version (`None`: none recorded). `pkg.min_version` passes only when it
    /// too is recent enough: its files are on disk.
    pub lagging: BTreeMap<String, (String, Option<String>)>,
    /// Where the database was read.
    pub source: String,
    /// Whose database it is, and so which version order applies.
    pub format: Format,
}

impl Packages {
    pub fn version(&self, name: &str) -> Option<&str> {
        self.installed.get(name).map(String::as_str)
    }
    /// Installed: unpacked and configured.
    pub fn is_installed(&self, name: &str) -> bool {
        self.installed.contains_key(name)
    }
    /// Installed, or some of its files may be on disk: what a "not installed" rule
    /// must fail on.
    pub fn is_present(&self, name: &str) -> bool {
        self.is_installed(name) || self.partial.contains_key(name)
    }
    /// `name version is installed`, `name is STATE`, or `name is not installed`,
    /// for evidence.
    pub fn describe(&self, name: &str) -> String {
        match (self.version(name), self.partial.get(name)) {
            (Some(v), _) => format!("package {name} {v} is installed ({})", self.source),
            (None, Some(state)) => format!(
                "package {name} is {state}: not installed, its files may be on disk ({})",
                self.source
            ),
            (None, None) => format!("package {name} is not installed ({})", self.source),
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

/// Reads the root's package database once per scan: dpkg's status file (with its
/// pending updates) when the root has one (even one that cannot be read: that is an
/// error, not a reason to look elsewhere), else rpm's database. A root with neither
/// is an error: the package facts cannot be known.
pub fn packages(facts: &Facts) -> Result<Arc<Packages>, FactError> {
    facts.get::<Packages>()
}

impl Fact for Packages {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        if let Some(db) = dpkg::read(facts)? {
            return Ok(from_dpkg(db));
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

/// The packages of a dpkg database: a name is installed when one of its instances
/// is (at the oldest installed instance's version), else present when one is; an
/// installed name's oldest present instance is kept for `pkg.min_version`.
fn from_dpkg(db: dpkg::DpkgDb) -> Packages {
    let mut installed: BTreeMap<String, String> = BTreeMap::new();
    let mut partial: BTreeMap<String, String> = BTreeMap::new();
    let mut lagging: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    for i in db.instances {
        match i.state {
            DpkgState::Installed => {
                let v = i.version.unwrap_or_default();
                match installed.get(&i.name) {
                    Some(have) if compare_versions(have, &v).is_le() => {}
                    _ => {
                        installed.insert(i.name, v);
                    }
                }
            }
            DpkgState::Present(state) => {
                let older = match (lagging.get(&i.name).map(|l| &l.1), &i.version) {
                    (None, _) => true,
                    (Some(Some(have)), Some(v)) => compare_versions(v, have).is_lt(),
                    (Some(Some(_)), None) => true,
                    (Some(None), _) => false,
                };
                if older {
                    let what = format!(
                        "its {} instance is {state} at {}",
                        if i.arch.is_empty() { "other" } else { &i.arch },
                        i.version.as_deref().unwrap_or("no version")
                    );
                    lagging.insert(i.name.clone(), (what, i.version));
                }
                partial.entry(i.name).or_insert(state);
            }
            DpkgState::Absent => {}
        }
    }
    partial.retain(|name, _| !installed.contains_key(name));
    lagging.retain(|name, _| installed.contains_key(name));
    Packages {
        installed,
        partial,
        lagging,
        source: db.files.join(" with "),
        format: Format::Dpkg,
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
        partial: BTreeMap::new(),
        lagging: BTreeMap::new(),
        source: db.source,
        format: Format::Rpm,
    }
}

/// The packages of one dpkg status file's text (no pending updates), read from
/// `source`; an error names what dpkg would refuse.
pub fn parse_status(text: &str, source: &str) -> Result<Packages, FactError> {
    Ok(from_dpkg(dpkg::read_status(text, source)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_stanzas() {
        let p = parse_status(
            "Package: a\nStatus: install ok installed\nVersion: 1.0\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nStatus: install ok unpacked\nVersion: 3\n",
            "/s",
        )
        .unwrap();
        assert!(p.is_installed("a") && p.is_present("a"));
        assert!(!p.is_installed("b") && !p.is_present("b"));
        assert!(!p.is_installed("c") && p.is_present("c"));
        assert_eq!(p.version("c"), None);
        assert!(p.describe("c").contains("package c is unpacked"));
    }

    #[test]
    fn the_oldest_installed_instance_counts() {
        let p = parse_status(
            "Package: a\nStatus: install ok installed\nArchitecture: i386\nMulti-Arch: same\nVersion: 1.0\n\nPackage: a\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.0\n\nPackage: b\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.0\n\nPackage: b\nStatus: install ok half-installed\nArchitecture: i386\nMulti-Arch: same\nVersion: 1.0\n",
            "/s",
        )
        .unwrap();
        assert_eq!(p.version("a"), Some("1.0"));
        assert_eq!(p.version("b"), Some("2.0"));
        assert!(!p.partial.contains_key("b"));
        assert_eq!(p.lagging["b"].1.as_deref(), Some("1.0"));
        assert!(!p.lagging.contains_key("a"));
    }
}
