//! `users.*` checks: the account databases (/etc/passwd, /etc/shadow, /etc/group),
//! the shadow suite's defaults (/etc/login.defs, /etc/default/useradd), interactive
//! users' home directories and dot files, and sudo's policy (see [`sudoers`]).
//!
//! "Interactive" users are those whose login shell is listed in /etc/shells and is
//! not a nologin or false shell, whatever their UID (root included).

mod accounts;
mod home;
mod shadow;
mod sudo;
use accounts::{group_empty, id_zero, primary_gid, primary_groups_exist, system_shells, unique};
use home::{dot_files, home_dirs};
use shadow::{
    login_defs, nologin_locked, passwd_shadowed, root_password, shadow_field, shadow_no_empty,
    shadow_no_future_change, useradd_default_check,
};
use sudo::{sudo_defaults, sudo_missing, sudo_no_tag, sudo_timeout};

use serde::Deserialize;

use crate::checks::common::parse_mode;
use crate::facts::accounts::{accounts, is_nologin, shells, Accounts, User};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

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
            } => login_defs(facts, key, allowed, *min, *max, default),
            Check::UseraddDefault {
                key,
                min,
                max,
                default,
            } => useradd_default_check(facts, key, *min, *max, default),
            Check::ShadowField { field, min, max } => shadow_field(facts, *field, *min, *max),
            Check::ShadowNoFutureChange => shadow_no_future_change(facts),
            Check::IdZero { what, allowed } => id_zero(facts, *what, allowed),
            Check::PrimaryGid { user, gid } => primary_gid(facts, user, *gid),
            Check::RootPassword { require_password } => root_password(facts, *require_password),
            Check::SystemShells { exempt } => system_shells(facts, exempt),
            Check::NologinLocked => nologin_locked(facts),
            Check::PasswdShadowed => passwd_shadowed(facts),
            Check::ShadowNoEmpty => shadow_no_empty(facts),
            Check::PrimaryGroupsExist => primary_groups_exist(facts),
            Check::GroupEmpty { group } => group_empty(facts, group),
            Check::Unique { what } => {
                let acc = accounts(facts)?;
                Ok(unique(&acc, *what))
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
                sudo_no_tag(facts, tag)
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

fn cap(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("... and {more} more"));
    }
    lines
}

#[cfg(test)]
mod tests;
