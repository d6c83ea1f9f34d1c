//! sysctl: systemd-sysctl of the root applies generated sysctl.d configurations into
//! a fake `/proc/sys` (plain files in the copy, one per kernel parameter compared);
//! the agent's persisted values (`rampart-agent facts sysctl`) must be what boot
//! leaves in each.
//!
//! systemd-sysctl opens each parameter without truncating it and writes `value\n`, so
//! the first line of a file is the last value written. What a real kernel makes of
//! that text is asked of the running kernel itself: the text is written to
//! `net.ipv4.conf.lo.accept_redirects` (an integer parameter read by `proc_dointvec`)
//! in a private network namespace of its own, which vanishes with it, and read back;
//! an unchanged sentinel means the kernel refused the write and the parameter keeps
//! its value. Every parameter compared here is such an integer, and glob lines only
//! carry values the kernel accepts, so the last write is the boot value.
//!
//! The Ubuntu benchmarks' sysctl rules read the same files through the same reader
//! (their `ufw_sysctl` addition, ufw's own sysctl file when ufw is switched on, is
//! not exercised: the root has no ufw), so this comparison serves every benchmark.

use std::collections::HashMap;
use std::process::Command;

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};

/// The kernel parameters of the fake /proc/sys (slash form).
const KEYS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/eth0/rp_filter",
    "net/ipv4/conf/eth0.100/rp_filter",
    "net/ipv4/conf/all/accept_redirects",
    "net/ipv4/conf/default/accept_redirects",
    "net/ipv4/conf/eth0.100/accept_redirects",
    "kernel/randomize_va_space",
    "fs/suid_dumpable",
    "fs/protected_hardlinks",
    "kernel/pid_max",
];

/// Glob patterns (dotted) that match some of [`KEYS`].
const GLOBS: &[&str] = &[
    "net.ipv4.conf.*.rp_filter",
    "net.ipv4.conf.*.accept_redirects",
    "net/ipv4/conf/eth0*/rp_filter",
    "net.ipv4.conf.e?h0.rp_filter",
    "fs.protected_*",
];

/// The drop-in directories (the root has a merged /usr: /lib is /usr/lib).
const DIRS: &[&str] = &[
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
];

/// Names, so that the same name lands in several directories and names sort around
/// each other and the ones Debian ships.
const NAMES: &[&str] = &[
    "10-a.conf",
    "50-pid-max.conf",
    "60-net.conf",
    "60-net.conf.bak",
    "60_net.conf",
    "99-protect-links.conf",
    "99-sysctl.conf",
    "99-zz.conf",
    "Z.conf",
    ".hidden.conf",
    "x.CONF",
];

/// Values: plain, spaced, signed, and with comments that systemd-sysctl passes on.
const VALUES: &[&str] = &[
    "0", "1", "2", " 2 ", "1 # on", "0#off", "", "+1", "-1", "01",
];

fn dotted(slash: &str) -> String {
    slash
        .chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

/// A key spelled as an administrator might: dotted, slashed or half of each.
fn spell(rng: &mut Rng, slash: &str) -> String {
    match rng.below(7) {
        0..=2 => dotted(slash),
        3 => slash.to_string(),
        4 => format!("/{slash}"),
        5 => slash.replacen('/', "//", 1),
        _ => format!(" {} ", dotted(slash)),
    }
}

fn line(rng: &mut Rng) -> String {
    let key = *rng.pick(KEYS);
    match rng.below(14) {
        0 => format!("# {} = 1", dotted(key)),
        1 => format!("; {} = 1", dotted(key)),
        2 => format!("{} = {}", rng.pick(GLOBS), rng.pick(&["0", "1", "2"])),
        3 => format!("-{}", spell(rng, key)),
        4 => format!("-{} = {}", dotted(key), rng.pick(VALUES)),
        5 => "not an assignment".to_string(),
        6 => String::new(),
        _ => {
            let sep = *rng.pick(&["=", " = ", "\t=\t", "= "]);
            format!("{}{sep}{}", spell(rng, key), rng.pick(VALUES))
        }
    }
}

fn text(rng: &mut Rng) -> String {
    let n = rng.below(5);
    (0..n).map(|_| line(rng) + "\n").collect()
}

/// Builds one configuration in the copy; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy) -> String {
    let mut desc = String::new();
    for dir in [
        "/etc/sysctl.d",
        "/run/sysctl.d",
        "/usr/local/lib/sysctl.d",
        "/usr/lib/sysctl.d",
    ] {
        copy.clear_dir(dir);
    }
    let _ = std::fs::remove_file(copy.path("/etc/sysctl.conf"));
    // Debian's own files and links, most of the time.
    if rng.chance(80) {
        copy.link("/etc/sysctl.d/99-sysctl.conf", "../sysctl.conf");
        desc += "/etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf\n";
    }
    if rng.chance(70) {
        let t = text(rng);
        copy.write("/etc/sysctl.conf", &t);
        desc += &format!("/etc/sysctl.conf:\n{t}");
    }
    // ufw's sysctl file: ufw is not installed in the root, so nothing applies it.
    let _ = std::fs::remove_file(copy.path("/etc/ufw/sysctl.conf"));
    if rng.chance(25) {
        let key = rng.pick(&["net/ipv4/ip_forward", "net.ipv6.conf.all.forwarding"]);
        let t = format!("{key}={}\n", rng.pick(&["0", "1"]));
        copy.write("/etc/ufw/sysctl.conf", &t);
        desc += &format!("/etc/ufw/sysctl.conf (ufw not installed):\n{t}");
    }
    if rng.chance(70) {
        copy.write(
            "/usr/lib/sysctl.d/50-pid-max.conf",
            "kernel.pid_max = 4194304\n",
        );
        desc += "/usr/lib/sysctl.d/50-pid-max.conf: kernel.pid_max = 4194304\n";
    }
    for _ in 0..rng.below(7) {
        let dir = *rng.pick(DIRS);
        let name = *rng.pick(NAMES);
        let path = format!("{dir}/{name}");
        match rng.below(12) {
            0 => desc += &copy.place(&path, Placed::Empty),
            1 => desc += &copy.place(&path, Placed::Link("/dev/null")),
            2 => {
                let target = *rng.pick(&[
                    "../sysctl.conf",
                    "/etc/sysctl.conf",
                    "/usr/lib/sysctl.d/50-pid-max.conf",
                    "/etc/sysctl.d/10-a.conf",
                    "/nonexistent.conf",
                    "10-a.conf",
                    "/etc/sysctl.d",
                    "../../run/sysctl.d/60-net.conf",
                ]);
                desc += &copy.place(&path, Placed::Link(target));
            }
            3 => desc += &copy.place(&path, Placed::Dir),
            _ => {
                let t = text(rng);
                desc += &copy.place(&path, Placed::Text(&t));
            }
        }
    }
    desc
}

/// The running kernel's reading of written texts, asked once per text.
#[derive(Default)]
struct Kernel(HashMap<String, Option<i64>>);

/// A value the parameter never takes from the generated texts.
const SENTINEL: &str = "12345";

impl Kernel {
    /// The integer the kernel takes from `written`; `None` when it refuses it.
    fn take(&mut self, written: &str) -> Option<i64> {
        if let Some(v) = self.0.get(written) {
            return *v;
        }
        let script = format!(
            "f=/proc/sys/net/ipv4/conf/lo/accept_redirects; echo {SENTINEL} > $f && printf '%s' \"$1\" > $f 2>/dev/null; cat $f"
        );
        let out = Command::new("unshare")
            .args(["--net", "sh", "-c", &script, "sh", written])
            .output()
            .expect("run unshare --net");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && !text.is_empty(),
            "cannot ask the kernel in a network namespace: {out:?}"
        );
        let v = (text != SENTINEL).then(|| text.parse().ok()).flatten();
        self.0.insert(written.to_string(), v);
        v
    }
}

/// systemd-sysctl's answer: per key, the value boot leaves (`None`: unchanged).
fn oracle(copy: &RootCopy, kernel: &mut Kernel) -> Result<Vec<Option<i64>>, String> {
    for k in KEYS {
        copy.write(&format!("/proc/sys/{k}"), "");
    }
    let out = copy.chroot(&["/lib/systemd/systemd-sysctl"]);
    if out.status.code().is_none() {
        return Err(format!("systemd-sysctl died: {out:?}"));
    }
    Ok(KEYS
        .iter()
        .map(|k| {
            let written =
                std::fs::read_to_string(copy.path(&format!("/proc/sys/{k}"))).unwrap_or_default();
            let last = written.split('\n').next().unwrap_or_default();
            (!written.is_empty())
                .then(|| kernel.take(&format!("{last}\n")))
                .flatten()
        })
        .collect())
}

/// The agent's answer (see [`agent`]).
struct Answer {
    /// Per key: the integer the kernel takes from the value, and how it was found.
    values: Vec<(Option<i64>, String)>,
    /// IP forwarding after boot, and the evidence.
    forwarding: (bool, String),
}

/// The agent's answer: per key, the integer the kernel would take from the value it
/// reports, with how; and whether IP forwarding is on after boot, with its evidence.
fn agent(copy: &RootCopy) -> Result<Answer, String> {
    let args: Vec<String> = KEYS
        .iter()
        .flat_map(|k| ["--key".to_string(), dotted(k)])
        .collect();
    let v = agent_facts("sysctl", &copy.root, &args)?;
    let values = KEYS
        .iter()
        .map(|k| {
            let e = &v["values"][dotted(k)];
            match e["value"].as_str() {
                Some(val) => (
                    e["kernel"].as_i64(),
                    format!("{val:?} from {}", e["source"]),
                ),
                None => (None, "not set".to_string()),
            }
        })
        .collect();
    let f = &v["forwarding"];
    let forwarding = (
        f["on"].as_bool().unwrap_or(false),
        f["evidence"].as_str().unwrap_or_default().to_string(),
    );
    Ok(Answer { values, forwarding })
}

/// Runs the sysctl family: generate, apply with systemd-sysctl, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let mut rng = Rng::new(settings.seed ^ 0x5359_5343_544c);
    let mut tally = Tally::new("sysctl", settings);
    let mut kernel = Kernel::default();
    while tally.more() {
        let desc = generate(&mut rng, &copy);
        let truth = match oracle(&copy, &mut kernel) {
            Ok(t) => t,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let Answer {
            values: ours,
            forwarding: (forwarding, why),
        } = match agent(&copy) {
            Ok(a) => a,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let mut what = String::new();
        // Forwarding is on when either switch is set to anything but 0.
        let on = truth[..2].iter().any(|v| v.is_some_and(|n| n != 0));
        if on != forwarding {
            what += &format!(
                "  IP forwarding after boot: systemd-sysctl leaves it {}, the agent says {} ({why})\n",
                if on { "on" } else { "off" },
                if forwarding { "on" } else { "off" }
            );
        }
        for ((k, t), (a, how)) in KEYS.iter().zip(&truth).zip(&ours) {
            if t != a {
                what += &format!(
                    "  {}: systemd-sysctl leaves {t:?}, the agent says {a:?} ({how})\n",
                    dotted(k)
                );
            }
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    tally
}
