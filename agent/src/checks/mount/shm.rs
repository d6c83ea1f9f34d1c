//! /dev/shm at boot. systemd mounts it itself, first thing (tmpfs, nosuid, nodev),
//! whatever fstab or a `dev-shm.mount` unit says — a unit for a file system already
//! mounted is not mounted again, and a mask does not stop it; the fstab generator
//! skips it. Then systemd-remount-fs runs `mount -o remount /dev/shm`, and mount(8)
//! takes the options of the first fstab entry naming it, whatever its type and
//! `noauto`. A remount sets the flags its options give and clears the others; one the
//! kernel refuses changes nothing, and a masked systemd-remount-fs.service does not
//! run. What systemd 252, util-linux 2.38 and the kernel do (the differential `shm`
//! family runs the root's own systemd-remount-fs).
//!
//! Whether the kernel takes a remount depends on each option: the flags and the
//! options mount(8) keeps for itself always pass; a known flag in another case
//! (`NoExec`), `noswap` and quotas (refused on a remount) always fail; tmpfs's own
//! options pass with a value it reads. For anything else the agent cannot tell, and
//! judges with the flags both outcomes give: those the entry sets that systemd had set.

use super::{norm, Persisted};
use crate::facts::mounts::fstab;
use crate::facts::units::unit;
use crate::facts::{FactError, Facts};

/// The options systemd mounts /dev/shm with.
const INIT: [&str; 2] = ["nosuid", "nodev"];

/// What a remount does with one option.
#[derive(Debug, PartialEq)]
enum Remount {
    Takes,
    Refuses,
    Unknown,
}

/// The flags and mount(8)'s own options: a remount takes them.
const WORDS: &[&str] = &[
    "",
    "defaults",
    "rw",
    "ro",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "nousers",
    "owner",
    "noowner",
    "group",
    "nogroup",
    "nofail",
    "_netdev",
    "sync",
    "async",
    "dirsync",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
    "iversion",
    "noiversion",
    "silent",
    "loud",
    "remount",
    "bind",
    "rbind",
    "loop",
    "symfollow",
    "nosymfollow",
    "inode32",
    "inode64",
];

/// Option names mount(8) keeps for itself, with any value.
const OWN_KEYS: &[&str] = &["comment=", "x-", "X-", "user=", "helper=", "uhelper="];

fn remount(opt: &str) -> Remount {
    if WORDS.contains(&opt) || OWN_KEYS.iter().any(|k| opt.starts_with(k)) {
        return Remount::Takes;
    }
    let known_in_other_case = WORDS.iter().any(|w| w.eq_ignore_ascii_case(opt));
    if known_in_other_case || matches!(opt, "noswap" | "quota" | "usrquota" | "grpquota") {
        return Remount::Refuses;
    }
    let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
    let size = |v: &str| {
        let digits = v.trim_end_matches(|c: char| "kKmMgGtTpPeE".contains(c));
        v.len() - digits.len() <= 1
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let reads = match key {
        "size" => {
            size(value)
                || value
                    .strip_suffix('%')
                    .is_some_and(|p| size(p) && p == p.trim_end_matches(char::is_alphabetic))
        }
        "nr_blocks" | "nr_inodes" => size(value),
        "mode" => !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b)),
        "uid" | "gid" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "huge" => matches!(value, "never" | "always" | "within_size" | "advise"),
        _ => false,
    };
    if reads {
        Remount::Takes
    } else {
        Remount::Unknown
    }
}

/// /dev/shm's options after boot, with the evidence.
pub(super) fn at_boot(facts: &Facts) -> Result<Persisted, FactError> {
    let init: Vec<String> = INIT.iter().map(|s| s.to_string()).collect();
    let mut evidence = Vec::new();
    let u = unit(facts, "dev-shm.mount")?;
    if u.exists() {
        evidence.push(format!(
            "{}: not applied, systemd mounts /dev/shm itself before units",
            u.describe()
        ));
    }
    let entries = fstab(facts)?;
    let Some(first) = entries.iter().find(|m| norm(&m.target) == "/dev/shm") else {
        evidence.insert(
            0,
            format!(
                "no /etc/fstab entry for /dev/shm: the init system mounts it at boot as tmpfs ({})",
                INIT.join(",")
            ),
        );
        return Ok(Persisted::Shm {
            options: init,
            evidence,
        });
    };
    let remount_fs = unit(facts, "systemd-remount-fs.service")?;
    if remount_fs.masked {
        evidence.insert(
            0,
            format!(
                "{}: {} is masked, so nothing remounts /dev/shm: the init system's options stay ({})",
                first.describe(),
                remount_fs.describe(),
                INIT.join(",")
            ),
        );
        return Ok(Persisted::Shm {
            options: init,
            evidence,
        });
    }
    let verdicts: Vec<(&String, Remount)> = first.options.iter().map(|o| (o, remount(o))).collect();
    let (options, how) = if let Some((bad, _)) =
        verdicts.iter().find(|(_, r)| *r == Remount::Refuses)
    {
        (
            init,
            format!(
                "{}: tmpfs refuses `{bad}`, so systemd-remount-fs's remount of /dev/shm fails and the init system's options stay ({})",
                first.describe(),
                INIT.join(",")
            ),
        )
    } else if let Some((odd, _)) = verdicts.iter().find(|(_, r)| *r == Remount::Unknown) {
        // Both outcomes: the entry's flags, or systemd's. Only a flag set in both is.
        let both: Vec<String> = INIT
            .iter()
            .filter(|f| super::option_in_effect(&first.options, f))
            .map(|f| f.to_string())
            .collect();
        (
            both.clone(),
            format!(
                "{}: whether a remount of tmpfs takes `{odd}` cannot be told offline; judged by the flags set either way ({})",
                first.describe(),
                if both.is_empty() { "none".to_string() } else { both.join(",") }
            ),
        )
    } else {
        (
            first.options.clone(),
            format!(
                "configured at boot: {}; the init system mounts /dev/shm itself and systemd-remount-fs remounts it with the options of the first fstab entry naming it (noauto and the type play no part): the flags they give are set, the others cleared",
                first.describe()
            ),
        )
    };
    evidence.insert(0, how);
    Ok(Persisted::Shm { options, evidence })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_remount_of_tmpfs_takes() {
        for o in [
            "nodev",
            "noexec",
            "nogroup",
            "user=alice",
            "x-systemd.after=x",
            "size=2G",
            "size=50%",
            "mode=1777",
            "huge=never",
            "nr_inodes=10k",
        ] {
            assert_eq!(remount(o), Remount::Takes, "{o}");
        }
        for o in ["NoExec", "NODEV", "Defaults", "noswap", "quota"] {
            assert_eq!(remount(o), Remount::Refuses, "{o}");
        }
        for o in [
            "size=2GB",
            "mode=abc",
            "mpol=bind",
            "foo",
            "size=",
            "huge=maybe",
        ] {
            assert_eq!(remount(o), Remount::Unknown, "{o}");
        }
    }
}
