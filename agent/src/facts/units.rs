//! systemd units: whether a unit exists, is masked, is enabled, and (live) active —
//! read from the unit directories the way systemd 252's `systemctl is-enabled` reads
//! them (the differential tests compare the two), never by asking systemctl:
//!
//! - the unit is the first entry of its name in [`SEARCH_PATH`]; an empty file, or a
//!   link ending (through any links) at /dev/null or an empty file, masks it;
//! - a link to a file of another name makes the name an alias of that unit (looked
//!   up by its own name when the link points into the search path): systemctl says
//!   `alias`, never `enabled`;
//! - a dangling link, or an alias of a unit found nowhere, leaves the unit not found,
//!   even when a directory of lower precedence holds a unit file of that name;
//! - enabled means a symlink (wherever it points) named after the unit or one of the
//!   `Alias=` names of its [Install] section, in a `.wants` or `.requires` directory
//!   of /etc/systemd/system or of a runtime directory under /run — or, in those
//!   directories themselves, a link to a file of the unit's name named after one of
//!   its `Alias=` names (or its own, below the file systemd loads);
//! - a unit file a generator wrote, or a transient one, is `generated`, not enabled;
//! - a service with no native unit file answers by its init script's start links.
//!   Links a package ships under /usr do not enable; they still start the unit at
//!   boot ([`UnitState::pulled_in_by`]).

use super::{FactError, Facts, FileKind};
use std::sync::Arc;

use crate::facts::KeyedFact;

/// Unit directories for the mount checks, in systemd's order of precedence.
pub const UNIT_DIRS: [&str; 5] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// The system manager's unit search path in order of precedence, as
/// `systemd-analyze unit-paths` prints it on Debian 12 (/lib before /usr/lib).
pub const SEARCH_PATH: [&str; 13] = [
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// The directories whose `.wants`/`.requires` links systemctl counts as enablement:
/// the persistent configuration and every runtime directory (`enabled-runtime`).
const ENABLING_DIRS: [&str; 8] = [
    "/etc/systemd/system",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/run/systemd/generator.late",
];

/// Where generators write units, and transient units (systemctl's `generated`,
/// `transient`).
const GENERATED_DIRS: [&str; 4] = [
    "/run/systemd/generator.early",
    "/run/systemd/generator",
    "/run/systemd/generator.late",
    "/run/systemd/transient",
];

/// The drop-in directories systemd 252 reads for the unit `name`, in its order:
/// for each directory of [`SEARCH_PATH`], `<name>.d` and then those of the name's
/// dash prefixes (`var-log-.mount.d`, `var-.mount.d` for `var-log-audit.mount`),
/// then the type's own (`mount.d`) in each directory. Of drop-ins of one file name
/// the first in this order is read (see [`dropins`]).
pub fn dropin_dirs(name: &str) -> Vec<String> {
    let (stem, kind) = name.rsplit_once('.').unwrap_or((name, ""));
    let mut names = vec![name.to_string()];
    let mut rest = stem;
    while let Some(i) = rest.trim_end_matches('-').rfind('-') {
        names.push(format!("{}.{kind}", &rest[..=i]));
        rest = &rest[..i];
    }
    let mut dirs: Vec<String> = SEARCH_PATH
        .iter()
        .flat_map(|d| names.iter().map(move |n| format!("{d}/{n}.d")))
        .collect();
    if !kind.is_empty() {
        dirs.extend(SEARCH_PATH.iter().map(|d| format!("{d}/{kind}.d")));
    }
    dirs
}

/// The `.conf` drop-ins of the unit `name` as systemd reads them: (path, text) in
/// reading order, sorted by file name, a name found first in [`dropin_dirs`] order
/// hiding the others; a drop-in linked to /dev/null reads as empty.
pub fn dropins(facts: &Facts, name: &str) -> Result<Vec<(String, Arc<str>)>, FactError> {
    let dirs = dropin_dirs(name);
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    super::kv::read_with_dropins(facts, &[], &dirs, ".conf")
}

/// Links followed from one name to the unit it stands for, at most.
const MAX_ALIAS_HOPS: usize = 8;

/// What is known of one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub name: String,
    /// The entry systemd loads for the name (highest precedence), if it leads to a
    /// unit file or a mask.
    pub path: Option<String>,
    /// The entry of highest precedence when it leads nowhere (a dangling link, or an
    /// alias of a unit found nowhere): it hides any unit file of lower precedence.
    pub unresolved: Option<String>,
    /// The unit file systemd loads is /dev/null (through links) or empty.
    pub masked: bool,
    /// The unit this name is an alias of (its entry links to a file of that name).
    pub alias_of: Option<String>,
    /// The links systemctl counts as enablement.
    pub enabled_by: Vec<String>,
    /// Links in `.wants`, `.requires` or `.upholds` directories systemctl does not
    /// count (a package's own under /usr), which still start the unit at boot.
    pub pulled_in_by: Vec<String>,
    /// Its [Install] section names no WantedBy=, RequiredBy=, UpheldBy=, Alias= or
    /// Also= (systemctl's `static`: started only as a dependency).
    pub is_static: bool,
    /// `path` is a SysV init script standing in for a service with no native unit.
    pub sysv: bool,
    /// The unit file is a generator's output or a transient unit (systemctl's
    /// `generated` and `transient`): not enabled, whatever links name it.
    pub generated: bool,
    /// Live only: whether it runs now. `None` offline or when systemd is not running.
    pub active: Option<bool>,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.path.is_some()
    }
    /// What `systemctl is-enabled` calls `enabled` (or `enabled-runtime`).
    pub fn enabled(&self) -> bool {
        self.exists()
            && !self.masked
            && self.alias_of.is_none()
            && !self.generated
            && !self.enabled_by.is_empty()
    }
    /// Started at boot: enabled, or pulled in by a link systemctl does not count. An
    /// alias starts when the unit it stands for does.
    pub fn starts_at_boot(&self) -> bool {
        self.exists()
            && !self.masked
            && !(self.enabled_by.is_empty() && self.pulled_in_by.is_empty())
    }
    /// Started at boot, or running now.
    pub fn in_use(&self) -> bool {
        !self.masked && (self.starts_at_boot() || self.active == Some(true))
    }
    /// One line of evidence.
    pub fn describe(&self) -> String {
        let Some(path) = &self.path else {
            return match &self.unresolved {
                Some(entry) => format!(
                    "unit {} not found: {entry} leads to no unit file and hides any of lower precedence",
                    self.name
                ),
                None => format!("unit {} not found in any unit directory", self.name),
            };
        };
        let state = if self.masked {
            "masked".to_string()
        } else if let Some(target) = &self.alias_of {
            format!("an alias of {target}, not a unit of its own")
        } else if self.generated {
            "generated (a generator's output or a transient unit), not enabled".to_string()
        } else if self.enabled() {
            format!("enabled (via {})", self.enabled_by.join(", "))
        } else if self.is_static {
            "static".to_string()
        } else {
            "disabled".to_string()
        };
        let boot = if !self.masked && self.enabled_by.is_empty() && !self.pulled_in_by.is_empty() {
            format!(", pulled in at boot by {}", self.pulled_in_by.join(", "))
        } else {
            String::new()
        };
        let active = match self.active {
            Some(true) => ", active",
            Some(false) => ", inactive",
            None => ", running state unknown (offline root or systemd not running)",
        };
        let sysv = if self.sysv {
            ", an init script: no native unit file"
        } else {
            ""
        };
        format!("unit {} ({path}{sysv}) is {state}{boot}{active}", self.name)
    }
}

/// Whether systemd manages the live system (its runtime directory exists).
pub fn systemd_running(facts: &Facts) -> bool {
    facts.is_live()
        && matches!(facts.lstat("/run/systemd/system"), Ok(Some(m)) if m.kind == FileKind::Dir)
}

/// The state of `name` (e.g. `ssh.service`), read once per scan.
pub fn unit(facts: &Facts, name: &str) -> Result<Arc<UnitState>, FactError> {
    facts.get_keyed::<UnitState>(name)
}

impl KeyedFact for UnitState {
    type Key = str;
    type Value = Self;
    fn read(facts: &Facts, name: &str) -> Result<Self, FactError> {
        load(facts, name)
    }
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

/// What the entry of highest precedence for a name is.
enum Entry {
    /// No entry anywhere.
    Missing,
    /// An entry that leads to no unit file; `native` unless it is a dangling link out
    /// of the search path outside /etc/systemd/system and /run (under /usr, in
    /// /etc/systemd/system.control): systemctl then looks for an init script.
    Dangling(String, bool),
    Masked(String),
    /// A unit file of the name (read through the entry's links).
    File(String),
    /// A link to a unit file of another name: in the search path (found again by
    /// that name), or outside it (that file, loaded under this name).
    Alias {
        entry: String,
        target: String,
        in_search_path: bool,
    },
}

/// `target` (as written in a link in `dir`) as an absolute path, `.` and `..` resolved
/// by name.
fn absolute(dir: &str, target: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{dir}/{target}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in joined.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The unit type of a name (`.service`, `.socket`, …).
fn suffix(name: &str) -> &str {
    name.rfind('.').map_or("", |i| &name[i..])
}

fn is_file(facts: &Facts, path: &str) -> bool {
    matches!(facts.stat(path), Ok(Some(m)) if m.kind == FileKind::File)
}

fn entry(facts: &Facts, name: &str) -> Result<Entry, FactError> {
    for dir in SEARCH_PATH {
        let p = format!("{dir}/{name}");
        let Some(meta) = facts.lstat(&p)? else {
            continue;
        };
        if masks(facts, &p)? {
            return Ok(Entry::Masked(p));
        }
        if meta.kind != FileKind::Symlink {
            return Ok(if meta.kind == FileKind::File {
                Entry::File(p)
            } else {
                Entry::Dangling(p, true)
            });
        }
        let target = absolute(dir, &facts.read_link(&p)?.unwrap_or_default());
        let base = target.rsplit('/').next().unwrap_or_default().to_string();
        let in_search_path = SEARCH_PATH
            .iter()
            .any(|d| target.starts_with(&format!("{d}/")));
        let native = in_search_path || ENABLING_DIRS.contains(&dir);
        if base == name {
            // The file it links to, loaded under its own name (systemctl 252 reports
            // a loop when that file is in the search path; the manager loads it).
            return Ok(if is_file(facts, &p) {
                Entry::File(p)
            } else {
                Entry::Dangling(p, native)
            });
        }
        if suffix(&base) != suffix(name) {
            // systemd refuses an alias of another unit type.
            return Ok(Entry::Dangling(p, true));
        }
        if !in_search_path && !is_file(facts, &p) {
            return Ok(Entry::Dangling(p, native));
        }
        return Ok(Entry::Alias {
            entry: p,
            target: base,
            in_search_path,
        });
    }
    Ok(Entry::Missing)
}

/// What systemctl reads of an [Install] section.
#[derive(Default)]
struct Install {
    aliases: Vec<String>,
    /// WantedBy=, RequiredBy=, UpheldBy= or Alias= name something.
    rules: bool,
    also: bool,
}

/// Reads the [Install] sections (exactly so spelled) of a unit file and then of its
/// drop-ins, in reading order: lists split on whitespace, an empty assignment
/// clearing the list before it.
fn install(texts: &[Arc<str>]) -> Install {
    let mut lists: [Vec<String>; 5] = Default::default();
    for text in texts {
        install_lines(text, &mut lists);
    }
    let [aliases, wanted, required, upheld, also] = lists;
    Install {
        rules: !(aliases.is_empty()
            && wanted.is_empty()
            && required.is_empty()
            && upheld.is_empty()),
        also: !also.is_empty(),
        aliases,
    }
}

/// The [Install] lines of one file into `lists` (Alias, WantedBy, RequiredBy,
/// UpheldBy, Also).
fn install_lines(text: &str, lists: &mut [Vec<String>; 5]) {
    let mut section = "";
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = &line[1..line.len() - 1];
            continue;
        }
        if section != "Install" {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let i = match key.trim() {
            "Alias" => 0,
            "WantedBy" => 1,
            "RequiredBy" => 2,
            "UpheldBy" => 3,
            "Also" => 4,
            _ => continue,
        };
        if value.trim().is_empty() {
            lists[i].clear();
        }
        lists[i].extend(value.split_whitespace().map(str::to_string));
    }
}

/// Symlinks named one of `names` in the dependency directories (`suffixes`) of `dirs`.
fn links(
    facts: &Facts,
    dirs: &[&str],
    suffixes: &[&str],
    names: &[String],
) -> Result<Vec<String>, FactError> {
    let mut out = Vec::new();
    for dir in dirs {
        for sub in facts.list_dir(dir)? {
            if !suffixes.iter().any(|s| sub.ends_with(s)) {
                continue;
            }
            let d = format!("{dir}/{sub}");
            if !matches!(facts.lstat(&d)?, Some(m) if m.kind == FileKind::Dir) {
                continue;
            }
            for n in names {
                let link = format!("{d}/{n}");
                if matches!(facts.lstat(&link)?, Some(m) if m.kind == FileKind::Symlink) {
                    out.push(link);
                }
            }
        }
    }
    Ok(out)
}

/// A SysV init script standing in for a service with no native unit file, as
/// systemctl hands it to systemd-sysv-install: enabled by a start link in
/// /etc/rc5.d or /etc/rcS.d.
fn sysv(facts: &Facts, st: &mut UnitState) -> Result<(), FactError> {
    let Some(base) = st.name.strip_suffix(".service") else {
        return Ok(());
    };
    let script = format!("/etc/init.d/{base}");
    if facts.lstat(&script)?.is_none() {
        return Ok(());
    }
    st.path = Some(script);
    st.sysv = true;
    for dir in ["/etc/rc5.d", "/etc/rcS.d"] {
        for n in facts.list_dir(dir)? {
            let b = n.as_bytes();
            if b.len() == base.len() + 3 && b[0] == b'S' && n.is_char_boundary(3) && &n[3..] == base
            {
                st.enabled_by.push(format!("{dir}/{n}"));
            }
        }
    }
    Ok(())
}

fn load(facts: &Facts, name: &str) -> Result<UnitState, FactError> {
    let mut st = UnitState {
        name: name.to_string(),
        path: None,
        unresolved: None,
        masked: false,
        alias_of: None,
        enabled_by: vec![],
        pulled_in_by: vec![],
        is_static: false,
        sysv: false,
        generated: false,
        active: None,
    };
    // The entry of the name, then — for an alias into the search path — the entries
    // of the names it stands for, until a unit file, a mask or nothing.
    let mut current = name.to_string();
    let mut file = None;
    let mut non_native = false;
    for _ in 0..MAX_ALIAS_HOPS {
        let first = st.path.is_none() && st.unresolved.is_none();
        match entry(facts, &current)? {
            Entry::Missing => {}
            Entry::Dangling(p, native) if first => {
                st.unresolved = Some(p);
                non_native = !native;
            }
            Entry::Dangling(..) => {}
            Entry::Masked(p) => {
                st.masked = true;
                st.path.get_or_insert(p);
            }
            Entry::File(p) => {
                file = Some(p.clone());
                st.path.get_or_insert(p);
            }
            Entry::Alias {
                entry,
                target,
                in_search_path,
            } => {
                st.path.get_or_insert(entry.clone());
                st.alias_of = Some(target.clone());
                if in_search_path {
                    current = target;
                    continue;
                }
                file = Some(entry);
                current = target;
            }
        }
        break;
    }
    if st.masked {
        return Ok(st);
    }
    let Some(file) = file else {
        // An alias of a unit found nowhere is not found either.
        if let Some(p) = st.path.take() {
            st.unresolved.get_or_insert(p);
        }
        st.alias_of = None;
        // No native unit (nothing, or a dangling link out of the search path outside
        // /etc/systemd/system and /run — one there is a native unit that cannot be
        // loaded): an init script of the name stands in, enabled by its start links.
        if st.unresolved.is_none() || non_native {
            sysv(facts, &mut st)?;
        }
        return Ok(st);
    };
    let resolved = facts.stat(&file).ok().flatten().map(|m| m.path);
    st.generated = st.alias_of.is_none()
        && std::iter::once(file.as_str())
            .chain(resolved.as_deref())
            .any(|p| {
                GENERATED_DIRS
                    .iter()
                    .any(|d| p.starts_with(&format!("{d}/")))
            });
    // systemctl (252) reads [Install] from the unit file and the drop-ins of the
    // unit's own `.d` directories, not the dash prefixes' or the type's.
    let mut texts: Vec<Arc<str>> = vec![facts.read(&file).ok().flatten().unwrap_or_default()];
    let own: Vec<String> = SEARCH_PATH
        .iter()
        .map(|d| format!("{d}/{current}.d"))
        .collect();
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    texts.extend(
        super::kv::read_with_dropins(facts, &[], &own, ".conf")?
            .into_iter()
            .map(|(_, t)| t),
    );
    let inst = install(&texts);
    // Links beside the unit files, to a file of the unit's name: one of an Alias=
    // name, or of the unit's own name in a directory of lower precedence than the
    // file systemd loads, enables it; one of the unit's name elsewhere makes it
    // `linked`, one of another name `indirect` — neither is static.
    let loaded = match facts.read_link(&file)? {
        Some(t) => absolute(file.rsplit_once('/').map_or("", |(d, _)| d), &t),
        None => file.clone(),
    };
    let below_from = SEARCH_PATH
        .iter()
        .position(|d| loaded.starts_with(&format!("{d}/")))
        .map_or(usize::MAX, |i| i + 1);
    let mut root_links = Vec::new();
    let mut linked = false;
    for dir in ENABLING_DIRS {
        let below = SEARCH_PATH
            .iter()
            .position(|d| *d == dir)
            .is_some_and(|i| i >= below_from);
        for n in facts.list_dir(dir)? {
            let link = format!("{dir}/{n}");
            let Some(target) = facts.read_link(&link)? else {
                continue;
            };
            if target.rsplit('/').next() != Some(current.as_str()) {
                continue;
            }
            if n == current && !below {
                linked = true;
            } else if n == current || inst.aliases.contains(&n) {
                root_links.push(link);
            } else {
                linked = true;
            }
        }
    }
    st.is_static = !inst.rules && !inst.also && !linked;
    // The names a link may carry: the unit's, its [Install] aliases, and (for an
    // alias) the name asked about.
    let mut names = vec![current.clone()];
    for n in inst.aliases.iter().chain(std::iter::once(&st.name)) {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    st.enabled_by = links(facts, &ENABLING_DIRS, &[".wants", ".requires"], &names)?;
    st.enabled_by.extend(root_links);
    st.pulled_in_by = links(
        facts,
        &SEARCH_PATH,
        &[".wants", ".requires", ".upholds"],
        &names,
    )?
    .into_iter()
    .filter(|l| !st.enabled_by.contains(l))
    .collect();
    if systemd_running(facts) {
        let mut active = false;
        for n in [&current, &st.name] {
            active |= facts
                .lstat(&format!("/run/systemd/units/invocation:{n}"))?
                .is_some();
        }
        st.active = Some(active);
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::dropin_dirs;

    /// The unit's own directory, then its dash prefixes', per search path entry; the
    /// type's last.
    #[test]
    fn dropin_directories_in_systemds_order() {
        let d = dropin_dirs("var-log-audit.mount");
        let etc: Vec<&str> = d
            .iter()
            .map(String::as_str)
            .filter(|p| p.starts_with("/etc/systemd/system/"))
            .collect();
        assert_eq!(
            etc,
            [
                "/etc/systemd/system/var-log-audit.mount.d",
                "/etc/systemd/system/var-log-.mount.d",
                "/etc/systemd/system/var-.mount.d",
                "/etc/systemd/system/mount.d",
            ]
        );
        assert_eq!(d[0], "/etc/systemd/system.control/var-log-audit.mount.d");
        assert_eq!(d.last().unwrap(), "/run/systemd/generator.late/mount.d");
        assert_eq!(dropin_dirs("tmp.mount").len(), 2 * SEARCH_PATH_LEN);
    }

    const SEARCH_PATH_LEN: usize = super::SEARCH_PATH.len();
}
