//! The generator: modprobe.d directories filled with files, links and lines that
//! exercise kmod's discovery, precedence and parsing.

use std::collections::BTreeMap;

use super::super::{Rng, RootCopy};
use super::kernel::{Kernel, State};

/// kmod's directories in precedence order; /lib is /usr/lib in the root (merged /usr),
/// so both names reach the last one.
const DIRS: &[(&str, usize)] = &[
    ("/etc/modprobe.d", 0),
    ("/run/modprobe.d", 1),
    ("/usr/local/lib/modprobe.d", 2),
    ("/lib/modprobe.d", 3),
    ("/usr/lib/modprobe.d", 3),
];

/// Debian's own files in /usr/lib/modprobe.d.
pub(super) const DEBIAN_FILES: &[&str] = &["aliases.conf", "fbdev-blacklist.conf", "systemd.conf"];

/// File names: sorting around each other and Debian's, the same name in several
/// directories, names kmod does not read.
const NAMES: &[&str] = &[
    "cramfs.conf",
    "CIS.conf",
    "00-first.conf",
    "50-cis.conf",
    "blacklist.conf",
    "fbdev-blacklist.conf",
    "aliases.conf",
    "systemd.conf",
    "zz-last.conf",
    "local.alias",
    ".hidden.conf",
    "cramfs",
    "cis.conf.bak",
    "x.CONF",
    "modules.softdep",
];

/// Other module names and aliases that lines name: real modules (some of them the
/// rules' modules' dependencies), aliases the kernel declares, and nothing at all.
const OTHERS: &[&str] = &[
    "dummy",
    "bonding",
    "nls_utf8",
    "cdrom",
    "libcrc32c",
    "crc-itu-t",
    "fs-squashfs",
    "net-pf-10-proto-132",
    "nosuchmod",
    "off",
];

/// Module patterns (kmod matches `install`, `softdep` and `alias` names with fnmatch).
const PATTERNS: &[&str] = &[
    "cram*",
    "hfs*",
    "*fs",
    "usb?storage",
    "usb[-_]storage",
    "[a-c]ramfs",
    "[!x]ramfs",
    "s*",
    "*",
    "[dt]*",
    "jffs[0-9]",
    "r?s",
    "x]",
    "[x",
];

/// Install commands: ones that do nothing, and ones that load the module after all.
const COMMANDS: &[&str] = &[
    "/bin/false",
    "/bin/true",
    "/usr/bin/false",
    "false",
    "true",
    "/bin/false # CIS",
    "/bin/true;/sbin/modprobe --ignore-install {m}",
    "/sbin/modprobe --ignore-install {m} $CMDLINE_OPTS",
    "/bin/sh -c 'exit 1'",
    "/bin/echo blocked",
];

const OPTIONS: &[&str] = &["a=1", "a=1\tb=2", "x=\"y z\"", "debug"];

/// Lines kmod refuses or ignores, and keywords in the wrong case.
const JUNK: &[&str] = &[
    "include /etc/modprobe.d/other.conf",
    "config keep",
    "blacklist",
    "install cramfs",
    "install cramfs ",
    "install cramfs  ",
    "options cramfs",
    "softdep cramfs",
    "alias cramfs",
    "remove sctp",
    "Install cramfs /bin/false",
    "BLACKLIST cramfs",
    "Blacklist usb-storage",
    "foo bar",
    "install x] /bin/false",
    "blacklist [x",
    "blacklist cramfs#x",
];

/// What spaces between words become.
const SPACINGS: &[&str] = &["\t", "  ", " \t"];

/// Where links in the modprobe.d directories lead: files (some of them generated,
/// some not), a directory.
const LINK_TARGETS: &[&str] = &[
    "/usr/lib/modprobe.d/aliases.conf",
    "../../etc/modprobe.d/cramfs.conf",
    "cramfs.conf",
    "/etc/modprobe.d/CIS.conf",
    "/etc/modprobe.d",
];

/// Links that lead nowhere; `LOOP` is a link to itself.
const BROKEN_TARGETS: &[&str] = &["/nonexistent.conf", "LOOP"];

/// A module name as an administrator might spell it.
fn spell(rng: &mut Rng, name: &str) -> String {
    match rng.below(20) {
        0..=4 if name.contains(['-', '_']) => name
            .chars()
            .map(|c| match c {
                '-' => '_',
                '_' => '-',
                c => c,
            })
            .collect(),
        5 => name.to_ascii_uppercase(),
        6 => format!("{name}.ko"),
        _ => name.to_string(),
    }
}

fn module_token(rng: &mut Rng, names: &[String]) -> String {
    match rng.below(10) {
        0..=5 => {
            let n = rng.pick(names).clone();
            spell(rng, &n)
        }
        6..=7 => rng.pick(OTHERS).to_string(),
        _ => rng.pick(PATTERNS).to_string(),
    }
}

/// One line (without its end); `softdeps`: whether softdep lines may be generated.
fn line(rng: &mut Rng, names: &[String], softdeps: bool) -> String {
    let m = module_token(rng, names);
    let target = |rng: &mut Rng| -> String {
        if rng.chance(60) {
            let n = rng.pick(names).clone();
            spell(rng, &n)
        } else {
            rng.pick(OTHERS).to_string()
        }
    };
    let l = match rng.below(100) {
        0..=29 => {
            let cmd = rng.pick(COMMANDS).replace("{m}", &m);
            format!("install {m} {cmd}")
        }
        30..=54 => format!("blacklist {m}"),
        55..=64 => {
            let alias = if rng.chance(50) {
                format!("fs-{}", rng.pick(names))
            } else {
                m.clone()
            };
            format!("alias {alias} {}", target(rng))
        }
        65..=74 => format!("options {m} {}", rng.pick(OPTIONS)),
        75..=84 if softdeps => {
            let a = target(rng);
            let b = target(rng);
            let deps = match rng.below(6) {
                0 => format!("pre: {a}"),
                1 => format!("post: {a}"),
                2 => format!("pre: {a} post: {b}"),
                3 => a,
                4 => "pre:".to_string(),
                _ => format!("pre:  {a}\t{b}"),
            };
            format!("softdep {m} {deps}")
        }
        85..=89 => format!("remove {m} /sbin/modprobe -r --ignore-remove {m}"),
        _ => rng.pick(JUNK).to_string(),
    };
    perturb(rng, l, 100)
}

/// Spacing, comments, continuation lines and backslashes as administrators (and
/// editors) leave them; `rate` scales how often (percent).
fn perturb(rng: &mut Rng, mut l: String, rate: u32) -> String {
    let chance = |rng: &mut Rng, p: u32| rng.below(10_000) < (p * rate) as usize;
    if chance(rng, 10) {
        l = l.replacen(' ', SPACINGS[rng.below(SPACINGS.len())], 1);
    }
    if chance(rng, 10) {
        l += *rng.pick(&[" # set by CIS", "\t# x", "#x"]);
    }
    if chance(rng, 8) {
        l += *rng.pick(&[" ", "\t", "  "]);
    }
    if chance(rng, 10) {
        l = format!("{}{l}", rng.pick(&[" ", "\t", "  "]));
    }
    if chance(rng, 6) {
        l = format!("{}{l}", rng.pick(&["#", "# ", " #"]));
    }
    if chance(rng, 4) && l.len() > 2 {
        // A backslash before a character: kmod drops it and keeps the character.
        let at = 1 + rng.below(l.len() - 1);
        if l.is_char_boundary(at) {
            l.insert(at, '\\');
        }
    }
    if chance(rng, 10) && l.len() > 2 {
        // A continuation line, split anywhere, the rest maybe indented.
        let at = 1 + rng.below(l.len() - 1);
        if l.is_char_boundary(at) && !l[..at].ends_with('\\') {
            let indent = *rng.pick(&["", "", "  ", "\t"]);
            l = format!("{}\\\n{indent}{}", &l[..at], &l[at..]);
        }
    }
    l
}

/// Lines that disable some of the rules' modules as the benchmark asks, now and then
/// perturbed.
fn cis_text(rng: &mut Rng, names: &[String]) -> String {
    let end = if rng.chance(5) { "\r\n" } else { "\n" };
    let mut t = String::new();
    for _ in 0..1 + rng.below(6) {
        let n = rng.pick(names).clone();
        let m = if rng.chance(85) { n } else { spell(rng, &n) };
        let cmd = *rng.pick(&[
            "/bin/false",
            "/bin/true",
            "/bin/false # CIS",
            "/usr/bin/false",
        ]);
        t += &perturb(rng, format!("install {m} {cmd}"), 30);
        t += end;
        if rng.chance(90) {
            t += &perturb(rng, format!("blacklist {m}"), 30);
            t += end;
        }
    }
    t
}

/// A file's text.
fn text(rng: &mut Rng, names: &[String], softdeps: bool) -> String {
    let end = if rng.chance(5) { "\r\n" } else { "\n" };
    let mut t = String::new();
    for _ in 0..1 + rng.below(6) {
        if rng.chance(8) {
            t += "# comment\n";
        }
        if rng.chance(5) {
            t += end;
        }
        t += &line(rng, names, softdeps);
        t += end;
    }
    if rng.chance(8) {
        t.pop();
        if end == "\r\n" {
            t.pop();
        }
    } else if rng.chance(2) {
        t += "blacklist cramfs\\";
    }
    t
}

/// What a directory entry is.
#[derive(Debug, Clone)]
enum Entry {
    /// One of Debian's files, as shipped.
    Debian(String),
    Text(String),
    Empty,
    DevNull,
    Link(&'static str),
    /// A link that leads nowhere (dangling, or looping).
    Broken(&'static str),
    Dir,
}

/// The generated entries: (precedence of the directory, name) → (directory, entry).
type Plan = BTreeMap<(usize, String), (&'static str, Entry)>;

fn plan(rng: &mut Rng, names: &[String], softdeps: bool, debian: &[(String, String)]) -> Plan {
    let mut plan = Plan::new();
    for (name, t) in debian {
        if rng.chance(92) {
            plan.insert(
                (3, name.clone()),
                ("/usr/lib/modprobe.d", Entry::Debian(t.clone())),
            );
        }
    }
    if rng.chance(65) {
        let (dir, prec) = if rng.chance(70) {
            DIRS[0]
        } else {
            *rng.pick(DIRS)
        };
        let name = match rng.below(3) {
            0 => "CIS.conf".to_string(),
            1 => format!("{}.conf", rng.pick(names)),
            _ => rng.pick(NAMES).to_string(),
        };
        plan.insert((prec, name), (dir, Entry::Text(cis_text(rng, names))));
    }
    let n = *rng.pick(&[0, 1, 1, 2, 2, 3, 3, 4, 5, 7]);
    for _ in 0..n {
        let (dir, prec) = *rng.pick(DIRS);
        let name = if rng.chance(85) {
            rng.pick(NAMES).to_string()
        } else {
            format!("{}.conf", rng.pick(names))
        };
        let entry = match rng.below(100) {
            0..=4 => Entry::Empty,
            5..=12 => Entry::DevNull,
            13..=22 => Entry::Link(LINK_TARGETS[rng.below(LINK_TARGETS.len())]),
            23..=26 => Entry::Broken(BROKEN_TARGETS[rng.below(BROKEN_TARGETS.len())]),
            27..=30 => Entry::Dir,
            _ => Entry::Text(text(rng, names, softdeps)),
        };
        plan.insert((prec, name), (dir, entry));
    }
    plan
}

/// Builds one configuration in the copy; returns its description.
pub(super) fn generate(
    rng: &mut Rng,
    copy: &RootCopy,
    kernel: &Kernel,
    debian: &[(String, String)],
) -> String {
    for (dir, _) in DIRS {
        copy.clear_dir(dir);
    }
    let names: Vec<String> = kernel.modules.iter().map(|m| m.name.clone()).collect();
    // A module found only through an install line, with soft dependencies, prints
    // nothing of its own: its line could not be told apart. No softdep lines then.
    let softdeps = kernel.modules.iter().all(|m| m.state != State::Absent);
    let mut plan = plan(rng, &names, softdeps, debian);
    for ((_, name), (dir, entry)) in &plan {
        let path = format!("{dir}/{name}");
        match entry {
            Entry::Debian(t) | Entry::Text(t) => copy.write(&path, t),
            Entry::Empty => copy.write(&path, ""),
            Entry::DevNull => copy.link(&path, "/dev/null"),
            Entry::Link(target) | Entry::Broken(target) => {
                copy.link(&path, if *target == "LOOP" { name } else { target })
            }
            Entry::Dir => copy.mkdir(&path),
        }
    }
    // kmod 30 decides whether a link that leads nowhere hides the same name in a later
    // directory from uninitialised memory: such a link becomes an empty file.
    let suspects: Vec<(usize, String)> = plan
        .iter()
        .filter(|((p, n), (_, e))| {
            matches!(e, Entry::Link(_) | Entry::Broken(_))
                && plan.keys().any(|(p2, n2)| p2 > p && n2 == n)
        })
        .map(|(k, _)| k.clone())
        .collect();
    if !suspects.is_empty() {
        let paths: Vec<String> = suspects
            .iter()
            .map(|k| format!("{}/{}", plan[k].0, k.1))
            .collect();
        let mut args = vec![
            "sh",
            "-c",
            "for p; do test -e \"$p\" || echo \"$p\"; done",
            "sh",
        ];
        args.extend(paths.iter().map(String::as_str));
        let out = copy.chroot(&args);
        let broken = String::from_utf8_lossy(&out.stdout).into_owned();
        for (k, path) in suspects.iter().zip(&paths) {
            if broken.lines().any(|l| l == path) {
                copy.write(path, "");
                plan.insert(k.clone(), (plan[k].0, Entry::Empty));
            }
        }
    }
    let mut desc = kernel.describe();
    for ((_, name), (dir, entry)) in &plan {
        let path = format!("{dir}/{name}");
        match entry {
            Entry::Debian(_) => {}
            Entry::Text(t) => {
                desc += &format!("{path}:\n");
                for l in t.split_inclusive('\n') {
                    desc += &format!("  | {l:?}\n");
                }
            }
            Entry::Empty => desc += &format!("{path}: (empty)\n"),
            Entry::DevNull => desc += &format!("{path} -> /dev/null\n"),
            Entry::Link(target) | Entry::Broken(target) => {
                let target = if *target == "LOOP" { name } else { *target };
                desc += &format!("{path} -> {target}\n");
            }
            Entry::Dir => desc += &format!("{path}/ (a directory)\n"),
        }
    }
    for name in DEBIAN_FILES {
        if !plan.contains_key(&(3, name.to_string())) {
            desc += &format!("/usr/lib/modprobe.d/{name}: (Debian's, removed)\n");
        }
    }
    desc
}
