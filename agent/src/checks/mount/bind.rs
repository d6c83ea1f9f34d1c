//! Bind mounts at boot (`bind` or `rbind` among a mount's options). The kernel
//! ignores the type and every file system option on a bind: the mount succeeds when
//! its source is a directory at the time systemd mounts it, and fails otherwise (a
//! missing path, a file, a device or a tag). systemd runs mount(8) from `/`, which
//! reads a relative source from there and follows links. systemd orders the bind
//! after the mounts of its source's path (RequiresMountsFor=): a source on a file
//! system mounted at boot is only judged when it is the root of a mount certain to
//! be made; any other directory there lies on a file system the offline scan does
//! not see. The flags: util-linux 2.38 remounts the bind with the flags its options
//! give when they give any of nodev, nosuid, noexec, ro, noatime, nodiratime,
//! relatime or nosymfollow (the others cleared); else the bind keeps the flags of
//! the mount its source is on, which the agent does not credit. Reading the options
//! as written gives both (what the root's own mount(8) does, checked by the mounts
//! family of the differential tests and by hand with util-linux 2.38.1).

use super::{norm, persisted_at, Persisted};
use crate::facts::mounts::{fstab, unit_name, Mount};
use crate::facts::units::unit;
use crate::facts::{FactError, Facts, FileKind};

/// What a bind mount does at boot.
pub(super) enum Bind {
    /// It is made: the source's description.
    Mounts(String),
    /// It fails: why.
    Fails(String),
    /// Whether it is made cannot be told offline: why.
    Doubt(String),
}

/// Whether mount(8) makes a mount with these options a bind mount.
pub(super) fn is_bind(options: &[String]) -> bool {
    options.iter().any(|o| o == "bind" || o == "rbind")
}

/// File systems the init system mounts itself before any unit: what they hold at
/// boot is not in the root.
const API_DIRS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// Whether a mount point other than `/` and `path` is configured for `dir`: an fstab
/// entry (any, `noauto` too: RequiresMountsFor= pulls it in) or a mount unit file
/// (masked too).
fn configured(facts: &Facts, dir: &str, path: &str) -> Result<bool, FactError> {
    if dir == "/" || dir == path {
        return Ok(false);
    }
    let in_fstab = fstab(facts)?
        .iter()
        .any(|m| norm(&m.target) == dir && m.fstype != "swap");
    Ok(in_fstab || unit(facts, &format!("{}.mount", unit_name(dir)))?.exists())
}

/// The longest of `dir` and its parents that is configured as a mount point.
fn mount_of(facts: &Facts, dir: &str, path: &str) -> Result<Option<String>, FactError> {
    let mut d = dir.to_string();
    loop {
        if configured(facts, &d, path)? {
            return Ok(Some(d));
        }
        match d.rfind('/') {
            Some(0) | None => return Ok(None),
            Some(i) => d.truncate(i),
        }
    }
}

/// Judges the bind mount `m` of `path` (`nested`: asked for the source of another
/// bind, which is not followed further).
pub(super) fn judge(facts: &Facts, m: &Mount, path: &str, nested: bool) -> Result<Bind, FactError> {
    if m.source.is_empty() {
        return Ok(Bind::Fails(
            "a bind mount with no source: systemd refuses the unit".into(),
        ));
    }
    let source = norm(&m.source);
    if let Some(api) = API_DIRS
        .iter()
        .find(|d| source == **d || source.starts_with(&format!("{d}/")))
    {
        return Ok(Bind::Doubt(format!(
            "{path} is a bind mount of {source}, on {api}, which the init system mounts at boot: whether the source is a directory then cannot be told offline"
        )));
    }
    let meta = facts.stat(&source)?;
    let resolved = meta.as_ref().map(|m| norm(&m.path));
    // The mount the source is on: by the path as written (systemd's ordering) or as
    // mount(8) resolves it.
    let mut on = mount_of(facts, &source, path)?;
    if let Some(r) = &resolved {
        if let Some(other) = mount_of(facts, r, path)? {
            if on.as_ref().is_none_or(|o| other.len() > o.len()) {
                on = Some(other);
            }
        }
    }
    if let Some(mount) = on {
        let root_of_it = source == mount || resolved.as_deref() == Some(mount.as_str());
        if root_of_it && !nested {
            if let p @ (Persisted::Fstab(_) | Persisted::Unit(_)) =
                persisted_at(facts, &mount, true)?
            {
                let how = p.describe(&mount).join("; ");
                return Ok(Bind::Mounts(format!(
                    "a bind mount of {mount}, itself mounted at boot ({how})"
                )));
            }
        }
        return Ok(Bind::Doubt(format!(
            "{path} is a bind mount of {source}, on {mount}, a mount point configured at boot: whether the source is a directory when the bind is made cannot be told offline"
        )));
    }
    match meta {
        Some(meta) if meta.kind == FileKind::Dir => Ok(Bind::Mounts(format!(
            "a bind mount of {source}, a directory in the root{}",
            match &resolved {
                Some(r) if *r != source => format!(" (through links, {r})"),
                _ => String::new(),
            }
        ))),
        _ => Ok(Bind::Fails(format!(
            "{source} is not a directory in the root, so the bind mount fails at boot and {path} stays on the file system below it"
        ))),
    }
}
