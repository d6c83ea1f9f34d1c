//! firewalld (RHEL and Amazon Linux): which of firewalld and nftables is the firewall
//! utility in use, and firewalld's persisted zones ([`crate::facts::firewalld`]).

use super::ipv6_enabled;
use crate::facts::firewall::{detection, Firewall};
use crate::facts::firewalld::{self as fwd, RichRule, Zone};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

const FIREWALLD_NOTE: &str =
    "judged firewalld's permanent configuration (/etc/firewalld over /usr/lib/firewalld); \
     runtime-only changes (firewall-cmd without --permanent) were not read";

/// Exactly one of firewalld and nftables.service is in use.
pub(super) fn single_utility(facts: &Facts) -> Result<Outcome, FactError> {
    let d = detection(facts)?;
    let (f, n) = (&d.firewalld, &d.nftables);
    let (status, head) = match (f.in_use(), n.in_use()) {
        (true, false) => (
            Status::Pass,
            "firewalld is the firewall utility in use; nftables.service is not started beside it",
        ),
        (false, true) => (
            Status::Pass,
            "nftables (nftables.service) is the firewall utility in use; firewalld is not",
        ),
        (true, true) => (
            Status::Fail,
            "both firewalld and nftables.service are in use: two utilities would load competing rulesets",
        ),
        (false, false) => (
            Status::Fail,
            "neither firewalld nor nftables.service is in use: no host firewall utility filters traffic",
        ),
    };
    let mut ev = vec![head.to_string()];
    for (fw, st) in [(Firewall::Firewalld, f), (Firewall::Nftables, n)] {
        if st.chosen && !st.installed {
            ev.push(format!(
                "{} is configured to start, but its package is not installed",
                fw.name()
            ));
        }
        ev.extend(st.evidence.iter().cloned());
    }
    Ok(Outcome::new(status, ev))
}

/// The zones that bind interfaces or sources, for evidence.
fn bindings(z: &Zone) -> Option<String> {
    let mut parts: Vec<String> = z
        .interfaces
        .iter()
        .map(|(i, at)| format!("interface {i} ({at})"))
        .collect();
    parts.extend(z.sources.iter().map(|(s, at)| format!("source {s} ({at})")));
    (!parts.is_empty()).then(|| format!("zone {} binds {}", z.name, parts.join(", ")))
}

/// The default zone is one the configuration defines.
pub(super) fn firewalld_default_zone(facts: &Facts) -> Result<Outcome, FactError> {
    let c = fwd::config(facts)?;
    let name = &c.default_zone;
    let mut ev = Vec::new();
    let status = match c.zones.get(name) {
        Some(z) => {
            ev.push(format!(
                "the default zone is {name} ({}), defined in {} with target {}",
                c.default_zone_source, z.file, z.target
            ));
            let allowed: Vec<String> = z
                .services
                .iter()
                .map(|s| format!("service {s}"))
                .chain(z.ports.iter().map(|p| format!("port {p}")))
                .collect();
            ev.push(if allowed.is_empty() {
                format!("zone {name} allows no service or port")
            } else {
                format!("zone {name} allows {}", allowed.join(", "))
            });
            Status::Pass
        }
        None => {
            ev.push(format!(
                "the default zone {name} ({}) is not defined in {} or {}: firewalld cannot use it",
                c.default_zone_source,
                fwd::ZONE_DIRS[0],
                fwd::ZONE_DIRS[1]
            ));
            Status::Fail
        }
    };
    ev.extend(c.zones.values().filter_map(bindings));
    ev.push(FIREWALLD_NOTE.into());
    Ok(Outcome::new(status, ev))
}

/// Whether a rich rule drops or rejects traffic of `family` from a source that
/// `is_loopback` accepts, whatever (or any other than) its destination.
fn drops_loopback_source(r: &RichRule, family: &str, is_loopback: fn(&str) -> bool) -> bool {
    let Some(src) = &r.source else {
        return false;
    };
    r.family.as_deref() == Some(family)
        && matches!(r.action.as_deref(), Some("drop" | "reject"))
        && !src.invert
        && is_loopback(&src.address)
        && r.destination
            .as_ref()
            .is_none_or(|d| d.invert || d.address.is_empty())
}

fn v4_loopback(a: &str) -> bool {
    a.starts_with("127.")
}

fn v6_loopback(a: &str) -> bool {
    matches!(a, "::1" | "::1/128")
}

/// firewalld accepts loopback traffic and drops traffic claiming a loopback source.
pub(super) fn firewalld_loopback(facts: &Facts) -> Result<Outcome, FactError> {
    let c = fwd::config(facts)?;
    let (v6_on, v6_why) = ipv6_enabled(facts)?;
    let mut failures = Vec::new();
    let mut found = vec![
        "firewalld accepts every packet arriving on lo before any zone applies (a rule built into the ruleset it generates)"
            .to_string(),
    ];
    // A zone's rules apply to traffic it receives: the default zone's, a zone bound to
    // an interface or a source, and trusted (where the benchmark puts them). A rule in
    // a zone nothing is bound to never sees a packet.
    let active = |z: &&fwd::Zone| {
        z.name == c.default_zone
            || z.name == "trusted"
            || !z.interfaces.is_empty()
            || !z.sources.is_empty()
    };
    let rules = |family: &str, is_lo: fn(&str) -> bool| -> Vec<String> {
        c.zones
            .values()
            .filter(active)
            .flat_map(|z| {
                z.rich_rules
                    .iter()
                    .filter(move |r| drops_loopback_source(r, family, is_lo))
                    .map(move |r| {
                        format!(
                            "{}: zone {}: rule family {family} source {} {} ",
                            r.at,
                            z.name,
                            r.source.as_ref().map_or("", |s| s.address.as_str()),
                            r.action.as_deref().unwrap_or_default()
                        )
                        .trim_end()
                        .to_string()
                    })
            })
            .collect()
    };
    let v4 = rules("ipv4", v4_loopback);
    if v4.is_empty() {
        failures.push(
            "no rich rule in any zone that receives traffic (the default zone, trusted, or one bound to an interface or source) drops or rejects IPv4 traffic from a 127.0.0.0/8 source (family ipv4, source address 127.0.0.1)"
                .to_string(),
        );
    }
    found.extend(v4);
    if v6_on {
        let v6 = rules("ipv6", v6_loopback);
        if v6.is_empty() {
            failures.push(format!(
                "no rich rule in any zone that receives traffic drops or rejects IPv6 traffic from source ::1 ({v6_why})"
            ));
        }
        found.extend(v6);
    } else {
        found.push(format!("IPv6 rules not required: {v6_why}"));
    }
    found.extend(c.zones.values().filter_map(bindings));
    found.push(FIREWALLD_NOTE.into());
    Ok(Outcome::from_findings(failures, found))
}
