//! Kernel parameters: the runtime value (/proc/sys) and the persisted value from
//! sysctl configuration, read with systemd-sysctl's precedence.

use std::sync::Arc;

use super::kv::Setting;
use super::{strip_comment, FactError, Facts};

/// Directories of sysctl drop-ins, highest precedence first.
const DIRS: [&str; 5] = [
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// Every persisted sysctl assignment in reading order (later assignments win).
pub fn persisted(facts: &Facts) -> Arc<Result<Vec<Setting>, FactError>> {
    facts.memo("sysctl-persisted", || {
        let mut by_name = std::collections::BTreeMap::new();
        for dir in DIRS {
            for path in facts.dir_files(dir, ".conf")? {
                let name = path.rsplit('/').next().unwrap_or_default().to_string();
                by_name.entry(name).or_insert(path);
            }
        }
        let mut files: Vec<String> = by_name.into_values().collect();
        // /etc/sysctl.conf is read last unless a drop-in already links to it (Debian's 99-sysctl.conf).
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
        let mut out = Vec::new();
        for path in files {
            let Some(text) = facts.read(&path)? else {
                continue;
            };
            for (n, raw) in text.lines().enumerate() {
                let line = strip_comment(raw);
                let line = line.trim_start_matches('-');
                if line.is_empty() || line.starts_with(';') {
                    continue;
                }
                if let Some((k, v)) = line.split_once('=') {
                    out.push(Setting {
                        key: normalize(k.trim()),
                        value: v.trim().to_string(),
                        source: format!("{path}:{}", n + 1),
                    });
                }
            }
        }
        Ok(out)
    })
}

/// `net/ipv4/ip_forward` and `net.ipv4.ip_forward` name the same key.
pub fn normalize(key: &str) -> String {
    if key.contains('.') {
        key.to_string()
    } else {
        key.replace('/', ".")
    }
}

/// The effective persisted setting of `key`, if any file sets it.
pub fn persisted_value(facts: &Facts, key: &str) -> Result<Option<Setting>, FactError> {
    let all = persisted(facts);
    let all = all.as_ref().as_ref().map_err(Clone::clone)?;
    Ok(all.iter().rev().find(|s| s.key == key).cloned())
}

/// The runtime value from /proc/sys. `Ok(None)` when the key does not exist in this
/// kernel; [`FactError::RuntimeOnly`] when scanning an offline root.
pub fn runtime_value(facts: &Facts, key: &str) -> Result<Option<String>, FactError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    Ok(facts
        .read_runtime(&path)?
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" ")))
}
