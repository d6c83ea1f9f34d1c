//! systemd units: whether a unit exists, is enabled, masked, and (live) active —
//! read from unit directories and `.wants` links, never by asking systemctl.

use super::{FactError, Facts, FileKind};

/// Unit directories in systemd's order of precedence.
pub const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// What is known of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    /// Where the unit file was found (highest precedence), if anywhere.
    pub path: Option<String>,
    /// The unit file systemd loads is /dev/null (through links) or empty.
    pub masked: bool,
    /// Linked from a `.wants`/`.requires` directory (the paths found).
    pub enabled_by: Vec<String>,
    /// The unit file has no [Install] section (enabled only as a dependency).
    pub is_static: bool,
    /// Live only: whether it runs now. `None` offline or when systemd is not running.
    pub active: Option<bool>,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.path.is_some()
    }
    pub fn enabled(&self) -> bool {
        !self.masked && !self.enabled_by.is_empty()
    }
    /// One line of evidence.
    pub fn describe(&self) -> String {
        let Some(path) = &self.path else {
            return format!("unit {} not found in any unit directory", self.name);
        };
        let state = if self.masked {
            "masked".to_string()
        } else if self.enabled() {
            format!("enabled (via {})", self.enabled_by.join(", "))
        } else if self.is_static {
            "static".to_string()
        } else {
            "disabled".to_string()
        };
        let active = match self.active {
            Some(true) => ", active",
            Some(false) => ", inactive",
            None => ", running state unknown (offline root or systemd not running)",
        };
        format!("unit {} ({path}) is {state}{active}", self.name)
    }
}

/// Whether systemd manages the live system (its runtime directory exists).
pub fn systemd_running(facts: &Facts) -> bool {
    facts.is_live()
        && matches!(facts.lstat("/run/systemd/system"), Ok(Some(m)) if m.kind == FileKind::Dir)
}

/// The state of `name` (e.g. `ssh.service`), read once per scan.
pub fn unit(facts: &Facts, name: &str) -> std::sync::Arc<Result<UnitState, FactError>> {
    facts.memo(&format!("unit:{name}"), || load(facts, name))
}

/// Whether the unit file at `path` masks the unit: a link that ends at /dev/null
/// (read from the links' text when the root has no /dev/null), or an empty file.
fn masks(facts: &Facts, path: &str) -> Result<bool, FactError> {
    if let Ok(Some(m)) = facts.stat(path) {
        return Ok(m.path == "/dev/null" || (m.kind == FileKind::File && m.size == 0));
    }
    let mut cur = path.to_string();
    for _ in 0..40 {
        match facts.lstat(&cur)? {
            Some(m) if m.kind == FileKind::Symlink => {
                let target = facts.read_link(&cur)?.unwrap_or_default();
                if target == "/dev/null" {
                    return Ok(true);
                }
                cur = if target.starts_with('/') {
                    target
                } else {
                    let parent = cur.rsplit_once('/').map_or("", |(d, _)| d);
                    format!("{parent}/{target}")
                };
            }
            _ => return Ok(false),
        }
    }
    Ok(false)
}

fn load(facts: &Facts, name: &str) -> Result<UnitState, FactError> {
    let mut st = UnitState {
        name: name.to_string(),
        path: None,
        masked: false,
        enabled_by: vec![],
        is_static: false,
        active: None,
    };
    // systemd loads the first entry it finds, in order of precedence: a mask (a link
    // to /dev/null, directly or through other links, or an empty file) counts only
    // when it is that entry.
    for dir in UNIT_DIRS {
        let p = format!("{dir}/{name}");
        if facts.lstat(&p)?.is_none() {
            continue;
        }
        if masks(facts, &p)? {
            st.masked = true;
        } else if let Some(text) = facts.read(&p).ok().flatten() {
            st.is_static = !text.lines().any(|l| l.trim() == "[Install]");
        }
        st.path = Some(p);
        break;
    }
    for dir in [
        "/etc/systemd/system",
        "/run/systemd/system",
        "/lib/systemd/system",
        "/usr/lib/systemd/system",
    ] {
        for sub in facts.list_dir(dir)? {
            if sub.ends_with(".wants") || sub.ends_with(".requires") {
                let link = format!("{dir}/{sub}/{name}");
                if facts.lstat(&link)?.is_some() {
                    st.enabled_by.push(link);
                }
            }
        }
    }
    if systemd_running(facts) {
        let inv = format!("/run/systemd/units/invocation:{name}");
        st.active = Some(facts.lstat(&inv)?.is_some());
    }
    Ok(st)
}
