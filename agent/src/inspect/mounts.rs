//! `rampart-agent facts mounts`: each mount point as the mount checks judge it at
//! boot, offline (the same `boot_mount` and `option_in_effect` the checks use).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::facts_of;
use crate::checks::mount::{boot_mount, option_in_effect};
use crate::error::AgentError;

/// One mount point as the mount checks judge it at boot (offline reading).
#[derive(Debug, Serialize)]
pub struct MountFacts {
    /// Mounted at boot as its own mount (the `mount.separate` verdict offline).
    pub separate: bool,
    /// The options it is mounted with at boot, `null` when it is not mounted.
    pub options: Option<Vec<String>>,
    /// Whether those options leave each flag set, as `mount.option` judges them.
    pub nodev: bool,
    pub nosuid: bool,
    pub noexec: bool,
    pub evidence: Vec<String>,
}

/// The mount facts of `root` for `paths`.
pub fn mounts(root: &Path, paths: &[String]) -> Result<BTreeMap<String, MountFacts>, AgentError> {
    let facts = facts_of(root)?;
    let mut out = BTreeMap::new();
    for path in paths {
        let b = boot_mount(&facts, path)?;
        let on = |flag: &str| {
            b.options
                .as_deref()
                .is_some_and(|o| option_in_effect(o, flag))
        };
        out.insert(
            path.clone(),
            MountFacts {
                separate: b.separate,
                nodev: on("nodev"),
                nosuid: on("nosuid"),
                noexec: on("noexec"),
                options: b.options.clone(),
                evidence: b.evidence,
            },
        );
    }
    Ok(out)
}
