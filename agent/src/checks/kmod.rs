//! `kmod.*` checks: kernel modules that must not be loadable.
//!
//! A module counts as disabled when it is not loaded (live systems) and either no
//! installed kernel provides it, or modprobe configuration both redirects its loading
//! to a no-op (`install <mod> /bin/false`) and removes it from alias resolution
//! (`blacklist <mod>`). A module compiled into a kernel cannot be disabled that way.
//!
//! The facts (modprobe configuration as kmod reads it, the kernels' module indexes)
//! are read in [`crate::facts::modules`]: the first `install` line whose (glob) module
//! pattern matches wins, unless the module has soft dependencies (modprobe then
//! ignores its install command and loads it); `blacklist` names match exactly.
//! Modules available in several kernels are judged in each (their modules.softdep
//! differ).

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::facts::modules::{
    canonical, install_ignored_by, kernels, loaded, modprobe_config, MODPROBE_DIRS,
};
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// Commands accepted as "loading this module does nothing".
const NOOP_COMMANDS: [&str; 6] = [
    "/bin/false",
    "/usr/bin/false",
    "false",
    "/bin/true",
    "/usr/bin/true",
    "true",
];

/// The `kmod.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// The kernel module `module` cannot be loaded: not loaded now (live), and either
    /// no installed kernel provides it, or modprobe configuration has both an
    /// `install <module> /bin/false` (or `/bin/true`) line and a `blacklist <module>`
    /// line. Built into a kernel: fail.
    #[serde(rename = "kmod.disabled")]
    Disabled { module: String },
    /// Every wireless interface (`/sys/class/net/*/wireless`) has a driver module that
    /// is disabled as by `kmod.disabled`. No wireless interface: pass. Interfaces
    /// exist only on a running system: not applicable offline.
    #[serde(rename = "kmod.wireless_disabled")]
    WirelessDisabled {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Disabled { module } => disabled(facts, module),
            Check::WirelessDisabled {} => wireless(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

/// Whether `install` command `cmd` does nothing but exit: one of [`NOOP_COMMANDS`]
/// once /bin/sh has dropped a comment (a `#` starting a word) and the blanks (spaces
/// and tabs; a carriage return is part of the word).
pub fn is_noop_command(cmd: &str) -> bool {
    let blank = |c: char| c == ' ' || c == '\t';
    let end = cmd
        .char_indices()
        .find(|&(i, c)| c == '#' && (i == 0 || cmd[..i].ends_with(blank)))
        .map_or(cmd.len(), |(i, _)| i);
    NOOP_COMMANDS.contains(&cmd[..end].trim_matches(blank))
}

/// Judges whether `module` can be loaded: whether it is disabled, and the evidence.
pub fn judge_module(facts: &Facts, module: &str) -> Result<(bool, Vec<String>), FactError> {
    let m = canonical(module.trim());
    let mut ev = Vec::new();
    let mut failed = false;

    if facts.is_live() {
        if loaded(facts)?.contains(&m) {
            failed = true;
            ev.push(format!("module {m} is loaded (/proc/modules)"));
        } else {
            ev.push(format!("module {m} is not loaded (/proc/modules)"));
        }
    } else {
        ev.push("runtime state (loaded modules) not examined: offline root".to_string());
    }

    let k = kernels(facts)?;
    if let Some(ks) = k.builtin.get(&m) {
        failed = true;
        ev.push(format!(
            "module {m} is built into kernel {} (modules.builtin); modprobe configuration cannot keep it out",
            ks.join(", ")
        ));
        return Ok((!failed, ev));
    }
    let unknown: Vec<&str> = k
        .versions
        .iter()
        .filter(|(_, dep)| !dep)
        .map(|(v, _)| v.as_str())
        .collect();
    let available = k.available.get(&m);
    if available.is_none() && unknown.is_empty() {
        let kernels = if k.versions.is_empty() {
            "no kernel modules are installed under /lib/modules".to_string()
        } else {
            format!(
                "not provided by any installed kernel ({} checked in modules.dep)",
                k.versions
                    .iter()
                    .map(|(v, _)| v.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        ev.push(format!("module {m} is not available: {kernels}"));
        if let Some(r) = &k.running {
            if !k.versions.iter().any(|(v, _)| v == r) {
                ev.push(format!("the running kernel {r} has no /lib/modules/{r} in this root: it cannot load modules from here"));
            }
        }
        return Ok((!failed, ev));
    }
    if let Some(av) = available {
        let (v, path) = &av[0];
        ev.push(format!("module {m} is available: /lib/modules/{v}/{path}"));
    }
    for v in &unknown {
        ev.push(format!(
            "/lib/modules/{v} has no modules.dep; module {m} is assumed available there"
        ));
    }

    // modprobe configuration differs between kernels only by their modules.softdep.
    let mut versions: Vec<&str> = available
        .into_iter()
        .flatten()
        .map(|(v, _)| v.as_str())
        .chain(unknown)
        .collect();
    versions.dedup();
    let mut seen = BTreeSet::new();
    let mut note = |ev: &mut Vec<String>, line: String| {
        if seen.insert(line.clone()) {
            ev.push(line);
        }
    };
    for v in versions {
        let cfg = modprobe_config(facts, Some(v))?;
        match cfg.install(&m) {
            Some(d) if is_noop_command(&d.rest) => note(&mut ev, d.describe()),
            Some(d) => {
                failed = true;
                note(
                    &mut ev,
                    format!(
                        "{} (the effective install command for {m} is not /bin/false or /bin/true)",
                        d.describe()
                    ),
                );
            }
            None => {
                failed = true;
                note(
                    &mut ev,
                    format!(
                        "no `install {m} /bin/false` line in modprobe configuration ({})",
                        MODPROBE_DIRS.join(", ")
                    ),
                );
            }
        }
        if let Some(d) = install_ignored_by(facts, &cfg, &k, v, &m)? {
            failed = true;
            note(
                &mut ev,
                format!(
                    "{} (modprobe ignores the install command of a module with soft dependencies and loads {m} itself)",
                    d.describe()
                ),
            );
        }
        match cfg.blacklist(&m) {
            Some(d) => note(&mut ev, d.describe()),
            None => {
                failed = true;
                note(
                    &mut ev,
                    format!("no `blacklist {m}` line in modprobe configuration"),
                );
            }
        }
    }
    Ok((!failed, ev))
}

fn disabled(facts: &Facts, module: &str) -> Result<Outcome, FactError> {
    let (ok, ev) = judge_module(facts, module)?;
    Ok(Outcome::new(
        if ok { Status::Pass } else { Status::Fail },
        ev,
    ))
}

fn wireless(facts: &Facts) -> Result<Outcome, FactError> {
    if !facts.is_live() {
        return Ok(Outcome::not_applicable(
            "wireless interfaces exist only on a running system; not examined (offline root)",
        ));
    }
    let mut ifaces = Vec::new();
    for name in facts.list_dir("/sys/class/net")? {
        let base = format!("/sys/class/net/{name}");
        let wireless = facts
            .stat(&format!("{base}/wireless"))?
            .is_some_and(|m| m.kind == FileKind::Dir)
            || facts.lstat(&format!("{base}/phy80211"))?.is_some();
        if wireless {
            ifaces.push(name);
        }
    }
    if ifaces.is_empty() {
        return Ok(Outcome::pass("no wireless interfaces in /sys/class/net"));
    }
    let mut ev = Vec::new();
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for name in ifaces {
        let link = format!("/sys/class/net/{name}/device/driver/module");
        match facts.read_link(&link)? {
            Some(target) => {
                let module = target
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(&target)
                    .to_string();
                ev.push(format!(
                    "wireless interface {name} uses driver module {module} ({link})"
                ));
                if seen.insert(canonical(&module)) {
                    let (m_ok, m_ev) = judge_module(facts, &module)?;
                    ok &= m_ok;
                    ev.extend(m_ev);
                }
            }
            None => {
                ok = false;
                ev.push(format!(
                    "wireless interface {name} has no driver module ({link} missing): built in or virtual, cannot be disabled by modprobe configuration"
                ));
            }
        }
    }
    Ok(Outcome::new(
        if ok { Status::Pass } else { Status::Fail },
        ev,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noop_commands() {
        assert!(is_noop_command("/bin/false"));
        assert!(is_noop_command("/bin/true  # disabled"));
        assert!(is_noop_command("true"));
        assert!(!is_noop_command(
            "/bin/true; /sbin/modprobe --ignore-install cramfs"
        ));
        assert!(!is_noop_command("/sbin/modprobe --ignore-install cramfs"));
        assert!(!is_noop_command(""));
        assert!(!is_noop_command("/bin/false#x"));
        assert!(!is_noop_command("/bin/false\r"));
        assert!(is_noop_command("  /bin/false\t#x"));
    }

    #[test]
    fn globs() {
        use crate::facts::fnmatch;
        assert!(fnmatch("cramfs", "cramfs"));
        assert!(fnmatch("*", "cramfs"));
        assert!(fnmatch("cram*", "cramfs"));
        assert!(fnmatch("hfs?lus", "hfsplus"));
        assert!(fnmatch("[a-c]ramfs", "cramfs"));
        assert!(!fnmatch("[!c]ramfs", "cramfs"));
        assert!(!fnmatch("hfs", "hfsplus"));
        assert!(fnmatch("a[", "a["));
        assert!(!fnmatch("a[", "ab"));
        assert!(fnmatch("*fs", "cramfs"));
        assert!(fnmatch("c*a*s", "cramfs"));
        assert!(!fnmatch("c*x*s", "cramfs"));
        assert!(fnmatch("", "") && !fnmatch("", "a") && fnmatch("**", ""));
        let hostile = format!("{}b", "*a".repeat(200));
        assert!(!fnmatch(&hostile, &"a".repeat(300)));
    }
}
