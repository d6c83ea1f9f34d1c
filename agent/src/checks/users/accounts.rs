//! The account databases: who holds ID 0, primary groups, system accounts' shells,
//! and unique IDs and names in /etc/passwd and /etc/group.

use std::collections::BTreeMap;

use super::{cap, valid_shells, UniqueWhat, ZeroWhat};
use crate::facts::account_defaults::uid_min;
use crate::facts::accounts::{accounts, Accounts};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

pub(super) fn id_zero(
    facts: &Facts,
    what: ZeroWhat,
    allowed: &[String],
) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
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
    let (ok, bad): (Vec<_>, Vec<_>) = holders.into_iter().partition(|(n, _)| allowed.contains(n));
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

pub(super) fn primary_gid(facts: &Facts, user: &str, gid: u32) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    Ok(match acc.user(user) {
        None => Outcome::fail(format!("{user} has no /etc/passwd entry")),
        Some(u) if u.gid == gid => Outcome::pass(format!(
            "/etc/passwd:{}: {user} has primary GID {gid}",
            u.line
        )),
        Some(u) => Outcome::fail(format!(
            "/etc/passwd:{}: {user} has primary GID {}, not {gid}",
            u.line, u.gid
        )),
    })
}

pub(super) fn system_shells(facts: &Facts, exempt: &[String]) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
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

pub(super) fn primary_groups_exist(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
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

pub(super) fn group_empty(facts: &Facts, group: &str) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
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

pub(super) fn unique(acc: &Accounts, what: UniqueWhat) -> Outcome {
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
