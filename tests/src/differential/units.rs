//! systemd units: the root's own `systemctl is-enabled` (systemd 252, chrooted in a
//! private mount namespace, where it reads the unit files offline) judges generated
//! unit directories; the agent (`rampart-agent facts units`) must agree on whether
//! each unit exists, is masked, is an alias, is enabled or is static:
//!
//! - `masked` and `masked-runtime` are masked;
//! - `alias` is an alias (the name links to a unit file of another name);
//! - `generated` and `transient` are a generator's output or a transient unit;
//! - `enabled` and `enabled-runtime` are enabled (linked from a `.wants` or
//!   `.requires` directory of /etc or /run under its name or an [Install] alias);
//! - `static` is static (no [Install] rules; what `allow_static` rules accept);
//! - anything else but a unit systemctl cannot find is a unit that exists and is
//!   not enabled (`disabled`, `indirect`, `linked`, …);
//! - a service with no native unit file (or only a dangling link under /usr) but an
//!   init script is answered by systemd-sysv-install (`enabled` when a start link
//!   exists in /etc/rc5.d or /etc/rcS.d).
//!
//! The configurations: Debian's units of the rules (cron, ssh with its sshd alias,
//! systemd-timesyncd, nftables, apparmor) and a unit of our own, copied or rewritten
//! in /etc, /etc/systemd/system.control, /run, a generator directory and
//! /usr/local/lib, masked by /dev/null links or empty files, linked to another unit's
//! file (an alias, of another type too), enabled by `.wants`, `.requires` and
//! `.upholds` links in those directories and /usr/lib (absolute, relative, by alias,
//! dangling) or by regular files there, with [Install] sections spelled in other
//! ways, and the init scripts and their start links removed.
//!
//! The Ubuntu benchmarks' rules read units through the same reader
//! (`facts::units`), so this comparison serves every benchmark.

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};

/// The units compared.
const UNITS: &[&str] = &[
    "cron.service",
    "ssh.service",
    "sshd.service",
    "systemd-timesyncd.service",
    "nftables.service",
    "apparmor.service",
    "rampart-probe.service",
];

/// Where unit files and links are generated.
const DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/etc/systemd/system.control",
    "/run/systemd/system",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
];

/// `.wants` and `.requires` directories, under a [`DIRS`] entry.
const WANTS: &[&str] = &[
    "multi-user.target.wants",
    "multi-user.target.requires",
    "multi-user.target.upholds",
    "graphical.target.wants",
    "sysinit.target.wants",
];

/// Unit file texts (`{t}`: the target its [Install] section names).
const TEXTS: &[&str] = &[
    "[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy={t}\n",
    "[Unit]\nDescription=probe\n[Service]\nExecStart=/bin/true\n",
    "[Service]\nExecStart=/bin/true\n\n  [Install]\nWantedBy={t}\n",
    "[Service]\nExecStart=/bin/true\n[install]\nWantedBy={t}\n",
    "[Service]\nExecStart=/bin/true\n# [Install]\n",
    "[Service]\nExecStart=/bin/true\n[Install]\n",
    "[Service]\nExecStart=/bin/true\n[Install]\nAlso=cron.service\n",
    "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy={t}\n",
    "",
];

/// Link targets for a unit named `{u}`.
const TARGETS: &[&str] = &[
    "/lib/systemd/system/{u}",
    "/usr/lib/systemd/system/{u}",
    "../{u}",
    "/etc/systemd/system/{u}",
    "/nonexistent/{u}",
    "/dev/null",
    "/lib/systemd/system/cron.service",
    "/lib/systemd/system/ssh.socket",
];

/// Directories put back as they were before each configuration (copied aside as
/// `/.rampart-pristine` + the path with `/` as `-`).
const KEPT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/etc/init.d",
    "/etc/rc5.d",
    "/etc/rcS.d",
];

/// Where the copy of a [`KEPT_DIRS`] entry is kept.
fn kept_dir(dir: &str) -> String {
    format!("/.rampart-pristine{}", dir.replace('/', "-"))
}

/// `cp -a FROM TO` inside the copy.
fn cp(copy: &RootCopy, from: &str, to: &str) {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg(copy.path(from))
        .arg(copy.path(to))
        .output()
        .expect("run cp");
    assert!(out.status.success(), "cp -a {from} {to}: {out:?}");
}

/// What a path of /usr/lib held before the run.
enum Kept {
    File(Vec<u8>),
    Link(String),
    Nothing,
}

/// Builds one configuration in the copy; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy, pristine: &[(String, Kept)]) -> String {
    // Put back what the last configuration changed.
    for d in [
        "/run/systemd/system",
        "/run/systemd/generator",
        "/usr/local/lib/systemd/system",
    ] {
        copy.clear_dir(d);
    }
    copy.remove("/etc/systemd/system.control");
    for d in KEPT_DIRS {
        copy.remove(d);
        cp(copy, &kept_dir(d), d);
    }
    for (path, kept) in pristine {
        match kept {
            Kept::File(b) => copy.write(path, &String::from_utf8_lossy(b)),
            Kept::Link(t) => copy.link(path, t),
            Kept::Nothing => copy.remove(path),
        }
    }
    let mut desc = String::new();
    for _ in 0..1 + rng.below(5) {
        let unit = *rng.pick(UNITS);
        let dir = *rng.pick(DIRS);
        match rng.below(9) {
            0 | 1 => {
                let wants = *rng.pick(WANTS);
                let path = format!("{dir}/{wants}/{unit}");
                if rng.chance(15) {
                    copy.write(&path, "[Unit]\n");
                    desc += &format!("{path}: a regular file\n");
                    continue;
                }
                let target = rng.pick(TARGETS).replace("{u}", unit);
                desc += &copy.place(&path, Placed::Link(&target));
            }
            8 => {
                // Remove an init script or its start links.
                let base = unit.trim_end_matches(".service");
                let path = rng
                    .pick(&["/etc/init.d/{b}", "/etc/rc5.d/S01{b}", "/etc/rcS.d/S01{b}"])
                    .replace("{b}", base);
                copy.remove(&path);
                desc += &format!("removed {path}\n");
            }
            2 => {
                // Remove an existing enablement link.
                let path = format!("/etc/systemd/system/multi-user.target.wants/{unit}");
                copy.remove(&path);
                desc += &format!("removed {path}\n");
            }
            3 => {
                let path = format!("{dir}/{unit}");
                desc += &copy.place(&path, Placed::Link("/dev/null"));
            }
            4 => {
                let path = format!("{dir}/{unit}");
                let target = rng.pick(TARGETS).replace("{u}", unit);
                if target.contains(dir) || target == format!("../{unit}") {
                    continue;
                }
                desc += &copy.place(&path, Placed::Link(&target));
            }
            _ => {
                let path = format!("{dir}/{unit}");
                let target = *rng.pick(&["multi-user.target", "graphical.target", "nosuch.target"]);
                let t = rng.pick(TEXTS).replace("{t}", target);
                copy.write(&path, &t);
                desc += &format!("{path}: {t:?}\n");
            }
        }
    }
    desc
}

/// `systemctl is-enabled` of each unit, one word per unit (`not-found` when
/// systemctl cannot find it).
fn oracle(copy: &RootCopy) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for u in UNITS {
        // SYSTEMD_OFFLINE: /run/systemd/system exists in some configurations, and
        // systemctl would then look for a running manager.
        let o = copy.chroot(&["env", "SYSTEMD_OFFLINE=1", "systemctl", "is-enabled", u]);
        let word = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let err = String::from_utf8_lossy(&o.stderr);
        if word.is_empty() {
            // "Link has been severed": an alias of a unit found nowhere; "Invalid
            // cross-device link": an alias of another unit type, refused.
            if err.contains("No such file")
                || err.contains("not found")
                || err.contains("Link has been severed")
                || err.contains("Invalid cross-device link")
            {
                out.push("not-found".to_string());
            } else if err.contains("Too many levels of symbolic links") {
                // A link loop (the generator links /usr/lib to /lib, the same
                // directory): systemctl gives no state; not compared.
                out.push("loop".to_string());
            } else {
                return Err(format!("  systemctl is-enabled {u}: {o:?}"));
            }
        } else {
            out.push(word);
        }
    }
    Ok(out)
}

fn compare(copy: &RootCopy) -> String {
    let truth = match oracle(copy) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let args: Vec<String> = UNITS
        .iter()
        .flat_map(|u| ["--unit".to_string(), u.to_string()])
        .collect();
    let v = match agent_facts("units", &copy.root, &args) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut what = String::new();
    for (u, t) in UNITS.iter().zip(&truth) {
        if t == "loop" {
            continue;
        }
        let a = &v[*u];
        let agent = if a["path"].is_null() {
            "not-found"
        } else if a["masked"].as_bool() == Some(true) {
            "masked"
        } else if !a["alias_of"].is_null() {
            "alias"
        } else if a["generated"].as_bool() == Some(true) {
            "generated"
        } else if a["enabled"].as_bool() == Some(true) {
            "enabled"
        } else if a["is_static"].as_bool() == Some(true) {
            "static"
        } else {
            "not enabled"
        };
        let sys = match t.as_str() {
            "not-found" => "not-found",
            "masked" | "masked-runtime" => "masked",
            "alias" => "alias",
            "generated" | "transient" => "generated",
            "enabled" | "enabled-runtime" => "enabled",
            "static" => "static",
            _ => "not enabled",
        };
        if agent != sys {
            what += &format!(
                "  {u}: systemctl is-enabled says {t}, the agent {agent} ({})\n",
                a["evidence"]
            );
        }
    }
    what
}

/// Runs the units family: generate, ask systemctl, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    // /etc/systemd/system and the init scripts as Debian left them, and the unit
    // files a configuration may overwrite in /usr/lib.
    for d in KEPT_DIRS {
        cp(&copy, d, &kept_dir(d));
    }
    let mut pristine = Vec::new();
    for u in UNITS {
        for w in std::iter::once(String::new()).chain(WANTS.iter().map(|w| format!("{w}/"))) {
            let path = format!("/usr/lib/systemd/system/{w}{u}");
            let p = copy.path(&path);
            let kept = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() => Kept::File(std::fs::read(&p).expect("read a unit file")),
                Ok(m) if m.is_symlink() => Kept::Link(
                    std::fs::read_link(&p)
                        .expect("read a link")
                        .display()
                        .to_string(),
                ),
                _ => Kept::Nothing,
            };
            pristine.push((path, kept));
        }
    }
    let mut rng = Rng::new(settings.seed ^ 0x0055_4e49_5453);
    let mut tally = Tally::new("units", settings);
    while tally.more() {
        let desc = generate(&mut rng, &copy, &pristine);
        let what = compare(&copy);
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    tally
}
