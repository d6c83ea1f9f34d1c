//! nftables rules: judged from the persisted ruleset the service loads at boot.

use std::sync::Arc;

use super::ufw::{judge_ports, open_ports};
use super::{ipv6_enabled, PERSISTED_NOTE};
use crate::facts::nftables as nft;
use crate::facts::sockets::{listeners, Proto};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

// ---------------------------------------------------------------------------
// nftables
// ---------------------------------------------------------------------------

/// The ruleset, or a failing outcome when its file is missing.
pub(super) fn nft_or_fail(facts: &Facts) -> Result<Result<Arc<nft::Ruleset>, Outcome>, FactError> {
    let r = nft::ruleset(facts)?;
    if !r.main_found {
        return Ok(Err(Outcome::fail(format!(
            "{} not found: nftables.service loads no rules at boot",
            r.main
        ))));
    }
    Ok(Ok(r))
}

pub(super) fn nft_note(rs: &nft::Ruleset) -> String {
    format!("read {}; {PERSISTED_NOTE}", rs.files.join(", "))
}

pub(super) fn nft_tables(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
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
    ev.push(nft_note(&rs));
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

pub(super) fn nft_base_chains(facts: &Facts, hooks: &[String]) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
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
    found.push(nft_note(&rs));
    Ok(Outcome::from_findings(failures, found))
}

pub(super) fn nft_families(
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

pub(super) fn nft_default_deny(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
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
    found.push(nft_note(&rs));
    Ok(Outcome::from_findings(failures, found))
}

pub(super) fn nft_loopback(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
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
    found.push(nft_note(&rs));
    Ok(Outcome::from_findings(failures, found))
}

pub(super) fn nft_open_ports(facts: &Facts) -> Result<Outcome, FactError> {
    let rs = match nft_or_fail(facts)? {
        Ok(rs) => rs,
        Err(o) => return Ok(o),
    };
    let ls = listeners(facts)?;
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
    Ok(judge_ports(open_ports(&ls, |_| true), covering, &rs.main))
}
