//! Whether IPv6 is off on a host: the one definition every IPv6 rule uses (sysctl
//! keys, ip6tables, nftables, ufw), read once per scan. Live, the running kernel
//! decides (`ipv6.disable=1` on /proc/cmdline, the ipv6 module's parameter, no
//! /proc/sys/net/ipv6, or the sysctl switches at runtime and persisted alike);
//! offline, the boot loader's kernel command lines (GRUB's grub.cfg, else RHEL's
//! boot entries, else /etc/default/grub) or the persisted sysctl switches.

use std::collections::BTreeMap;

use crate::facts::bootargs::boot_entries;
use crate::facts::grub::{grub_config, GRUB_CFG};
use crate::facts::kv;
use crate::facts::sysctl::{kernel_int, persisted, persisted_value, runtime, Persisted};
use crate::facts::{Fact, FactError, Facts};

/// Why IPv6 is off on this host, if it is: the one definition every IPv6 rule uses
/// (sysctl keys, ip6tables, nftables). Unknown counts as on, so IPv6 rules are demanded
/// unless IPv6 is known to be off. A runtime-only switch does not count: it is gone at
/// the next boot, so the persisted configuration must agree.
pub fn ipv6_disabled(facts: &Facts) -> Result<Option<String>, FactError> {
    Ok((*facts.get::<Ipv6Disabled>()?).clone())
}

/// Why IPv6 is off, if it is, as a fact.
struct Ipv6Disabled;

impl Fact for Ipv6Disabled {
    type Value = Option<String>;
    fn read(facts: &Facts) -> Result<Self::Value, FactError> {
        let entries = persisted(facts)?;
        let keys = [
            "net.ipv6.conf.all.disable_ipv6",
            "net.ipv6.conf.default.disable_ipv6",
        ];
        let persisted_off = keys
            .iter()
            .all(|k| matches!(persisted_value(&entries, k), Persisted::Set { value, .. } if kernel_int(&value) == Some(1)));
        if facts.is_live() {
            if let Some(cmd) = facts.read_runtime("/proc/cmdline")? {
                let last = cmd
                    .split_whitespace()
                    .filter_map(|t| t.strip_prefix("ipv6.disable="))
                    .next_back();
                if last == Some("1") {
                    return Ok(Some("IPv6 is disabled: the running kernel was booted with ipv6.disable=1 (/proc/cmdline)".into()));
                }
            }
            if let Some(v) = facts.read_runtime("/sys/module/ipv6/parameters/disable")? {
                if v.trim() == "1" {
                    return Ok(Some(
                        "IPv6 is disabled: /sys/module/ipv6/parameters/disable = 1".into(),
                    ));
                }
            }
            if facts.stat("/proc/sys/net/ipv6")?.is_none() {
                return Ok(Some(
                    "IPv6 is disabled: /proc/sys/net/ipv6 does not exist in the running kernel"
                        .into(),
                ));
            }
            let runtime_off = keys
                .iter()
                .all(|k| matches!(runtime(facts, k), Ok(Some(v)) if v == "1"));
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
        if let Some(cfg) = grub_config(facts, GRUB_CFG)? {
            if !cfg.kernels.is_empty()
                && cfg
                    .kernels
                    .iter()
                    .all(|k| k.param("ipv6.disable") == Some("1"))
            {
                return Ok(Some(format!(
                    "IPv6 is disabled on the kernel command line: every kernel line of {} has ipv6.disable=1",
                    cfg.path
                )));
            }
        } else {
            // GRUB 2 as RHEL-family systems lay it out: the BLS entries (or grub2's
            // grub.cfg) are what boots; /etc/default/grub only reaches them when they are
            // regenerated, so it counts only when there are none.
            let (entries, origin) = boot_entries(facts)?;
            if !entries.is_empty() {
                if entries.iter().all(|e| e.param("ipv6.disable") == Some("1")) {
                    return Ok(Some(format!(
                        "IPv6 is disabled on the kernel command line: every boot entry of {origin} has ipv6.disable=1"
                    )));
                }
            } else if let Some(line) = grub_defaults_disable_ipv6(facts)? {
                return Ok(Some(format!(
                    "IPv6 is disabled on the kernel command line: {line}"
                )));
            }
        }
        if persisted_off {
            return Ok(Some("IPv6 is disabled: net.ipv6.conf.{all,default}.disable_ipv6 = 1 in sysctl configuration".into()));
        }
        Ok(None)
    }
}

/// The /etc/default/grub (or grub.d) line that puts ipv6.disable=1 on the kernel command
/// line, if any. Later settings of the same key win, as when grub-mkconfig sources them.
fn grub_defaults_disable_ipv6(facts: &Facts) -> Result<Option<String>, FactError> {
    let mut files = vec!["/etc/default/grub".to_string()];
    files.extend(facts.dir_files("/etc/default/grub.d", ".cfg")?);
    let mut last: BTreeMap<String, (bool, String)> = BTreeMap::new();
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
