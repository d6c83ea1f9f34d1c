//! systemd-coredump as `sysctl.systemd_coredump` sees it: coredump.conf and its
//! drop-ins read as systemd-coredump reads them, and the settings it applies.

use super::CoredumpSetting;
use crate::facts::journald::{parse_size, parse_unit_ini};
use crate::facts::kv;
use crate::facts::packages::packages;
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

pub(super) fn systemd_coredump(
    facts: &Facts,
    package: &str,
    only: &[CoredumpSetting],
) -> Result<Outcome, FactError> {
    let pk = packages(facts)?;
    if !pk.is_present(package) {
        return Ok(Outcome::not_applicable(pk.describe(package)));
    }
    let settings = coredump_settings(facts)?;
    let mut failures = Vec::new();
    let mut found = vec![pk.describe(package)];
    for (which, key, default, want, ok) in [
        (
            CoredumpSetting::Storage,
            "Storage",
            "external",
            "none",
            (|v: &str| v == "none") as fn(&str) -> bool,
        ),
        (
            CoredumpSetting::ProcessSizeMax,
            "ProcessSizeMax",
            "2G",
            "0",
            size_is_zero,
        ),
    ] {
        if !only.is_empty() && !only.contains(&which) {
            continue;
        }
        let (effective, ignored) = coredump_effective(&settings, key);
        match effective {
            Some(s) if ok(&s.value) => found.push(s.describe()),
            Some(s) => failures.push(format!("{} (expected {want})", s.describe())),
            None => failures.push(format!(
                "{key} is not set in coredump.conf; default {default}"
            )),
        }
        found.extend(ignored);
    }
    Ok(Outcome::from_findings(failures, found))
}

/// coredump.conf's `[Coredump]` settings in systemd-coredump's reading order.
pub fn coredump_settings(facts: &Facts) -> Result<Vec<kv::Setting>, FactError> {
    let mut settings = Vec::new();
    for (path, text) in kv::systemd_daemon_files(facts, "coredump.conf")? {
        settings.extend(parse_unit_ini(&text, &path, "Coredump"));
    }
    Ok(settings)
}

/// The assignment of `key` that systemd-coredump applies: the last one it accepts
/// (`None`: its default), and the later ones it ignores as evidence. `Storage`
/// takes `none`, `external` or `journal`, `ProcessSizeMax` a size; an empty or
/// other value is ignored (the previous one stays).
pub fn coredump_effective<'a>(
    settings: &'a [kv::Setting],
    key: &str,
) -> (Option<&'a kv::Setting>, Vec<String>) {
    let valid = |v: &str| match key {
        "Storage" => ["none", "external", "journal"].contains(&v),
        "ProcessSizeMax" => parse_size(v).is_some(),
        _ => !v.is_empty(),
    };
    let mut effective = None;
    let mut ignored = Vec::new();
    for s in settings.iter().filter(|s| s.key == key) {
        if valid(&s.value) {
            effective = Some(s);
        } else {
            ignored.push(format!(
                "{}: {key}={} is not a valid value; systemd-coredump ignores it",
                s.source, s.value
            ));
        }
    }
    (effective, ignored)
}

/// Whether a size as systemd's `parse_size` reads it (a number, a fraction allowed, then
/// an optional B, K, M, G, T, P or E) is zero: `0.5G` is 512M, not 0.
fn size_is_zero(v: &str) -> bool {
    parse_size(v) == Some(0)
}
