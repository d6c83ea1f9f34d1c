//! Kernel parameters: the runtime value (/proc/sys) and the persisted value from
//! sysctl configuration, read as systemd-sysctl reads it at boot (on Debian 12 and
//! Ubuntu it is the only program that does: `procps.service` is an alias of
//! `systemd-sysctl.service`):
//!
//! - `*.conf` entries of [`DIRS`], sorted by file name across the directories; a
//!   name in an earlier directory hides the same name in later ones, whatever it is:
//!   a file, a symlink to `/dev/null`, an empty file, a dangling or looping symlink
//!   or a directory (the last four apply nothing); names starting with `.` are skipped;
//! - `/etc/sysctl.conf` is read only when an entry links to it, as procps's
//!   `/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf` does; alone it applies nothing;
//! - for one key the last assignment wins; explicit keys beat glob patterns, and
//!   `-key` lines exclude a key from globs.
//!
//! Confirmed with Debian 12's `systemd-sysctl --cat-config` (systemd 252.39) in a
//! chroot of a debootstrapped root: the file list, the order across directories,
//! masking by /dev/null links, empty files, dangling links and directories, and
//! /etc/sysctl.conf ignored without the link, and, on a root whose /lib is a real
//! directory (an unmerged /usr), `/lib/sysctl.d` searched last (its names hidden by
//! the same names in /usr/lib/sysctl.d); on a merged /usr it is /usr/lib/sysctl.d.
//!
//! A parameter's value once boot is done ([`after_boot`], [`boot_value`]) also
//! counts the file ufw applies when it starts (`IPT_SYSCTL`, read by
//! [`crate::facts::ufw`]) when ufw is switched on: ufw-init runs `sysctl -p` on it
//! after loading its rules, overriding what systemd-sysctl set earlier in boot.

use std::sync::Arc;

use super::kv::Setting;
use super::{FactError, Facts};
use crate::facts::Fact;

/// Directories of sysctl drop-ins, highest precedence first.
pub const DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// The traditional file, applied only through a link in a drop-in directory.
pub const SYSCTL_CONF: &str = "/etc/sysctl.conf";

/// One entry of the drop-in directories that systemd-sysctl reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The entry as listed (`/etc/sysctl.d/99-sysctl.conf`).
    pub listed: String,
    /// The file it really is, after symlinks (`/etc/sysctl.conf`); `None` when the
    /// entry applies nothing (masked by /dev/null or a dangling link, a directory).
    pub real: Option<String>,
    /// Its text (empty for an empty file).
    pub text: Option<Arc<str>>,
}

impl Applied {
    /// How evidence names a line of this entry: the real file, and the link it was
    /// reached through when they differ.
    pub fn source(&self, line: usize) -> String {
        match &self.real {
            Some(r) if *r != self.listed => format!("{r}:{line} (through {})", self.listed),
            _ => format!("{}:{line}", self.listed),
        }
    }
}

/// The entries systemd-sysctl reads, in the order it applies them.
pub fn applied_files(facts: &Facts) -> Result<Vec<Applied>, FactError> {
    let mut out = Vec::new();
    for listed in super::kv::dropin_files(facts, &DIRS, ".conf")? {
        // A link that loops is skipped by systemd-sysctl ("Too many levels of
        // symbolic links"), and still hides the same name in later directories.
        let meta = match facts.stat(&listed) {
            Err(FactError::SymlinkLoop { .. }) => None,
            other => other?,
        };
        let (real, text) = match meta {
            Some(m) if m.kind == super::FileKind::File => {
                let text = facts.read(&listed)?;
                (Some(m.path), text)
            }
            // /dev/null (or a link to it), a dangling link, a directory.
            _ => (None, None),
        };
        out.push(Applied { listed, real, text });
    }
    Ok(out)
}

/// Lines of `/etc/sysctl.conf` that set `key` when systemd-sysctl does not read
/// that file (no entry of [`DIRS`] leads to it), for evidence.
pub fn unapplied_sysctl_conf(facts: &Facts, key: &str) -> Result<Vec<String>, FactError> {
    let files = applied_files(facts)?;
    if files.iter().any(|f| f.real.as_deref() == Some(SYSCTL_CONF)) {
        return Ok(Vec::new());
    }
    let Some(text) = facts.read(SYSCTL_CONF)? else {
        return Ok(Vec::new());
    };
    let key = to_slash(key);
    Ok(parse_sysctl(&text, SYSCTL_CONF)
        .into_iter()
        .filter(|e| e.key == key || (e.is_glob() && glob_match(&e.key, &key)))
        .map(|e| {
            format!(
                "{}: {} = {} is not applied: systemd-sysctl reads {SYSCTL_CONF} only through a link in /etc/sysctl.d (such as procps's 99-sysctl.conf), and none exists",
                e.source,
                dotted(&e.key),
                e.value.unwrap_or_default()
            )
        })
        .collect())
}

/// One line of persisted sysctl configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key in slash form (`net/ipv4/ip_forward`), as systemd normalises it.
    pub key: String,
    /// `None` for a `-key` exclusion line.
    pub value: Option<String>,
    /// `path:line`.
    pub source: String,
}

impl Entry {
    pub fn is_glob(&self) -> bool {
        self.key.contains(['*', '?', '['])
    }
}

/// systemd's normalisation to slash form (`sysctl_normalize`): if the first separator
/// is a dot, dots and slashes swap; if it is a slash, the key is already in slash
/// form. Then the path is simplified: empty and `.` parts dropped, so a leading or
/// doubled slash names the same key (`/net//ipv4/ip_forward` is `net/ipv4/ip_forward`).
pub fn to_slash(key: &str) -> String {
    let swapped: String = match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'.' => key
            .chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect(),
        _ => key.to_string(),
    };
    swapped
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses one sysctl configuration file.
pub fn parse_sysctl(text: &str, path: &str) -> Vec<Entry> {
    parse_sourced(text, |n| format!("{path}:{n}"))
}

/// Parses sysctl configuration, naming line `n` (1-based) by `source(n)`, as
/// systemd-sysctl does: only a whole line starting with `#` or `;` is a comment; the
/// value is everything after the first `=`, blanks trimmed at both ends (a `#` after
/// a value is part of it, and the kernel is handed it as written).
fn parse_sourced(text: &str, source: impl Fn(usize) -> String) -> Vec<Entry> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(BLANKS);
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v.trim_matches(BLANKS).to_string())),
            None if line.starts_with('-') => (line, None),
            None => continue,
        };
        let key = key.strip_prefix('-').unwrap_or(key).trim_matches(BLANKS);
        if key.is_empty() {
            continue;
        }
        out.push(Entry {
            key: to_slash(key),
            value,
            source: source(n + 1),
        });
    }
    out
}

/// What systemd trims from keys and values (its `WHITESPACE`).
const BLANKS: [char; 4] = [' ', '\t', '\n', '\r'];

/// The integer a kernel integer parameter takes from a write of `written`, as
/// `proc_dointvec` reads it: leading white space, an optional `-`, a number in C's
/// base 0 (`0x` hex, a leading `0` octal, else decimal) that fits an `int`, then a
/// blank, a newline or the end (anything after is ignored). `None` when the kernel
/// refuses the write and the parameter keeps its value (`+1`, `2x`, `2#c`, `08`).
pub fn kernel_int(written: &str) -> Option<i64> {
    let t = written.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let b = t.as_bytes();
    let (radix, digits) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, &t[2..])
        } else if b.first() == Some(&b'0') {
            (8, t)
        } else {
            (10, t)
        };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    if !matches!(digits[end..].chars().next(), None | Some(' ' | '\t' | '\n')) {
        return None;
    }
    let n = i64::from_str_radix(&digits[..end], radix).ok()?;
    let n = if neg { -n } else { n };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&n)
        .then_some(n)
}

/// The merged persisted configuration: per key, only its last entry, in the order
/// systemd-sysctl would apply them.
pub fn persisted(facts: &Facts) -> Result<Arc<Vec<Entry>>, FactError> {
    facts.get::<PersistedSysctl>()
}

/// The merged persisted sysctl configuration, as a fact.
pub struct PersistedSysctl;

impl Fact for PersistedSysctl {
    type Value = Vec<Entry>;
    fn read(facts: &Facts) -> Result<Vec<Entry>, FactError> {
        let mut all = Vec::new();
        for file in applied_files(facts)? {
            if let Some(text) = &file.text {
                all.extend(parse_sourced(text, |n| file.source(n)));
            }
        }
        Ok(merge(all))
    }
}

/// Merges entries read in order as systemd-sysctl does: a repeated key with the same
/// value keeps its first place; with another value the old entry is dropped and the
/// new one goes to the end.
pub fn merge(entries: impl IntoIterator<Item = Entry>) -> Vec<Entry> {
    let mut slots: Vec<Option<Entry>> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for e in entries {
        if let Some(&i) = index.get(&e.key) {
            if slots[i].as_ref().is_some_and(|old| old.value == e.value) {
                continue;
            }
            slots[i] = None;
        }
        index.insert(e.key.clone(), slots.len());
        slots.push(Some(e));
    }
    slots.into_iter().flatten().collect()
}

/// Glob match where `*` and `?` do not cross a `/`.
pub fn glob_match(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let k: Vec<&str> = key.split('/').collect();
    p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| super::fnmatch(p, k))
}

/// What the persisted configuration sets `key` (slash form) to at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persisted {
    /// Set to `value` by `entry`; `glob` when through a glob pattern.
    Set {
        value: String,
        source: String,
        glob: Option<String>,
    },
    /// Not set by any file (a `-key` exclusion is given as the reason).
    Unset(Option<String>),
}

/// The persisted value of `key` (dotted or slash form).
pub fn persisted_value(entries: &[Entry], key: &str) -> Persisted {
    let key = to_slash(key);
    if let Some(e) = entries.iter().find(|e| e.key == key) {
        return match &e.value {
            Some(v) => Persisted::Set {
                value: v.clone(),
                source: e.source.clone(),
                glob: None,
            },
            None => Persisted::Unset(Some(format!(
                "{}: -{} excludes it from glob assignments",
                e.source,
                dotted(&key)
            ))),
        };
    }
    entries
        .iter()
        .rfind(|e| e.is_glob() && e.value.is_some() && glob_match(&e.key, &key))
        .map(|e| Persisted::Set {
            value: e.value.clone().unwrap_or_default(),
            source: e.source.clone(),
            glob: Some(dotted(&e.key)),
        })
        .unwrap_or(Persisted::Unset(None))
}

/// Slash form back to the usual dotted form.
pub fn dotted(slash: &str) -> String {
    slash
        .chars()
        .map(|c| {
            if c == '/' {
                '.'
            } else if c == '.' {
                '/'
            } else {
                c
            }
        })
        .collect()
}

/// The runtime value of `key` from /proc/sys (live only); `None` if the key does not exist.
pub fn runtime(facts: &Facts, key: &str) -> Result<Option<String>, FactError> {
    let path = format!("/proc/sys/{}", to_slash(key));
    Ok(facts
        .read_runtime(&path)?
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// The persisted setting of `key` as a plain setting (for evidence), if one is made.
pub fn persisted_setting(facts: &Facts, key: &str) -> Result<Option<Setting>, FactError> {
    let entries = persisted(facts)?;
    Ok(match persisted_value(&entries, key) {
        Persisted::Set { value, source, .. } => Some(Setting {
            key: key.to_string(),
            value,
            source,
        }),
        Persisted::Unset(_) => None,
    })
}

/// The runtime value of `key`; [`FactError::RuntimeOnly`] offline.
pub fn runtime_value(facts: &Facts, key: &str) -> Result<Option<String>, FactError> {
    runtime(facts, key)
}

/// `net/ipv4/ip_forward` and `net.ipv4.ip_forward` name the same key (dotted form).
pub fn normalize(key: &str) -> String {
    dotted(&to_slash(key))
}

/// The value `key` has once boot is done: what ufw's sysctl file sets when ufw is
/// switched on (ufw applies it after systemd-sysctl), else what the persisted
/// configuration (`entries`) sets; with a note when ufw's file decides.
pub fn after_boot(
    facts: &Facts,
    entries: &[Entry],
    key: &str,
) -> Result<(Persisted, Option<String>), FactError> {
    let base = persisted_value(entries, key);
    let Some((why, ufw_entries)) = crate::facts::ufw::sysctl_entries(facts)? else {
        return Ok((base, None));
    };
    Ok(match persisted_value(&ufw_entries, key) {
        p @ Persisted::Set { .. } => {
            let overridden = match &base {
                Persisted::Set { value, source, .. } => {
                    format!("; it overrides {source}: {key} = {value}")
                }
                Persisted::Unset(_) => String::new(),
            };
            (p, Some(format!("{why}{overridden}")))
        }
        Persisted::Unset(_) => (base, None),
    })
}

/// The value `key` has once boot is done (see [`after_boot`]).
pub fn boot_value(facts: &Facts, key: &str) -> Result<(Persisted, Option<String>), FactError> {
    let entries = persisted(facts)?;
    after_boot(facts, &entries, key)
}
