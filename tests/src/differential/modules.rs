//! Kernel modules: the root's own kmod 30 (`modprobe` of Debian's kmod
//! 30+20221128-1) reads generated modprobe.d configurations, chrooted in a private
//! mount namespace, for the root's kernel (`-S VERSION`: the host runs another one);
//! the agent (`rampart-agent facts modules`) must agree, for every module the kmod
//! rules name:
//!
//! - blacklisted or not: a `blacklist NAME` line in `modprobe --showconfig` (kmod's
//!   own parse of every file it read; `blacklist` compares names exactly);
//! - the modules `modprobe -R NAME` finds (configuration aliases first);
//! - what `modprobe -n -v NAME` does with the module itself when the name finds it:
//!   the `install` command it would run with the options it passes, the object it
//!   would insmod, or nothing (built in). The module's own line is the one that
//!   insmods its object or else the last one (dependencies and `pre:` soft
//!   dependencies come first; with soft dependencies modprobe insmods the module);
//! - the rule's verdict, recomputed from those answers: built in fails, absent
//!   passes, otherwise the module passes only when modprobe would run an install
//!   command that does nothing (`/bin/false`, `/bin/true`, … as /bin/sh reads it)
//!   and it is blacklisted.
//!
//! Every module is made loadable in the copy's kernel: the ones its kernel lacks get
//! an object copied from a small module without aliases or exported symbols, and the
//! root's own `depmod` rebuilds the indexes. Now and then modules are made built in
//! (listed in modules.builtin) or absent instead.
//!
//! What the oracle cannot see: a module whose name a configuration alias takes
//! elsewhere and which is blacklisted (modprobe never reaches its install command by
//! name or by alias; the verdict is then not compared, and counted); the kernel
//! command line (`modprobe.blacklist=`: no /proc in the chroot); loaded modules
//! (offline root); several kernels (the root has one); modprobe actually running an
//! install command (only dry runs). Left out of the generator: a module found only
//! through an install line that also has soft dependencies prints nothing of its own,
//! so no softdep lines while a module is absent; and a link that leads nowhere hides
//! the same name in a later directory or not depending on uninitialised memory in
//! kmod 30 (`fstatat`'s result is not checked; kmod 34 never hides), so such a link
//! becomes an empty file when a later directory has its name.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use super::{agent_facts, Rng, RootCopy, Settings, Tally};

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
const DEBIAN_FILES: &[&str] = &["aliases.conf", "fbdev-blacklist.conf", "systemd.conf"];

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

/// The object copied for the modules the kernel lacks: a small module without
/// aliases, exported symbols, dependencies or soft dependencies.
const DUMMY: &str = "kernel/drivers/leds/trigger/ledtrig-default-on.ko";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Available,
    Builtin,
    Absent,
}

/// One module of the rules and its object in the copy's kernel.
struct Module {
    /// As the rules name it (`usb-storage`).
    name: String,
    /// Object path under /lib/modules/VERSION.
    object: String,
    /// Where its object is kept while it is built in or absent.
    store: PathBuf,
    state: State,
}

/// The copy's only kernel and the rules' modules in it.
struct Kernel {
    version: String,
    modules: Vec<Module>,
    builtin: String,
}

fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

impl Kernel {
    /// Makes every module loadable (see the module documentation).
    fn new(copy: &RootCopy, names: &[String]) -> Kernel {
        let versions: Vec<String> = fs::read_dir(copy.path("/lib/modules"))
            .expect("list /lib/modules of the copy")
            .map(|e| {
                e.expect("read /lib/modules")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(
            versions.len(),
            1,
            "the Debian root should have one kernel under /lib/modules: {versions:?}"
        );
        let version = versions[0].clone();
        let base = copy.path(&format!("/lib/modules/{version}"));
        let dep = fs::read_to_string(base.join("modules.dep")).expect("read modules.dep");
        let store = copy
            .root
            .parent()
            .expect("the copy's directory")
            .join("objects");
        fs::create_dir_all(&store).expect("make the object store");
        let modules = names
            .iter()
            .map(|name| {
                let known = dep
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(o, _)| {
                        let file = o.rsplit('/').next().unwrap_or(o);
                        canonical(file.split(".ko").next().unwrap_or(file)) == canonical(name)
                    });
                let (object, source) = match known {
                    Some((o, _)) => (o.to_string(), o.to_string()),
                    None => (format!("kernel/rampart/{name}.ko"), DUMMY.to_string()),
                };
                let kept = store.join(format!("{name}.ko"));
                fs::copy(base.join(&source), &kept)
                    .unwrap_or_else(|e| panic!("copy {source} of the root's kernel: {e}"));
                Module {
                    name: name.clone(),
                    object,
                    store: kept,
                    state: State::Absent,
                }
            })
            .collect();
        let builtin = fs::read_to_string(base.join("modules.builtin")).unwrap_or_default();
        let mut k = Kernel {
            version,
            modules,
            builtin,
        };
        k.apply(copy, &vec![State::Available; names.len()]);
        k
    }

    /// Puts each module in its state and has the root's depmod rebuild the indexes.
    fn apply(&mut self, copy: &RootCopy, states: &[State]) {
        let base = copy.path(&format!("/lib/modules/{}", self.version));
        let mut builtin = self.builtin.clone();
        for (m, s) in self.modules.iter_mut().zip(states) {
            m.state = *s;
            let object = base.join(&m.object);
            let _ = fs::remove_file(&object);
            match s {
                State::Available => {
                    fs::create_dir_all(object.parent().expect("object directory"))
                        .expect("make the object's directory");
                    fs::copy(&m.store, &object).expect("put a module object in place");
                }
                State::Builtin => builtin += &format!("{}\n", m.object),
                State::Absent => {}
            }
        }
        fs::write(base.join("modules.builtin"), builtin).expect("write modules.builtin");
        let out = copy.chroot(&["depmod", "-a", &self.version]);
        assert!(
            out.status.success(),
            "depmod in the copy failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn describe(&self) -> String {
        let of = |s: State| {
            self.modules
                .iter()
                .filter(|m| m.state == s)
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut d = String::new();
        for (s, label) in [(State::Builtin, "built in"), (State::Absent, "absent")] {
            let names = of(s);
            if !names.is_empty() {
                d += &format!("kernel {}: {label}: {names}\n", self.version);
            }
        }
        d
    }
}

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
fn generate(
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

/// What the root's modprobe says about one module.
#[derive(Debug, Default)]
struct ModuleTruth {
    /// `modprobe -R`: the modules the name finds (`None`: it finds none).
    lookup: Option<Vec<String>>,
    /// `modprobe -n -v`: the line for the module itself ("" for none), `None` when
    /// modprobe found nothing.
    by_name: Option<String>,
    /// The whole `modprobe -n -v` output.
    output: String,
    /// The options `modprobe -n -v -i` passes to the module's object.
    options: Option<String>,
}

struct Truth {
    blacklist: BTreeSet<String>,
    modules: BTreeMap<String, ModuleTruth>,
}

/// The oracle script: `--showconfig`, then per module `-R`, `-n -v`, and `-n -v -i`
/// (to learn the options) when `-n -v` would run an install command.
const SCRIPT: &str = r#"V=$1; shift
modprobe -c -S "$V" 2>/dev/null | sed '/^# End of configuration files/q'
for m in "$@"; do
  printf '@@ %s\n@R\n' "$m"; modprobe -R -S "$V" "$m" 2>/dev/null; printf '@rc %s\n' $?
  out=$(modprobe -n -v -S "$V" "$m" 2>/dev/null); rc=$?
  printf '@N\n%s\n@rc %s\n' "$out" $rc
  case "$out" in *install*)
    printf '@I\n'; modprobe -n -v -i -S "$V" "$m" 2>/dev/null; printf '@rc %s\n' $?;;
  esac
done
"#;

/// Whether an `insmod PATH …` line loads the object of module `m`.
fn insmods(line: &str, m: &str) -> bool {
    line.strip_prefix("insmod ")
        .and_then(|r| r.split(' ').next())
        .map(|p| {
            let file = p.rsplit('/').next().unwrap_or(p);
            canonical(file.split(".ko").next().unwrap_or(file)) == canonical(m)
        })
        .unwrap_or(false)
}

fn oracle(copy: &RootCopy, kernel: &Kernel) -> Result<Truth, String> {
    let mut args = vec!["sh", "-c", SCRIPT, "sh", kernel.version.as_str()];
    args.extend(kernel.modules.iter().map(|m| m.name.as_str()));
    let out = copy.chroot(&args);
    if !out.status.success() {
        return Err(format!("  the oracle script failed: {out:?}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blacklist = BTreeSet::new();
    let mut modules: BTreeMap<String, ModuleTruth> = BTreeMap::new();
    // Sections: (module, part, lines).
    let mut current: Option<(String, char)> = None;
    let mut lines: Vec<&str> = Vec::new();
    let mut in_config = true;
    for l in text.split('\n') {
        if in_config {
            if l.starts_with("# End of configuration files") {
                in_config = false;
            } else if let Some(name) = l.strip_prefix("blacklist ") {
                blacklist.insert(name.to_string());
            }
            continue;
        }
        if let Some(m) = l.strip_prefix("@@ ") {
            current = Some((m.to_string(), ' '));
            modules.entry(m.to_string()).or_default();
        } else if let Some(part) = l.strip_prefix('@').filter(|p| p.len() == 1) {
            if let Some(c) = &mut current {
                c.1 = part.chars().next().unwrap_or(' ');
            }
            lines.clear();
        } else if let Some(rc) = l.strip_prefix("@rc ") {
            let Some((m, part)) = &current else { continue };
            let ok = rc == "0";
            let t = modules.get_mut(m).expect("module section");
            match part {
                'R' => t.lookup = ok.then(|| lines.iter().map(|s| s.to_string()).collect()),
                'N' => {
                    t.output = lines.join("\n");
                    t.by_name = (ok || !lines.is_empty()).then(|| {
                        lines
                            .iter()
                            .find(|l| insmods(l, m))
                            .or(lines.last())
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    });
                }
                'I' => {
                    t.options = lines
                        .iter()
                        .find(|l| insmods(l, m))
                        .and_then(|l| l.strip_prefix("insmod "))
                        .and_then(|r| r.split_once(' '))
                        .map(|(_, o)| o.to_string());
                }
                _ => {}
            }
            lines.clear();
        } else if !l.is_empty() || !lines.is_empty() {
            lines.push(l);
        }
    }
    if let Some(m) = kernel
        .modules
        .iter()
        .find(|m| !modules.contains_key(&m.name))
    {
        return Err(format!(
            "  the oracle script printed nothing for {}: {out:?}",
            m.name
        ));
    }
    Ok(Truth { blacklist, modules })
}

/// An install command that does nothing, as the rules accept it: one of these words
/// once /bin/sh has dropped a comment and blanks (spaces and tabs).
fn does_nothing(cmd: &str) -> bool {
    let blank = |c: char| c == ' ' || c == '\t';
    let mut end = cmd.len();
    for (i, c) in cmd.char_indices() {
        if c == '#' && (i == 0 || cmd[..i].ends_with(blank)) {
            end = i;
            break;
        }
    }
    [
        "/bin/false",
        "/usr/bin/false",
        "false",
        "/bin/true",
        "/usr/bin/true",
        "true",
    ]
    .contains(&cmd[..end].trim_matches(blank))
}

/// The rule's verdict from modprobe's answers (`None`: they cannot tell).
fn expected(m: &Module, t: &ModuleTruth, blacklisted: bool) -> Option<bool> {
    match m.state {
        State::Builtin => return Some(false),
        State::Absent => return Some(true),
        State::Available => {}
    }
    let own = t.lookup.as_deref() == Some(&[canonical(&m.name)]);
    if !own {
        return (!blacklisted).then_some(false);
    }
    let line = t.by_name.as_deref()?;
    if insmods(line, &m.name) {
        return Some(false);
    }
    let cmd = line.strip_prefix("install ")?;
    let cmd = cmd.strip_suffix(&format!(" {}", t.options.as_deref()?))?;
    Some(does_nothing(cmd) && blacklisted)
}

/// Runs the modules family: generate, ask modprobe, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let mut tally = Tally::new("modules", settings);
    let names: Vec<String> = match agent_facts("modules", &copy.root, &[]) {
        Ok(v) => v["modules"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        Err(e) => {
            tally.differ("(the Debian root as it is)", &e);
            return tally;
        }
    };
    assert!(
        names.iter().any(|n| n == "usb-storage"),
        "the agent's kmod rules should name usb-storage: {names:?}"
    );
    let debian: Vec<(String, String)> = DEBIAN_FILES
        .iter()
        .map(|n| {
            let t = fs::read_to_string(copy.path(&format!("/usr/lib/modprobe.d/{n}")))
                .unwrap_or_else(|e| panic!("read Debian's /usr/lib/modprobe.d/{n}: {e}"));
            (n.to_string(), t)
        })
        .collect();
    // Named on the command line, the agent need not parse its content each time.
    let module_args: Vec<String> = names
        .iter()
        .flat_map(|n| ["--module".to_string(), n.clone()])
        .collect();
    let mut kernel = Kernel::new(&copy, &names);
    let mut rng = Rng::new(settings.seed ^ 0x004d_4f44_554c_4553);
    // Module verdicts compared, how many of them pass, and how many cannot be decided.
    let (mut verdicts, mut passes, mut unseen) = (0, 0, 0);
    while tally.more() {
        if rng.chance(12) {
            let states: Vec<State> = if rng.chance(40) {
                vec![State::Available; names.len()]
            } else {
                names
                    .iter()
                    .map(|_| match rng.below(100) {
                        0..=69 => State::Available,
                        70..=84 => State::Builtin,
                        _ => State::Absent,
                    })
                    .collect()
            };
            kernel.apply(&copy, &states);
        }
        let desc = generate(&mut rng, &copy, &kernel, &debian);
        let truth = match oracle(&copy, &kernel) {
            Ok(t) => t,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let agent = match agent_facts("modules", &copy.root, &module_args) {
            Ok(v) => v,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let mut what = String::new();
        for m in &kernel.modules {
            let a = &agent["modules"][&m.name];
            let t = &truth.modules[&m.name];
            let k = &a["kernels"][&kernel.version];
            let blacklisted = truth.blacklist.contains(&canonical(&m.name));
            if blacklisted != a["blacklist"].is_string() {
                what += &format!(
                    "  {}: modprobe --showconfig {} it, the agent says {}\n",
                    m.name,
                    if blacklisted {
                        "blacklists"
                    } else {
                        "does not blacklist"
                    },
                    a["blacklist"]
                );
            }
            let mut ours: Vec<String> = k["lookup"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let mut theirs = t.lookup.clone().unwrap_or_default();
            ours.sort();
            theirs.sort();
            if ours != theirs {
                what += &format!(
                    "  {}: modprobe -R finds {theirs:?}, the agent {ours:?} (via {})\n",
                    m.name, k["via"]
                );
            }
            if t.lookup.as_deref() == Some(&[canonical(&m.name)]) {
                let line = t.by_name.as_deref().unwrap_or("(not found)");
                if k["by_name"].as_str() != Some(line) {
                    what += &format!(
                        "  {}: modprobe -n -v does {line:?} (all: {:?}), the agent says {}\n",
                        m.name, t.output, k["by_name"]
                    );
                }
            }
            match expected(m, t, blacklisted) {
                Some(pass) => {
                    verdicts += 1;
                    passes += usize::from(pass);
                    let verdict = if pass { "pass" } else { "fail" };
                    if a["verdict"] != verdict {
                        what += &format!(
                            "  {}: modprobe's answers make it {verdict}, the agent says {} ({})\n",
                            m.name, a["verdict"], a["evidence"]
                        );
                    }
                }
                None => unseen += 1,
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    println!(
        "differential modules: {verdicts} module verdicts compared ({passes} pass), {unseen} that modprobe's answers cannot decide"
    );
    tally
}
