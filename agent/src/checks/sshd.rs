//! `sshd.*` checks: the OpenSSH server's effective configuration, read statically
//! (see [`config`]) with OpenSSH's compiled-in defaults for unset keywords (9.2, as
//! Debian 12 ships it, unless a check names another release with `openssh`), and
//! the permissions of its configuration and host key files.
//!
//! The releases the benchmarks meet differ only in the default key exchange list:
//! OpenSSH 8.9 (Ubuntu 22.04) still puts the curve25519 and ECDH methods before
//! sntrup761x25519, which 9.0 moved first; 9.2 and 9.6 (Ubuntu 24.04) share every
//! default list and support the same algorithms (myproposal.h, cipher.c, mac.c,
//! kex.c of the V_8_9_P1, V_9_2_P1 and V_9_6_P1 tags).
//!
//! Every check is not applicable when the `openssh-server` package is not installed.
//! A keyword's global value follows its assignment rule in [`keywords`] (the first
//! occurrence outside `Match` blocks for most, the last for `MaxStartups`); a value
//! set inside a `Match` block that is weaker than required fails the check too, since
//! it applies to the connections the block matches. A configuration sshd refuses
//! (an invalid value, a keyword without its argument) fails every check, naming the
//! offending lines: sshd does not run with it.

pub mod keys;
pub mod keywords;

pub use keywords::{assemble, convtime};

use serde::Deserialize;

use crate::facts::packages::packages;
use crate::facts::sshd::{self as config, sshd_config, Directive, SshdConfig};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The package whose presence makes these checks applicable.
const PACKAGE: &str = "openssh-server";

/// OpenSSH 9.2 default cipher list (myproposal.h, KEX_SERVER_ENCRYPT).
const DEFAULT_CIPHERS: &str =
    "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
/// OpenSSH 9.2 default MAC list (KEX_SERVER_MAC).
const DEFAULT_MACS: &str =
    "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,\
hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,\
hmac-sha2-256,hmac-sha2-512,hmac-sha1";
/// Debian 12's OpenSSH 9.2p1-2+deb12u10 default key exchange list, as its `sshd -T`
/// prints it: upstream 9.2's with `sntrup761x25519-sha512` (the name without the
/// suffix, backported) first.
const DEFAULT_KEX_DEBIAN_9_2: &str = "sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,\
curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,\
ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,\
diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
/// Upstream OpenSSH 9.2 and 9.6 default key exchange list (KEX_SERVER_KEX).
const DEFAULT_KEX: &str =
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,\
ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,\
diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";
/// OpenSSH 8.9 default key exchange list (KEX_SERVER_KEX): the same methods as
/// 9.2, with sntrup761x25519 after the ECDH ones.
const DEFAULT_KEX_8_9: &str = "curve25519-sha256,curve25519-sha256@libssh.org,\
ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,sntrup761x25519-sha512@openssh.com,\
diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,\
diffie-hellman-group14-sha256";
/// Every cipher OpenSSH 8.9 to 9.6 (built with OpenSSL) supports; patterns expand against it.
const ALL_CIPHERS: &str =
    "3des-cbc,aes128-cbc,aes192-cbc,aes256-cbc,aes128-ctr,aes192-ctr,aes256-ctr,\
aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com";
/// Every MAC OpenSSH 8.9 to 9.6 supports.
const ALL_MACS: &str = "hmac-sha1,hmac-sha1-96,hmac-sha2-256,hmac-sha2-512,hmac-md5,hmac-md5-96,\
umac-64@openssh.com,umac-128@openssh.com,hmac-sha1-etm@openssh.com,hmac-sha1-96-etm@openssh.com,\
hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-md5-etm@openssh.com,\
hmac-md5-96-etm@openssh.com,umac-64-etm@openssh.com,umac-128-etm@openssh.com";
/// Every key exchange method OpenSSH 8.9 to 9.6 supports (`sntrup761x25519-sha512`
/// without the suffix is in Debian 12's 9.2p1-2+deb12u10, as its `ssh -Q kex` lists).
const ALL_KEX: &str =
    "diffie-hellman-group1-sha1,diffie-hellman-group14-sha1,diffie-hellman-group14-sha256,\
diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group-exchange-sha1,\
diffie-hellman-group-exchange-sha256,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,\
curve25519-sha256,curve25519-sha256@libssh.org,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com";

/// An OpenSSH release whose compiled-in defaults a check assumes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum Openssh {
    /// 8.9p1 (Ubuntu 22.04).
    #[serde(rename = "8.9")]
    V8_9,
    /// 9.2p1 (Debian 12); the default.
    #[default]
    #[serde(rename = "9.2")]
    V9_2,
    /// 9.6p1 (Ubuntu 24.04).
    #[serde(rename = "9.6")]
    V9_6,
}

impl Openssh {
    fn label(self) -> &'static str {
        match self {
            Openssh::V8_9 => "8.9",
            Openssh::V9_2 => "9.2",
            Openssh::V9_6 => "9.6",
        }
    }
}

/// OpenSSH 9.2's compiled-in value of a keyword (lower case), as `sshd -T` shows it.
pub fn default_of(keyword: &str) -> Option<&'static str> {
    default_in(keyword, Openssh::V9_2)
}

/// The compiled-in value of a keyword in the given OpenSSH release.
pub fn default_in(keyword: &str, release: Openssh) -> Option<&'static str> {
    Some(match keyword.to_ascii_lowercase().as_str() {
        "permitrootlogin" => "prohibit-password",
        "maxauthtries" => "6",
        "logingracetime" => "120",
        "clientaliveinterval" => "0",
        "clientalivecountmax" => "3",
        "usepam" => "no",
        "disableforwarding" => "no",
        "gssapiauthentication" => "no",
        "hostbasedauthentication" => "no",
        "ignorerhosts" => "yes",
        "permitemptypasswords" => "no",
        "permituserenvironment" => "no",
        "loglevel" => "INFO",
        "maxsessions" => "10",
        "maxstartups" => "10:30:100",
        "banner" => "none",
        "x11forwarding" => "no",
        "allowtcpforwarding" => "yes",
        "allowagentforwarding" => "yes",
        "passwordauthentication" => "yes",
        "pubkeyauthentication" => "yes",
        "kbdinteractiveauthentication" => "yes",
        "ciphers" => DEFAULT_CIPHERS,
        "macs" => DEFAULT_MACS,
        "kexalgorithms" if release == Openssh::V8_9 => DEFAULT_KEX_8_9,
        "kexalgorithms" if release == Openssh::V9_2 => DEFAULT_KEX_DEBIAN_9_2,
        "kexalgorithms" => DEFAULT_KEX,
        _ => return None,
    })
}

/// Which files an `sshd.files` check judges.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileSet {
    /// `/etc/ssh/sshd_config`, every file it includes and `/etc/ssh/sshd_config.d/*.conf`.
    Config,
    /// Private host keys: `/etc/ssh/ssh_host_*_key` and every configured `HostKey`.
    PrivateKeys,
    /// Public host keys: the `.pub` companions of the private ones.
    PublicKeys,
}

/// One acceptable (group, mode) combination for `sshd.files`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRule {
    /// Allowed groups (names or numeric IDs).
    pub group: Vec<String>,
    /// Octal: bits outside it must be clear.
    pub max_mode: String,
}

/// The `sshd.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// The effective value of `keyword` (first global occurrence, else the OpenSSH
    /// default) is one of `allowed` (case-insensitive unless `case_sensitive`), and/or
    /// a number within `min`..=`max` (`time`: a sshd time value such as `1m30s`, in
    /// seconds). Values set inside Match blocks are judged the same way.
    #[serde(rename = "sshd.option")]
    Option {
        keyword: String,
        #[serde(default)]
        allowed: Vec<String>,
        min: Option<i64>,
        max: Option<i64>,
        #[serde(default)]
        time: bool,
        #[serde(default)]
        case_sensitive: bool,
    },
    /// The effective algorithm list of `keyword` (Ciphers, MACs, KexAlgorithms),
    /// after sshd's `+`/`-`/`^` and wildcard rules, contains none of `forbidden`.
    /// `openssh` names the release whose default list applies (`"8.9"`, `"9.2"`,
    /// `"9.6"`; 9.2 when omitted).
    #[serde(rename = "sshd.algorithms")]
    Algorithms {
        keyword: String,
        forbidden: Vec<String>,
        openssh: Option<Openssh>,
    },
    /// MaxStartups `begin:rate:full` is no looser than the limits: begin and full at
    /// most the given values, and the early-drop rate at least `rate` (when begin < full).
    #[serde(rename = "sshd.max_startups")]
    MaxStartups { begin: u32, rate: u32, full: u32 },
    /// At least one of `keywords` is set globally (e.g. AllowUsers/AllowGroups/...).
    #[serde(rename = "sshd.any_set")]
    AnySet { keywords: Vec<String> },
    /// `Banner` names an existing file whose text reveals no system details
    /// (`\m`, `\r`, `\s`, `\v` escapes, the os-release ID, or any of `names`,
    /// compared case-insensitively, such as `red hat`).
    #[serde(rename = "sshd.banner")]
    Banner {
        #[serde(default)]
        names: Vec<String>,
    },
    /// Ownership and mode of sshd's configuration or host key files: owner in
    /// `owner`, and the (group, mode) pair matching one of `modes`. Files under one
    /// of the `exclude` directories (e.g. RHEL's system-wide crypto-policy back-end,
    /// included by sshd but world-readable by design) are reported, not judged.
    #[serde(rename = "sshd.files")]
    Files {
        set: FileSet,
        owner: Vec<String>,
        modes: Vec<ModeRule>,
        #[serde(default)]
        exclude: Vec<String>,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        let pk = packages(facts)?;
        // Judged as soon as sshd's files may be on disk (dpkg's unpacked, ...).
        if !pk.is_present(PACKAGE) {
            return Ok(Outcome::not_applicable(pk.describe(PACKAGE)));
        }
        let cfg = sshd_config(facts)?;
        let refused = keywords::refusals(&cfg);
        if !refused.is_empty() {
            return Ok(Outcome::new(Status::Fail, refused));
        }
        let mut out = match self {
            Check::Option {
                keyword,
                allowed,
                min,
                max,
                time,
                case_sensitive,
            } => {
                let judge = |v: &str| judge_value(v, allowed, *min, *max, *time, *case_sensitive);
                judge_keyword(&cfg, keyword, None, judge)
            }
            Check::Algorithms {
                keyword,
                forbidden,
                openssh,
            } => {
                let all = match keyword.to_ascii_lowercase().as_str() {
                    "ciphers" => ALL_CIPHERS,
                    "macs" => ALL_MACS,
                    "kexalgorithms" => ALL_KEX,
                    _ => {
                        return Ok(Outcome::error(format!(
                            "sshd.algorithms: unsupported keyword {keyword}"
                        )))
                    }
                };
                let default = default_in(keyword, openssh.unwrap_or_default()).unwrap_or_default();
                let judge = |v: &str| {
                    let list = assemble(v, default, all)?;
                    let bad: Vec<&String> = list
                        .iter()
                        .filter(|a| forbidden.iter().any(|f| f == *a))
                        .collect();
                    if bad.is_empty() {
                        Ok(format!("effective list {}", list.join(",")))
                    } else {
                        Err(format!(
                            "weak algorithms enabled: {}",
                            bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                        ))
                    }
                };
                judge_keyword(&cfg, keyword, *openssh, judge)
            }
            Check::MaxStartups { begin, rate, full } => {
                let judge = |v: &str| judge_max_startups(v, *begin, *rate, *full);
                judge_keyword(&cfg, "MaxStartups", None, judge)
            }
            Check::AnySet { keywords } => any_set(&cfg, keywords),
            Check::Banner { names } => banner(facts, &cfg, names)?,
            Check::Files {
                set,
                owner,
                modes,
                exclude,
            } => keys::files(facts, &cfg, *set, owner, modes, exclude)?,
        };
        out.evidence.extend(cfg.notes.iter().cloned());
        Ok(out)
    }
}

/// Judges the global value (or default) and every Match-block value of `keyword`.
/// `judge` returns Ok(detail) when the value is acceptable, Err(reason) otherwise.
/// `release` names the OpenSSH release whose default applies (9.2 when `None`; the
/// evidence then names no release).
fn judge_keyword(
    cfg: &SshdConfig,
    keyword: &str,
    release: Option<Openssh>,
    judge: impl Fn(&str) -> Result<String, String>,
) -> Outcome {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let Some(default) = default_in(keyword, release.unwrap_or_default()) else {
        return Outcome::error(format!("no OpenSSH default is known for {keyword}"));
    };
    let which = release
        .map(|r| format!("OpenSSH {} default", r.label()))
        .unwrap_or_else(|| "OpenSSH default".to_string());
    let effective = keywords::effective(cfg, keyword);
    let last_wins = keywords::keyword(keyword).map(|k| k.assign) == Some(keywords::Assign::Last);
    let folded = if keyword.eq_ignore_ascii_case("MaxStartups") {
        keywords::max_startups(cfg)
    } else {
        None
    };
    let (value, describe) = match (folded, effective) {
        (Some((v, d)), _) => (
            v.clone(),
            format!(
                "{} (the last MaxStartups line wins: sshd runs with {v})",
                d.describe()
            ),
        ),
        (None, Some(d)) if last_wins => (
            d.args.join(" "),
            format!("{} (the last {} line wins)", d.describe(), d.keyword),
        ),
        (None, Some(d)) => (d.args.join(" "), d.describe()),
        (None, None) => (
            default.to_string(),
            format!(
                "{keyword} not set in {}; {which} {default}",
                config_where(cfg)
            ),
        ),
    };
    match judge(&value) {
        Ok(detail) => found.push(with_detail(describe, &detail)),
        Err(reason) => failures.push(format!("{describe}: {reason}")),
    }
    if let (Some(e), Some(g)) = (effective, cfg.global(keyword)) {
        if e.match_all {
            found.push(format!(
                "{} is overridden for every connection by the Match all block",
                g.describe()
            ));
        }
    }
    for d in cfg
        .in_match(keyword)
        .into_iter()
        .filter(|d| not_same(d, effective))
    {
        match judge(&d.args.join(" ")) {
            Ok(detail) => found.push(with_detail(d.describe(), &detail)),
            Err(reason) => failures.push(format!(
                "{}: {reason} for the connections this Match block covers",
                d.describe()
            )),
        }
    }
    Outcome::from_findings(failures, found)
}

/// Whether `d` is not the directive `e` (by identity).
fn not_same(d: &Directive, e: Option<&Directive>) -> bool {
    e.is_none_or(|e| !std::ptr::eq(d, e))
}

fn with_detail(describe: String, detail: &str) -> String {
    if detail.is_empty() {
        describe
    } else {
        format!("{describe} ({detail})")
    }
}

fn config_where(cfg: &SshdConfig) -> String {
    if cfg.files.len() > 1 {
        format!(
            "{} or its {} included file(s)",
            config::MAIN,
            cfg.files.len() - 1
        )
    } else {
        config::MAIN.to_string()
    }
}

fn judge_value(
    v: &str,
    allowed: &[String],
    min: Option<i64>,
    max: Option<i64>,
    time: bool,
    case_sensitive: bool,
) -> Result<String, String> {
    if !allowed.is_empty() {
        let ok = allowed.iter().any(|a| {
            if case_sensitive {
                a == v
            } else {
                a.eq_ignore_ascii_case(v)
            }
        });
        if !ok {
            return Err(format!("{v} is not {}", allowed.join(" or ")));
        }
    }
    if min.is_some() || max.is_some() {
        let n = if time {
            convtime(v)
        } else {
            v.parse::<i64>().ok()
        };
        let Some(n) = n else {
            return Err(format!(
                "{v} is not a valid {}",
                if time { "time value" } else { "number" }
            ));
        };
        if let Some(lo) = min {
            if n < lo {
                return Err(format!("{n} is below {lo}"));
            }
        }
        if let Some(hi) = max {
            if n > hi {
                return Err(format!("{n} is above {hi}"));
            }
        }
        if time && v.parse::<i64>().is_err() {
            return Ok(format!("{n} seconds"));
        }
    }
    Ok(String::new())
}

fn judge_max_startups(
    v: &str,
    begin_max: u32,
    rate_min: u32,
    full_max: u32,
) -> Result<String, String> {
    let nums: Vec<Option<u32>> = v.split(':').map(|p| p.trim().parse().ok()).collect();
    let (begin, rate, full) = match nums.as_slice() {
        [Some(b)] => (*b, 30, *b),
        [Some(b), Some(r), Some(f)] => (*b, *r, *f),
        _ => return Err(format!("{v} is not a valid MaxStartups value")),
    };
    let mut why = Vec::new();
    if begin > begin_max {
        why.push(format!("start {begin} is above {begin_max}"));
    }
    if full > full_max {
        why.push(format!("full {full} is above {full_max}"));
    }
    if begin < full && rate < rate_min {
        why.push(format!("rate {rate}% is below {rate_min}%"));
    }
    if why.is_empty() {
        Ok(format!(
            "{begin}:{rate}:{full} is no looser than {begin_max}:{rate_min}:{full_max}"
        ))
    } else {
        Err(why.join(", "))
    }
}

fn any_set(cfg: &SshdConfig, keywords: &[String]) -> Outcome {
    let global: Vec<&Directive> = keywords
        .iter()
        .flat_map(|k| {
            let mut v = cfg.all_global(k);
            v.extend(cfg.in_match(k).into_iter().filter(|d| d.match_all));
            v
        })
        .collect();
    if !global.is_empty() {
        return Outcome::new(Status::Pass, global.iter().map(|d| d.describe()).collect());
    }
    let matched: Vec<&Directive> = keywords.iter().flat_map(|k| cfg.in_match(k)).collect();
    let mut ev = vec![format!(
        "none of {} is set outside Match blocks in {}",
        keywords.join(", "),
        config_where(cfg)
    )];
    ev.extend(matched.iter().map(|d| {
        format!(
            "{} applies only to the connections its Match block covers",
            d.describe()
        )
    }));
    Outcome::new(Status::Fail, ev)
}

fn banner(facts: &Facts, cfg: &SshdConfig, names: &[String]) -> Result<Outcome, FactError> {
    let os_id = facts
        .read("/etc/os-release")?
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("ID=")
                    .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
            })
        })
        .filter(|s| !s.is_empty());
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut entries: Vec<(String, String)> = Vec::new();
    let effective = cfg.effective("Banner");
    match effective {
        Some(d) => entries.push((d.value().to_string(), d.describe())),
        None => failures.push(format!(
            "Banner not set in {}; OpenSSH default none (no banner)",
            config_where(cfg)
        )),
    }
    for d in cfg
        .in_match("Banner")
        .into_iter()
        .filter(|d| not_same(d, effective))
    {
        entries.push((d.value().to_string(), d.describe()));
    }
    for (value, describe) in entries {
        if value.eq_ignore_ascii_case("none") {
            failures.push(format!("{describe}: no banner is shown"));
            continue;
        }
        match facts.read(&value)? {
            None => failures.push(format!("{describe}: {value} does not exist")),
            Some(text) => {
                let mut bad: Vec<String> = ["\\m", "\\r", "\\s", "\\v"]
                    .iter()
                    .filter(|e| text.contains(**e))
                    .map(|e| e.to_string())
                    .collect();
                let lower = text.to_lowercase();
                if let Some(id) = &os_id {
                    if contains_word(&lower, &id.to_lowercase()) {
                        bad.push(format!("the OS name \"{id}\""));
                    }
                }
                for n in names {
                    let n_lc = n.to_lowercase();
                    if !n_lc.is_empty()
                        && contains_word(&lower, &n_lc)
                        && os_id.as_ref().is_none_or(|id| id.to_lowercase() != n_lc)
                    {
                        bad.push(format!("the OS name \"{n}\""));
                    }
                }
                if text.trim().is_empty() {
                    failures.push(format!("{describe}: {value} is empty"));
                } else if bad.is_empty() {
                    found.push(format!("{describe}: {value} reveals no system details"));
                } else {
                    failures.push(format!(
                        "{describe}: {value} reveals system details: {}",
                        bad.join(", ")
                    ));
                }
            }
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

/// Whether `needle` occurs in `hay` as a whole word (the characters either side are
/// not letters, digits or `_`), as the benchmarks' `\bID\b` test reads it: Oracle
/// Linux's ID `ol` must not match "controlled" or "policy".
fn contains_word(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    hay.match_indices(needle).any(|(i, _)| {
        !word(hay[..i].chars().next_back()) && !word(hay[i + needle.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests;
