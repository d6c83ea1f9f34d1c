//! pam_limits' core-file size limit (`sysctl.core_limit`), computed per account as
//! Debian's libpam 1.5 computes it when a session opens (checked against the real
//! module by the differential tests, `tests/src/differential/limits.rs`).
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

use std::collections::BTreeMap;

use serde::Serialize;

use crate::facts::accounts::{accounts, Accounts, User};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

const CONF: &str = "/etc/security/limits.conf";
const DIR: &str = "/etc/security/limits.d";

/// No limit (RLIM_INFINITY).
const UNLIMITED: u64 = u64::MAX;

/// A domain's uid or gid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    None,
    One(u32),
    Min(u32),
    MinMax(u32, u32),
}

/// One line of a limits file that can matter for the core limit.
#[derive(Debug, Clone)]
enum Line {
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
struct Config {
    files: Vec<String>,
    lines: Vec<Line>,
    /// Why pam_limits refuses every session (a file it cannot open), if it does.
    refused: Option<String>,
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

fn parse(text: &str, path: &str, out: &mut Vec<Line>) {
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

/// Reads the files pam_limits reads, as it reads them.
fn config(facts: &Facts) -> Result<Config, FactError> {
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

/// Who a line is matched against.
struct Who<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    acc: &'a Accounts,
}

impl Who<'_> {
    /// pam_modutil_user_in_group_*: the first group so named (or with that gid)
    /// exists and is the user's primary group or lists the user.
    fn in_group(&self, g: Option<&crate::facts::accounts::Group>) -> bool {
        g.is_some_and(|g| g.gid == self.gid || g.members.iter().any(|m| m == self.name))
    }
}

/// The uid and gid of the account that stands for those not listed locally.
const OTHER_ID: u32 = u32::MAX - 1;

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

fn value_of(v: &str) -> Option<u64> {
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
fn evaluate(config: &Config, who: &Who) -> CoreLimit {
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

/// The accounts judged: /etc/passwd's (the first entry of a name), or root alone
/// when the account databases cannot be read.
fn local_accounts(facts: &Facts) -> (Accounts, Option<String>) {
    match accounts(facts).as_ref() {
        Ok(a) => ((**a).clone(), None),
        Err(e) => {
            let mut a = Accounts::default();
            a.users.push(User {
                name: "root".into(),
                password: String::new(),
                uid: 0,
                gid: 0,
                home: "/root".into(),
                shell: "/bin/sh".into(),
                line: 0,
            });
            (a, Some(format!("{e}: only root judged by name")))
        }
    }
}

/// Lines that could reach an account this root does not list (a directory user):
/// a name or group it does not have, or a uid or gid range wider than its own ids,
/// when the line could leave such an account without a hard limit of 0.
fn unlisted_risks(config: &Config, acc: &Accounts, star_by_dash: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in &config.lines {
        let (domain, range, source) = match line {
            Line::Core {
                domain,
                range,
                source,
                ..
            }
            | Line::NoLimits {
                domain,
                range,
                source,
            } => (domain.as_str(), *range, source),
        };
        let risky = match line {
            Line::NoLimits { .. } => true,
            Line::Core { kind, value, .. } => match (kind.as_str(), value_of(value)) {
                (_, None) => false,
                ("hard" | "-", Some(v)) => v != 0,
                // A soft entry that outranks `*` keeps a later `* -` from setting hard.
                ("soft", Some(_)) => star_by_dash,
                _ => false,
            },
        };
        // `*` is judged on its own; `%` limits logins only, and a `%` or `*` `-`
        // line without a range applies to no one.
        let inert = domain == "*"
            || (domain.starts_with('%')
                && (range == Range::None || matches!(line, Line::Core { .. })));
        if !risky || inert {
            continue;
        }
        let group = domain.strip_prefix('@');
        let unlisted = match (group, range) {
            // A group this system does not have, or one listing accounts it does not.
            (Some(g), Range::None) => acc
                .group(g)
                .is_none_or(|g| g.members.iter().any(|m| acc.user(m).is_none())),
            (None, Range::None) => acc.user(domain).is_none(),
            (Some(_), Range::One(id)) => acc.group_by_gid(id).is_none(),
            (None, Range::One(id)) => acc.user_by_uid(id).is_none(),
            (g, Range::Min(min)) => covers_unlisted(acc, g.is_some(), min, u32::MAX),
            (g, Range::MinMax(min, max)) => covers_unlisted(acc, g.is_some(), min, max),
        };
        if unlisted {
            out.push(format!(
                "{source}: {domain} could raise the core limit of an account this system does not list (a directory account)"
            ));
        }
    }
    out
}

/// Whether `min..=max` holds an id that no local user (or group) has.
fn covers_unlisted(acc: &Accounts, group: bool, min: u32, max: u32) -> bool {
    if min > max {
        return false;
    }
    let mut ids: Vec<u32> = if group {
        acc.groups.iter().map(|g| g.gid).collect()
    } else {
        acc.users.iter().map(|u| u.uid).collect()
    };
    ids.retain(|&i| i >= min && i <= max);
    ids.sort_unstable();
    ids.dedup();
    (ids.len() as u64) < u64::from(max - min) + 1
}

/// What the check and `rampart-agent facts limits` both rest on.
struct Judged {
    config: Config,
    accounts: Accounts,
    note: Option<String>,
}

fn judged(facts: &Facts) -> Result<Judged, FactError> {
    let (accounts, note) = local_accounts(facts);
    Ok(Judged {
        config: config(facts)?,
        accounts,
        note,
    })
}

impl Judged {
    fn limit_of(&self, u: &User) -> CoreLimit {
        evaluate(
            &self.config,
            &Who {
                name: &u.name,
                uid: u.uid,
                gid: u.gid,
                acc: &self.accounts,
            },
        )
    }

    /// The accounts, one per name (getpwnam finds the first).
    fn users(&self) -> Vec<&User> {
        let mut seen = std::collections::HashSet::new();
        self.accounts
            .users
            .iter()
            .filter(|u| seen.insert(u.name.as_str()))
            .collect()
    }

    /// The lines that could reach an account this system does not list.
    fn unlisted(&self) -> Vec<String> {
        let star_by_dash =
            self.config.lines.iter().any(
                |l| matches!(l, Line::Core { domain, kind, .. } if domain == "*" && kind == "-"),
            );
        unlisted_risks(&self.config, &self.accounts, star_by_dash)
    }

    fn outcome(&self) -> Outcome {
        // Accounts grouped by what leaves them without a hard limit of 0.
        let mut bad: Vec<(String, Vec<String>)> = Vec::new();
        let mut zero: Vec<&str> = Vec::new();
        let mut judge = |name: &str, l: CoreLimit| {
            let why = match l.hard {
                Some(0) => {
                    return true;
                }
                Some(_) => l.how,
                None => format!("{}: the hard core limit stays unlimited", l.how),
            };
            match bad.iter_mut().find(|(w, _)| *w == why) {
                Some((_, names)) => names.push(name.to_string()),
                None => bad.push((why, vec![name.to_string()])),
            }
            false
        };
        for u in self.users() {
            if judge(&u.name, self.limit_of(u)) {
                zero.push(&u.name);
            }
        }
        // An account listed nowhere (a directory user): no name or group of any
        // line, a uid and primary group above every local one.
        let other = Who {
            name: "",
            uid: OTHER_ID,
            gid: OTHER_ID,
            acc: &self.accounts,
        };
        let mut o = evaluate(&self.config, &other);
        if o.hard.is_none() && self.config.refused.is_none() {
            o.how = format!("no `* hard core 0` entry in {CONF} or {DIR}/*.conf");
        }
        let other_how = o.how.clone();
        let other_ok = judge("accounts not listed in /etc/passwd", o);
        let mut failures: Vec<String> = bad
            .into_iter()
            .map(|(why, names)| format!("{why} for {}", names.join(", ")))
            .collect();
        failures.extend(self.unlisted());
        let mut found = Vec::new();
        if !zero.is_empty() {
            found.push(format!("hard core 0 for {}", zero.join(", ")));
        }
        if other_ok {
            found.push(format!(
                "{other_how}: hard core 0 for accounts not listed in /etc/passwd"
            ));
        }
        found.extend(self.note.clone());
        Outcome::from_findings(failures, found)
    }
}

/// `sysctl.core_limit`: every account gets a hard core limit of 0 from pam_limits.
pub fn core_limit(facts: &Facts) -> Result<Outcome, FactError> {
    Ok(judged(facts)?.outcome())
}

/// What `rampart-agent facts limits` prints.
#[derive(Debug, Serialize)]
pub struct LimitsFacts {
    /// The files pam_limits reads, in order.
    pub files: Vec<String>,
    /// Per account asked for (default: every account): its core limit in bytes
    /// (`18446744073709551615`: unlimited; `null`: left at the session's start).
    pub users: BTreeMap<String, CoreLimit>,
    /// Lines that could raise the limit of an account not listed in /etc/passwd
    /// (a name, group or id range this system does not have): failures too.
    pub unlisted: Vec<String>,
    /// The `sysctl.core_limit` verdict and its evidence.
    pub verdict: String,
    pub evidence: Vec<String>,
}

/// The core-limit facts of a root for `names` (empty: every account).
pub fn facts(facts: &Facts, names: &[String]) -> Result<LimitsFacts, FactError> {
    let j = judged(facts)?;
    let mut users = BTreeMap::new();
    for u in j.users() {
        if names.is_empty() || names.contains(&u.name) {
            users.insert(u.name.clone(), j.limit_of(u));
        }
    }
    let o = j.outcome();
    Ok(LimitsFacts {
        files: j.config.files.clone(),
        users,
        unlisted: j.unlisted(),
        verdict: o.status.as_str().to_string(),
        evidence: o.evidence,
    })
}

#[cfg(test)]
mod tests;
