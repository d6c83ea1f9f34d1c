//! rsyslog's configuration: /etc/rsyslog.conf and its includes, split into statements
//! (legacy `$Directive`s, RainerScript objects, selector lines).

use std::collections::HashSet;
use std::sync::Arc;

use crate::facts::{Fact, FactError, Facts, FileKind};

/// One rsyslog statement (a legacy `$Directive`, a RainerScript object such as
/// `module(...)`, or a selector line), joined across lines, comments removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    /// `path:line` of its first line.
    pub source: String,
}

/// The rsyslog configuration: statements in the order rsyslog reads them, with
/// include files expanded in place.
#[derive(Debug, Clone, Default)]
pub struct Rsyslog {
    pub statements: Vec<Statement>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
}

/// Reads /etc/rsyslog.conf and its includes once per scan.
pub fn rsyslog(facts: &Facts) -> Result<Arc<Rsyslog>, FactError> {
    facts.get::<Rsyslog>()
}

impl Fact for Rsyslog {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut r = Rsyslog::default();
        let mut seen = HashSet::new();
        read_rsyslog_file(facts, "/etc/rsyslog.conf", 0, &mut seen, &mut r)?;
        Ok(r)
    }
}

pub const MAX_INCLUDE_DEPTH: usize = 16;

pub fn read_rsyslog_file(
    facts: &Facts,
    path: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    r: &mut Rsyslog,
) -> Result<(), FactError> {
    if depth > MAX_INCLUDE_DEPTH || !seen.insert(path.to_string()) {
        r.notes.push(format!(
            "{path}: include loop or nesting too deep; not read again"
        ));
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        return Ok(());
    };
    r.files.push(path.to_string());
    for st in split_statements(&text, path) {
        match include_target(&st.text) {
            Some(target) => {
                for f in expand_include(facts, &target)? {
                    read_rsyslog_file(facts, &f, depth + 1, seen, r)?;
                }
            }
            None => r.statements.push(st),
        }
    }
    Ok(())
}

/// The path named by `$IncludeConfig` or `include(file=...)`, if `text` is one.
pub fn include_target(text: &str) -> Option<String> {
    if let Some((d, arg)) = legacy_directive(text) {
        return (d == "includeconfig").then(|| arg.trim().to_string());
    }
    let (name, params) = rainer_object(text)?;
    if name != "include" {
        return None;
    }
    params
        .into_iter()
        .find(|(k, _)| k == "file")
        .map(|(_, v)| v)
}

/// Files an include names: a glob, a directory (all its files), or one file.
pub fn expand_include(facts: &Facts, target: &str) -> Result<Vec<String>, FactError> {
    if !target.starts_with('/') {
        return Ok(Vec::new());
    }
    let hidden = |p: &String| p.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
    if target.contains(['*', '?', '[']) {
        let mut v = facts.glob(target)?;
        v.retain(|p| !hidden(p));
        return Ok(v);
    }
    match facts.stat(target)? {
        Some(m) if m.kind == FileKind::Dir => facts.dir_files(target, ""),
        Some(_) => Ok(vec![target.to_string()]),
        None => Ok(Vec::new()),
    }
}

/// `$Directive args` → (lower-case directive, args).
pub fn legacy_directive(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('$')?;
    let (d, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((d.to_ascii_lowercase(), arg.trim()))
}

/// `name(k="v" k2="v2")` → (lower-case name, [(lower-case key, value)]).
pub fn rainer_object(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let open = text.find('(')?;
    // `*.* action(...)` and `if … then action(...)`: the object is the last word.
    let name = text[..open].split_whitespace().last()?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let body = text[open + 1..].trim_end();
    let body = body.strip_suffix(')').unwrap_or(body);
    let mut params = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.push((key, value));
        rest = tail;
    }
    Some((name.to_ascii_lowercase(), params))
}

/// Splits rsyslog text into statements: `#` comments (outside quotes) and `/* */`
/// comments removed, RainerScript objects joined until their parenthesis closes,
/// backslash continuations joined.
pub fn split_statements(text: &str, path: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let mut depth: i32 = 0;
    let mut in_block_comment = false;
    for (n, raw) in text.lines().enumerate() {
        let mut line = String::new();
        let mut in_quote = false;
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if in_block_comment {
                if c == '*' && chars.get(i + 1) == Some(&'/') {
                    in_block_comment = false;
                    i += 1;
                }
                i += 1;
                continue;
            }
            if !in_quote && c == '/' && chars.get(i + 1) == Some(&'*') {
                in_block_comment = true;
                i += 2;
                continue;
            }
            if c == '"' && (i == 0 || chars[i - 1] != '\\') {
                in_quote = !in_quote;
            }
            if !in_quote && c == '#' {
                break;
            }
            if !in_quote {
                if c == '(' {
                    depth += 1;
                } else if c == ')' {
                    depth -= 1;
                }
            }
            line.push(c);
            i += 1;
        }
        let trimmed = line.trim();
        if cur.is_empty() {
            if trimmed.is_empty() {
                depth = depth.max(0);
                continue;
            }
            start = n + 1;
        } else if !trimmed.is_empty() {
            cur.push(' ');
        }
        let continued = trimmed.ends_with('\\') && depth <= 0;
        cur.push_str(trimmed.trim_end_matches('\\').trim_end());
        if depth <= 0 && !continued {
            depth = 0;
            out.push(Statement {
                text: std::mem::take(&mut cur),
                source: format!("{path}:{start}"),
            });
        }
    }
    if !cur.trim().is_empty() {
        out.push(Statement {
            text: cur,
            source: format!("{path}:{start}"),
        });
    }
    out
}
