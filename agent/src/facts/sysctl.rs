//! Kernel parameters: the runtime value (/proc/sys) and the persisted value from
//! sysctl configuration, read as systemd-sysctl reads it: drop-ins sorted by name
//! across directories (an earlier directory hides a later one's file of the same
//! name), `/etc/sysctl.conf` last unless a drop-in links to it, explicit keys before
//! glob patterns, and `-key` lines that exclude a key from globs.

use std::sync::Arc;

use super::kv::Setting;
use super::{strip_comment, FactError, Facts};

/// Directories of sysctl drop-ins, highest precedence first.
pub const DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

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

/// systemd's normalisation to slash form: if the first separator is a dot, dots and
/// slashes swap; if it is a slash, the key is already in slash form.
pub fn to_slash(key: &str) -> String {
    match key.find(['.', '/']) {
        Some(i) if key.as_bytes()[i] == b'.' => key
            .chars()
            .map(|c| {
                if c == '.' {
                    '/'
                } else if c == '/' {
                    '.'
                } else {
                    c
                }
            })
            .collect(),
        _ => key.to_string(),
    }
}

/// Parses one sysctl configuration file.
pub fn parse_sysctl(text: &str, path: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (
                k.trim(),
                Some(v.split_whitespace().collect::<Vec<_>>().join(" ")),
            ),
            None if line.starts_with('-') => (line, None),
            None => continue,
        };
        let key = key.strip_prefix('-').unwrap_or(key).trim();
        if key.is_empty() {
            continue;
        }
        out.push(Entry {
            key: to_slash(key),
            value,
            source: format!("{path}:{}", n + 1),
        });
    }
    out
}

/// The merged persisted configuration: per key, only its last entry, in the order
/// systemd-sysctl would apply them.
pub fn persisted(facts: &Facts) -> Arc<Result<Vec<Entry>, FactError>> {
    facts.memo("sysctl-entries", || {
        let mut files = super::kv::dropin_files(facts, &DIRS, ".conf")?;
        let conf_host = facts.resolve("/etc/sysctl.conf", true)?;
        let already = files.iter().any(|f| {
            facts
                .resolve(f, true)
                .map(|h| h == conf_host)
                .unwrap_or(false)
        });
        if !already {
            files.push("/etc/sysctl.conf".to_string());
        }
        let mut all = Vec::new();
        for path in files {
            if let Some(text) = facts.read(&path)? {
                all.extend(parse_sysctl(&text, &path));
            }
        }
        Ok(merge(all))
    })
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
        .filter(|e| e.is_glob() && e.value.is_some() && glob_match(&e.key, &key))
        .next_back()
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
    let entries = persisted(facts);
    let entries = entries.as_ref().as_ref().map_err(Clone::clone)?;
    Ok(match persisted_value(entries, key) {
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
