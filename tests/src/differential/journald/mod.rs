//! journald, systemd-coredump and systemd-timesyncd: their configuration files
//! (`journald.conf`, `coredump.conf`, `timesyncd.conf` and `*.conf.d/` drop-ins in
//! /etc, /run, /usr/local/lib and /usr/lib) generated in the copy, judged by the
//! root's own systemd 252, chrooted in a private mount and PID namespace with an
//! empty /run (what an offline root has at boot):
//!
//! - journald itself starts (a debug log on the console, stopped after half a
//!   second, `/run/systemd/journal/flushed` present so that it opens its system
//!   journal at once): the journal it creates under /var/log/journal says whether
//!   the journal is kept on disk (`journald_persistent_storage`), its
//!   `Journal effective settings … compress=` line gives `Compress` (not printed,
//!   and not compared, with `Storage=none`), and its
//!   `FILE:LINE: … ignoring` warnings name the assignments it rejected;
//! - `ForwardToSyslog`, which journald does not print, is the last assignment of
//!   `[Journal]` journald did not reject, in the files `systemd-analyze cat-config`
//!   shows in its order (read as systemd's parser reads lines, see [`assignments`]);
//! - timesyncd itself starts (stopped after 0.3 s): its `Added new system server`,
//!   `Added new fallback server` and `Removed server` lines before `running as pid`
//!   give the `NTP=` and `FallbackNTP=` lists (its compiled-in fallback servers left
//!   out; the generator never names them, nor one server in both lists);
//! - systemd-coredump is not installed in the root: `Storage` and `ProcessSizeMax`
//!   are the last valid assignment of `[Coredump]` in cat-config's files, the values
//!   systemd 252 accepts written out here (`none|external|journal`, and sizes as
//!   `parse_size` reads them).
//!
//! cat-config and the daemons disagree on one point: cat-config shows a main file
//! found in /usr/lib or /run when /etc has none, but systemd 252's daemons read the
//! main file only from /etc/systemd; the daemons decide, so such a file is dropped.
//! Not generated: links that lead nowhere and directories named `*.conf` (cat-config
//! fails on the first; a daemon stops reading its drop-ins at either), lines
//! without `=`, and unterminated section headers (the daemon stops reading the file).
//!
//! The Ubuntu benchmarks judge these files with the same checks, readers and
//! defaults (Ubuntu builds systemd from Debian's packaging), so this comparison
//! serves every benchmark.

use std::collections::BTreeSet;
use std::process::Command;

mod parse;

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};
use parse::{assignments, boolean, size};

/// The three configurations: (file, section, keys with the values generated).
type Family = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [&'static str])],
);

const JOURNALD: Family = (
    "journald.conf",
    "Journal",
    &[
        (
            "Storage",
            &[
                "persistent",
                "volatile",
                "auto",
                "none",
                "Persistent",
                "",
                "persistent # CIS",
                "\"persistent\"",
            ],
        ),
        (
            "Compress",
            &[
                "yes", "no", "1", "0", "true", "off", "1K", "1G 512M", "4k", "", "no # x", "+1M",
            ],
        ),
        (
            "ForwardToSyslog",
            &[
                "yes", "no", "No", "FALSE", "on", "0", "", "no # x", "maybe", "y",
            ],
        ),
    ],
);

const COREDUMP: Family = (
    "coredump.conf",
    "Coredump",
    &[
        (
            "Storage",
            &[
                "none",
                "external",
                "journal",
                "None",
                "",
                "none # CIS",
                "'none'",
            ],
        ),
        (
            "ProcessSizeMax",
            &[
                "0",
                "0B",
                "0K",
                "0.5G",
                "2G",
                "",
                "unlimited",
                "0 # x",
                "1G 512M",
                "-1",
                "0 0",
                "1KB",
            ],
        ),
    ],
);

const TIMESYNCD: Family = (
    "timesyncd.conf",
    "Time",
    &[
        (
            "NTP",
            &[
                "a.example.com",
                "b.example.com c.example.com",
                "",
                "d.example.com # corp",
                "# none",
            ],
        ),
        (
            "FallbackNTP",
            &[
                "f.example.com",
                "",
                "g.example.com  h.example.com",
                "\ti.example.com",
            ],
        ),
    ],
);

/// timesyncd's compiled-in fallback servers (Debian's).
const COMPILED_FALLBACK: &[&str] = &[
    "0.debian.pool.ntp.org",
    "1.debian.pool.ntp.org",
    "2.debian.pool.ntp.org",
    "3.debian.pool.ntp.org",
];

const DROPIN_DIRS: &[&str] = &["/etc", "/run", "/usr/local/lib", "/usr/lib"];

/// Drop-in names: sorting around each other, the same name in several directories,
/// names systemd does not read.
const NAMES: &[&str] = &[
    "00-first.conf",
    "50-cis.conf",
    "cis.conf",
    "CIS.conf",
    "zz-last.conf",
    ".hidden.conf",
    "cis.conf.bak",
    "x.CONF",
    "60-local.conf~",
];

/// Writes a file in the systemd parser's grammar with lines of `family`.
fn text(rng: &mut Rng, family: &Family) -> String {
    let (_, section, keys) = family;
    let headers = [
        format!("[{section}]"),
        format!("[{}]", section.to_lowercase()),
        format!("[ {section} ]"),
        "[Other]".to_string(),
        format!("  [{section}]  "),
    ];
    let mut lines: Vec<String> = Vec::new();
    if rng.chance(90) {
        lines.push(if rng.chance(80) {
            headers[0].clone()
        } else {
            rng.pick(&headers).clone()
        });
    }
    for _ in 0..1 + rng.below(5) {
        match rng.below(20) {
            0 => lines.push(rng.pick(&headers).clone()),
            1 => lines.push(
                rng.pick(&["# Storage=none", "; NTP=x.example.com", "  # indented", "#"])
                    .to_string(),
            ),
            2 => lines.push(String::new()),
            _ => {
                let (key, values) = rng.pick(keys);
                let value = *rng.pick(values);
                let key = match rng.below(12) {
                    0 => key.to_lowercase(),
                    1 => key.to_uppercase(),
                    _ => key.to_string(),
                };
                let line = match rng.below(8) {
                    0 => format!(" {key} = {value} "),
                    1 => format!("\t{key}={value}"),
                    2 => format!("{key}= {value}"),
                    _ => format!("{key}={value}"),
                };
                if rng.chance(10) {
                    // A continuation, now and then with a comment line inside it.
                    let (k, v) = line.split_once('=').expect("an assignment");
                    lines.push(format!("{k}=\\"));
                    if rng.chance(40) {
                        lines.push("# inside".to_string());
                    }
                    lines.push(format!("  {v}"));
                } else {
                    lines.push(line);
                }
            }
        }
    }
    let end = if rng.chance(10) { "\r\n" } else { "\n" };
    lines.iter().map(|l| format!("{l}{end}")).collect()
}

/// Fills one family's directories; returns the description.
fn generate_family(rng: &mut Rng, copy: &RootCopy, family: &Family, debian_main: &str) -> String {
    let (conf, _, _) = family;
    let mut desc = String::new();
    for d in DROPIN_DIRS {
        copy.clear_dir(&format!("{d}/systemd/{conf}.d"));
    }
    for d in ["/usr/lib", "/usr/local/lib"] {
        copy.remove(&format!("{d}/systemd/{conf}"));
    }
    let main = format!("/etc/systemd/{conf}");
    match rng.below(10) {
        0..=3 => {
            if debian_main.is_empty() {
                copy.remove(&main);
            } else {
                copy.write(&main, debian_main);
            }
        }
        4 => {
            copy.remove(&main);
            desc += &format!("{main}: removed\n");
        }
        5 => {
            copy.link(&main, "/dev/null");
            desc += &format!("{main} -> /dev/null\n");
        }
        _ => {
            let t = text(rng, family);
            copy.write(&main, &t);
            desc += &format!("{main}: {t:?}\n");
        }
    }
    if rng.chance(15) {
        let path = format!(
            "{}/systemd/{conf}",
            rng.pick(&["/usr/lib", "/usr/local/lib"])
        );
        let t = text(rng, family);
        copy.write(&path, &t);
        desc += &format!("{path}: {t:?}\n");
    }
    let mut written: Vec<String> = Vec::new();
    for _ in 0..rng.below(5) {
        let path = format!(
            "{}/systemd/{conf}.d/{}",
            rng.pick(DROPIN_DIRS),
            rng.pick(NAMES)
        );
        match rng.below(10) {
            0 => desc += &copy.place(&path, Placed::Empty),
            1 => desc += &copy.place(&path, Placed::Link("/dev/null")),
            2 if !written.is_empty() => {
                // Not into /run: it is empty at boot, the link would lead nowhere.
                let target = rng.pick(&written).clone();
                if target != path && !target.starts_with("/run/") {
                    desc += &copy.place(&path, Placed::Link(&target));
                }
            }
            _ => {
                let t = text(rng, family);
                copy.write(&path, &t);
                desc += &format!("{path}: {t:?}\n");
                written.push(path);
            }
        }
    }
    desc
}

/// The oracle script, run chrooted with an empty /run.
const SCRIPT: &str = r#"mkdir -p /run/systemd/journal; touch /run/systemd/journal/flushed
echo @journald
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug timeout 0.5 /lib/systemd/systemd-journald 2>&1 | grep -E '^/|effective settings'
echo @disk; ls /var/log/journal/*/ 2>/dev/null
echo @timesyncd
SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug timeout 0.3 /lib/systemd/systemd-timesyncd 2>&1 | grep -E '^/|Added new|Removed server|running as pid'
for c in journald coredump timesyncd; do echo "@cat $c"; systemd-analyze cat-config systemd/$c.conf 2>&1; done
echo @end
"#;

/// What the root's programs answered.
struct Truth {
    on_disk: bool,
    compress: Option<String>,
    forward: String,
    coredump_storage: Option<String>,
    coredump_size: Option<String>,
    ntp: Vec<String>,
    fallback: Vec<String>,
}

fn oracle(copy: &RootCopy) -> Result<Truth, String> {
    copy.write("/.rampart-oracle.sh", SCRIPT);
    let root = copy.root.display().to_string();
    let out = Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"R=$1; mount -t tmpfs none "$R/run" && mount -t proc proc "$R/proc" && mount -t sysfs sys "$R/sys" && mount -t cgroup2 none "$R/sys/fs/cgroup" && chroot "$R" sh /.rampart-oracle.sh"#,
        )
        .args(["sh", &root])
        .output()
        .expect("run unshare");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !text.contains("@end") {
        return Err(format!("  the oracle script failed: {out:?}"));
    }
    let part = |name: &str| -> String {
        let start = text
            .find(&format!("@{name}\n"))
            .map(|i| i + name.len() + 2)
            .unwrap_or(text.len());
        let end = text[start..]
            .find("\n@")
            .map(|i| start + i + 1)
            .unwrap_or(text.len());
        text[start..end].to_string()
    };
    let journald = part("journald");
    let rejected: BTreeSet<String> = journald
        .lines()
        .filter(|l| l.starts_with('/'))
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some(format!("{}:{}", it.next()?, it.next()?))
        })
        .collect();
    let compress = journald
        .lines()
        .find_map(|l| l.split(" compress=").nth(1))
        .map(|r| r.split(' ').next().unwrap_or(r).to_string());
    let on_disk = part("disk").lines().any(|l| l == "system.journal");
    let mut forward = "yes".to_string();
    for (section, key, value, path, line) in assignments(&part("cat journald"), "journald.conf") {
        if section == "Journal" && key == "ForwardToSyslog" {
            let accepted = !rejected.contains(&format!("{path}:{line}"));
            match (accepted, boolean(&value)) {
                (true, Some(b)) => forward = if b { "yes" } else { "no" }.to_string(),
                (false, None) => {}
                (a, b) => {
                    return Err(format!(
                        "  the harness reads {path}:{line} ForwardToSyslog={value} as {b:?}, journald {}",
                        if a { "accepts it" } else { "rejects it" }
                    ))
                }
            }
        }
    }
    let (mut coredump_storage, mut coredump_size) = (None, None);
    for (section, key, value, _, _) in assignments(&part("cat coredump"), "coredump.conf") {
        if section != "Coredump" {
            continue;
        }
        match key.as_str() {
            "Storage" if ["none", "external", "journal"].contains(&value.as_str()) => {
                coredump_storage = Some(value)
            }
            "ProcessSizeMax" if size(&value).is_some() => coredump_size = Some(value),
            _ => {}
        }
    }
    let (mut ntp, mut fallback) = (Vec::new(), Vec::new());
    for l in part("timesyncd").lines() {
        // Servers are removed again when it stops.
        if l.contains("running as pid") {
            break;
        }
        let name = |p: &str| {
            l.strip_prefix(p)
                .map(|n| n.trim_end_matches('.').to_string())
        };
        if let Some(n) = name("Added new system server ") {
            ntp.push(n);
        } else if let Some(n) = name("Added new fallback server ") {
            if !COMPILED_FALLBACK.contains(&n.as_str()) {
                fallback.push(n);
            }
        } else if let Some(n) = name("Removed server ") {
            // NTP= and FallbackNTP= never name the same server here.
            ntp.retain(|s| *s != n);
            fallback.retain(|s| *s != n);
        }
    }
    Ok(Truth {
        on_disk,
        compress,
        forward,
        coredump_storage,
        coredump_size,
        ntp,
        fallback,
    })
}

/// Keeps the first of each name, as timesyncd does.
fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

fn compare(copy: &RootCopy) -> String {
    let t = match oracle(copy) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let a = match agent_facts("systemd-conf", &copy.root, &[]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut what = String::new();
    let mut check = |name: &str, sys: String, agent: String, ev: &serde_json::Value| {
        if sys != agent {
            what += &format!("  {name}: the root's program says {sys}, the agent {agent} ({ev})\n");
        }
    };
    let j = &a["journald"];
    check(
        "journal kept on disk",
        t.on_disk.to_string(),
        a["journald_persistent"].to_string(),
        &j["Storage"]["evidence"],
    );
    // With Storage=none journald opens no journal and prints no effective settings.
    if t.compress.is_some() {
        check(
            "journald Compress",
            format!("{:?}", t.compress.as_deref()),
            format!("{:?}", j["Compress"]["value"].as_str()),
            &j["Compress"]["evidence"],
        );
    }
    check(
        "journald ForwardToSyslog",
        t.forward.clone(),
        j["ForwardToSyslog"]["value"]
            .as_str()
            .unwrap_or("null")
            .to_string(),
        &j["ForwardToSyslog"]["evidence"],
    );
    let c = &a["coredump"];
    check(
        "coredump Storage",
        format!("{:?}", t.coredump_storage.as_deref()),
        format!("{:?}", c["Storage"]["value"].as_str()),
        &c["Storage"]["evidence"],
    );
    check(
        "coredump ProcessSizeMax",
        format!("{:?}", t.coredump_size.as_deref()),
        format!("{:?}", c["ProcessSizeMax"]["value"].as_str()),
        &c["ProcessSizeMax"]["evidence"],
    );
    let words = |v: &serde_json::Value| -> Vec<String> {
        dedup(
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        )
    };
    check(
        "timesyncd NTP",
        format!("{:?}", dedup(t.ntp.clone())),
        format!("{:?}", words(&a["timesyncd_ntp"])),
        &serde_json::Value::Null,
    );
    check(
        "timesyncd FallbackNTP",
        format!("{:?}", dedup(t.fallback.clone())),
        format!("{:?}", words(&a["timesyncd_fallback"])),
        &serde_json::Value::Null,
    );
    what
}

/// Runs the journald/coredump/timesyncd family: generate, start the daemons,
/// compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let read = |p: &str| std::fs::read_to_string(copy.path(p)).unwrap_or_default();
    let debian = [
        read("/etc/systemd/journald.conf"),
        read("/etc/systemd/coredump.conf"),
        read("/etc/systemd/timesyncd.conf"),
    ];
    let mut rng = Rng::new(settings.seed ^ 0x004a_4f55_524e_414c);
    let mut tally = Tally::new("journald", settings);
    while tally.more() {
        copy.remove("/var/log/journal");
        let mut desc = String::new();
        if rng.chance(50) {
            copy.mkdir("/var/log/journal");
            desc += "/var/log/journal/ exists\n";
        }
        for (family, main) in [JOURNALD, COREDUMP, TIMESYNCD].iter().zip(&debian) {
            desc += &generate_family(&mut rng, &copy, family, main);
        }
        let what = compare(&copy);
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    tally
}
