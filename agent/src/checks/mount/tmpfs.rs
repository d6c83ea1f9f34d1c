//! Whether the kernel takes a tmpfs mount's options, as far as can be told offline:
//! an option it refuses makes the mount (or remount) fail, and the path keeps what it
//! had. The flags and the options mount(8) keeps for itself always pass; a known flag
//! in another case (`NoExec`) reaches tmpfs as its own option and is always refused;
//! tmpfs's own options pass with a value it reads. Anything else depends on the
//! kernel's release and build or on the mount's source: it cannot be told.

/// What the kernel does with one option.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    Takes,
    Refuses,
    Unknown,
}

/// A new tmpfs mount, or a remount of one (/dev/shm's at boot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Mounting {
    Fresh,
    Remount,
}

/// The flags and mount(8)'s own options.
const WORDS: &[&str] = &[
    "",
    "defaults",
    "rw",
    "ro",
    "dev",
    "nodev",
    "suid",
    "nosuid",
    "exec",
    "noexec",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "nousers",
    "owner",
    "noowner",
    "group",
    "nogroup",
    "nofail",
    "_netdev",
    "sync",
    "async",
    "dirsync",
    "atime",
    "noatime",
    "diratime",
    "nodiratime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "mand",
    "nomand",
    "iversion",
    "noiversion",
    "silent",
    "loud",
    "remount",
    "bind",
    "rbind",
    "loop",
    "symfollow",
    "nosymfollow",
    "inode32",
    "inode64",
];

/// Option names mount(8) keeps for itself, with any value.
const OWN_KEYS: &[&str] = &["comment=", "x-", "X-", "user=", "helper=", "uhelper="];

/// What the kernel does with `opt` on a tmpfs mount of this kind. A remount refuses
/// `noswap` and quotas; a new mount takes them from some kernel release and build on,
/// and a new mount with `bind`, `rbind` or `loop` is another mount of its source.
pub(super) fn verdict(opt: &str, mounting: Mounting) -> Verdict {
    let fresh = mounting == Mounting::Fresh;
    if fresh && matches!(opt, "bind" | "rbind" | "loop") {
        return Verdict::Unknown;
    }
    if WORDS.contains(&opt) || OWN_KEYS.iter().any(|k| opt.starts_with(k)) {
        return Verdict::Takes;
    }
    if WORDS.iter().any(|w| w.eq_ignore_ascii_case(opt)) {
        return Verdict::Refuses;
    }
    if matches!(opt, "noswap" | "quota" | "usrquota" | "grpquota") {
        return if fresh {
            Verdict::Unknown
        } else {
            Verdict::Refuses
        };
    }
    let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
    let size = |v: &str| {
        let digits = v.trim_end_matches(|c: char| "kKmMgGtTpPeE".contains(c));
        v.len() - digits.len() <= 1
            && !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let reads = match key {
        "size" => {
            size(value)
                || value
                    .strip_suffix('%')
                    .is_some_and(|p| size(p) && p == p.trim_end_matches(char::is_alphabetic))
        }
        "nr_blocks" | "nr_inodes" => size(value),
        // 32-bit numbers (the mode in octal); uid and gid -1 are no one's.
        "mode" => {
            value.bytes().all(|b| (b'0'..=b'7').contains(&b))
                && u32::from_str_radix(value, 8).is_ok()
        }
        "uid" | "gid" => {
            value.bytes().all(|b| b.is_ascii_digit())
                && value.parse::<u32>().is_ok_and(|n| n != u32::MAX)
        }
        "huge" => matches!(value, "never" | "always" | "within_size" | "advise"),
        _ => false,
    };
    if reads {
        Verdict::Takes
    } else {
        Verdict::Unknown
    }
}

/// The first option refused, else the first whose fate cannot be told, with its
/// verdict; `None` when the kernel takes them all.
pub(super) fn doubt(options: &[String], mounting: Mounting) -> Option<(&str, Verdict)> {
    let mut unknown = None;
    for o in options {
        match verdict(o, mounting) {
            Verdict::Refuses => return Some((o, Verdict::Refuses)),
            Verdict::Unknown if unknown.is_none() => unknown = Some((o.as_str(), Verdict::Unknown)),
            _ => {}
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_tmpfs_takes() {
        for m in [Mounting::Fresh, Mounting::Remount] {
            for o in [
                "nodev",
                "noexec",
                "nogroup",
                "user=alice",
                "x-systemd.after=x",
                "size=2G",
                "size=50%",
                "mode=1777",
                "huge=never",
                "nr_inodes=10k",
            ] {
                assert_eq!(verdict(o, m), Verdict::Takes, "{o} {m:?}");
            }
            for o in ["NoExec", "NODEV", "Defaults"] {
                assert_eq!(verdict(o, m), Verdict::Refuses, "{o} {m:?}");
            }
            for o in [
                "size=2GB",
                "mode=abc",
                "mpol=bind",
                "foo",
                "size=",
                "huge=maybe",
                "mode=777777777777",
                "uid=4294967295",
                "gid=99999999999",
                "mode=",
            ] {
                assert_eq!(verdict(o, m), Verdict::Unknown, "{o} {m:?}");
            }
        }
        for o in ["noswap", "quota"] {
            assert_eq!(verdict(o, Mounting::Remount), Verdict::Refuses, "{o}");
            assert_eq!(verdict(o, Mounting::Fresh), Verdict::Unknown, "{o}");
        }
        assert_eq!(verdict("bind", Mounting::Remount), Verdict::Takes);
        assert_eq!(verdict("bind", Mounting::Fresh), Verdict::Unknown);
    }

    #[test]
    fn a_refusal_outranks_a_doubt() {
        let v = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            doubt(&v("foo,nodev,NODEV"), Mounting::Fresh),
            Some(("NODEV", Verdict::Refuses))
        );
        assert_eq!(
            doubt(&v("nodev,foo,mpol=bind"), Mounting::Fresh),
            Some(("foo", Verdict::Unknown))
        );
        assert_eq!(doubt(&v("nodev,size=1G"), Mounting::Fresh), None);
    }
}
