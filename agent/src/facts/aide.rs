//! AIDE: its configuration (selection rules and attribute groups, as AIDE reads
//! its configuration file — /etc/aide/aide.conf on Debian and Ubuntu, /etc/aide.conf
//! on RHEL and Amazon Linux — with its includes and macros) and whether its database
//! exists. Whether a periodic check is scheduled is judged by the audit checks
//! (`checks::audit::schedule`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::facts::{FactError, Facts, FileKind, KeyedFact};

use self::regex::Regex;

pub mod regex;

/// Debian's and Ubuntu's configuration file (the default of the checks).
pub const AIDE_CONF: &str = "/etc/aide/aide.conf";

/// A selection line.
#[derive(Debug, Clone)]
pub struct Selection {
    pub kind: SelKind,
    pub pattern: String,
    pub regex: Option<Regex>,
    /// Restricted to file types that exclude regular files.
    pub not_for_files: bool,
    /// Expanded attributes (empty for negative rules).
    pub attrs: BTreeSet<String>,
    /// Names in the expression that are neither attributes nor known groups.
    pub unknown: Vec<String>,
    pub source: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelKind {
    Regular,
    Equals,
    Negative,
}

/// The parsed AIDE configuration.
#[derive(Debug, Clone, Default)]
pub struct AideConf {
    pub rules: Vec<Selection>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
    /// Configuration options (`database_in=…`), lower-cased names, macros
    /// expanded, last assignment winning: (value, file:line).
    pub options: HashMap<String, (String, String)>,
}

/// Attributes AIDE knows by name.
const ATTRS: &[&str] = &[
    "p",
    "i",
    "l",
    "n",
    "u",
    "g",
    "s",
    "b",
    "m",
    "a",
    "c",
    "S",
    "I",
    "ftype",
    "fstype",
    "acl",
    "selinux",
    "xattrs",
    "e2fsattrs",
    "caps",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "sha512_256",
    "sha3_256",
    "sha3_512",
    "rmd160",
    "tiger",
    "haval",
    "gost",
    "crc32",
    "crc32b",
    "whirlpool",
    "stribog256",
    "stribog512",
    "ANF",
    "ARF",
    "growing",
    "compressed",
];

/// AIDE's predefined groups (0.18, as Debian builds it).
fn builtin_groups() -> HashMap<String, BTreeSet<String>> {
    let set = |s: &str| s.split('+').map(String::from).collect::<BTreeSet<String>>();
    let x = "acl+selinux+xattrs+e2fsattrs+caps";
    let h = "md5+sha1+sha256+sha512+rmd160+tiger+crc32+haval+gost+whirlpool+stribog256+stribog512";
    let mut g = HashMap::new();
    g.insert("X".to_string(), set(x));
    g.insert("H".to_string(), set(h));
    g.insert(
        "R".to_string(),
        set(&format!("p+ftype+i+l+n+u+g+s+m+c+md5+{x}")),
    );
    g.insert("L".to_string(), set(&format!("p+ftype+i+l+n+u+g+{x}")));
    g.insert(
        ">".to_string(),
        set(&format!("p+ftype+l+u+g+i+n+s+growing+{x}")),
    );
    g.insert("E".to_string(), BTreeSet::new());
    g
}

/// Configuration options that look like group definitions (`name=value`). AIDE's
/// options are lower case; group names may hold capitals, digits and underscores
/// (RHEL's aide.conf defines `CONTENT_EX`).
fn is_option(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && (name.contains('_') || matches!(name, "database" | "verbose" | "grouped"))
}

/// Expands an attribute expression (`p+i+R-m`) with the groups known so far.
fn expand(
    expr: &str,
    groups: &HashMap<String, BTreeSet<String>>,
) -> (BTreeSet<String>, Vec<String>) {
    let mut out = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut op = '+';
    let mut name = String::new();
    let apply = |op: char, name: &str, out: &mut BTreeSet<String>, unknown: &mut Vec<String>| {
        if name.is_empty() {
            return;
        }
        let items: BTreeSet<String> = if let Some(g) = groups.get(name) {
            g.clone()
        } else if ATTRS.contains(&name) {
            std::iter::once(name.to_string()).collect()
        } else {
            unknown.push(name.to_string());
            BTreeSet::new()
        };
        if op == '+' {
            out.extend(items);
        } else {
            for i in items {
                out.remove(&i);
            }
        }
    };
    for c in expr.chars() {
        if c == '+' || c == '-' {
            apply(op, &name, &mut out, &mut unknown);
            name.clear();
            op = c;
        } else if !c.is_whitespace() {
            name.push(c);
        }
    }
    apply(op, &name, &mut out, &mut unknown);
    (out, unknown)
}

/// AIDE's node for a rule: the literal prefix, cut at the last `/` when a regex
/// character follows.
fn node_of(pattern: &str) -> String {
    let mut lit = String::new();
    let mut chars = pattern.chars().peekable();
    let mut cut = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) => lit.push(e),
                None => break,
            },
            '(' | '^' | '$' | '*' | '[' | '?' | '.' | '+' | '|' | '{' => {
                cut = true;
                break;
            }
            c => lit.push(c),
        }
    }
    if cut {
        match lit.rfind('/') {
            Some(0) | None => "/".into(),
            Some(i) => lit[..i].to_string(),
        }
    } else {
        let t = lit.trim_end_matches('/');
        if t.is_empty() {
            "/".into()
        } else {
            t.to_string()
        }
    }
}

fn depth(node: &str) -> usize {
    node.split('/').filter(|c| !c.is_empty()).count()
}

fn node_contains(node: &str, path: &str) -> bool {
    node == "/" || node == path || path.strip_prefix(node).is_some_and(|r| r.starts_with('/'))
}

/// Reads the AIDE configuration at `path` once per scan.
pub fn aide_conf(facts: &Facts, path: &str) -> Result<Arc<AideConf>, FactError> {
    facts.get_keyed::<AideConf>(path)
}

impl KeyedFact for AideConf {
    type Key = str;
    type Value = Self;
    fn read(facts: &Facts, path: &str) -> Result<Self, FactError> {
        let mut st = State {
            conf: AideConf::default(),
            groups: builtin_groups(),
            vars: HashMap::new(),
            cond: Vec::new(),
            seen: HashSet::new(),
        };
        let hostname = facts
            .read("/etc/hostname")
            .ok()
            .flatten()
            .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
            .unwrap_or_default();
        st.vars.insert("HOSTNAME".into(), hostname);
        read_file(facts, path, 0, &mut st)?;
        Ok(st.conf)
    }
}

struct State {
    conf: AideConf,
    groups: HashMap<String, BTreeSet<String>>,
    vars: HashMap<String, String>,
    /// Nested @@if states: (this branch active, some branch taken).
    cond: Vec<(bool, bool)>,
    seen: HashSet<String>,
}

impl State {
    fn active(&self) -> bool {
        self.cond.iter().all(|(a, _)| *a)
    }
    /// Replaces `@@{NAME}` with the variable's value. The result stops at
    /// [`MAX_VALUE_BYTES`]: defines that each hold two copies of the previous one
    /// double at every line.
    fn subst(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("@@{") {
            out.push_str(&rest[..i]);
            match rest[i + 3..].find('}') {
                Some(j) => {
                    let name = &rest[i + 3..i + 3 + j];
                    out.push_str(self.vars.get(name).map(String::as_str).unwrap_or(""));
                    rest = &rest[i + 3 + j + 1..];
                    if out.len() > MAX_VALUE_BYTES {
                        let mut end = MAX_VALUE_BYTES;
                        while !out.is_char_boundary(end) {
                            end -= 1;
                        }
                        out.truncate(end);
                        return out;
                    }
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

const MAX_DEPTH: usize = 16;
/// The longest line or variable value after `@@{NAME}` substitution.
const MAX_VALUE_BYTES: usize = 64 * 1024;

fn read_file(facts: &Facts, path: &str, level: usize, st: &mut State) -> Result<(), FactError> {
    if level > MAX_DEPTH || !st.seen.insert(path.to_string()) {
        st.conf.notes.push(format!(
            "{path}: include loop or nesting deeper than {MAX_DEPTH}; not read again"
        ));
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        if level > 0 {
            st.conf
                .notes
                .push(format!("{path}: included but not found"));
        }
        return Ok(());
    };
    st.conf.files.push(path.to_string());
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let source = format!("{path}:{}", n + 1);
        if let Some(m) = line.strip_prefix("@@") {
            macro_line(facts, m, &source, level, st)?;
            continue;
        }
        if !st.active() {
            continue;
        }
        let line = st.subst(line);
        let first = line.chars().next().unwrap_or(' ');
        if matches!(first, '/' | '=' | '!' | '-') {
            selection(&line, &source, st);
        } else if let Some((name, expr)) = line.split_once('=') {
            let name = name.trim();
            if is_option(name) {
                st.conf.options.insert(
                    name.to_ascii_lowercase(),
                    (expr.trim().to_string(), source.clone()),
                );
            } else if !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                let (attrs, unknown) = expand(expr.trim(), &st.groups);
                if !unknown.is_empty() {
                    st.conf.notes.push(format!(
                        "{source}: unknown names {} in group {name}",
                        unknown.join(", ")
                    ));
                }
                st.groups.insert(name.to_string(), attrs);
            }
        }
    }
    Ok(())
}

fn macro_line(
    facts: &Facts,
    m: &str,
    source: &str,
    level: usize,
    st: &mut State,
) -> Result<(), FactError> {
    let m = m.trim();
    let (word, rest) = m.split_once(char::is_whitespace).unwrap_or((m, ""));
    let rest = rest.trim();
    match word {
        "if" | "ifdef" | "ifndef" | "ifhost" | "ifnhost" => {
            let v = if st.active() {
                eval_cond(facts, word, rest, st)
            } else {
                false
            };
            st.cond.push((v, v));
        }
        "else" => {
            if let Some((a, taken)) = st.cond.last_mut() {
                *a = !*taken;
                *taken = true;
            }
        }
        "endif" => {
            st.cond.pop();
        }
        _ if !st.active() => {}
        "define" => {
            let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let v = st.subst(v.trim());
            st.vars.insert(k.to_string(), v);
        }
        "undef" => {
            st.vars.remove(rest);
        }
        "include" | "x_include" => {
            let rest = st.subst(rest);
            let args: Vec<&str> = rest.split_whitespace().collect();
            let Some(target) = args.first() else {
                return Ok(());
            };
            if let Some(re) = args.get(1) {
                let Some(re) = Regex::new(re) else {
                    st.conf.notes.push(format!(
                        "{source}: include pattern {re} not understood; not followed"
                    ));
                    return Ok(());
                };
                for name in facts.list_dir(target)? {
                    let p = format!("{}/{name}", target.trim_end_matches('/'));
                    let Some(meta) = facts.stat(&p)? else {
                        continue;
                    };
                    if meta.kind != FileKind::File || !re.matches_prefix(&name) {
                        continue;
                    }
                    if word == "x_include" && meta.mode & 0o111 != 0 {
                        st.conf.notes.push(format!("{p}: executable include (its output is the config); not run, not judged"));
                        continue;
                    }
                    read_file(facts, &p, level + 1, st)?;
                }
            } else {
                read_file(facts, target, level + 1, st)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn eval_cond(facts: &Facts, word: &str, rest: &str, st: &State) -> bool {
    match word {
        "ifdef" => st.vars.contains_key(rest),
        "ifndef" => !st.vars.contains_key(rest),
        "ifhost" => st.vars.get("HOSTNAME").is_some_and(|h| h == rest),
        "ifnhost" => st.vars.get("HOSTNAME").is_none_or(|h| h != rest),
        _ => {
            let (neg, expr) = match rest.strip_prefix("not ") {
                Some(e) => (true, e.trim()),
                None => (false, rest),
            };
            let (f, arg) = expr.split_once(char::is_whitespace).unwrap_or((expr, ""));
            let arg = st.subst(arg.trim());
            let v = match f {
                "defined" => st.vars.contains_key(arg.as_str()),
                "hostname" => st.vars.get("HOSTNAME").is_some_and(|h| *h == arg),
                "exists" => facts.lstat(&arg).ok().flatten().is_some(),
                _ => false,
            };
            v != neg
        }
    }
}

fn selection(line: &str, source: &str, st: &mut State) {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = toks.first() else { return };
    let (kind, pattern) = if let Some(p) = first.strip_prefix('!') {
        (SelKind::Negative, p)
    } else if let Some(p) = first.strip_prefix('-') {
        (SelKind::Negative, p)
    } else if let Some(p) = first.strip_prefix('=') {
        (SelKind::Equals, p)
    } else {
        (SelKind::Regular, *first)
    };
    let pattern = decode_url(pattern);
    let (restriction, expr) = match (kind, toks.len()) {
        (SelKind::Negative, 2) => (Some(toks[1]), None),
        (SelKind::Negative, _) => (None, None),
        (_, 2) => (None, Some(toks[1])),
        (_, n) if n >= 3 => (Some(toks[1]), Some(toks[2])),
        _ => {
            st.conf.notes.push(format!(
                "{source}: {line}: selection line without attributes"
            ));
            return;
        }
    };
    // A file-type restriction that leaves out regular files (`d`, `l`, …).
    let not_for_files = restriction.is_some_and(|r| {
        let types = r.split('=').next().unwrap_or("");
        !types.is_empty() && types != "0" && !types.split(',').any(|t| t == "f")
    });
    let (attrs, unknown) = match expr {
        Some(e) => expand(e, &st.groups),
        None => (BTreeSet::new(), Vec::new()),
    };
    let regex = Regex::new(&pattern);
    if regex.is_none() {
        st.conf.notes.push(format!(
            "{source}: pattern {pattern} not understood; rule ignored"
        ));
    }
    st.conf.rules.push(Selection {
        kind,
        pattern,
        regex,
        not_for_files,
        attrs,
        unknown,
        source: source.to_string(),
        text: line.to_string(),
    });
}

/// `%20` style escapes in AIDE paths.
fn decode_url(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What AIDE does with one regular file.
pub enum Verdict<'a> {
    /// Added with the attributes of this rule.
    Rule(&'a Selection),
    /// Excluded by a negative rule.
    Excluded(&'a Selection),
    /// No rule selects it.
    NotSelected,
}

/// The rule AIDE applies to regular file `path`: any matching negative rule
/// excludes it; otherwise the deepest node with a matching rule decides, the first
/// matching rule in that node winning (equals rules only in the deepest node).
pub fn verdict<'a>(conf: &'a AideConf, path: &str) -> Verdict<'a> {
    let usable: Vec<&Selection> = conf
        .rules
        .iter()
        .filter(|r| r.regex.is_some() && !r.not_for_files)
        .collect();
    for r in &usable {
        if r.kind == SelKind::Negative && r.regex.as_ref().is_some_and(|x| x.matches_prefix(path)) {
            return Verdict::Excluded(r);
        }
    }
    let mut nodes: Vec<String> = usable
        .iter()
        .filter(|r| r.kind != SelKind::Negative)
        .map(|r| node_of(&r.pattern))
        .filter(|n| node_contains(n, path))
        .collect();
    nodes.sort_by_key(|n| std::cmp::Reverse(depth(n)));
    nodes.dedup();
    let deepest = nodes.first().cloned();
    for node in &nodes {
        let top = Some(node) == deepest.as_ref();
        // In the deepest node equals rules are tried before regular ones; above it
        // only regular rules apply.
        let in_node = |k: SelKind| {
            usable
                .iter()
                .filter(move |r| r.kind == k && node_of(&r.pattern) == *node)
        };
        let candidates: Vec<&&Selection> = if top {
            in_node(SelKind::Equals)
                .chain(in_node(SelKind::Regular))
                .collect()
        } else {
            in_node(SelKind::Regular).collect()
        };
        for r in candidates {
            let Some(re) = &r.regex else { continue };
            let hit = match r.kind {
                SelKind::Equals => {
                    Some(node) == deepest.as_ref()
                        && (re.matches_full(path)
                            || (r.pattern.ends_with('/')
                                && path.rsplit_once('/').is_some_and(|(d, _)| d == node)))
                }
                _ => re.matches_prefix(path),
            };
            if hit {
                return Verdict::Rule(r);
            }
        }
    }
    Verdict::NotSelected
}

// ---------------------------------------------------------------------------
// Database

/// The database AIDE compares against: `database_in` (or the older `database`) of
/// the configuration, as (value, file:line).
pub fn database_option(conf: &AideConf) -> Option<&(String, String)> {
    conf.options
        .get("database_in")
        .or_else(|| conf.options.get("database"))
}

/// Judges whether the database named by the configuration at `path` exists:
/// (found, evidence).
pub fn database(facts: &Facts, path: &str) -> Result<(bool, Vec<String>), FactError> {
    let conf = aide_conf(facts, path)?;
    if conf.files.is_empty() {
        return Ok((
            false,
            vec![format!(
                "{path} not found: AIDE is not installed or not configured"
            )],
        ));
    }
    let Some((url, source)) = database_option(&conf) else {
        return Ok((
            false,
            vec![format!(
                "no database_in in {}: cannot tell where AIDE keeps its database",
                conf.files.join(", ")
            )],
        ));
    };
    let set = format!("{source}: database_in={url}");
    let Some(db) = url
        .strip_prefix("file://")
        .or_else(|| url.strip_prefix("file:"))
        .filter(|p| p.starts_with('/'))
    else {
        return Ok((
            false,
            vec![
                set,
                "the database is not a local file: its presence cannot be confirmed".into(),
            ],
        ));
    };
    Ok(match facts.stat(db)? {
        Some(m) if m.kind == FileKind::File && m.size > 0 => (
            true,
            vec![set, format!("{db}: regular file of {} bytes", m.size)],
        ),
        Some(m) if m.kind == FileKind::File => (
            false,
            vec![set, format!("{db} is empty: the database was never built")],
        ),
        Some(_) => (false, vec![set, format!("{db} is not a regular file")]),
        None => (
            false,
            vec![
                set,
                format!("{db} not found: the database was never initialised (aide --init)"),
            ],
        ),
    })
}

#[cfg(test)]
mod tests;
