//! `dnf.*` checks: the package manager of RHEL, its rebuilds and Amazon Linux 2023.
//!
//! The facts (dnf.conf `[main]`, the repository sections dnf reads) come from
//! [`crate::facts::dnf`]. A repository's own `gpgcheck` overrides `[main]`'s; without
//! one it inherits `[main]`'s, whose default in dnf is off.

use serde::Deserialize;

use crate::facts::dnf::{dnf_config, parse_bool, DNF_CONF};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// The `dnf.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// dnf verifies package signatures everywhere: `[main]` of /etc/dnf/dnf.conf
    /// sets `gpgcheck` true (dnf's default is false), and no repository section
    /// (enabled or not: a disabled one can be switched on for one command) sets it
    /// false or to a value that is not a boolean.
    #[serde(rename = "dnf.gpgcheck")]
    Gpgcheck {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Gpgcheck {} => gpgcheck(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

fn gpgcheck(facts: &Facts) -> Result<Outcome, FactError> {
    let cfg = dnf_config(facts)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if !cfg.conf_exists {
        failures.push(format!(
            "{DNF_CONF} does not exist: gpgcheck is off by default in dnf"
        ));
    } else {
        match cfg.main_get("gpgcheck") {
            Some(s) => match parse_bool(&s.value) {
                Some(true) => {
                    found.push(format!("{} (signatures checked by default)", s.describe()))
                }
                Some(false) => failures.push(format!(
                    "{} in [main]: signatures are not checked by default",
                    s.describe()
                )),
                None => failures.push(format!(
                    "{} in [main] is not a boolean: dnf ignores it and keeps its default, off",
                    s.describe()
                )),
            },
            None => failures.push(format!(
                "gpgcheck is not set in [main] of {DNF_CONF}: dnf's default is off"
            )),
        }
    }
    let mut inheriting = 0;
    for repo in &cfg.repos {
        let state = match repo.get("enabled").map(|s| parse_bool(&s.value)) {
            Some(Some(false)) => "disabled",
            _ => "enabled",
        };
        match repo.get("gpgcheck") {
            None => inheriting += 1,
            Some(s) => match parse_bool(&s.value) {
                Some(true) => found.push(format!(
                    "{} (repository {}, {state})",
                    s.describe(),
                    repo.name
                )),
                Some(false) => failures.push(format!(
                    "{}: repository {} ({state}) turns signature checking off",
                    s.describe(),
                    repo.name
                )),
                None => failures.push(format!(
                    "{}: repository {} ({state}) has a gpgcheck value that is not a boolean",
                    s.describe(),
                    repo.name
                )),
            },
        }
    }
    if inheriting > 0 {
        found.push(format!(
            "{inheriting} repository section(s) do not set gpgcheck and inherit [main]'s"
        ));
    }
    if cfg.repos.is_empty() {
        found.push(format!(
            "no repository is defined (searched {} and {DNF_CONF})",
            cfg.reposdirs.join(", ")
        ));
    } else {
        found.push(format!(
            "{} repository section(s) read from {}",
            cfg.repos.len(),
            if cfg.repo_files.is_empty() {
                DNF_CONF.to_string()
            } else {
                cfg.repo_files.join(", ")
            }
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}
