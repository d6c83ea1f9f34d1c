//! `sysctl.*` checks: kernel parameters (runtime and persisted) and core dump limits.
//!
//! Persisted kernel parameters are read as systemd-sysctl applies them at boot (see
//! [`crate::facts::sysctl`]): `*.conf` entries of the sysctl.d directories sorted by
//! name (an earlier directory hides, and a /dev/null link or an empty file masks,
//! the same name in a later one); /etc/sysctl.conf only through a link such as
//! procps's /etc/sysctl.d/99-sysctl.conf; for one key the last assignment wins; an
//! explicit assignment always beats a glob (`net.ipv4.conf.*.rp_filter`); a bare
//! `-key` line excludes the key from globs. `a/b/c` and `a.b.c` name the same key.
//! Evidence names the file that really sets the value (and the link it was reached
//! through), or says that no applied file sets it.
//!
//! With `ufw_sysctl`, the file ufw applies when it starts (`IPT_SYSCTL` in
//! /etc/default/ufw, normally /etc/ufw/sysctl.conf) also counts when ufw is switched
//! on: ufw-init runs `sysctl -p` on it after loading its rules, overriding what
//! systemd-sysctl set earlier in boot.
//!
//! Ubuntu's apport takes over crash handling when apport.service starts: it pipes
//! `kernel.core_pattern` to itself and sets `fs.suid_dumpable = 2`.

pub mod apport;
pub mod coredump;
pub mod limits;

use serde::Deserialize;

use crate::facts::ipv6::ipv6_disabled;
use crate::facts::sysctl::{
    after_boot, kernel_int, persisted, persisted_value, runtime, unapplied_sysctl_conf, Persisted,
};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The `sysctl.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every key in `keys` has one of the `allowed` values both at runtime
    /// (/proc/sys, live only) and in the persisted configuration. IPv6 keys
    /// (`net.ipv6.*`) are not applicable when IPv6 is disabled.
    #[serde(rename = "sysctl.value")]
    Value {
        keys: Vec<String>,
        allowed: Vec<String>,
        /// Also read the sysctl file ufw applies when it is switched on.
        #[serde(default)]
        ufw_sysctl: bool,
    },
    /// pam_limits gives every account a hard core-file size limit of 0, computed per
    /// account from limits.conf and limits.d as the module does (see [`limits`]),
    /// and no entry could raise it for an account not listed in /etc/passwd.
    #[serde(rename = "sysctl.core_limit")]
    CoreLimit {},
    /// When systemd-coredump is installed (`package`: Debian's `systemd-coredump`;
    /// RHEL and Amazon Linux ship it in `systemd`), coredump.conf (with drop-ins)
    /// sets `Storage=none` and `ProcessSizeMax=0` (or only the `settings` named).
    /// Package not installed: not applicable.
    #[serde(rename = "sysctl.systemd_coredump")]
    SystemdCoredump {
        #[serde(default = "default_coredump_package")]
        package: String,
        /// The settings judged; empty: both.
        #[serde(default)]
        settings: Vec<CoredumpSetting>,
    },
    /// apport is not installed, or it is switched off: the last `enabled=` of
    /// /etc/default/apport is 0 (apport treats a missing file or line as enabled),
    /// apport.service (native, or generated from /etc/init.d/apport) is neither
    /// enabled nor running, and (live) kernel.core_pattern does not pipe to apport.
    #[serde(rename = "sysctl.apport_disabled")]
    ApportDisabled {},
    /// apport will not raise fs.suid_dumpable to 2 at boot: not installed, or its
    /// service is not enabled, or the service runs /etc/init.d/apport (which honours
    /// `enabled=0`) and apport is switched off in /etc/default/apport.
    #[serde(rename = "sysctl.apport_dumpable")]
    ApportDumpable {},
}

fn default_coredump_package() -> String {
    "systemd-coredump".into()
}

/// A coredump.conf setting that `sysctl.systemd_coredump` can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum CoredumpSetting {
    /// `Storage=none`: crashed programs' memory is never written to disk.
    Storage,
    /// `ProcessSizeMax=0`: no core is processed at all, so no backtrace is logged.
    ProcessSizeMax,
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Value {
                keys,
                allowed,
                ufw_sysctl,
            } => values(facts, keys, allowed, *ufw_sysctl),
            Check::CoreLimit {} => limits::core_limit(facts),
            Check::SystemdCoredump { package, settings } => {
                coredump::systemd_coredump(facts, package, settings)
            }
            Check::ApportDisabled {} => apport::apport_disabled(facts),
            Check::ApportDumpable {} => apport::apport_dumpable(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

/// Whether a value is allowed: an integer allowed value is compared with what the
/// kernel takes from the value ([`kernel_int`]: `0x2` and `02` are 2, `+2` and
/// `2#c` are refused), anything else as text.
fn value_ok(value: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|a| {
        let a = a.trim();
        match a.parse::<i64>() {
            Ok(x) => kernel_int(value) == Some(x),
            Err(_) => a == value.trim(),
        }
    })
}

fn values(
    facts: &Facts,
    keys: &[String],
    allowed: &[String],
    ufw_sysctl: bool,
) -> Result<Outcome, FactError> {
    let entries = persisted(facts)?;
    let want = allowed.join(" or ");
    let mut parts = Vec::new();
    for key in keys {
        let key = key.trim();
        if key.starts_with("net.ipv6.") {
            if let Some(why) = ipv6_disabled(facts)? {
                parts.push(Outcome::not_applicable(format!("{key}: {why}")));
                continue;
            }
        }
        let mut failures = Vec::new();
        let mut found = Vec::new();
        if facts.is_live() {
            match runtime(facts, key)? {
                Some(v) if value_ok(&v, allowed) => {
                    found.push(format!("{key} = {v} at runtime (/proc/sys)"))
                }
                Some(v) => failures.push(format!(
                    "{key} = {v} at runtime (/proc/sys), expected {want}"
                )),
                None => failures.push(format!(
                    "{key} does not exist in the running kernel (/proc/sys)"
                )),
            }
        }
        let unapplied = unapplied_sysctl_conf(facts, key)?;
        let (effective, note) = if ufw_sysctl {
            after_boot(facts, &entries, key)?
        } else {
            (persisted_value(&entries, key), None)
        };
        match effective {
            Persisted::Set {
                value,
                source,
                glob,
            } => {
                let via = glob.map(|g| format!(" (through {g})")).unwrap_or_default();
                if value_ok(&value, allowed) {
                    found.push(format!("{source}: {key} = {value}{via}"));
                    found.extend(unapplied);
                } else {
                    let refused = if kernel_int(&value).is_none()
                        && allowed.iter().any(|a| a.trim().parse::<i64>().is_ok())
                    {
                        " (the kernel refuses this value at boot, so the parameter keeps its default)"
                    } else {
                        ""
                    };
                    failures.push(format!(
                        "{source}: {key} = {value}{via}, expected {want}{refused}"
                    ));
                    failures.extend(unapplied);
                }
                found.extend(note);
            }
            Persisted::Unset(why) => {
                failures.push(format!(
                    "{key} is not set in any sysctl configuration file that systemd-sysctl applies (expected {want})"
                ));
                failures.extend(why);
                failures.extend(unapplied);
            }
        }
        parts.push(Outcome::from_findings(failures, found));
    }
    if parts.is_empty() {
        return Ok(Outcome::error("no kernel parameters named by the check"));
    }
    let mut out = Outcome::all(parts);
    if !facts.is_live() && out.status != Status::NotApplicable {
        out.evidence
            .push("runtime values (/proc/sys) not examined: offline root".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::sysctl::{dotted, merge, parse_sysctl, to_slash, Entry};

    #[test]
    fn normalises_keys() {
        assert_eq!(to_slash("net.ipv4.ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(to_slash("net/ipv4/ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(to_slash("/net//ipv4/./ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(to_slash("net.ipv4..ip_forward"), "net/ipv4/ip_forward");
        assert_eq!(
            to_slash("net.ipv4.conf.eth0/100.rp_filter"),
            "net/ipv4/conf/eth0.100/rp_filter"
        );
        assert_eq!(
            dotted("net/ipv4/conf/eth0.100/rp_filter"),
            "net.ipv4.conf.eth0/100.rp_filter"
        );
    }

    fn merged(files: &[(&str, &str)]) -> Vec<Entry> {
        merge(files.iter().flat_map(|(p, t)| parse_sysctl(t, p)))
    }

    #[test]
    fn explicit_beats_glob_and_exclusions_block_globs() {
        let e = merged(&[
            (
                "/usr/lib/sysctl.d/50-default.conf",
                "net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n",
            ),
            ("/etc/sysctl.d/60-x.conf", "net.ipv4.conf.default.rp_filter=1 # strict\n"),
        ]);
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.default.rp_filter"),
            Persisted::Set { ref value, .. } if value == "1 # strict")
        );
        assert!(matches!(
            persisted_value(&e, "net.ipv4.conf.all.rp_filter"),
            Persisted::Unset(Some(_))
        ));
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.eth0.rp_filter"),
            Persisted::Set { ref value, glob: Some(_), .. } if value == "2")
        );
        let e = merged(&[(
            "/etc/sysctl.d/a.conf",
            "net.ipv4.conf.*.send_redirects = 0\n",
        )]);
        assert!(
            matches!(persisted_value(&e, "net.ipv4.conf.all.send_redirects"),
            Persisted::Set { ref value, .. } if value == "0")
        );
        assert!(matches!(
            persisted_value(&e, "net.ipv4.conf.all.x.send_redirects"),
            Persisted::Unset(None)
        ));
    }

    #[test]
    fn values_as_the_kernel_reads_them() {
        // Each checked against a kernel write in a private network namespace.
        for (v, want) in [
            ("2", Some(2)),
            (" 2 # on", Some(2)),
            ("1 2", Some(1)),
            ("-1", Some(-1)),
            ("010", Some(8)),
            ("0x10", Some(16)),
            ("02", Some(2)),
            ("2#on", None),
            ("+1", None),
            ("08", None),
            ("2x", None),
            ("", None),
            ("99999999999", None),
        ] {
            assert_eq!(kernel_int(v), want, "{v:?}");
        }
        let e = merged(&[("/a.conf", "kernel.randomize_va_space = 2 # on\n# x = 1\n")]);
        assert!(matches!(persisted_value(&e, "kernel.randomize_va_space"),
            Persisted::Set { ref value, .. } if value == "2 # on"));
        assert!(value_ok("0x2", &["2".into()]) && !value_ok("+2", &["2".into()]));
    }

    #[test]
    fn later_assignment_wins() {
        let e = merged(&[
            ("/a.conf", "kernel.randomize_va_space = 2\n"),
            ("/b.conf", "kernel/randomize_va_space=0\n"),
        ]);
        assert!(matches!(persisted_value(&e, "kernel.randomize_va_space"),
            Persisted::Set { ref value, ref source, .. } if value == "0" && source == "/b.conf:1"));
    }

    use crate::checks::test_tree as tree;

    const APPORT_PKG: (&str, &str) = (
        "/var/lib/dpkg/status",
        "Package: apport\nStatus: install ok installed\nVersion: 2.20.11\n\nPackage: ufw\nStatus: install ok installed\nVersion: 0.36\n",
    );

    #[test]
    fn ufw_sysctl_file_overrides_when_ufw_is_on() {
        let files = [
            APPORT_PKG,
            (
                "/lib/systemd/system/ufw.service",
                "[Install]\nWantedBy=multi-user.target\n",
            ),
            ("/etc/ufw/ufw.conf", "ENABLED=yes\n"),
            ("/etc/default/ufw", "IPT_SYSCTL=/etc/ufw/sysctl.conf\n"),
            ("/etc/ufw/sysctl.conf", "net/ipv4/conf/all/log_martians=0\n"),
            (
                "/etc/sysctl.d/60-net.conf",
                "net.ipv4.conf.all.log_martians = 1\n",
            ),
        ];
        let wants = (
            "/etc/systemd/system/multi-user.target.wants/ufw.service",
            "/lib/systemd/system/ufw.service",
        );
        let t = tree(&files, &[wants]);
        let facts = Facts::new(t.path(), false);
        let check = |ufw_sysctl| Check::Value {
            keys: vec!["net.ipv4.conf.all.log_martians".into()],
            allowed: vec!["1".into()],
            ufw_sysctl,
        };
        let o = check(true).eval(&facts);
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(
            o.evidence[0].starts_with("/etc/ufw/sysctl.conf:1"),
            "{:?}",
            o.evidence
        );
        assert!(o
            .evidence
            .iter()
            .any(|e| e.contains("overrides /etc/sysctl.d/60-net.conf:1")));
        assert_eq!(check(false).eval(&facts).status, Status::Pass);
        // Switched off: ufw does not apply its file.
        std::fs::write(t.path().join("etc/ufw/ufw.conf"), "ENABLED=no\n").unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(check(true).eval(&facts).status, Status::Pass);
    }
}
