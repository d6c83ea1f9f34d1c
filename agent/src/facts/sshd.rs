//! A static reader of OpenSSH's server configuration, following sshd 9.2
//! (Debian 12) without running it; sshd 8.9 (Ubuntu 22.04) and 9.6 (Ubuntu 24.04)
//! read their configuration the same way:
//!
//! - lines are `Keyword args…` or `Keyword=args…`; keywords are case-insensitive;
//!   a `#` at the start of a word starts a comment; arguments may be quoted;
//! - `Include` takes paths and globs (relative ones are under `/etc/ssh`), expanded
//!   in sorted order and read at the point of inclusion, at most 16 levels deep;
//! - `Match` starts a conditional block that lasts until the next `Match` or the end
//!   of the file it is in (an included file cannot change its includer's block);
//! - for most keywords the first value read outside `Match` blocks is the one sshd
//!   uses; a `Match` block may override it for the connections it matches.

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::Fact;
use crate::facts::{FactError, Facts};

/// The main configuration file.
pub const MAIN: &str = "/etc/ssh/sshd_config";
/// Where relative `Include` paths are resolved.
const SSHDIR: &str = "/etc/ssh";
/// sshd's include depth limit.
const MAX_DEPTH: usize = 16;

/// One configuration line that sets a keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The keyword as written.
    pub keyword: String,
    /// The arguments, unquoted.
    pub args: Vec<String>,
    /// `path:line`.
    pub source: String,
    /// The `Match` criteria (and where the block starts) when inside a Match block.
    pub within: Option<String>,
    /// Whether the Match block is `Match all` (it applies to every connection).
    pub match_all: bool,
}

impl Directive {
    /// The first argument (the value of single-valued keywords), or "".
    pub fn value(&self) -> &str {
        self.args.first().map(String::as_str).unwrap_or("")
    }

    /// `path:line: Keyword args` (plus the Match block) for evidence.
    pub fn describe(&self) -> String {
        let m = self
            .within
            .as_ref()
            .map(|m| format!(" (inside {m})"))
            .unwrap_or_default();
        format!(
            "{}{m}: {} {}",
            self.source,
            self.keyword,
            self.args.join(" ")
        )
    }

    /// Whether the keyword is `name` (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.keyword.eq_ignore_ascii_case(name)
    }
}

/// The parsed configuration: every directive in the order sshd reads them.
#[derive(Debug, Clone, Default)]
pub struct SshdConfig {
    pub directives: Vec<Directive>,
    /// Every file read, in order (the main file first).
    pub files: Vec<String>,
    /// Remarks about the reading (missing includes), for evidence.
    pub notes: Vec<String>,
    /// Lines that make sshd refuse the whole configuration, as `path:line: why`.
    pub refused: Vec<String>,
    /// Whether the main file exists.
    pub main_exists: bool,
    /// Include lines and the files they name, for the whole configuration.
    includes: IncludeBudget,
}

impl SshdConfig {
    /// The value sshd uses outside Match blocks: the first occurrence.
    pub fn global(&self, keyword: &str) -> Option<&Directive> {
        self.directives
            .iter()
            .find(|d| d.within.is_none() && d.is(keyword))
    }

    /// The value every connection gets: the first one set in a `Match all` block
    /// (Match values override global ones), else the global one.
    pub fn effective(&self, keyword: &str) -> Option<&Directive> {
        self.directives
            .iter()
            .find(|d| d.match_all && d.is(keyword))
            .or_else(|| self.global(keyword))
    }

    /// Every global occurrence (for keywords whose values accumulate).
    pub fn all_global(&self, keyword: &str) -> Vec<&Directive> {
        self.directives
            .iter()
            .filter(|d| d.within.is_none() && d.is(keyword))
            .collect()
    }

    /// Every occurrence inside a Match block.
    pub fn in_match(&self, keyword: &str) -> Vec<&Directive> {
        self.directives
            .iter()
            .filter(|d| d.within.is_some() && d.is(keyword))
            .collect()
    }
}

/// The sshd configuration of the root, read once per scan.
pub fn sshd_config(facts: &Facts) -> Result<Arc<SshdConfig>, FactError> {
    facts.get::<SshdConfig>()
}

impl Fact for SshdConfig {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        load(facts)
    }
}

fn load(facts: &Facts) -> Result<SshdConfig, FactError> {
    let mut cfg = SshdConfig::default();
    match facts.read(MAIN)? {
        Some(text) => {
            cfg.main_exists = true;
            cfg.files.push(MAIN.to_string());
            parse_file(facts, &mut cfg, MAIN, &text, (None, false), 0)?;
        }
        None => cfg.notes.push(format!(
            "{MAIN} does not exist: only compiled-in defaults apply"
        )),
    }
    Ok(cfg)
}

fn parse_file(
    facts: &Facts,
    cfg: &mut SshdConfig,
    path: &str,
    text: &str,
    inherited: (Option<String>, bool),
    depth: usize,
) -> Result<(), FactError> {
    let (mut within, mut match_all) = inherited;
    for (i, raw) in text.split('\n').enumerate() {
        let source = format!("{path}:{}", i + 1);
        let Some((keyword, args)) = split_line(raw) else {
            if line_has_bad_quotes(raw) {
                cfg.refused.push(format!(
                    "{source}: unbalanced quotes; sshd rejects this configuration"
                ));
            }
            continue;
        };
        if keyword.eq_ignore_ascii_case("match") && args.is_empty() {
            cfg.refused.push(format!(
                "{source}: Match has no criteria; sshd rejects this line"
            ));
        }
        if keyword.eq_ignore_ascii_case("match") {
            within = Some(format!("Match {} at {source}", args.join(" ")));
            match_all = args.len() == 1 && args[0].eq_ignore_ascii_case("all");
            continue;
        }
        if keyword.eq_ignore_ascii_case("include") {
            if !cfg.includes.directive(&source, &mut cfg.refused) {
                continue;
            }
            if depth + 1 > MAX_DEPTH {
                cfg.refused.push(format!(
                    "{source}: Include nested more than {MAX_DEPTH} deep; sshd refuses to start"
                ));
                continue;
            }
            for arg in &args {
                let pattern = if arg.starts_with('/') || arg.starts_with('~') {
                    arg.clone()
                } else {
                    format!("{SSHDIR}/{arg}")
                };
                for file in glob_in_root(facts, &pattern)? {
                    if !cfg.includes.file() {
                        break;
                    }
                    let Some(inc) = facts.read(&file)? else {
                        continue;
                    };
                    cfg.files.push(file.clone());
                    parse_file(
                        facts,
                        cfg,
                        &file,
                        &inc,
                        (within.clone(), match_all),
                        depth + 1,
                    )?;
                }
            }
            continue;
        }
        if args.is_empty() {
            cfg.refused.push(format!(
                "{source}: {keyword} has no argument; sshd rejects this line"
            ));
            continue;
        }
        cfg.directives.push(Directive {
            keyword,
            args,
            source,
            within: within.clone(),
            match_all,
        });
    }
    Ok(())
}

/// Splits one line into its keyword and arguments as sshd does; `None` for blank
/// lines, comments and lines with unbalanced quotes.
pub fn split_line(raw: &str) -> Option<(String, Vec<String>)> {
    let line = raw.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
    let line = line.trim_start_matches([' ', '\t', '\r', '\n']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    // The keyword ends at whitespace, a quote or '='.
    let end = line
        .find([' ', '\t', '\r', '\n', '"', '='])
        .unwrap_or(line.len());
    let keyword = &line[..end];
    if keyword.is_empty() {
        return None;
    }
    let mut rest = &line[end..];
    let mut had_equals = false;
    if let Some(r) = rest.strip_prefix('=') {
        had_equals = true;
        rest = r;
    }
    rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
    if !had_equals {
        if let Some(r) = rest.strip_prefix('=') {
            rest = r.trim_start_matches([' ', '\t', '\r', '\n']);
        }
    }
    let args = argv_split(rest)?;
    Some((keyword.to_string(), args))
}

fn line_has_bad_quotes(raw: &str) -> bool {
    let line = raw.trim();
    !line.is_empty() && !line.starts_with('#') && argv_split(line).is_none()
}

/// sshd's `argv_split` with comments: words separated by blanks, `"` or `'` quoting,
/// backslash escapes of quotes, backslash and space; a `#` starting a word ends the
/// line. `None` when a quote is not closed.
pub fn argv_split(s: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut quote: Option<char> = None;
        let mut arg = String::new();
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                match chars.get(i + 1) {
                    Some(&n)
                        if n == '\'' || n == '"' || n == '\\' || (quote.is_none() && n == ' ') =>
                    {
                        arg.push(n);
                        i += 2;
                        continue;
                    }
                    _ => arg.push(c),
                }
            } else if quote.is_none() && (c == ' ' || c == '\t') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        if quote.is_some() {
            return None;
        }
        out.push(arg);
    }
    Some(out)
}

/// Expands a glob pattern inside the root as glob(3) does for sshd's `Include`:
/// [`Facts::glob`], whose every directory part resolves inside the root.
pub fn glob_in_root(facts: &Facts, pattern: &str) -> Result<Vec<String>, FactError> {
    facts.glob(pattern)
}

/// Shell-style matching of one path component (glob(3) for Include): the one
/// implementation in `facts`.
pub use crate::facts::fnmatch;

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn splits_lines_like_sshd() {
        assert_eq!(
            split_line("PermitRootLogin no"),
            Some(("PermitRootLogin".into(), vec!["no".into()]))
        );
        assert_eq!(
            split_line("  permitrootlogin=no  "),
            Some(("permitrootlogin".into(), vec!["no".into()]))
        );
        assert_eq!(
            split_line("PermitRootLogin = no # trailing"),
            Some(("PermitRootLogin".into(), vec!["no".into()]))
        );
        assert_eq!(
            split_line("Banner \"/etc/issue net\""),
            Some(("Banner".into(), vec!["/etc/issue net".into()]))
        );
        assert_eq!(
            split_line("AllowUsers a#b"),
            Some(("AllowUsers".into(), vec!["a#b".into()]))
        );
        assert_eq!(split_line("#PermitRootLogin yes"), None);
        assert_eq!(split_line("   # x"), None);
        assert_eq!(split_line(""), None);
        assert_eq!(split_line("Banner \"unterminated"), None);
    }

    use crate::checks::NASTY_INPUTS as NASTY;

    #[test]
    fn garbage_never_panics() {
        for a in NASTY {
            for b in NASTY {
                let t = format!("{a} {b}{a}");
                let _ = split_line(&t);
                let _ = fnmatch(a, b);
                let _ = fnmatch(&t, b);
                let _ = crate::checks::sshd::convtime(&t);
                let _ = crate::checks::sshd::assemble(&t, "a,b", "a,b,c");
            }
        }
    }

    #[test]
    fn fnmatch_basics() {
        assert!(fnmatch("*.conf", "50-cloud.conf"));
        assert!(!fnmatch("*.conf", "50-cloud.conf.bak"));
        assert!(fnmatch("ssh_host_*_key", "ssh_host_rsa_key"));
        assert!(!fnmatch("ssh_host_*_key", "ssh_host_rsa_key.pub"));
        assert!(fnmatch("[0-9]?-x", "10-x"));
        assert!(fnmatch("[!a]b", "cb"));
        assert!(!fnmatch("[!a]b", "ab"));
        assert!(fnmatch("*", ""));
    }

    #[test]
    fn includes_matches_and_first_wins() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("etc/ssh/sshd_config.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            t.path().join("etc/ssh/sshd_config"),
            "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nMatch User bob\nPermitRootLogin yes\nInclude extra.conf\n",
        )
        .unwrap();
        fs::write(
            d.join("10-a.conf"),
            "permitrootlogin no\nMatch Group x\nMaxAuthTries 10\n",
        )
        .unwrap();
        fs::write(d.join("20-b.conf"), "MaxAuthTries 3\n").unwrap();
        fs::write(d.join(".hidden.conf"), "MaxAuthTries 9\n").unwrap();
        fs::write(t.path().join("etc/ssh/extra.conf"), "LogLevel DEBUG\n").unwrap();
        let facts = Facts::new(t.path(), false);
        let cfg = load(&facts).unwrap();
        assert_eq!(cfg.global("PermitRootLogin").unwrap().value(), "no");
        assert_eq!(
            cfg.global("PermitRootLogin").unwrap().source,
            "/etc/ssh/sshd_config.d/10-a.conf:1"
        );
        // The Match in 10-a.conf ends with that file.
        assert_eq!(cfg.global("maxauthtries").unwrap().value(), "3");
        assert_eq!(cfg.in_match("MaxAuthTries").len(), 1);
        // Include inside a Match block inherits the block.
        assert!(cfg.global("LogLevel").is_none());
        assert!(cfg.in_match("LogLevel")[0]
            .within
            .as_ref()
            .unwrap()
            .contains("User bob"));
        assert_eq!(cfg.files.len(), 4);
    }
}
