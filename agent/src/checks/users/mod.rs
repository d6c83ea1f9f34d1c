//! `users.*` checks: the account databases (/etc/passwd, /etc/shadow, /etc/group),
//! the shadow suite's defaults (/etc/login.defs, /etc/default/useradd), interactive
//! users' home directories and dot files, and sudo's policy (see [`sudoers`]).
//!
//! "Interactive" users are those whose login shell is listed in /etc/shells and is
//! not a nologin or false shell, whatever their UID (root included).

mod home;
mod sudo;
pub mod sudoers;
use home::*;
use sudo::*;

use std::collections::BTreeMap;

use serde::Deserialize;

use self::sudoers::{sudoers, Op};
use crate::checks::file::parse_mode;
use crate::facts::account_defaults::{
    login_defs_value, shadow_long, uid_min, useradd_default, visible,
};
use crate::facts::accounts::{accounts, is_nologin, shells, Accounts, User};
use crate::facts::packages::packages;
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// Most evidence lines listed for one finding kind before summarising.
const MAX_LINES: usize = 50;

/// A numeric /etc/shadow field.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ShadowField {
    MinDays,
    MaxDays,
    WarnDays,
    Inactive,
}

/// Which ID 0 holders a `users.id_zero` check looks at.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ZeroWhat {
    /// Users with UID 0.
    Uid,
    /// Users whose primary GID is 0.
    PrimaryGid,
    /// Groups with GID 0.
    GroupGid,
}

/// What must be unique for `users.unique`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UniqueWhat {
    Uid,
    Gid,
    UserName,
    GroupName,
}

/// What a `users.sudo_defaults` check demands of a Defaults option.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Want {
    /// A flag turned on globally and not turned off for any user, host or command.
    /// Left unset, it passes only when the installed sudo turns it on by default
    /// (use_pty from sudo 1.9.14 on, e.g. Ubuntu 24.04's 1.9.15).
    On,
    /// An option given a value globally and not turned off afterwards.
    Value,
    /// A flag that is on by default and must not be turned off anywhere.
    NotOff,
}

/// The `users.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// /etc/login.defs `key` (last occurrence wins, case-sensitive) is one of
    /// `allowed` and/or a number within `min`..=`max`. When unset, `default` (the
    /// shadow suite's built-in value) is judged.
    #[serde(rename = "users.login_defs")]
    LoginDefs {
        key: String,
        #[serde(default)]
        allowed: Vec<String>,
        min: Option<i64>,
        max: Option<i64>,
        default: Option<String>,
    },
    /// /etc/default/useradd `KEY=value` is a number within `min`..=`max`; `default`
    /// when unset.
    #[serde(rename = "users.useradd_default")]
    UseraddDefault {
        key: String,
        min: Option<i64>,
        max: Option<i64>,
        default: Option<String>,
    },
    /// For every /etc/shadow entry with a usable password, `field` is set and within
    /// `min`..=`max`.
    #[serde(rename = "users.shadow_field")]
    ShadowField {
        field: ShadowField,
        min: Option<i64>,
        max: Option<i64>,
    },
    /// No /etc/shadow last-change date lies after today.
    #[serde(rename = "users.shadow_no_future_change")]
    ShadowNoFutureChange,
    /// Only the `allowed` names hold ID 0 of the kind `what`.
    #[serde(rename = "users.id_zero")]
    IdZero {
        what: ZeroWhat,
        allowed: Vec<String>,
    },
    /// `user` exists in /etc/passwd and its primary group is GID `gid`.
    #[serde(rename = "users.primary_gid")]
    PrimaryGid { user: String, gid: u32 },
    /// root has a password set or is locked (its shadow password is not empty).
    /// With `require_password`, a locked root fails too: root must have a usable
    /// password (`passwd -S` status P).
    #[serde(rename = "users.root_password")]
    RootPassword {
        #[serde(default)]
        require_password: bool,
    },
    /// Accounts with a UID below UID_MIN (or 65534), other than `exempt`, do not
    /// have a shell listed in /etc/shells.
    #[serde(rename = "users.system_shells")]
    SystemShells { exempt: Vec<String> },
    /// Every account except root whose shell is not a valid login shell is locked.
    #[serde(rename = "users.nologin_locked")]
    NologinLocked,
    /// Every /etc/passwd password field is `x` (the hash lives in /etc/shadow).
    #[serde(rename = "users.passwd_shadowed")]
    PasswdShadowed,
    /// No /etc/shadow entry has an empty password field.
    #[serde(rename = "users.shadow_no_empty")]
    ShadowNoEmpty,
    /// Every primary GID in /etc/passwd exists in /etc/group.
    #[serde(rename = "users.primary_groups_exist")]
    PrimaryGroupsExist,
    /// `group` lists no members and is nobody's primary group (passes if absent).
    #[serde(rename = "users.group_empty")]
    GroupEmpty { group: String },
    /// No UID, GID, user name or group name appears twice.
    #[serde(rename = "users.unique")]
    Unique { what: UniqueWhat },
    /// Each interactive user's home directory exists, is a directory owned by the
    /// user, and has a mode no looser than `max_mode`.
    #[serde(rename = "users.home_dirs")]
    HomeDirs { max_mode: String },
    /// In each interactive user's home directory: none of `forbidden` exists; the
    /// `private` files are no looser than `private_mode`; other dot files no looser
    /// than `max_mode`; every dot file is owned by the user and their primary group.
    #[serde(rename = "users.dot_files")]
    DotFiles {
        forbidden: Vec<String>,
        private: Vec<String>,
        private_mode: String,
        max_mode: String,
    },
    /// A sudo Defaults option (across /etc/sudoers and its includes) is as `want`
    /// says. Not applicable when sudo is not installed.
    #[serde(rename = "users.sudo_defaults")]
    SudoDefaults { option: String, want: Want },
    /// sudo's timestamp_timeout is between 0 and `max` minutes everywhere it is set
    /// (unset: the default of 15 minutes). Not applicable without sudo.
    #[serde(rename = "users.sudo_timeout")]
    SudoTimeout { max: f64 },
    /// No sudoers rule carries `tag` (e.g. NOPASSWD). Not applicable without sudo.
    #[serde(rename = "users.sudo_no_tag")]
    SudoNoTag { tag: String },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        match self {
            Check::LoginDefs {
                key,
                allowed,
                min,
                max,
                default,
            } => {
                let read = login_defs_value(facts, key)?;
                let numeric = min.is_some() || max.is_some();
                let (value, desc) = match (read.value, default) {
                    // The shadow tools use their default for a number they cannot read.
                    (Some(v), Some(d)) if numeric && read.number.is_none() => (
                        Some(d.clone()),
                        format!(
                            "{}: {} is not a number to the shadow tools, which use the default {d}",
                            read.desc,
                            visible(&v)
                        ),
                    ),
                    (Some(v), _) => (Some(v), read.desc),
                    (None, _) => (
                        default.clone(),
                        match default {
                            Some(d) => format!("{key} not set in /etc/login.defs; default {d}"),
                            None => format!("{key} not set in /etc/login.defs"),
                        },
                    ),
                };
                Ok(judge(value.as_deref(), &desc, allowed, *min, *max))
            }
            Check::UseraddDefault {
                key,
                min,
                max,
                default,
            } => {
                let read = useradd_default(facts, key)?;
                let (value, desc) = match (read.value, read.number) {
                    (Some(_), Some(n)) => (Some(n.to_string()), read.desc),
                    // useradd ignores a value it cannot read and keeps its default.
                    (Some(v), None) => (
                        default.clone(),
                        format!(
                            "{}: useradd cannot read {} as a number and uses its default {}",
                            read.desc,
                            visible(&v),
                            default.as_deref().unwrap_or("none")
                        ),
                    ),
                    (None, _) => (
                        default.clone(),
                        format!(
                            "{key} not set in /etc/default/useradd; useradd default {}",
                            default.as_deref().unwrap_or("none")
                        ),
                    ),
                };
                Ok(judge(value.as_deref(), &desc, &[], *min, *max))
            }
            Check::ShadowField { field, min, max } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let name = match field {
                    ShadowField::MinDays => "minimum days",
                    ShadowField::MaxDays => "maximum days",
                    ShadowField::WarnDays => "warning days",
                    ShadowField::Inactive => "inactive days",
                };
                let mut failures = Vec::new();
                let mut n = 0;
                for s in acc.shadow.iter().filter(|s| s.has_password()) {
                    n += 1;
                    let v = match field {
                        ShadowField::MinDays => s.min_days,
                        ShadowField::MaxDays => s.max_days,
                        ShadowField::WarnDays => s.warn_days,
                        ShadowField::Inactive => s.inactive,
                    };
                    let bad = match v {
                        None => Some("empty".to_string()),
                        Some(v) if min.is_some_and(|lo| v < lo) => {
                            Some(format!("{v}, below {}", min.unwrap_or_default()))
                        }
                        Some(v) if max.is_some_and(|hi| v > hi) => {
                            Some(format!("{v}, above {}", max.unwrap_or_default()))
                        }
                        Some(_) => None,
                    };
                    if let Some(b) = bad {
                        failures.push(format!("/etc/shadow:{}: {}: {name} {b}", s.line, s.name));
                    }
                }
                let range = range_text(*min, *max);
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!(
                        "all {n} accounts with a password in /etc/shadow have {name} {range}"
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(acc.malformed.iter().cloned());
                Ok(out)
            }
            Check::ShadowNoFutureChange => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let today = today_days();
                let failures: Vec<String> = acc
                    .shadow
                    .iter()
                    .filter(|s| s.last_change.is_some_and(|d| d > today))
                    .map(|s| {
                        let d = s.last_change.unwrap_or_default();
                        format!(
                            "/etc/shadow:{}: {} last changed on day {d} ({}), after today ({})",
                            s.line,
                            s.name,
                            date_of(d),
                            date_of(today)
                        )
                    })
                    .collect();
                Ok(if failures.is_empty() {
                    Outcome::pass(format!(
                        "no /etc/shadow last-change date is after today ({})",
                        date_of(today)
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                })
            }
            Check::IdZero { what, allowed } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let holders: Vec<(String, String)> = match what {
                    ZeroWhat::Uid => acc
                        .users
                        .iter()
                        .filter(|u| u.uid == 0)
                        .map(|u| {
                            (
                                u.name.clone(),
                                format!("/etc/passwd:{}: {} has UID 0", u.line, u.name),
                            )
                        })
                        .collect(),
                    ZeroWhat::PrimaryGid => acc
                        .users
                        .iter()
                        .filter(|u| u.gid == 0)
                        .map(|u| {
                            (
                                u.name.clone(),
                                format!("/etc/passwd:{}: {} has primary GID 0", u.line, u.name),
                            )
                        })
                        .collect(),
                    ZeroWhat::GroupGid => acc
                        .groups
                        .iter()
                        .filter(|g| g.gid == 0)
                        .map(|g| {
                            (
                                g.name.clone(),
                                format!("/etc/group:{}: group {} has GID 0", g.line, g.name),
                            )
                        })
                        .collect(),
                };
                let (ok, bad): (Vec<_>, Vec<_>) =
                    holders.into_iter().partition(|(n, _)| allowed.contains(n));
                let mut out = Outcome::from_findings(
                    bad.into_iter().map(|(_, d)| d).collect(),
                    ok.into_iter().map(|(_, d)| d).collect(),
                );
                if out.evidence.is_empty() {
                    out.evidence.push("no entry holds ID 0".into());
                }
                out.evidence.extend(acc.malformed.iter().cloned());
                Ok(out)
            }
            Check::PrimaryGid { user, gid } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                Ok(match acc.user(user) {
                    None => Outcome::fail(format!("{user} has no /etc/passwd entry")),
                    Some(u) if u.gid == *gid => Outcome::pass(format!(
                        "/etc/passwd:{}: {user} has primary GID {gid}",
                        u.line
                    )),
                    Some(u) => Outcome::fail(format!(
                        "/etc/passwd:{}: {user} has primary GID {}, not {gid}",
                        u.line, u.gid
                    )),
                })
            }
            Check::RootPassword { require_password } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                Ok(match acc.shadow_of("root") {
                    None => Outcome::fail("root has no /etc/shadow entry"),
                    Some(s) if s.password.is_empty() => Outcome::fail(format!(
                        "/etc/shadow:{}: root has an empty password",
                        s.line
                    )),
                    Some(s) if s.is_locked() && *require_password => Outcome::fail(format!(
                        "/etc/shadow:{}: root is locked (password field starts with {}), so it has no usable password",
                        s.line,
                        &s.password[..1]
                    )),
                    Some(s) if s.is_locked() => {
                        Outcome::pass(format!("/etc/shadow:{}: root is locked", s.line))
                    }
                    Some(s) => {
                        Outcome::pass(format!("/etc/shadow:{}: root has a password set", s.line))
                    }
                })
            }
            Check::SystemShells { exempt } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let valid = valid_shells(facts)?;
                let uid_min = uid_min(facts)?;
                let mut failures = Vec::new();
                let mut n = 0;
                for u in acc
                    .users
                    .iter()
                    .filter(|u| (u.uid < uid_min || u.uid == 65534) && !exempt.contains(&u.name))
                {
                    n += 1;
                    if valid.contains(&u.shell) {
                        failures.push(format!(
                            "/etc/passwd:{}: system account {} (UID {}) has login shell {}",
                            u.line, u.name, u.uid, u.shell
                        ));
                    }
                }
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!(
                        "none of the {n} system accounts (UID below {uid_min}, other than {}) has a shell listed in /etc/shells",
                        exempt.join(", ")
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(acc.malformed.iter().cloned());
                Ok(out)
            }
            Check::NologinLocked => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let valid = valid_shells(facts)?;
                let mut failures = Vec::new();
                let mut n = 0;
                for u in acc
                    .users
                    .iter()
                    .filter(|u| u.name != "root" && !valid.contains(&u.shell))
                {
                    n += 1;
                    match acc.shadow_of(&u.name) {
                        None => failures.push(format!(
                            "/etc/passwd:{}: {} (shell {}) has no /etc/shadow entry",
                            u.line, u.name, u.shell
                        )),
                        Some(s) if !s.is_locked() => failures.push(format!(
                            "/etc/shadow:{}: {} (shell {}) is not locked",
                            s.line, u.name, u.shell
                        )),
                        Some(_) => {}
                    }
                }
                Ok(if failures.is_empty() {
                    Outcome::pass(format!(
                        "all {n} accounts without a valid login shell are locked"
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                })
            }
            Check::PasswdShadowed => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let failures: Vec<String> = acc
                    .users
                    .iter()
                    .filter(|u| u.password != "x")
                    .map(|u| {
                        let what = if u.password.is_empty() {
                            "is empty".to_string()
                        } else {
                            "is not x".to_string()
                        };
                        format!(
                            "/etc/passwd:{}: the password field of {} {what}",
                            u.line, u.name
                        )
                    })
                    .collect();
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!(
                        "all {} /etc/passwd entries use shadowed passwords (x)",
                        acc.users.len()
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(acc.malformed.iter().cloned());
                Ok(out)
            }
            Check::ShadowNoEmpty => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                if facts.read("/etc/shadow")?.is_none() {
                    return Ok(Outcome::fail("/etc/shadow does not exist"));
                }
                let failures: Vec<String> = acc
                    .shadow
                    .iter()
                    .filter(|s| s.password.is_empty())
                    .map(|s| {
                        format!(
                            "/etc/shadow:{}: {} has an empty password field",
                            s.line, s.name
                        )
                    })
                    .collect();
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!(
                        "none of the {} /etc/shadow entries has an empty password field",
                        acc.shadow.len()
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(
                    acc.malformed
                        .iter()
                        .filter(|m| m.starts_with("/etc/shadow"))
                        .cloned(),
                );
                Ok(out)
            }
            Check::PrimaryGroupsExist => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let failures: Vec<String> = acc
                    .users
                    .iter()
                    .filter(|u| acc.group_by_gid(u.gid).is_none())
                    .map(|u| {
                        format!(
                            "/etc/passwd:{}: {} has primary GID {}, which is not in /etc/group",
                            u.line, u.name, u.gid
                        )
                    })
                    .collect();
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!(
                        "the primary groups of all {} users exist in /etc/group",
                        acc.users.len()
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(acc.malformed.iter().cloned());
                Ok(out)
            }
            Check::GroupEmpty { group } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                let Some(g) = acc.group(group) else {
                    return Ok(Outcome::pass(format!(
                        "there is no group {group} in /etc/group"
                    )));
                };
                let mut failures = Vec::new();
                if !g.members.is_empty() {
                    failures.push(format!(
                        "/etc/group:{}: group {group} lists members {}",
                        g.line,
                        g.members.join(",")
                    ));
                }
                for u in acc.users.iter().filter(|u| u.gid == g.gid) {
                    failures.push(format!(
                        "/etc/passwd:{}: {} has {group} (GID {}) as primary group",
                        u.line, u.name, g.gid
                    ));
                }
                Ok(if failures.is_empty() {
                    Outcome::pass(format!(
                        "/etc/group:{}: group {group} (GID {}) has no members and is nobody's primary group",
                        g.line, g.gid
                    ))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                })
            }
            Check::Unique { what } => {
                let acc = accounts(facts);
                let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
                Ok(unique(acc, *what))
            }
            Check::HomeDirs { max_mode } => {
                let max = match parse_mode(max_mode) {
                    Ok(m) => m,
                    Err(e) => return Ok(Outcome::error(e)),
                };
                home_dirs(facts, max)
            }
            Check::DotFiles {
                forbidden,
                private,
                private_mode,
                max_mode,
            } => {
                let (pm, mm) = match (parse_mode(private_mode), parse_mode(max_mode)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(e), _) | (_, Err(e)) => return Ok(Outcome::error(e)),
                };
                dot_files(facts, forbidden, private, pm, mm)
            }
            Check::SudoDefaults { option, want } => {
                if let Some(o) = sudo_missing(facts)? {
                    return Ok(o);
                }
                sudo_defaults(facts, option, *want)
            }
            Check::SudoTimeout { max } => {
                if let Some(o) = sudo_missing(facts)? {
                    return Ok(o);
                }
                sudo_timeout(facts, *max)
            }
            Check::SudoNoTag { tag } => {
                if let Some(o) = sudo_missing(facts)? {
                    return Ok(o);
                }
                let s = sudoers(facts);
                let s = s.as_ref().as_ref().map_err(Clone::clone)?;
                let failures: Vec<String> = s
                    .rules
                    .iter()
                    .filter(|r| has_tag(&r.text, tag))
                    .map(|r| format!("{}: {}", r.source, r.text))
                    .collect();
                let mut out = if failures.is_empty() {
                    Outcome::pass(format!("no rule in {} carries {tag}", s.files.join(", ")))
                } else {
                    Outcome::new(Status::Fail, cap(failures))
                };
                out.evidence.extend(s.notes.iter().cloned());
                Ok(out)
            }
        }
    }
}

/// Login shells from /etc/shells, without nologin and false shells.
pub fn valid_shells(facts: &Facts) -> Result<Vec<String>, FactError> {
    // Without /etc/shells, glibc's getusershell() offers /bin/sh and /bin/csh.
    let list = if facts.read("/etc/shells")?.is_some() {
        shells(facts)?
    } else {
        vec!["/bin/sh".to_string(), "/bin/csh".to_string()]
    };
    Ok(list
        .into_iter()
        .filter(|s| s.starts_with('/'))
        .filter(|s| {
            let base = s.rsplit('/').next().unwrap_or("");
            !is_nologin(s) && base != "false"
        })
        .collect())
}

/// Users whose shell is a valid login shell.
pub fn interactive_users<'a>(acc: &'a Accounts, valid: &[String]) -> Vec<&'a User> {
    acc.users
        .iter()
        .filter(|u| valid.contains(&u.shell))
        .collect()
}

fn judge(
    value: Option<&str>,
    desc: &str,
    allowed: &[String],
    min: Option<i64>,
    max: Option<i64>,
) -> Outcome {
    let Some(v) = value else {
        return Outcome::fail(desc.to_string());
    };
    if !allowed.is_empty() && !allowed.iter().any(|a| a == v) {
        return Outcome::fail(format!(
            "{desc}: {} is not {}",
            visible(v),
            allowed.join(" or ")
        ));
    }
    if min.is_some() || max.is_some() {
        let Some(n) = shadow_long(v) else {
            return Outcome::fail(format!("{desc}: {} is not a number", visible(v)));
        };
        if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
            return Outcome::fail(format!("{desc}: {n} is not {}", range_text(min, max)));
        }
    }
    Outcome::pass(desc.to_string())
}

fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("between {a} and {b}"),
        (Some(a), None) => format!("at least {a}"),
        (None, Some(b)) => format!("at most {b}"),
        (None, None) => "set".into(),
    }
}

fn cap(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("... and {more} more"));
    }
    lines
}

/// Days since the epoch, today (UTC).
fn today_days() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86400) as i64)
        .unwrap_or(0)
}

fn date_of(days: i64) -> String {
    let days = days.clamp(-100_000, 2_000_000);
    match time::OffsetDateTime::UNIX_EPOCH.checked_add(time::Duration::days(days)) {
        Some(d) => d.date().to_string(),
        None => format!("day {days}"),
    }
}

fn unique(acc: &Accounts, what: UniqueWhat) -> Outcome {
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (label, file) = match what {
        UniqueWhat::Uid => ("UID", "/etc/passwd"),
        UniqueWhat::Gid => ("GID", "/etc/group"),
        UniqueWhat::UserName => ("user name", "/etc/passwd"),
        UniqueWhat::GroupName => ("group name", "/etc/group"),
    };
    match what {
        UniqueWhat::Uid => acc.users.iter().for_each(|u| {
            seen.entry(u.uid.to_string())
                .or_default()
                .push(format!("{} (line {})", u.name, u.line))
        }),
        UniqueWhat::UserName => acc.users.iter().for_each(|u| {
            seen.entry(u.name.clone())
                .or_default()
                .push(format!("line {}", u.line))
        }),
        UniqueWhat::Gid => acc.groups.iter().for_each(|g| {
            seen.entry(g.gid.to_string())
                .or_default()
                .push(format!("{} (line {})", g.name, g.line))
        }),
        UniqueWhat::GroupName => acc.groups.iter().for_each(|g| {
            seen.entry(g.name.clone())
                .or_default()
                .push(format!("line {}", g.line))
        }),
    }
    let failures: Vec<String> = seen
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, v)| {
            format!(
                "{file}: {label} {k} appears {} times: {}",
                v.len(),
                v.join(", ")
            )
        })
        .collect();
    let mut out = if failures.is_empty() {
        Outcome::pass(format!("all {} {label}s in {file} are unique", seen.len()))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    };
    out.evidence.extend(
        acc.malformed
            .iter()
            .filter(|m| m.starts_with(file))
            .cloned(),
    );
    out
}

#[cfg(test)]
mod tests;
