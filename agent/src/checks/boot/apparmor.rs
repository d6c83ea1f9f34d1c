//! AppArmor: installed, enabled at boot, profiles enforcing.

use std::collections::BTreeSet;

use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::{strip_comment, FactError, Facts, FileKind};
use crate::model::Outcome;

// ---------------------------------------------------------------------------------
// AppArmor

/// Profiles named one by one in evidence; the rest are counted.
pub(super) const MAX_LISTED: usize = 20;

/// File names under /etc/apparmor.d that apparmor_parser skips.
pub(super) fn apparmor_ignored(name: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "~",
        ".dpkg-new",
        ".dpkg-old",
        ".dpkg-dist",
        ".dpkg-bak",
        ".dpkg-remove",
        ".ucf-old",
        ".ucf-dist",
        ".ucf-new",
        ".rpmnew",
        ".rpmsave",
        ".orig",
        ".rej",
    ];
    name.starts_with('.') || name == "README" || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The flags of the profiles in a policy file (`flags=(complain)` → `complain`).
pub fn profile_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for raw in text.lines() {
        let line = strip_comment(raw);
        let mut rest = line;
        while let Some(i) = rest.find("flags") {
            let after = rest[i + 5..].trim_start();
            rest = &rest[i + 5..];
            let Some(after) = after.strip_prefix('=') else {
                continue;
            };
            let Some(after) = after.trim_start().strip_prefix('(') else {
                continue;
            };
            let Some(end) = after.find(')') else { continue };
            for f in after[..end]
                .split([',', ' ', '\t'])
                .filter(|f| !f.is_empty())
            {
                out.insert(f.to_string());
            }
        }
    }
    out
}

/// Loaded profiles from /sys/kernel/security/apparmor/profiles: (name, mode).
pub fn parse_loaded_profiles(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let (name, mode) = l.rsplit_once(" (")?;
            Some((name.to_string(), mode.strip_suffix(')')?.to_string()))
        })
        .collect()
}

pub(super) fn apparmor(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    if facts.is_live() {
        apparmor_live(facts, enforce_only)
    } else {
        apparmor_offline(facts, enforce_only)
    }
}

pub(super) fn mode_ok(mode: &str, enforce_only: bool) -> bool {
    matches!(mode, "enforce" | "kill") || (!enforce_only && mode == "complain")
}

pub(super) fn apparmor_live(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    let path = "/sys/kernel/security/apparmor/profiles";
    let Some(text) = facts.read_runtime(path)? else {
        return Ok(Outcome::fail(format!(
            "AppArmor is not active in the running kernel ({path} does not exist)"
        )));
    };
    let profiles = parse_loaded_profiles(&text);
    if profiles.is_empty() {
        return Ok(Outcome::fail(format!(
            "no AppArmor profiles are loaded ({path} is empty)"
        )));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut by_mode: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, mode) in &profiles {
        *by_mode.entry(mode.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = by_mode.iter().map(|(m, n)| format!("{n} {m}")).collect();
    found.push(format!(
        "{} AppArmor profiles loaded ({path}): {}",
        profiles.len(),
        counts.join(", ")
    ));
    let want = if enforce_only {
        "enforce"
    } else {
        "enforce or complain"
    };
    let weak: Vec<&(String, String)> = profiles
        .iter()
        .filter(|(_, m)| !mode_ok(m, enforce_only))
        .collect();
    for (name, mode) in weak.iter().take(MAX_LISTED) {
        failures.push(format!(
            "{path}: profile {name} is in {mode} mode, not {want}"
        ));
    }
    if weak.len() > MAX_LISTED {
        failures.push(format!(
            "{} more profiles are in a mode other than {want} (first {MAX_LISTED} listed)",
            weak.len() - MAX_LISTED
        ));
    }
    let names: BTreeSet<&str> = profiles.iter().map(|(n, _)| n.as_str()).collect();
    let mut examined = 0;
    for pid in facts
        .list_dir("/proc")?
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        let label = match facts.read(&format!("/proc/{pid}/attr/apparmor/current")) {
            Ok(Some(l)) => l,
            _ => match facts.read(&format!("/proc/{pid}/attr/current")) {
                Ok(Some(l)) => l,
                _ => continue,
            },
        };
        let label = label.trim_end_matches(['\0', '\n', ' ']).to_string();
        let exe = match facts.read_link(&format!("/proc/{pid}/exe")) {
            Ok(Some(e)) => e,
            _ => continue, // kernel threads and vanished processes
        };
        examined += 1;
        if label == "unconfined" && names.contains(exe.as_str()) {
            failures.push(format!(
                "process {pid} ({exe}) runs unconfined although profile {exe} is loaded"
            ));
        } else if enforce_only && label.ends_with("(complain)") {
            failures.push(format!(
                "process {pid} ({exe}) runs in complain mode: {label}"
            ));
        }
    }
    found.push(format!(
        "{examined} processes examined (/proc/*/attr/current): none unconfined while a profile for its executable is loaded"
    ));
    if !failures.is_empty() {
        found.pop();
    }
    Ok(Outcome::from_findings(failures, found))
}

pub(super) fn apparmor_offline(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let pk = packages(facts)?;
    if pk.is_installed("apparmor") {
        found.push(pk.describe("apparmor"));
    } else {
        failures.push(format!(
            "{}: nothing loads AppArmor profiles at boot",
            pk.describe("apparmor")
        ));
    }
    let svc = unit(facts, "apparmor.service")?;
    if svc.masked {
        failures.push(svc.describe());
    }
    let dir = "/etc/apparmor.d";
    let mut profiles = Vec::new();
    for name in facts.list_dir(dir)? {
        if apparmor_ignored(&name) {
            continue;
        }
        let path = format!("{dir}/{name}");
        match facts.stat(&path)? {
            Some(m) if m.kind == FileKind::File => {}
            _ => continue,
        }
        if facts.lstat(&format!("{dir}/disable/{name}"))?.is_some() {
            found.push(format!("{path}: disabled ({dir}/disable/{name})"));
            continue;
        }
        let text = facts.read(&path)?.unwrap_or_default();
        let mut flags = profile_flags(&text);
        if facts
            .lstat(&format!("{dir}/force-complain/{name}"))?
            .is_some()
        {
            flags.insert("complain".into());
        }
        profiles.push((path, flags));
    }
    if profiles.is_empty() {
        failures.push(format!("no AppArmor profiles in {dir} are loaded at boot"));
    } else {
        found.push(format!(
            "{} AppArmor policy files in {dir} load at boot",
            profiles.len()
        ));
    }
    let want = if enforce_only {
        "enforce"
    } else {
        "enforce or complain"
    };
    let mut weak = Vec::new();
    for (path, flags) in &profiles {
        for bad in ["unconfined", "complain"] {
            if flags.contains(bad) && !mode_ok(bad, enforce_only) {
                weak.push(format!("{path}: a profile loads in {bad} mode, not {want}"));
            }
        }
    }
    let more = weak.len().saturating_sub(MAX_LISTED);
    failures.extend(weak.into_iter().take(MAX_LISTED));
    if more > 0 {
        failures.push(format!(
            "{more} more policy files load a profile in a mode other than {want} (first {MAX_LISTED} listed)"
        ));
    }
    found.push(
        "runtime state (loaded profiles, confined processes) not examined: offline root".into(),
    );
    Ok(Outcome::from_findings(failures, found))
}
