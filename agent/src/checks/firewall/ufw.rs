//! ufw: its switches, default policies and the rules it persists.

use super::{ipv6_enabled, PERSISTED_NOTE};
use crate::facts::iptables as ipt;
use crate::facts::sockets::{listeners, Listener, Proto};
use crate::facts::sysctl;
use crate::facts::ufw::{self as ufw_conf, UFW_CONF, UFW_DEFAULTS};
use crate::facts::units::unit;
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

// ---------------------------------------------------------------------------
// ufw
// ---------------------------------------------------------------------------

pub(super) fn ufw_enabled(facts: &Facts) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match ufw_conf::setting(facts, UFW_CONF, "ENABLED")? {
        Some(s) if s.value.eq_ignore_ascii_case("yes") => found.push(s.describe()),
        Some(s) => failures.push(format!("{}: ufw is not enabled", s.describe())),
        None => failures.push(format!("{UFW_CONF}: ENABLED not set; default no")),
    }
    let u = unit(facts, "ufw.service")?;
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

pub(super) fn ufw_default_deny(facts: &Facts) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let deny = |v: &str| v.eq_ignore_ascii_case("DROP") || v.eq_ignore_ascii_case("REJECT");
    for (key, what) in [
        ("DEFAULT_INPUT_POLICY", "incoming"),
        ("DEFAULT_OUTPUT_POLICY", "outgoing"),
    ] {
        match ufw_conf::setting(facts, UFW_DEFAULTS, key)? {
            Some(s) if deny(&s.value) => found.push(s.describe()),
            Some(s) => failures.push(format!(
                "{}: {what} traffic is allowed by default",
                s.describe()
            )),
            None => failures.push(format!("{UFW_DEFAULTS}: {key} not set")),
        }
    }
    match ufw_conf::setting(facts, UFW_DEFAULTS, "DEFAULT_FORWARD_POLICY")? {
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
        match ufw_conf::setting(facts, UFW_DEFAULTS, "IPV6")? {
            Some(s) if s.value.eq_ignore_ascii_case("no") => failures.push(format!(
                "{}: ufw leaves IPv6 unfiltered while {why}",
                s.describe()
            )),
            _ => {}
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

/// Whether the system forwards packets (then ufw's routed policy matters): live, the
/// running kernel's switches; offline, their values once boot is done, as the sysctl
/// rules read them (systemd-sysctl's files, then ufw's own file when ufw is switched
/// on), each read as the kernel reads it: any value but 0 switches forwarding on.
pub(super) fn ip_forwarding(facts: &Facts) -> Result<(bool, String), FactError> {
    const KEYS: [&str; 2] = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"];
    let is_on = |v: &str| sysctl::kernel_int(v).is_some_and(|n| n != 0);
    if facts.is_live() {
        let v4 = sysctl::runtime_value(facts, KEYS[0])?;
        let v6 = sysctl::runtime_value(facts, KEYS[1])?;
        let on = v4.as_deref().is_some_and(is_on) || v6.as_deref().is_some_and(is_on);
        return Ok((
            on,
            format!(
                "/proc/sys: net.ipv4.ip_forward = {}, net.ipv6.conf.all.forwarding = {}",
                v4.as_deref().unwrap_or("absent"),
                v6.as_deref().unwrap_or("absent")
            ),
        ));
    }
    let mut lines = Vec::new();
    let mut on = false;
    for key in KEYS {
        let (value, note) = sysctl::boot_value(facts, key)?;
        if let sysctl::Persisted::Set { value, source, .. } = value {
            on |= is_on(&value);
            lines.push(format!("{source}: {key} = {value}"));
            lines.extend(note);
        }
    }
    if lines.is_empty() {
        lines.push("no persisted setting enables IP forwarding (kernel default 0)".into());
    }
    Ok((on, lines.join("; ")))
}

pub(super) const UFW_IN: [&str; 2] = ["ufw-before-input", "ufw-user-input"];
pub(super) const UFW_OUT: [&str; 2] = ["ufw-before-output", "ufw-user-output"];
pub(super) const UFW6_IN: [&str; 2] = ["ufw6-before-input", "ufw6-user-input"];
pub(super) const UFW6_OUT: [&str; 2] = ["ufw6-before-output", "ufw6-user-output"];

pub(super) fn ufw_loopback(facts: &Facts) -> Result<Outcome, FactError> {
    let rules = ufw_conf::rules(facts)?;
    let (v4, v6, read) = &*rules;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    if read.is_empty() {
        failures.push("no ufw rules file found in /etc/ufw".into());
    }
    let (v6_on, why) = ipv6_enabled(facts)?;
    let mut families = vec![("IPv4", v4, UFW_IN, UFW_OUT, "127.0.0.0/8")];
    if v6_on {
        if ufw_conf::setting(facts, UFW_DEFAULTS, "IPV6")?
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

pub(super) fn judge_rule(
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
pub(super) fn open_ports(
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
pub(super) fn judge_ports(
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

pub(super) fn ufw_open_ports(facts: &Facts) -> Result<Outcome, FactError> {
    let rules = ufw_conf::rules(facts)?;
    let (v4, v6, _) = &*rules;
    let ls = listeners(facts)?;
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
        open_ports(&ls, |_| true),
        covering,
        "/etc/ufw/user.rules, user6.rules, before.rules or before6.rules",
    ))
}
