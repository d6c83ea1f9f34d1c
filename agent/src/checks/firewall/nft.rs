//! The nftables ruleset as persisted in the file `nftables.service` loads
//! (`/etc/nftables.conf` on Debian) and the files it includes, parsed natively.
//!
//! Understood: `include` (globs; relative paths against the including file's
//! directory, then /etc), `define`/`redefine`/`undefine` and `$variables`, `table`
//! and `chain` blocks and their `add`/`create` command forms, `add`/`insert rule`,
//! `flush ruleset|table|chain`, `delete table|chain`, base chain `type … hook …
//! priority …` and `policy`, table `flags dormant`. Sets, maps, flowtables and
//! stateful objects are skipped. Anonymous sets inside rules are kept as tokens.

use std::collections::HashMap;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::{FactError, Facts};

/// Include nesting deeper than this is reported, not followed.
const MAX_DEPTH: u8 = 16;
/// Words of one statement or variable after `$variable` expansion.
const MAX_WORDS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    LBrace,
    RBrace,
    Semi,
    Newline,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// `path:line`.
    at: String,
}

impl Token {
    fn text(&self) -> &str {
        match &self.tok {
            Tok::Word(s) | Tok::Str(s) => s,
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Semi => ";",
            Tok::Newline => "\n",
            Tok::Comma => ",",
        }
    }
}

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

const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

/// Reads and parses the ruleset starting at `main`.
pub fn load(facts: &Facts, main: &str) -> Result<Ruleset, FactError> {
    let mut rs = Ruleset {
        main: main.to_string(),
        ..Default::default()
    };
    let Some(text) = facts.read(main)? else {
        return Ok(rs);
    };
    rs.main_found = true;
    let mut toks = Vec::new();
    tokenize_file(facts, main, &text, 0, &mut toks, &mut rs)?;
    let mut p = Parser {
        toks,
        i: 0,
        vars: HashMap::new(),
        rs,
    };
    p.seq(Ctx::Top);
    Ok(p.rs)
}

/// Parses ruleset text with no include files.
#[cfg(test)]
pub fn parse_text(text: &str, path: &str) -> Ruleset {
    let mut rs = Ruleset {
        main: path.to_string(),
        main_found: true,
        files: vec![path.to_string()],
        ..Default::default()
    };
    let toks = tokenize(text, path);
    let mut p = Parser {
        toks,
        i: 0,
        vars: HashMap::new(),
        rs: std::mem::take(&mut rs),
    };
    p.seq(Ctx::Top);
    p.rs
}

fn tokenize(text: &str, path: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let at = |l: usize| format!("{path}:{l}");
    let flush = |word: &mut String, out: &mut Vec<Token>, l: usize| {
        if !word.is_empty() {
            out.push(Token {
                tok: Tok::Word(std::mem::take(word)),
                at: at(l),
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, &mut out, line);
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Newline,
                    at: at(line),
                });
                line += 1;
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line += 1;
            }
            '"' => {
                flush(&mut word, &mut out, line);
                let start = line;
                let mut s = String::new();
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        '"' => break,
                        '\n' => {
                            line += 1;
                            s.push(n);
                        }
                        _ => s.push(n),
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    at: at(start),
                });
            }
            '{' | '}' | ';' | ',' | '\n' => {
                flush(&mut word, &mut out, line);
                let tok = match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    ';' => Tok::Semi,
                    ',' => Tok::Comma,
                    _ => Tok::Newline,
                };
                out.push(Token { tok, at: at(line) });
                if c == '\n' {
                    line += 1;
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, line),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out, line);
    out
}

/// Tokenizes a file, replacing `include "…"` statements with the included tokens.
fn tokenize_file(
    facts: &Facts,
    path: &str,
    text: &str,
    depth: u8,
    out: &mut Vec<Token>,
    rs: &mut Ruleset,
) -> Result<(), FactError> {
    rs.files.push(path.to_string());
    let toks = tokenize(text, path);
    let mut i = 0;
    while i < toks.len() {
        let at_start = i == 0
            || matches!(
                toks[i - 1].tok,
                Tok::Newline | Tok::Semi | Tok::LBrace | Tok::RBrace
            );
        if let (true, Tok::Word(w), Some(Tok::Str(target))) =
            (at_start, &toks[i].tok, toks.get(i + 1).map(|t| &t.tok))
        {
            if w == "include" {
                let follow = rs.includes.directive(&toks[i].at, &mut rs.notes);
                if follow && depth >= MAX_DEPTH {
                    rs.notes.push(format!(
                        "{}: include nesting deeper than {MAX_DEPTH}, not followed",
                        toks[i].at
                    ));
                } else if follow {
                    let files = include_files(facts, path, target)?;
                    if files.is_empty() && !target.contains(['*', '?', '[']) {
                        rs.notes
                            .push(format!("{}: included file {target} not found", toks[i].at));
                    }
                    for f in files {
                        if !rs.includes.file() {
                            break;
                        }
                        if let Some(t) = facts.read(&f)? {
                            tokenize_file(facts, &f, &t, depth + 1, out, rs)?;
                            out.push(Token {
                                tok: Tok::Newline,
                                at: f.clone(),
                            });
                        }
                    }
                }
                i += 2;
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    Ok(())
}

fn include_files(facts: &Facts, from: &str, target: &str) -> Result<Vec<String>, FactError> {
    let candidates: Vec<String> = if target.starts_with('/') {
        vec![target.to_string()]
    } else {
        let dir = from.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        vec![format!("{dir}/{target}"), format!("/etc/{target}")]
    };
    for c in candidates {
        let found = if c.contains(['*', '?', '[']) {
            facts.glob(&c)?
        } else if facts.stat(&c)?.is_some() {
            vec![c]
        } else {
            Vec::new()
        };
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}

#[derive(Debug, Clone, Copy)]
enum Ctx {
    Top,
    Table(usize),
    Chain(usize, usize),
}

struct Parser {
    toks: Vec<Token>,
    i: usize,
    vars: HashMap<String, Vec<String>>,
    rs: Ruleset,
}

/// Objects whose block bodies are skipped.
const OPAQUE: [&str; 9] = [
    "set",
    "map",
    "flowtable",
    "counter",
    "quota",
    "ct",
    "limit",
    "secmark",
    "synproxy",
];

impl Parser {
    /// Statements until the closing brace of the current block (consumed) or EOF.
    fn seq(&mut self, ctx: Ctx) {
        loop {
            while self.i < self.toks.len()
                && matches!(self.toks[self.i].tok, Tok::Newline | Tok::Semi)
            {
                self.i += 1;
            }
            let Some(t) = self.toks.get(self.i) else {
                return;
            };
            if t.tok == Tok::RBrace {
                self.i += 1;
                return;
            }
            let at = t.at.clone();
            let mut stmt: Vec<String> = Vec::new();
            let mut opened = false;
            while let Some(t) = self.toks.get(self.i) {
                match &t.tok {
                    Tok::Newline | Tok::Semi => {
                        self.i += 1;
                        break;
                    }
                    Tok::RBrace => break,
                    Tok::LBrace => {
                        self.i += 1;
                        if self.open_block(ctx, &stmt, &at) {
                            opened = true;
                            break;
                        }
                        // An anonymous set or map inside a statement.
                        stmt.push("{".into());
                        stmt.extend(self.literal());
                        stmt.push("}".into());
                    }
                    Tok::Comma => {
                        stmt.push(",".into());
                        self.i += 1;
                    }
                    Tok::Word(_) | Tok::Str(_) => {
                        stmt.push(t.text().to_string());
                        self.i += 1;
                    }
                }
            }
            if !opened && !stmt.is_empty() {
                self.statement(ctx, stmt, &at);
            }
        }
    }

    /// Tokens up to the matching closing brace (consumed), nested braces included.
    fn literal(&mut self) -> Vec<String> {
        let mut depth = 0usize;
        let mut out = Vec::new();
        while let Some(t) = self.toks.get(self.i) {
            self.i += 1;
            match t.tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth == 0 => return out,
                Tok::RBrace => depth -= 1,
                Tok::Newline | Tok::Semi => continue,
                _ => {}
            }
            out.push(t.text().to_string());
        }
        out
    }

    fn skip_block(&mut self) {
        let _ = self.literal();
    }

    /// Whether `stmt {` opens a block here; parses the block if so.
    fn open_block(&mut self, ctx: Ctx, stmt: &[String], at: &str) -> bool {
        let words: Vec<&str> = stmt.iter().map(String::as_str).collect();
        let words = match words.first() {
            Some(&("add" | "create")) => &words[1..],
            _ => &words[..],
        };
        match (ctx, words) {
            (Ctx::Top, ["table", spec @ ..]) => {
                let Some((family, name)) = table_spec(spec) else {
                    return false;
                };
                let t = self.table(&family, &name, at);
                self.seq(Ctx::Table(t));
                true
            }
            (Ctx::Top, ["chain", spec @ ..]) => {
                let Some((family, table, chain)) = chain_spec(spec) else {
                    return false;
                };
                let t = self.table(&family, &table, at);
                let c = self.chain(t, &chain, at);
                self.seq(Ctx::Chain(t, c));
                true
            }
            (Ctx::Table(t), ["chain", name]) => {
                let c = self.chain(t, name, at);
                self.seq(Ctx::Chain(t, c));
                true
            }
            (Ctx::Top | Ctx::Table(_), [kind, ..]) if OPAQUE.contains(kind) => {
                self.skip_block();
                true
            }
            _ => false,
        }
    }

    fn table(&mut self, family: &str, name: &str, at: &str) -> usize {
        if let Some(i) = self
            .rs
            .tables
            .iter()
            .position(|t| t.family == family && t.name == name)
        {
            return i;
        }
        self.rs.tables.push(Table {
            family: family.into(),
            name: name.into(),
            at: at.into(),
            ..Default::default()
        });
        self.rs.tables.len() - 1
    }

    fn chain(&mut self, t: usize, name: &str, at: &str) -> usize {
        let table = &mut self.rs.tables[t];
        table.chain_mut(name, at);
        table
            .chains
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(0)
    }

    fn find_table(&self, family: &str, name: &str) -> Option<usize> {
        self.rs
            .tables
            .iter()
            .position(|t| t.family == family && t.name == name)
    }

    /// Replaces `$name` words with the variable's value, up to [`MAX_WORDS`] words:
    /// variables defined as two copies of the previous one double at each define.
    fn expand(&self, words: Vec<String>, depth: u8) -> Vec<String> {
        let mut out = Vec::new();
        self.expand_into(&words, depth, &mut out);
        out
    }

    fn expand_into(&self, words: &[String], depth: u8, out: &mut Vec<String>) {
        for w in words {
            if out.len() >= MAX_WORDS {
                return;
            }
            match w.strip_prefix('$').and_then(|n| self.vars.get(n)) {
                Some(v) if depth < 8 => self.expand_into(v, depth + 1, out),
                _ => out.push(w.clone()),
            }
        }
    }

    fn statement(&mut self, ctx: Ctx, stmt: Vec<String>, at: &str) {
        let head = stmt[0].as_str();
        if matches!(head, "define" | "redefine") {
            let rest = stmt[1..].join(" ");
            let (name, value) = match rest.split_once('=') {
                Some((n, v)) => (
                    n.trim().to_string(),
                    v.split_whitespace().map(String::from).collect(),
                ),
                None => return,
            };
            let value = self.expand(value, 0);
            self.vars.insert(name, value);
            return;
        }
        if head == "undefine" {
            if let Some(n) = stmt.get(1) {
                self.vars.remove(n);
            }
            return;
        }
        let stmt = self.expand(stmt, 0);
        let words: Vec<&str> = stmt.iter().map(String::as_str).collect();
        match ctx {
            Ctx::Chain(t, c) => self.chain_statement(t, c, &words, at),
            Ctx::Table(t) => {
                if words.first() == Some(&"flags") && words.contains(&"dormant") {
                    self.rs.tables[t].dormant = true;
                } else if let ["chain", name] = words.as_slice() {
                    self.chain(t, name, at);
                }
            }
            Ctx::Top => self.command(&words, at),
        }
    }

    fn chain_statement(&mut self, t: usize, c: usize, words: &[&str], at: &str) {
        let chain = &mut self.rs.tables[t].chains[c];
        match words {
            ["type", kind, "hook", hook, rest @ ..] => {
                let priority = match rest.iter().position(|w| *w == "priority") {
                    Some(p) => rest[p + 1..].join(" "),
                    None => String::new(),
                };
                chain.hook = Some(Hook {
                    kind: kind.to_string(),
                    hook: hook.to_string(),
                    priority,
                });
            }
            ["policy", p] => chain.policy = Some((p.to_string(), at.to_string())),
            ["comment", ..] | ["devices", ..] | ["flags", ..] => {}
            _ => chain.rules.push(Rule {
                tokens: words.iter().map(|w| w.to_string()).collect(),
                at: at.to_string(),
            }),
        }
    }

    fn command(&mut self, words: &[&str], at: &str) {
        match words {
            ["flush", "ruleset", ..] => self.rs.tables.clear(),
            ["flush", "table", spec @ ..] => {
                if let Some((f, n)) = table_spec(spec) {
                    if let Some(t) = self.find_table(&f, &n) {
                        for c in &mut self.rs.tables[t].chains {
                            c.rules.clear();
                        }
                    }
                }
            }
            ["flush", "chain", spec @ ..] => {
                if let Some((f, tn, cn)) = chain_spec(spec) {
                    if let Some(t) = self.find_table(&f, &tn) {
                        if let Some(c) = self.rs.tables[t].chains.iter_mut().find(|c| c.name == cn)
                        {
                            c.rules.clear();
                        }
                    }
                }
            }
            ["delete" | "destroy", "table", spec @ ..] => {
                if let Some((f, n)) = table_spec(spec) {
                    self.rs.tables.retain(|t| !(t.family == f && t.name == n));
                }
            }
            ["delete" | "destroy", "chain", spec @ ..] => {
                if let Some((f, tn, cn)) = chain_spec(spec) {
                    if let Some(t) = self.find_table(&f, &tn) {
                        self.rs.tables[t].chains.retain(|c| c.name != cn);
                    }
                }
            }
            ["add" | "create", "table", spec @ ..] | ["table", spec @ ..] => {
                if let Some((f, n)) = table_spec(spec) {
                    self.table(&f, &n, at);
                }
            }
            ["add" | "create", "chain", spec @ ..] | ["chain", spec @ ..] => {
                if let Some((f, tn, cn)) = chain_spec(spec) {
                    let t = self.table(&f, &tn, at);
                    self.chain(t, &cn, at);
                }
            }
            ["add" | "insert", "rule", rest @ ..] | ["rule", rest @ ..] => {
                let insert = words[0] == "insert";
                let (family, rest) = match rest.first() {
                    Some(f) if FAMILIES.contains(f) && rest.len() > 2 => {
                        (f.to_string(), &rest[1..])
                    }
                    _ => ("ip".to_string(), rest),
                };
                let [table, chain, rule @ ..] = rest else {
                    return;
                };
                let mut rule = rule;
                if let [pos @ ("position" | "index" | "handle"), _, r @ ..] = rule {
                    let _ = pos;
                    rule = r;
                }
                let Some(t) = self.find_table(&family, table) else {
                    return;
                };
                let Some(c) = self.rs.tables[t]
                    .chains
                    .iter()
                    .position(|c| c.name == *chain)
                else {
                    return;
                };
                let r = Rule {
                    tokens: rule.iter().map(|w| w.to_string()).collect(),
                    at: at.to_string(),
                };
                let rules = &mut self.rs.tables[t].chains[c].rules;
                if insert {
                    rules.insert(0, r);
                } else {
                    rules.push(r);
                }
            }
            _ => {}
        }
    }
}

/// `[family] name` → (family, name); the family defaults to `ip`.
fn table_spec(spec: &[&str]) -> Option<(String, String)> {
    match spec {
        [f, n, ..] if FAMILIES.contains(f) => Some((f.to_string(), n.to_string())),
        [n, ..] => Some(("ip".into(), n.to_string())),
        [] => None,
    }
}

/// `[family] table chain` → (family, table, chain).
fn chain_spec(spec: &[&str]) -> Option<(String, String, String)> {
    match spec {
        [f, t, c, ..] if FAMILIES.contains(f) => {
            Some((f.to_string(), t.to_string(), c.to_string()))
        }
        [t, c, ..] => Some(("ip".into(), t.to_string(), c.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
