//! dpkg's database of packages, read as `dpkg-query` reads it (dpkg 1.21, Debian
//! 12's): the status file (`/var/lib/dpkg/status`), then the pending updates of an
//! interrupted or unfinished dpkg run (`/var/lib/dpkg/updates/`, files named by
//! digits only, in name order), each of whose records replaces a record of the
//! database.
//!
//! The files are deb822 stanzas as dpkg parses them: separated by empty lines (a
//! line of spaces continues the field before it), field names in any case and
//! followed by a colon (spaces before it allowed), values continued on lines that
//! start with a space (any of C's spaces). A field's value is what dpkg hands its
//! parser: the spaces after the colon skipped on the first line only (a `Status` or
//! `Package` that starts on the next line is refused), trailing spaces trimmed. A
//! package name is folded to lower case, as dpkg stores it; the `Status` words
//! (`want flag status`) are read in any case, the first at the value's start and
//! the others on any lines, each the first of dpkg's names it starts with. What dpkg refuses to
//! read is an error here too, naming the file, the stanza and the field:
//! - the syntax: a line that is not a field, a field name that starts with `-` or is
//!   one character long, a field given twice in a stanza, a last line without its
//!   newline;
//! - a stanza without a valid `Package`; a `Status` that is not three known words
//!   (an empty one too); a `Version` or `Config-Version` dpkg cannot parse (empty, an
//!   epoch that is not a number, an empty revision); no `Version` in a state other
//!   than `not-installed` and `half-installed`; a `Multi-Arch` that is not `no`,
//!   `same`, `allowed` or `foreign`, or `same` for architecture `all` or none; a
//!   `Config-Version` in state `installed`, `triggers-pending` or `not-installed`;
//!   triggers awaited or pending in a state that cannot have them, or the
//!   `triggers-awaited`/`triggers-pending` state without them;
//! - the other fields dpkg parses, checked by [`super::dpkg_fields`]: relationship
//!   fields, `Conffiles`, `Essential`, `Protected`, `Priority`, archive fields, trigger
//!   names;
//! - instances of one name that cannot be installed together: dpkg counts a name's
//!   instances that are not `not-installed`, and refuses two that are not
//!   `Multi-Arch: same`, or one that is beside one that is not (in the status file
//!   the stanza read is counted; in an update file the database before it);
//! - update files whose names differ in length.
//!
//! The obsolete `Revision` fields (`Package-Revision`, `Package_Revision`) after
//! `Version` are appended to it as its revision, as dpkg does (one with a hyphen is
//! refused: dpkg keeps it whole as the revision, which a version string cannot say).
//!
//! The status file holds an instance per architecture: a later stanza for the same
//! name and architecture replaces the earlier one (dpkg does, when the counts allow
//! it). An update replaces the name's one counted instance whatever its architecture
//! (a cross-grade), unless both are `Multi-Arch: same`; it may not add a
//! non-`same` instance beside several.
//!
//! dpkg's states, as the `pkg.*` checks judge them (a false pass is the worst bug,
//! so a package whose files may be on disk is never judged absent):
//! - **installed** — `installed`, `triggers-awaited`, `triggers-pending`, with the
//!   `ok` flag: unpacked and configured;
//! - **present** — `half-installed`, `unpacked`, `half-configured`, and any of the
//!   installed states flagged `reinstreq` (broken, to be reinstalled): some or all
//!   of its files are there, but dpkg does not call it installed. `pkg.installed`,
//!   `pkg.absent` and `pkg.min_version` all fail on it;
//! - **absent** — `config-files` (only configuration files left) and
//!   `not-installed`.
//!
//! A name can have an instance per architecture (Multi-Arch: same): it is installed
//! when one instance is; its version is the oldest installed instance's, and a
//! present instance of another architecture older than that (or of no version)
//! decides `pkg.min_version` (see [`super::packages`]).

use super::dpkg_fields::{self, choice, package_name_error, trigger_words};
use super::dpkg_version::check_version;
pub use super::dpkg_version::compare_versions;
use super::file::FileKind;
use super::kv::is_c_space;
use super::{FactError, Facts};

/// dpkg's database of installed packages, inside the root.
pub const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// Where dpkg journals changes not yet merged into the status file.
pub const DPKG_UPDATES: &str = "/var/lib/dpkg/updates";

/// What dpkg says about one package's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpkgState {
    /// Unpacked and configured (`installed`, `triggers-*` with the `ok` flag).
    Installed,
    /// Files (partly) on disk, not installed: dpkg's status, e.g. `unpacked`, or
    /// `reinst-required`.
    Present(String),
    /// No files of its own: `config-files`, `not-installed`.
    Absent,
}

/// One package instance (a name and an architecture) of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    /// As written (dpkg compares architectures exactly); empty when none is given.
    pub arch: String,
    pub state: DpkgState,
    pub version: Option<String>,
    /// `Multi-Arch: same`: co-installable with the name's other architectures.
    pub multi_same: bool,
    /// dpkg's `not-installed` (also a stanza without Status): an instance dpkg does
    /// not count.
    pub not_installed: bool,
}

/// The packages of a dpkg database, by name; every instance of a name.
#[derive(Debug, Clone, Default)]
pub struct DpkgDb {
    pub instances: Vec<Instance>,
    /// The files read: the status file, then each update.
    pub files: Vec<String>,
}

impl DpkgDb {
    /// The indices of `name`'s instances dpkg counts (not `not-installed`).
    fn counted(&self, name: &str) -> Vec<usize> {
        (0..self.instances.len())
            .filter(|&i| self.instances[i].name == name && !self.instances[i].not_installed)
            .collect()
    }

    /// dpkg's check of a name's instances (and `new`'s, from the status file): at
    /// most one that is not `Multi-Arch: same`, and never one beside some that are.
    fn check_set(&self, name: &str, new: Option<&Instance>) -> Result<(), String> {
        let mut counted: Vec<&Instance> = self
            .counted(name)
            .into_iter()
            .map(|i| &self.instances[i])
            .collect();
        counted.extend(new.filter(|n| !n.not_installed));
        let single: Vec<&str> = counted
            .iter()
            .filter(|i| !i.multi_same)
            .map(|i| arch_name(&i.arch))
            .collect();
        if single.len() > 1 {
            return Err(format!("{name} has instances ({}) that cannot be installed together (not Multi-Arch: same)", single.join(", ")));
        }
        if !single.is_empty() && counted.iter().any(|i| i.multi_same) {
            return Err(format!("{name} has an instance ({}) that is not Multi-Arch: same beside instances that are", single[0]));
        }
        Ok(())
    }

    /// A stanza of the status file: one slot per architecture.
    fn add_status(&mut self, new: Instance) -> Result<(), String> {
        self.check_set(&new.name, Some(&new))?;
        let slot = self
            .instances
            .iter()
            .position(|i| i.name == new.name && i.arch == new.arch);
        self.put(slot, new);
        Ok(())
    }

    /// A stanza of an update file: it replaces the name's single counted instance
    /// (a cross-grade) unless both are Multi-Arch: same.
    fn add_update(&mut self, new: Instance) -> Result<(), String> {
        self.check_set(&new.name, None)?;
        let counted = self.counted(&new.name);
        if counted.len() > 1 && !new.multi_same {
            return Err(format!(
                "{} ({}) is not Multi-Arch: same, beside {} installed instances",
                new.name,
                arch_name(&new.arch),
                counted.len()
            ));
        }
        let slot = match counted.as_slice() {
            [one] if !(self.instances[*one].multi_same && new.multi_same) => Some(*one),
            _ => self
                .instances
                .iter()
                .position(|i| i.name == new.name && i.arch == new.arch),
        };
        self.put(slot, new);
        Ok(())
    }

    fn put(&mut self, slot: Option<usize>, new: Instance) {
        match slot {
            Some(i) => self.instances[i] = new,
            None => self.instances.push(new),
        }
    }
}

fn arch_name(arch: &str) -> &str {
    if arch.is_empty() {
        "no architecture"
    } else {
        arch
    }
}

/// Reads the status file and the pending updates; `Ok(None)` when the root has no
/// status file.
pub fn read(facts: &Facts) -> Result<Option<DpkgDb>, FactError> {
    if facts.lstat(DPKG_STATUS)?.is_none() {
        return Ok(None);
    }
    let text = facts
        .read(DPKG_STATUS)?
        .ok_or_else(|| FactError::Unreadable {
            path: DPKG_STATUS.into(),
            reason: "no dpkg status database".into(),
        })?;
    let mut db = read_status(&text, DPKG_STATUS)?;
    // dpkg scans the updates directory (a missing one is empty); anything else there
    // is refused.
    if facts
        .stat(DPKG_UPDATES)?
        .is_some_and(|m| m.kind != FileKind::Dir)
    {
        return Err(FactError::Malformed {
            path: DPKG_UPDATES.into(),
            reason: format!(
                "{DPKG_UPDATES} is not a directory; dpkg cannot scan it and refuses the database"
            ),
        });
    }
    let updates: Vec<String> = facts
        .list_dir(DPKG_UPDATES)?
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    if let Some(long) = updates.iter().find(|n| n.len() > 10) {
        return Err(FactError::Malformed {
            path: DPKG_UPDATES.into(),
            reason: format!(
                "update file `{long}` is longer than 10 digits; dpkg refuses the database"
            ),
        });
    }
    if let (Some(a), Some(b)) = (
        updates.first(),
        updates.iter().find(|n| n.len() != updates[0].len()),
    ) {
        return Err(FactError::Malformed {
            path: DPKG_UPDATES.into(),
            reason: format!("update files `{a}` and `{b}` have names of different lengths; dpkg refuses the database"),
        });
    }
    for name in updates {
        let path = format!("{DPKG_UPDATES}/{name}");
        if let Some(t) = facts.read(&path)? {
            add_file(&mut db, &path, &t, DpkgDb::add_update)?;
            db.files.push(path);
        }
    }
    Ok(Some(db))
}

/// The database of one status file's text (no pending updates), read from `path`.
pub fn read_status(text: &str, path: &str) -> Result<DpkgDb, FactError> {
    let mut db = DpkgDb::default();
    add_file(&mut db, path, text, DpkgDb::add_status)?;
    db.files.push(path.to_string());
    Ok(db)
}

/// Adds the stanzas of one file, each with `add`; an error names the file and the
/// stanza.
fn add_file(
    db: &mut DpkgDb,
    path: &str,
    text: &str,
    add: fn(&mut DpkgDb, Instance) -> Result<(), String>,
) -> Result<(), FactError> {
    let malformed = |reason: String| FactError::Malformed {
        path: path.to_string(),
        reason: format!("{reason}; dpkg refuses the database"),
    };
    for (line, fields) in stanzas(text).map_err(malformed)? {
        let i = instance(&fields).map_err(|e| malformed(format!("stanza at line {line}: {e}")))?;
        let name = i.name.clone();
        add(db, i)
            .map_err(|e| malformed(format!("stanza at line {line} (package {name}): {e}")))?;
    }
    Ok(())
}

/// The stanzas of a status or update file, each with its first line, as
/// (lower-case field name, value) lists.
type Stanza = Vec<(String, String)>;

fn stanzas(text: &str) -> Result<Vec<(usize, Stanza)>, String> {
    let mut out = Vec::new();
    let mut cur: Stanza = Vec::new();
    let mut start = 0;
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.last().is_some_and(|l| !l.is_empty()) {
        return Err(format!(
            "line {}: the file ends without a newline",
            lines.len()
        ));
    }
    let last = lines.len().saturating_sub(2);
    for (n, line) in lines.into_iter().enumerate() {
        if line.is_empty() {
            if !cur.is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
            continue;
        }
        if line.starts_with(is_c_space) {
            match cur.last_mut() {
                Some((_, v)) => {
                    v.push('\n');
                    v.push_str(line);
                }
                None => return Err(format!("line {}: a continuation line with no field", n + 1)),
            }
            continue;
        }
        // The name ends at a colon or a space; spaces may come before the colon.
        let end = line
            .find(|c: char| c == ':' || is_c_space(c))
            .unwrap_or(line.len());
        let name = &line[..end];
        let Some(value) = line[end..].trim_start_matches(is_c_space).strip_prefix(':') else {
            return Err(format!("line {}: `{line}` is not a field", n + 1));
        };
        if name.is_empty() || name.starts_with('-') || name.len() < 2 {
            return Err(format!("line {}: `{name}` is not a field name", n + 1));
        }
        let name = name.to_ascii_lowercase();
        // dpkg skips blanks and newlines to find a value: on the last line, none.
        if n == last && value.trim_matches(is_c_space).is_empty() {
            return Err(format!(
                "line {}: the file ends before the value of `{name}`",
                n + 1
            ));
        }
        if cur.iter().any(|(k, _)| *k == name) {
            return Err(format!(
                "line {}: a second `{name}` field in one stanza",
                n + 1
            ));
        }
        if cur.is_empty() {
            start = n + 1;
        }
        cur.push((name, value.to_string()));
    }
    Ok(out)
}

/// dpkg's states, in its order.
const STATES: [&str; 8] = [
    "not-installed",
    "config-files",
    "half-installed",
    "unpacked",
    "half-configured",
    "triggers-awaited",
    "triggers-pending",
    "installed",
];

/// One stanza as dpkg verifies it, the package instance it records.
fn instance(stanza: &Stanza) -> Result<Instance, String> {
    let field = |f: &str| {
        stanza
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, v)| dpkg_fields::value(v))
    };
    let name = field("package").ok_or("no Package field")?;
    if let Some(e) = package_name_error(name) {
        return Err(format!(
            "Package `{}` is not a valid package name: {e}",
            name.escape_debug()
        ));
    }
    let name = name.to_ascii_lowercase();
    let at = |e: String| format!("package {name}: {e}");
    for (k, v) in stanza {
        dpkg_fields::check(k, dpkg_fields::value(v)).map_err(at)?;
    }
    let (reinstreq, st) = match field("status") {
        Some(s) => status(s).map_err(at)?,
        None => (false, 0),
    };
    let state_name = STATES[st];
    if let Some(v) = field("version") {
        check_version(v).map_err(|e| at(format!("Version `{}`: {e}", v.escape_debug())))?;
    } else if !matches!(state_name, "not-installed" | "half-installed") {
        return Err(at(format!(
            "no Version field, which dpkg requires in state {state_name}"
        )));
    }
    let arch = field("architecture").unwrap_or("");
    let multi = field("multi-arch").unwrap_or("");
    let multi_same = !multi.is_empty()
        && choice(multi, &["no", "same", "allowed", "foreign"], true)
            .map_err(|e| at(format!("Multi-Arch `{}`: {e}", multi.escape_debug())))?
            .0
            == "same";
    if multi_same && (arch.is_empty() || arch == "all") {
        return Err(at(format!("Multi-Arch: same with architecture `{arch}`")));
    }
    if let Some(v) = field("config-version") {
        check_version(v).map_err(|e| at(format!("Config-Version `{}`: {e}", v.escape_debug())))?;
        if matches!(
            state_name,
            "installed" | "triggers-pending" | "not-installed"
        ) {
            return Err(at(format!("a Config-Version field in state {state_name}")));
        }
    }
    let words = |f: &str| trigger_words(field(f).unwrap_or("")).count();
    let (awaited, pending) = (words("triggers-awaited") > 0, words("triggers-pending") > 0);
    let wrong = if awaited && !(2..=5).contains(&st) {
        Some("triggers awaited")
    } else if !awaited && state_name == "triggers-awaited" {
        Some("no triggers awaited")
    } else if pending && !(5..=6).contains(&st) {
        Some("triggers pending")
    } else if !pending && state_name == "triggers-pending" {
        Some("no triggers pending")
    } else {
        None
    };
    if let Some(w) = wrong {
        return Err(at(format!("state {state_name} with {w}")));
    }
    let state = match state_name {
        "installed" | "triggers-awaited" | "triggers-pending" if !reinstreq => DpkgState::Installed,
        "installed" | "triggers-awaited" | "triggers-pending" => DpkgState::Present(format!(
            "flagged reinst-required (broken) in state {state_name}"
        )),
        "half-installed" | "unpacked" | "half-configured" => {
            DpkgState::Present(state_name.to_string())
        }
        _ => DpkgState::Absent,
    };
    Ok(Instance {
        arch: arch.to_string(),
        version: revised(stanza).map_err(at)?,
        multi_same,
        not_installed: st == 0,
        name,
        state,
    })
}

/// The version dpkg gives the stanza: `Version`, with the value of each obsolete
/// `Revision` (`Package-Revision`, `Package_Revision`) field after it appended as the
/// revision (the version's own revision moves into the upstream part). A revision
/// with a hyphen is refused: dpkg keeps it whole, which the agent's version strings
/// cannot say.
fn revised(stanza: &Stanza) -> Result<Option<String>, String> {
    let mut version: Option<String> = None;
    for (k, v) in stanza {
        let v = dpkg_fields::value(v);
        match k.as_str() {
            "version" => version = Some(v.to_string()),
            "revision" | "package-revision" | "package_revision" if !v.is_empty() => {
                if v.contains('-') {
                    return Err(format!("an obsolete {k} field `{}` with a hyphen, which dpkg would keep whole in the revision; the agent cannot order such a version as dpkg does", v.escape_debug()));
                }
                if let Some(ver) = &mut version {
                    ver.push('-');
                    ver.push_str(v);
                }
            }
            _ => {}
        }
    }
    Ok(version)
}

/// A `Status: want flag status` value: whether flagged reinstreq, and the state's
/// index in [`STATES`].
fn status(value: &str) -> Result<(bool, usize), String> {
    let bad = |e: String| {
        format!(
            "Status `{}` is not `want flag status`: {e}",
            value.escape_debug()
        )
    };
    let (_, rest) = choice(
        value,
        &["unknown", "install", "hold", "deinstall", "purge"],
        false,
    )
    .map_err(|e| bad(format!("the want {e}")))?;
    let (flag, rest) =
        choice(rest, &["ok", "reinstreq"], false).map_err(|e| bad(format!("the flag {e}")))?;
    let (st, _) = choice(rest, &STATES, true).map_err(|e| bad(format!("the status {e}")))?;
    Ok((
        flag == "reinstreq",
        STATES.iter().position(|s| *s == st).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(text: &str) -> Vec<(String, String, DpkgState)> {
        read_status(text, "/s")
            .unwrap()
            .instances
            .into_iter()
            .map(|i| (i.name, i.arch, i.state))
            .collect()
    }

    #[test]
    fn stanzas_as_dpkg_reads_them() {
        let present = |s: &str| DpkgState::Present(s.into());
        assert_eq!(
            states(
                "package : A\nSTATUS: Install OK\n Installed\nVersion: 1\n\n\nPackage: b\nStatus: hold reinstreq installed\nVersion: 1\nDescription: x\n Package: c\n Status: install ok installed\n\nPackage: d\nStatus: install ok half-configured\nVersion: 1\nArchitecture: I386\n\nPackage: e\nStatus: purge ok config-files\nVersion: 1\n\nPackage: f\nStatus: install ok half-installed\n"
            ),
            vec![
                ("a".into(), "".into(), DpkgState::Installed),
                ("b".into(), "".into(), present("flagged reinst-required (broken) in state installed")),
                ("d".into(), "I386".into(), present("half-configured")),
                ("e".into(), "".into(), DpkgState::Absent),
                ("f".into(), "".into(), present("half-installed")),
            ]
        );
        for bad in [
            "Package: a\nStatus: install ok\n",
            "Package: a\nStatus: install ok gone\n",
            "Package: a\nStatus: install ok installedx\nVersion: 1\n",
            "Package: a\nStatus: install ok installed\n \nPackage: b\n",
            "Package: a\n# comment\n",
            " continued\n",
            "Package: a\nStatus: install ok installed\nVersion: 1",
            "Package: a\nStatus: install ok installed\n",
            "Package: a\nStatus: install ok config-files\nVersion:\n",
            "Package: a\nStatus: install ok installed\nVersion: 1.0-\n",
            "Package: a\nStatus: install ok installed\nVersion: x:1.0\n",
            "Status: install ok installed\nVersion: 1\n",
            "Package: -a\nVersion: 1\n",
            "Package: a\nX: 1\n",
            "Package: a\n-X: 1\n",
            "Package: a\nMulti-Arch: some\n",
            "Package: a\nMulti-Arch: same\nArchitecture: all\n",
            "Package: a\nStatus: install ok installed\nVersion: 1\nConfig-Version: 1\n",
            "Package: a\nStatus: install ok triggers-awaited\nVersion: 1\n",
            "Package: a\nStatus: install ok installed\nVersion: 1\nTriggers-Pending: x\n",
            "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\nPackage: a\nStatus: install ok unpacked\nVersion: 1\nArchitecture: i386\n",
            "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nMulti-Arch: same\n\nPackage: a\nStatus: install ok config-files\nVersion: 1\nArchitecture: i386\n",
        ] {
            assert!(read_status(bad, "/s").is_err(), "{bad:?} was read");
        }
        // dpkg's words are the first names they start with.
        assert_eq!(
            states("Package: a\nStatus: holdok installed\nVersion: 1\n")[0].2,
            DpkgState::Installed
        );
    }

    #[test]
    fn instances_as_dpkg_keeps_them() {
        let db =
            |status: &str, updates: &[&str]| -> Result<Vec<(String, String, DpkgState)>, String> {
                let mut db = read_status(status, "/s").map_err(|e| e.to_string())?;
                for u in updates {
                    add_file(&mut db, "/u", u, DpkgDb::add_update).map_err(|e| e.to_string())?;
                }
                Ok(db
                    .instances
                    .into_iter()
                    .map(|i| (i.name, i.arch, i.state))
                    .collect())
            };
        let same = "Multi-Arch: same\n";
        // A not-installed selection of another architecture is not counted; the same
        // architecture twice: the last stanza counts.
        assert_eq!(
            db("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\nPackage: a\nStatus: purge ok not-installed\nArchitecture: i386\n\nPackage: b\nStatus: purge ok not-installed\nArchitecture: amd64\n\nPackage: b\nStatus: install ok unpacked\nVersion: 1\nArchitecture: amd64\n", &[]).unwrap().len(),
            3
        );
        // An update of another architecture replaces the only instance (cross-grade)...
        let one = "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n";
        let i386 = |st: &str, m: &str| {
            format!("Package: a\nStatus: install ok {st}\nVersion: 2\nArchitecture: i386\n{m}")
        };
        assert_eq!(
            db(one, &[&i386("config-files", "")]).unwrap(),
            vec![("a".into(), "i386".into(), DpkgState::Absent)]
        );
        // ... unless both are Multi-Arch: same.
        let two = format!("{one}{same}");
        assert_eq!(db(&two, &[&i386("config-files", same)]).unwrap().len(), 2);
        assert_eq!(db(&two, &[&i386("config-files", "")]).unwrap().len(), 1);
        // Not Multi-Arch: same beside two instances: refused.
        let pair = format!("{two}\n{}", i386("installed", same));
        let e = db(
            &pair,
            &["Package: a\nStatus: install ok unpacked\nVersion: 3\nArchitecture: arm64\n"],
        )
        .unwrap_err();
        assert!(
            e.contains("/u") && e.contains("package a") && e.contains("arm64"),
            "{e}"
        );
    }
}
