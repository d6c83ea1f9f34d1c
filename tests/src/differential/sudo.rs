//! sudo: the root's own sudo 1.9.13 (chrooted in a private mount namespace) reads
//! generated sudoers policies; the agent (`rampart-agent facts sudo`) must agree on
//!
//! - the files sudo reads, in order: `visudo -c` prints `FILE: parsed OK` for each,
//!   once (the agent's list, which names a file again where it is included again,
//!   is compared without repeats; `@includedir`/`#includedir` skip names containing
//!   `.` or ending in `~`;
//!   `@include`/`#include` take a path relative to the including file's directory);
//! - the effective global `Defaults` of the options the rules judge (`use_pty`,
//!   `logfile`, `timestamp_timeout`, `authenticate`): the last of them among the
//!   `Matching Defaults entries` `sudo -l -U root` prints. Bindings are generated
//!   for other users, groups, run-as users and commands only, so root's list holds
//!   the global entries.
//!
//! A policy `visudo -c` finds a syntax error in is not compared (counted instead).
//!
//! The Ubuntu benchmarks' sudo rules read the policy through the same reader
//! (`facts::sudoers`), so this comparison serves every benchmark.

use std::os::unix::fs::PermissionsExt;

use super::{agent_facts, Rng, RootCopy, Settings, Tally};

const OPTIONS: &[&str] = &["use_pty", "logfile", "timestamp_timeout", "authenticate"];

/// Names in /etc/sudoers.d: read, and skipped (a `.`, a trailing `~`).
const NAMES: &[&str] = &[
    "00-first",
    "50-cis",
    "cis",
    "zz-last",
    "cis.conf",
    "cis~",
    "50-cis.bak",
    "README",
];

/// Defaults lines (`{}` stands for nothing: lines are used as written).
const LINES: &[&str] = &[
    "Defaults use_pty",
    "Defaults !use_pty",
    "Defaults\tuse_pty",
    "Defaults logfile=\"/var/log/sudo.log\"",
    "Defaults logfile=/var/log/sudo-other.log",
    "Defaults !logfile",
    "Defaults timestamp_timeout=5",
    "Defaults timestamp_timeout=0",
    "Defaults timestamp_timeout=-1",
    "Defaults timestamp_timeout = 30",
    "Defaults use_pty, timestamp_timeout=10",
    "Defaults !authenticate",
    "Defaults authenticate",
    "Defaults:alice !use_pty",
    "Defaults:%sudo timestamp_timeout=60",
    "Defaults>root !use_pty",
    "Defaults!/bin/ls !use_pty",
    "Defaults!/usr/bin/id !authenticate",
    "Defaults \\\n    use_pty",
    "Defaults use_pty,\\\n    logfile=/var/log/sudo-cont.log",
    "# Defaults !use_pty",
    "Defaults use_pty # keep it",
    "#Defaults timestamp_timeout=99",
    "alice ALL=(ALL) NOPASSWD: /usr/bin/id",
    "Cmnd_Alias PROBE = /bin/true",
];

/// Include lines (relative paths are taken from the including file's directory).
const INCLUDES: &[&str] = &[
    "@include /etc/sudoers.local",
    "#include /etc/sudoers.local",
    "@include sudoers.local",
    "@includedir /etc/sudoers.extra.d",
    "#includedir /etc/sudoers.extra.d",
];

fn text(rng: &mut Rng, includes: bool) -> String {
    let mut t = String::new();
    for _ in 0..1 + rng.below(4) {
        if includes && rng.chance(15) {
            t += *rng.pick(INCLUDES);
        } else {
            t += *rng.pick(LINES);
        }
        t += "\n";
    }
    t
}

fn write(copy: &RootCopy, path: &str, t: &str) {
    copy.write(path, t);
    std::fs::set_permissions(copy.path(path), std::fs::Permissions::from_mode(0o440))
        .expect("chmod a sudoers file");
}

fn generate(rng: &mut Rng, copy: &RootCopy, debian: &str, readme: &str) -> String {
    let mut desc = String::new();
    copy.clear_dir("/etc/sudoers.d");
    copy.remove("/etc/sudoers.extra.d");
    copy.remove("/etc/sudoers.local");
    write(copy, "/etc/sudoers.d/README", readme);
    let mut main = debian.to_string();
    if rng.chance(60) {
        let t = text(rng, true);
        desc += &format!("/etc/sudoers, appended: {t:?}\n");
        main += &t;
    }
    write(copy, "/etc/sudoers", &main);
    for _ in 0..rng.below(4) {
        let path = format!("/etc/sudoers.d/{}", rng.pick(NAMES));
        let inc = rng.chance(30);
        let t = text(rng, inc);
        write(copy, &path, &t);
        desc += &format!("{path}: {t:?}\n");
    }
    if rng.chance(50) {
        let t = text(rng, false);
        write(copy, "/etc/sudoers.local", &t);
        desc += &format!("/etc/sudoers.local: {t:?}\n");
    }
    if rng.chance(50) {
        for _ in 0..1 + rng.below(2) {
            let path = format!("/etc/sudoers.extra.d/{}", rng.pick(NAMES));
            let t = text(rng, false);
            write(copy, &path, &t);
            desc += &format!("{path}: {t:?}\n");
        }
    }
    desc
}

const SCRIPT: &str = r#"echo @visudo; visudo -c 2>&1; echo "@rc $?"
echo @sudo; sudo -l -U root 2>/dev/null
echo @end
"#;

/// The effective value of `option` among sudo's `Matching Defaults entries`.
fn effective(entries: &[String], option: &str) -> Option<String> {
    let mut out = None;
    for e in entries {
        if e == option {
            out = Some("on".to_string());
        } else if e.strip_prefix('!') == Some(option) {
            out = Some("off".to_string());
        } else if let Some(v) = e.strip_prefix(option).and_then(|r| r.strip_prefix('=')) {
            out = Some(format!("={v}"));
        }
    }
    out
}

/// Runs the sudo family: generate, ask visudo and sudo, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let debian = std::fs::read_to_string(copy.path("/etc/sudoers")).expect("read /etc/sudoers");
    let readme = std::fs::read_to_string(copy.path("/etc/sudoers.d/README")).unwrap_or_default();
    let mut rng = Rng::new(settings.seed ^ 0x53_5544_4f4f);
    let mut tally = Tally::new("sudo", settings);
    let mut invalid = 0;
    let args: Vec<String> = OPTIONS
        .iter()
        .flat_map(|o| ["--option".to_string(), o.to_string()])
        .collect();
    while tally.more() {
        let desc = generate(&mut rng, &copy, &debian, &readme);
        copy.write("/.rampart-oracle.sh", SCRIPT);
        let out = copy.chroot(&["sh", "/.rampart-oracle.sh"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        tally.compared += 1;
        if !text.contains("@end") {
            tally.differ(&desc, &format!("  the oracle script failed: {out:?}\n"));
            continue;
        }
        let visudo = text.split("@sudo").next().unwrap_or("");
        if !visudo.contains("@rc 0") {
            invalid += 1;
            continue;
        }
        let files: Vec<String> = visudo
            .lines()
            .filter_map(|l| l.strip_suffix(": parsed OK"))
            .map(String::from)
            .collect();
        let mut entries: Vec<String> = Vec::new();
        let mut inside = false;
        for l in text.lines() {
            if l.starts_with("Matching Defaults entries for root") {
                inside = true;
            } else if inside && l.trim().is_empty() {
                break;
            } else if inside {
                entries.extend(
                    l.trim()
                        .split(", ")
                        .map(|s| s.trim_end_matches(',').to_string()),
                );
            }
        }
        let a = match agent_facts("sudo", &copy.root, &args) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&desc, &e);
                continue;
            }
        };
        let mut what = String::new();
        // visudo names each file once; sudo (and the agent) read a file again
        // wherever it is included.
        let mut seen = std::collections::BTreeSet::new();
        let ours: Vec<String> = a["files"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .filter(|s| seen.insert(s.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if ours != files {
            what += &format!("  files: visudo -c reads {files:?}, the agent {ours:?}\n");
        }
        for o in OPTIONS {
            let sys = effective(&entries, o);
            let agent = a["global"][*o].as_str().map(String::from);
            if sys != agent {
                what += &format!(
                    "  Defaults {o}: sudo -l says {sys:?} (entries {entries:?}), the agent {agent:?}\n"
                );
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
    }
    println!("differential sudo: {invalid} policies visudo -c rejects, not compared");
    tally
}
