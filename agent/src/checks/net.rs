//! `net.*` checks: sockets listening on the running system, read natively from
//! `/proc/net/{tcp,tcp6,udp,udp6}`, and the listening configuration of mail transfer
//! agents (postfix, exim4, sendmail, OpenSMTPD) as persisted in their config files.
//!
//! The socket table is a fact ([`crate::facts::sockets`]) shared with the firewall
//! family: rules that demand a firewall rule for every open port compare it with the
//! persisted rules.

use std::net::IpAddr;

use serde::Deserialize;

use crate::facts::packages::packages;
use crate::facts::sockets::{is_loopback, listeners, Proto};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// The `net.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// No mail transfer agent accepts connections from the network on `ports`
    /// (default 25, 465, 587): on a live system no TCP socket on those ports listens
    /// on a non-loopback address, and the configuration of every installed MTA
    /// (postfix `inet_interfaces` and master.cf, exim4 `local_interfaces`, sendmail
    /// `DaemonPortOptions`, OpenSMTPD `listen on`) binds loopback only.
    #[serde(rename = "net.mta_local_only")]
    MtaLocalOnly {
        #[serde(default = "default_mta_ports")]
        ports: Vec<u16>,
    },
}

fn default_mta_ports() -> Vec<u16> {
    vec![25, 465, 587]
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self {
            Check::MtaLocalOnly { ports } => match mta_local_only(facts, ports) {
                Ok(o) => o,
                Err(e) => e.into(),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// Mail transfer agents
// ---------------------------------------------------------------------------

/// Packages whose daemon can listen for SMTP, and the parser of their configuration:
/// Debian's names, and RHEL's and Amazon Linux's `sendmail` (same /etc/mail/sendmail.cf).
const MTA_PACKAGES: [&str; 6] = [
    "postfix",
    "exim4-daemon-light",
    "exim4-daemon-heavy",
    "sendmail-bin",
    "sendmail",
    "opensmtpd",
];

/// What the configuration of one MTA says: `exposed` lists the reasons it would
/// accept mail from the network; `found` the lines read.
#[derive(Debug, Default)]
struct MtaFinding {
    exposed: Vec<String>,
    found: Vec<String>,
}

fn mta_local_only(facts: &Facts, ports: &[u16]) -> Result<Outcome, FactError> {
    let pk = packages(facts)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();

    let port_list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if facts.is_live() {
        let ls = listeners(facts)?;
        let mut any = false;
        for l in ls
            .iter()
            .filter(|l| l.proto == Proto::Tcp && ports.contains(&l.port))
        {
            any = true;
            if l.is_loopback() {
                found.push(format!("listening on loopback only: {}", l.describe()));
            } else {
                failures.push(format!(
                    "listening on a non-loopback address: {}",
                    l.describe()
                ));
            }
        }
        if !any {
            found.push(format!(
                "no TCP socket listens on port {port_list} (/proc/net/tcp, /proc/net/tcp6)"
            ));
        }
    } else {
        found.push(
            "offline root: listening sockets not examined; judging the MTA configuration".into(),
        );
    }

    let installed: Vec<&str> = MTA_PACKAGES
        .iter()
        .copied()
        .filter(|p| pk.is_installed(p))
        .collect();
    if installed.is_empty() {
        found.push(format!(
            "no MTA daemon package ({}) is installed ({})",
            MTA_PACKAGES.join(", "),
            pk.source
        ));
    }
    let mut judged_exim = false;
    let mut judged_sendmail = false;
    for p in &installed {
        let f = match *p {
            "postfix" => postfix(facts, ports)?,
            "exim4-daemon-light" | "exim4-daemon-heavy" if !judged_exim => {
                judged_exim = true;
                exim(facts)?
            }
            "sendmail-bin" | "sendmail" if !judged_sendmail => {
                judged_sendmail = true;
                sendmail(facts, ports)?
            }
            "opensmtpd" => opensmtpd(facts, ports)?,
            _ => continue,
        };
        found.push(pk.describe(p));
        failures.extend(f.exposed);
        found.extend(f.found);
    }
    Ok(Outcome::from_findings(failures, found))
}

/// Whether a configured address or host name means loopback. Unknown names count as
/// non-loopback: only what is certainly local passes.
fn is_loopback_name(s: &str) -> bool {
    let s = s.trim().trim_start_matches('[').trim_end_matches(']');
    let s = s.split('%').next().unwrap_or(s);
    if s.eq_ignore_ascii_case("localhost") || s.eq_ignore_ascii_case("loopback-only") {
        return true;
    }
    let s = s.split('/').next().unwrap_or(s);
    s.parse::<IpAddr>()
        .map(|a| is_loopback(&a))
        .unwrap_or(false)
}

/// Port numbers of the SMTP service names MTAs use.
fn smtp_port(name: &str) -> Option<u16> {
    match name.to_ascii_lowercase().as_str() {
        "smtp" => Some(25),
        "submission" => Some(587),
        "submissions" | "smtps" | "urd" => Some(465),
        n => n.parse().ok(),
    }
}

/// Logical lines of a postfix file: `#` comments only at line start; lines starting
/// with whitespace continue the previous one. Returns (line number, text).
fn postfix_logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(t);
                continue;
            }
        }
        out.push((n + 1, t.to_string()));
    }
    out
}

/// Expands `$name` and `${name}` references from main.cf parameters (a few levels).
fn postfix_expand(
    value: &str,
    params: &std::collections::HashMap<String, String>,
    depth: u8,
) -> String {
    if depth > 8 || !value.contains('$') {
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) => (&inner[..j], &inner[j + 1..]),
                None => (inner, ""),
            }
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(j) => (&inner[..j], &inner[j + 1..]),
                None => (inner, ""),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        match params.get(name) {
            Some(v) => out.push_str(&postfix_expand(v, params, depth + 1)),
            // An unknown parameter (e.g. $myhostname left at its default) is kept as
            // written and then judged not to be loopback.
            None => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn postfix(facts: &Facts, ports: &[u16]) -> Result<MtaFinding, FactError> {
    let mut f = MtaFinding::default();
    let main = "/etc/postfix/main.cf";
    let Some(text) = facts.read(main)? else {
        f.found.push(format!(
            "{main} not found: postfix is not configured and does not start"
        ));
        return Ok(f);
    };
    let mut params = std::collections::HashMap::new();
    let mut inet: Option<(String, String)> = None;
    for (n, line) in postfix_logical_lines(&text) {
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            if k == "inet_interfaces" {
                inet = Some((format!("{main}:{n}: inet_interfaces = {v}"), v.clone()));
            }
            params.insert(k, v);
        }
    }
    let (inet_line, inet_value) = match &inet {
        Some((l, v)) => (l.clone(), postfix_expand(v, &params, 0)),
        None => (
            format!("{main}: inet_interfaces not set; postfix default is all"),
            "all".to_string(),
        ),
    };
    let items: Vec<&str> = inet_value
        .split([',', ' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect();
    let inet_loopback = !items.is_empty() && items.iter().all(|i| is_loopback_name(i));

    // master.cf decides which SMTP services listen at all, and may bind a service to
    // an explicit host instead of inet_interfaces.
    let master = "/etc/postfix/master.cf";
    let mut smtp_services: Vec<(String, Option<String>)> = Vec::new();
    match facts.read(master)? {
        Some(mt) => {
            for (n, line) in postfix_logical_lines(&mt) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 2 || fields[1] != "inet" {
                    continue;
                }
                let service = fields[0];
                let (host, port) = match service.rsplit_once(':') {
                    Some((h, p)) => (Some(h.to_string()), p),
                    None => (None, service),
                };
                if smtp_port(port).is_some_and(|p| ports.contains(&p)) {
                    smtp_services.push((format!("{master}:{n}: {line}"), host));
                }
            }
            if smtp_services.is_empty() {
                f.found.push(format!("{master}: no inet service on port {ports:?}; postfix accepts no SMTP from the network"));
                f.found.push(inet_line);
                return Ok(f);
            }
        }
        None => smtp_services.push((
            format!("{master} not found; assuming the default smtp inet service"),
            None,
        )),
    }
    let uses_inet = smtp_services.iter().any(|(_, host)| host.is_none());
    for (line, host) in smtp_services {
        match host {
            Some(h) if is_loopback_name(&h) => f.found.push(format!("{line} (bound to loopback)")),
            Some(h) => f
                .exposed
                .push(format!("{line}: bound to {h}, not loopback")),
            None if inet_loopback => f.found.push(format!("{line} (uses inet_interfaces)")),
            None => f.exposed.push(format!("{line} (uses inet_interfaces)")),
        }
    }
    if !uses_inet {
        f.found.push(format!(
            "{inet_line} (not used: every SMTP service names its address)"
        ));
    } else if inet_loopback {
        f.found.push(format!("{inet_line} (loopback only)"));
    } else {
        f.exposed.push(format!(
            "{inet_line}: not loopback-only (effective value: {inet_value})"
        ));
    }
    Ok(f)
}

/// Splits an exim list: `<X` at the start sets the separator, else `:` with `::`
/// standing for a literal colon.
fn exim_list(value: &str) -> Vec<String> {
    let v = value.trim();
    if let Some(rest) = v.strip_prefix('<') {
        let mut chars = rest.chars();
        if let Some(sep) = chars.next() {
            if !sep.is_alphanumeric() && !sep.is_whitespace() {
                return chars
                    .as_str()
                    .split(sep)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
        }
    }
    v.replace("::", "\u{1}")
        .split(':')
        .map(|s| s.replace('\u{1}', ":").trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// An exim interface item may carry a port: `127.0.0.1.25` or `[::1]:25`.
fn exim_item_is_loopback(item: &str) -> bool {
    if is_loopback_name(item) {
        return true;
    }
    if let Some(rest) = item.strip_prefix('[') {
        if let Some((a, _)) = rest.split_once(']') {
            return is_loopback_name(a);
        }
    }
    match item.rsplit_once('.') {
        Some((a, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => a
            .parse::<IpAddr>()
            .map(|a| is_loopback(&a))
            .unwrap_or(false),
        _ => false,
    }
}

fn exim(facts: &Facts) -> Result<MtaFinding, FactError> {
    let mut f = MtaFinding::default();
    let judge = |f: &mut MtaFinding, line: String, items: Vec<String>| {
        if items.is_empty() {
            f.exposed
                .push(format!("{line}: empty, exim listens on every interface"));
        } else if items.iter().all(|i| exim_item_is_loopback(i)) {
            f.found.push(format!("{line} (loopback only)"));
        } else {
            f.exposed.push(format!("{line}: not loopback-only"));
        }
    };
    // A hand-written /etc/exim4/exim4.conf replaces the Debian-generated configuration.
    let custom = "/etc/exim4/exim4.conf";
    if let Some(text) = facts.read(custom)? {
        let mut last = None;
        for (n, raw) in text.lines().enumerate() {
            let t = raw.trim();
            if t.starts_with("begin ") {
                break; // main options end where the first driver section begins
            }
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == "local_interfaces" {
                    last = Some((
                        format!("{custom}:{}: local_interfaces = {}", n + 1, v.trim()),
                        v.trim().to_string(),
                    ));
                }
            }
        }
        match last {
            Some((line, v)) => judge(&mut f, line, exim_list(&v)),
            None => f.exposed.push(format!(
                "{custom}: local_interfaces not set; exim default is every interface"
            )),
        }
        return Ok(f);
    }
    let conf = "/etc/exim4/update-exim4.conf.conf";
    let Some(text) = facts.read(conf)? else {
        f.exposed.push(format!(
            "{conf} not found: cannot confirm exim4 listens on loopback only"
        ));
        return Ok(f);
    };
    let settings = crate::facts::kv::parse(&text, conf, crate::facts::kv::Separator::Equals);
    match crate::facts::kv::last(&settings, "dc_local_interfaces", false) {
        Some(s) => {
            let items = s
                .value
                .split(';')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect();
            judge(&mut f, s.describe(), items)
        }
        None => f.exposed.push(format!(
            "{conf}: dc_local_interfaces not set; exim listens on every interface"
        )),
    }
    Ok(f)
}

fn sendmail(facts: &Facts, ports: &[u16]) -> Result<MtaFinding, FactError> {
    let mut f = MtaFinding::default();
    let cf = "/etc/mail/sendmail.cf";
    let Some(text) = facts.read(cf)? else {
        f.exposed.push(format!(
            "{cf} not found: cannot confirm sendmail listens on loopback only"
        ));
        return Ok(f);
    };
    let mut daemons = 0;
    for (n, raw) in text.lines().enumerate() {
        let Some(opts) = raw.strip_prefix("O DaemonPortOptions=") else {
            continue;
        };
        daemons += 1;
        let mut port = 25;
        let mut addr = None;
        for kv in opts.split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "port" => port = smtp_port(v.trim()).unwrap_or(0),
                    "addr" => addr = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
        let line = format!("{cf}:{}: {}", n + 1, raw.trim());
        if !ports.contains(&port) {
            f.found
                .push(format!("{line} (not an SMTP port checked here)"));
        } else if addr.as_deref().is_some_and(is_loopback_name) {
            f.found.push(format!("{line} (loopback only)"));
        } else {
            f.exposed.push(format!("{line}: not bound to loopback"));
        }
    }
    if daemons == 0 {
        f.exposed.push(format!(
            "{cf}: no DaemonPortOptions; sendmail listens on port 25 of every interface"
        ));
    }
    Ok(f)
}

fn opensmtpd(facts: &Facts, ports: &[u16]) -> Result<MtaFinding, FactError> {
    let mut f = MtaFinding::default();
    let conf = "/etc/smtpd.conf";
    let Some(text) = facts.read(conf)? else {
        f.found
            .push(format!("{conf} not found: OpenSMTPD does not start"));
        return Ok(f);
    };
    let mut any = false;
    for (n, raw) in text.lines().enumerate() {
        let line = crate::facts::strip_comment(raw);
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() < 3 || w[0] != "listen" || w[1] != "on" || w[2] == "socket" {
            continue;
        }
        any = true;
        let mut port = if w.contains(&"smtps") { 465 } else { 25 };
        if let Some(i) = w.iter().position(|t| *t == "port") {
            port = w.get(i + 1).and_then(|p| smtp_port(p)).unwrap_or(0);
        }
        let desc = format!("{conf}:{}: {line}", n + 1);
        if !ports.contains(&port) {
            f.found
                .push(format!("{desc} (not an SMTP port checked here)"));
        } else if w[2] == "lo" || w[2] == "lo0" || is_loopback_name(w[2]) {
            f.found.push(format!("{desc} (loopback only)"));
        } else {
            f.exposed.push(format!("{desc}: not loopback"));
        }
    }
    if !any {
        f.found
            .push(format!("{conf}: no `listen on` network directive"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests;
