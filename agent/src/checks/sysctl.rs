//! `sysctl.*` checks: kernel parameters (runtime and persisted) and core dump limits.
//!
//! Persisted kernel parameters are read as systemd-sysctl applies them at boot (see
//! [`crate::facts::sysctl`]): `*.conf` entries of the sysctl.d directories sorted by
//! name (an earlier directory hides, and a /dev/null link or an empty file masks,
//! the same name in a later one); /etc/sysctl.conf only through a link such as
//! procps's /etc/sysctl.d/99-sysctl.conf; for one key the last assignment wins; an
//! explicit assignment always beats a glob (`net.ipv4.conf.*.rp_filter`); a bare
//! `-key` line excludes the key from globs. `a/b/c` and `a.b.c` name the same key.
//! Evidence names the file that really sets the value (and the link it was reached
//! through), or says that no applied file sets it.
//!
//! With `ufw_sysctl`, the file ufw applies when it starts (`IPT_SYSCTL` in
//! /etc/default/ufw, normally /etc/ufw/sysctl.conf) also counts when ufw is switched
//! on: ufw-init runs `sysctl -p` on it after loading its rules, overriding what
//! systemd-sysctl set earlier in boot.
//!
//! Ubuntu's apport takes over crash handling when apport.service starts: it pipes
//! `kernel.core_pattern` to itself and sets `fs.suid_dumpable = 2`.

use serde::Deserialize;

use crate::checks::pkg::is_on;
use crate::facts::kv::{self, parse_ini, read_with_dropins};
use crate::facts::packages::packages;
use crate::facts::sysctl::{
    merge, parse_sysctl, persisted, persisted_value, runtime, unapplied_sysctl_conf, Entry,
    Persisted,
};
use crate::facts::units::unit;
use crate::facts::{strip_comment, FactError, Facts};
use crate::model::{Outcome, Status};

/// The `sysctl.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every key in `keys` has one of the `allowed` values both at runtime
    /// (/proc/sys, live only) and in the persisted configuration. IPv6 keys
    /// (`net.ipv6.*`) are not applicable when IPv6 is disabled.
    #[serde(rename = "sysctl.value")]
    Value {
        keys: Vec<String>,
        allowed: Vec<String>,
        /// Also read the sysctl file ufw applies when it is switched on.
        #[serde(default)]
        ufw_sysctl: bool,
    },
    /// pam_limits gives every user a hard core-file size limit of 0: the effective
    /// `*` entry for `hard`/`-` `core` in limits.conf and limits.d is 0, and no
    /// user or group entry raises it.
    #[serde(rename = "sysctl.core_limit")]
    CoreLimit {},
    /// When systemd-coredump is installed, coredump.conf (with drop-ins) sets
    /// `Storage=none` and `ProcessSizeMax=0`. Not installed: not applicable.
    #[serde(rename = "sysctl.systemd_coredump")]
    SystemdCoredump {},
    /// apport is not installed, or it is switched off: the last `enabled=` of
    /// /etc/default/apport is 0 (apport treats a missing file or line as enabled),
    /// apport.service (native, or generated from /etc/init.d/apport) is neither
    /// enabled nor running, and (live) kernel.core_pattern does not pipe to apport.
    #[serde(rename = "sysctl.apport_disabled")]
    ApportDisabled {},
    /// apport will not raise fs.suid_dumpable to 2 at boot: not installed, or its
    /// service is not enabled, or the service runs /etc/init.d/apport (which honours
    /// `enabled=0`) and apport is switched off in /etc/default/apport.
    #[serde(rename = "sysctl.apport_dumpable")]
    ApportDumpable {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Value {
                keys,
                allowed,
                ufw_sysctl,
            } => values(facts, keys, allowed, *ufw_sysctl),
            Check::CoreLimit {} => core_limit(facts),
            Check::SystemdCoredump {} => systemd_coredump(facts),
            Check::ApportDisabled {} => apport_disabled(facts),
            Check::ApportDumpable {} => apport_dumpable(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

fn value_ok(value: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        let a = a.trim();
        match (a.parse::<i64>(), value.parse::<i64>()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == value,
        }
    })
}

/// Why IPv6 is off on this host, if it is: the one definition every IPv6 rule uses
/// (sysctl keys, ip6tables, nftables). Unknown counts as on, so IPv6 rules are demanded
/// unless IPv6 is known to be off. A runtime-only switch does not count: it is gone at
/// the next boot, so the persisted configuration must agree.
pub fn ipv6_disabled(facts: &Facts) -> Result<Option<String>, FactError> {
    let r = facts.memo("ipv6-disabled", || -> Result<Option<String>, FactError> {
        let entries = persisted(facts);
        let entries = entries.as_ref().as_ref().map_err(Clone::clone)?;
        let keys = ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"];
        let persisted_off = keys
            .iter()
            .all(|k| matches!(persisted_value(entries, k), Persisted::Set { value, .. } if value == "1"));
        if facts.is_live() {
            if let Some(cmd) = facts.read_runtime("/proc/cmdline")? {
                let last = cmd.split_whitespace().filter_map(|t| t.strip_prefix("ipv6.disable=")).next_back();
                if last == Some("1") {
                    return Ok(Some("IPv6 is disabled: the running kernel was booted with ipv6.disable=1 (/proc/cmdline)".into()));
                }
            }
            if let Some(v) = facts.read_runtime("/sys/module/ipv6/parameters/disable")? {
                if v.trim() == "1" {
                    return Ok(Some("IPv6 is disabled: /sys/module/ipv6/parameters/disable = 1".into()));
                }
            }
            if facts.stat("/proc/sys/net/ipv6")?.is_none() {
                return Ok(Some("IPv6 is disabled: /proc/sys/net/ipv6 does not exist in the running kernel".into()));
            }
            let runtime_off = keys.iter().all(|k| matches!(runtime(facts, k), Ok(Some(v)) if v == "1"));
            if runtime_off && persisted_off {
                return Ok(Some(
                    "IPv6 is disabled: net.ipv6.conf.{all,default}.disable_ipv6 = 1 at runtime and in sysctl configuration"
                        .into(),
                ));
            }
            return Ok(None);
        }
        // Offline: the boot loader's generated configuration is what boots; without one,
        // the settings it is generated from.
        if let Some(cfg) = super::boot::grub_config(facts, super::boot::GRUB_CFG)? {
            if !cfg.kernels.is_empty() && cfg.kernels.iter().all(|k| k.param("ipv6.disable") == Some("1")) {
                return Ok(Some(format!(
                    "IPv6 is disabled on the kernel command line: every kernel line of {} has ipv6.disable=1",
                    cfg.path
                )));
            }
        } else if let Some(line) = grub_defaults_disable_ipv6(facts)? {
            return Ok(Some(format!("IPv6 is disabled on the kernel command line: {line}")));
        }
        if persisted_off {
            return Ok(Some("IPv6 is disabled: net.ipv6.conf.{all,default}.disable_ipv6 = 1 in sysctl configuration".into()));
        }
        Ok(None)
    });
    (*r).clone()
}

/// The /etc/default/grub (or grub.d) line that puts ipv6.disable=1 on the kernel command
/// line, if any. Later settings of the same key win, as when grub-mkconfig sources them.
fn grub_defaults_disable_ipv6(facts: &Facts) -> Result<Option<String>, FactError> {
    let mut files = vec!["/etc/default/grub".to_string()];
    files.extend(facts.dir_files("/etc/default/grub.d", ".cfg")?);
    let mut last: std::collections::BTreeMap<String, (bool, String)> = Default::default();
    for path in files {
        let Some(text) = facts.read(&path)? else {
            continue;
        };
        for s in kv::parse(&text, &path, kv::Separator::Equals) {
            if s.key == "GRUB_CMDLINE_LINUX" || s.key == "GRUB_CMDLINE_LINUX_DEFAULT" {
                let on = s
                    .value
                    .split_whitespace()
                    .filter_map(|w| w.strip_prefix("ipv6.disable="))
                    .next_back()
                    == Some("1");
                last.insert(s.key.clone(), (on, s.describe()));
            }
        }
    }
    Ok(last.into_values().find(|(on, _)| *on).map(|(_, line)| line))
}

/// The entries of the sysctl file ufw applies when it starts, when ufw is switched
/// on (installed, `ENABLED=yes`, ufw.service enabled or running); with the reason.
pub fn ufw_sysctl_entries(facts: &Facts) -> Result<Option<(String, Vec<Entry>)>, FactError> {
    let r = facts.memo(
        "ufw-sysctl-entries",
        || -> Result<Option<(String, Vec<Entry>)>, FactError> {
            let pk = packages(facts);
            let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
            if !pk.is_installed("ufw") {
                return Ok(None);
            }
            let conf = "/etc/ufw/ufw.conf";
            let Some(text) = facts.read(conf)? else {
                return Ok(None);
            };
            let settings = kv::parse(&text, conf, kv::Separator::Equals);
            let Some(enabled) = kv::last(&settings, "ENABLED", false) else {
                return Ok(None);
            };
            if !enabled.value.eq_ignore_ascii_case("yes") {
                return Ok(None);
            }
            let u = unit(facts, "ufw.service");
            let u = u.as_ref().as_ref().map_err(Clone::clone)?;
            if !is_on(u) {
                return Ok(None);
            }
            let defaults = "/etc/default/ufw";
            let file = match facts.read(defaults)? {
                Some(t) => {
                    let d = kv::parse(&t, defaults, kv::Separator::Equals);
                    match kv::last(&d, "IPT_SYSCTL", false) {
                        Some(s) => s.value.clone(),
                        None => return Ok(None),
                    }
                }
                None => return Ok(None),
            };
            if file.is_empty() {
                return Ok(None);
            }
            let entries = match facts.read(&file)? {
                Some(t) => parse_sysctl(&t, &file),
                None => return Ok(None),
            };
            let why = format!(
                "ufw is switched on ({}) and applies {file} (IPT_SYSCTL in {defaults}) when it starts, after sysctl.d",
                enabled.describe()
            );
            Ok(Some((why, merge(entries))))
        },
    );
    (*r).clone()
}

fn values(
    facts: &Facts,
    keys: &[String],
    allowed: &[String],
    ufw_sysctl: bool,
) -> Result<Outcome, FactError> {
    let entries = persisted(facts);
    let entries = entries.as_ref().as_ref().map_err(Clone::clone)?;
    let ufw = if ufw_sysctl {
        ufw_sysctl_entries(facts)?
    } else {
        None
    };
    let want = allowed.join(" or ");
    let mut parts = Vec::new();
    for key in keys {
        let key = key.trim();
        if key.starts_with("net.ipv6.") {
            if let Some(why) = ipv6_disabled(facts)? {
                parts.push(Outcome::not_applicable(format!("{key}: {why}")));
                continue;
            }
        }
        let mut failures = Vec::new();
        let mut found = Vec::new();
        if facts.is_live() {
            match runtime(facts, key)? {
                Some(v) if value_ok(&v, allowed) => {
                    found.push(format!("{key} = {v} at runtime (/proc/sys)"))
                }
                Some(v) => failures.push(format!(
                    "{key} = {v} at runtime (/proc/sys), expected {want}"
                )),
                None => failures.push(format!(
                    "{key} does not exist in the running kernel (/proc/sys)"
                )),
            }
        }
        let unapplied = unapplied_sysctl_conf(facts, key)?;
        let base = persisted_value(entries, key);
        let (effective, note) = match &ufw {
            Some((why, ufw_entries)) => match persisted_value(ufw_entries, key) {
                p @ Persisted::Set { .. } => {
                    let overridden = match &base {
                        Persisted::Set { value, source, .. } => {
                            format!("; it overrides {source}: {key} = {value}")
                        }
                        Persisted::Unset(_) => String::new(),
                    };
                    (p, Some(format!("{why}{overridden}")))
                }
                Persisted::Unset(_) => (base, None),
            },
            None => (base, None),
        };
        match effective {
            Persisted::Set {
                value,
                source,
                glob,
            } => {
                let via = glob.map(|g| format!(" (through {g})")).unwrap_or_default();
                if value_ok(&value, allowed) {
                    found.push(format!("{source}: {key} = {value}{via}"));
                    found.extend(unapplied);
                } else {
                    failures.push(format!("{source}: {key} = {value}{via}, expected {want}"));
                    failures.extend(unapplied);
                }
                found.extend(note);
            }
            Persisted::Unset(why) => {
                failures.push(format!(
                    "{key} is not set in any sysctl configuration file that systemd-sysctl applies (expected {want})"
                ));
                failures.extend(why);
                failures.extend(unapplied);
            }
        }
        parts.push(Outcome::from_findings(failures, found));
    }
    if parts.is_empty() {
        return Ok(Outcome::error("no kernel parameters named by the check"));
    }
    let mut out = Outcome::all(parts);
    if !facts.is_live() && out.status != Status::NotApplicable {
        out.evidence
            .push("runtime values (/proc/sys) not examined: offline root".into());
    }
    Ok(out)
}

/// A pam_limits line that sets the hard core limit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CoreLine {
    domain: String,
    value: String,
    source: String,
}

fn core_limit(facts: &Facts) -> Result<Outcome, FactError> {
    let mut files = vec!["/etc/security/limits.conf".to_string()];
    files.extend(facts.dir_files("/etc/security/limits.d", ".conf")?);
    let mut lines = Vec::new();
    for path in &files {
        let Some(text) = facts.read(path)? else {
            continue;
        };
        lines.extend(parse_core_lines(&text, path));
    }
    let wildcard = lines.iter().rev().find(|l| l.domain == "*");
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match wildcard {
        Some(l) if is_zero(&l.value) => {
            found.push(format!("{}: * hard core {}", l.source, l.value))
        }
        Some(l) => failures.push(format!(
            "{}: * hard core {} (expected 0)",
            l.source, l.value
        )),
        None => failures.push(format!(
            "no `* hard core 0` entry in {} or /etc/security/limits.d/*.conf",
            files[0]
        )),
    }
    for l in lines
        .iter()
        .filter(|l| l.domain != "*" && !is_zero(&l.value))
    {
        failures.push(format!(
            "{}: {} hard core {} raises the limit for {}",
            l.source, l.domain, l.value, l.domain
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

fn is_zero(v: &str) -> bool {
    v.parse::<u64>() == Ok(0)
}

fn parse_core_lines(text: &str, path: &str) -> Vec<CoreLine> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let f: Vec<&str> = strip_comment(raw).split_whitespace().collect();
        if f.len() != 4 {
            continue;
        }
        if f[2].eq_ignore_ascii_case("core") && (f[1] == "hard" || f[1] == "-") {
            out.push(CoreLine {
                domain: f[0].to_string(),
                value: f[3].to_string(),
                source: format!("{path}:{}", n + 1),
            });
        }
    }
    out
}

fn systemd_coredump(facts: &Facts) -> Result<Outcome, FactError> {
    let pk = packages(facts);
    let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
    if !pk.is_installed("systemd-coredump") {
        return Ok(Outcome::not_applicable(pk.describe("systemd-coredump")));
    }
    let files = read_with_dropins(
        facts,
        &[
            "/etc/systemd/coredump.conf",
            "/run/systemd/coredump.conf",
            "/usr/local/lib/systemd/coredump.conf",
            "/usr/lib/systemd/coredump.conf",
        ],
        &[
            "/etc/systemd/coredump.conf.d",
            "/run/systemd/coredump.conf.d",
            "/usr/local/lib/systemd/coredump.conf.d",
            "/usr/lib/systemd/coredump.conf.d",
        ],
        ".conf",
    )?;
    let mut settings = Vec::new();
    for (path, text) in &files {
        settings.extend(parse_ini(text, path, "Coredump"));
    }
    let mut failures = Vec::new();
    let mut found = vec![pk.describe("systemd-coredump")];
    for (key, default, ok) in [
        (
            "Storage",
            "external",
            (|v: &str| v == "none") as fn(&str) -> bool,
        ),
        ("ProcessSizeMax", "2G", |v: &str| {
            let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
            !digits.is_empty() && digits.parse::<u64>() == Ok(0)
        }),
    ] {
        match settings.iter().rev().find(|s| s.key == key) {
            Some(s) if ok(&s.value) => found.push(s.describe()),
            Some(s) => failures.push(format!(
                "{} (expected {})",
                s.describe(),
                if key == "Storage" { "none" } else { "0" }
            )),
            None => failures.push(format!(
                "{key} is not set in coredump.conf; default {default}"
            )),
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

// ---------------------------------------------------------------------------------
// apport

const APPORT_DEFAULTS: &str = "/etc/default/apport";
const APPORT_INIT: &str = "/etc/init.d/apport";

/// What is known about apport on the root.
#[derive(Debug, Clone)]
pub struct Apport {
    pub installed: bool,
    pub package: String,
    /// The effective `enabled=` of /etc/default/apport is 0.
    pub switched_off: bool,
    pub setting: String,
    /// apport.service starts at boot (native unit enabled, or rc links of the init
    /// script), and is not masked.
    pub service_enabled: bool,
    /// Live: the service has run in this boot.
    pub service_active: Option<bool>,
    /// The service runs /etc/init.d/apport, which honours `enabled=0`.
    pub honours_setting: bool,
    pub service: Vec<String>,
    /// Live: kernel.core_pattern, when it pipes crashes to apport.
    pub core_pattern: Option<String>,
}

/// The last `enabled=` of /etc/default/apport as the init script sources it.
fn apport_setting(facts: &Facts) -> Result<(bool, String), FactError> {
    let Some(text) = facts.read(APPORT_DEFAULTS)? else {
        return Ok((
            false,
            format!("{APPORT_DEFAULTS} does not exist: apport treats that as enabled"),
        ));
    };
    let settings = kv::parse(&text, APPORT_DEFAULTS, kv::Separator::Equals);
    Ok(match kv::last(&settings, "enabled", false) {
        Some(s) => (s.value.trim() == "0", s.describe()),
        None => (
            false,
            format!("{APPORT_DEFAULTS} has no enabled= line: apport's default is enabled"),
        ),
    })
}

/// Reads apport's package, setting, service and (live) crash handler.
pub fn apport(facts: &Facts) -> Result<Apport, FactError> {
    let pk = packages(facts);
    let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
    let (switched_off, setting) = apport_setting(facts)?;
    let u = unit(facts, "apport.service");
    let u = u.as_ref().as_ref().map_err(Clone::clone)?;
    let mut service = Vec::new();
    let native = u.path.is_some() && !u.masked;
    let (service_enabled, honours_setting) = if u.masked {
        service.push(u.describe());
        (false, true)
    } else if native {
        let path = u.path.clone().unwrap_or_default();
        let text = facts.read(&path)?.unwrap_or_default();
        let runs_init = text
            .lines()
            .any(|l| l.trim_start().starts_with("ExecStart") && l.contains(APPORT_INIT));
        service.push(u.describe());
        (u.enabled(), runs_init)
    } else if facts.stat(APPORT_INIT)?.is_some() {
        // No unit file: systemd generates apport.service from the init script and
        // starts it when an rc link S??apport exists.
        let mut links = Vec::new();
        for level in ["2", "3", "4", "5"] {
            let dir = format!("/etc/rc{level}.d");
            for name in facts.list_dir(&dir)? {
                let b = name.as_bytes();
                let is_start = b.len() == 9
                    && b[0] == b'S'
                    && b[1].is_ascii_digit()
                    && b[2].is_ascii_digit()
                    && &b[3..] == b"apport";
                if is_start {
                    links.push(format!("{dir}/{name}"));
                }
            }
        }
        service.push(if links.is_empty() {
            format!("{APPORT_INIT} exists with no start links in /etc/rc[2-5].d: apport.service is not enabled")
        } else {
            format!(
                "{APPORT_INIT} is started at boot through {} (apport.service generated from the init script)",
                links.join(", ")
            )
        });
        (!links.is_empty(), true)
    } else {
        service.push(u.describe());
        (false, true)
    };
    let mut core_pattern = None;
    if facts.is_live() {
        if let Some(p) = facts.read_runtime("/proc/sys/kernel/core_pattern")? {
            let p = p.trim().to_string();
            if p.starts_with('|') && p.contains("apport") {
                core_pattern = Some(p);
            }
        }
    }
    Ok(Apport {
        installed: pk.is_installed("apport"),
        package: pk.describe("apport"),
        switched_off,
        setting,
        service_enabled,
        service_active: if u.masked { Some(false) } else { u.active },
        honours_setting,
        service,
        core_pattern,
    })
}

fn apport_disabled(facts: &Facts) -> Result<Outcome, FactError> {
    let a = apport(facts)?;
    if !a.installed && a.core_pattern.is_none() {
        return Ok(Outcome::pass(a.package));
    }
    let mut failures = Vec::new();
    let mut found = vec![a.package.clone()];
    if a.switched_off {
        found.push(a.setting.clone());
    } else {
        failures.push(format!("{}: apport is switched on", a.setting));
    }
    let svc = a.service.join("; ");
    if a.service_enabled {
        failures.push(format!("{svc}: apport.service starts at boot"));
    } else if a.service_active == Some(true) {
        failures.push(format!("{svc}: apport.service is running"));
    } else {
        found.push(svc);
    }
    match &a.core_pattern {
        Some(p) => failures.push(format!(
            "/proc/sys/kernel/core_pattern = {p}: crashes are handed to apport now"
        )),
        None if facts.is_live() => {
            found.push("/proc/sys/kernel/core_pattern does not pipe to apport".into())
        }
        None => found.push(
            "runtime state (apport.service running, kernel.core_pattern) not examined: offline root"
                .into(),
        ),
    }
    Ok(Outcome::from_findings(failures, found))
}

fn apport_dumpable(facts: &Facts) -> Result<Outcome, FactError> {
    let a = apport(facts)?;
    if !a.installed {
        return Ok(Outcome::pass(format!(
            "{}: nothing raises fs.suid_dumpable at start",
            a.package
        )));
    }
    let svc = a.service.join("; ");
    if !a.service_enabled {
        return Ok(Outcome::pass(format!(
            "{svc}: apport does not start at boot, so it does not set fs.suid_dumpable"
        )));
    }
    if a.honours_setting && a.switched_off {
        return Ok(Outcome::pass(format!(
            "{svc}; {}: the init script exits without touching fs.suid_dumpable",
            a.setting
        )));
    }
    let why = if a.honours_setting {
        format!("{}, so the init script", a.setting)
    } else {
        "the service runs apport --start, which does not read /etc/default/apport, and".into()
    };
    Ok(Outcome::fail(format!(
        "{svc}: {why} sets fs.suid_dumpable = 2 at boot (and pipes core dumps to apport)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::sysctl::{dotted, to_slash};

    #[test]
    fn normalises_keys() {
        assert_eq!(to_slash("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(to_slash("net/ipv4/ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            to_slash("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            dotted("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
    }

    fn merged(files: &[(&str, &str)]) -> Vec<Entry> {
        merge(files.iter().flat_map(|(p, t)| parse_sysctl(t, p)))
    }

    #[test]
    fn explicit_beats_glob_and_exclusions_block_globs() {
        let e = merged(&[
            (
                "/usr/lib/sysctl.d/50-default.conf",
                "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n",
            ),
            ("/etc/sysctl.d/60-x.conf", "net.ipv4.conf.default.rp_filter=1 # strict\n"),
        ]);
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.default.rp_filter"),
            Persisted::Set { ref value, .. } if value == "1")
        );
        assert!(matches!(
            persisted_value(&e, "net.ipv4.conf.all.rp_filter"),
            Persisted::Unset(Some(_))
        ));
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.eth0.rp_filter"),
            Persisted::Set { ref value, glob: Some(_), .. } if value == "2")
        );
        let e = merged(&[(
            "/etc/sysctl.d/a.conf",
            "net.ipv4.conf.*.send_redirects = 0\n",
        )]);
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.all.send_redirects"),
            Persisted::Set { ref value, .. } if value == "0")
        );
        assert!(matches!(
            persisted_value(&e, "net.ipv4.conf.all.x.send_redirects"),
            Persisted::Unset(None)
        ));
    }

    #[test]
    fn later_assignment_wins() {
        let e = merged(&[
            ("/a.conf", "kernel.randomize_va_space = 2\n"),
            ("/b.conf", "kernel/randomize_va_space=0\n"),
        ]);
        assert!(matches!(persisted_value(&e, "kernel.randomize_va_space"),
            Persisted::Set { ref value, ref source, .. } if value == "0" && source == "/b.conf:1"));
    }

    use crate::checks::test_tree as tree;

    const APPORT_PKG: (&str, &str) = (
        "/var/lib/dpkg/status",
        "Package: apport\nStatus: install ok installed\nVersion: 2.20.11\n\nPackage: ufw\nStatus: install ok installed\nVersion: 0.36\n",
    );

    #[test]
    fn apport_through_the_init_script_honours_enabled() {
        let init = ("/etc/init.d/apport", "#!/bin/sh\n");
        let rc = ("/etc/rc2.d/S01apport", "../init.d/apport");
        let on = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=1\n")],
            &[rc],
        );
        let facts = Facts::new(on.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Fail);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Fail);
        let off = tree(
            &[
                APPORT_PKG,
                init,
                ("/etc/default/apport", "enabled=1\nenabled=\"0\"\n"),
            ],
            &[rc],
        );
        let facts = Facts::new(off.path(), false);
        let o = Check::ApportDisabled {}.eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(o.evidence[0].contains("S01apport"), "{:?}", o.evidence);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Pass);
        let gone = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=0\n")],
            &[],
        );
        let facts = Facts::new(gone.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
        // Odd names in the rc directories are not start links (and do not panic).
        let odd = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=0\n")],
            &[
                ("/etc/rc2.d/S1\u{e9}apport", "../init.d/apport"),
                ("/etc/rc3.d/K01apport", "../init.d/apport"),
            ],
        );
        let facts = Facts::new(odd.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
    }

    #[test]
    fn apport_native_unit_ignores_the_setting() {
        let unit = (
            "/lib/systemd/system/apport.service",
            "[Service]\nExecStart=/usr/share/apport/apport --start\n[Install]\nWantedBy=multi-user.target\n",
        );
        let wants = (
            "/etc/systemd/system/multi-user.target.wants/apport.service",
            "/lib/systemd/system/apport.service",
        );
        let t = tree(
            &[APPORT_PKG, unit, ("/etc/default/apport", "enabled=0\n")],
            &[wants],
        );
        let facts = Facts::new(t.path(), false);
        let o = Check::ApportDumpable {}.eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(o.evidence[0].contains("apport --start"));
        let masked = tree(
            &[APPORT_PKG, unit, ("/etc/default/apport", "enabled=0\n")],
            &[("/etc/systemd/system/apport.service", "/dev/null")],
        );
        let facts = Facts::new(masked.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Pass);
    }

    #[test]
    fn ufw_sysctl_file_overrides_when_ufw_is_on() {
        let files = [
            APPORT_PKG,
            (
                "/lib/systemd/system/ufw.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            ("/etc/ufw/ufw.conf", "ENABLED=yes\n"),
            ("/etc/default/ufw", "IPT_SYSCTL=/etc/ufw/sysctl.conf\n"),
            ("/etc/ufw/sysctl.conf", "net/ipv4/conf/all/log_martians=0\n"),
            (
                "/etc/sysctl.d/60-net.conf",
                "net.ipv4.conf.all.log_martians = 1\n",
            ),
        ];
        let wants = (
            "/etc/systemd/system/multi-user.target.wants/ufw.service",
            "/lib/systemd/system/ufw.service",
        );
        let t = tree(&files, &[wants]);
        let facts = Facts::new(t.path(), false);
        let check = |ufw_sysctl| Check::Value {
            keys: vec!["net.ipv4.conf.all.log_martians".into()],
            allowed: vec!["1".into()],
            ufw_sysctl,
        };
        let o = check(true).eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(
            o.evidence[0].starts_with("/etc/ufw/sysctl.conf:1"),
            "{:?}",
            o.evidence
        );
        assert!(o
            .evidence
            .iter()
            .any(|e| e.contains("overrides /etc/sysctl.d/60-net.conf:1")));
        assert_eq!(check(false).eval(&facts).status, Status::Pass);
        // Switched off: ufw does not apply its file.
        std::fs::write(t.path().join("etc/ufw/ufw.conf"), "ENABLED=no\n").unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(check(true).eval(&facts).status, Status::Pass);
    }

    #[test]
    fn core_lines() {
        let l = parse_core_lines(
            "* hard core 0\n*\tsoft core 0\n@dev - core unlimited\nbad line\n",
            "/l",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].domain, "@dev");
        assert!(is_zero("0") && !is_zero("unlimited"));
    }
}
