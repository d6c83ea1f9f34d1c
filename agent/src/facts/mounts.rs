//! Mounts: the live mount table (/proc/1/mountinfo), /etc/fstab, and systemd
//! `.mount` units such as tmp.mount.

use std::sync::Arc;

use super::journald::parse_unit_ini;
use super::units::UNIT_DIRS;
use super::{FactError, Facts};
use crate::facts::Fact;

/// A mount, live or configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub target: String,
    pub source: String,
    pub fstype: String,
    pub options: Vec<String>,
    /// Where this mount was found (`/proc/1/mountinfo:12`, `/etc/fstab:3`, a unit file).
    pub origin: String,
}

impl Mount {
    pub fn has_option(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
    pub fn describe(&self) -> String {
        format!(
            "{}: {} on {} type {} ({})",
            self.origin,
            self.source,
            self.target,
            self.fstype,
            self.options.join(",")
        )
    }
}

/// The live mount table; [`FactError::RuntimeOnly`] offline.
///
/// PID 1's table, not our own: under systemd's sandboxing (ProtectSystem=,
/// ProtectHome=, PrivateTmp=) the agent has a mount namespace of its own, whose bind
/// mounts would pass for separate partitions. Our own is the fallback where PID 1's
/// cannot be read.
pub fn live(facts: &Facts) -> Result<Arc<Vec<Mount>>, FactError> {
    facts.get::<LiveMounts>()
}

/// The live mount table, as a fact.
pub struct LiveMounts;

impl Fact for LiveMounts {
    type Value = Vec<Mount>;
    fn read(facts: &Facts) -> Result<Vec<Mount>, FactError> {
        let (path, text) = match facts.read_runtime("/proc/1/mountinfo") {
            Ok(Some(text)) => ("/proc/1/mountinfo", text),
            _ => {
                let path = "/proc/self/mountinfo";
                (path, facts.read_runtime(path)?.unwrap_or_default())
            }
        };
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let l: Vec<&str> = left.split_whitespace().collect();
            let r: Vec<&str> = right.split_whitespace().collect();
            if l.len() < 6 || r.len() < 2 {
                continue;
            }
            let mut options: Vec<String> = l[5].split(',').map(String::from).collect();
            if let Some(sup) = r.get(2) {
                options.extend(sup.split(',').map(String::from));
            }
            out.push(Mount {
                target: unescape(l[4]),
                source: unescape(r[1]),
                fstype: r[0].to_string(),
                options,
                origin: format!("{path}:{}", n + 1),
            });
        }
        Ok(out)
    }
}

/// /etc/fstab entries (missing file: none).
pub fn fstab(facts: &Facts) -> Result<Arc<Vec<Mount>>, FactError> {
    facts.get::<Fstab>()
}

/// The entries of /etc/fstab, as a fact.
pub struct Fstab;

impl Fact for Fstab {
    type Value = Vec<Mount>;
    fn read(facts: &Facts) -> Result<Vec<Mount>, FactError> {
        let Some(text) = facts.read("/etc/fstab")? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        // As getmntent(3) reads it (systemd-fstab-generator does): a comment is a
        // line whose first non-blank is `#`, and a line needs only a source and a
        // mount point (no type: mount(8) probes it; no options: none).
        for (n, raw) in text.lines().enumerate() {
            if raw.trim_start().starts_with('#') {
                continue;
            }
            let f: Vec<&str> = raw.split([' ', '\t']).filter(|f| !f.is_empty()).collect();
            if f.len() < 2 {
                continue;
            }
            out.push(Mount {
                target: unescape(f[1]),
                source: unescape(f[0]),
                fstype: f.get(2).copied().unwrap_or_default().to_string(),
                options: f
                    .get(3)
                    .unwrap_or(&"defaults")
                    .split(',')
                    .map(String::from)
                    .collect(),
                origin: format!("/etc/fstab:{}", n + 1),
            });
        }
        Ok(out)
    }
}

/// The systemd mount unit for `target` (e.g. tmp.mount for /tmp), if one exists and
/// is not masked. Its options come from the [Mount] section.
pub fn mount_unit(facts: &Facts, target: &str) -> Result<Option<Mount>, FactError> {
    let name = format!("{}.mount", unit_name(target));
    for dir in UNIT_DIRS {
        let path = format!("{dir}/{name}");
        if facts.read_link(&path)?.as_deref() == Some("/dev/null") {
            return Ok(None);
        }
        if let Some(text) = facts.read(&path)? {
            let s = parse_unit_ini(&text, &path, "Mount");
            let get = |k: &str| {
                s.iter()
                    .rev()
                    .find(|x| x.key == k)
                    .map(|x| x.value.clone())
                    .unwrap_or_default()
            };
            return Ok(Some(Mount {
                target: target.to_string(),
                source: get("What"),
                fstype: get("Type"),
                options: split_options(&get("Options")),
                origin: path,
            }));
        }
    }
    Ok(None)
}

/// A mount unit's `Options=` as a list: split on commas, empty items dropped, the
/// rest kept as written (blanks from a continued line included: mount(8) hands them
/// on, and tmpfs refuses them).
pub fn split_options(value: &str) -> Vec<String> {
    value
        .split(',')
        .filter(|o| !o.is_empty())
        .map(String::from)
        .collect()
}

/// A path as systemd simplifies it: `//var/./log/` is `/var/log`.
pub fn norm(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// systemd's unit name for a mount point: `/var/log` → `var-log`, `/` → `-`.
pub fn unit_name(target: &str) -> String {
    let t = target.trim_matches('/');
    if t.is_empty() {
        "-".into()
    } else {
        t.replace('-', "\\x2d").replace('/', "-")
    }
}

/// Decodes the octal escapes used in mountinfo and fstab (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_escapes() {
        assert_eq!(unit_name("/var/log/audit"), "var-log-audit");
        assert_eq!(unit_name("/tmp"), "tmp");
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("\\04"), "\\04");
    }

    /// fstab as getmntent(3) reads it: `#` starts a comment only at the start of a
    /// line, and two fields make an entry.
    #[test]
    fn fstab_lines_as_getmntent_reads_them() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/fstab"),
            "  # tmpfs /tmp tmpfs nodev\n/dev/sdb3\t/var\n/dev/sdz\ntmpfs /tmp tmpfs nodev 0 0 # note\n",
        )
        .unwrap();
        let facts = Facts::new(t.path(), false);
        let m = fstab(&facts).unwrap();
        let got: Vec<String> = m
            .iter()
            .map(|m| {
                format!(
                    "{} {} [{}] {}",
                    m.target,
                    m.fstype,
                    m.options.join(","),
                    m.origin
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "/var  [defaults] /etc/fstab:2",
                "/tmp tmpfs [nodev] /etc/fstab:4"
            ]
        );
    }

    /// PID 1's table wins over our own (a sandboxed unit's bind mounts); our own is
    /// the fallback.
    #[test]
    fn the_live_table_is_pid_1s() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str, text: &str| {
            let h = t.path().join(p);
            std::fs::create_dir_all(h.parent().unwrap()).unwrap();
            std::fs::write(h, text).unwrap();
        };
        w(
            "proc/self/mountinfo",
            "30 1 0:40 / / rw - ext4 /dev/sda1 rw\n31 30 0:40 /home /home ro - ext4 /dev/sda1 rw\n",
        );
        let targets = |facts: &Facts| -> Vec<String> {
            let m = live(facts).unwrap();
            m.iter()
                .map(|m| format!("{} {}", m.target, m.origin))
                .collect()
        };
        assert_eq!(
            targets(&Facts::new(t.path(), true)),
            ["/ /proc/self/mountinfo:1", "/home /proc/self/mountinfo:2"]
        );
        w("proc/1/mountinfo", "30 1 0:40 / / rw - ext4 /dev/sda1 rw\n");
        assert_eq!(
            targets(&Facts::new(t.path(), true)),
            ["/ /proc/1/mountinfo:1"]
        );
    }
}
