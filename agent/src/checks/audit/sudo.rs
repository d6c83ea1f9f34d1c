//! sudo's log file: the last global `Defaults logfile=` across sudoers and its includes.

use super::judge_requirements;
use super::rules::Requirement;
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

// ---------------------------------------------------------------------------
// sudo's log file

/// The `logfile` sudo uses: the last global `Defaults logfile=` (or `!logfile`)
/// across /etc/sudoers and its includes. Outer `None`: no /etc/sudoers.
pub fn sudo_logfile(facts: &Facts) -> Result<Option<(Option<String>, String)>, FactError> {
    if facts.read("/etc/sudoers")?.is_none() {
        return Ok(None);
    }
    let mut found: Option<(Option<String>, String)> = None;
    let mut seen = std::collections::HashSet::new();
    read_sudoers(facts, "/etc/sudoers", 0, &mut seen, &mut found)?;
    Ok(Some(found.unwrap_or((
        None,
        "no Defaults logfile= in /etc/sudoers or its includes".into(),
    ))))
}

pub(super) fn read_sudoers(
    facts: &Facts,
    path: &str,
    depth: usize,
    seen: &mut std::collections::HashSet<String>,
    found: &mut Option<(Option<String>, String)>,
) -> Result<(), FactError> {
    if depth > 8 || !seen.insert(path.to_string()) {
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        return Ok(());
    };
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = n + 1;
        }
        if let Some(s) = raw.strip_suffix('\\') {
            pending.push_str(s);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        let source = format!("{path}:{start}");
        let directive = line.strip_prefix('#').or_else(|| line.strip_prefix('@'));
        if let Some(d) = directive {
            let (word, arg) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            let arg = arg.trim().trim_matches('"');
            let abs = |a: &str| {
                if a.starts_with('/') {
                    a.to_string()
                } else {
                    format!("{dir}/{a}")
                }
            };
            match word {
                "include" if !arg.is_empty() => {
                    read_sudoers(facts, &abs(arg), depth + 1, seen, found)?
                }
                "includedir" if !arg.is_empty() => {
                    let d = abs(arg);
                    for name in facts.list_dir(&d)? {
                        if name.ends_with('~') || name.contains('.') {
                            continue;
                        }
                        read_sudoers(facts, &format!("{d}/{name}"), depth + 1, seen, found)?;
                    }
                }
                _ => {}
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("Defaults") else {
            continue;
        };
        if !rest.starts_with(char::is_whitespace) {
            continue; // Defaults:user, Defaults@host, … apply to some sessions only
        }
        let rest = strip_sudo_comment(rest);
        for param in split_commas(rest) {
            let p = param.trim();
            if p == "!logfile" {
                *found = Some((None, format!("{source}: {}", line.trim())));
            } else if let Some(v) = p.strip_prefix("logfile") {
                if let Some(v) = v.trim_start().strip_prefix('=') {
                    let v = v.trim().trim_matches('"').to_string();
                    *found = Some((Some(v), format!("{source}: {}", line.trim())));
                }
            }
        }
    }
    Ok(())
}

pub(super) fn strip_sudo_comment(s: &str) -> &str {
    let mut in_q = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_q = !in_q,
            '#' if !in_q => return &s[..i],
            _ => {}
        }
    }
    s
}

pub(super) fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_q = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_q = !in_q,
            ',' if !in_q => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

pub(super) fn sudo_log(facts: &Facts, perms: &str) -> Result<Outcome, FactError> {
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
