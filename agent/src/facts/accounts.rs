//! Users and groups databases: /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow.

use std::sync::Arc;

use super::{FactError, Facts};
use crate::facts::Fact;

/// One /etc/passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub password: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub line: usize,
}

/// One /etc/shadow entry; numeric fields are `None` when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    pub name: String,
    pub password: String,
    pub last_change: Option<i64>,
    pub min_days: Option<i64>,
    pub max_days: Option<i64>,
    pub warn_days: Option<i64>,
    pub inactive: Option<i64>,
    pub line: usize,
}

impl Shadow {
    /// A usable password hash is set (not empty, not locked with `!`/`*`).
    pub fn has_password(&self) -> bool {
        !self.password.is_empty()
            && !self.password.starts_with('!')
            && !self.password.starts_with('*')
    }
    /// The account is locked (`!` or `*` prefix).
    pub fn is_locked(&self) -> bool {
        self.password.starts_with('!') || self.password.starts_with('*')
    }
}

/// One /etc/group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
    pub line: usize,
}

/// Parsed account databases. Malformed lines are kept as evidence, not dropped silently.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    pub users: Vec<User>,
    pub shadow: Vec<Shadow>,
    pub groups: Vec<Group>,
    /// `path:line: reason` for every line that could not be parsed.
    pub malformed: Vec<String>,
}

impl Accounts {
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }
    pub fn user_by_uid(&self, uid: u32) -> Option<&User> {
        self.users.iter().find(|u| u.uid == uid)
    }
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }
    pub fn shadow_of(&self, name: &str) -> Option<&Shadow> {
        self.shadow.iter().find(|s| s.name == name)
    }
    /// A user name for evidence, or the number when unknown.
    pub fn user_name(&self, uid: u32) -> String {
        self.user_by_uid(uid)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| uid.to_string())
    }
    /// A group name for evidence, or the number when unknown.
    pub fn group_name(&self, gid: u32) -> String {
        self.group_by_gid(gid)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| gid.to_string())
    }
}

/// The account databases of the root, read once per scan. /etc/passwd and
/// /etc/group must exist; a missing shadow file leaves `shadow` empty.
pub fn accounts(facts: &Facts) -> Result<Arc<Accounts>, FactError> {
    facts.get::<Accounts>()
}

impl Fact for Accounts {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        load(facts)
    }
}

fn load(facts: &Facts) -> Result<Accounts, FactError> {
    let mut acc = Accounts::default();
    let passwd = facts
        .read("/etc/passwd")?
        .ok_or_else(|| FactError::Unreadable {
            path: "/etc/passwd".into(),
            reason: "the file does not exist".into(),
        })?;
    for (n, line) in data_lines(&passwd) {
        let f: Vec<&str> = line.split(':').collect();
        match (
            f.len(),
            f.get(2).and_then(|v| v.parse().ok()),
            f.get(3).and_then(|v| v.parse().ok()),
        ) {
            (7, Some(uid), Some(gid)) => acc.users.push(User {
                name: f[0].into(),
                password: f[1].into(),
                uid,
                gid,
                home: f[5].into(),
                shell: f[6].into(),
                line: n,
            }),
            _ => acc
                .malformed
                .push(format!("/etc/passwd:{n}: not a valid passwd entry")),
        }
    }
    if let Some(shadow) = facts.read("/etc/shadow")? {
        for (n, line) in data_lines(&shadow) {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 8 {
                acc.malformed
                    .push(format!("/etc/shadow:{n}: not a valid shadow entry"));
                continue;
            }
            let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<i64>().ok());
            acc.shadow.push(Shadow {
                name: f[0].into(),
                password: f[1].into(),
                last_change: num(2),
                min_days: num(3),
                max_days: num(4),
                warn_days: num(5),
                inactive: num(6),
                line: n,
            });
        }
    }
    let group = facts
        .read("/etc/group")?
        .ok_or_else(|| FactError::Unreadable {
            path: "/etc/group".into(),
            reason: "the file does not exist".into(),
        })?;
    for (n, line) in data_lines(&group) {
        let f: Vec<&str> = line.split(':').collect();
        match (f.len(), f.get(2).and_then(|v| v.parse().ok())) {
            (4, Some(gid)) => acc.groups.push(Group {
                name: f[0].into(),
                gid,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
                line: n,
            }),
            _ => acc
                .malformed
                .push(format!("/etc/group:{n}: not a valid group entry")),
        }
    }
    Ok(acc)
}

/// Non-empty, non-comment lines with their 1-based numbers.
pub fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
}

/// /etc/shells entries, as glibc's getusershell(3) reads them.
pub fn shells(facts: &Facts) -> Result<Vec<String>, FactError> {
    Ok(shell_lines(facts)?.into_iter().map(|(_, s)| s).collect())
}

/// /etc/shells entries with their 1-based line numbers. Like getusershell(3), a
/// line's entry starts at its first `/` (a line whose first `/` comes after a `#`,
/// or that has none, has no entry) and ends at the first whitespace or `#`.
pub fn shell_lines(facts: &Facts) -> Result<Vec<(usize, String)>, FactError> {
    Ok(facts
        .read("/etc/shells")?
        .map(|t| {
            t.lines()
                .enumerate()
                .filter_map(|(i, l)| shell_entry(l).map(|s| (i + 1, s.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

fn shell_entry(line: &str) -> Option<&str> {
    let start = line.find(['/', '#'])?;
    if line.as_bytes()[start] == b'#' {
        return None;
    }
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '#')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// A shell path that is nologin: its last component is exactly `nologin`
/// (`/sbin/nologinormaybe` is another program).
pub fn is_nologin(shell: &str) -> bool {
    shell.rsplit('/').next() == Some("nologin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_entries_as_getusershell_reads_them() {
        assert_eq!(shell_entry("/bin/bash"), Some("/bin/bash"));
        assert_eq!(
            shell_entry("  /usr/sbin/nologin\tmore"),
            Some("/usr/sbin/nologin")
        );
        assert_eq!(shell_entry("/bin/sh# note"), Some("/bin/sh"));
        assert_eq!(shell_entry("# /bin/sh"), None);
        assert_eq!(shell_entry("bash"), None);
        assert!(is_nologin("/usr/sbin/nologin"));
        assert!(!is_nologin("/sbin/nologinormaybe"));
        assert!(!is_nologin("/usr/sbin/nologin.d/zsh"));
    }
}
