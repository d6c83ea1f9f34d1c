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

use super::{agent_facts, Rng, RootCopy, Settings, Tally};

mod generate;

use generate::generate;
pub(super) use generate::OPTIONS;

/// The mount points compared (those of the CIS partition rules but /dev/shm).
const PATHS: &[&str] = &[
    "/tmp",
    "/var",
    "/var/tmp",
    "/var/log",
    "/var/log/audit",
    "/home",
];

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

fn unit_name(path: &str) -> String {
    format!("{}.mount", path.trim_start_matches('/').replace('/', "-"))
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
