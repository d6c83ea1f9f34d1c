//! `selinux.*` checks: SELinux's configured mode and policy, the running kernel's
//! mode, and services running unconfined.

use serde::Deserialize;

use crate::facts::selinux::{
    process_contexts, runtime_enforcing, selinux_config, SELINUX_CONFIG, SELINUX_ENFORCE,
};
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// At most this many offending processes are listed.
const MAX_LISTED: usize = 20;

/// The `selinux.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every `SELINUX=` of /etc/selinux/config is one of `allowed` (`enforcing`,
    /// `permissive`), and on a live system the running kernel's mode
    /// (/sys/fs/selinux/enforce) is too. No config or no setting: fail.
    #[serde(rename = "selinux.mode")]
    Mode { allowed: Vec<String> },
    /// Every `SELINUXTYPE=` of /etc/selinux/config is one of `allowed`, and the
    /// policy it names is installed (/etc/selinux/<type> exists).
    #[serde(rename = "selinux.policy_type")]
    PolicyType { allowed: Vec<String> },
    /// On a live system no process runs in an SELinux domain of `types`
    /// (e.g. `unconfined_service_t`: a service started from a program no policy
    /// module describes). Offline: not applicable, processes exist only at runtime.
    #[serde(rename = "selinux.no_process_type")]
    NoProcessType { types: Vec<String> },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Mode { allowed } => mode(facts, allowed),
            Check::PolicyType { allowed } => policy_type(facts, allowed),
            Check::NoProcessType { types } => no_process_type(facts, types),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

fn no_config() -> Outcome {
    Outcome::fail(format!(
        "{SELINUX_CONFIG} does not exist: no SELinux policy is loaded at boot"
    ))
}

fn mode(facts: &Facts, allowed: &[String]) -> Result<Outcome, FactError> {
    let Some(cfg) = selinux_config(facts)? else {
        return Ok(no_config());
    };
    let ok = |v: &str| allowed.iter().any(|a| a.eq_ignore_ascii_case(v));
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if cfg.mode.is_empty() {
        failures.push(format!("{SELINUX_CONFIG} has no SELINUX= setting"));
    }
    for a in &cfg.mode {
        let line = format!("{}: SELINUX={}", a.source, a.value);
        if ok(&a.value) {
            found.push(line);
        } else {
            failures.push(format!("{line} (allowed: {})", allowed.join(", ")));
        }
    }
    if facts.is_live() {
        match runtime_enforcing(facts)? {
            None => failures.push(format!(
                "{SELINUX_ENFORCE} does not exist: SELinux is not enabled in the running kernel"
            )),
            Some(e) => {
                let now = if e { "enforcing" } else { "permissive" };
                let line = format!("{SELINUX_ENFORCE}: {} (running kernel {now})", e as u8);
                if ok(now) {
                    found.push(line);
                } else {
                    failures.push(format!("{line}, not {}", allowed.join(" or ")));
                }
            }
        }
    } else {
        found.push(
            "offline root: runtime state not examined (the running kernel's SELinux mode)".into(),
        );
    }
    Ok(Outcome::from_findings(failures, found))
}

fn policy_type(facts: &Facts, allowed: &[String]) -> Result<Outcome, FactError> {
    let Some(cfg) = selinux_config(facts)? else {
        return Ok(no_config());
    };
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if cfg.policy_type.is_empty() {
        failures.push(format!("{SELINUX_CONFIG} has no SELINUXTYPE= setting"));
    }
    for a in &cfg.policy_type {
        let line = format!("{}: SELINUXTYPE={}", a.source, a.value);
        if !allowed.contains(&a.value) {
            failures.push(format!("{line} (allowed: {})", allowed.join(", ")));
            continue;
        }
        let dir = format!("/etc/selinux/{}", a.value);
        match facts.stat(&dir)? {
            Some(m) if m.kind == FileKind::Dir => found.push(format!("{line}; {dir} exists")),
            _ => failures.push(format!(
                "{line}, but {dir} does not exist: the policy is not installed"
            )),
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

fn no_process_type(facts: &Facts, types: &[String]) -> Result<Outcome, FactError> {
    if !facts.is_live() {
        // An image runs no process: the recommendation concerns running services,
        // which only a live scan sees. Not applicable (unscored), never pass.
        return Ok(Outcome::not_applicable(
            "offline root: no process runs in an image, and the SELinux domains of running services (/proc/*/attr/current) exist only on a running system; runtime state not examined",
        ));
    }
    if runtime_enforcing(facts)?.is_none() {
        return Ok(Outcome::fail(format!(
            "{SELINUX_ENFORCE} does not exist: SELinux is not enabled in the running kernel, so no service is confined"
        )));
    }
    let procs = process_contexts(facts)?;
    let bad: Vec<_> = procs
        .iter()
        .filter(|p| {
            p.context_type()
                .is_some_and(|t| types.iter().any(|w| w == t))
        })
        .collect();
    let mut failures: Vec<String> = bad
        .iter()
        .take(MAX_LISTED)
        .map(|p| {
            format!(
                "process {} ({}) runs as {} (/proc/{}/attr/current)",
                p.pid, p.comm, p.context, p.pid
            )
        })
        .collect();
    if bad.len() > MAX_LISTED {
        failures.push(format!(
            "{} more such processes (first {MAX_LISTED} listed)",
            bad.len() - MAX_LISTED
        ));
    }
    let found = vec![format!(
        "{} processes examined (/proc/*/attr/current): none runs as {}",
        procs.len(),
        types.join(" or ")
    )];
    if failures.is_empty() {
        Ok(Outcome::new(Status::Pass, found))
    } else {
        Ok(Outcome::new(Status::Fail, failures))
    }
}
