//! iptables and ip6tables rules as iptables-persistent restores them.

use std::sync::Arc;

use super::ufw::{judge_ports, judge_rule, open_ports};
use super::{IpFamily, PERSISTED_NOTE};
use crate::facts::iptables as ipt;
use crate::facts::sockets::{listeners, Listener, Proto};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

// ---------------------------------------------------------------------------
// iptables (iptables-persistent)
// ---------------------------------------------------------------------------

pub(super) fn ipt_file(family: IpFamily) -> &'static str {
    match family {
        IpFamily::Ipv4 => ipt::RULES_V4,
        IpFamily::Ipv6 => ipt::RULES_V6,
    }
}

/// The persisted rules of `family`, or a failing outcome when the file is missing.
pub(super) fn ipt_rules(
    facts: &Facts,
    family: IpFamily,
) -> Result<Result<Arc<ipt::Ruleset>, Outcome>, FactError> {
    let path = ipt_file(family);
    match ipt::rules_file(facts, path)? {
        None => Ok(Err(Outcome::fail(format!(
            "{path} not found: no {} rules are restored at boot, so every chain accepts",
            if family == IpFamily::Ipv4 {
                "IPv4"
            } else {
                "IPv6"
            }
        )))),
        Some(rs) => Ok(Ok(rs)),
    }
}

pub(super) fn ipt_default_deny(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
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

pub(super) fn ipt_loopback(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
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

pub(super) fn ipt_open_ports(facts: &Facts, family: IpFamily) -> Result<Outcome, FactError> {
    let rs = match ipt_rules(facts, family)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let ls = listeners(facts)?;
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
        open_ports(&ls, include),
        covering,
        ipt_file(family),
    ))
}
