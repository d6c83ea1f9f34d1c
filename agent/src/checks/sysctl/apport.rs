//! apport, Ubuntu's crash handler, as the `sysctl.apport_*` checks see it: whether it
//! is installed and switched on, whether its service starts at boot, and whether it
//! raises `fs.suid_dumpable` to 2 when it does.

use crate::facts::kv;
use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

const APPORT_DEFAULTS: &str = "/etc/default/apport";
const APPORT_INIT: &str = "/etc/init.d/apport";

/// What is known about apport on the root.
#[derive(Debug, Clone)]
pub struct Apport {
    pub installed: bool,
    pub package: String,
    /// The effective `enabled=` of /etc/default/apport is 0.
    pub switched_off: bool,
    pub setting: String,
    /// apport.service starts at boot (native unit enabled, or rc links of the init
    /// script), and is not masked.
    pub service_enabled: bool,
    /// Live: the service has run in this boot.
    pub service_active: Option<bool>,
    /// The service runs /etc/init.d/apport, which honours `enabled=0`.
    pub honours_setting: bool,
    pub service: Vec<String>,
    /// Live: kernel.core_pattern, when it pipes crashes to apport.
    pub core_pattern: Option<String>,
}

/// The last `enabled=` of /etc/default/apport as the init script sources it.
fn apport_setting(facts: &Facts) -> Result<(bool, String), FactError> {
    let Some(text) = facts.read(APPORT_DEFAULTS)? else {
        return Ok((
            false,
            format!("{APPORT_DEFAULTS} does not exist: apport treats that as enabled"),
        ));
    };
    let settings = kv::parse(&text, APPORT_DEFAULTS, kv::Separator::Equals);
    Ok(match kv::last(&settings, "enabled", false) {
        Some(s) => (s.value.trim() == "0", s.describe()),
        None => (
            false,
            format!("{APPORT_DEFAULTS} has no enabled= line: apport's default is enabled"),
        ),
    })
}

/// Reads apport's package, setting, service and (live) crash handler.
pub fn apport(facts: &Facts) -> Result<Apport, FactError> {
    let pk = packages(facts)?;
    let (switched_off, setting) = apport_setting(facts)?;
    let u = unit(facts, "apport.service")?;
    let mut service = Vec::new();
    let native = u.path.is_some() && !u.masked && !u.sysv;
    let (service_enabled, honours_setting) = if u.masked {
        service.push(u.describe());
        (false, true)
    } else if native {
        let path = u.path.clone().unwrap_or_default();
        let text = facts.read(&path)?.unwrap_or_default();
        let runs_init = text
            .lines()
            .any(|l| l.trim_start().starts_with("ExecStart") && l.contains(APPORT_INIT));
        service.push(u.describe());
        (u.starts_at_boot(), runs_init)
    } else if facts.stat(APPORT_INIT)?.is_some() {
        // No unit file: systemd generates apport.service from the init script and
        // starts it when an rc link S??apport exists.
        let mut links = Vec::new();
        for level in ["2", "3", "4", "5"] {
            let dir = format!("/etc/rc{level}.d");
            for name in facts.list_dir(&dir)? {
                let b = name.as_bytes();
                let is_start = b.len() == 9
                    && b[0] == b'S'
                    && b[1].is_ascii_digit()
                    && b[2].is_ascii_digit()
                    && &b[3..] == b"apport";
                if is_start {
                    links.push(format!("{dir}/{name}"));
                }
            }
        }
        service.push(if links.is_empty() {
            format!("{APPORT_INIT} exists with no start links in /etc/rc[2-5].d: apport.service is not enabled")
        } else {
            format!(
                "{APPORT_INIT} is started at boot through {} (apport.service generated from the init script)",
                links.join(", ")
            )
        });
        (!links.is_empty(), true)
    } else {
        service.push(u.describe());
        (false, true)
    };
    let mut core_pattern = None;
    if facts.is_live() {
        if let Some(p) = facts.read_runtime("/proc/sys/kernel/core_pattern")? {
            let p = p.trim().to_string();
            if p.starts_with('|') && p.contains("apport") {
                core_pattern = Some(p);
            }
        }
    }
    Ok(Apport {
        // Its files may be on disk (dpkg's unpacked, ...): its service may start.
        installed: pk.is_present("apport"),
        package: pk.describe("apport"),
        switched_off,
        setting,
        service_enabled,
        service_active: if u.masked { Some(false) } else { u.active },
        honours_setting,
        service,
        core_pattern,
    })
}

pub(super) fn apport_disabled(facts: &Facts) -> Result<Outcome, FactError> {
    let a = apport(facts)?;
    if !a.installed && a.core_pattern.is_none() {
        return Ok(Outcome::pass(a.package));
    }
    let mut failures = Vec::new();
    let mut found = vec![a.package.clone()];
    if a.switched_off {
        found.push(a.setting.clone());
    } else {
        failures.push(format!("{}: apport is switched on", a.setting));
    }
    let svc = a.service.join("; ");
    if a.service_enabled {
        failures.push(format!("{svc}: apport.service starts at boot"));
    } else if a.service_active == Some(true) {
        failures.push(format!("{svc}: apport.service is running"));
    } else {
        found.push(svc);
    }
    match &a.core_pattern {
        Some(p) => failures.push(format!(
            "/proc/sys/kernel/core_pattern = {p}: crashes are handed to apport now"
        )),
        None if facts.is_live() => {
            found.push("/proc/sys/kernel/core_pattern does not pipe to apport".into())
        }
        None => found.push(
            "runtime state (apport.service running, kernel.core_pattern) not examined: offline root"
                .into(),
        ),
    }
    Ok(Outcome::from_findings(failures, found))
}

pub(super) fn apport_dumpable(facts: &Facts) -> Result<Outcome, FactError> {
    let a = apport(facts)?;
    if !a.installed {
        return Ok(Outcome::pass(format!(
            "{}: nothing raises fs.suid_dumpable at start",
            a.package
        )));
    }
    let svc = a.service.join("; ");
    if !a.service_enabled {
        return Ok(Outcome::pass(format!(
            "{svc}: apport does not start at boot, so it does not set fs.suid_dumpable"
        )));
    }
    if a.honours_setting && a.switched_off {
        return Ok(Outcome::pass(format!(
            "{svc}; {}: the init script exits without touching fs.suid_dumpable",
            a.setting
        )));
    }
    let why = if a.honours_setting {
        format!("{}, so the init script", a.setting)
    } else {
        "the service runs apport --start, which does not read /etc/default/apport, and".into()
    };
    Ok(Outcome::fail(format!(
        "{svc}: {why} sets fs.suid_dumpable = 2 at boot (and pipes core dumps to apport)"
    )))
}

#[cfg(test)]
mod tests {
    use super::super::Check;
    use super::*;
    use crate::checks::test_tree as tree;
    use crate::model::Status;

    const APPORT_PKG: (&str, &str) = (
        "/var/lib/dpkg/status",
        "Package: apport\nStatus: install ok installed\nVersion: 2.20.11\n\nPackage: ufw\nStatus: install ok installed\nVersion: 0.36\n",
    );

    #[test]
    fn apport_through_the_init_script_honours_enabled() {
        let init = ("/etc/init.d/apport", "#!/bin/sh\n");
        let rc = ("/etc/rc2.d/S01apport", "../init.d/apport");
        let on = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=1\n")],
            &[rc],
        );
        let facts = Facts::new(on.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Fail);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Fail);
        let off = tree(
            &[
                APPORT_PKG,
                init,
                ("/etc/default/apport", "enabled=1\nenabled=\"0\"\n"),
            ],
            &[rc],
        );
        let facts = Facts::new(off.path(), false);
        let o = Check::ApportDisabled {}.eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(o.evidence[0].contains("S01apport"), "{:?}", o.evidence);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Pass);
        let gone = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=0\n")],
            &[],
        );
        let facts = Facts::new(gone.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
        // Odd names in the rc directories are not start links (and do not panic).
        let odd = tree(
            &[APPORT_PKG, init, ("/etc/default/apport", "enabled=0\n")],
            &[
                ("/etc/rc2.d/S1\u{e9}apport", "../init.d/apport"),
                ("/etc/rc3.d/K01apport", "../init.d/apport"),
            ],
        );
        let facts = Facts::new(odd.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
    }

    #[test]
    fn apport_native_unit_ignores_the_setting() {
        let unit = (
            "/lib/systemd/system/apport.service",
            "[Service]\nExecStart=/usr/share/apport/apport --start\n[Install]\nWantedBy=multi-user.target\n",
        );
        let wants = (
            "/etc/systemd/system/multi-user.target.wants/apport.service",
            "/lib/systemd/system/apport.service",
        );
        let t = tree(
            &[APPORT_PKG, unit, ("/etc/default/apport", "enabled=0\n")],
            &[wants],
        );
        let facts = Facts::new(t.path(), false);
        let o = Check::ApportDumpable {}.eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(o.evidence[0].contains("apport --start"));
        let masked = tree(
            &[APPORT_PKG, unit, ("/etc/default/apport", "enabled=0\n")],
            &[("/etc/systemd/system/apport.service", "/dev/null")],
        );
        let facts = Facts::new(masked.path(), false);
        assert_eq!(Check::ApportDisabled {}.eval(&facts).status, Status::Pass);
        assert_eq!(Check::ApportDumpable {}.eval(&facts).status, Status::Pass);
    }
}
