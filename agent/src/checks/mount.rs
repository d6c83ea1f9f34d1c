//! `mount.*` checks: separate mounts and their options.
//!
//! On a live system the mount table (/proc/1/mountinfo) says what is mounted now;
//! what is mounted at boot comes from /etc/fstab and systemd `.mount` units. A unit
//! file in /etc or /run overrides the fstab generator; one in /lib or /usr/lib is
//! overridden by an fstab entry. A masked `<path>.mount` stops either from mounting.
//! `noauto` fstab entries and units not enabled are not mounted at boot unless the
//! boot transaction pulls them in (Debian's basic.target wants tmp.mount and requires
//! the mounts for /var and /var/tmp: [`crate::facts::boot_units`]). A bind mount is
//! judged by its source ([`bind`]). /dev/shm is always mounted by the
//! init system, whatever fstab or units say; its flags after boot are those of
//! systemd-remount-fs's remount ([`shm`]). A tmpfs mounted at boot with an option
//! the kernel refuses is not mounted; one whose options' fate cannot be told offline
//! is not counted as a separate mount, and its options are judged as written
//! ([`tmpfs`]).

use serde::Deserialize;

use crate::facts::boot_units::boot_units;
use crate::facts::journald::parse_unit_ini;
use crate::facts::mounts::{fstab, live, mount_unit, norm, split_options, unit_name, Mount};
use crate::facts::units::{dropins, unit};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

mod bind;
mod shm;
mod tmpfs;

/// The `mount.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// `path` is its own mount: in the live mount table (live), or configured to be
    /// mounted at boot by /etc/fstab or an enabled mount unit (offline). A masked
    /// mount unit for the path fails either way.
    #[serde(rename = "mount.separate")]
    Separate { path: String },
    /// When `path` is a separate mount, it carries `option` (e.g. `nodev`) in the live
    /// mount table (live) and in its fstab entry or mount unit. Not a separate mount:
    /// not applicable.
    #[serde(rename = "mount.option")]
    HasOption { path: String, option: String },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Separate { path } => separate(facts, &norm(path)),
            Check::HasOption { path, option } => has_option(facts, &norm(path), option),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

/// What is configured to mount `path` at boot.
#[derive(Debug, Clone)]
enum Persisted {
    /// An fstab entry (the last one for the path).
    Fstab(Mount),
    /// An enabled mount unit, with its effective options.
    Unit(Mount),
    /// /dev/shm, mounted by the init system itself: the options it ends up with at
    /// boot and how ([`shm::at_boot`]).
    Shm {
        options: Vec<String>,
        evidence: Vec<String>,
    },
    /// A tmpfs configured at boot (by fstab or a unit) with an option whose fate
    /// cannot be told offline: the mount may fail. Not counted as separate; its
    /// options are judged as written. The reason, for evidence.
    Doubtful {
        mount: Mount,
        from_unit: bool,
        why: String,
    },
    /// The mount unit is masked: nothing mounts the path at boot.
    Masked(String),
    /// Nothing: the reasons, for evidence.
    Nothing(Vec<String>),
}

impl Persisted {
    fn options(&self) -> Option<&[String]> {
        match self {
            Persisted::Fstab(m) | Persisted::Unit(m) | Persisted::Doubtful { mount: m, .. } => {
                Some(&m.options)
            }
            Persisted::Shm { options, .. } => Some(options),
            _ => None,
        }
    }
    fn mounts_at_boot(&self) -> bool {
        self.options().is_some() && !matches!(self, Persisted::Doubtful { .. })
    }
    fn describe(&self, path: &str) -> Vec<String> {
        match self {
            Persisted::Fstab(m) => vec![format!("configured at boot: {}", m.describe())],
            Persisted::Unit(m) => vec![format!(
                "configured at boot by mount unit: {}",
                m.describe()
            )],
            Persisted::Shm { evidence, .. } => evidence.clone(),
            Persisted::Doubtful {
                mount,
                from_unit,
                why,
            } => vec![format!(
                "configured at boot{}: {}; {why}",
                if *from_unit { " by mount unit" } else { "" },
                mount.describe()
            )],
            Persisted::Masked(d) => vec![format!("{d}: {path} is not mounted at boot")],
            Persisted::Nothing(r) => r.clone(),
        }
    }
}

fn persisted(facts: &Facts, path: &str) -> Result<Persisted, FactError> {
    persisted_at(facts, path, false)
}

/// What is configured to mount `path` at boot; `nested` when asked for the source of
/// a bind mount ([`bind`]), whose own bind source is not followed.
fn persisted_at(facts: &Facts, path: &str, nested: bool) -> Result<Persisted, FactError> {
    let name = format!("{}.mount", unit_name(path));
    if path == "/dev/shm" {
        return shm::at_boot(facts);
    }
    let u = unit(facts, &name)?;
    let mut notes = Vec::new();
    let entries = fstab(facts)?;
    let in_fstab = entries
        .iter()
        .any(|m| norm(&m.target) == path && m.fstype != "swap");
    // systemd's unit directories in order: /etc, /run, then the generator's
    // (/run/systemd/generator), then /usr/local/lib, /lib and /usr/lib. A unit file
    // in /etc or /run overrides the unit the fstab generator writes; one below it is
    // overridden by it, a mask too. On a booted system the generator's own output is
    // in /run/systemd/generator: that is the fstab entry, not an override.
    let overrides = |u: &crate::facts::units::UnitState| {
        u.path.as_deref().is_some_and(|p| {
            p.starts_with("/etc/")
                || (p.starts_with("/run/") && !p.starts_with("/run/systemd/generator"))
        })
    };
    if u.masked && (overrides(&u) || !in_fstab) {
        return Ok(Persisted::Masked(u.describe()));
    }
    if u.masked {
        notes.push(format!(
            "{}; the unit systemd-fstab-generator writes from /etc/fstab has precedence over it",
            u.describe()
        ));
    }
    // systemd-fstab-generator writes one unit per mount point, from the first entry:
    // for a later one the unit file already exists and the entry is ignored. A
    // `noauto` first entry still makes the unit, without pulling it in at boot.
    let mut named = entries
        .iter()
        .filter(|m| norm(&m.target) == path && m.fstype != "swap");
    let first = named.next().cloned();
    for m in named {
        notes.push(format!(
            "{} is ignored: systemd-fstab-generator keeps the first entry for {path}",
            m.describe()
        ));
    }
    let fs_entry = match &first {
        Some(m) if noauto(&m.options) => {
            notes.push(format!("{} has noauto: not mounted at boot", m.describe()));
            None
        }
        other => other.clone(),
    };
    // The unit systemd loads: a unit file in /etc or /run, else the generator's from
    // the first fstab entry, else a unit file of lower precedence. It mounts at boot
    // when the generator pulls it in (an entry without noauto) or it is enabled.
    let unit_overrides = overrides(&u);
    // Not enabled nor pulled in by the generator, a unit that exists may still be
    // pulled in by the boot transaction (Debian's basic.target wants tmp.mount).
    let exists = first.is_some() || (u.exists() && !u.masked);
    let pulled = if fs_entry.is_none() && !u.starts_at_boot() && exists {
        boot_units(facts)?.pulls_mount(&name, path)
    } else {
        None
    };
    if fs_entry.is_none() && !u.starts_at_boot() && pulled.is_none() {
        if u.exists() && !u.masked {
            notes.push(u.describe());
        }
        notes.push(format!(
            "no /etc/fstab entry and no enabled {name} unit mounts {path} at boot"
        ));
        return Ok(Persisted::Nothing(notes));
    }
    let generated = if unit_overrides { None } else { first };
    let (mut m, from_unit) = match generated {
        Some(m) => (m, false),
        None => match mount_unit(facts, path)? {
            Some(m) => (m, true),
            None => return Ok(Persisted::Nothing(notes)),
        },
    };
    if let Some(why) = &pulled {
        m.origin = format!("{} ({why})", m.origin);
    }
    // Whether the options are systemd's (a unit file or drop-in), not fstab's.
    let mut unit_options = from_unit;
    // Drop-ins apply to the unit whichever file it comes from, read as systemd reads
    // unit files: the last What=, Type= and Options= win, an empty Options= clears.
    for (p, text) in dropins(facts, &name)? {
        for s in parse_unit_ini(&text, &p, "Mount") {
            match s.key.as_str() {
                "Options" => {
                    m.options = split_options(&s.value);
                    m.origin = format!("{} (Options from {})", m.origin, s.source);
                    unit_options = true;
                }
                "What" => m.source = s.value,
                "Type" => {
                    m.origin = format!("{} (Type from {})", m.origin, s.source);
                    m.fstype = s.value;
                }
                _ => {}
            }
        }
    }
    // A bind mount: the kernel reads neither the type nor file system options.
    if bind::is_bind(&m.options) {
        return Ok(match bind::judge(facts, &m, path, nested)? {
            bind::Bind::Mounts(how) => {
                m.origin = format!("{}, {how}", m.origin);
                if from_unit {
                    Persisted::Unit(m)
                } else {
                    Persisted::Fstab(m)
                }
            }
            bind::Bind::Fails(why) => {
                notes.push(format!("{}: {why}", m.describe()));
                Persisted::Nothing(notes)
            }
            bind::Bind::Doubt(why) => Persisted::Doubtful {
                mount: m,
                from_unit,
                why,
            },
        });
    }
    if m.fstype != "tmpfs" && m.fstype.eq_ignore_ascii_case("tmpfs") {
        notes.push(format!(
            "{}: the kernel knows no file system type `{}` (names are in lower case), so the mount fails at boot and {path} stays on the file system below it",
            m.describe(),
            m.fstype
        ));
        return Ok(Persisted::Nothing(notes));
    }
    if m.fstype == "tmpfs" {
        // A unit's Options= go through systemd's specifiers first: `%%` is `%`.
        let given: Vec<String> = if unit_options {
            m.options.iter().map(|o| o.replace("%%", "%")).collect()
        } else {
            m.options.clone()
        };
        match tmpfs::doubt(&given, tmpfs::Mounting::Fresh) {
            Some((bad, tmpfs::Verdict::Refuses)) => {
                notes.push(format!(
                    "{}: tmpfs refuses `{bad}`, so the mount fails at boot and {path} stays on the file system below it",
                    m.describe()
                ));
                return Ok(Persisted::Nothing(notes));
            }
            Some((odd, _)) => {
                let why = format!("whether the kernel takes `{odd}` for a tmpfs mount cannot be told offline: if not, the mount fails at boot and {path} stays on the file system below it");
                return Ok(Persisted::Doubtful {
                    mount: m,
                    from_unit,
                    why,
                });
            }
            None => {}
        }
    }
    Ok(if from_unit {
        Persisted::Unit(m)
    } else {
        Persisted::Fstab(m)
    })
}

/// Whether fstab options leave the entry out of boot: the last of `noauto` and
/// `auto` wins, as systemd-fstab-generator reads them.
fn noauto(opts: &[String]) -> bool {
    opts.iter()
        .rev()
        .find(|o| *o == "noauto" || *o == "auto")
        .is_some_and(|o| o == "noauto")
}

/// The live mount of `path` (the last one: later mounts cover earlier ones).
fn live_mount(facts: &Facts, path: &str) -> Result<Option<Mount>, FactError> {
    let table = live(facts)?;
    Ok(table
        .iter()
        .rev()
        .find(|m| norm(&m.target) == path)
        .cloned())
}

fn separate(facts: &Facts, path: &str) -> Result<Outcome, FactError> {
    let p = persisted(facts, path)?;
    let mut ev = Vec::new();
    let masked = matches!(p, Persisted::Masked(_));
    if facts.is_live() {
        match live_mount(facts, path)? {
            Some(m) => ev.push(format!("{path} is mounted: {}", m.describe())),
            None => {
                ev.push(format!(
                    "{path} is not a separate mount (not in the live mount table)"
                ));
                ev.extend(p.describe(path));
                return Ok(Outcome::new(Status::Fail, ev));
            }
        }
        ev.extend(p.describe(path));
        return Ok(Outcome::new(
            if masked { Status::Fail } else { Status::Pass },
            ev,
        ));
    }
    ev.extend(p.describe(path));
    ev.push("runtime mount table not examined: offline root".into());
    Ok(Outcome::new(
        if p.mounts_at_boot() {
            Status::Pass
        } else {
            Status::Fail
        },
        ev,
    ))
}

/// What the mount checks conclude about `path` at boot (offline reading): whether it
/// is mounted at boot as its own mount, the options it is mounted with, and why. For
/// `rampart-agent facts mounts`, which the differential tests compare with
/// systemd-fstab-generator and the kernel.
#[derive(Debug, Clone)]
pub struct BootMount {
    pub separate: bool,
    pub options: Option<Vec<String>>,
    pub evidence: Vec<String>,
}

/// The boot view of `path` (see [`BootMount`]).
pub fn boot_mount(facts: &Facts, path: &str) -> Result<BootMount, FactError> {
    let path = norm(path);
    let p = persisted(facts, &path)?;
    Ok(BootMount {
        separate: p.mounts_at_boot(),
        options: p.options().map(<[String]>::to_vec),
        evidence: p.describe(&path),
    })
}

/// Whether mount options `opts` (applied left to right, as mount(8) does) end up
/// setting `option` (`nodev`, `nosuid`, `noexec`): the last of an option and its
/// opposite wins, `defaults` clears nothing, and `user`/`users` (all three) and
/// `owner`/`group` (nosuid, nodev) set them until a later option clears them, for
/// root too — what util-linux 2.38 and the kernel do (the differential test mounts
/// each options string it generates and reads the flags back).
pub fn option_in_effect(opts: &[String], option: &str) -> bool {
    let opposite = option.strip_prefix("no");
    let mut on = false;
    for o in opts {
        let o = o.trim();
        if o == option {
            on = true;
        } else if Some(o) == opposite {
            on = false;
        } else if (matches!(o, "user" | "users") && matches!(option, "nodev" | "nosuid" | "noexec"))
            || (matches!(o, "owner" | "group") && matches!(option, "nodev" | "nosuid"))
        {
            on = true;
        }
    }
    on
}

fn has_option(facts: &Facts, path: &str, option: &str) -> Result<Outcome, FactError> {
    let p = persisted(facts, path)?;
    let mut ev = Vec::new();
    let mut failures = Vec::new();
    if facts.is_live() {
        let Some(m) = live_mount(facts, path)? else {
            return Ok(Outcome::not_applicable(format!(
                "{path} is not a separate mount (not in the live mount table); the option rule does not apply"
            )));
        };
        if m.has_option(option) {
            ev.push(format!(
                "{option} is set on the live mount: {}",
                m.describe()
            ));
        } else {
            failures.push(format!(
                "{option} is missing from the live mount: {}",
                m.describe()
            ));
        }
    } else if p.options().is_none() {
        let mut ev = vec![format!(
            "{path} is not a separate mount at boot; the option rule does not apply"
        )];
        ev.extend(p.describe(path));
        return Ok(Outcome::new(Status::NotApplicable, ev));
    }
    match (&p, p.options()) {
        (_, Some(opts)) if option_in_effect(opts, option) => ev.extend(
            p.describe(path)
                .into_iter()
                .map(|l| format!("{option} is configured: {l}")),
        ),
        (_, Some(_)) => failures.extend(
            p.describe(path)
                .into_iter()
                .map(|l| format!("{option} is not configured: {l}")),
        ),
        (Persisted::Masked(_), None) => failures.extend(p.describe(path)),
        (_, None) => {
            ev.extend(p.describe(path));
            ev.push(format!(
                "nothing persisted to judge for {path}; only the live mount was judged"
            ));
        }
    }
    if !facts.is_live() {
        ev.push("runtime mount table not examined: offline root".into());
    }
    Ok(Outcome::from_findings(failures, ev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn options_apply_left_to_right() {
        assert!(option_in_effect(&v("defaults,nodev"), "nodev"));
        // mount(8) maps `defaults` to no flag at all: it clears none.
        assert!(option_in_effect(&v("nodev,defaults"), "nodev"));
        assert!(!option_in_effect(&v("nodev,dev"), "nodev"));
        assert!(option_in_effect(&v("rw,user"), "noexec"));
        assert!(!option_in_effect(&v("rw,user,exec"), "noexec"));
        assert!(option_in_effect(&v("owner"), "nosuid"));
        assert!(!option_in_effect(&v("owner"), "noexec"));
        assert!(!option_in_effect(&v("rw,relatime"), "nosuid"));
    }
}
