//! The nftables ruleset as persisted in the file `nftables.service` loads
//! (`/etc/nftables.conf` on Debian) and the files it includes, parsed natively.
//!
//! Understood: `include` (globs; relative paths against the including file's
//! directory, then /etc), `define`/`redefine`/`undefine` and `$variables`, `table`
//! and `chain` blocks and their `add`/`create` command forms, `add`/`insert rule`,
//! `flush ruleset|table|chain`, `delete table|chain`, base chain `type … hook …
//! priority …` and `policy`, table `flags dormant`. Sets, maps, flowtables and
//! stateful objects are skipped. Anonymous sets inside rules are kept as tokens.

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::kv;
use crate::facts::units::unit;
use crate::facts::{Fact, FactError, Facts};

mod lex;
mod parse;

pub use parse::load;
#[cfg(test)]
pub use parse::parse_text;

/// A base chain's hook: `type filter hook input priority 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub kind: String,
    pub hook: String,
    pub priority: String,
}

/// One rule: its tokens (strings unquoted, set braces kept) and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub tokens: Vec<String>,
    pub at: String,
}

impl Rule {
    pub fn describe(&self) -> String {
        format!("{}: {}", self.at, self.tokens.join(" "))
    }

    /// The tokens without statements that do not change what the rule matches or
    /// decides (`counter`, `comment "…"`, `log …`, the `meta` keyword).
    pub fn core(&self) -> Vec<&str> {
        let t: Vec<&str> = self.tokens.iter().map(String::as_str).collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < t.len() {
            match t[i] {
                "counter" => {
                    i += 1;
                    if t.get(i) == Some(&"packets") {
                        i += 4; // packets N bytes M
                    }
                    continue;
                }
                "comment" => {
                    i += 2;
                    continue;
                }
                "log" => {
                    i += 1;
                    while i < t.len()
                        && matches!(
                            t[i],
                            "prefix" | "level" | "group" | "snaplen" | "queue-threshold" | "flags"
                        )
                    {
                        i += 2;
                    }
                    continue;
                }
                "meta"
                    if matches!(t.get(i + 1), Some(&("iif" | "iifname" | "oif" | "oifname"))) =>
                {
                    i += 1;
                    continue;
                }
                w => out.push(w),
            }
            i += 1;
        }
        out
    }

    /// `iif lo accept` (or `iifname "lo"`, `meta iif lo`, with counters/comments).
    pub fn accepts_loopback(&self) -> bool {
        let c = self.core();
        let c: Vec<&str> = c.into_iter().filter(|t| *t != "==").collect();
        matches!(c.as_slice(), ["iif" | "iifname", "lo", "accept"])
    }

    /// Drops (or rejects) traffic from `addrs` for `family` (`ip`/`ip6`), optionally
    /// only when it does not arrive on lo: `ip saddr 127.0.0.0/8 drop`,
    /// `iif != lo ip saddr 127.0.0.0/8 counter drop`.
    pub fn drops_saddr(&self, family: &str, addrs: &[&str]) -> bool {
        let mut c = self.core();
        let Some(verdict) = c.iter().position(|t| matches!(*t, "drop" | "reject")) else {
            return false;
        };
        c.truncate(verdict);
        let mut saddr = false;
        let mut i = 0;
        while i < c.len() {
            match &c[i..] {
                [f, "saddr", a, ..] if *f == family && addrs.contains(a) => {
                    saddr = true;
                    i += 3;
                }
                ["iif" | "iifname", "!=", "lo", ..] => i += 3,
                _ => return false,
            }
        }
        saddr
    }

    /// `jump NAME` / `goto NAME` with no match before it.
    pub fn unconditional_jump(&self) -> Option<&str> {
        match self.core().as_slice() {
            ["jump" | "goto", _] => {
                let i = self
                    .tokens
                    .iter()
                    .position(|t| t == "jump" || t == "goto")?;
                self.tokens.get(i + 1).map(String::as_str)
            }
            _ => None,
        }
    }

    /// Whether the rule matches `proto` traffic to `port` (`tcp dport 22`,
    /// `tcp dport { 22, 80 }`, `th dport 1000-2000`, `meta l4proto tcp th dport 22`).
    pub fn covers_port(&self, proto: &str, port: u16) -> bool {
        let t = &self.tokens;
        let mut i = 0;
        while i + 1 < t.len() {
            if (t[i] == proto || t[i] == "th") && t[i + 1] == "dport" {
                let mut j = i + 2;
                if t.get(j).is_some_and(|x| x == "==") {
                    j += 1;
                }
                let values: Vec<&str> = if t.get(j).is_some_and(|x| x == "{") {
                    t[j + 1..]
                        .iter()
                        .take_while(|x| *x != "}")
                        .map(String::as_str)
                        .filter(|x| *x != ",")
                        .collect()
                } else {
                    t.get(j).map(|x| vec![x.as_str()]).unwrap_or_default()
                };
                if values.iter().any(|v| port_matches(v, port)) {
                    return true;
                }
            }
            i += 1;
        }
        false
    }
}

fn port_matches(v: &str, port: u16) -> bool {
    match v.split_once('-') {
        Some((a, b)) => {
            matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= port && port <= b)
        }
        None => v.parse::<u16>().ok() == Some(port),
    }
}

/// A chain and its rules.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    pub name: String,
    pub at: String,
    pub hook: Option<Hook>,
    /// The chain's policy and where it was set (the default is accept).
    pub policy: Option<(String, String)>,
    pub rules: Vec<Rule>,
}

impl Chain {
    /// `inet filter input (hook input, policy drop) at /etc/nftables.conf:5`.
    pub fn describe(&self, table: &Table) -> String {
        let hook = match &self.hook {
            Some(h) => format!("type {} hook {} priority {}", h.kind, h.hook, h.priority),
            None => "regular chain".into(),
        };
        let policy = match &self.policy {
            Some((p, at)) => format!("policy {p} ({at})"),
            None if self.hook.is_some() => "no policy set; default accept".into(),
            None => String::new(),
        };
        format!(
            "{} {} chain {} ({hook}; {policy}) at {}",
            table.family, table.name, self.name, self.at
        )
        .replace("; )", ")")
    }

    /// A filter base chain on `hook`.
    pub fn is_filter_hook(&self, hook: &str) -> bool {
        self.hook
            .as_ref()
            .is_some_and(|h| h.kind == "filter" && h.hook == hook)
    }

    pub fn policy_drops(&self) -> bool {
        self.policy.as_ref().is_some_and(|(p, _)| p == "drop")
    }
}

/// A table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub family: String,
    pub name: String,
    pub at: String,
    /// `flags dormant`: the table's chains do not see traffic.
    pub dormant: bool,
    pub chains: Vec<Chain>,
}

impl Table {
    /// Whether the table filters IPv4 (`ip`, `inet`) or IPv6 (`ip6`, `inet`) traffic.
    pub fn covers(&self, v6: bool) -> bool {
        match self.family.as_str() {
            "inet" => true,
            "ip" => !v6,
            "ip6" => v6,
            _ => false,
        }
    }

    fn chain_mut(&mut self, name: &str, at: &str) -> &mut Chain {
        if let Some(i) = self.chains.iter().position(|c| c.name == name) {
            return &mut self.chains[i];
        }
        self.chains.push(Chain {
            name: name.to_string(),
            at: at.to_string(),
            ..Default::default()
        });
        self.chains.last_mut().expect("just pushed")
    }

    /// Rules of `chain` and of the chains it jumps to unconditionally.
    pub fn reachable<'a>(&'a self, chain: &'a Chain) -> Vec<&'a Rule> {
        let mut seen = vec![chain.name.as_str()];
        let mut todo = vec![chain];
        let mut out = Vec::new();
        while let Some(c) = todo.pop() {
            for r in &c.rules {
                out.push(r);
                if let Some(target) = r.unconditional_jump() {
                    if !seen.contains(&target) {
                        if let Some(next) = self.chains.iter().find(|x| x.name == target) {
                            seen.push(&next.name);
                            todo.push(next);
                        }
                    }
                }
            }
        }
        out
    }
}

/// The parsed ruleset.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    /// The file parsed first.
    pub main: String,
    pub main_found: bool,
    pub tables: Vec<Table>,
    /// Every file read, in order.
    pub files: Vec<String>,
    /// What could not be followed (include depth, missing include files, …).
    pub notes: Vec<String>,
    /// Include statements and the files they name, for the whole ruleset.
    includes: IncludeBudget,
}

impl Ruleset {
    /// Tables whose chains see traffic.
    pub fn active_tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.iter().filter(|t| !t.dormant)
    }
}

/// The file nftables.service loads unless its ExecStart= names another.
pub const NFT_DEFAULT_FILE: &str = "/etc/nftables.conf";

/// The file nftables.service loads: the `-f` argument of its last ExecStart=.
pub fn nft_main_file(facts: &Facts) -> Result<String, FactError> {
    let u = unit(facts, "nftables.service")?;
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

/// The ruleset nftables.service loads at boot, read once per scan.
pub fn ruleset(facts: &Facts) -> Result<Arc<Ruleset>, FactError> {
    facts.get::<Ruleset>()
}

impl Fact for Ruleset {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let main = nft_main_file(facts)?;
        load(facts, &main)
    }
}

#[cfg(test)]
mod tests;
