//! Permissions of the files under /var/log.

use crate::checks::common::MAX_LISTED;
use crate::facts::account_defaults::uid_min_kv;
use crate::facts::accounts::{accounts, Accounts};
use crate::facts::walk::walk;
use crate::facts::{FactError, Facts, FileKind, FileMeta};
use crate::model::{Outcome, Status};

// ---------------------------------------------------------------------------
// /var/log permissions

/// The allowance for one log file: the mode bits that must be clear and the
/// accepted owners and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub mask: u32,
    pub owners: Vec<&'static str>,
    pub groups: Vec<&'static str>,
    /// Service-owned files may keep their own owner and group (see [`var_log_perms`]).
    pub service_owned_ok: bool,
}

/// The allowance for a file under /var/log, by its base name.
pub fn var_log_class(name: &str) -> Allowance {
    let a = |mask, owners: &[&'static str], groups: &[&'static str], svc| Allowance {
        mask,
        owners: owners.to_vec(),
        groups: groups.to_vec(),
        service_owned_ok: svc,
    };
    let starts = |p: &str| {
        name == p || name.starts_with(&format!("{p}.")) || name.starts_with(&format!("{p}-"))
    };
    if starts("lastlog") || starts("wtmp") || starts("btmp") || name == "README" {
        a(0o113, &["root"], &["root", "utmp"], false)
    } else if name.starts_with("cloud-init.log")
        || name.starts_with("localmessages")
        || name.starts_with("waagent.log")
    {
        a(0o133, &["root", "syslog"], &["root", "adm"], false)
    } else if starts("secure") || name == "auth.log" || name == "syslog" || name == "messages" {
        a(0o137, &["root", "syslog"], &["root", "adm"], false)
    } else if name == "SSSD" || name == "sssd" {
        a(0o117, &["root", "SSSD"], &["root", "SSSD"], false)
    } else if name == "gdm" || name == "gdm3" {
        a(0o117, &["root"], &["root", "gdm", "gdm3"], false)
    } else if name.ends_with(".journal") || name.ends_with(".journal~") {
        a(0o137, &["root"], &["root", "systemd-journal"], false)
    } else {
        a(0o137, &["root", "syslog"], &["root", "adm"], true)
    }
}

/// Judges one file; returns the reasons it is outside its allowance.
pub(super) fn judge_log_file(m: &FileMeta, acc: &Accounts, uid_min: u32) -> Vec<String> {
    let name = m.path.rsplit('/').next().unwrap_or("");
    let al = var_log_class(name);
    let user = acc.user_name(m.uid);
    let group = acc.group_name(m.gid);
    let mut owners: Vec<String> = al.owners.iter().map(|s| s.to_string()).collect();
    let mut groups: Vec<String> = al.groups.iter().map(|s| s.to_string()).collect();
    // A file owned by a system account whose group lists no members belongs to a
    // service: its owner is accepted, and so is its group unless it is the primary
    // group of an interactive user.
    if al.service_owned_ok && m.uid < uid_min {
        let grp_has_members = acc
            .group_by_gid(m.gid)
            .is_some_and(|g| !g.members.is_empty());
        if !grp_has_members {
            owners.push(user.clone());
            if !acc.users.iter().any(|u| u.gid == m.gid && u.uid >= uid_min) {
                groups.push(group.clone());
            }
        }
    }
    let mut bad = Vec::new();
    if m.mode & 0o777 & al.mask != 0 {
        bad.push(format!(
            "mode {:04o} is looser than {:04o}",
            m.mode & 0o7777,
            0o777 & !al.mask
        ));
    }
    if !owners.contains(&user) {
        bad.push(format!("owner {user} is not {}", owners.join(" or ")));
    }
    if !groups.contains(&group) {
        bad.push(format!("group {group} is not {}", groups.join(" or ")));
    }
    bad
}

pub(super) fn var_log_perms(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let min = uid_min_kv(facts)?;
    let w = walk(facts)?;
    let mut files: Vec<&FileMeta> = w
        .var_log
        .iter()
        .filter(|m| m.kind == FileKind::File)
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.is_empty() {
        return Ok(Outcome::not_applicable("no files under /var/log"));
    }
    let mut bad = Vec::new();
    for m in &files {
        let reasons = judge_log_file(m, &acc, min);
        if !reasons.is_empty() {
            bad.push(format!(
                "{}: mode {:04o}, owner {}, group {}: {}",
                m.path,
                m.mode,
                acc.user_name(m.uid),
                acc.group_name(m.gid),
                reasons.join("; ")
            ));
        }
    }
    let total = files.len();
    let errors: Vec<&String> = w
        .errors
        .iter()
        .filter(|e| e.starts_with("/var/log"))
        .collect();
    let mut ev = Vec::new();
    let n_bad = bad.len();
    if n_bad > MAX_LISTED {
        let more = n_bad - MAX_LISTED;
        bad.truncate(MAX_LISTED);
        bad.push(format!("… and {more} more"));
    }
    ev.extend(bad);
    ev.push(format!(
        "{total} files under /var/log examined, {n_bad} outside their allowance (log files: at most 0640, owner root, group root or adm; login records: 0664, group utmp; journal files: group systemd-journal)"
    ));
    for e in errors {
        ev.push(format!("could not read {e}"));
    }
    Ok(Outcome::new(
        if n_bad == 0 {
            Status::Pass
        } else {
            Status::Fail
        },
        ev,
    ))
}
