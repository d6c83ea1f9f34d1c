//! `firewall.*` checks: which host firewall is in use (ufw, nftables or iptables with
//! iptables-persistent) and what its persisted rules say.
//!
//! No command is run and no netlink socket opened, so the ruleset loaded in the
//! kernel is never read. Each firewall is judged by the configuration it loads at
//! boot: ufw's `/etc/ufw/*.rules` and `/etc/default/ufw`, the nftables file that
//! `nftables.service` loads (`/etc/nftables.conf`), and iptables-persistent's
//! `/etc/iptables/rules.v4`/`rules.v6`; the evidence says so. Rules about open ports
//! compare those files with the sockets listening on a live system.
//!
//! A firewall is *chosen* when the system is configured to start it, and *in use*
//! when it is chosen and its package is installed. Chosen means:
//! - ufw: `ENABLED=yes` in /etc/ufw/ufw.conf, or ufw.service enabled or running;
//! - nftables: nftables.service enabled or running;
//! - iptables: netfilter-persistent.service enabled or running, and
//!   /etc/iptables/rules.v4 or rules.v6 exists;
//!
//! and the packages are ufw, nftables and iptables-persistent. Checks about one
//! firewall are not applicable unless it is chosen, so that a chosen firewall whose
//! package is missing is reported by its own rules rather than hidden; 4.1.1 counts
//! the firewalls in use.
//!
//! Where ufw is the distribution's default firewall (Ubuntu installs it everywhere
//! and enables ufw.service whether or not the firewall is switched on), ufw checks
//! take `ufw_default = true`: ufw's rules then apply when `ENABLED=yes`, or when
//! neither nftables nor iptables is chosen (so a host with no firewall at all fails
//! them), and not when ufw is merely preinstalled next to another chosen firewall.

mod ipt;
mod nft;

use std::sync::Arc;

use serde::Deserialize;

use crate::checks::net::{listeners, Listener, Proto};
use crate::checks::pkg::is_on;
use crate::facts::kv::{self, Setting};
use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::{sysctl, FactError, Facts};
use crate::model::{Outcome, Status};

/// A host firewall this benchmark covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Firewall {
    Ufw,
    Nftables,
    Iptables,
}

impl Firewall {
    const ALL: [Firewall; 3] = [Firewall::Ufw, Firewall::Nftables, Firewall::Iptables];

    fn name(self) -> &'static str {
        match self {
            Firewall::Ufw => "ufw",
            Firewall::Nftables => "nftables",
            Firewall::Iptables => "iptables",
        }
    }
}

/// An IP version, for rules that exist once for IPv4 and once for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    Ipv4,
    Ipv6,
}

/// The `firewall.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Exactly one of ufw, nftables and iptables is in use.
    #[serde(rename = "firewall.single")]
    Single {},
    /// Evaluates `check` when `firewall` is the chosen one (configured to start);
    /// not applicable otherwise.
    #[serde(rename = "firewall.when_in_use")]
    WhenInUse {
        firewall: Firewall,
        check: Box<super::Check>,
        /// ufw only: ufw is the distribution's default firewall (see the module docs).
        #[serde(default)]
        ufw_default: bool,
    },
    /// `firewall` is not configured to start (it would conflict with the chosen one).
    #[serde(rename = "firewall.inactive")]
    Inactive { firewall: Firewall },
    /// ufw is switched on: `ENABLED=yes` and ufw.service enabled (and, live, running).
    #[serde(rename = "firewall.ufw_enabled")]
    UfwEnabled {
        /// ufw is the distribution's default firewall (see the module docs).
        #[serde(default)]
        ufw_default: bool,
    },
    /// Default-deny policies: ufw incoming/outgoing/routed deny or reject (routed may
    /// be disabled); nftables input/forward/output base chains with policy drop for
    /// IPv4 and IPv6; iptables INPUT/FORWARD/OUTPUT policy DROP for `family`.
    #[serde(rename = "firewall.default_deny")]
    DefaultDeny {
        firewall: Firewall,
        family: Option<IpFamily>,
        /// ufw only: ufw is the distribution's default firewall (see the module docs).
        #[serde(default)]
        ufw_default: bool,
    },
    /// Loopback traffic is accepted on lo, and traffic claiming a loopback source
    /// (127.0.0.0/8, ::1) arriving elsewhere is dropped.
    #[serde(rename = "firewall.loopback")]
    Loopback {
        firewall: Firewall,
        family: Option<IpFamily>,
        /// ufw only: ufw is the distribution's default firewall (see the module docs).
        #[serde(default)]
        ufw_default: bool,
    },
    /// Every port listening on a non-loopback address has a rule naming it
    /// (live only; not applicable on an offline root).
    #[serde(rename = "firewall.open_ports")]
    OpenPorts {
        firewall: Firewall,
        family: Option<IpFamily>,
        /// ufw only: ufw is the distribution's default firewall (see the module docs).
        #[serde(default)]
        ufw_default: bool,
    },
    /// The nftables ruleset defines at least one table.
    #[serde(rename = "firewall.nft_tables")]
    NftTables {},
    /// The nftables ruleset has a filter base chain on each of `hooks`.
    #[serde(rename = "firewall.nft_base_chains")]
    NftBaseChains { hooks: Vec<String> },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        if let Some((fw, ufw_default)) = self.gated_on() {
            if let Some(na) = gate(facts, fw, ufw_default)? {
                return Ok(na);
            }
        }
        Ok(match self {
            Check::Single {} => single(facts)?,
            Check::WhenInUse { check, .. } => check.eval(facts),
            Check::Inactive { firewall } => {
                let d = detection(facts);
                let d = d.as_ref().as_ref().map_err(Clone::clone)?;
                let st = d.state(*firewall);
                let mut ev = st.evidence.clone();
                if st.chosen {
                    ev.insert(
                        0,
                        format!(
                            "{} is also configured to start and would compete with the chosen firewall",
                            firewall.name()
                        ),
                    );
                    Outcome::new(Status::Fail, ev)
                } else {
                    ev.insert(
                        0,
                        format!(
                            "{} is not in use (not configured to start)",
                            firewall.name()
                        ),
                    );
                    Outcome::new(Status::Pass, ev)
                }
            }
            Check::UfwEnabled { .. } => ufw_enabled(facts)?,
            Check::DefaultDeny {
                firewall, family, ..
            } => match firewall {
                Firewall::Ufw => ufw_default_deny(facts)?,
                Firewall::Nftables => nft_default_deny(facts)?,
                Firewall::Iptables => match ipt_family(facts, *family)? {
                    Err(o) => o,
                    Ok(f) => ipt_default_deny(facts, f)?,
                },
            },
            Check::Loopback {
                firewall, family, ..
            } => match firewall {
                Firewall::Ufw => ufw_loopback(facts)?,
                Firewall::Nftables => nft_loopback(facts)?,
                Firewall::Iptables => match ipt_family(facts, *family)? {
                    Err(o) => o,
                    Ok(f) => ipt_loopback(facts, f)?,
                },
            },
            Check::OpenPorts {
                firewall, family, ..
            } => {
                if !facts.is_live() {
                    return Ok(Outcome::not_applicable(
                        "offline root: listening sockets are runtime state, so there is nothing to compare the rules with",
                    ));
                }
                match firewall {
                    Firewall::Ufw => ufw_open_ports(facts)?,
                    Firewall::Nftables => nft_open_ports(facts)?,
                    Firewall::Iptables => match ipt_family(facts, *family)? {
                        Err(o) => o,
                        Ok(f) => ipt_open_ports(facts, f)?,
                    },
                }
            }
            Check::NftTables {} => nft_tables(facts)?,
            Check::NftBaseChains { hooks } => nft_base_chains(facts, hooks)?,
        })
    }

    /// The firewall a check is about, when it is not applicable without it, and
    /// whether ufw is the distribution's default firewall.
    fn gated_on(&self) -> Option<(Firewall, bool)> {
        match self {
            Check::Single {} | Check::Inactive { .. } => None,
            Check::WhenInUse {
                firewall,
                ufw_default,
                ..
            }
            | Check::DefaultDeny {
                firewall,
                ufw_default,
                ..
            }
            | Check::Loopback {
                firewall,
                ufw_default,
                ..
            }
            | Check::OpenPorts {
                firewall,
                ufw_default,
                ..
            } => Some((*firewall, *ufw_default)),
            Check::UfwEnabled { ufw_default } => Some((Firewall::Ufw, *ufw_default)),
            Check::NftTables {} | Check::NftBaseChains { .. } => Some((Firewall::Nftables, false)),
        }
    }
}

// ---------------------------------------------------------------------------
// Which firewall is in use
// ---------------------------------------------------------------------------

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
    /// Firewalls this benchmark does not cover that are enabled (firewalld).
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
        }
    }
    pub fn in_use(&self) -> Vec<Firewall> {
        Firewall::ALL
            .into_iter()
            .filter(|f| self.state(*f).in_use())
            .collect()
    }
    pub fn chosen(&self) -> Vec<Firewall> {
        Firewall::ALL
            .into_iter()
            .filter(|f| self.state(*f).chosen)
            .collect()
    }
}

const UFW_CONF: &str = "/etc/ufw/ufw.conf";
const UFW_DEFAULTS: &str = "/etc/default/ufw";
const IPT_RULES_V4: &str = "/etc/iptables/rules.v4";
const IPT_RULES_V6: &str = "/etc/iptables/rules.v6";
const PERSISTED_NOTE: &str =
    "the ruleset loaded in the kernel was not read (that needs netlink); judged the rules persisted for boot";

/// Which firewalls are chosen and installed, read once per scan.
pub fn detection(facts: &Facts) -> Arc<Result<Detection, FactError>> {
    facts.memo("firewall-detection", || {
        let pk = packages(facts);
        let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
        let unit_on = |name: &str| -> Result<(bool, String), FactError> {
            let u = unit(facts, name);
            let u = u.as_ref().as_ref().map_err(Clone::clone)?;
            Ok((u.exists() && is_on(u), u.describe()))
        };
        let mut d = Detection::default();

        d.ufw.installed = pk.is_installed("ufw");
        d.ufw.evidence.push(pk.describe("ufw"));
        let enabled = ufw_setting(facts, UFW_CONF, "ENABLED")?;
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
        for p in [IPT_RULES_V4, IPT_RULES_V6] {
            let exists = facts.stat(p)?.is_some();
            rules |= exists;
            d.iptables.evidence.push(format!(
                "{p} {}",
                if exists { "exists" } else { "not found" }
            ));
        }
        d.iptables.chosen = on && rules;
        d.iptables.active = d.iptables.installed && d.iptables.chosen;

        let (on, desc) = unit_on("firewalld.service")?;
        if on {
            d.others.push(format!(
                "{desc}: firewalld is not one of the firewalls this benchmark covers"
            ));
        }
        Ok(d)
    })
}

/// `None` when `fw` is chosen, else a not-applicable outcome saying why. With
/// `ufw_default` (ufw only), ufw applies when it is switched on or when no other
/// firewall is chosen.
fn gate(facts: &Facts, fw: Firewall, ufw_default: bool) -> Result<Option<Outcome>, FactError> {
    let d = detection(facts);
    let d = d.as_ref().as_ref().map_err(Clone::clone)?;
    if fw == Firewall::Ufw && ufw_default {
        let others: Vec<&str> = [Firewall::Nftables, Firewall::Iptables]
            .into_iter()
            .filter(|f| d.state(*f).chosen)
            .map(|f| f.name())
            .collect();
        if d.ufw_switched_on || others.is_empty() {
            return Ok(None);
        }
        let mut ev = vec![format!(
            "the firewall chosen is {}; ufw is not switched on (ENABLED is not yes), so its rules do not apply",
            others.join(" and ")
        )];
        ev.extend(d.state(fw).evidence.iter().cloned());
        return Ok(Some(Outcome::new(Status::NotApplicable, ev)));
    }
    if d.state(fw).chosen {
        return Ok(None);
    }
    let chosen: Vec<&str> = d.chosen().iter().map(|f| f.name()).collect();
    let reason = if chosen.is_empty() {
        format!(
            "{} is not in use; no host firewall is in use (see 4.1.1)",
            fw.name()
        )
    } else {
        format!(
            "the firewall in use is {}, not {}",
            chosen.join(" and "),
            fw.name()
        )
    };
    let mut ev = vec![reason];
    ev.extend(d.state(fw).evidence.iter().cloned());
    Ok(Some(Outcome::new(Status::NotApplicable, ev)))
}

fn single(facts: &Facts) -> Result<Outcome, FactError> {
    let d = detection(facts);
    let d = d.as_ref().as_ref().map_err(Clone::clone)?;
    let used: Vec<&str> = d.in_use().iter().map(|f| f.name()).collect();
    let mut ev = Vec::new();
    let status = match used.len() {
        1 => {
            ev.push(format!("the firewall in use is {}", used[0]));
            Status::Pass
        }
        0 => {
            ev.push("no host firewall (ufw, nftables or iptables-persistent) is in use".into());
            Status::Fail
        }
        _ => {
            ev.push(format!(
                "more than one firewall is in use: {}",
                used.join(", ")
            ));
            Status::Fail
        }
    };
    for fw in Firewall::ALL {
        let st = d.state(fw);
        if st.chosen && !st.installed {
            ev.push(format!(
                "{} is configured to start, but its package is not installed",
                fw.name()
            ));
        } else if st.chosen && !st.active {
            ev.push(format!(
                "{} is installed but does not filter: it needs ENABLED=yes and ufw.service enabled",
                fw.name()
            ));
        }
        ev.extend(st.evidence.iter().cloned());
    }
    ev.extend(d.others.iter().cloned());
    Ok(Outcome::new(status, ev))
}

// ---------------------------------------------------------------------------
// IPv6 status
// ---------------------------------------------------------------------------

/// Whether IPv6 is enabled, with the evidence: `sysctl::ipv6_disabled` is the one
/// definition of "IPv6 is off" (unknown counts as on).
fn ipv6_enabled(facts: &Facts) -> Result<(bool, String), FactError> {
    Ok(match crate::checks::sysctl::ipv6_disabled(facts)? {
        Some(why) => (false, why),
        None if facts.is_live() => (true, "IPv6 is enabled on the running system".into()),
        None => (
            true,
            "IPv6 is not disabled in the persisted configuration (kernel command line, sysctl)"
                .into(),
        ),
    })
}

/// The family an iptables check is about, or the outcome when it cannot apply.
fn ipt_family(
    facts: &Facts,
    family: Option<IpFamily>,
) -> Result<Result<IpFamily, Outcome>, FactError> {
    match family {
        None => Ok(Err(Outcome::error(
            "content error: an iptables check needs `family = \"ipv4\"` or `\"ipv6\"`",
        ))),
        Some(IpFamily::Ipv4) => Ok(Ok(IpFamily::Ipv4)),
        Some(IpFamily::Ipv6) => {
            let (on, why) = ipv6_enabled(facts)?;
            if on {
                Ok(Ok(IpFamily::Ipv6))
            } else {
                Ok(Err(Outcome::not_applicable(why)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// ufw
// ---------------------------------------------------------------------------

fn ufw_setting(facts: &Facts, path: &str, key: &str) -> Result<Option<Setting>, FactError> {
    let Some(text) = facts.read(path)? else {
        return Ok(None);
    };
    let s = kv::parse(&text, path, kv::Separator::Equals);
    Ok(kv::last(&s, key, false).cloned())
}

/// ufw's rules files: (IPv4 ruleset, IPv6 ruleset, files read).
fn ufw_rules(facts: &Facts) -> Arc<Result<(ipt::Ruleset, ipt::Ruleset, Vec<String>), FactError>> {
    facts.memo("ufw-rules", || {
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
    })
}

fn ufw_enabled(facts: &Facts) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match ufw_setting(facts, UFW_CONF, "ENABLED")? {
        Some(s) if s.value.eq_ignore_ascii_case("yes") => found.push(s.describe()),
        Some(s) => failures.push(format!("{}: ufw is not enabled", s.describe())),
        None => failures.push(format!("{UFW_CONF}: ENABLED not set; default no")),
    }
    let u = unit(facts, "ufw.service");
    let u = u.as_ref().as_ref().map_err(Clone::clone)?;
    if u.enabled() && u.active != Some(false) {
        found.push(u.describe());
    } else {
        failures.push(u.describe());
    }
    found.push(format!(
        "whether ufw reports `Status: active` was not read: {PERSISTED_NOTE}"
    ));
    Ok(Outcome::from_findings(failures, found))
}

fn ufw_default_deny(facts: &Facts) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let deny = |v: &str| v.eq_ignore_ascii_case("DROP") || v.eq_ignore_ascii_case("REJECT");
    for (key, what) in [
        ("DEFAULT_INPUT_POLICY", "incoming"),
        ("DEFAULT_OUTPUT_POLICY", "outgoing"),
    ] {
        match ufw_setting(facts, UFW_DEFAULTS, key)? {
            Some(s) if deny(&s.value) => found.push(s.describe()),
            Some(s) => failures.push(format!(
                "{}: {what} traffic is allowed by default",
                s.describe()
            )),
            None => failures.push(format!("{UFW_DEFAULTS}: {key} not set")),
        }
    }
    match ufw_setting(facts, UFW_DEFAULTS, "DEFAULT_FORWARD_POLICY")? {
        Some(s) if deny(&s.value) => found.push(s.describe()),
        Some(s) => {
            let (routing, why) = ip_forwarding(facts)?;
            if routing {
                failures.push(format!(
                    "{}: routed traffic is allowed by default and {why}",
                    s.describe()
                ));
            } else {
                found.push(format!(
                    "{}: routed traffic is disabled because {why}",
                    s.describe()
                ));
            }
        }
        None => failures.push(format!("{UFW_DEFAULTS}: DEFAULT_FORWARD_POLICY not set")),
    }
    let (v6, why) = ipv6_enabled(facts)?;
    if v6 {
        match ufw_setting(facts, UFW_DEFAULTS, "IPV6")? {
            Some(s) if s.value.eq_ignore_ascii_case("no") => failures.push(format!(
                "{}: ufw leaves IPv6 unfiltered while {why}",
                s.describe()
            )),
            _ => {}
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

/// Whether the system forwards packets (then ufw's routed policy matters).
fn ip_forwarding(facts: &Facts) -> Result<(bool, String), FactError> {
    if facts.is_live() {
        let v4 = sysctl::runtime_value(facts, "net.ipv4.ip_forward")?;
        let v6 = sysctl::runtime_value(facts, "net.ipv6.conf.all.forwarding")?;
        let on = v4.as_deref() == Some("1") || v6.as_deref() == Some("1");
        return Ok((
            on,
            format!(
                "/proc/sys: net.ipv4.ip_forward = {}, net.ipv6.conf.all.forwarding = {}",
                v4.as_deref().unwrap_or("absent"),
                v6.as_deref().unwrap_or("absent")
            ),
        ));
    }
    // ufw applies its own sysctl file when it starts.
    let mut lines = Vec::new();
    let mut on = false;
    if let Some(text) = facts.read("/etc/ufw/sysctl.conf")? {
        for s in kv::parse(&text, "/etc/ufw/sysctl.conf", kv::Separator::Equals) {
            let k = sysctl::normalize(&s.key);
            if (k == "net.ipv4.ip_forward"
                || k == "net.ipv6.conf.all.forwarding"
                || k == "net.ipv6.conf.default.forwarding")
                && s.value == "1"
            {
                on = true;
                lines.push(s.describe());
            }
        }
    }
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        if let Some(s) = sysctl::persisted_setting(facts, key)? {
            on |= s.value == "1";
            lines.push(s.describe());
        }
    }
    if lines.is_empty() {
        lines.push("no persisted setting enables IP forwarding (kernel default 0)".into());
    }
    Ok((on, lines.join("; ")))
}

const UFW_IN: [&str; 2] = ["ufw-before-input", "ufw-user-input"];
const UFW_OUT: [&str; 2] = ["ufw-before-output", "ufw-user-output"];
const UFW6_IN: [&str; 2] = ["ufw6-before-input", "ufw6-user-input"];
const UFW6_OUT: [&str; 2] = ["ufw6-before-output", "ufw6-user-output"];

fn ufw_loopback(facts: &Facts) -> Result<Outcome, FactError> {
    let rules = ufw_rules(facts);
    let (v4, v6, read) = rules.as_ref().as_ref().map_err(Clone::clone)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if read.is_empty() {
        failures.push("no ufw rules file found in /etc/ufw".into());
    }
    let (v6_on, why) = ipv6_enabled(facts)?;
    let mut families = vec![("IPv4", v4, UFW_IN, UFW_OUT, "127.0.0.0/8")];
    if v6_on {
        if ufw_setting(facts, UFW_DEFAULTS, "IPV6")?
            .is_some_and(|s| s.value.eq_ignore_ascii_case("no"))
        {
            failures.push(format!(
                "{UFW_DEFAULTS}: IPV6=no, so ufw sets no IPv6 loopback rules while {why}"
            ));
        } else {
            families.push(("IPv6", v6, UFW6_IN, UFW6_OUT, "::1/128"));
        }
    } else {
        found.push(format!("{why}; IPv6 loopback rules not required"));
    }
    for (fam, rs, ins, outs, src) in families {
        let in_rules: Vec<&ipt::Rule> = rs
            .rules
            .iter()
            .filter(|r| ins.contains(&r.chain.as_str()))
            .collect();
        let out_rules: Vec<&ipt::Rule> = rs
            .rules
            .iter()
            .filter(|r| outs.contains(&r.chain.as_str()))
            .collect();
        judge_rule(
            &mut failures,
            &mut found,
            in_rules.iter().find(|r| r.accepts_loopback_in()),
            || format!("{fam}: no rule accepts incoming traffic on lo (`ufw allow in on lo`)"),
        );
        judge_rule(
            &mut failures,
            &mut found,
            out_rules.iter().find(|r| r.accepts_loopback_out()),
            || format!("{fam}: no rule accepts outgoing traffic on lo (`ufw allow out on lo`)"),
        );
        judge_rule(
            &mut failures,
            &mut found,
            in_rules.iter().find(|r| r.drops_source(&[src])),
            || {
                format!(
                    "{fam}: no rule denies incoming traffic from {src} (`ufw deny in from {src}`)"
                )
            },
        );
    }
    found.push(PERSISTED_NOTE.into());
    Ok(Outcome::from_findings(failures, found))
}

fn judge_rule(
    failures: &mut Vec<String>,
    found: &mut Vec<String>,
    rule: Option<&&ipt::Rule>,
    missing: impl Fn() -> String,
) {
    match rule {
        Some(r) => found.push(r.source.clone()),
        None => failures.push(missing()),
    }
}

/// The non-loopback listening sockets, grouped by (protocol, port).
fn open_ports(
    ls: &[Listener],
    include: impl Fn(&Listener) -> bool,
) -> Vec<((Proto, u16), Vec<&Listener>)> {
    let mut out: Vec<((Proto, u16), Vec<&Listener>)> = Vec::new();
    for l in ls.iter().filter(|l| !l.is_loopback() && include(l)) {
        match out.iter_mut().find(|(k, _)| *k == (l.proto, l.port)) {
            Some((_, v)) => v.push(l),
            None => out.push(((l.proto, l.port), vec![l])),
        }
    }
    out
}

/// Pass when each open port is covered; evidence names the covering rule.
fn judge_ports(
    ports: Vec<((Proto, u16), Vec<&Listener>)>,
    covering: impl Fn(Proto, u16) -> Option<String>,
    rules_desc: &str,
) -> Outcome {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if ports.is_empty() {
        found.push(
            "no socket listens on a non-loopback address (/proc/net/tcp, tcp6, udp, udp6)".into(),
        );
    }
    for ((proto, port), socks) in ports {
        let what = socks
            .iter()
            .map(|l| l.describe())
            .collect::<Vec<_>>()
            .join(", ");
        match covering(proto, port) {
            Some(rule) => found.push(format!(
                "{} port {port} ({what}) has a rule: {rule}",
                proto.as_str()
            )),
            None => failures.push(format!(
                "{} port {port} ({what}) has no rule naming it in {rules_desc}",
                proto.as_str()
            )),
        }
    }
    found.push("rules without a destination port are not counted as covering a port".into());
    found.push(PERSISTED_NOTE.into());
    Outcome::from_findings(failures, found)
}

fn ufw_open_ports(facts: &Facts) -> Result<Outcome, FactError> {
    let rules = ufw_rules(facts);
    let (v4, v6, _) = rules.as_ref().as_ref().map_err(Clone::clone)?;
    let ls = listeners(facts);
    let ls = ls.as_ref().as_ref().map_err(Clone::clone)?;
    let chains = [UFW_IN[0], UFW_IN[1], UFW6_IN[0], UFW6_IN[1]];
    let covering = |proto: Proto, port: u16| {
        v4.rules
            .iter()
            .chain(v6.rules.iter())
            .filter(|r| chains.contains(&r.chain.as_str()))
            .find(|r| r.covers_port(proto.as_str(), port))
            .map(|r| r.source.clone())
    };
    Ok(judge_ports(
        open_ports(ls, |_| true),
        covering,
        "/etc/ufw/user.rules, user6.rules, before.rules or before6.rules",
    ))
}

// ---------------------------------------------------------------------------
// nftables
// ---------------------------------------------------------------------------

const NFT_DEFAULT_FILE: &str = "/etc/nftables.conf";

/// The file nftables.service loads: the `-f` argument of its last ExecStart=.
fn nft_main_file(facts: &Facts) -> Result<String, FactError> {
    let u = unit(facts, "nftables.service");
    let u = u.as_ref().as_ref().map_err(Clone::clone)?;
    let mut files: Vec<String> = u.path.iter().cloned().collect();
    files.extend(facts.dir_files("/etc/systemd/system/nftables.service.d", ".conf")?);
    let mut file = NFT_DEFAULT_FILE.to_string();
    for f in files {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for s in kv::parse_ini(&text, &f, "Service") {
            if s.key != "ExecStart" {
                continue;
            }
            let words: Vec<&str> = s.value.split_whitespace().collect();
            if let Some(i) = words.iter().position(|w| *w == "-f" || *w == "--file") {
                if let Some(p) = words.get(i + 1) {
                    file = p.to_string();
                }
            }
        }
    }
    Ok(file)
}

fn nft_ruleset(facts: &Facts) -> Arc<Result<nft::Ruleset, FactError>> {
    facts.memo("nft-ruleset", || {
        let main = nft_main_file(facts)?;
        nft::load(facts, &main)
    })
}

/// The ruleset, or a failing outcome when its file is missing.
fn nft_or_fail(
    facts: &Facts,
) -> Result<Result<Arc<Result<nft::Ruleset, FactError>>, Outcome>, FactError> {
    let rs = nft_ruleset(facts);
    let r = rs.as_ref().as_ref().map_err(Clone::clone)?;
    if !r.main_found {
        return Ok(Err(Outcome::fail(format!(
            "{} not found: nftables.service loads no rules at boot",
            r.main
        ))));
    }
    Ok(Ok(rs))
}

fn nft_note(rs: &nft::Ruleset) -> String {
    format!("read {}; {PERSISTED_NOTE}", rs.files.join(", "))
}

fn nft_tables(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let rs = rs.as_ref().as_ref().map_err(Clone::clone)?;
    let mut ev: Vec<String> = rs
        .tables
        .iter()
        .map(|t| {
            format!(
                "table {} {} ({}){}",
                t.family,
                t.name,
                t.at,
                if t.dormant { ", dormant" } else { "" }
            )
        })
        .collect();
    ev.extend(rs.notes.iter().cloned());
    ev.push(nft_note(rs));
    let status = if rs.active_tables().next().is_some() {
        Status::Pass
    } else {
        Status::Fail
    };
    if status == Status::Fail {
        ev.insert(0, format!("{} defines no active table", rs.main));
    }
    Ok(Outcome::new(status, ev))
}

fn nft_base_chains(facts: &Facts, hooks: &[String]) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let rs = rs.as_ref().as_ref().map_err(Clone::clone)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for hook in hooks {
        let chains: Vec<String> = rs
            .active_tables()
            .filter(|t| t.covers(false) || t.covers(true))
            .flat_map(|t| {
                t.chains
                    .iter()
                    .filter(|c| c.is_filter_hook(hook))
                    .map(move |c| c.describe(t))
            })
            .collect();
        if chains.is_empty() {
            failures.push(format!(
                "no filter base chain on hook {hook} in {}",
                rs.main
            ));
        }
        found.extend(chains);
    }
    found.extend(rs.notes.iter().cloned());
    found.push(nft_note(rs));
    Ok(Outcome::from_findings(failures, found))
}

fn nft_families(
    facts: &Facts,
    found: &mut Vec<String>,
) -> Result<Vec<(&'static str, bool)>, FactError> {
    let (v6, why) = ipv6_enabled(facts)?;
    if v6 {
        Ok(vec![("IPv4", false), ("IPv6", true)])
    } else {
        found.push(format!("{why}; IPv6 rules not required"));
        Ok(vec![("IPv4", false)])
    }
}

fn nft_default_deny(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let rs = rs.as_ref().as_ref().map_err(Clone::clone)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let families = nft_families(facts, &mut found)?;
    for hook in ["input", "forward", "output"] {
        for (fam, v6) in &families {
            let mut dropping = None;
            let mut others = Vec::new();
            for t in rs.active_tables().filter(|t| t.covers(*v6)) {
                for c in t.chains.iter().filter(|c| c.is_filter_hook(hook)) {
                    if c.policy_drops() && dropping.is_none() {
                        dropping = Some(c.describe(t));
                    } else {
                        others.push(c.describe(t));
                    }
                }
            }
            match dropping {
                // A drop verdict in any base chain is final, so one chain with policy
                // drop on the hook makes the hook default-deny.
                Some(d) => found.push(format!("{fam} {hook}: {d}")),
                None if others.is_empty() => failures.push(format!(
                    "{fam} {hook}: no filter base chain, so nothing is dropped"
                )),
                None => failures.push(format!(
                    "{fam} {hook}: no base chain has policy drop: {}",
                    others.join("; ")
                )),
            }
        }
    }
    found.extend(rs.notes.iter().cloned());
    found.push(nft_note(rs));
    Ok(Outcome::from_findings(failures, found))
}

fn nft_loopback(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let rs = rs.as_ref().as_ref().map_err(Clone::clone)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let families = nft_families(facts, &mut found)?;
    for (fam, v6) in families {
        let (kw, addrs): (&str, &[&str]) = if v6 {
            ("ip6", &["::1", "::1/128"])
        } else {
            ("ip", &["127.0.0.0/8"])
        };
        let mut accept = None;
        let mut drop = None;
        for t in rs.active_tables().filter(|t| t.covers(v6)) {
            for c in t.chains.iter().filter(|c| c.is_filter_hook("input")) {
                for r in t.reachable(c) {
                    if accept.is_none() && r.accepts_loopback() {
                        accept = Some(r.describe());
                    }
                    if drop.is_none() && r.drops_saddr(kw, addrs) {
                        drop = Some(r.describe());
                    }
                }
            }
        }
        match accept {
            Some(r) => found.push(r),
            None => failures.push(format!(
                "{fam}: no input rule accepts traffic on lo (`iif lo accept`)"
            )),
        }
        match drop {
            Some(r) => found.push(r),
            None => failures.push(format!(
                "{fam}: no input rule drops traffic from {} (`{kw} saddr {} drop`)",
                addrs[0], addrs[0]
            )),
        }
    }
    found.extend(rs.notes.iter().cloned());
    found.push(nft_note(rs));
    Ok(Outcome::from_findings(failures, found))
}

fn nft_open_ports(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let rs = rs.as_ref().as_ref().map_err(Clone::clone)?;
    let ls = listeners(facts);
    let ls = ls.as_ref().as_ref().map_err(Clone::clone)?;
    let covering = |proto: Proto, port: u16| {
        for t in rs.active_tables() {
            for c in t.chains.iter().filter(|c| c.is_filter_hook("input")) {
                if let Some(r) = t
                    .reachable(c)
                    .into_iter()
                    .find(|r| r.covers_port(proto.as_str(), port))
                {
                    return Some(r.describe());
                }
            }
        }
        None
    };
    Ok(judge_ports(open_ports(ls, |_| true), covering, &rs.main))
}

// ---------------------------------------------------------------------------
// iptables (iptables-persistent)
// ---------------------------------------------------------------------------

fn ipt_file(family: IpFamily) -> &'static str {
    match family {
        IpFamily::Ipv4 => IPT_RULES_V4,
        IpFamily::Ipv6 => IPT_RULES_V6,
    }
}

/// The persisted rules of `family`, or a failing outcome when the file is missing.
fn ipt_rules(
    facts: &Facts,
    family: IpFamily,
) -> Result<Result<Arc<ipt::Ruleset>, Outcome>, FactError> {
    let path = ipt_file(family);
    let rs = facts.memo(
        &format!("ipt-rules:{path}"),
        || -> Result<Option<Arc<ipt::Ruleset>>, FactError> {
            Ok(facts.read(path)?.map(|t| Arc::new(ipt::parse(&t, path))))
        },
    );
    match rs.as_ref() {
        Err(e) => Err(e.clone()),
        Ok(None) => Ok(Err(Outcome::fail(format!(
            "{path} not found: no {} rules are restored at boot, so every chain accepts",
            if family == IpFamily::Ipv4 {
                "IPv4"
            } else {
                "IPv6"
            }
        )))),
        Ok(Some(rs)) => Ok(Ok(rs.clone())),
    }
}

fn ipt_default_deny(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
    let rs = match ipt_rules(facts, family)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let path = ipt_file(family);
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for chain in ["INPUT", "FORWARD", "OUTPUT"] {
        match rs.policy(chain) {
            Some((p, at)) if p == "DROP" || p == "REJECT" => {
                found.push(format!("{at}: {chain} policy {p}"))
            }
            Some((p, at)) => failures.push(format!("{at}: {chain} policy {p}")),
            None => failures.push(format!(
                "{path}: no policy for the filter table's {chain} chain; default ACCEPT"
            )),
        }
    }
    found.push(PERSISTED_NOTE.into());
    Ok(Outcome::from_findings(failures, found))
}

fn ipt_loopback(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
    let rs = match ipt_rules(facts, family)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let src = if family == IpFamily::Ipv4 {
        "127.0.0.0/8"
    } else {
        "::1/128"
    };
    let input = rs.reachable("INPUT", true);
    let output = rs.reachable("OUTPUT", true);
    let mut failures = Vec::new();
    let mut found = Vec::new();
    judge_rule(
        &mut failures,
        &mut found,
        input.iter().find(|r| r.accepts_loopback_in()),
        || "INPUT: no rule accepts traffic on lo (`-A INPUT -i lo -j ACCEPT`)".into(),
    );
    judge_rule(
        &mut failures,
        &mut found,
        output.iter().find(|r| r.accepts_loopback_out()),
        || "OUTPUT: no rule accepts traffic on lo (`-A OUTPUT -o lo -j ACCEPT`)".into(),
    );
    judge_rule(
        &mut failures,
        &mut found,
        input.iter().find(|r| r.drops_source(&[src])),
        || format!("INPUT: no rule drops traffic from {src} (`-A INPUT -s {src} -j DROP`)"),
    );
    found.push(PERSISTED_NOTE.into());
    Ok(Outcome::from_findings(failures, found))
}

fn ipt_open_ports(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
    let rs = match ipt_rules(facts, family)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let ls = listeners(facts);
    let ls = ls.as_ref().as_ref().map_err(Clone::clone)?;
    let input = rs.reachable("INPUT", false);
    let covering = |proto: Proto, port: u16| {
        input
            .iter()
            .find(|r| r.covers_port(proto.as_str(), port))
            .map(|r| r.source.clone())
    };
    // An IPv6 socket bound to `::` also accepts IPv4 (unless IPV6_V6ONLY is set).
    let include = |l: &Listener| match family {
        IpFamily::Ipv4 => l.addr.is_ipv4() || l.is_v6_wildcard(),
        IpFamily::Ipv6 => l.addr.is_ipv6(),
    };
    Ok(judge_ports(
        open_ports(ls, include),
        covering,
        ipt_file(family),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::checks::test_tree as root;

    const NFT_UNIT: &str = "[Service]\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n[Install]\nWantedBy=sysinit.target\n";
    const WANTS: (&str, &str) = (
        "/etc/systemd/system/sysinit.target.wants/nftables.service",
        "/lib/systemd/system/nftables.service",
    );

    #[test]
    fn nftables_open_ports_follow_jumps_and_sets() {
        let conf = "table inet f {\n chain svc { tcp dport { 22, 8000-8100 } accept }\n \
                    chain input { type filter hook input priority 0; policy drop; jump svc }\n}\n";
        let tcp =
            "h\n 0: 00000000:0016 00000000:0000 0A x\n 1: 00000000:1F90 00000000:0000 0A x\n \
                   2: 00000000:0050 00000000:0000 0A x\n";
        let t = root(
            &[
                (
                    "/var/lib/dpkg/status",
                    "Package: nftables\nStatus: install ok installed\nVersion: 1\n",
                ),
                ("/lib/systemd/system/nftables.service", NFT_UNIT),
                ("/etc/nftables.conf", conf),
                ("/proc/net/tcp", tcp),
            ],
            &[WANTS],
        );
        let facts = Facts::new(t.path(), true);
        let c = Check::OpenPorts {
            firewall: Firewall::Nftables,
            family: None,
            ufw_default: false,
        };
        let o = c.eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(
            o.evidence[0].starts_with("tcp port 80 "),
            "{:?}",
            o.evidence
        );
        assert!(o
            .evidence
            .iter()
            .any(|e| e.starts_with("tcp port 8080 ") && e.contains("has a rule")));
    }

    const UFW_UNIT: &str = "[Service]\nExecStart=/lib/ufw/ufw-init start quiet\n[Install]\nWantedBy=multi-user.target\n";

    #[test]
    fn ufw_as_the_default_firewall() {
        let ufw_on = Check::UfwEnabled { ufw_default: true };
        let ufw_plain = Check::UfwEnabled { ufw_default: false };
        // Nothing chosen, ufw not even installed: Ubuntu's default firewall applies.
        let t = root(
            &[(
                "/var/lib/dpkg/status",
                "Package: base-files\nStatus: install ok installed\nVersion: 1\n",
            )],
            &[],
        );
        let facts = Facts::new(t.path(), false);
        assert_eq!(ufw_on.eval(&facts).status, Status::Fail);
        assert_eq!(ufw_plain.eval(&facts).status, Status::NotApplicable);
        // Preinstalled ufw (service enabled, ENABLED=no) next to a chosen nftables.
        let t = root(
            &[
                (
                    "/var/lib/dpkg/status",
                    "Package: ufw\nStatus: install ok installed\nVersion: 1\n\nPackage: nftables\nStatus: install ok installed\nVersion: 1\n",
                ),
                ("/lib/systemd/system/nftables.service", NFT_UNIT),
                ("/lib/systemd/system/ufw.service", UFW_UNIT),
                ("/etc/ufw/ufw.conf", "ENABLED=no\n"),
            ],
            &[
                WANTS,
                (
                    "/etc/systemd/system/multi-user.target.wants/ufw.service",
                    "/lib/systemd/system/ufw.service",
                ),
            ],
        );
        let facts = Facts::new(t.path(), false);
        let o = ufw_on.eval(&facts);
        assert_eq!(o.status, Status::NotApplicable, "{:?}", o.evidence);
        assert!(o.evidence[0].contains("the firewall chosen is nftables"));
        assert_eq!(ufw_plain.eval(&facts).status, Status::Fail);
        // Switched on with `ufw enable`: ufw applies even next to nftables.
        std::fs::write(t.path().join("etc/ufw/ufw.conf"), "ENABLED=yes\n").unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(ufw_on.eval(&facts).status, Status::Pass);
    }

    #[test]
    fn iptables_checks_need_a_family() {
        let t = root(
            &[
                (
                    "/var/lib/dpkg/status",
                    "Package: iptables-persistent\nStatus: install ok installed\nVersion: 1\n",
                ),
                (
                    "/lib/systemd/system/netfilter-persistent.service",
                    "[Install]\nWantedBy=multi-user.target\n",
                ),
                (
                    "/etc/iptables/rules.v4",
                    "*filter\n:INPUT DROP [0:0]\nCOMMIT\n",
                ),
            ],
            &[(
                "/etc/systemd/system/multi-user.target.wants/netfilter-persistent.service",
                "/lib/systemd/system/netfilter-persistent.service",
            )],
        );
        let facts = Facts::new(t.path(), false);
        let o = Check::DefaultDeny {
            firewall: Firewall::Iptables,
            family: None,
            ufw_default: false,
        }
        .eval(&facts);
        assert_eq!(o.status, Status::Error);
    }
}
