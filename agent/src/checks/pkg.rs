//! `pkg.*` checks: installed packages (dpkg or rpm database) and systemd services.

use serde::Deserialize;

use crate::facts::packages::{packages, Packages};
use crate::facts::units::{unit, UnitState};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The `pkg.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// The packages are installed (all of them, or with `any = true` at least one).
    #[serde(rename = "pkg.installed")]
    Installed {
        packages: Vec<String>,
        #[serde(default)]
        any: bool,
    },
    /// None of the packages is installed, or present in part (dpkg's unpacked,
    /// half-installed, ...: its files may be on disk) — or, when one must stay as a dependency,
    /// every unit in `services` is masked, or neither enabled nor running (with
    /// `masked`, masked only).
    #[serde(rename = "pkg.absent")]
    Absent {
        packages: Vec<String>,
        #[serde(default)]
        services: Vec<String>,
        #[serde(default)]
        masked: bool,
    },
    /// The package is installed at `version` or newer (in the order of the root's
    /// package manager: dpkg's or rpm's).
    #[serde(rename = "pkg.min_version")]
    MinVersion { package: String, version: String },
    /// The unit is enabled (or static, when `allow_static`) and, on a live system,
    /// running. With `if_installed`, not applicable when that package is absent.
    #[serde(rename = "pkg.service_enabled")]
    ServiceEnabled {
        unit: String,
        if_installed: Option<String>,
        #[serde(default)]
        allow_static: bool,
    },
    /// None of the units is enabled or running (missing or masked units pass).
    #[serde(rename = "pkg.service_disabled")]
    ServiceDisabled {
        units: Vec<String>,
        if_installed: Option<String>,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        let pk = packages(facts)?;
        Ok(match self {
            Check::Installed { packages, any } => {
                let ev: Vec<String> = packages.iter().map(|p| pk.describe(p)).collect();
                let n = packages.iter().filter(|p| pk.is_installed(p)).count();
                let ok = if *any { n > 0 } else { n == packages.len() };
                Outcome::new(if ok { Status::Pass } else { Status::Fail }, ev)
            }
            Check::Absent {
                packages,
                services,
                masked,
            } => {
                // Files on disk count, configured or not.
                let present: Vec<&String> = packages.iter().filter(|p| pk.is_present(p)).collect();
                if present.is_empty() {
                    return Ok(Outcome::new(
                        Status::Pass,
                        packages.iter().map(|p| pk.describe(p)).collect(),
                    ));
                }
                let mut ev: Vec<String> = present.iter().map(|p| pk.describe(p)).collect();
                if services.is_empty() {
                    return Ok(Outcome::new(Status::Fail, ev));
                }
                let mut running = false;
                for s in services {
                    let u = unit(facts, s)?;
                    running |= if *masked { !u.masked } else { is_on(&u) };
                    ev.push(u.describe());
                }
                if running {
                    if *masked {
                        ev.push("kept installed, so each of its services must be masked".into());
                    }
                    Outcome::new(Status::Fail, ev)
                } else {
                    ev.push(if *masked {
                        "kept installed, but every one of its services is masked".into()
                    } else {
                        "kept installed, but none of its services is enabled or running".into()
                    });
                    Outcome::new(Status::Pass, ev)
                }
            }
            Check::MinVersion { package, version } => match pk.version(package) {
                None => Outcome::fail(pk.describe(package)),
                Some(v) if !pk.compare_versions(v, version).is_ge() => {
                    Outcome::fail(format!("{}, older than {version}", pk.describe(package)))
                }
                // A present instance of another architecture (its files on disk)
                // must be recent enough too.
                Some(_) => match pk.lagging.get(package) {
                    Some((what, lv))
                        if !lv
                            .as_deref()
                            .is_some_and(|lv| pk.compare_versions(lv, version).is_ge()) =>
                    {
                        Outcome::fail(format!(
                            "{}, but {what}: not at least {version}",
                            pk.describe(package)
                        ))
                    }
                    _ => Outcome::pass(format!("{}, at least {version}", pk.describe(package))),
                },
            },
            Check::ServiceEnabled {
                unit: name,
                if_installed,
                allow_static,
            } => {
                if let Some(o) = not_installed(&pk, if_installed) {
                    return Ok(o);
                }
                let u = unit(facts, name)?;
                // An alias is not enabled, whatever the unit it stands for is.
                let enabled = u.enabled()
                    || (*allow_static
                        && u.is_static
                        && u.exists()
                        && !u.masked
                        && u.alias_of.is_none());
                let status = match (enabled, u.active) {
                    (true, Some(false)) => Status::Fail,
                    (true, _) => Status::Pass,
                    (false, _) => Status::Fail,
                };
                Outcome::new(status, vec![u.describe()])
            }
            Check::ServiceDisabled {
                units,
                if_installed,
            } => {
                if let Some(o) = not_installed(&pk, if_installed) {
                    return Ok(o);
                }
                let mut ev = Vec::new();
                let mut on = false;
                for s in units {
                    let u = unit(facts, s)?;
                    on |= is_on(&u);
                    ev.push(u.describe());
                }
                Outcome::new(if on { Status::Fail } else { Status::Pass }, ev)
            }
        })
    }
}

/// Started at boot (enabled, or pulled in by a package's own link), or running now.
pub fn is_on(u: &UnitState) -> bool {
    u.in_use()
}

/// Not applicable when the package is absent; one whose files may be on disk (dpkg's
/// unpacked, half-installed, ...) is judged.
fn not_installed(pk: &Packages, pkg: &Option<String>) -> Option<Outcome> {
    match pkg {
        Some(p) if !pk.is_present(p) => Some(Outcome::not_applicable(pk.describe(p))),
        _ => None,
    }
}
