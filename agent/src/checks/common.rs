//! What every check family may share: judging a file's mode and owners against
//! limits, describing file metadata in evidence, reading an octal mode from content,
//! and how much evidence is listed before the rest is counted. Families never import
//! one another; what two of them need is here (or, when it is read from the host, in
//! [`crate::facts`]).

use crate::facts::accounts::Accounts;
use crate::facts::FileMeta;

/// Evidence lines listed in full before the rest is counted.
pub const MAX_LISTED: usize = 50;

/// Parses an octal mode such as `0640`.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("`{s}` is not an octal mode"))
}

/// Whether `id` (with its name `name`) is in an allow list of names or numbers.
pub fn id_allowed(allowed: &[String], id: u32, name: &str) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .any(|a| a == name || a.parse::<u32>().ok() == Some(id))
}

/// `path: mode 0644, owner root, group root` for evidence.
pub fn describe_meta(m: &FileMeta, acc: Option<&Accounts>) -> String {
    let (u, g) = match acc {
        Some(a) => (a.user_name(m.uid), a.group_name(m.gid)),
        None => (m.uid.to_string(), m.gid.to_string()),
    };
    format!("{}: mode {:04o}, owner {u}, group {g}", m.path, m.mode)
}

/// Judges one file's metadata against the limits; returns failures.
pub fn judge_meta(
    m: &FileMeta,
    max: Option<u32>,
    owner: &[String],
    group: &[String],
    acc: Option<&Accounts>,
) -> Vec<String> {
    let mut bad = Vec::new();
    let (u, g) = match acc {
        Some(a) => (a.user_name(m.uid), a.group_name(m.gid)),
        None => (m.uid.to_string(), m.gid.to_string()),
    };
    if let Some(max) = max {
        if m.mode & !max != 0 {
            bad.push(format!(
                "{}: mode {:04o} is looser than {:04o}",
                m.path, m.mode, max
            ));
        }
    }
    if !id_allowed(owner, m.uid, &u) {
        bad.push(format!(
            "{}: owner {u} is not {}",
            m.path,
            owner.join(" or ")
        ));
    }
    if !id_allowed(group, m.gid, &g) {
        bad.push(format!(
            "{}: group {g} is not {}",
            m.path,
            group.join(" or ")
        ));
    }
    bad
}
