//! `kmod.*` checks: kernel modules that must not be loadable.
//!
//! A module counts as disabled when it is not loaded (live systems) and either no
//! installed kernel provides it, or modprobe configuration both redirects its loading
//! to a no-op (`install <mod> /bin/false`) and removes it from alias resolution
//! (`blacklist <mod>`). A module compiled into a kernel cannot be disabled that way.
//!
//! modprobe configuration is read as kmod reads it: `*.conf` files from its
//! directories, sorted by file name across directories (a name in an earlier
//! directory hides the same name in a later one), lines joined on a trailing
//! backslash; the first `install` line whose (glob) module pattern matches wins;
//! `blacklist` names match exactly; `-` and `_` in module names are the same.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;

use crate::facts::fnmatch;
use crate::facts::modules::canonical;
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// Directories kmod reads, highest precedence first.
const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

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

/// One `install` or `blacklist` directive of modprobe configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// `install` or `blacklist`.
    pub keyword: String,
    /// The module name or (for `install`) glob pattern, with `-` read as `_`.
    pub module: String,
    /// The rest of the line (the command of an `install`).
    pub rest: String,
    /// `path:line`.
    pub source: String,
    /// The line as written (continuations joined).
    pub text: String,
}

/// Parses one modprobe configuration file into its `install`/`blacklist` directives.
pub fn parse_modprobe(text: &str, path: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = n + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        if let Some(d) = directive(&line, &format!("{path}:{start}")) {
            out.push(d);
        }
    }
    if !pending.is_empty() {
        if let Some(d) = directive(&pending, &format!("{path}:{start}")) {
            out.push(d);
        }
    }
    out
}

fn directive(line: &str, source: &str) -> Option<Directive> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') {
        return None;
    }
    let mut words = trimmed.splitn(2, [' ', '\t']);
    let keyword = words.next()?;
    if keyword != "install" && keyword != "blacklist" {
        return None;
    }
    let rest = words.next()?.trim_start();
    let mut words = rest.splitn(2, [' ', '\t']);
    let module = words.next().filter(|m| !m.is_empty())?;
    let rest = words.next().unwrap_or("").trim();
    Some(Directive {
        keyword: keyword.to_string(),
        module: canonical(module),
        rest: rest.to_string(),
        source: source.to_string(),
        text: trimmed.split_whitespace().collect::<Vec<_>>().join(" "),
    })
}

/// Every directive of the root's modprobe configuration, in kmod's reading order.
pub fn modprobe_directives(facts: &Facts) -> Arc<Result<Vec<Directive>, FactError>> {
    facts.memo("kmod-modprobe-directives", || {
        let mut out = Vec::new();
        for path in crate::facts::kv::dropin_files(facts, &MODPROBE_DIRS, ".conf")? {
            // A directory named *.conf is not a configuration file.
            if facts.stat(&path)?.is_some_and(|m| m.kind == FileKind::Dir) {
                continue;
            }
            if let Some(text) = facts.read(&path)? {
                out.extend(parse_modprobe(&text, &path));
            }
        }
        Ok(out)
    })
}

/// The modules the installed kernels provide.
#[derive(Debug, Clone, Default)]
pub struct Kernels {
    /// Per kernel version: whether its modules.dep was found.
    pub versions: Vec<(String, bool)>,
    /// The running kernel (live only).
    pub running: Option<String>,
    /// module → (kernel, object path) where it is available as a loadable module.
    pub available: BTreeMap<String, Vec<(String, String)>>,
    /// module → kernels into which it is compiled.
    pub builtin: BTreeMap<String, Vec<String>>,
}

/// Reads modules.dep and modules.builtin of every kernel under /lib/modules (and, on
/// a live system, notes the running kernel).
pub fn kernels(facts: &Facts) -> Arc<Result<Kernels, FactError>> {
    facts.memo("kmod-kernels", || {
        let mut k = Kernels::default();
        if facts.is_live() {
            k.running = facts
                .read_runtime("/proc/sys/kernel/osrelease")?
                .map(|v| v.trim().to_string());
        }
        let mut versions: BTreeSet<String> = BTreeSet::new();
        for v in facts.list_dir("/lib/modules")? {
            // A kernel is installed when its directory has modules.dep or a kernel/
            // tree; leftovers of removed kernels (e.g. an empty updates/) are not.
            let base = format!("/lib/modules/{v}");
            let is_dir = |p: &str| -> Result<bool, FactError> {
                Ok(facts.stat(p)?.is_some_and(|m| m.kind == FileKind::Dir))
            };
            if is_dir(&base)?
                && (facts.stat(&format!("{base}/modules.dep"))?.is_some()
                    || is_dir(&format!("{base}/kernel"))?)
            {
                versions.insert(v);
            }
        }
        for v in versions {
            let base = format!("/lib/modules/{v}");
            let dep = facts.read(&format!("{base}/modules.dep"))?;
            k.versions.push((v.clone(), dep.is_some()));
            if let Some(dep) = dep {
                for line in dep.lines() {
                    let Some((obj, _)) = line.split_once(':') else {
                        continue;
                    };
                    let file = obj.rsplit('/').next().unwrap_or(obj);
                    let name = file.split(".ko").next().unwrap_or(file);
                    k.available
                        .entry(canonical(name))
                        .or_default()
                        .push((v.clone(), obj.to_string()));
                }
            }
            if let Some(b) = facts.read(&format!("{base}/modules.builtin"))? {
                for line in b.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    let file = line.rsplit('/').next().unwrap_or(line);
                    let name = file.split(".ko").next().unwrap_or(file);
                    k.builtin
                        .entry(canonical(name))
                        .or_default()
                        .push(v.clone());
                }
            }
        }
        Ok(k)
    })
}

/// Loaded modules from /proc/modules (live only).
fn loaded(facts: &Facts) -> Result<BTreeSet<String>, FactError> {
    let text = facts.read_runtime("/proc/modules")?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(canonical)
        .collect())
}

/// Whether `install` command `cmd` does nothing but exit.
pub fn is_noop_command(cmd: &str) -> bool {
    // The command runs through a shell: a ` #` starts a comment.
    let cmd = match cmd.find(" #").or_else(|| cmd.find("\t#")) {
        Some(i) => &cmd[..i],
        None => cmd,
    };
    NOOP_COMMANDS.contains(&cmd.trim())
}

/// Judges whether `module` can be loaded; `label` names it in the evidence.
fn judge_module(facts: &Facts, module: &str) -> Result<(bool, Vec<String>), FactError> {
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

    let k = kernels(facts);
    let k = k.as_ref().as_ref().map_err(Clone::clone)?;
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

    let dirs = modprobe_directives(facts);
    let dirs = dirs.as_ref().as_ref().map_err(Clone::clone)?;
    match dirs
        .iter()
        .find(|d| d.keyword == "install" && fnmatch(&d.module, &m))
    {
        Some(d) if is_noop_command(&d.rest) => ev.push(format!("{}: {}", d.source, d.text)),
        Some(d) => {
            failed = true;
            ev.push(format!(
                "{}: {} (the effective install command for {m} is not /bin/false or /bin/true)",
                d.source, d.text
            ));
        }
        None => {
            failed = true;
            ev.push(format!(
                "no `install {m} /bin/false` line in modprobe configuration ({})",
                MODPROBE_DIRS.join(", ")
            ));
        }
    }
    match dirs
        .iter()
        .find(|d| d.keyword == "blacklist" && d.module == m)
    {
        Some(d) => ev.push(format!("{}: {}", d.source, d.text)),
        None => {
            failed = true;
            ev.push(format!("no `blacklist {m}` line in modprobe configuration"));
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
    fn parses_directives_with_continuations_and_comments() {
        let text = "# install cramfs /bin/true\ninstall usb-storage \\\n  /bin/false\n  blacklist\tusb-storage # x\n\
                    options foo bar=1\ninstall\n";
        let d = parse_modprobe(text, "/etc/modprobe.d/a.conf");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].keyword, "install");
        assert_eq!(d[0].module, "usb_storage");
        assert_eq!(d[0].rest, "/bin/false");
        assert_eq!(d[0].source, "/etc/modprobe.d/a.conf:2");
        assert_eq!(d[1].keyword, "blacklist");
        assert_eq!(d[1].module, "usb_storage");
        assert_eq!(d[1].source, "/etc/modprobe.d/a.conf:4");
    }

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
    }

    #[test]
    fn globs() {
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
