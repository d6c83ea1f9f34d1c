//! GRUB 2 as RHEL-family systems use it: kernel arguments in Boot Loader
//! Specification entries, and the boot-loader password kept in user.cfg.

use std::collections::BTreeMap;

use super::grub::{grub_password, no_grub};
use crate::facts::bootargs::{boot_entries, default_grub_cmdline, param_in, BLS_DIR, GRUB2_CFG};
use crate::facts::grub::{grub_words, parse_grub};
use crate::facts::{strip_comment, FactError, Facts};
use crate::model::{Outcome, Status};

/// What the arguments of one entry lack or carry against the wanted ones.
fn problems(
    args: &[String],
    required: &[String],
    min: &BTreeMap<String, u64>,
    forbidden: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for r in required {
        let (name, want) = r.split_once('=').unwrap_or((r.as_str(), ""));
        match param_in(args, name) {
            Some(v) if v == want => {}
            Some(v) => out.push(format!("{r} required, found {name}={v}")),
            None => out.push(format!("{r} missing")),
        }
    }
    for (name, low) in min {
        match param_in(args, name) {
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= *low => {}
                _ => out.push(format!("{name}={v} (at least {low} required)")),
            },
            None => out.push(format!("{name}=N missing (N at least {low})")),
        }
    }
    for f in forbidden {
        let (name, bad) = f.split_once('=').unwrap_or((f.as_str(), ""));
        if param_in(args, name) == Some(bad) {
            out.push(format!("{f} present"));
        }
    }
    out
}

fn wanted(required: &[String], min: &BTreeMap<String, u64>, forbidden: &[String]) -> String {
    let mut w: Vec<String> = required.to_vec();
    w.extend(min.iter().map(|(k, v)| format!("{k}>={v}")));
    w.extend(forbidden.iter().map(|f| format!("no {f}")));
    w.join(", ")
}

pub(super) fn kernel_args(
    facts: &Facts,
    required: &[String],
    min: &BTreeMap<String, u64>,
    forbidden: &[String],
) -> Result<Outcome, FactError> {
    let want = wanted(required, min, forbidden);
    let (entries, origin) = boot_entries(facts)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if entries.is_empty() {
        if facts.is_live() {
            if let Some(cmdline) = facts.read_runtime("/proc/cmdline")? {
                let args: Vec<String> = cmdline.split_whitespace().map(String::from).collect();
                let p = problems(&args, required, min, forbidden);
                let head = format!(
                    "no boot entries in {BLS_DIR} and no kernel lines in {GRUB2_CFG}; judged the running kernel's /proc/cmdline"
                );
                return Ok(if p.is_empty() {
                    Outcome::pass(format!("{head}: {want}"))
                } else {
                    Outcome::new(
                        Status::Fail,
                        vec![head, format!("/proc/cmdline: {}", p.join("; "))],
                    )
                });
            }
        }
        return Ok(Outcome::not_applicable(format!(
            "no boot entries in {BLS_DIR} and no kernel lines in {GRUB2_CFG}: GRUB 2 does not boot this image (runtime state not examined)"
        )));
    }
    for e in &entries {
        let p = problems(&e.args, required, min, forbidden);
        let unset = if e.unset_vars.is_empty() {
            String::new()
        } else {
            format!(
                " (unset in grubenv, expanding to nothing: ${})",
                e.unset_vars.join(", $")
            )
        };
        if p.is_empty() {
            found.push(format!("{} ({}): {want}{unset}", e.source, e.title));
        } else {
            failures.push(format!(
                "{} ({}): {}{unset}",
                e.source,
                e.title,
                p.join("; ")
            ));
        }
    }
    for (src, key, words) in default_grub_cmdline(facts)? {
        let bad: Vec<String> = forbidden
            .iter()
            .filter(|f| {
                let (name, v) = f.split_once('=').unwrap_or((f.as_str(), ""));
                param_in(&words, name) == Some(v)
            })
            .cloned()
            .collect();
        if !bad.is_empty() {
            failures.push(format!(
                "{src}: {key} has {}: regenerating the boot entries from it (grub2-mkconfig --update-bls-cmdline, or any grub2-mkconfig before RHEL 9.3) brings it back",
                bad.join(" ")
            ));
        } else if !required.is_empty() || !min.is_empty() {
            let p = problems(&words, required, min, &[]);
            if !p.is_empty() {
                found.push(format!(
                    "note: {src}: {key} lacks {} (the boot entries are what the kernel receives)",
                    p.join("; ")
                ));
            }
        }
    }
    if facts.is_live() {
        if let Ok(Some(cmdline)) = facts.read_runtime("/proc/cmdline") {
            let args: Vec<String> = cmdline.split_whitespace().map(String::from).collect();
            if !problems(&args, required, min, forbidden).is_empty() {
                found.push(format!(
                    "note: the running kernel's /proc/cmdline does not meet {want} (a reboot applies the entries)"
                ));
            }
        }
    } else {
        found.push(
            "offline root: runtime state not examined (the running kernel's arguments)".into(),
        );
    }
    if failures.is_empty() {
        found.insert(0, format!("every boot entry ({origin}) meets: {want}"));
    }
    Ok(Outcome::from_findings(failures, found))
}

/// A `GRUB2_PASSWORD=` line of user.cfg: (source, value).
fn grub2_password_line(text: &str, path: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().rev().find_map(|(n, raw)| {
        let line = strip_comment(raw);
        let v = line.strip_prefix("GRUB2_PASSWORD=")?;
        Some((format!("{path}:{}", n + 1), v.trim().to_string()))
    })
}

/// Whether grub.cfg text only hands over to another configuration file.
fn is_stub(text: &str) -> bool {
    let cmds: Vec<String> = text
        .lines()
        .filter_map(|l| grub_words(l.trim()).into_iter().next())
        .collect();
    cmds.iter().any(|c| c == "configfile")
        && !cmds
            .iter()
            .any(|c| matches!(c.as_str(), "blscfg" | "linux" | "linuxefi" | "menuentry"))
}

pub(super) fn grub2_password(facts: &Facts, configs: &[String]) -> Result<Outcome, FactError> {
    let mut stubs = Vec::new();
    let mut chosen = None;
    for c in configs {
        match facts.read(c)? {
            Some(t) if is_stub(&t) => stubs.push(c.clone()),
            Some(t) => {
                chosen = Some((c.as_str(), t));
                break;
            }
            None => {}
        }
    }
    let Some((config, text)) = chosen else {
        let mut o = no_grub(&configs.join(" or "));
        for s in stubs {
            o.evidence
                .push(format!("{s} only hands over to another file (configfile)"));
        }
        return Ok(o);
    };
    let dir = config.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let user_cfg = [format!("{dir}/user.cfg")];
    // A password set directly in grub.cfg (e.g. through /etc/grub.d/40_custom).
    let direct = grub_password(facts, config)?;
    if direct.status == Status::Pass {
        return Ok(direct);
    }
    let cfg = parse_grub(&text, config);
    let mut failures = Vec::new();
    let mut found = Vec::new();
    // RHEL's /etc/grub.d/01_users: source user.cfg, then
    // `password_pbkdf2 root ${GRUB2_PASSWORD}` for superuser root.
    let uses_user_cfg = text.lines().enumerate().find(|(_, l)| {
        let w = grub_words(l.trim());
        w.first().is_some_and(|c| c == "password_pbkdf2")
            && w.get(2)
                .is_some_and(|h| h == "${GRUB2_PASSWORD}" || h == "$GRUB2_PASSWORD")
    });
    match (&uses_user_cfg, &cfg.superusers) {
        (Some((n, _)), Some((src, users))) if !users.is_empty() => found.push(format!(
            "{config}:{}: password_pbkdf2 from GRUB2_PASSWORD; {src}: superusers {}",
            n + 1,
            users.join(" ")
        )),
        _ => failures.push(format!(
            "{config} neither sets a hashed password for its superusers nor reads GRUB2_PASSWORD from user.cfg"
        )),
    }
    let mut hashed = false;
    for p in &user_cfg {
        let Some(t) = facts.read(p)? else { continue };
        match grub2_password_line(&t, p) {
            Some((src, v)) if v.starts_with("grub.pbkdf2.") => {
                hashed = true;
                found.push(format!("{src}: GRUB2_PASSWORD=grub.pbkdf2.… (hashed)"));
            }
            Some((src, _)) => {
                found.push(format!("{src}: GRUB2_PASSWORD is not a grub.pbkdf2 hash"))
            }
            None => found.push(format!("{p}: no GRUB2_PASSWORD line")),
        }
    }
    if !hashed {
        failures.push(format!(
            "no hashed GRUB2_PASSWORD in {}: anyone at the console can edit boot entries",
            user_cfg[0]
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_problems() {
        let a: Vec<String> = ["ro", "audit=1", "audit_backlog_limit=4096", "selinux=0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let min = BTreeMap::from([("audit_backlog_limit".to_string(), 8192)]);
        let p = problems(
            &a,
            &["audit=1".into()],
            &min,
            &["selinux=0".into(), "enforcing=0".into()],
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(problems(&a, &["audit=1".into()], &BTreeMap::new(), &[]).is_empty());
        assert!(is_stub(
            "search --no-floppy --fs-uuid --set=dev abcd\nset prefix=($dev)/grub2\nexport $prefix\nconfigfile $prefix/grub.cfg\n"
        ));
        assert!(!is_stub("blscfg\n"));
        assert_eq!(
            grub2_password_line("GRUB2_PASSWORD=grub.pbkdf2.sha512.10000.AA.BB\n", "/u")
                .unwrap()
                .1,
            "grub.pbkdf2.sha512.10000.AA.BB"
        );
    }
}
