//! sudo: installed, and the Defaults that must be set (use_pty, logfile, timestamp_timeout).

use super::{cap, Want};
use crate::facts::packages::packages;
use crate::facts::sudoers::{self, sudoers, Op};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

pub(super) fn sudo_missing(facts: &Facts) -> Result<Option<Outcome>, FactError> {
    let pk = packages(facts)?;
    // Judged as soon as sudo's files may be on disk (dpkg's unpacked, ...).
    if pk.is_present("sudo") || pk.is_present("sudo-ldap") {
        Ok(None)
    } else {
        Ok(Some(Outcome::not_applicable(format!(
            "{}; sudo-ldap is not installed either",
            pk.describe("sudo")
        ))))
    }
}

/// Flags whose compiled-in default sudo turned on in a given release.
pub(super) const SUDO_ON_SINCE: &[(&str, &str)] = &[("use_pty", "1.9.14")];

/// The installed sudo (or sudo-ldap) version, and the release from which `option`
/// is on by default (if it ever became so).
pub(super) fn sudo_version_and_default(
    facts: &Facts,
    option: &str,
) -> Result<(Option<String>, Option<&'static str>), FactError> {
    let pk = packages(facts)?;
    let version = pk
        .version("sudo")
        .or_else(|| pk.version("sudo-ldap"))
        .map(String::from);
    let since = SUDO_ON_SINCE
        .iter()
        .find(|(o, _)| *o == option)
        .map(|(_, v)| *v);
    Ok((version, since))
}

/// The outcome when sudo's policy cannot be judged for `option`: sudo refuses
/// /etc/sudoers (and does not run), or a line naming `option` may be read otherwise
/// by sudo.
fn unjudged(s: &sudoers::Sudoers, option: &str) -> Option<Outcome> {
    if let Some(r) = &s.refused {
        return Some(Outcome::fail(r.clone()));
    }
    let why = s.undecided(option)?;
    let mut out = Outcome::error(why);
    out.evidence.extend(s.notes.iter().cloned());
    Some(out)
}

pub(super) fn sudo_defaults(facts: &Facts, option: &str, want: Want) -> Result<Outcome, FactError> {
    let s = sudoers(facts)?;
    if let Some(o) = unjudged(&s, option) {
        return Ok(o);
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match (want, s.global(option)) {
        (Want::On, None) => {
            let (version, since) = sudo_version_and_default(facts, option)?;
            let pk = packages(facts)?;
            match (version, since) {
                (Some(v), Some(since)) if pk.compare_versions(&v, since).is_ge() => found.push(format!(
                    "Defaults {option} is not set in {}; sudo {v} turns it on by default (since {since})",
                    s.files.join(", ")
                )),
                (v, _) => failures.push(format!(
                    "Defaults {option} is not set in {}; sudo {} leaves it off",
                    s.files.join(", "),
                    v.as_deref().unwrap_or("(version unknown)")
                )),
            }
        }
        (Want::On, Some(d)) if d.op != Op::On => {
            failures.push(format!("{}: {option} is not turned on", d.describe()))
        }
        (Want::Value, None) => failures.push(format!(
            "Defaults {option}=... is not set in {}",
            s.files.join(", ")
        )),
        (Want::Value, Some(d)) => match &d.op {
            Op::Value(v) if !v.is_empty() => found.push(d.describe()),
            _ => failures.push(format!("{}: {option} has no value", d.describe())),
        },
        (Want::NotOff, None) => found.push(format!(
            "Defaults !{option} is not set; sudo's default keeps it on"
        )),
        (Want::NotOff, Some(d)) if d.op == Op::Off => {
            failures.push(format!("{}: {option} is turned off", d.describe()))
        }
        (_, Some(d)) => found.push(d.describe()),
    }
    for d in s.bound(option) {
        if d.op == Op::Off {
            failures.push(format!(
                "{}: {option} is turned off for {}",
                d.describe(),
                d.binding.as_deref().unwrap_or("")
            ));
        } else {
            found.push(d.describe());
        }
    }
    let mut out = Outcome::from_findings(failures, found);
    out.evidence.extend(s.notes.iter().cloned());
    Ok(out)
}

pub(super) fn sudo_timeout(facts: &Facts, max: f64) -> Result<Outcome, FactError> {
    let s = sudoers(facts)?;
    if let Some(o) = unjudged(&s, "timestamp_timeout") {
        return Ok(o);
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let judge = |d: &sudoers::DefaultsEntry| -> Result<String, String> {
        match &d.op {
            Op::Off => Ok(format!("{} (0: always ask)", d.describe())),
            Op::On => Err(format!("{}: no value given", d.describe())),
            Op::Value(v) => match v.parse::<f64>() {
                Ok(n) if n < 0.0 => Err(format!(
                    "{}: a negative timeout never expires",
                    d.describe()
                )),
                Ok(n) if n > max => Err(format!("{}: {n} minutes is above {max}", d.describe())),
                Ok(_) => Ok(d.describe()),
                Err(_) => Err(format!("{}: {v} is not a number of minutes", d.describe())),
            },
        }
    };
    match s.global("timestamp_timeout") {
        None => found.push(format!(
            "timestamp_timeout not set in {}; sudo's default of 15 minutes applies",
            if s.files.is_empty() {
                "/etc/sudoers".to_string()
            } else {
                s.files.join(", ")
            }
        )),
        Some(d) => match judge(d) {
            Ok(x) => found.push(x),
            Err(x) => failures.push(x),
        },
    }
    for d in s.bound("timestamp_timeout") {
        match judge(d) {
            Ok(x) => found.push(x),
            Err(x) => failures.push(x),
        }
    }
    let mut out = Outcome::from_findings(failures, found);
    out.evidence.extend(s.notes.iter().cloned());
    Ok(out)
}

pub(super) fn sudo_no_tag(facts: &Facts, tag: &str) -> Result<Outcome, FactError> {
    if let Some(o) = sudo_missing(facts)? {
        return Ok(o);
    }
    let s = sudoers(facts)?;
    if let Some(r) = &s.refused {
        return Ok(Outcome::fail(r.clone()));
    }
    let failures: Vec<String> = s
        .tagged(tag)
        .iter()
        .map(|r| format!("{}: {}", r.source, r.text))
        .collect();
    let mut out = if failures.is_empty() {
        Outcome::pass(format!("no rule in {} carries {tag}", s.files.join(", ")))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    };
    out.evidence.extend(s.notes.iter().cloned());
    Ok(out)
}
