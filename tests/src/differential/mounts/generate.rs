//! The mounts family's configurations: /etc/fstab lines (entries of 1 to 6 fields,
//! bind lines, comments), `.mount` units beside them, enabled or masked, and
//! drop-ins.

use super::super::{Placed, Rng, RootCopy};
use super::PATHS;

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
pub(in super::super) const OPTIONS: &[&str] = &[
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
pub(super) fn generate(rng: &mut Rng, copy: &RootCopy) -> (String, bool) {
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
