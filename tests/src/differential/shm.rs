//! shm: the flags /dev/shm carries after boot, from generated /etc/fstab files; the
//! agent (`rampart-agent facts mounts --path /dev/shm`) must agree on nodev, nosuid
//! and noexec, and that /dev/shm is its own mount.
//!
//! /dev/shm is not mounted from fstab: systemd mounts it itself, early, as an API
//! file system (tmpfs, nosuid and nodev), and the fstab generator skips it. Its fstab
//! options reach it later, through systemd-remount-fs, which runs `mount -o remount`
//! for the API file systems fstab names; a remount sets the flags its options give and
//! clears the others, whatever `noauto` says. The oracle does the same in a private
//! mount namespace chrooted into the copy: it mounts a tmpfs on /dev/shm as systemd
//! does, runs the root's own `/lib/systemd/systemd-remount-fs` (systemd 252, which
//! calls the root's mount(8), util-linux 2.38.1), and reads the flags back with
//! `findmnt`. Also generated: a `dev-shm.mount` unit (written or masked), which the
//! oracle leaves alone — systemd does not mount again a file system mounted before
//! units, which is systemd's documented behaviour, not observed here — and a masked
//! systemd-remount-fs.service, with which the oracle does not run it. Where the agent
//! says it cannot tell whether the kernel takes an option, being stricter than the
//! kernel is allowed; a flag the agent says is set and the kernel does not is always
//! a difference.

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};

/// The flags compared.
const FLAGS: [&str; 3] = ["nodev", "nosuid", "noexec"];

/// Mount points as a line may spell them (some are not /dev/shm at all).
const TARGETS: &[&str] = &[
    "/dev/shm",
    "/dev/shm",
    "/dev/shm",
    "/dev/shm/",
    "//dev/shm",
    "/dev//shm",
    "/run/shm",
    "/dev/shm\\040x",
    "/tmp",
];

const SOURCES: &[&str] = &["tmpfs", "tmpfs", "none", "shm"];

const TYPES: &[&str] = &["tmpfs", "tmpfs", "tmpfs", "ramfs", "none", "swap"];

/// Options beyond the mounts family's ([`super::mounts::OPTIONS`]): more weight on
/// noexec, tmpfs's own options (valid and not), and mount(8)'s negations and
/// `user=`.
const EXTRA_OPTIONS: &[&str] = &[
    "noexec",
    "x-systemd.after=foo",
    "nogroup",
    "noowner",
    "nousers",
    "user=alice",
    "size=2G",
    "size=50%",
    "mpol=bind",
    "noswap",
    "quota",
    "inode64",
    "huge=never",
    "nr_inodes=10k",
    "foo",
];

/// One to five options, from the mounts family's list and [`EXTRA_OPTIONS`].
fn options(rng: &mut Rng) -> String {
    let n = 1 + rng.below(5);
    let shared = super::mounts::OPTIONS;
    let v: Vec<&str> = (0..n)
        .map(|_| {
            let i = rng.below(shared.len() + EXTRA_OPTIONS.len());
            shared
                .get(i)
                .copied()
                .unwrap_or_else(|| EXTRA_OPTIONS[i - shared.len()])
        })
        .collect();
    v.join(",")
}

/// One fstab line: an entry of 3 to 6 fields, or a comment.
fn line(rng: &mut Rng) -> String {
    if rng.chance(10) {
        return format!("# tmpfs /dev/shm tmpfs {} 0 0", options(rng));
    }
    let fields = [
        rng.pick(SOURCES).to_string(),
        rng.pick(TARGETS).to_string(),
        rng.pick(TYPES).to_string(),
        options(rng),
        "0".into(),
        "0".into(),
    ];
    let n = *rng.pick(&[3, 4, 4, 6, 6, 6]);
    fields[..n].join(*rng.pick(&[" ", "\t", "  "]))
}

/// Writes one configuration's /etc/fstab; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy) -> String {
    let mut fstab = String::from("UUID=0000-0001 / ext4 errors=remount-ro 0 1\n");
    for _ in 0..1 + rng.below(3) {
        fstab += &line(rng);
        fstab.push('\n');
    }
    copy.write("/etc/fstab", &fstab);
    let mut desc = format!("/etc/fstab:\n{fstab}");
    let (unit, masked) = (
        "/etc/systemd/system/dev-shm.mount",
        "/etc/systemd/system/systemd-remount-fs.service",
    );
    copy.remove(unit);
    copy.remove(masked);
    if rng.chance(15) {
        let t = format!(
            "[Mount]\nWhat=tmpfs\nWhere=/dev/shm\nType=tmpfs\nOptions={}\n",
            options(rng)
        );
        desc += &copy.place(unit, Placed::Text(&t));
    } else if rng.chance(5) {
        desc += &copy.place(unit, Placed::Link("/dev/null"));
    }
    if rng.chance(10) {
        desc += &copy.place(masked, Placed::Link("/dev/null"));
    }
    desc
}

/// The flags /dev/shm has after systemd-remount-fs, and what it said.
fn boot(copy: &RootCopy) -> Result<([bool; 3], String), String> {
    let script = "mount -t tmpfs -o nosuid,nodev,strictatime,mode=1777 tmpfs /dev/shm || exit 9
if [ \"$(readlink /etc/systemd/system/systemd-remount-fs.service)\" = /dev/null ]; then
  echo 'systemd-remount-fs.service masked: not run'
else /lib/systemd/systemd-remount-fs 2>&1; echo \"remount-fs exit $?\"; fi
echo \"flags $(findmnt -n -o VFS-OPTIONS --mountpoint /dev/shm)\"";
    let out = copy.chroot_sh(script, 30);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix("flags "))
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| format!("systemd-remount-fs in the root did not answer: {out:?}"))?;
    let set: Vec<&str> = flags.trim().split(',').collect();
    let said: Vec<&str> = text.lines().filter(|l| !l.starts_with("flags ")).collect();
    Ok((FLAGS.map(|f| set.contains(&f)), said.join("; ")))
}

/// Runs the shm family: generate, boot's remount, the agent, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    // /usr hard-linked: mount(8) writes under /run only.
    let copy = RootCopy::sharing_usr(original);
    let mut rng = Rng::new(settings.seed ^ 0x5348_4d00);
    let mut tally = Tally::new("shm", settings);
    let (mut changed, mut undecided_count) = (0, 0);
    while tally.more() {
        let desc = generate(&mut rng, &copy);
        let answer = boot(&copy).and_then(|b| {
            let v = agent_facts("mounts", &copy.root, &["--path".into(), "/dev/shm".into()])?;
            Ok((b, v["/dev/shm"].clone()))
        });
        let ((truth, said), ours) = match answer {
            Ok(x) => x,
            Err(e) => {
                tally.differ(&desc, &format!("  {e}\n"));
                tally.compared += 1;
                continue;
            }
        };
        if truth != [true, true, false] {
            changed += 1;
        }
        let how = format!("options {}; {}", ours["options"], ours["evidence"]);
        // Where the agent says it cannot tell whether the kernel takes an option, it
        // judges by the flags set either way: stricter than the kernel is allowed.
        let undecided = how.contains("cannot be told offline");
        undecided_count += usize::from(undecided);
        let mut what = String::new();
        if ours["separate"] != true {
            what += &format!(
                "  /dev/shm: systemd always mounts it; the agent says not separate ({how})\n"
            );
        }
        for (f, t) in FLAGS.iter().zip(truth) {
            let a = ours[*f].as_bool().unwrap_or(false);
            if t != a && !(undecided && t && !a) {
                what += &format!(
                    "  /dev/shm {f}: after boot's remount ({said}) the kernel {} it; the agent says {} ({how})\n",
                    if t { "sets" } else { "does not set" },
                    if a { "set" } else { "not set" }
                );
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    println!(
        "differential shm: {changed} of {} configurations changed /dev/shm's flags from systemd's own; in {undecided_count} the agent could not tell whether the kernel takes an option",
        tally.compared
    );
    tally
}
