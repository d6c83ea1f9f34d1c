//! ufw's configuration as ufw reads it: its `KEY=value` files (/etc/ufw/ufw.conf,
//! /etc/default/ufw), the rules files it loads (`/etc/ufw/*.rules`, iptables-save
//! format, each found in /etc/ufw or else /lib/ufw), and the sysctl file it applies
//! when it starts (`IPT_SYSCTL`).

use std::sync::Arc;

use crate::facts::iptables as ipt;
use crate::facts::kv::{self, Setting};
use crate::facts::packages::packages;
use crate::facts::sysctl::{merge, parse_sysctl, Entry};
use crate::facts::units::unit;
use crate::facts::{Fact, FactError, Facts};

/// ufw's switch (`ENABLED=yes` after `ufw enable`).
pub const UFW_CONF: &str = "/etc/ufw/ufw.conf";
/// ufw's defaults: policies, `IPV6`, `IPT_SYSCTL`.
pub const UFW_DEFAULTS: &str = "/etc/default/ufw";

/// The last setting of `key` in ufw's `KEY=value` file at `path`, if any.
pub fn setting(facts: &Facts, path: &str, key: &str) -> Result<Option<Setting>, FactError> {
    let Some(text) = facts.read(path)? else {
        return Ok(None);
    };
    let s = kv::parse(&text, path, kv::Separator::Equals);
    Ok(kv::last(&s, key, false).cloned())
}

/// ufw's IPv4 and IPv6 rulesets, and the files read.
pub type UfwRules = (ipt::Ruleset, ipt::Ruleset, Vec<String>);

/// ufw's rules files: (IPv4 ruleset, IPv6 ruleset, files read).
pub fn rules(facts: &Facts) -> Result<Arc<UfwRules>, FactError> {
    facts.get::<UfwRulesFact>()
}

/// ufw's rules files, as a fact.
struct UfwRulesFact;

impl Fact for UfwRulesFact {
    type Value = UfwRules;
    fn read(facts: &Facts) -> Result<UfwRules, FactError> {
        let mut read = Vec::new();
        let mut load = |names: [&str; 3]| -> Result<ipt::Ruleset, FactError> {
            let mut rs = ipt::Ruleset::default();
            for n in names {
                for dir in ["/etc/ufw", "/lib/ufw"] {
                    let p = format!("{dir}/{n}");
                    if let Some(t) = facts.read(&p)? {
                        let part = ipt::parse(&t, &p);
                        rs.chains.extend(part.chains);
                        rs.rules.extend(part.rules);
                        read.push(p);
                        break;
                    }
                }
            }
            Ok(rs)
        };
        let v4 = load(["before.rules", "user.rules", "after.rules"])?;
        let v6 = load(["before6.rules", "user6.rules", "after6.rules"])?;
        Ok((v4, v6, read))
    }
}

/// The entries of the sysctl file ufw applies when it starts, when ufw is switched
/// on (installed, `ENABLED=yes`, ufw.service enabled or running); with the reason.
pub fn sysctl_entries(facts: &Facts) -> Result<Option<(String, Vec<Entry>)>, FactError> {
    Ok((*facts.get::<UfwSysctlEntries>()?).clone())
}

/// The entries of ufw's sysctl file when ufw is switched on, as a fact.
struct UfwSysctlEntries;

impl Fact for UfwSysctlEntries {
    type Value = Option<(String, Vec<Entry>)>;
    fn read(facts: &Facts) -> Result<Self::Value, FactError> {
        let pk = packages(facts)?;
        if !pk.is_present("ufw") {
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
        let u = unit(facts, "ufw.service")?;
        if !u.in_use() {
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
    }
}
