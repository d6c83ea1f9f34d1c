//! The units systemd's boot transaction pulls in, as the unit files tell offline:
//! from `default.target`, the units named by `Requires=`, `Wants=`, `BindsTo=` and
//! `Upholds=` of each unit's file and drop-ins (dependencies are never reset by an
//! empty assignment) and by its `.wants`, `.requires` and `.upholds` links, and the
//! paths of its `RequiresMountsFor=`, which pull in the mount unit of the path and
//! of each of its parents that has a unit file. Debian's basic.target, for one,
//! wants tmp.mount and requires the mounts for /var and /var/tmp, so such a unit is
//! mounted at boot whether or not it is enabled (what `systemd --test --system`, the
//! mounts family's oracle, lists as the boot transaction's jobs).
//!
//! Only ever fewer units than systemd: instances of templates, specifiers, implicit
//! dependencies (`PrivateTmp=`, `DefaultDependencies=`) and generators' links on an
//! offline root are not followed. A unit masked or not found pulls nothing in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::journald::parse_unit_ini;
use super::mounts::norm;
use super::units::{dropins, unit, SEARCH_PATH};
use super::{Fact, FactError, Facts};

/// At most this many units are followed (a root's whole boot is a few hundred).
const MAX_UNITS: usize = 4000;

/// The names the boot transaction asks for (units, whether found or not), each with
/// what asked first, and the
/// `RequiresMountsFor=` paths with the unit that names them.
#[derive(Debug, Default)]
pub struct BootUnits {
    pub units: BTreeMap<String, String>,
    pub mounts_for: Vec<(String, String)>,
}

impl BootUnits {
    /// Why the boot transaction pulls in the mount unit `name` for the mount point
    /// `path` (normalised: `/var/tmp`), if it does.
    pub fn pulls_mount(&self, name: &str, path: &str) -> Option<String> {
        if let Some(by) = self.units.get(name) {
            return Some(format!("{name} is pulled in at boot by {by}"));
        }
        self.mounts_for.iter().find_map(|(p, by)| {
            let under = p == path || p.starts_with(&format!("{path}/"));
            under.then(|| format!("{by} has RequiresMountsFor={p}, which pulls in {name} at boot"))
        })
    }
}

/// The boot transaction's units, read once per scan.
pub fn boot_units(facts: &Facts) -> Result<std::sync::Arc<BootUnits>, FactError> {
    facts.get::<BootUnits>()
}

impl Fact for BootUnits {
    type Value = BootUnits;
    fn read(facts: &Facts) -> Result<BootUnits, FactError> {
        let mut out = BootUnits::default();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([("default.target".to_string(), "the boot".to_string())]);
        while let Some((name, by)) = queue.pop_front() {
            if seen.len() >= MAX_UNITS || !seen.insert(name.clone()) || name.contains('%') {
                continue;
            }
            // Named, whether or not a unit file exists offline (a generator's unit from
            // fstab is written at boot).
            out.units.insert(name.clone(), by);
            let st = unit(facts, &name)?;
            let Some(path) = st.path.clone() else {
                continue;
            };
            if st.masked || st.sysv {
                continue;
            }
            // An alias's names all belong to the one unit.
            let mut names = vec![name.clone()];
            if let Some(target) = &st.alias_of {
                names.push(target.clone());
                out.units
                    .entry(target.clone())
                    .or_insert_with(|| format!("{name} (its alias)"));
                seen.insert(target.clone());
            }
            let mut texts = Vec::new();
            if let Some(text) = facts.read(&path)? {
                texts.push((path.clone(), text));
            }
            for n in &names {
                texts.extend(dropins(facts, n)?);
            }
            for (p, text) in &texts {
                for s in parse_unit_ini(text, p, "Unit") {
                    match s.key.as_str() {
                        "Requires" | "Wants" | "BindsTo" | "Upholds" => {
                            for dep in s.value.split_whitespace() {
                                queue
                                    .push_back((dep.to_string(), format!("{} ({name})", s.source)));
                            }
                        }
                        "RequiresMountsFor" => {
                            for m in s.value.split_whitespace() {
                                out.mounts_for
                                    .push((norm(m), format!("{name} ({})", s.source)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            for n in &names {
                for dir in SEARCH_PATH {
                    for kind in ["wants", "requires", "upholds"] {
                        let d = format!("{dir}/{n}.{kind}");
                        for dep in facts.list_dir(&d)? {
                            queue.push_back((dep.clone(), format!("{d}/{dep}")));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}
