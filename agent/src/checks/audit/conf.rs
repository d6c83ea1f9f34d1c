//! auditd.conf: auditd's defaults and the settings rules.

use super::ConfRequirement;
use crate::facts::accounts::accounts;
use crate::facts::auditd_conf::{auditd_conf, AUDITD_CONF};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// auditd's built-in values for the keys the benchmark names.
pub(super) fn auditd_default(key: &str) -> Option<&'static str> {
    Some(match key {
        "log_file" => "/var/log/audit/audit.log",
        "log_group" => "root",
        "action_mail_acct" => "root",
        "max_log_file_action" => "ignore",
        "space_left_action" => "ignore",
        "admin_space_left_action" => "ignore",
        "disk_full_action" => "ignore",
        "disk_error_action" => "syslog",
        _ => return None,
    })
}

/// The effective value of `key` with its evidence line; `None` when auditd.conf
/// is missing.
pub(super) fn auditd_value(
    facts: &Facts,
    key: &str,
) -> Result<Option<(Option<String>, String)>, FactError> {
    let c = auditd_conf(facts)?;
    let Some((lines, _)) = &*c else {
        return Ok(None);
    };
    let key = key.to_ascii_lowercase();
    Ok(Some(match lines.iter().rev().find(|l| l.key == key) {
        Some(l) => (Some(l.value.clone()), format!("{}: {}", l.source, l.text)),
        None => match auditd_default(&key) {
            Some(d) => (
                Some(d.to_string()),
                format!("{key} not set in {AUDITD_CONF}; auditd default {d}"),
            ),
            None => (None, format!("{key} not set in {AUDITD_CONF}")),
        },
    }))
}

pub(super) fn auditd_conf_check(
    facts: &Facts,
    settings: &[ConfRequirement],
) -> Result<Outcome, FactError> {
    let c = auditd_conf(facts)?;
    let Some((_, notes)) = &*c else {
        return Ok(Outcome::fail(format!(
            "{AUDITD_CONF} not found (auditd is not installed or not configured)"
        )));
    };
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for req in settings {
        let (ok, lines) = judge_setting(facts, req)?;
        if ok {
            good.extend(lines);
        } else {
            bad.extend(lines);
        }
    }
    good.extend(notes.iter().cloned());
    Ok(Outcome::from_findings(bad, good))
}

/// Judges one setting of an existing auditd.conf: (met, evidence).
pub(super) fn judge_setting(
    facts: &Facts,
    req: &ConfRequirement,
) -> Result<(bool, Vec<String>), FactError> {
    let key = req.key.as_str();
    let Some((value, line)) = auditd_value(facts, key)? else {
        return Ok((false, vec![format!("{AUDITD_CONF} not found")]));
    };
    let Some(v) = value else {
        return Ok((false, vec![line, format!("{key} must be set")]));
    };
    let mut shown = v.clone();
    if key.eq_ignore_ascii_case("log_group") {
        if let Ok(gid) = v.parse::<u32>() {
            if let Ok(acc) = accounts(facts).as_ref() {
                shown = acc.group_name(gid);
            }
        }
    }
    let ok_allowed =
        req.allowed.is_empty() || req.allowed.iter().any(|a| a.eq_ignore_ascii_case(&shown));
    let ok_min = match req.min {
        Some(m) => v.chars().all(|c| c.is_ascii_digit()) && v.parse::<u64>().is_ok_and(|n| n >= m),
        None => true,
    };
    if ok_allowed && ok_min {
        return Ok((true, vec![line]));
    }
    let mut need = Vec::new();
    if !req.allowed.is_empty() {
        need.push(format!("one of {}", req.allowed.join(", ")));
    }
    if let Some(m) = req.min {
        need.push(format!("a number of at least {m}"));
    }
    Ok((
        false,
        vec![
            line,
            format!("{key} is {shown}; it must be {}", need.join(" and ")),
        ],
    ))
}
