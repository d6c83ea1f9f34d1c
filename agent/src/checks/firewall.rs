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

mod firewalld;
mod iptables;
mod nftables;
mod ufw;

use serde::Deserialize;

use self::firewalld::{firewalld_default_zone, firewalld_loopback, single_utility};
use self::iptables::{ipt_default_deny, ipt_loopback, ipt_open_ports};
use self::nftables::{nft_base_chains, nft_default_deny, nft_loopback, nft_open_ports, nft_tables};
use self::ufw::{ufw_default_deny, ufw_enabled, ufw_loopback, ufw_open_ports};
use crate::facts::firewall::{detection, Firewall};
use crate::facts::ipv6::ipv6_disabled;
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

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
    /// (127.0.0.0/8, ::1) arriving elsewhere is dropped. firewalld always accepts lo
    /// and must drop the spoofed sources with rich rules (IPv6 while IPv6 is on).
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
    /// Exactly one of firewalld and nftables (nftables.service) is in use: the
    /// firewall utilities of RHEL and Amazon Linux.
    #[serde(rename = "firewall.single_utility")]
    SingleUtility {},
    /// firewalld's default zone names a zone its configuration defines.
    #[serde(rename = "firewall.firewalld_default_zone")]
    FirewalldDefaultZone {},
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
                let d = detection(facts)?;
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
                Firewall::Firewalld => not_for_firewalld("firewall.default_deny"),
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
                Firewall::Firewalld => firewalld_loopback(facts)?,
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
                    Firewall::Firewalld => not_for_firewalld("firewall.open_ports"),
                }
            }
            Check::NftTables {} => nft_tables(facts)?,
            Check::NftBaseChains { hooks } => nft_base_chains(facts, hooks)?,
            Check::SingleUtility {} => single_utility(facts)?,
            Check::FirewalldDefaultZone {} => firewalld_default_zone(facts)?,
        })
    }

    /// The firewall a check is about, when it is not applicable without it, and
    /// whether ufw is the distribution's default firewall.
    fn gated_on(&self) -> Option<(Firewall, bool)> {
        match self {
            Check::Single {} | Check::Inactive { .. } | Check::SingleUtility {} => None,
            Check::FirewalldDefaultZone {} => Some((Firewall::Firewalld, false)),
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

const PERSISTED_NOTE: &str =
    "the ruleset loaded in the kernel was not read (that needs netlink); judged the rules persisted for boot";

/// Whether the system forwards packets after boot, with the evidence: what ufw's
/// routed policy is judged against (`rampart-agent facts sysctl` prints it).
pub fn ip_forwarding(facts: &Facts) -> Result<(bool, String), FactError> {
    ufw::ip_forwarding(facts)
}

/// `None` when `fw` is chosen, else a not-applicable outcome saying why. With
/// `ufw_default` (ufw only), ufw applies when it is switched on or when no other
/// firewall is chosen.
fn gate(facts: &Facts, fw: Firewall, ufw_default: bool) -> Result<Option<Outcome>, FactError> {
    let d = detection(facts)?;
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
            "{} is not in use; no host firewall is in use (see the recommendation that one firewall is in use)",
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
    let d = detection(facts)?;
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

/// A check kind that has no firewalld form: a content error.
fn not_for_firewalld(kind: &str) -> Outcome {
    Outcome::error(format!(
        "content error: `{kind}` is not implemented for firewalld"
    ))
}

// ---------------------------------------------------------------------------
// IPv6 status
// ---------------------------------------------------------------------------

/// Whether IPv6 is enabled, with the evidence: `facts::ipv6::ipv6_disabled` is the one
/// definition of "IPv6 is off" (unknown counts as on).
fn ipv6_enabled(facts: &Facts) -> Result<(bool, String), FactError> {
    Ok(match ipv6_disabled(facts)? {
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
