//! sudo: the root's own sudo 1.9.13 (chrooted in a private mount namespace) reads
//! generated sudoers policies; the agent (`rampart-agent facts sudo`) must agree on
//!
//! - whether sudo runs at all: it refuses an /etc/sudoers not owned by uid 0,
//!   world-writable, or group-writable with a group other than gid 0 ("no valid
//!   sudoers sources found"); the agent must name the refusal;
//! - the global `Defaults` in effect for the options the rules judge (`use_pty`,
//!   `logfile`, `timestamp_timeout`, `authenticate`), as `sudo -V` run as root
//!   prints them after reading the policy (`sudo -l` lists the entries as written,
//!   even those whose value sudo refuses), whenever sudo runs — also when
//!   `visudo -c` rejects the policy: sudo drops a line with a syntax error, an entry
//!   with a value it refuses, and an included file or directory with an insecure
//!   owner or mode, and applies the rest. Bindings are generated for other users,
//!   groups, run-as users and commands only, so they do not change these. An option
//!   the agent leaves undecided (its rules give an error, never a pass) is counted,
//!   not compared;
//! - NOPASSWD: when `sudo -l -U alice` lists a NOPASSWD command, the agent must see
//!   a rule carrying NOPASSWD (else `sudo_require_password` would pass);
//! - the files sudo reads, in order, when `visudo -c` accepts the policy and every
//!   file and directory is secure: `visudo -c` prints `FILE: parsed OK` for each,
//!   once (the agent's list, which names a file again where it is included again,
//!   is compared without repeats; `@includedir`/`#includedir` skip names containing
//!   `.` or ending in `~`; `@include`/`#include` take a path relative to the
//!   including file's directory).
//!
//! Files, included directories and /etc/sudoers get modes and owners drawn from
//! 0440, 0640, 0660, 0644, 0666, 0600 with uid and gid 0 or 1000. A run counts the
//! configurations where sudo did not run for another reason (truly skipped).
//!
//! The Ubuntu benchmarks' sudo rules read the policy through the same reader
//! (`facts::sudoers`), so this comparison serves every benchmark.

use std::os::unix::fs::{chown, PermissionsExt};

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
    "Defaults>alice !use_pty",
    "Defaults!/bin/ls !use_pty",
    "Defaults!/usr/bin/id !authenticate",
    "Defaults \\\n    use_pty",
    "Defaults use_pty,\\\n    logfile=/var/log/sudo-cont.log",
    "# Defaults !use_pty",
    "Defaults use_pty # keep it",
    "#Defaults timestamp_timeout=99",
    "alice ALL=(ALL) NOPASSWD: /usr/bin/id",
    "alice ALL=(ALL) ALL",
    "alice ALL = (root) NOEXEC:NOPASSWD :/bin/ls",
    "Cmnd_Alias PROBE = /bin/true",
    // Lines sudo's grammar rejects (the line is dropped), and entries whose value
    // sudo refuses (the entry is dropped).
    "Defaults use_pty foo",
    "Defaults ! !use_pty",
    "Defaults !!use_pty",
    "Defaults ! use_pty",
    "Defaults Use_pty",
    "Defaults use_pty,",
    "Defaults env_reset bogus, !use_pty",
    "Defaults",
    "Defaults use_pty #5",
    "Defaults use_pty=1",
    "Defaults authenticate=yes",
    "Defaults !authenticate=x",
    "Defaults logfile+=/var/log/plus.log",
    "Defaults logfile=var/log/relative.log",
    "Defaults logfile=/var/log/hash#tail",
    "Defaults logfile",
    "Defaults logfile=\"\"",
    "Defaults timestamp_timeout=NaN",
    "Defaults timestamp_timeout=abc",
    "Defaults timestamp_timeout",
    "Defaults timestamp_timeout=2.5",
    "Defaults !timestamp_timeout",
    "Defaults timestamp_timeout=+7",
    "Defaults:alice, bob !use_pty",
    "Defaults: alice !authenticate",
    "alice ALL=(ALL) NOPASSWD ALL",
];

/// Modes and owners of files: the first is Debian's; the rest are drawn now and then.
const FILE_MODES: &[(u32, u32, u32)] = &[
    (0o440, 0, 0),
    (0o640, 0, 0),
    (0o660, 0, 0),
    (0o644, 0, 0),
    (0o666, 0, 0),
    (0o600, 0, 0),
    (0o440, 1000, 0),
    (0o440, 0, 1000),
    (0o660, 0, 1000),
    (0o640, 0, 1000),
    (0o664, 1000, 1000),
];

/// Modes and owners of included directories.
const DIR_MODES: &[(u32, u32, u32)] = &[
    (0o755, 0, 0),
    (0o777, 0, 0),
    (0o755, 1000, 0),
    (0o775, 0, 1000),
    (0o775, 0, 0),
    (0o750, 0, 1000),
];

/// Whether sudo opens a file (or directory) with this mode and owner.
fn secure((mode, uid, gid): (u32, u32, u32)) -> bool {
    uid == 0 && mode & 0o002 == 0 && (mode & 0o020 == 0 || gid == 0)
}

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

/// Sets a mode and owner, drawn from `modes` (the first `percent`% of the time is
/// the first entry); says what it set, and whether sudo accepts it.
fn set_meta(
    rng: &mut Rng,
    copy: &RootCopy,
    path: &str,
    modes: &[(u32, u32, u32)],
    percent: u32,
) -> ((u32, u32, u32), String) {
    let m = if rng.chance(percent) {
        modes[0]
    } else {
        *rng.pick(modes)
    };
    let host = copy.path(path);
    chown(&host, Some(m.1), Some(m.2)).expect("chown a sudoers file");
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(m.0))
        .expect("chmod a sudoers file");
    (m, format!(" (mode {:o}, uid {}, gid {})", m.0, m.1, m.2))
}

/// Writes a file with a drawn mode and owner; false when sudo refuses it.
fn write(rng: &mut Rng, copy: &RootCopy, path: &str, t: &str, desc: &mut String) -> bool {
    copy.write(path, t);
    let (m, said) = set_meta(rng, copy, path, FILE_MODES, 75);
    *desc += &format!("{path}{said}: {t:?}\n");
    secure(m)
}

/// A generated policy: its description, and whether every file and directory in
/// it is one sudo opens.
fn generate(rng: &mut Rng, copy: &RootCopy, debian: &str, readme: &str) -> (String, bool) {
    let mut desc = String::new();
    let mut all_secure = true;
    copy.clear_dir("/etc/sudoers.d");
    copy.remove("/etc/sudoers.extra.d");
    copy.remove("/etc/sudoers.local");
    copy.write("/etc/sudoers.d/README", readme);
    std::fs::set_permissions(
        copy.path("/etc/sudoers.d/README"),
        std::fs::Permissions::from_mode(0o440),
    )
    .expect("chmod README");
    let (m, said) = set_meta(rng, copy, "/etc/sudoers.d", DIR_MODES, 85);
    desc += &format!("/etc/sudoers.d{said}\n");
    all_secure &= secure(m);
    let mut main = debian.to_string();
    if rng.chance(60) {
        main += &text(rng, true);
    }
    copy.write("/etc/sudoers", &main);
    let (m, said) = set_meta(rng, copy, "/etc/sudoers", FILE_MODES, 88);
    desc += &format!(
        "/etc/sudoers{said}, Debian's and: {:?}\n",
        &main[debian.len()..]
    );
    all_secure &= secure(m);
    for _ in 0..rng.below(4) {
        let path = format!("/etc/sudoers.d/{}", rng.pick(NAMES));
        let inc = rng.chance(30);
        let t = text(rng, inc);
        all_secure &= write(rng, copy, &path, &t, &mut desc);
    }
    if rng.chance(50) {
        let t = text(rng, false);
        all_secure &= write(rng, copy, "/etc/sudoers.local", &t, &mut desc);
    }
    if rng.chance(50) {
        for _ in 0..1 + rng.below(2) {
            let path = format!("/etc/sudoers.extra.d/{}", rng.pick(NAMES));
            let t = text(rng, false);
            all_secure &= write(rng, copy, &path, &t, &mut desc);
        }
        let (m, said) = set_meta(rng, copy, "/etc/sudoers.extra.d", DIR_MODES, 85);
        desc += &format!("/etc/sudoers.extra.d{said}\n");
        all_secure &= secure(m);
    }
    (desc, all_secure)
}

const SCRIPT: &str = r#"echo @visudo; visudo -c 2>&1; echo "@rc $?"
echo @sudo; sudo -l -U root 2>/tmp/sudo.err; echo "@src $?"
echo @alice; sudo -l -U alice 2>/dev/null; echo "@arc $?"
echo @version; sudo -V 2>/dev/null
echo @err; cat /tmp/sudo.err
echo @end
"#;

/// The text between two markers of the oracle's output.
fn section<'a>(text: &'a str, from: &str, to: &str) -> &'a str {
    let start = text
        .find(from)
        .map(|i| i + from.len())
        .unwrap_or(text.len());
    let end = text[start..]
        .find(to)
        .map(|i| start + i)
        .unwrap_or(text.len());
    &text[start..end]
}

/// What `sudo -V` (run as root, after reading the policy) prints for `option`:
/// `on`/`off` for the flags, the log file (or `none`), the timeout in minutes.
fn in_effect(version: &str, option: &str) -> String {
    let has = |l: &str| version.lines().any(|x| x.trim_end() == l);
    let after = |p: &str| {
        version
            .lines()
            .find_map(|x| x.strip_prefix(p).map(|v| v.trim_end().to_string()))
    };
    match option {
        "use_pty" => on_off(has("Always run commands in a pseudo-tty")),
        "authenticate" => on_off(has("Require users to authenticate by default")),
        "logfile" => after("Path to log file: ").unwrap_or_else(|| "none".into()),
        _ => after("Authentication timestamp timeout: ")
            .map(|v| v.trim_end_matches(" minutes").to_string())
            .unwrap_or_else(|| "unset".into()),
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

/// The same from the agent's last global setting (`on`, `off`, `=VALUE`, absent),
/// with sudo 1.9.13's defaults when absent.
fn agent_in_effect(global: Option<&str>, option: &str) -> String {
    match (option, global) {
        ("use_pty", g) => on_off(g == Some("on")),
        ("authenticate", g) => on_off(g != Some("off")),
        ("logfile", Some(v)) if v.starts_with('=') => v[1..].to_string(),
        ("logfile", _) => "none".into(),
        (_, None) => "15.0".into(),
        (_, Some("off")) => "0.0".into(),
        (_, Some(v)) => v.trim_start_matches('=').to_string(),
    }
}

/// Timeouts compare as numbers (sudo prints one decimal).
fn same(sys: &str, agent: &str) -> bool {
    match (sys.parse::<f64>(), agent.parse::<f64>()) {
        (Ok(a), Ok(b)) => (a - b).abs() <= 0.05 + a.abs() * 1e-12,
        _ => sys == agent,
    }
}

/// Counts beyond the comparison itself.
#[derive(Default)]
struct Counts {
    visudo_rejects: usize,
    insecure: usize,
    refused: usize,
    undecided: usize,
    skipped: usize,
    nopasswd: usize,
}

/// Runs the sudo family: generate, ask visudo and sudo, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let debian = std::fs::read_to_string(copy.path("/etc/sudoers")).expect("read /etc/sudoers");
    let readme = std::fs::read_to_string(copy.path("/etc/sudoers.d/README")).unwrap_or_default();
    for (file, line) in [
        ("/etc/passwd", "alice:x:1001:1001::/home/alice:/bin/sh\n"),
        ("/etc/group", "alice:x:1001:\n"),
    ] {
        let t = std::fs::read_to_string(copy.path(file)).expect("read the accounts");
        copy.write(file, &(t + line));
    }
    let mut rng = Rng::new(settings.seed ^ 0x53_5544_4f4f);
    let mut tally = Tally::new("sudo", settings);
    let mut n = Counts::default();
    let mut skipped_why: Vec<String> = Vec::new();
    let args: Vec<String> = OPTIONS
        .iter()
        .flat_map(|o| ["--option".to_string(), o.to_string()])
        .collect();
    while tally.more() {
        let (desc, all_secure) = generate(&mut rng, &copy, &debian, &readme);
        copy.write("/.rampart-oracle.sh", SCRIPT);
        let out = copy.chroot(&["sh", "/.rampart-oracle.sh"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        tally.compared += 1;
        if !text.contains("@end") {
            tally.differ(&desc, &format!("  the oracle script failed: {out:?}\n"));
            continue;
        }
        let visudo = section(&text, "@visudo", "@sudo");
        let sudo_l = section(&text, "@sudo", "@alice");
        let alice = section(&text, "@alice", "@version");
        let version = section(&text, "@version", "@err");
        let err = section(&text, "@err", "@end");
        let visudo_ok = visudo.contains("@rc 0");
        n.visudo_rejects += usize::from(!visudo_ok);
        n.insecure += usize::from(!all_secure);
        let a = match agent_facts("sudo", &copy.root, &args) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&desc, &e);
                continue;
            }
        };
        let agent_refused = a["refused"].as_str().map(String::from);
        let sudo_ran =
            sudo_l.contains("@src 0") && sudo_l.contains("Matching Defaults entries for root");
        let mut what = String::new();
        if !sudo_ran {
            if err.contains("no valid sudoers sources found") {
                n.refused += 1;
                if agent_refused.is_none() {
                    what += &format!(
                        "  sudo refuses the policy ({}), the agent reads it\n",
                        err.trim()
                    );
                }
            } else {
                n.skipped += 1;
                if skipped_why.len() < 3 {
                    skipped_why.push(format!("{}{}", sudo_l.trim(), err.trim()));
                }
            }
            if !what.is_empty() {
                tally.differ(&desc, &what);
            }
            continue;
        }
        if let Some(r) = &agent_refused {
            tally.differ(&desc, &format!("  sudo runs, the agent says: {r}\n"));
            continue;
        }
        if visudo_ok && all_secure {
            let files: Vec<String> = visudo
                .lines()
                .filter_map(|l| l.strip_suffix(": parsed OK"))
                .map(String::from)
                .collect();
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
        }
        for o in OPTIONS {
            if a["undecided"][*o].is_string() {
                n.undecided += 1;
                continue;
            }
            let sys = in_effect(version, o);
            let agent = agent_in_effect(a["global"][*o].as_str(), o);
            if !same(&sys, &agent) {
                what += &format!(
                    "  {o}: sudo -V says {sys:?}, the agent {agent:?} (from {:?})\n",
                    a["global"][*o]
                );
            }
        }
        if alice.contains("NOPASSWD") {
            n.nopasswd += 1;
            if a["nopasswd"].as_array().is_none_or(|l| l.is_empty()) {
                what += &format!("  sudo -l -U alice lists a NOPASSWD command, the agent sees no NOPASSWD rule:\n{alice}\n");
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
    }
    println!(
        "differential sudo: {} policies visudo -c rejects (compared with sudo -l all the same), \
         {} with an insecure file or directory, {} /etc/sudoers sudo refuses (agent's refusal compared), \
         {} options the agent leaves undecided (not compared), {} with NOPASSWD for alice, \
         {} skipped (sudo did not run for another reason) {skipped_why:?}",
        n.visudo_rejects, n.insecure, n.refused, n.undecided, n.nopasswd, n.skipped
    );
    tally
}
