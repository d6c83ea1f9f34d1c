//! The nftables parser: statements, blocks and commands into a [`Ruleset`].

use std::collections::HashMap;

use super::lex::{tokenize_file, Tok, Token};
use super::{Hook, Rule, Ruleset, Table};
use crate::facts::{FactError, Facts};

/// Words of one statement or variable after `$variable` expansion.
const MAX_WORDS: usize = 4096;

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
    use super::lex::tokenize;
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
