//! Which host firewall a system uses: ufw, nftables, iptables with
//! iptables-persistent, or firewalld, each judged by what the system is configured
//! to start at boot (the `firewall.*` checks' module documents the rules). Read
//! once per scan.
//!
//! A firewall is *chosen* when the system is configured to start it, and *in use*
//! when it is chosen and its package is installed (for ufw, also switched on).

use std::sync::Arc;

use serde::Deserialize;

use crate::facts::iptables as ipt;
use crate::facts::packages::packages;
use crate::facts::ufw::{self, UFW_CONF};
use crate::facts::units::unit;
use crate::facts::{Fact, FactError, Facts};

/// A host firewall this benchmark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firewall {
    Ufw,
    Nftables,
    Iptables,
    /// firewalld (RHEL, Amazon Linux); not one of the Debian benchmarks' firewalls.
    Firewalld,
}

impl Firewall {
    /// The firewalls of the Debian and Ubuntu benchmarks (what `firewall.single` counts).
    pub const ALL: [Firewall; 3] = [Firewall::Ufw, Firewall::Nftables, Firewall::Iptables];

    /// The firewall's name in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Firewall::Ufw => "ufw",
            Firewall::Nftables => "nftables",
            Firewall::Iptables => "iptables",
            Firewall::Firewalld => "firewalld",
        }
    }
}

/// Whether one firewall is chosen and installed, and why.
#[derive(Debug, Clone, Default)]
pub struct FwState {
    /// The system is configured to start it.
    pub chosen: bool,
    /// Its package is installed.
    pub installed: bool,
    /// Chosen, installed and set to filter: for ufw, `ENABLED=yes` *and* ufw.service
    /// enabled or running (either alone loads no rules at boot).
    pub active: bool,
    pub evidence: Vec<String>,
}

impl FwState {
    /// Whether this firewall filters traffic (what 4.1.1 counts).
    pub fn in_use(&self) -> bool {
        self.active
    }
}

/// What was found about every covered firewall.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub ufw: FwState,
    pub nftables: FwState,
    pub iptables: FwState,
    pub firewalld: FwState,
    /// Firewalls the Debian benchmarks do not cover that are enabled (firewalld).
    pub others: Vec<String>,
    /// `ENABLED=yes` in /etc/ufw/ufw.conf: ufw was switched on (`ufw enable`).
    pub ufw_switched_on: bool,
}

impl Detection {
    pub fn state(&self, fw: Firewall) -> &FwState {
        match fw {
            Firewall::Ufw => &self.ufw,
            Firewall::Nftables => &self.nftables,
            Firewall::Iptables => &self.iptables,
            Firewall::Firewalld => &self.firewalld,
        }
    }
    pub fn in_use(&self) -> Vec<Firewall> {
        Firewall::ALL
            .into_iter()
            .filter(|f| self.state(*f).in_use())
            .collect()
    }
    /// The firewalls configured to start, firewalld included.
    pub fn chosen(&self) -> Vec<Firewall> {
        Firewall::ALL
            .into_iter()
            .chain([Firewall::Firewalld])
            .filter(|f| self.state(*f).chosen)
            .collect()
    }
}

/// Which firewalls are chosen and installed, read once per scan.
pub fn detection(facts: &Facts) -> Result<Arc<Detection>, FactError> {
    facts.get::<Detection>()
}

impl Fact for Detection {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let pk = packages(facts)?;
        let unit_on = |name: &str| -> Result<(bool, String), FactError> {
            let u = unit(facts, name)?;
            Ok((u.exists() && u.in_use(), u.describe()))
        };
        let mut d = Detection::default();

        d.ufw.installed = pk.is_installed("ufw");
        d.ufw.evidence.push(pk.describe("ufw"));
        let enabled = ufw::setting(facts, UFW_CONF, "ENABLED")?;
        let conf_on = enabled
            .as_ref()
            .is_some_and(|s| s.value.eq_ignore_ascii_case("yes"));
        d.ufw.evidence.push(match &enabled {
            Some(s) => s.describe(),
            None if facts.read(UFW_CONF)?.is_none() => format!("{UFW_CONF} not found"),
            None => format!("{UFW_CONF}: ENABLED not set; default no"),
        });
        let (on, desc) = unit_on("ufw.service")?;
        d.ufw.evidence.push(desc);
        d.ufw.chosen = conf_on || on;
        d.ufw_switched_on = conf_on;
        d.ufw.active = d.ufw.installed && conf_on && on;

        d.nftables.installed = pk.is_installed("nftables");
        d.nftables.evidence.push(pk.describe("nftables"));
        let (on, desc) = unit_on("nftables.service")?;
        d.nftables.evidence.push(desc);
        d.nftables.chosen = on;
        d.nftables.active = d.nftables.installed && on;

        d.iptables.installed = pk.is_installed("iptables-persistent");
        d.iptables.evidence.push(pk.describe("iptables-persistent"));
        let (on, desc) = unit_on("netfilter-persistent.service")?;
        d.iptables.evidence.push(desc);
        let mut rules = false;
        for p in [ipt::RULES_V4, ipt::RULES_V6] {
            let exists = facts.stat(p)?.is_some();
            rules |= exists;
            d.iptables.evidence.push(format!(
                "{p} {}",
                if exists { "exists" } else { "not found" }
            ));
        }
        d.iptables.chosen = on && rules;
        d.iptables.active = d.iptables.installed && d.iptables.chosen;

        d.firewalld.installed = pk.is_installed("firewalld");
        d.firewalld.evidence.push(pk.describe("firewalld"));
        let (on, desc) = unit_on("firewalld.service")?;
        d.firewalld.evidence.push(desc.clone());
        d.firewalld.chosen = on;
        d.firewalld.active = d.firewalld.installed && on;
        if on {
            d.others.push(format!(
                "{desc}: firewalld is not one of the firewalls this benchmark covers"
            ));
        }
        Ok(d)
    }
}
