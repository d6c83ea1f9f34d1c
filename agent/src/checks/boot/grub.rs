//! GRUB: its password and the kernel parameters of the generated configuration.

use std::collections::BTreeSet;

use crate::facts::grub::{grub_config, grub_words};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

pub(super) fn no_grub(path: &str) -> Outcome {
    Outcome::not_applicable(format!(
        "{path} does not exist: GRUB is not the boot loader of this system"
    ))
}

pub(super) fn grub_password(facts: &Facts, path: &str) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let users: Vec<String> = match &cfg.superusers {
        Some((src, users)) if !users.is_empty() => {
            found.push(format!("{src}: set superusers=\"{}\"", users.join(" ")));
            users.clone()
        }
        Some((src, _)) => {
            failures.push(format!("{src}: superusers is set to an empty list"));
            Vec::new()
        }
        None => {
            failures.push(format!(
                "{path} does not set superusers: anyone at the console can edit boot entries"
            ));
            Vec::new()
        }
    };
    let hashed: Vec<&(String, String, String)> = cfg
        .passwords
        .iter()
        .filter(|(_, cmd, u)| cmd == "password_pbkdf2" && users.contains(u))
        .collect();
    for (src, _, u) in &hashed {
        found.push(format!("{src}: password_pbkdf2 {u} grub.pbkdf2.… (hashed)"));
    }
    for (src, cmd, u) in cfg.passwords.iter().filter(|(_, cmd, _)| cmd == "password") {
        found.push(format!(
            "{src}: {cmd} {u} … (plain-text password, not accepted)"
        ));
    }
    if !users.is_empty() && hashed.is_empty() {
        failures.push(format!(
            "no password_pbkdf2 entry in {path} for superuser(s) {}",
            users.join(", ")
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

/// `GRUB_CMDLINE_LINUX*` assignments in /etc/default/grub and /etc/default/grub.d.
pub(super) fn default_grub_cmdlines(
    facts: &Facts,
) -> Result<Vec<(String, String, String)>, FactError> {
    let mut files = vec!["/etc/default/grub".to_string()];
    files.extend(facts.dir_files("/etc/default/grub.d", ".cfg")?);
    let mut out = Vec::new();
    for f in files {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                if k == "GRUB_CMDLINE_LINUX" || k == "GRUB_CMDLINE_LINUX_DEFAULT" {
                    let v = grub_words(v).join(" ");
                    out.push((format!("{f}:{}", n + 1), k.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn kernel_param(
    facts: &Facts,
    params: &[String],
    path: &str,
) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    if cfg.kernels.is_empty() {
        return Ok(Outcome::fail(format!("{path} has no linux kernel lines")));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for k in &cfg.kernels {
        let mut missing = Vec::new();
        for p in params {
            let (name, want) = p.split_once('=').unwrap_or((p.as_str(), ""));
            match k.param(name) {
                Some(v) if v == want => {}
                Some(v) if want.is_empty() => missing.push(format!("{name} (found {name}={v})")),
                Some(v) => missing.push(format!("{p} (found {name}={v})")),
                None => missing.push(p.clone()),
            }
        }
        let image = k.args.first().map(String::as_str).unwrap_or("");
        if missing.is_empty() {
            found.push(format!(
                "{}: linux {image} … {}",
                k.source,
                params.join(" ")
            ));
        } else {
            failures.push(format!(
                "{}: linux {image} lacks {}",
                k.source,
                missing.join(", ")
            ));
        }
    }
    if !failures.is_empty() {
        for (src, key, v) in default_grub_cmdlines(facts)? {
            let words: BTreeSet<&str> = v.split_whitespace().collect();
            if params.iter().all(|p| words.contains(p.as_str())) {
                failures.push(format!(
                    "{src}: {key} has {} but {path} was not regenerated (run update-grub)",
                    params.join(" ")
                ));
            }
        }
    }
    Ok(Outcome::from_findings(failures, found))
}
