//! Home directories of interactive users and the dot files in them.

use super::{cap, interactive_users, valid_shells};
use crate::facts::accounts::accounts;
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

pub(super) fn home_dirs(facts: &Facts, max: u32) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let valid = valid_shells(facts)?;
    let users = interactive_users(&acc, &valid);
    if users.is_empty() {
        return Ok(Outcome::not_applicable(
            "no user has a login shell listed in /etc/shells",
        ));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for u in users {
        let who = format!("{} (UID {})", u.name, u.uid);
        if !u.home.starts_with('/') {
            failures.push(format!(
                "{who}: home directory {:?} is not an absolute path",
                u.home
            ));
            continue;
        }
        let Some(m) = facts.stat(&u.home)? else {
            failures.push(format!("{who}: home directory {} does not exist", u.home));
            continue;
        };
        let mut bad = Vec::new();
        if m.kind != FileKind::Dir {
            bad.push("is not a directory".to_string());
        }
        if m.uid != u.uid {
            bad.push(format!("is owned by {}", acc.user_name(m.uid)));
        }
        if m.mode & !max != 0 {
            bad.push(format!("has mode {:04o}, looser than {:04o}", m.mode, max));
        }
        if bad.is_empty() {
            found.push(format!(
                "{who}: {} mode {:04o}, owner {}",
                u.home, m.mode, u.name
            ));
        } else {
            failures.push(format!("{who}: {} {}", u.home, bad.join(", ")));
        }
    }
    Ok(Outcome::from_findings(cap(failures), cap(found)))
}

pub(super) fn dot_files(
    facts: &Facts,
    forbidden: &[String],
    private: &[String],
    pm: u32,
    mm: u32,
) -> Result<Outcome, FactError> {
    let acc = accounts(facts)?;
    let valid = valid_shells(facts)?;
    let users = interactive_users(&acc, &valid);
    if users.is_empty() {
        return Ok(Outcome::not_applicable(
            "no user has a login shell listed in /etc/shells",
        ));
    }
    let mut failures = Vec::new();
    let mut checked = 0usize;
    let mut homes = Vec::new();
    for u in users {
        if !u.home.starts_with('/') || u.home == "/" {
            continue;
        }
        match facts.stat(&u.home)? {
            Some(m) if m.kind == FileKind::Dir => {}
            _ => continue,
        }
        homes.push(u.home.clone());
        for name in facts.list_dir(&u.home)? {
            if !name.starts_with('.') || name == "." || name == ".." {
                continue;
            }
            let p = format!("{}/{name}", u.home.trim_end_matches('/'));
            let Some(m) = facts.lstat(&p)? else { continue };
            if forbidden.contains(&name) {
                failures.push(format!("{p}: {name} must not exist (user {})", u.name));
                continue;
            }
            if m.kind != FileKind::File {
                continue;
            }
            checked += 1;
            let limit = if private.contains(&name) { pm } else { mm };
            let mut bad = Vec::new();
            if m.mode & !limit != 0 {
                bad.push(format!("mode {:04o} is looser than {:04o}", m.mode, limit));
            }
            if m.uid != u.uid {
                bad.push(format!("owner {} is not {}", acc.user_name(m.uid), u.name));
            }
            if m.gid != u.gid {
                bad.push(format!(
                    "group {} is not {}",
                    acc.group_name(m.gid),
                    acc.group_name(u.gid)
                ));
            }
            if !bad.is_empty() {
                failures.push(format!("{p}: {}", bad.join(", ")));
            }
        }
    }
    Ok(if failures.is_empty() {
        Outcome::pass(format!(
            "{checked} dot files in {} have acceptable ownership and modes; no {}",
            if homes.is_empty() {
                "no existing home directory".to_string()
            } else {
                homes.join(", ")
            },
            forbidden.join(" or ")
        ))
    } else {
        Outcome::new(Status::Fail, cap(failures))
    })
}
