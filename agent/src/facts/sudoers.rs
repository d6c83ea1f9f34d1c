//! A static reader of sudo's policy: /etc/sudoers with `@include`/`#include` (paths
//! relative to the including file's directory) and `@includedir`/`#includedir`
//! (regular files in name order, skipping names that contain `.` or end in `~`),
//! read at the point of inclusion. `Defaults` entries are kept in order with their
//! binding (`Defaults:user`, `@host`, `!cmnd`, `>runas`); other lines are kept for
//! tag searches.
//!
//! Only what sudo 1.9.13 itself reads counts. It opens a file only when, followed
//! through symlinks, it is a regular file owned by uid 0, not world-writable, and
//! not group-writable unless its group is gid 0 (Debian's sudo keeps the default
//! sudoers uid and gid, 0). It refuses to run at all when /etc/sudoers fails that
//! test ([`Sudoers::refused`]); it skips an `@include` file or an `@includedir`
//! entry that fails it, and ignores an included directory failing the same test.
//! A `Defaults` line its grammar rejects is dropped whole ([`syntax`]); the file's
//! other lines still apply. A bound `Defaults` line (whose binding this reader
//! does not parse in full) that the grammar rejects is kept in
//! [`Sudoers::unsure`], so a rule about an option it names cannot pass. An entry
//! whose value sudo refuses is dropped alone. Each skip is a note.

mod syntax;

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::Fact;
use crate::facts::{FactError, Facts, FileKind, FileMeta};

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
    /// Why sudo refuses /etc/sudoers (and so does not run), if it does.
    pub refused: Option<String>,
    /// Bound `Defaults` lines sudo's grammar may read otherwise than this reader.
    pub unsure: Vec<RuleLine>,
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

    /// The rule lines carrying `tag` (e.g. NOPASSWD).
    pub fn tagged(&self, tag: &str) -> Vec<&RuleLine> {
        self.rules
            .iter()
            .filter(|r| has_tag(&r.text, tag))
            .collect()
    }

    /// Why a rule about `name` cannot be judged from this reading: a bound
    /// `Defaults` line naming it that this reader may read otherwise than sudo.
    pub fn undecided(&self, name: &str) -> Option<String> {
        let l = self.unsure.iter().find(|l| {
            l.text
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .any(|w| w == name)
        })?;
        Some(format!(
            "{}: {}: sudo's grammar rejects this line as this reader splits it; \
             whether sudo applies it to {name} is not known",
            l.source, l.text
        ))
    }
}

/// Whether a sudoers rule carries the tag (`NOPASSWD:`), as a whole word.
pub fn has_tag(text: &str, tag: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find(tag) {
        let before_ok = i == 0
            || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let after = rest[i + tag.len()..].trim_start();
        if before_ok && after.starts_with(':') {
            return true;
        }
        rest = &rest[i + tag.len()..];
    }
    false
}
/// sudo's uid and gid for sudoers files (Debian's build keeps the defaults).
const SUDOERS_UID: u32 = 0;
const SUDOERS_GID: u32 = 0;

/// Why sudo refuses a file (or directory, with `kind`), in sudo's words.
fn insecure(m: &FileMeta, kind: FileKind) -> Option<String> {
    if m.kind != kind {
        Some(match kind {
            FileKind::Dir => "is not a directory".to_string(),
            _ => "is not a regular file".to_string(),
        })
    } else if m.uid != SUDOERS_UID {
        Some(format!(
            "is owned by uid {}, should be {SUDOERS_UID}",
            m.uid
        ))
    } else if m.mode & 0o002 != 0 {
        Some("is world writable".to_string())
    } else if m.mode & 0o020 != 0 && m.gid != SUDOERS_GID {
        Some(format!(
            "is owned by gid {}, should be {SUDOERS_GID}",
            m.gid
        ))
    } else {
        None
    }
}

/// The text of an included file sudo would open, or `None` (with a note) when it
/// skips it.
fn open_included(
    facts: &Facts,
    s: &mut Sudoers,
    path: &str,
    source: &str,
) -> Result<Option<Arc<str>>, FactError> {
    let Some(m) = facts.stat(path).ok().flatten() else {
        s.notes
            .push(format!("{source}: included file {path} does not exist"));
        return Ok(None);
    };
    if let Some(why) = insecure(&m, FileKind::File) {
        s.notes
            .push(format!("{source}: {path} {why}: sudo skips it"));
        return Ok(None);
    }
    facts.read(path)
}

/// The sudoers policy of the root, read once per scan.
pub fn sudoers(facts: &Facts) -> Result<Arc<Sudoers>, FactError> {
    facts.get::<Sudoers>()
}

impl Fact for Sudoers {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut s = Sudoers::default();
        let Some(m) = facts.stat(SUDOERS)? else {
            s.notes.push(format!("{SUDOERS} does not exist"));
            return Ok(s);
        };
        // A FIFO, device or directory: the read below names it (an error).
        if let Some(why) = insecure(&m, FileKind::File).filter(|_| m.kind == FileKind::File) {
            let r = format!("sudo refuses {SUDOERS}: it {why}, so sudo does not run at all");
            s.notes.push(r.clone());
            s.refused = Some(r);
            return Ok(s);
        }
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
                match facts.stat(&target).ok().flatten() {
                    None => continue,
                    Some(m) => {
                        if let Some(why) = insecure(&m, FileKind::Dir) {
                            s.notes
                                .push(format!("{source}: {target} {why}: sudo ignores it"));
                            continue;
                        }
                    }
                }
                for name in facts.list_dir(&target)? {
                    if name.contains('.') || name.ends_with('~') {
                        continue;
                    }
                    let f = format!("{}/{name}", target.trim_end_matches('/'));
                    // sudo lists regular files only, then opens each it finds secure.
                    match facts.stat(&f).ok().flatten() {
                        Some(m) if m.kind == FileKind::File => {}
                        _ => continue,
                    }
                    let Some(t) = open_included(facts, s, &f, &source).ok().flatten() else {
                        continue;
                    };
                    if !s.included.file() {
                        break;
                    }
                    s.files.push(f.clone());
                    parse(facts, s, &f, &t, depth + 1)?;
                }
            } else if let Some(t) = open_included(facts, s, &target, &source)? {
                s.files.push(target.clone());
                parse(facts, s, &target, &t, depth + 1)?;
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("Defaults") {
            let (binding, opts) = match rest.chars().next() {
                Some(c) if [':', '@', '!', '>'].contains(&c) => {
                    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                    (Some(rest[..end].to_string()), &rest[end..])
                }
                Some(c) if c == ' ' || c == '\t' => (None, rest),
                // A longer word (`Defaultsx`) is a user name in a user specification.
                Some(c) if !"#>!=:,()\\\"\r".contains(c) => {
                    s.rules.push(RuleLine {
                        source,
                        text: strip_comment(trimmed).trim().to_string(),
                    });
                    continue;
                }
                _ => {
                    s.notes.push(format!(
                        "{source}: {trimmed}: not a Defaults line sudo reads (syntax error): sudo drops it"
                    ));
                    continue;
                }
            };
            defaults_line(s, &source, trimmed, binding, opts);
            continue;
        }
        let body = strip_comment(trimmed);
        let body = body.trim();
        if body.is_empty() {
            continue;
        }
        s.rules.push(RuleLine {
            source,
            text: body.to_string(),
        });
    }
    Ok(())
}

/// Adds the entries of one `Defaults` line as sudo reads them.
fn defaults_line(s: &mut Sudoers, source: &str, line: &str, binding: Option<String>, opts: &str) {
    let entries = match syntax::parse_list(opts) {
        Ok(e) => e,
        Err(why) => {
            s.notes.push(format!(
                "{source}: {line}: a syntax error ({why}): sudo drops the line"
            ));
            if binding.is_some() {
                s.unsure.push(RuleLine {
                    source: source.to_string(),
                    text: line.to_string(),
                });
            }
            return;
        }
    };
    for e in entries {
        if let Some(why) = syntax::refused(&e) {
            s.notes
                .push(format!("{source}: sudo ignores `{}`: {why}", e.text));
            continue;
        }
        let op = match e.op {
            syntax::RawOp::On => Op::On,
            syntax::RawOp::Off => Op::Off,
            syntax::RawOp::Set(v) | syntax::RawOp::Add(v) | syntax::RawOp::Remove(v) => {
                Op::Value(v)
            }
        };
        s.defaults.push(DefaultsEntry {
            binding: binding.clone(),
            name: e.name,
            op,
            source: source.to_string(),
            text: e.text,
        });
    }
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
                    if let Ok(es) = syntax::parse_list(&l) {
                        for e in es {
                            let _ = syntax::refused(&e);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn options_and_comments() {
        let names: Vec<String> =
            syntax::parse_list(" env_reset, logfile=\"/var/log/a,b\" ,!lecture")
                .unwrap()
                .into_iter()
                .map(|e| e.text)
                .collect();
        assert_eq!(
            names,
            vec!["env_reset", "logfile=\"/var/log/a,b\"", "!lecture"]
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
