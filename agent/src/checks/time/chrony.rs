//! chrony's sources and the user it runs as (its configuration is read by
//! [`crate::facts::chrony`]).

use crate::facts::chrony::{chrony_config, chronyd_processes, Directive, Layout};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

pub(super) fn chrony_sources(facts: &Facts, layout: Layout) -> Result<Outcome, FactError> {
    let cfg = chrony_config(facts, layout)?;
    let sources: Vec<String> = cfg
        .directives
        .iter()
        .filter(|d| d.name == "server" || d.name == "pool")
        .map(Directive::describe)
        .collect();
    let mut ev = sources.clone();
    ev.extend(cfg.notes.iter().cloned());
    if !cfg.main_found {
        ev.insert(0, format!("{} not found", cfg.main));
    }
    if sources.is_empty() {
        ev.insert(
            0,
            format!(
                "no server or pool directive in {} or the files it includes",
                cfg.main
            ),
        );
        return Ok(Outcome::new(Status::Fail, ev));
    }
    ev.push("whether these sources are the site's approved ones is for the reviewer".into());
    Ok(Outcome::new(Status::Pass, ev))
}

pub(super) fn chrony_user(facts: &Facts, layout: Layout) -> Result<Outcome, FactError> {
    let cfg = chrony_config(facts, layout)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let directive = cfg.directives.iter().rev().find(|d| d.name == "user");
    // chronyd's -u option takes precedence over the `user` directive.
    let (user, line) = match (&cfg.user_option, directive) {
        (Some((u, src)), _) => (u.clone(), format!("{src} (-u {u})")),
        (None, Some(d)) => (
            d.args
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            d.describe(),
        ),
        (None, None) => (
            layout.default_user().to_string(),
            format!(
                "{}: user not set; chronyd's default is {}",
                cfg.main,
                layout.default_user()
            ),
        ),
    };
    if user == "root" || user == "0" {
        failures.push(format!("{line}: chronyd would keep root privileges"));
    } else {
        found.push(line);
    }
    if facts.is_live() {
        let procs = chronyd_processes(facts)?;
        if procs.is_empty() {
            found.push("no chronyd process found in /proc".into());
        }
        for (pid, uid) in procs {
            let line = format!("/proc/{pid}/status: chronyd runs with effective UID {uid}");
            if uid == 0 {
                failures.push(line);
            } else {
                found.push(line);
            }
        }
    } else {
        found.push("offline root: running chronyd process not examined".into());
    }
    Ok(Outcome::from_findings(failures, found))
}
