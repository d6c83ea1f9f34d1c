//! GNOME display manager settings, read from dconf keyfiles as `dconf update`
//! compiles them.
//!
//! A dconf profile (`/etc/dconf/profile/<name>`, else `/usr/local/share/dconf/profile`
//! or `/usr/share/dconf/profile`) lists databases, highest priority first; without a
//! profile file only the user's own database exists. A `system-db:NAME` database is
//! compiled from the keyfiles in `/etc/dconf/db/NAME.d/` (a later file name wins)
//! and its locks from `/etc/dconf/db/NAME.d/locks/` (lines starting with `/`; a lock
//! ending in `/` covers a whole directory) into `/etc/dconf/db/NAME`, which must
//! exist for the keyfiles to take effect. The user's own database cannot be judged
//! for every user, so a value counts only when it comes from a system database.
//! For the `gdm` profile Debian's `/etc/gdm3/greeter.dconf-defaults` is read as the
//! lowest-priority source.

use crate::facts::kv::parse_ini;
use crate::facts::packages::packages;
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// What a setting's value must satisfy.
#[derive(Debug, Clone, Default)]
pub struct Want {
    pub equals: Option<String>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub non_empty: bool,
}

/// A database named in a dconf profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Db {
    User(String),
    System(String),
    File(String),
    Other(String),
}

/// The profile file for `name` and its databases, if a profile file exists.
pub fn profile(facts: &Facts, name: &str) -> Result<Option<(String, Vec<Db>)>, FactError> {
    for dir in [
        "/etc/dconf/profile",
        "/usr/local/share/dconf/profile",
        "/usr/share/dconf/profile",
    ] {
        let path = format!("{dir}/{name}");
        if let Some(text) = facts.read(&path)? {
            return Ok(Some((path, parse_profile(&text))));
        }
    }
    Ok(None)
}

/// Parses a dconf profile.
pub fn parse_profile(text: &str) -> Vec<Db> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(':') {
            Some(("user-db", n)) => Db::User(n.trim().to_string()),
            Some(("system-db", n)) => Db::System(n.trim().to_string()),
            Some(("file-db", p)) => Db::File(p.trim().to_string()),
            _ => Db::Other(l.to_string()),
        })
        .collect()
}

/// One key of a keyfile: (group, key, value, source).
type KeyfileEntry = (String, String, String, String);

/// Parses a GLib keyfile as dconf reads it: `#` starts a comment only at the start
/// of a line; values keep any `#`.
pub fn parse_keyfile(text: &str, path: &str) -> Vec<KeyfileEntry> {
    let mut out = Vec::new();
    let mut group = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            group = line[1..line.len() - 1].to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((
                group.clone(),
                k.trim().to_string(),
                v.trim().to_string(),
                format!("{path}:{}", n + 1),
            ));
        }
    }
    out
}

/// Splits `/org/gnome/login-screen/banner-message-enable` into group and key.
fn split_key(key: &str) -> (String, String) {
    let k = key.trim_matches('/');
    match k.rsplit_once('/') {
        Some((g, n)) => (g.to_string(), n.to_string()),
        None => (String::new(), k.to_string()),
    }
}

/// Regular files of a directory, sorted, skipping hidden names.
fn regular_files(facts: &Facts, dir: &str) -> Result<Vec<String>, FactError> {
    let mut out = Vec::new();
    for name in facts.list_dir(dir)? {
        if name.starts_with('.') {
            continue;
        }
        let p = format!("{dir}/{name}");
        if facts.stat(&p)?.is_some_and(|m| m.kind == FileKind::File) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The value of `key` in system database `db` (the last file that sets it wins).
fn db_value(facts: &Facts, db: &str, key: &str) -> Result<Option<(String, String)>, FactError> {
    let (group, name) = split_key(key);
    let dir = format!("/etc/dconf/db/{db}.d");
    for f in regular_files(facts, &dir)?.iter().rev() {
        let Some(text) = facts.read(f)? else { continue };
        if let Some((_, _, v, src)) = parse_keyfile(&text, f)
            .into_iter()
            .rev()
            .find(|(g, k, _, _)| *g == group && *k == name)
        {
            return Ok(Some((v, src)));
        }
    }
    Ok(None)
}

fn compiled(facts: &Facts, db: &str) -> Result<bool, FactError> {
    Ok(facts
        .stat(&format!("/etc/dconf/db/{db}"))?
        .is_some_and(|m| m.kind == FileKind::File))
}

fn gdm_absent(facts: &Facts, package: &str) -> Result<Option<Outcome>, FactError> {
    let pk = packages(facts)?;
    Ok((!pk.is_present(package)).then(|| {
        Outcome::not_applicable(format!(
            "{}: no GNOME display manager",
            pk.describe(package)
        ))
    }))
}

/// The profile's databases, or an outcome explaining why there are none to judge.
fn system_dbs(
    facts: &Facts,
    profile_name: &str,
    ev: &mut Vec<String>,
) -> Result<Result<Vec<String>, Outcome>, FactError> {
    let Some((path, dbs)) = profile(facts, profile_name)? else {
        return Ok(Err(Outcome::fail(format!(
            "no dconf profile `{profile_name}` (/etc/dconf/profile/{profile_name}): only each user's own database applies, no system-wide setting"
        ))));
    };
    let systems: Vec<String> = dbs
        .iter()
        .filter_map(|d| {
            if let Db::System(n) = d {
                Some(n.clone())
            } else {
                None
            }
        })
        .collect();
    ev.push(format!(
        "{path}: system databases {}",
        if systems.is_empty() {
            "(none)".to_string()
        } else {
            systems.join(", ")
        }
    ));
    Ok(Ok(systems))
}

/// Integer from GVariant text such as `uint32 900` or `300`.
fn gvariant_int(v: &str) -> Option<i64> {
    let v = v.trim();
    let num = match v.split_once(char::is_whitespace) {
        Some(("byte" | "int16" | "uint16" | "int32" | "uint32" | "int64" | "uint64", n)) => {
            n.trim()
        }
        Some(_) => return None,
        None => v,
    };
    num.parse().ok()
}

/// String from GVariant text: `'text'` or `"text"`.
fn gvariant_str(v: &str) -> Option<String> {
    let v = v.trim();
    let v = v
        .strip_prefix('@')
        .map(|r| r.trim_start_matches(|c: char| c != ' ').trim())
        .unwrap_or(v);
    let b = v.as_bytes();
    (b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0])
        .then(|| v[1..v.len() - 1].to_string())
}

fn judge(v: &str, want: &Want) -> Result<(), String> {
    if let Some(e) = &want.equals {
        if v.trim() != e.trim() {
            return Err(format!("expected {e}"));
        }
    }
    if want.min.is_some() || want.max.is_some() {
        let Some(n) = gvariant_int(v) else {
            return Err("not an integer".into());
        };
        if want.min.is_some_and(|m| n < m) || want.max.is_some_and(|m| n > m) {
            let lo = want
                .min
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into());
            let hi = want
                .max
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into());
            return Err(format!("expected between {lo} and {hi}"));
        }
    }
    if want.non_empty && gvariant_str(v).is_none_or(|s| s.trim().is_empty()) {
        return Err("expected a non-empty string".into());
    }
    Ok(())
}

/// `boot.gdm_setting`.
pub fn setting(
    facts: &Facts,
    package: &str,
    profile_name: &str,
    key: &str,
    want: &Want,
) -> Result<Outcome, FactError> {
    if let Some(o) = gdm_absent(facts, package)? {
        return Ok(o);
    }
    let mut ev = Vec::new();
    let dbs = match system_dbs(facts, profile_name, &mut ev)? {
        Ok(d) => d,
        Err(o) => return Ok(o),
    };
    let mut hit = None;
    for db in &dbs {
        if let Some((v, src)) = db_value(facts, db, key)? {
            hit = Some((v, src, Some(db.clone())));
            break;
        }
    }
    if hit.is_none() && profile_name == "gdm" {
        let path = "/etc/gdm3/greeter.dconf-defaults";
        if let Some(text) = facts.read(path)? {
            let (group, name) = split_key(key);
            if let Some((_, _, v, src)) = parse_keyfile(&text, path)
                .into_iter()
                .rev()
                .find(|(g, k, _, _)| *g == group && *k == name)
            {
                hit = Some((v, src, None));
            }
        }
    }
    let Some((v, src, db)) = hit else {
        ev.insert(
            0,
            format!("{key} is not set in any system database of dconf profile `{profile_name}`"),
        );
        return Ok(Outcome::new(Status::Fail, ev));
    };
    let line = format!("{src}: {key} = {v}");
    if let Some(db) = &db {
        if !compiled(facts, db)? {
            ev.insert(0, format!("{line}, but /etc/dconf/db/{db} does not exist: the keyfiles were never compiled (run dconf update)"));
            return Ok(Outcome::new(Status::Fail, ev));
        }
    }
    match judge(&v, want) {
        Ok(()) => {
            ev.insert(0, line);
            Ok(Outcome::new(Status::Pass, ev))
        }
        Err(why) => {
            ev.insert(0, format!("{line} ({why})"));
            Ok(Outcome::new(Status::Fail, ev))
        }
    }
}

/// Whether lock line `lock` covers `key`.
fn lock_covers(lock: &str, key: &str) -> bool {
    lock == key || (lock.ends_with('/') && key.starts_with(lock))
}

/// `boot.gdm_lock`.
pub fn locks(
    facts: &Facts,
    package: &str,
    profile_name: &str,
    keys: &[String],
) -> Result<Outcome, FactError> {
    if let Some(o) = gdm_absent(facts, package)? {
        return Ok(o);
    }
    let mut ev = Vec::new();
    let dbs = match system_dbs(facts, profile_name, &mut ev)? {
        Ok(d) => d,
        Err(o) => return Ok(o),
    };
    let mut all_locks = Vec::new();
    for db in &dbs {
        let dir = format!("/etc/dconf/db/{db}.d/locks");
        for f in regular_files(facts, &dir)? {
            let Some(text) = facts.read(&f)? else {
                continue;
            };
            for (n, line) in text.split('\n').enumerate() {
                if line.starts_with('/') {
                    all_locks.push((db.clone(), line.to_string(), format!("{f}:{}", n + 1)));
                }
            }
        }
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for key in keys {
        let key = format!("/{}", key.trim_matches('/'));
        match all_locks.iter().find(|(_, l, _)| lock_covers(l, &key)) {
            Some((db, l, src)) if compiled(facts, db)? => found.push(format!("{src}: {l} locks {key}")),
            Some((db, l, src)) => failures.push(format!(
                "{src}: {l} locks {key}, but /etc/dconf/db/{db} does not exist: the locks were never compiled (run dconf update)"
            )),
            None => failures.push(format!("{key} is not locked in any system database of dconf profile `{profile_name}`")),
        }
    }
    let mut out = Outcome::from_findings(failures, found);
    out.evidence.extend(ev);
    Ok(out)
}

/// `boot.gdm_xdmcp`.
pub fn xdmcp(facts: &Facts, package: &str, files: &[String]) -> Result<Outcome, FactError> {
    if let Some(o) = gdm_absent(facts, package)? {
        return Ok(o);
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for path in files.iter().map(String::as_str) {
        let Some(text) = facts.read(path)? else {
            found.push(format!("{path} does not exist"));
            continue;
        };
        match parse_ini(&text, path, "xdmcp")
            .iter()
            .rev()
            .find(|s| s.key == "Enable")
        {
            Some(s) if matches!(s.value.to_ascii_lowercase().as_str(), "true" | "1") => {
                failures.push(format!("{}: XDMCP is enabled", s.describe()))
            }
            Some(s) => found.push(s.describe()),
            None => found.push(format!("{path}: [xdmcp] Enable not set; default false")),
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_keyfiles() {
        let p = parse_profile("user-db:user\n# comment\nsystem-db:local\nfile-db:/usr/share/gdm/greeter-dconf-defaults\n");
        assert_eq!(p[1], Db::System("local".into()));
        assert_eq!(
            p[2],
            Db::File("/usr/share/gdm/greeter-dconf-defaults".into())
        );
        let k = parse_keyfile(
            "[org/gnome/login-screen]\nbanner-message-text='Authorised use only # really'\n",
            "/f",
        );
        assert_eq!(k[0].2, "'Authorised use only # really'");
        assert_eq!(
            split_key("/org/gnome/desktop/session/idle-delay"),
            ("org/gnome/desktop/session".into(), "idle-delay".into())
        );
    }

    #[test]
    fn gvariant_values() {
        assert_eq!(gvariant_int("uint32 900"), Some(900));
        assert_eq!(gvariant_int("5"), Some(5));
        assert_eq!(gvariant_int("'5'"), None);
        assert_eq!(gvariant_str("'hello'"), Some("hello".into()));
        assert_eq!(gvariant_str("''"), Some(String::new()));
        assert!(judge(
            "uint32 0",
            &Want {
                min: Some(1),
                max: Some(900),
                ..Default::default()
            }
        )
        .is_err());
        assert!(judge(
            "true",
            &Want {
                equals: Some("true".into()),
                ..Default::default()
            }
        )
        .is_ok());
        assert!(lock_covers(
            "/org/gnome/desktop/media-handling/",
            "/org/gnome/desktop/media-handling/automount"
        ));
        assert!(!lock_covers(
            "/org/gnome/desktop/media-handling/automount ",
            "/org/gnome/desktop/media-handling/automount"
        ));
    }
}
