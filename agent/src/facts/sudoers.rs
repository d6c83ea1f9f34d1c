//! A static reader of sudo's policy: /etc/sudoers with `@include`/`#include` (paths
//! relative to the including file's directory) and `@includedir`/`#includedir`
//! (files in name order, skipping names that contain `.` or end in `~`), read at
//! the point of inclusion. `Defaults` entries are kept in order with their binding
//! (`Defaults:user`, `@host`, `!cmnd`, `>runas`); other lines are kept for tag
//! searches.

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::Fact;
use crate::facts::{FactError, Facts};

pub const SUDOERS: &str = "/etc/sudoers";
const MAX_DEPTH: usize = 32;

/// How a Defaults entry sets its option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `name`
    On,
    /// `!name`
    Off,
    /// `name=value` (also `+=` and `-=`).
    Value(String),
}

/// One option of a Defaults line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultsEntry {
    /// `None` for a global `Defaults`; else the binding, e.g. `:alice` or `>root`.
    pub binding: Option<String>,
    pub name: String,
    pub op: Op,
    /// `path:line`.
    pub source: String,
    /// The entry as written.
    pub text: String,
}

impl DefaultsEntry {
    pub fn describe(&self) -> String {
        let b = self.binding.as_deref().unwrap_or("");
        format!("{}: Defaults{b} {}", self.source, self.text)
    }
}

/// A non-Defaults rule line (user specification or alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleLine {
    pub source: String,
    pub text: String,
}

/// Everything read from the sudoers files.
#[derive(Debug, Clone, Default)]
pub struct Sudoers {
    pub defaults: Vec<DefaultsEntry>,
    pub rules: Vec<RuleLine>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
    /// Include directives and files of included directories, for the whole policy.
    included: IncludeBudget,
}

impl Sudoers {
    /// The last global setting of `name` (later entries override earlier ones).
    pub fn global(&self, name: &str) -> Option<&DefaultsEntry> {
        self.defaults
            .iter()
            .rev()
            .find(|d| d.binding.is_none() && d.name == name)
    }

    /// Settings of `name` bound to users, hosts, commands or run-as users.
    pub fn bound(&self, name: &str) -> Vec<&DefaultsEntry> {
        self.defaults
            .iter()
            .filter(|d| d.binding.is_some() && d.name == name)
            .collect()
    }
}

/// The sudoers policy of the root, read once per scan.
pub fn sudoers(facts: &Facts) -> Result<Arc<Sudoers>, FactError> {
    facts.get::<Sudoers>()
}

impl Fact for Sudoers {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut s = Sudoers::default();
        match facts.read(SUDOERS)? {
            None => s.notes.push(format!("{SUDOERS} does not exist")),
            Some(t) => {
                s.files.push(SUDOERS.to_string());
                parse(facts, &mut s, SUDOERS, &t, 0)?;
            }
        }
        Ok(s)
    }
}

fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => "/",
    }
}

fn resolve_path(from: &str, p: &str) -> String {
    let p = p.trim_matches('"');
    if p.starts_with('/') {
        p.to_string()
    } else {
        format!("{}/{p}", dir_of(from).trim_end_matches('/'))
    }
}

fn parse(
    facts: &Facts,
    s: &mut Sudoers,
    path: &str,
    text: &str,
    depth: usize,
) -> Result<(), FactError> {
    for (n, line) in logical_lines(text) {
        let source = format!("{path}:{n}");
        let trimmed = line.trim();
        let directive = ["@includedir", "#includedir", "@include", "#include"]
            .iter()
            .find(|d| {
                trimmed
                    .strip_prefix(**d)
                    .is_some_and(|r| r.starts_with([' ', '\t']))
            });
        if let Some(d) = directive {
            let arg = trimmed[d.len()..].trim();
            if !s.included.directive(&source, &mut s.notes) {
                continue;
            }
            if depth + 1 > MAX_DEPTH {
                s.notes.push(format!("{source}: includes nested too deep"));
                continue;
            }
            let target = resolve_path(path, arg);
            if d.ends_with("dir") {
                for name in facts.list_dir(&target)? {
                    if name.contains('.') || name.ends_with('~') {
                        continue;
                    }
                    let f = format!("{}/{name}", target.trim_end_matches('/'));
                    let Some(t) = facts.read(&f).ok().flatten() else {
                        continue;
                    };
                    if !s.included.file() {
                        break;
                    }
                    s.files.push(f.clone());
                    parse(facts, s, &f, &t, depth + 1)?;
                }
            } else {
                match facts.read(&target)? {
                    Some(t) => {
                        s.files.push(target.clone());
                        parse(facts, s, &target, &t, depth + 1)?;
                    }
                    None => s
                        .notes
                        .push(format!("{source}: included file {target} does not exist")),
                }
            }
            continue;
        }
        let body = strip_comment(trimmed);
        let body = body.trim();
        if body.is_empty() {
            continue;
        }
        if let Some(rest) = body.strip_prefix("Defaults") {
            let (binding, opts) = match rest.chars().next() {
                Some(c) if [':', '@', '!', '>'].contains(&c) => {
                    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                    (Some(rest[..end].to_string()), &rest[end..])
                }
                Some(c) if c == ' ' || c == '\t' => (None, rest),
                _ => {
                    s.rules.push(RuleLine {
                        source,
                        text: body.to_string(),
                    });
                    continue;
                }
            };
            for opt in split_options(opts) {
                let (name, op) = parse_option(&opt);
                if name.is_empty() {
                    continue;
                }
                s.defaults.push(DefaultsEntry {
                    binding: binding.clone(),
                    name,
                    op,
                    source: source.clone(),
                    text: opt.clone(),
                });
            }
            continue;
        }
        s.rules.push(RuleLine {
            source,
            text: body.to_string(),
        });
    }
    Ok(())
}

/// Lines with backslash continuations joined, numbered by their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if acc.is_empty() {
            start = i + 1;
        }
        let t = raw.trim_end();
        if let Some(body) = t.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            continue;
        }
        acc.push_str(t);
        out.push((start, std::mem::take(&mut acc)));
    }
    if !acc.is_empty() {
        out.push((start, acc));
    }
    out
}

/// Removes a comment: `#` at the start of a word, outside quotes, and not followed
/// by a digit (`#1000` is a user ID).
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    let mut in_quote = false;
    for i in 0..b.len() {
        match b[i] {
            b'"' if i == 0 || b[i - 1] != b'\\' => in_quote = !in_quote,
            b'#' if !in_quote => {
                let word_start = i == 0 || b[i - 1].is_ascii_whitespace() || b[i - 1] == b',';
                let uid = b.get(i + 1).is_some_and(|c| c.is_ascii_digit());
                if word_start && !uid {
                    return &line[..i];
                }
            }
            _ => {}
        }
    }
    line
}

/// Splits a Defaults option list on commas outside double quotes.
fn split_options(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '"' if prev != '\\' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            ',' if !in_quote => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out.retain(|o| !o.is_empty());
    out
}

fn parse_option(opt: &str) -> (String, Op) {
    let mut o = opt.trim();
    let mut neg = false;
    while let Some(r) = o.strip_prefix('!') {
        neg = !neg;
        o = r.trim_start();
    }
    if let Some(eq) = o.find('=') {
        let name = o[..eq].trim_end_matches(['+', '-']).trim().to_string();
        let value = o[eq + 1..].trim().trim_matches('"').to_string();
        return (name, Op::Value(value));
    }
    let name = o.split_whitespace().next().unwrap_or("").to_string();
    (name, if neg { Op::Off } else { Op::On })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::checks::NASTY_INPUTS as NASTY;

    #[test]
    fn garbage_never_panics() {
        for a in NASTY {
            for b in NASTY {
                let t = format!("{a} {b}\n{b}{a}");
                for (_, l) in logical_lines(&t) {
                    let _ = strip_comment(&l);
                    for o in split_options(&l) {
                        let _ = parse_option(&o);
                    }
                }
            }
        }
    }

    #[test]
    fn options_and_comments() {
        assert_eq!(
            split_options(" env_reset, logfile=\"/var/log/a,b\" ,!lecture"),
            vec!["env_reset", "logfile=\"/var/log/a,b\"", "!lecture"]
        );
        assert_eq!(parse_option("!use_pty"), ("use_pty".to_string(), Op::Off));
        assert_eq!(
            parse_option("timestamp_timeout = 5"),
            ("timestamp_timeout".to_string(), Op::Value("5".into()))
        );
        assert_eq!(strip_comment("Defaults use_pty # why"), "Defaults use_pty ");
        assert_eq!(strip_comment("#1000 ALL=(ALL) ALL"), "#1000 ALL=(ALL) ALL");
    }

    #[test]
    fn includes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("etc/sudoers.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            t.path().join("etc/sudoers"),
            "Defaults\tenv_reset\nDefaults:alice !use_pty\n@includedir /etc/sudoers.d\n%sudo ALL=(ALL:ALL) ALL\n",
        )
        .unwrap();
        fs::write(
            d.join("10-pty"),
            "Defaults use_pty,\\\n  logfile=/var/log/sudo.log\n#includedir x\n",
        )
        .unwrap();
        fs::write(d.join("README"), "Defaults !use_pty\n").unwrap();
        fs::write(d.join("skip.conf"), "Defaults !use_pty\n").unwrap();
        fs::write(d.join("old~"), "Defaults !use_pty\n").unwrap();
        let facts = Facts::new(t.path(), false);
        let s = sudoers(&facts).unwrap();
        assert_eq!(
            s.files,
            vec![
                "/etc/sudoers",
                "/etc/sudoers.d/10-pty",
                "/etc/sudoers.d/README"
            ]
        );
        assert_eq!(s.global("use_pty").unwrap().op, Op::Off);
        assert_eq!(
            s.global("logfile").unwrap().op,
            Op::Value("/var/log/sudo.log".into())
        );
        assert_eq!(s.bound("use_pty").len(), 1);
        assert_eq!(s.rules.len(), 1);
    }
}
