//! mounts: what the root's own systemd 252 mounts at boot from generated /etc/fstab
//! files and `.mount` units, and with which flags; the agent (`rampart-agent facts
//! mounts`) must agree, per mount point of the CIS partition rules, on whether the
//! path is mounted at boot as its own mount and on its nodev, nosuid and noexec flags.
//!
//! The oracle, chrooted into the copy in a private mount namespace:
//!
//! - `systemd-fstab-generator` turns /etc/fstab into mount units in
//!   /run/systemd/generator (with `SYSTEMD_PROC_CMDLINE` empty, so the host's kernel
//!   command line plays no part). It reads fstab with getmntent(3), not libmount, so
//!   it is its reading, not `findmnt --fstab`'s, that counts at boot: a line of two
//!   fields still mounts, and of two entries for one mount point the first wins (the
//!   second unit file "already exists"). `noauto` entries get a unit but no
//!   `local-fs.target` link.
//! - The root's own manager decides what is mounted at boot: `systemd --test
//!   --system`, as nobody, runs the generators, loads the units of the boot
//!   transaction with their drop-ins and prints them and the transaction's jobs. A
//!   mount unit is mounted at boot when the transaction has a start job for it —
//!   the generator's `local-fs.target` links, enablement, but also Debian's
//!   basic.target (`Wants=tmp.mount`, `RequiresMountsFor=/var /var/tmp`) and any
//!   unit's `RequiresMountsFor=` (systemd-journal-flush's /var/log/journal), which
//!   pull in a unit that exists, enabled or not, `noauto` or not — and What=, Type=
//!   and Options= are the manager's. A configuration for which it makes no boot
//!   transaction, or drops the job of a mount unit that a unit of the transaction
//!   pulls in, the generator links or is enabled (all ordering cycles: fstab mounts
//!   ordered in a cycle, a swap file on /tmp, a local mount below a `_netdev` one),
//!   is not compared.
//!   `systemd-analyze unit-files` and `systemctl is-enabled` only describe a
//!   difference.
//! - The kernel decides the flags: the root's own mount(8) mounts a tmpfs with the
//!   unit's `Options=` (systemd hands them to mount(8) as `-o`), and `findmnt`
//!   reads the per-mount flags back. So mount(8) applies options left to right and
//!   the last of `exec`/`noexec` (`dev`/`nodev`, `suid`/`nosuid`) wins, `defaults`
//!   changes none of the three, and `user`/`users` set all three and
//!   `owner`/`group` set nosuid and nodev, for root (who mounts at boot) too, until a
//!   later option clears them — what this test observes, on every options string it
//!   generates (util-linux 2.38.1, Debian 12). Options the kernel refuses (an
//!   upper-case `NODEV`, `size=2GB`) make the mount fail at boot: a tmpfs so
//!   configured is not mounted, and the agent must not count it separate. Where the
//!   agent says it cannot tell offline whether the kernel takes an option (it
//!   depends on the kernel: `mpol=`, `noswap`), not counting the mount is allowed;
//!   the flags of other types' refused options are not compared (the probe mounts a
//!   tmpfs, or the unit's type where it is tmpfs in another case, which fails).
//!
//! - Bind mounts (`bind`, `rbind`; sources that are directories, missing, files,
//!   relative, on /dev or /run, tags): the kernel ignores a bind's type and file
//!   system options, so a bind the probe cannot make is not mounted whatever its
//!   type, and util-linux's remount gives it the flags of its options when they
//!   name one (else those of its source's mount, none in the probe, as on a root
//!   file system mounted without them).
//! - Drop-ins (`tmp.mount.d`, the dash prefix's `var-.mount.d`, the type's
//!   `mount.d`, in /etc, /etc/systemd/system.control, /run and /usr/lib; one file
//!   name in several of them, empty `Options=` resets, masks, continued lines, `#`
//!   after a value, a section in the wrong case).
//!
//! /dev/shm is left out: systemd mounts it itself and the fstab generator ignores it
//! (an API file system); its fstab options only reach it through
//! systemd-remount-fs, which the `shm` family runs.
//!
//! The Ubuntu benchmarks' mount rules judge the same boot mounts through the same
//! reader, so this comparison serves every benchmark.

use std::collections::{HashMap, HashSet};

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};

/// The mount points compared (those of the CIS partition rules but /dev/shm).
const PATHS: &[&str] = &[
    "/tmp",
    "/var",
    "/var/tmp",
    "/var/log",
    "/var/log/audit",
    "/home",
];

/// Mount points as an fstab line may spell them.
const TARGETS: &[&str] = &[
    "/tmp",
    "/tmp",
    "/tmp/",
    "//tmp",
    "/var",
    "/var/",
    "/var/tmp",
    "/var/tmp",
    "/var/log",
    "/var/log/audit",
    "/var/log/audit/",
    "/home",
    "/home",
    "/home\\040old",
    "/var/log\\040x",
    "none",
];

const SOURCES: &[&str] = &[
    "tmpfs",
    "UUID=0000-0002",
    "LABEL=data",
    "/dev/sdb1",
    "/var/tmp",
    "/tmp",
];

const TYPES: &[&str] = &["tmpfs", "tmpfs", "ext4", "xfs", "none", "auto", "swap"];

/// Options: the three flags and their opposites, options that look as if they set
/// them, options for systemd and mount(8) alone, and some in the wrong case (the shm
/// family draws from them too).
pub(super) const OPTIONS: &[&str] = &[
    "defaults",
    "defaults",
    "rw",
    "ro",
    "nodev",
    "nodev",
    "dev",
    "nosuid",
    "nosuid",
    "suid",
    "noexec",
    "noexec",
    "exec",
    "noauto",
    "auto",
    "nofail",
    "user",
    "users",
    "owner",
    "group",
    "mode=1777",
    "size=64m",
    "relatime",
    "strictatime",
    "x-systemd.device-timeout=5s",
    "_netdev",
    "bind",
    "NODEV",
    "NoExec",
    "size=2GB",
    "mode=abc",
    "mpol=interleave",
];

/// The `.mount` units generated beside fstab.
const UNITS: &[(&str, &str)] = &[("tmp.mount", "/tmp"), ("var-tmp.mount", "/var/tmp")];

/// Where generated unit files go.
const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
];

/// Where drop-ins are generated (/lib is /usr/lib on Debian 12).
const DROPIN_DIRS: &[&str] = &[
    "/etc/systemd/system",
    "/etc/systemd/system.control",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
];

/// The drop-in directory names: the compared units' own, their dash prefixes' and
/// the type's (`mount.d`, read for every mount unit).
const DROPIN_NAMES: &[&str] = &[
    "tmp.mount.d",
    "tmp.mount.d",
    "var-tmp.mount.d",
    "var-.mount.d",
    "var.mount.d",
    "var-log.mount.d",
    "var-log-.mount.d",
    "home.mount.d",
    "mount.d",
];

/// Drop-in file names: sorted before and after each other, the same name in several
/// directories, and names systemd does not read.
const DROPIN_FILES: &[&str] = &[
    "10-a.conf",
    "50-x.conf",
    "50-x.conf",
    "99-z.conf",
    "override.conf",
    "50-x.conf.bak",
];

/// Writes one drop-in; returns its description.
fn dropin(rng: &mut Rng, copy: &RootCopy) -> String {
    let path = format!(
        "{}/{}/{}",
        rng.pick(DROPIN_DIRS),
        rng.pick(DROPIN_NAMES),
        rng.pick(DROPIN_FILES)
    );
    let (a, b) = (options(rng), options(rng));
    let text = match rng.below(12) {
        0 => return copy.place(&path, Placed::Link("/dev/null")),
        1 => return copy.place(&path, Placed::Empty),
        2 => "[Mount]\nOptions=\n".to_string(),
        3 => format!("[Mount]\nOptions=\nOptions={a}\n"),
        4 => format!("[Mount]\nOptions={a},\\\n{b}\n"),
        5 => format!("[Mount]\nOptions={a} # note\n"),
        6 => format!("[mount]\nOptions={a}\n"),
        7 => format!("[Mount]\n; Options=nodev,nosuid,noexec\n# Options=nodev\nOptions={a}\n"),
        8 => format!("[Unit]\nDescription=x\n[Mount]\n  Options = {a}\n"),
        _ => format!("[Mount]\nOptions={a}\n"),
    };
    copy.place(&path, Placed::Text(&text))
}

fn unit_name(path: &str) -> String {
    format!("{}.mount", path.trim_start_matches('/').replace('/', "-"))
}

fn options(rng: &mut Rng) -> String {
    let n = rng.below(5);
    let v: Vec<&str> = (0..n).map(|_| *rng.pick(OPTIONS)).collect();
    v.join(",")
}

/// Sources of bind lines: directories of the root, missing paths, a file, a relative
/// path read from `/`, paths on other mounts or on the init system's own, a tag, and
/// /tmpfs, which [`generate`] makes a directory, a file, a link or nothing.
const BIND_SOURCES: &[&str] = &[
    "tmpfs",
    "tmpfs",
    "/tmpfs",
    "/var/tmp",
    "/tmp",
    "/srv",
    "/srv/tmp",
    "tmp",
    "/etc/hostname",
    "/var/log",
    "/var/lib/tmpdir",
    "/home",
    "/lib",
    "/dev/shm",
    "/run",
    "UUID=0000-0002",
];

/// A bind line: `bind` (or `rbind`, or `Bind`, which is no bind) among other options,
/// with a type the kernel ignores on a bind.
fn bind_line(rng: &mut Rng) -> String {
    let mut opts: Vec<String> = options(rng).split(',').map(String::from).collect();
    opts.retain(|o| !o.is_empty());
    let at = rng.below(opts.len() + 1);
    opts.insert(
        at,
        rng.pick(&["bind", "bind", "bind", "rbind", "Bind"])
            .to_string(),
    );
    format!(
        "{} {} {} {} 0 0",
        rng.pick(BIND_SOURCES),
        rng.pick(TARGETS),
        rng.pick(&["none", "none", "tmpfs", "ext4", "auto", "Tmpfs"]),
        opts.join(",")
    )
}

/// One fstab line: an entry with 1 to 6 fields, a bind line, or a comment or blank
/// line.
fn line(rng: &mut Rng) -> String {
    match rng.below(14) {
        0 => format!("# tmpfs {} tmpfs {} 0 0", rng.pick(PATHS), options(rng)),
        1 => format!("   #{}", rng.pick(PATHS)),
        2 => String::new(),
        3 | 4 => bind_line(rng),
        _ => {
            let mut opts = options(rng);
            if opts.is_empty() {
                opts = "defaults".into();
            }
            let fields = [
                rng.pick(SOURCES).to_string(),
                rng.pick(TARGETS).to_string(),
                rng.pick(TYPES).to_string(),
                opts,
                "0".into(),
                rng.pick(&["0", "2"]).to_string(),
            ];
            let n = *rng.pick(&[1, 2, 3, 4, 4, 4, 5, 6, 6, 6, 6, 6]);
            let mut s = rng.pick(&["", "", " ", "\t"]).to_string();
            for (i, f) in fields[..n].iter().enumerate() {
                if i > 0 {
                    s += *rng.pick(&[" ", " ", "\t", "  ", " \t "]);
                }
                s += f;
            }
            if n == 6 && rng.chance(15) {
                s += " # note";
            }
            s
        }
    }
}

/// Builds one configuration in the copy; returns its description and whether it
/// has drop-ins.
fn generate(rng: &mut Rng, copy: &RootCopy) -> (String, bool) {
    for (name, _) in UNITS {
        for dir in UNIT_DIRS {
            copy.remove(&format!("{dir}/{name}"));
        }
    }
    for dir in DROPIN_DIRS {
        for name in DROPIN_NAMES {
            copy.remove(&format!("{dir}/{name}"));
        }
    }
    copy.remove("/etc/systemd/system/local-fs.target.wants");
    copy.remove("/tmpfs");
    match rng.below(5) {
        0 | 1 => copy.mkdir("/tmpfs"),
        2 => copy.write("/tmpfs", "not a directory\n"),
        3 => copy.link("/tmpfs", "srv"),
        _ => {}
    }
    let mut fstab = String::new();
    if rng.chance(85) {
        fstab += "UUID=0000-0001 / ext4 errors=remount-ro 0 1\n";
    }
    for _ in 0..rng.below(8) {
        fstab += &line(rng);
        fstab.push('\n');
    }
    copy.write("/etc/fstab", &fstab);
    let mut desc = format!("/etc/fstab:\n{fstab}");
    if rng.chance(35) {
        let (name, path) = *rng.pick(UNITS);
        let dir = *rng.pick(UNIT_DIRS);
        let file = format!("{dir}/{name}");
        match rng.below(4) {
            0 => {
                copy.link(&file, "/dev/null");
                desc += &format!("{file} -> /dev/null\n");
            }
            _ => {
                let text = if name == "tmp.mount" && rng.chance(40) {
                    std::fs::read_to_string(copy.path("/usr/share/systemd/tmp.mount"))
                        .expect("read the root's /usr/share/systemd/tmp.mount")
                } else {
                    format!(
                        "[Unit]\nDescription=probe\n[Mount]\nWhat=tmpfs\nWhere={path}\nType=tmpfs\nOptions={}\n[Install]\nWantedBy=local-fs.target\n",
                        options(rng)
                    )
                };
                copy.write(&file, &text);
                desc += &format!("{file}:\n{text}");
                if rng.chance(60) {
                    let link = format!("/etc/systemd/system/local-fs.target.wants/{name}");
                    copy.link(&link, &file);
                    desc += &format!("{link} -> {file} (enabled)\n");
                }
            }
        }
    }
    let dropins = rng.chance(30);
    if dropins {
        for _ in 0..1 + rng.below(3) {
            desc += &dropin(rng, copy);
        }
    }
    (desc, dropins)
}

/// systemd's answer for one mount point.
#[derive(Debug)]
struct Boot {
    /// The unit file systemd loads, `None` when none.
    fragment: Option<String>,
    /// `systemctl is-enabled`.
    state: String,
    /// Linked from local-fs.target by the generator.
    pulled: bool,
    /// The boot transaction has a start job for the unit.
    job: bool,
    /// Mounted at boot: with these options (as the manager loaded them).
    options: Option<String>,
    /// The unit's `Type=` and `What=` as the manager loaded them.
    fstype: String,
    what: String,
    /// The drop-ins the manager read.
    dropins: Vec<String>,
}

/// Runs the generator, `systemd-analyze unit-files` and `systemctl is-enabled`.
fn systemd(copy: &RootCopy) -> Result<Vec<Boot>, String> {
    let script = "G=/run/systemd/generator; rm -rf $G; mkdir -p $G
SYSTEMD_PROC_CMDLINE= /usr/lib/systemd/system-generators/systemd-fstab-generator $G $G $G 2>/dev/null
echo '#ids'; systemd-analyze unit-files 2>/dev/null | sed -n 's/^ids: //p'
echo '#enabled'; for u; do echo \"$u $(systemctl --root=/ is-enabled \"$u\" 2>/dev/null)\"; done";
    let names: Vec<String> = PATHS.iter().map(|p| unit_name(p)).collect();
    let mut args = vec!["sh", "-c", script, "sh"];
    args.extend(names.iter().map(String::as_str));
    let out = copy.chroot(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    let (ids, enabled) = text
        .split_once("#enabled\n")
        .ok_or_else(|| format!("the systemd oracle printed no answer: {out:?}"))?;
    let ids: HashMap<&str, &str> = ids.lines().filter_map(|l| l.split_once(" → ")).collect();
    let states: HashMap<&str, &str> = enabled
        .lines()
        .map(|l| l.split_once(' ').unwrap_or((l, "")))
        .collect();
    let gen = copy.path("/run/systemd/generator");
    Ok(names
        .iter()
        .map(|name| {
            let fragment = ids.get(name.as_str()).map(|s| s.to_string());
            let state = states.get(name.as_str()).unwrap_or(&"").to_string();
            let pulled = [
                "local-fs.target.requires",
                "local-fs.target.wants",
                "remote-fs.target.requires",
                "remote-fs.target.wants",
            ]
            .iter()
            .any(|d| std::fs::symlink_metadata(gen.join(d).join(name)).is_ok());
            // What=, Type= and Options= come from the manager ([`manager`]).
            Boot {
                fragment,
                state,
                pulled,
                job: false,
                options: None,
                fstype: String::new(),
                what: String::new(),
                dropins: Vec::new(),
            }
        })
        .collect())
}

/// A mount unit as the manager loads it: `What=`, `Type=`, `Options=` after every
/// drop-in, and the drop-ins it read.
#[derive(Debug, Default)]
struct Loaded {
    what: String,
    fstype: String,
    options: String,
    dropins: Vec<String>,
    /// `Unit Load State` (`loaded`, `masked`, `not-found`, `bad-setting`…).
    state: String,
    /// The units whose Requires=, Wants=, BindsTo= or Upholds= name it.
    pulled_by: Vec<String>,
}

/// The units the manager loaded, by name, and those the boot transaction starts.
type Transaction = (HashMap<String, Loaded>, HashSet<String>);

/// The root's own systemd in test mode (`systemd --test --system`, as nobody: it
/// refuses root), which runs the generators, loads the boot transaction's units with
/// their drop-ins and prints them: what the manager would mount, per unit name.
fn manager(copy: &RootCopy) -> Result<Option<Transaction>, String> {
    // Not PID 1 (systemd freezes there on exit); /sys and a cgroup2 hierarchy, which
    // it needs to start, mounted in the private namespace.
    let script = "mount -t sysfs sysfs /sys && mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup || exit 9
setpriv --reuid=65534 --regid=65534 --clear-groups env SYSTEMD_LOG_LEVEL=emerg SYSTEMD_PROC_CMDLINE= \\
  /lib/systemd/systemd --test --system --no-pager; echo \"#rc $?\"";
    let out = copy.chroot_sh(script, 60);
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim() == "#rc 1" {
        // No boot transaction: mounts that fstab orders in a cycle (/tmp on /var/tmp
        // on /var on /tmp). The system would not boot as configured; not compared.
        return Ok(None);
    }
    if !text.contains("#rc 0") {
        return Err(format!("  systemd --test did not answer: {out:?}"));
    }
    // The boot transaction's jobs: `\t\tAction: NAME -> start` after `-> By jobs:`.
    let (text, jobs_text) = text.split_once("\n-> By jobs:").unwrap_or((&text, ""));
    let jobs: HashSet<String> = jobs_text
        .lines()
        .filter_map(|l| l.strip_prefix("\t\tAction: ")?.strip_suffix(" -> start"))
        .map(String::from)
        .collect();
    let mut units = HashMap::new();
    let mut current: Option<(String, Loaded)> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("\t-> Unit ")
            .and_then(|n| n.strip_suffix(':'))
        {
            if let Some((n, l)) = current.take() {
                units.insert(n, l);
            }
            current = Some((name.to_string(), Loaded::default()));
            continue;
        }
        if !line.starts_with("\t\t") {
            if let Some((n, l)) = current.take() {
                units.insert(n, l);
            }
            continue;
        }
        let Some((_, l)) = current.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.trim_start().split_once(": ") else {
            continue;
        };
        // systemd prints `n/a` for a setting it holds no value for.
        let value = if value == "n/a" { "" } else { value };
        match key {
            "What" => l.what = value.to_string(),
            "File System Type" => l.fstype = value.to_string(),
            "Options" => l.options = value.to_string(),
            "DropIn Path" => l.dropins.push(value.to_string()),
            "Unit Load State" => l.state = value.to_string(),
            "RequiredBy" | "WantedBy" | "BoundBy" | "UpheldBy" => {
                // `NAME (destination-file)`: the unit and where the dependency came from.
                let name = value.split(" (").next().unwrap_or(value);
                l.pulled_by.push(name.to_string());
            }
            _ => {}
        }
    }
    if let Some((n, l)) = current {
        units.insert(n, l);
    }
    Ok(Some((units, jobs)))
}

/// The flags a mount gets: nodev, nosuid, noexec.
type Flags = [bool; 3];
const FLAGS: [&str; 3] = ["nodev", "nosuid", "noexec"];

/// A mount as the probe makes it: the unit's `What=`, `Options=` and type (the
/// unit's `Type=` when it is tmpfs in any case, else tmpfs: only a bind's outcome is
/// compared for other types, and the kernel ignores a bind's type).
type Probe = (String, String, String);

/// The type the probe mounts for a unit's `Type=`.
fn probe_type(fstype: &str) -> String {
    if fstype.eq_ignore_ascii_case("tmpfs") {
        fstype.to_string()
    } else {
        "tmpfs".to_string()
    }
}

/// The kernel's reading of each mount, asked once per source and options string.
#[derive(Default)]
struct Kernel(HashMap<Probe, Option<Flags>>);

impl Kernel {
    /// Mounts a tmpfs from each new source with its options through the root's
    /// mount(8) and reads the flags back (`None`: the mount fails). The source
    /// matters to mount(8) alone: a tag it cannot find, or a bind mount of a path.
    fn ask(&mut self, copy: &RootCopy, all: &[Probe]) -> Result<(), String> {
        let mut new: Vec<&Probe> = all.iter().filter(|p| !self.0.contains_key(*p)).collect();
        new.sort_unstable();
        new.dedup();
        if new.is_empty() {
            return Ok(());
        }
        let script = "mount -t proc proc /proc || exit 9
cd /; P=/.rampart-probe; i=0
while [ $# -gt 2 ]; do s=$1; o=$2; t=$3; shift 3; i=$((i+1)); d=$P/$i; mkdir -p $d
  if [ -z \"$o\" ]; then mount -t \"$t\" \"$s\" $d; else mount -t \"$t\" -o \"$o\" \"$s\" $d; fi 2>/dev/null \\
    && findmnt -n -o VFS-OPTIONS --mountpoint $d || echo FAIL
done";
        let mut args = vec!["sh", "-c", script, "sh"];
        for (what, options, fstype) in &new {
            args.push(what);
            args.push(options);
            args.push(fstype);
        }
        let out = copy.chroot(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        if !out.status.success() || lines.len() != new.len() {
            return Err(format!("mount(8) in the root did not answer: {out:?}"));
        }
        for (p, l) in new.iter().zip(lines) {
            let flags = (l.trim() != "FAIL").then(|| {
                let set: Vec<&str> = l.trim().split(',').collect();
                FLAGS.map(|f| set.contains(&f))
            });
            self.0.insert((*p).clone(), flags);
        }
        Ok(())
    }

    /// Forgets the answers for bind mounts, which depend on the source in the root
    /// (a configuration changes it), not on the options alone.
    fn forget_binds(&mut self) {
        self.0
            .retain(|(_, o, _), _| !o.split(',').any(|o| o == "bind" || o == "rbind"));
    }

    /// What the kernel did with the mount of `b`, if systemd mounts it at boot.
    fn of(&self, b: &Boot) -> Option<Option<Flags>> {
        let o = b.options.as_ref()?;
        Some(self.0[&(b.what.clone(), o.clone(), probe_type(&b.fstype))])
    }
}

/// The agent's answer per path: separate, flags, and its evidence.
fn agent(copy: &RootCopy) -> Result<Vec<(bool, Flags, String)>, String> {
    let args: Vec<String> = PATHS
        .iter()
        .flat_map(|p| ["--path".to_string(), p.to_string()])
        .collect();
    let v = agent_facts("mounts", &copy.root, &args)?;
    Ok(PATHS
        .iter()
        .map(|p| {
            let e = &v[*p];
            let b = |k: &str| e[k].as_bool().unwrap_or(false);
            (
                b("separate"),
                FLAGS.map(b),
                format!("options {}; {}", e["options"], e["evidence"]),
            )
        })
        .collect())
}

/// Runs the mounts family: generate, ask systemd and the kernel, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    // /usr hard-linked: nothing here writes into an existing file (unit files are
    // created and unlinked, the generator writes under /run, mount(8) under /run).
    let copy = RootCopy::sharing_usr(original);
    let mut rng = Rng::new(settings.seed ^ 0x4d4f_554e_5453);
    let mut tally = Tally::new("mounts", settings);
    let mut kernel = Kernel::default();
    let mut undecided_count = 0;
    let mut manager_runs = 0;
    let mut no_transaction = 0;
    let mut boot_only = 0;
    while tally.more() {
        let (desc, dropins) = generate(&mut rng, &copy);
        kernel.forget_binds();
        let answer = systemd(&copy)
            .and_then(|mut boot| {
                // The manager decides: a mount unit is mounted at boot when the boot
                // transaction has a start job for it, with What=, Type= and Options=
                // as the manager loaded them (drop-ins and all).
                let Some((loaded, jobs)) = manager(&copy)? else {
                    return Ok(None);
                };
                // A loaded mount unit that a unit of the transaction pulls in, with no
                // job of its own: systemd dropped it to break an ordering cycle (a swap
                // file on /tmp, which tmp.mount orders after swap.target; a `_netdev`
                // /var/log). The system would not boot as configured; not compared.
                // So is one that the generator linked from local-fs.target or
                // remote-fs.target, or that is enabled, when it has no job: the units
                // that pulled it in lost theirs to the same cycle.
                let dropped = PATHS.iter().zip(&boot).any(|(p, b)| {
                    let name = unit_name(p);
                    loaded.get(&name).is_some_and(|l| {
                        l.state == "loaded"
                            && !jobs.contains(&name)
                            && (l.pulled_by.iter().any(|u| jobs.contains(u))
                                || b.pulled
                                || b.state.starts_with("enabled"))
                    })
                });
                if dropped {
                    return Ok(None);
                }
                for (b, path) in boot.iter_mut().zip(PATHS) {
                    let name = unit_name(path);
                    b.job = jobs.contains(&name);
                    let l = loaded.get(&name);
                    b.options = b
                        .job
                        .then(|| l.map(|l| l.options.clone()).unwrap_or_default());
                    if let Some(l) = l {
                        b.what = l.what.clone();
                        b.fstype = l.fstype.clone();
                        b.dropins = l.dropins.clone();
                    }
                }
                manager_runs += usize::from(dropins);
                Ok(Some(boot))
            })
            .and_then(|boot| {
                let Some(boot) = boot else {
                    return Ok(None);
                };
                let probes: Vec<Probe> = boot
                    .iter()
                    .filter_map(|b| {
                        Some((b.what.clone(), b.options.clone()?, probe_type(&b.fstype)))
                    })
                    .collect();
                kernel.ask(&copy, &probes)?;
                Ok(Some(boot))
            });
        let (boot, ours) = match answer.map(|b| b.map(|b| (b, agent(&copy)))) {
            Ok(None) => {
                no_transaction += 1;
                continue;
            }
            Ok(Some((b, Ok(ours)))) => (b, ours),
            Ok(Some((_, Err(e)))) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        boot_only += boot
            .iter()
            .filter(|b| b.job && !b.pulled && !b.state.starts_with("enabled"))
            .count();
        let mut what = String::new();
        for ((path, b), (separate, flags, how)) in PATHS.iter().zip(&boot).zip(&ours) {
            let why = format!(
                "unit file {:?}, drop-ins {:?}, is-enabled {:?}, generator link {}, boot job {}, type {:?}, options {:?}",
                b.fragment, b.dropins, b.state, b.pulled, b.job, b.fstype, b.options
            );
            // A tmpfs whose options the kernel refuses is not mounted at boot.
            // So is a bind mount whose source mount(8) cannot bind (the kernel
            // ignores the type and the file system options of a bind: the probe's
            // tmpfs plays no part).
            let bind = b
                .options
                .as_deref()
                .is_some_and(|o| o.split(',').any(|o| o == "bind" || o == "rbind"));
            let refused =
                (b.fstype.eq_ignore_ascii_case("tmpfs") || bind) && kernel.of(b) == Some(None);
            let mounted = b.options.is_some() && !refused;
            // Where the agent cannot tell whether the kernel takes an option, it does
            // not count the mount as separate: stricter than the kernel is allowed.
            let undecided = how.contains("cannot be told offline");
            undecided_count += usize::from(undecided);
            if mounted && !*separate && undecided {
                // Its flags are still those of the options as written.
            } else if mounted != *separate {
                what += &format!(
                    "  {path}: systemd {} it at boot ({why}); the agent says {} ({how})\n",
                    if mounted { "mounts" } else { "does not mount" },
                    if *separate {
                        "separate"
                    } else {
                        "not separate"
                    }
                );
                continue;
            }
            let Some(Some(truth)) = kernel.of(b) else {
                continue;
            };
            for ((f, t), a) in FLAGS.iter().zip(truth).zip(flags) {
                if t != *a {
                    what += &format!(
                        "  {path} {f}: the kernel {} it ({why}); the agent says {} ({how})\n",
                        if t { "sets" } else { "does not set" },
                        if *a { "set" } else { "not set" }
                    );
                }
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    println!(
        "differential mounts: {manager_runs} configurations with drop-ins; in {boot_only} mount point(s) the transaction pulls in a unit neither enabled nor linked by the generator; {no_transaction} more not compared (an ordering cycle among the mounts: systemd --test made no boot transaction, or dropped the job of a mount unit that the transaction pulls in)"
    );
    println!(
        "differential mounts: in {undecided_count} mount point(s) of {} configurations the agent could not tell whether the kernel takes a tmpfs option",
        tally.compared
    );
    tally
}
