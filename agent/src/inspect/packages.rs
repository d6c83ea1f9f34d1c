//! `rampart-agent facts packages`: the root's package database as the `pkg.*` checks
//! read it (the same memoised [`Packages`] fact), and the verdicts of those checks,
//! computed by the checks' own code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::facts_of;
use crate::checks::pkg::Check;
use crate::error::AgentError;
use crate::facts::packages::{packages, Format};
use crate::model::Status;

/// The package database and the packages asked about.
#[derive(Debug, Serialize)]
pub struct PackagesFacts {
    /// `dpkg` or `rpm`: whose database, and so whose version order.
    pub format: &'static str,
    /// Where the database was read.
    pub source: String,
    /// How many package names the database holds as installed.
    pub installed_count: usize,
    /// Each package asked about (`--package`).
    pub packages: BTreeMap<String, PackageFacts>,
    /// Each `--at-least NAME=VERSION`, in the order given.
    pub at_least: Vec<AtLeast>,
}

/// One package as the checks see it.
#[derive(Debug, Serialize)]
pub struct PackageFacts {
    /// `installed`, `present` (not installed, but its files may be on disk: dpkg's
    /// unpacked, half-installed, ...) or `absent`.
    pub state: &'static str,
    /// The installed version (the one `pkg.min_version` compares), when installed.
    pub version: Option<String>,
    /// `pkg.installed`'s verdict on this package alone.
    pub installed_check: Status,
    /// `pkg.absent`'s verdict on this package alone (no services to fall back on).
    pub absent_check: Status,
    /// The evidence line the checks write.
    pub evidence: String,
}

/// One `pkg.min_version` verdict.
#[derive(Debug, Serialize)]
pub struct AtLeast {
    pub package: String,
    pub version: String,
    pub status: Status,
    pub evidence: Vec<String>,
}

/// Splits `NAME=VERSION` (an `--at-least` argument).
pub fn parse_at_least(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, v)) if !n.is_empty() && !v.is_empty() => Ok((n.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VERSION")),
    }
}

/// The package facts of `root` for `names` and the `at_least` pairs.
pub fn packages_facts(
    root: &Path,
    names: &[String],
    at_least: &[(String, String)],
) -> Result<PackagesFacts, AgentError> {
    let facts = facts_of(root)?;
    let pk = packages(&facts)?;
    let mut out = BTreeMap::new();
    for name in names {
        let installed = Check::Installed {
            packages: vec![name.clone()],
            any: false,
        }
        .eval(&facts);
        let absent = Check::Absent {
            packages: vec![name.clone()],
            services: Vec::new(),
            masked: false,
        }
        .eval(&facts);
        out.insert(
            name.clone(),
            PackageFacts {
                state: if pk.is_installed(name) {
                    "installed"
                } else if pk.is_present(name) {
                    "present"
                } else {
                    "absent"
                },
                version: pk.version(name).map(String::from),
                installed_check: installed.status,
                absent_check: absent.status,
                evidence: pk.describe(name),
            },
        );
    }
    let at_least = at_least
        .iter()
        .map(|(package, version)| {
            let o = Check::MinVersion {
                package: package.clone(),
                version: version.clone(),
            }
            .eval(&facts);
            AtLeast {
                package: package.clone(),
                version: version.clone(),
                status: o.status,
                evidence: o.evidence,
            }
        })
        .collect();
    Ok(PackagesFacts {
        format: match pk.format {
            Format::Dpkg => "dpkg",
            Format::Rpm => "rpm",
        },
        source: pk.source.clone(),
        installed_count: pk.installed.len(),
        packages: out,
        at_least,
    })
}
