//! sudo's log file: the last global `Defaults logfile=` of the policy sudo reads
//! (`facts::sudoers`, the reader the sudo rules use).

use super::judge_requirements;
use super::rules::Requirement;
use crate::facts::sudoers::{sudoers, Op};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// The `logfile` sudo uses and the line that sets it (or why there is none). Outer
/// `None`: no /etc/sudoers. A policy sudo refuses keeps no log file.
pub fn sudo_logfile(facts: &Facts) -> Result<Option<(Option<String>, String)>, FactError> {
    let s = sudoers(facts)?;
    if let Some(r) = &s.refused {
        return Ok(Some((None, r.clone())));
    }
    if s.files.is_empty() {
        return Ok(None);
    }
    Ok(Some(match s.global("logfile") {
        Some(d) => match &d.op {
            Op::Value(v) => (Some(v.clone()), d.describe()),
            _ => (None, d.describe()),
        },
        None => (
            None,
            format!("no Defaults logfile= in {}", s.files.join(", ")),
        ),
    }))
}

pub(super) fn sudo_log(facts: &Facts, perms: &str) -> Result<Outcome, FactError> {
    if let Some(why) = sudoers(facts)?.undecided("logfile") {
        return Ok(Outcome::error(why));
    }
    let Some((file, line)) = sudo_logfile(facts)? else {
        return Ok(Outcome::not_applicable(
            "/etc/sudoers not found: sudo is not installed",
        ));
    };
    let Some(file) = file else {
        return Ok(Outcome::fail(format!("{line}: sudo keeps no log file of its own to audit (see the sudo log file recommendation)")));
    };
    let req = Requirement {
        path: Some(file),
        perms: Some(perms.to_string()),
        syscalls: vec![],
        arch: vec![],
        filters: vec![],
        compare: vec![],
    };
    judge_requirements(facts, &[req], vec![line])
}
