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
//! With `bind` or `rbind` among the options, mount(8) may make it a bind remount
//! (util-linux 2.38 does for `rbind` or a repeated `bind`), which sets the flags the
//! options give and passes tmpfs none of its own, so a refusal is judged the same way.

use super::tmpfs::{doubt, Mounting, Verdict};
use super::{norm, Persisted};
use crate::facts::mounts::fstab;
use crate::facts::units::unit;
use crate::facts::{FactError, Facts};

/// The options systemd mounts /dev/shm with.
const INIT: [&str; 2] = ["nosuid", "nodev"];

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
    // With `bind` among the options, mount(8) may remount /dev/shm as a bind mount,
    // which passes tmpfs none of its options: a refusal may not happen.
    let bind = first.options.iter().any(|o| o == "bind" || o == "rbind");
    let (options, how) = match doubt(&first.options, Mounting::Remount) {
        Some((bad, Verdict::Refuses)) if !bind => (
            init,
            format!(
                "{}: tmpfs refuses `{bad}`, so systemd-remount-fs's remount of /dev/shm fails and the init system's options stay ({})",
                first.describe(),
                INIT.join(",")
            ),
        ),
        Some((odd, _)) => {
        // Both outcomes: the entry's flags, or systemd's. Only a flag set in both is.
        let both: Vec<String> = INIT
            .iter()
            .filter(|f| super::option_in_effect(&first.options, f))
            .map(|f| f.to_string())
            .collect();
        (
            both.clone(),
            format!(
                "{}: {}; judged by the flags set either way ({})",
                first.describe(),
                if bind {
                    format!("`bind` may make it a bind remount, which passes tmpfs nothing of `{odd}`: whether the kernel takes the remount cannot be told offline")
                } else {
                    format!("whether a remount of tmpfs takes `{odd}` cannot be told offline")
                },
                if both.is_empty() {
                    "none".to_string()
                } else {
                    both.join(",")
                }
            ),
        )
        }
        None => (
            first.options.clone(),
            format!(
                "configured at boot: {}; the init system mounts /dev/shm itself and systemd-remount-fs remounts it with the options of the first fstab entry naming it (noauto and the type play no part): the flags they give are set, the others cleared",
                first.describe()
            ),
        ),
    };
    evidence.insert(0, how);
    Ok(Persisted::Shm { options, evidence })
}
