//! pam_limits' configuration as Debian's libpam 1.5 reads it when a session opens,
//! and the core-file size limit it gives an account (checked against the real module
//! by the differential tests, `tests/src/differential/limits.rs`; judged by the
//! `sysctl.core_limit` check, `checks::sysctl::limits`).
//!
//! pam_limits reads /etc/security/limits.conf (missing: it refuses the session and
//! sets nothing), then every `*.conf` entry of /etc/security/limits.d that does not
//! start with a dot, in byte order (a directory reads as empty; a dangling link makes
//! it refuse the session). Per line: text from `#` on is a comment; the first four
//! whitespace-separated words count and the rest is ignored; type, item and value are
//! case-insensitive. A line applies to a session by its domain: the user's name; `*`;
//! `@group` (primary group or member); `uid` ranges `min:`, `:uid`, `min:max` and gid
//! ranges `@min:`, `@:gid`, `@min:max` (a range that does not parse drops the line);
//! `%` domains only limit logins. Debian's pam_limits applies no `*` entry to an
//! account with uid 0, and reads an `@` entry for it as a uid range only (`@root`
//! never applies; `@0:0` ranks with a `root` entry); its `@group -` lines do apply. A two-word line `DOMAIN -` that applies ends the reading:
//! no limit is set at all. For each of soft and hard, a name or uid-range entry beats
//! a group entry, which beats `*`, and among equals the last one read wins; a `-`
//! entry the soft side cannot take (a more specific soft value is already set) sets
//! nothing, its hard side included. Values: `unlimited`, `infinity`, `-1` and `-`
//! mean no limit; otherwise the leading decimal digits (`0x10` is 0, `1e3` is 1, a
//! negative number wraps to no limit), times 1024; no digits drops the line.

use std::sync::Arc;

use serde::Serialize;

use crate::facts::accounts::{Accounts, Group};
use crate::facts::{Fact, FactError, Facts};

pub const CONF: &str = "/etc/security/limits.conf";
pub const DIR: &str = "/etc/security/limits.d";

/// No limit (RLIM_INFINITY).
pub const UNLIMITED: u64 = u64::MAX;

/// A domain's uid or gid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    None,
    One(u32),
    Min(u32),
    MinMax(u32, u32),
}

/// One line of a limits file that can matter for the core limit.
#[derive(Debug, Clone)]
pub enum Line {
    /// `DOMAIN TYPE core VALUE` (type and value lowercased).
    Core {
        domain: String,
        range: Range,
        kind: String,
        value: String,
        source: String,
    },
    /// `DOMAIN -`: no limits for the sessions it applies to.
    NoLimits {
        domain: String,
        range: Range,
        source: String,
    },
}

/// The files pam_limits reads, in order, and the lines that matter.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub files: Vec<String>,
    pub lines: Vec<Line>,
    /// Why pam_limits refuses every session (a file it cannot open), if it does.
    pub refused: Option<String>,
}

/// pam_limits' configuration, read once per scan.
pub fn pam_limits(facts: &Facts) -> Result<Arc<Config>, FactError> {
    facts.get::<Config>()
}

impl Fact for Config {
    type Value = Self;
    /// Reads the files pam_limits reads, as it reads them.
    fn read(facts: &Facts) -> Result<Config, FactError> {
        let mut c = Config::default();
        let mut paths = vec![CONF.to_string()];
        paths.extend(
            facts
                .list_dir(DIR)?
                .into_iter()
                .filter(|n| n.ends_with(".conf") && !n.starts_with('.'))
                .map(|n| format!("{DIR}/{n}")),
        );
        for path in paths {
            match facts.read(&path) {
                Ok(Some(text)) => parse(&text, &path, &mut c.lines),
                Ok(None) => {
                    c.refused = Some(format!(
                        "{path} cannot be opened: pam_limits refuses every session and sets no limit"
                    ));
                    c.files.push(path);
                    break;
                }
                // fopen() opens a directory and reading it gives no line; /dev/null is empty.
                Err(FactError::Unreadable { reason, .. }) if reason.contains("directory") => {}
                // The I/O errors whose words say "directory": EISDIR, ENOTDIR, ENOENT.
                Err(FactError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::IsADirectory
                            | std::io::ErrorKind::NotADirectory
                            | std::io::ErrorKind::NotFound
                    ) => {}
                Err(FactError::NotRegular { .. })
                    if facts.inner_path(&facts.resolve(&path, true)?) == "/dev/null" => {}
                Err(FactError::SymlinkLoop { .. }) => {
                    c.refused = Some(format!(
                        "{path} is a symlink loop: pam_limits refuses every session and sets no limit"
                    ));
                    c.files.push(path);
                    break;
                }
                Err(e) => return Err(e),
            }
            c.files.push(path);
        }
        Ok(c)
    }
}

/// C's `strtoul`/`strtoull` on a word: optional sign, decimal digits. `None`: no
/// digits; a negative number wraps; overflow saturates (with `over` set).
fn strtoul(s: &str) -> Option<(u64, &str, bool)> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let mut v: u64 = 0;
    let mut over = false;
    for b in rest[..digits].bytes() {
        match v
            .checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(b - b'0')))
        {
            Some(x) => v = x,
            None => {
                over = true;
                v = u64::MAX;
            }
        }
    }
    if neg && !over {
        v = v.wrapping_neg();
    }
    Some((v, &rest[digits..], over))
}

/// pam_limits' `parse_uid_range`; `Err` drops the line.
fn parse_range(domain: &str) -> Result<Range, ()> {
    let Some(colon) = domain.find(':') else {
        return Ok(Range::None);
    };
    let max_text = &domain[colon + 1..];
    let range = domain.strip_prefix(['@', '%']).unwrap_or(domain);
    let min = if range.starts_with(':') {
        None
    } else {
        match strtoul(range) {
            Some((v, rest, false)) if rest.starts_with(':') => Some(v as u32),
            _ => return Err(()),
        }
    };
    if max_text.is_empty() {
        return min.map(Range::Min).ok_or(());
    }
    let max = match strtoul(max_text) {
        Some((v, "", false)) => v as u32,
        _ => return Err(()),
    };
    Ok(match min {
        None => Range::One(max),
        Some(min) => Range::MinMax(min, max),
    })
}

pub fn parse(text: &str, path: &str, out: &mut Vec<Line>) {
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.split('#').next().unwrap_or_default();
        // sscanf's `%s` splits on C's isspace, vertical tab included.
        let words: Vec<&str> = line
            .split([' ', '\t', '\r', '\x0b', '\x0c'])
            .filter(|w| !w.is_empty())
            .take(4)
            .collect();
        if words.is_empty() {
            continue;
        }
        let Ok(range) = parse_range(words[0]) else {
            continue;
        };
        let source = format!("{path}:{}", n + 1);
        let domain = words[0].to_string();
        match words.len() {
            4 if words[2].eq_ignore_ascii_case("core") => out.push(Line::Core {
                domain,
                range,
                kind: words[1].to_ascii_lowercase(),
                value: words[3].to_ascii_lowercase(),
                source,
            }),
            2 if words[1].starts_with('-') => out.push(Line::NoLimits {
                domain,
                range,
                source,
            }),
            _ => {}
        }
    }
}

/// Who a line is matched against.
pub struct Who<'a> {
    pub name: &'a str,
    pub uid: u32,
    pub gid: u32,
    pub acc: &'a Accounts,
}

impl Who<'_> {
    /// pam_modutil_user_in_group_*: the first group so named (or with that gid)
    /// exists and is the user's primary group or lists the user.
    fn in_group(&self, g: Option<&Group>) -> bool {
        g.is_some_and(|g| g.gid == self.gid || g.members.iter().any(|m| m == self.name))
    }
}

/// Specificity: a lower number beats a higher one.
const BY_USER: u8 = 0;
const BY_GROUP: u8 = 1;
const BY_DEFAULT: u8 = 4;
const UNSET: u8 = 6;

/// One account's core limit after pam_limits: `None` leaves the session's starting
/// value (on a real system, PID 1's: the hard core limit is unlimited by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CoreLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
    /// The line that set the hard limit, or why none did.
    pub how: String,
}

pub fn value_of(v: &str) -> Option<u64> {
    if matches!(v, "unlimited" | "infinity" | "-1" | "-") {
        return Some(UNLIMITED);
    }
    let (n, _, _) = strtoul(v)?;
    Some(if n >= UNLIMITED / 1024 {
        UNLIMITED
    } else {
        n * 1024
    })
}

/// The matching source of a line for `who` (`None`: it does not apply).
fn applies(line: &Line, who: &Who) -> Option<u8> {
    let (domain, range, limit) = match line {
        Line::Core { domain, range, .. } => (domain, *range, true),
        Line::NoLimits { domain, range, .. } => (domain, *range, false),
    };
    if domain == who.name {
        return Some(BY_USER);
    }
    let in_range = |id: u32| match range {
        Range::None => false,
        Range::One(x) => id == x,
        Range::Min(min) => id >= min,
        Range::MinMax(min, max) => id >= min && id <= max,
    };
    if let Some(group) = domain.strip_prefix('@') {
        if limit && who.uid == 0 {
            // Debian: for uid 0 an `@` domain is read as a uid range only (`@root`
            // never applies, `@0:0` ranks with a `root` entry).
            return (range != Range::None && in_range(who.uid)).then_some(BY_USER);
        }
        let member = match range {
            Range::None => who.in_group(who.acc.group(group)),
            Range::One(gid) => who.in_group(who.acc.group_by_gid(gid)),
            _ => in_range(who.gid),
        };
        return member.then_some(BY_GROUP);
    }
    if limit && domain.starts_with('%') {
        // `%` domains limit logins only.
        return None;
    }
    match range {
        Range::None => (limit && domain == "*" && who.uid != 0).then_some(BY_DEFAULT),
        _ => in_range(who.uid).then_some(BY_USER),
    }
}

/// `who`'s core limit under `config`.
pub fn evaluate(config: &Config, who: &Who) -> CoreLimit {
    if let Some(why) = &config.refused {
        return CoreLimit {
            soft: None,
            hard: None,
            how: why.clone(),
        };
    }
    let (mut soft, mut hard) = ((None, UNSET), (None, UNSET));
    let mut how = String::new();
    for line in &config.lines {
        let Some(src) = applies(line, who) else {
            continue;
        };
        let (kind, value, source) = match line {
            Line::NoLimits { source, .. } => {
                return CoreLimit {
                    soft: None,
                    hard: None,
                    how: format!(
                        "{source}: `-` line: pam_limits sets no limit for {}",
                        who.name
                    ),
                };
            }
            Line::Core {
                kind,
                value,
                source,
                ..
            } => (kind.as_str(), value.as_str(), source),
        };
        let (set_soft, set_hard) = match kind {
            "soft" => (true, false),
            "hard" => (false, true),
            "-" => (true, true),
            _ => continue,
        };
        let Some(v) = value_of(value) else {
            continue;
        };
        if set_soft {
            if soft.1 < src {
                continue;
            }
            soft = (Some(v), src);
        }
        if set_hard {
            if hard.1 < src {
                continue;
            }
            hard = (Some(v), src);
            how = format!("{source}: {} hard core {}", line_domain(line), shown(v));
        }
    }
    if hard.0.is_none() {
        how = if who.uid == 0 {
            "no limits.conf or limits.d entry sets the hard core limit; pam_limits applies no `*` or @group entry to uid 0".into()
        } else {
            "no limits.conf or limits.d entry sets the hard core limit".into()
        };
    }
    CoreLimit {
        soft: soft.0,
        hard: hard.0,
        how,
    }
}

fn line_domain(line: &Line) -> &str {
    match line {
        Line::Core { domain, .. } | Line::NoLimits { domain, .. } => domain,
    }
}

fn shown(v: u64) -> String {
    if v == UNLIMITED {
        "unlimited".into()
    } else {
        (v / 1024).to_string()
    }
}

#[cfg(test)]
mod tests;
