//! The sshd keywords the rules read: how sshd assigns each one when it occurs more
//! than once, where it may appear, and which arguments sshd accepts for it.
//!
//! Every entry was checked by running OpenSSH 9.2p1 (Debian 12, `1:9.2p1-2+deb12u10`)
//! as `sshd -T -f FILE` on crafted configurations: two occurrences of the keyword
//! (which one `sshd -T` shows), an invalid value, no argument, an empty quoted
//! argument, an extra argument, and the keyword inside a `Match` block. OpenSSH 8.9
//! (Ubuntu 22.04) and 9.6 (Ubuntu 24.04) parse these keywords with the same code
//! (servconf.c of the V_8_9_P1 and V_9_6_P1 tags).
//!
//! sshd refuses to start (and `sshd -t`/`sshd -T` exit non-zero) when any line is
//! invalid, whether or not its `Match` block applies. Such a configuration makes
//! every sshd rule fail: [`refusals`] names each offending line. Keywords outside
//! this table are not validated beyond having an argument.

use super::{ALL_CIPHERS, ALL_KEX, ALL_MACS};
use crate::facts::sshd::fnmatch;
use crate::facts::sshd::{Directive, SshdConfig};

/// Which occurrence of a keyword sshd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    /// The first occurrence wins (servconf.c assigns only while the option is unset).
    First,
    /// Every occurrence assigns, so the last one wins (`MaxStartups`).
    Last,
    /// Every occurrence adds to a list (`AllowUsers`, `HostKey`).
    Accumulate,
}

/// The arguments a keyword accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// One of these words, case-insensitive.
    Choice(&'static [&'static str]),
    /// A decimal integer from 0 to 2^31-1 (strtonum), an optional sign allowed.
    Int,
    /// A time value (`90`, `1m30s`), see [`convtime`].
    Time,
    /// `begin[:rate:full]` as sshd's sscanf reads it.
    MaxStartups,
    /// An algorithm list: names from this comma-separated list, optionally after
    /// `+` or `^`; after `-`, patterns (anything is accepted).
    Algorithms(&'static str),
    /// One non-empty word (a path, `none`, a pattern list).
    Word,
    /// One or more non-empty patterns.
    Patterns,
}

/// One keyword the rules read.
#[derive(Debug, Clone, Copy)]
pub struct Keyword {
    pub name: &'static str,
    pub assign: Assign,
    pub value: Value,
    /// Whether sshd accepts it inside a `Match` block.
    pub in_match: bool,
}

const YES_NO: &[&str] = &["yes", "no"];

const fn kw(name: &'static str, assign: Assign, value: Value, in_match: bool) -> Keyword {
    Keyword {
        name,
        assign,
        value,
        in_match,
    }
}

/// Every keyword an sshd rule reads.
pub const KEYWORDS: &[Keyword] = &[
    kw("AllowGroups", Assign::Accumulate, Value::Patterns, true),
    kw("AllowUsers", Assign::Accumulate, Value::Patterns, true),
    kw("Banner", Assign::First, Value::Word, true),
    kw(
        "Ciphers",
        Assign::First,
        Value::Algorithms(ALL_CIPHERS),
        false,
    ),
    kw("ClientAliveCountMax", Assign::First, Value::Int, true),
    kw("ClientAliveInterval", Assign::First, Value::Time, true),
    kw("DenyGroups", Assign::Accumulate, Value::Patterns, true),
    kw("DenyUsers", Assign::Accumulate, Value::Patterns, true),
    kw(
        "DisableForwarding",
        Assign::First,
        Value::Choice(YES_NO),
        true,
    ),
    kw(
        "GSSAPIAuthentication",
        Assign::First,
        Value::Choice(YES_NO),
        true,
    ),
    kw("HostKey", Assign::Accumulate, Value::Word, false),
    kw(
        "HostbasedAuthentication",
        Assign::First,
        Value::Choice(YES_NO),
        true,
    ),
    kw(
        "IgnoreRhosts",
        Assign::First,
        Value::Choice(&["yes", "no", "shosts-only"]),
        true,
    ),
    kw(
        "KexAlgorithms",
        Assign::First,
        Value::Algorithms(ALL_KEX),
        false,
    ),
    kw(
        "LogLevel",
        Assign::First,
        Value::Choice(&[
            "QUIET", "FATAL", "ERROR", "INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3",
        ]),
        true,
    ),
    kw("LoginGraceTime", Assign::First, Value::Time, false),
    kw("MACs", Assign::First, Value::Algorithms(ALL_MACS), false),
    kw("MaxAuthTries", Assign::First, Value::Int, true),
    kw("MaxSessions", Assign::First, Value::Int, true),
    kw("MaxStartups", Assign::Last, Value::MaxStartups, false),
    kw(
        "PermitEmptyPasswords",
        Assign::First,
        Value::Choice(YES_NO),
        true,
    ),
    kw(
        "PermitRootLogin",
        Assign::First,
        Value::Choice(&[
            "yes",
            "no",
            "prohibit-password",
            "without-password",
            "forced-commands-only",
        ]),
        true,
    ),
    kw("PermitUserEnvironment", Assign::First, Value::Word, false),
    kw("UsePAM", Assign::First, Value::Choice(YES_NO), false),
];

/// The table entry of `name` (case-insensitive).
pub fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// A keyword's value as `sshd -T` prints it: choices in lower case (`LogLevel` in
/// upper case, `QUIET` as `SILENT`, `prohibit-password` as its older name
/// `without-password`), numbers
/// and times in seconds as plain decimals, algorithm lists expanded against the
/// OpenSSH 9.2 default; other values as written. `None` for a keyword outside
/// [`KEYWORDS`] or a value sshd refuses.
pub fn canonical(name: &str, args: &[String]) -> Option<String> {
    let k = keyword(name)?;
    let v = args.first().map(String::as_str).unwrap_or("");
    Some(match k.value {
        Value::Choice(_) if k.name == "LogLevel" && v.eq_ignore_ascii_case("quiet") => {
            "SILENT".to_string()
        }
        Value::Choice(_) if k.name == "LogLevel" => v.to_ascii_uppercase(),
        Value::Choice(_) if v.eq_ignore_ascii_case("prohibit-password") => {
            "without-password".to_string()
        }
        Value::Choice(_) => v.to_ascii_lowercase(),
        Value::Int => strtonum(v)?.to_string(),
        Value::Time => convtime(v)?.to_string(),
        Value::MaxStartups => {
            let (b, r, f) = max_startups_spec(v).ok()?;
            format!("{b}:{}:{f}", r.unwrap_or(30))
        }
        Value::Algorithms(all) => {
            let default = super::default_of(k.name)?;
            assemble(v, default, all).ok()?.join(",")
        }
        Value::Word | Value::Patterns => args.join(" "),
    })
}

/// Why sshd refuses `d`, if it does.
pub fn invalid(d: &Directive) -> Option<String> {
    let k = keyword(&d.keyword)?;
    // sshd refuses such a keyword only in a block that is inactive when it starts:
    // inside `Match all` it is accepted and set like a global line.
    if d.within.is_some() && !d.match_all && !k.in_match {
        return Some(format!("{} is not allowed inside a Match block", k.name));
    }
    let args = &d.args;
    if k.value == Value::Patterns {
        return args
            .iter()
            .any(|a| a.is_empty())
            .then(|| format!("empty {} pattern", k.name));
    }
    if args.len() > 1 {
        return Some(format!(
            "extra argument {:?} at the end of the line",
            args[1]
        ));
    }
    let v = args.first().map(String::as_str).unwrap_or("");
    if v.is_empty() {
        return Some(format!("{} has an empty argument", k.name));
    }
    let ok = match k.value {
        Value::Choice(words) => words.iter().any(|w| w.eq_ignore_ascii_case(v)),
        Value::Int => strtonum(v).is_some(),
        Value::Time => convtime(v).is_some(),
        Value::MaxStartups => return max_startups_spec(v).err(),
        Value::Algorithms(all) => algorithms_valid(v, all),
        Value::Word | Value::Patterns => true,
    };
    (!ok).then(|| format!("{v:?} is not a valid {} value", k.name))
}

/// Every line of the configuration that makes sshd refuse it, as `path:line: …`
/// evidence: lines the reader already found unacceptable and keywords of the table
/// with invalid arguments.
pub fn refusals(cfg: &SshdConfig) -> Vec<String> {
    let mut out: Vec<String> = cfg.refused.clone();
    out.extend(
        cfg.directives
            .iter()
            .filter_map(|d| invalid(d).map(|why| format!("{}: {why}", d.describe()))),
    );
    if !out.is_empty() {
        out.push(
            "sshd refuses this configuration (sshd -t fails): it neither starts nor reloads with it"
                .to_string(),
        );
    }
    out
}

/// The occurrence sshd uses outside Match blocks (or in a `Match all` block), by the
/// keyword's assignment rule; `None` when no line sets it. For `MaxStartups` see
/// [`max_startups`].
///
/// A keyword sshd does not allow in Match blocks may still stand in a `Match all`
/// block, active when sshd starts: there it is read like a global line, in file
/// order (the first one wins), and never again for a connection.
pub fn effective<'a>(cfg: &'a SshdConfig, name: &str) -> Option<&'a Directive> {
    match keyword(name) {
        Some(k) if k.assign == Assign::Last => cfg.all_global(name).into_iter().next_back(),
        Some(k) if !k.in_match => cfg
            .directives
            .iter()
            .find(|d| (d.within.is_none() || d.match_all) && d.is(name)),
        _ => cfg.effective(name),
    }
}

/// The MaxStartups sshd runs with: every line assigns, a single number keeping the
/// rate of the line before (30 by default) and using the number as `full`.
/// `(begin:rate:full, last line)`; `None` when no line sets it.
pub fn max_startups(cfg: &SshdConfig) -> Option<(String, &Directive)> {
    let mut rate = 30;
    let mut last = None;
    for d in cfg.all_global("MaxStartups") {
        let (b, r, f) = max_startups_spec(d.value()).ok()?;
        rate = r.unwrap_or(rate);
        last = Some((format!("{b}:{rate}:{f}"), d));
    }
    last
}

/// sshd's reading of `begin[:rate:full]`: `sscanf("%d:%d:%d")` — leading digits
/// count, trailing text after the last number read is ignored — then 3 numbers
/// need begin <= full and a rate of 1..=100, 1 number means full = begin, and any
/// other count is invalid; begin and full must be positive.
fn max_startups_spec(v: &str) -> Result<(i64, Option<i64>, i64), String> {
    let mut nums = Vec::new();
    let mut rest = v;
    while nums.len() < 3 {
        let Some((n, after)) = scan_int(rest) else {
            break;
        };
        nums.push(n);
        match after.strip_prefix(':') {
            Some(r) if nums.len() < 3 => rest = r,
            _ => break,
        }
    }
    let bad = || format!("{v:?} is not a valid MaxStartups value");
    let (b, r, f) = match nums.as_slice() {
        [b] => (*b, None, *b),
        [b, r, f] => {
            if b > f || !(1..=100).contains(r) {
                return Err(bad());
            }
            (*b, Some(*r), *f)
        }
        _ => return Err(bad()),
    };
    if b <= 0 || f <= 0 {
        return Err(bad());
    }
    Ok((b, r, f))
}

/// `%d`: optional blanks, an optional sign, then digits; the rest is returned.
fn scan_int(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if end == 0 {
        return None;
    }
    let n: i64 = t[..end].parse().ok().filter(|n| *n <= i32::MAX as i64)?;
    Some((if neg { -n } else { n }, &t[end..]))
}

/// strtonum(v, 0, INT_MAX): the whole string a decimal number in range.
fn strtonum(v: &str) -> Option<i64> {
    match scan_int(v) {
        Some((n, "")) if n >= 0 => Some(n),
        _ => None,
    }
}

/// Whether sshd accepts an algorithm list: after `-` anything; otherwise (after an
/// optional `+` or `^`) comma-separated names that are all supported, no wildcards.
fn algorithms_valid(v: &str, all: &str) -> bool {
    if v.starts_with('-') {
        return true;
    }
    let list = v.strip_prefix(['+', '^']).unwrap_or(v);
    !list.is_empty() && list.split(',').all(|n| all.split(',').any(|a| a == n))
}

/// sshd's `convtime`: `90`, `1m30s`, `2h`, `1w`; `None` when invalid or overflowing.
pub fn convtime(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let n: i64 = s[start..i].parse().ok()?;
        let mult = match b.get(i) {
            None => 1,
            Some(c) => {
                i += 1;
                match c.to_ascii_lowercase() {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86400,
                    b'w' => 604800,
                    _ => return None,
                }
            }
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
        if total > i32::MAX as i64 {
            return None;
        }
    }
    Some(total)
}

/// sshd's `kex_assemble_names`: `+list` appends to the default, `-list` removes
/// matching names from it, `^list` puts names first, anything else replaces it;
/// wildcards expand against every supported algorithm.
pub fn assemble(value: &str, default: &str, all: &str) -> Result<Vec<String>, String> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    };
    let def = split(default);
    let all = split(all);
    let cat = |a: Vec<String>, b: Vec<String>| -> Vec<String> {
        let mut out = a;
        for x in b {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    };
    let list = if let Some(rest) = value.strip_prefix('-') {
        let pats = split(rest);
        return Ok(def
            .into_iter()
            .filter(|d| !pats.iter().any(|p| fnmatch(p, d)))
            .collect());
    } else if let Some(rest) = value.strip_prefix('+') {
        cat(def, split(rest))
    } else if let Some(rest) = value.strip_prefix('^') {
        cat(split(rest), def)
    } else {
        split(value)
    };
    let mut out: Vec<String> = Vec::new();
    for pat in list {
        if pat.starts_with('!') {
            return Err(format!(
                "negated pattern {pat} is invalid here; sshd refuses to start"
            ));
        }
        for a in &all {
            if fnmatch(&pat, a) && !out.contains(a) {
                out.push(a.clone());
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{value} names no supported algorithm; sshd refuses to start"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(line: &str) -> Directive {
        let (keyword, args) = crate::facts::sshd::split_line(line).unwrap();
        Directive {
            keyword,
            args,
            source: "/etc/ssh/sshd_config:1".into(),
            within: None,
            match_all: false,
        }
    }

    #[test]
    fn validation_matches_sshd_9_2() {
        // Each accepted or refused by sshd -T of Debian 12's OpenSSH 9.2p1.
        for ok in [
            "MaxStartups 10abc",
            "MaxStartups 10:30:60:70",
            "MaxStartups +10",
            "MaxAuthTries +3",
            "MaxAuthTries 010",
            "LoginGraceTime 1M",
            "PermitRootLogin NO",
            "PermitRootLogin without-password",
            "IgnoreRhosts shosts-only",
            "LogLevel debug",
            "Ciphers -aes*",
            "Ciphers -foo",
            "Ciphers ^aes128-ctr",
            "AllowUsers wrong_value",
            "PermitUserEnvironment wrong_value",
            "KexAlgorithms +diffie-hellman-group1-sha1",
        ] {
            assert_eq!(invalid(&d(ok)), None, "{ok}");
        }
        for bad in [
            "MaxStartups 10:30",
            "MaxStartups 10:0:60",
            "MaxStartups 60:30:10",
            "MaxStartups 0",
            "MaxStartups 10:101:60",
            "MaxStartups 10:30:60 extra",
            "MaxAuthTries 3x",
            "MaxAuthTries -1",
            "MaxAuthTries 3 4",
            "MaxAuthTries 0x10",
            "LoginGraceTime -5",
            "LogLevel INFO extra",
            "Ciphers aes*",
            "Ciphers aes128-ctr,foo",
            "Ciphers +foo",
            "PermitRootLogin wrong_value",
            "UsePAM wrong_value",
            "AllowUsers \"\"",
            "Banner \"\"",
        ] {
            assert!(invalid(&d(bad)).is_some(), "{bad}");
        }
    }

    #[test]
    fn max_startups_is_last_wins_and_keeps_the_rate() {
        assert_eq!(max_startups_spec("10:50:60"), Ok((10, Some(50), 60)));
        assert_eq!(max_startups_spec("20"), Ok((20, None, 20)));
    }
}
