//! Rules in iptables-save / iptables-restore format, as persisted by
//! iptables-persistent (`/etc/iptables/rules.v4`, `rules.v6`) and as written by ufw
//! (`/etc/ufw/*.rules`): `*table`, `:CHAIN POLICY [counters]`, `-A CHAIN …`, `COMMIT`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::facts::{FactError, Facts, KeyedFact};

/// The IPv4 rules iptables-persistent restores at boot.
pub const RULES_V4: &str = "/etc/iptables/rules.v4";
/// The IPv6 rules iptables-persistent restores at boot.
pub const RULES_V6: &str = "/etc/iptables/rules.v6";

/// One `-A`/`-I` rule, its options decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub table: String,
    pub chain: String,
    /// `path:line: text` for evidence.
    pub source: String,
    /// `-i` value, negated when the bool is true.
    pub in_iface: Option<(bool, String)>,
    pub out_iface: Option<(bool, String)>,
    pub src: Option<(bool, String)>,
    pub dst: Option<(bool, String)>,
    pub proto: Option<(bool, String)>,
    /// Destination ports (`--dport`, `--dports`), as inclusive ranges.
    pub dports: Option<(bool, Vec<(u16, u16)>)>,
    /// `-j`/`-g` target.
    pub target: Option<String>,
    /// Other match options (`--ctstate NEW`, `--sport 67`, …), which narrow the rule.
    pub other: Vec<String>,
}

impl Rule {
    /// No narrowing match besides the interface options.
    fn only_iface(&self) -> bool {
        self.src.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.dports.is_none()
            && self.other.is_empty()
    }

    /// `-i lo -j ACCEPT` (nothing else narrowing it).
    pub fn accepts_loopback_in(&self) -> bool {
        self.only_iface()
            && self.out_iface.is_none()
            && self
                .in_iface
                .as_ref()
                .is_some_and(|(neg, i)| !neg && i == "lo")
            && self.target.as_deref() == Some("ACCEPT")
    }

    /// `-o lo -j ACCEPT`.
    pub fn accepts_loopback_out(&self) -> bool {
        self.only_iface()
            && self.in_iface.is_none()
            && self
                .out_iface
                .as_ref()
                .is_some_and(|(neg, i)| !neg && i == "lo")
            && self.target.as_deref() == Some("ACCEPT")
    }

    /// Drops (or rejects) everything from one of `sources`, optionally only when it
    /// does not arrive on lo.
    pub fn drops_source(&self, sources: &[&str]) -> bool {
        let src_ok = self
            .src
            .as_ref()
            .is_some_and(|(neg, s)| !neg && sources.contains(&s.as_str()));
        let iface_ok = match &self.in_iface {
            None => true,
            Some((neg, i)) => *neg && i == "lo",
        };
        src_ok
            && iface_ok
            && self.out_iface.is_none()
            && self.dst.is_none()
            && self.proto.is_none()
            && self.dports.is_none()
            && self.other.is_empty()
            && matches!(self.target.as_deref(), Some("DROP" | "REJECT"))
    }

    /// Whether this rule matches traffic to `port`/`proto` specifically.
    pub fn covers_port(&self, proto: &str, port: u16) -> bool {
        let Some((false, ranges)) = &self.dports else {
            return false;
        };
        let proto_ok = match &self.proto {
            None => true,
            Some((false, p)) => p == proto || p == "all",
            Some((true, p)) => p != proto,
        };
        proto_ok && ranges.iter().any(|(a, b)| *a <= port && port <= *b)
    }
}

/// A parsed rules file.
#[derive(Debug, Clone, Default)]
pub struct Ruleset {
    /// (table, chain) → (policy, `path:line`) for built-in chains; `-` for user chains.
    pub chains: BTreeMap<(String, String), (String, String)>,
    pub rules: Vec<Rule>,
}

impl Ruleset {
    /// Policy of a built-in chain of the filter table, with where it was set.
    pub fn policy(&self, chain: &str) -> Option<&(String, String)> {
        self.chains.get(&("filter".to_string(), chain.to_string()))
    }

    /// Rules of the filter table in `chain` and in every user chain reached from it
    /// by a jump. With `unconditional_only`, only jumps with no match are followed.
    pub fn reachable(&self, chain: &str, unconditional_only: bool) -> Vec<&Rule> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![chain.to_string()];
        let mut out = Vec::new();
        while let Some(c) = todo.pop() {
            if !seen.insert(c.clone()) || seen.len() > 1000 {
                continue;
            }
            for r in self
                .rules
                .iter()
                .filter(|r| r.table == "filter" && r.chain == c)
            {
                out.push(r);
                if let Some(t) = &r.target {
                    let user_chain = self
                        .chains
                        .get(&("filter".to_string(), t.clone()))
                        .is_some_and(|(p, _)| p == "-");
                    if user_chain
                        && (!unconditional_only
                            || (r.only_iface() && r.in_iface.is_none() && r.out_iface.is_none()))
                    {
                        todo.push(t.clone());
                    }
                }
            }
        }
        out
    }
}

/// Splits a rule line into words, honouring double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = line.chars();
    let mut has = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_q => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_q = !in_q;
                has = true;
            }
            c if c.is_whitespace() && !in_q => {
                if has || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => cur.push(c),
        }
    }
    if has || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `22`, `1000:2000`, `80,443,8000:8080`. Service names are not resolved (ports are
/// saved numerically by iptables-save and ufw).
fn parse_ports(s: &str) -> Vec<(u16, u16)> {
    s.split(',')
        .filter_map(|p| match p.split_once(':') {
            Some((a, b)) => {
                let a = if a.is_empty() {
                    Some(0)
                } else {
                    a.parse().ok()
                };
                let b = if b.is_empty() {
                    Some(u16::MAX)
                } else {
                    b.parse().ok()
                };
                Some((a?, b?))
            }
            None => p.parse().ok().map(|n| (n, n)),
        })
        .collect()
}

/// The rules file at `path` (iptables-persistent's), parsed; `None` when it is
/// missing. Read once per scan and path.
pub fn rules_file(facts: &Facts, path: &str) -> Result<Option<Arc<Ruleset>>, FactError> {
    Ok((*facts.get_keyed::<RulesFile>(path)?).clone())
}

/// An iptables-save file at a path, parsed (`None` when missing), as a fact.
struct RulesFile;

impl KeyedFact for RulesFile {
    type Key = str;
    type Value = Option<Arc<Ruleset>>;
    fn read(facts: &Facts, path: &str) -> Result<Self::Value, FactError> {
        Ok(facts.read(path)?.map(|t| Arc::new(parse(&t, path))))
    }
}

/// Parses rules in iptables-save format. Unknown lines are ignored.
pub fn parse(text: &str, path: &str) -> Ruleset {
    let mut rs = Ruleset::default();
    let mut table = "filter".to_string();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let source = format!("{path}:{}", n + 1);
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
            continue;
        }
        if let Some(c) = line.strip_prefix(':') {
            let mut w = c.split_whitespace();
            if let (Some(chain), Some(policy)) = (w.next(), w.next()) {
                rs.chains.insert(
                    (table.clone(), chain.to_string()),
                    (policy.to_ascii_uppercase(), source),
                );
            }
            continue;
        }
        // `iptables-save -c` puts packet counters before each rule: `[12:3456] -A …`.
        let line = match line.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map(|(_, r)| r.trim()).unwrap_or(line),
            None => line,
        };
        let w = words(line);
        let (cmd, chain) = match (w.first().map(String::as_str), w.get(1)) {
            (Some("-A" | "--append" | "-I" | "--insert"), Some(c)) => (w[0].as_str(), c.clone()),
            (Some("-P" | "--policy"), Some(c)) => {
                if let Some(p) = w.get(2) {
                    rs.chains
                        .insert((table.clone(), c.clone()), (p.to_ascii_uppercase(), source));
                }
                continue;
            }
            _ => continue,
        };
        let mut rule = Rule {
            table: table.clone(),
            chain,
            source: format!("{source}: {line}"),
            ..Default::default()
        };
        let mut i = 2;
        // `-I CHAIN 3`: a rule number may follow the chain.
        if matches!(cmd, "-I" | "--insert") && w.get(i).is_some_and(|x| x.parse::<u32>().is_ok()) {
            i += 1;
        }
        let mut neg = false;
        while i < w.len() {
            let opt = w[i].as_str();
            let val = w.get(i + 1).cloned().unwrap_or_default();
            let take = |slot: &mut Option<(bool, String)>| {
                *slot = Some((neg, val.clone()));
                2
            };
            let step = match opt {
                "!" => {
                    neg = true;
                    i += 1;
                    continue;
                }
                "-i" | "--in-interface" => take(&mut rule.in_iface),
                "-o" | "--out-interface" => take(&mut rule.out_iface),
                "-s" | "--source" | "--src" => take(&mut rule.src),
                "-d" | "--destination" | "--dst" => take(&mut rule.dst),
                "-p" | "--protocol" => {
                    rule.proto = Some((neg, val.to_ascii_lowercase()));
                    2
                }
                "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                    rule.dports = Some((neg, parse_ports(&val)));
                    2
                }
                "-j" | "--jump" | "-g" | "--goto" => {
                    rule.target = Some(val.clone());
                    // Target options (`--reject-with …`, `--log-prefix …`) follow.
                    let mut j = i + 2;
                    while j < w.len() && w[j] != "!" && !is_match_option(&w[j]) {
                        j += 1;
                    }
                    j - i
                }
                "-m" | "--match" => 2,
                "--comment" => 2,
                o if o.starts_with('-') => {
                    // Any other match option narrows the rule; keep it with its values.
                    let mut j = i + 1;
                    let mut text = if neg { format!("! {o}") } else { o.to_string() };
                    while j < w.len() && !w[j].starts_with('-') && w[j] != "!" {
                        text.push(' ');
                        text.push_str(&w[j]);
                        j += 1;
                    }
                    rule.other.push(text);
                    j - i
                }
                _ => 1,
            };
            neg = false;
            i += step;
        }
        // A `-s 127.0.0.1/8`-style address is normalised by iptables-save; compare
        // the common spellings of whole-network sources.
        if let Some((_, s)) = &mut rule.src {
            *s = normalize_addr(s);
        }
        rs.rules.push(rule);
    }
    rs
}

fn is_match_option(w: &str) -> bool {
    matches!(
        w,
        "-i" | "--in-interface"
            | "-o"
            | "--out-interface"
            | "-s"
            | "--source"
            | "-d"
            | "--destination"
            | "-p"
            | "--protocol"
            | "-m"
            | "--match"
            | "--dport"
            | "--dports"
    )
}

/// `::1` → `::1/128`, `127.0.0.0/255.0.0.0` → `127.0.0.0/8`.
fn normalize_addr(s: &str) -> String {
    match s {
        "::1" => "::1/128".into(),
        "127.0.0.0/255.0.0.0" => "127.0.0.0/8".into(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str =
        "# Generated by iptables-save\n*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n\
:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [5:300]\n:SSH - [0:0]\n\
-A INPUT -i lo -j ACCEPT\n-A OUTPUT -o lo -j ACCEPT\n-A INPUT -s 127.0.0.0/8 ! -i lo -j DROP\n\
-A INPUT -j SSH\n-A SSH -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT\n\
-A INPUT -p udp -m multiport --dports 53,6000:6007 -m comment --comment \"dns and x\" -j ACCEPT\n\
-A INPUT -p tcp -j REJECT --reject-with tcp-reset\nCOMMIT\n";

    #[test]
    fn parses_policies_and_rules() {
        let rs = parse(V4, "/r");
        assert_eq!(rs.policy("INPUT").unwrap().0, "DROP");
        assert_eq!(rs.policy("OUTPUT").unwrap().0, "ACCEPT");
        assert!(rs.chains.contains_key(&("nat".into(), "PREROUTING".into())));
        assert!(rs.rules[0].accepts_loopback_in());
        assert!(rs.rules[1].accepts_loopback_out());
        assert!(rs.rules[2].drops_source(&["127.0.0.0/8"]));
        let input = rs.reachable("INPUT", false);
        assert!(
            input.iter().any(|r| r.covers_port("tcp", 22)),
            "jump to SSH followed"
        );
        assert!(input.iter().any(|r| r.covers_port("udp", 6003)));
        assert!(!input.iter().any(|r| r.covers_port("tcp", 53)));
        let reject = rs.rules.last().unwrap();
        assert_eq!(reject.target.as_deref(), Some("REJECT"));
        assert!(reject.other.is_empty(), "{:?}", reject.other);
    }

    #[test]
    fn narrowed_loopback_rules_do_not_count() {
        let rs = parse("*filter\n-A INPUT -i lo -p tcp -j ACCEPT\n-A INPUT ! -i lo -j ACCEPT\n-A INPUT -s 127.0.0.0/8 -p udp -j DROP\n", "/r");
        assert!(!rs.rules[0].accepts_loopback_in());
        assert!(!rs.rules[1].accepts_loopback_in());
        assert!(!rs.rules[2].drops_source(&["127.0.0.0/8"]));
    }

    #[test]
    fn counters_before_rules() {
        let rs = parse(
            "*filter\n:INPUT DROP [10:600]\n[3:180] -A INPUT -i lo -j ACCEPT\n",
            "/r",
        );
        assert!(rs.rules[0].accepts_loopback_in());
    }

    #[test]
    fn garbage_is_ignored() {
        let rs = parse("\u{0}\u{1}garbage\n-A\n-A INPUT --dport\n:X\n-A INPUT -p tcp --dport 99999 -j ACCEPT\n", "/r");
        assert_eq!(rs.rules.len(), 2);
        assert!(!rs.rules[1].covers_port("tcp", 0));
    }
}
