//! Differential testing against the real programs (issue 18): a private copy of the
//! Debian 12 root, configurations generated from a seeded RNG, the root's own program
//! run chrooted in a private mount namespace, and the agent's `facts` command on the
//! same copy. Each family generates and compares in its module: `sysctl`, `sshd`,
//! `modules`, `accounts`, `units`, `journald` (journald, systemd-coredump and
//! systemd-timesyncd configuration), `sudo` (sudoers files and Defaults), `mounts`
//! (/etc/fstab and mount units at boot), `shm` (/dev/shm's flags after boot's
//! remount), `limits` (pam_limits' core-file limit),
//! `pam` (pam_faillock, pam_pwhistory, pam_unix and pam_pwquality as libpam runs
//! the stacks), `pwquality` (the settings the real pam_pwquality applies, from
//! Debian's packages unpacked into the copy) and `packages` (the dpkg database as
//! dpkg-query reads it, and rpm databases as rpm lists them: the rpm half needs no
//! Debian root, only the host's rpm and rpmbuild). The families whose comparison
//! involves rule verdicts (`pam`, `pwquality`, `accounts`) judge every benchmark of
//! [`BENCHMARKS`] on each configuration.
//!
//! Knobs (environment): `RAMPART_DIFF_SEED` (default 18), `RAMPART_DIFF_COUNT`
//! (configurations per family; each family has its own default), and
//! `RAMPART_DIFF_SECONDS` (a time budget per family, default 40 s): whichever of
//! count and budget ends first ends the family's run.

pub mod accounts;
pub mod journald;
pub mod limits;
pub mod login_defs;
pub mod modules;
pub mod mounts;
pub mod packages;
pub mod pam;
pub mod pwquality;
pub mod shm;
pub mod sshd;
pub mod sudo;
pub mod sysctl;
pub mod units;

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The benchmarks whose rules the Debian 12 root's programs can judge: Ubuntu runs
/// the same upstream programs (OpenSSH, systemd, kmod, shadow, sudo, Linux-PAM,
/// libpwquality), so wherever an Ubuntu rule reads the same files with the same
/// readers, the root's program is its oracle too. The families that compare rule
/// verdicts judge every benchmark on the same configuration and the same oracle run:
/// `pam` and `pwquality` in one agent run (`facts pam --benchmark` repeated),
/// `accounts` in one agent run per benchmark (see [`per_benchmark`]).
pub const BENCHMARKS: &[&str] = &["debian-12", "ubuntu-22.04", "ubuntu-24.04"];

/// Runs `f` for every benchmark of [`BENCHMARKS`] at the same time (each call is an
/// agent run of its own, so this costs about one), and returns the answers in order.
pub fn per_benchmark<T: Send>(f: impl Fn(&'static str) -> T + Sync) -> Vec<(&'static str, T)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = BENCHMARKS
            .iter()
            .map(|b| {
                let f = &f;
                (*b, s.spawn(move || f(b)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(b, h)| (b, h.join().expect("a benchmark's comparison panicked")))
            .collect()
    })
}

/// Puts `benchmark` after the two spaces that start each line of `what` (a
/// comparison's answer lines), so that one configuration's differences say which
/// benchmark's rules they are about.
pub fn for_benchmark(benchmark: &str, what: &str) -> String {
    what.lines()
        .map(|l| format!("  {benchmark}: {}\n", l.trim_start()))
        .collect()
}

/// A small deterministic generator (splitmix64): the same seed gives the same
/// configurations on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The run's settings, from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub seed: u64,
    pub count: usize,
    pub budget: Duration,
}

impl Settings {
    /// Reads the knobs; `default_count` is the family's CI count.
    pub fn from_env(default_count: usize) -> Settings {
        let num = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        Settings {
            seed: num("RAMPART_DIFF_SEED", 18),
            count: num("RAMPART_DIFF_COUNT", default_count as u64) as usize,
            budget: Duration::from_secs(num("RAMPART_DIFF_SECONDS", 40)),
        }
    }
}

/// The Debian 12 root named by `RAMPART_DEBIAN_ROOT`, or `None` with the reason
/// printed (the only case in which a differential test is skipped).
pub fn debian_root_or_skip(test: &str) -> Option<PathBuf> {
    match std::env::var_os("RAMPART_DEBIAN_ROOT") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            println!(
                "{test}: skipped: RAMPART_DEBIAN_ROOT is unset (it names the debootstrapped Debian 12 root whose programs are the oracle; tests/fixtures/build-debian-root.sh builds one)"
            );
            None
        }
    }
}

/// A temporary directory and the path of the copy's root inside it.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("rampart-diff-")
        .tempdir()
        .expect("make a temporary directory");
    let root = dir.path().join("root");
    (dir, root)
}

/// `cp -a FROM TO`, which must succeed.
fn copy(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .expect("run cp");
    assert!(
        out.status.success(),
        "cp -a {} failed: {}",
        from.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private, writable copy of a root; removed when dropped. The original is only read.
pub struct RootCopy {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl RootCopy {
    pub fn new(original: &Path) -> RootCopy {
        let (dir, root) = scratch();
        copy(original, &root);
        RootCopy { _dir: dir, root }
    }

    /// A copy whose /usr is hard links to the original's files (cheap: most of the
    /// root), the rest copied. Only for a family that never writes into an existing
    /// file under /usr: [`RootCopy::write`], [`RootCopy::link`] and
    /// [`RootCopy::remove`] replace or unlink directory entries, which leaves the
    /// original alone, but a program that rewrote a file in place would change it.
    /// Falls back to a full copy where hard links cannot be made (another file
    /// system).
    pub fn sharing_usr(original: &Path) -> RootCopy {
        let (dir, root) = scratch();
        fs::create_dir(&root).expect("make the copy's root");
        let entries =
            fs::read_dir(original).unwrap_or_else(|e| panic!("read {}: {e}", original.display()));
        for entry in entries {
            let from = entry.expect("list the root").path();
            let linked = from.file_name().is_some_and(|n| n == "usr")
                && Command::new("cp")
                    .arg("-al")
                    .arg(&from)
                    .arg(&root)
                    .output()
                    .is_ok_and(|o| o.status.success());
            if linked {
                continue;
            }
            let _ = fs::remove_dir_all(root.join(from.file_name().unwrap_or_default()));
            copy(&from, &root);
        }
        RootCopy { _dir: dir, root }
    }

    /// The host path of `inside` (an absolute path inside the root).
    pub fn path(&self, inside: &str) -> PathBuf {
        self.root.join(inside.trim_start_matches('/'))
    }

    /// Removes whatever is at `inside` (file, link or directory), if anything.
    pub fn remove(&self, inside: &str) {
        let p = self.path(inside);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).expect("remove a directory in the copy"),
            Ok(_) => fs::remove_file(&p).expect("remove a file in the copy"),
            Err(_) => {}
        }
    }

    /// Writes a file inside the root, creating its directory.
    pub fn write(&self, inside: &str, text: &str) {
        let p = self.path(inside);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create a directory in the copy");
        }
        self.remove(inside);
        fs::write(&p, text).expect("write a file in the copy");
    }

    /// Makes `inside` a symlink to `target` (as written in the link).
    pub fn link(&self, inside: &str, target: &str) {
        let p = self.path(inside);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create a directory in the copy");
        }
        self.remove(inside);
        symlink(target, &p).expect("make a symlink in the copy");
    }

    pub fn mkdir(&self, inside: &str) {
        self.remove(inside);
        fs::create_dir_all(self.path(inside)).expect("create a directory in the copy");
    }

    /// Empties a directory inside the root (creating it if missing), whatever it holds.
    pub fn clear_dir(&self, inside: &str) {
        let p = self.path(inside);
        if let Ok(meta) = fs::symlink_metadata(&p) {
            if meta.file_type().is_symlink() {
                return;
            }
        }
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).expect("recreate a directory in the copy");
    }

    /// Copies the host's `pamtester` into the copy (the driver is ours; the library and
    /// modules it loads are the root's).
    pub fn install_pamtester(&self) {
        let host = Path::new("/usr/bin/pamtester");
        assert!(
            host.exists(),
            "the PAM families drive PAM with pamtester: install it on the host (apt-get install pamtester)"
        );
        self.remove("/usr/local/bin/pamtester");
        fs::copy(host, self.path("/usr/local/bin/pamtester")).expect("copy pamtester");
    }

    /// Puts `what` at `path` (replacing what was there) and returns the line that
    /// describes it in a configuration's report.
    pub fn place(&self, path: &str, what: Placed) -> String {
        match what {
            Placed::Empty => {
                self.write(path, "");
                format!("{path}: (empty)\n")
            }
            Placed::Link(target) => {
                self.link(path, target);
                format!("{path} -> {target}\n")
            }
            Placed::Dir => {
                self.mkdir(path);
                format!("{path}/ (a directory)\n")
            }
            Placed::Text(text) => {
                self.write(path, text);
                format!("{path}:\n{text}")
            }
        }
    }

    /// Adds local accounts for the PAM probes: `users` as (name, uid, shadow hash —
    /// empty for no password) to /etc/passwd and /etc/group, and root's hash set to
    /// `root_hash`. Returns the new /etc/shadow text, not written: the families restore
    /// it before each configuration.
    pub fn seed_accounts(
        &self,
        root_hash: &str,
        users: &[(&str, u32, &str)],
    ) -> Result<String, String> {
        let read = |p: &str| fs::read_to_string(self.path(p)).map_err(|e| format!("{p}: {e}"));
        let (mut passwd, mut group) = (read("/etc/passwd")?, read("/etc/group")?);
        let mut shadow: String = read("/etc/shadow")?
            .lines()
            .map(|l| match l.strip_prefix("root:") {
                Some(rest) => {
                    let tail = rest.split_once(':').map_or("", |(_, t)| t);
                    format!("root:{root_hash}:{tail}\n")
                }
                None => format!("{l}\n"),
            })
            .collect();
        for (name, uid, hash) in users {
            let _ = writeln!(passwd, "{name}:x:{uid}:{uid}::/home/{name}:/bin/sh");
            let _ = writeln!(group, "{name}:x:{uid}:");
            let _ = writeln!(shadow, "{name}:{hash}:19000:0:99999:7:::");
        }
        self.write("/etc/passwd", &passwd);
        self.write("/etc/group", &group);
        Ok(shadow)
    }

    /// Unpacks every `.deb` in `dir` into the copy (`dpkg-deb -x`, then merged so that
    /// the copy's /lib, /bin and /sbin links to /usr stay links) and records each package
    /// as installed in the copy's /var/lib/dpkg/status. No maintainer script runs.
    pub fn install_debs(&self, dir: &Path) -> Result<Vec<String>, String> {
        let mut debs: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        debs.sort();
        let stage = tempfile::Builder::new()
            .prefix("rampart-debs-")
            .tempdir()
            .map_err(|e| format!("make a staging directory: {e}"))?;
        let mut status = String::new();
        let mut names = Vec::new();
        for deb in &debs {
            let run = |args: &[&std::ffi::OsStr]| -> Result<Vec<u8>, String> {
                let out = Command::new("dpkg-deb")
                    .args(args)
                    .output()
                    .map_err(|e| format!("run dpkg-deb: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "dpkg-deb {:?} failed: {}",
                        args,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(out.stdout)
            };
            run(&["-x".as_ref(), deb.as_os_str(), stage.path().as_os_str()])?;
            let control =
                String::from_utf8_lossy(&run(&["-f".as_ref(), deb.as_os_str()])?).into_owned();
            let mut lines = control.lines();
            let first = lines.next().unwrap_or_default();
            let name = first.strip_prefix("Package: ").unwrap_or_default();
            names.push(name.to_string());
            status += &format!("{first}\nStatus: install ok installed\n");
            for l in lines {
                status += &format!("{l}\n");
            }
            status += "\n";
        }
        for entry in fs::read_dir(stage.path()).map_err(|e| e.to_string())? {
            let from = entry.map_err(|e| e.to_string())?.path();
            let name = from.file_name().unwrap_or_default();
            let mut to = self.root.join(name);
            if let Ok(target) = fs::read_link(&to) {
                to = self.root.join(target);
            }
            fs::create_dir_all(&to).map_err(|e| format!("create {}: {e}", to.display()))?;
            let out = Command::new("cp")
                .arg("-a")
                .arg(from.join("."))
                .arg(&to)
                .output()
                .map_err(|e| format!("run cp: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "cp -a {} failed: {}",
                    from.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        let db = self.path("/var/lib/dpkg/status");
        let old = fs::read_to_string(&db).unwrap_or_default();
        fs::write(
            &db,
            format!(
                "{old}{}{status}",
                if old.ends_with("\n\n") || old.is_empty() {
                    ""
                } else {
                    "\n"
                }
            ),
        )
        .map_err(|e| format!("write {}: {e}", db.display()))?;
        Ok(names)
    }

    /// Runs the shell `script` chrooted into the copy as PID 1 of its own PID
    /// namespace, in a private mount namespace with /proc mounted, for at most
    /// `seconds`.
    pub fn chroot_sh(&self, script: &str, seconds: u32) -> Output {
        Command::new("timeout")
            .arg(seconds.to_string())
            .args([
                "unshare",
                "--mount",
                "--pid",
                "--fork",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"mount -t proc proc "$0/proc" && exec chroot "$0" sh -c "$1""#,
            ])
            .arg(&self.root)
            .arg(script)
            .output()
            .expect("run unshare")
    }

    /// Runs `args` chrooted into the copy, in a private mount namespace.
    pub fn chroot(&self, args: &[&str]) -> Output {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "chroot"])
            .arg(&self.root)
            .args(args)
            .output()
            .expect("run unshare")
    }
}

/// What a generator puts at a configuration file's path ([`RootCopy::place`]): the
/// files a program finds where it looks, odd ones among them.
pub enum Placed<'a> {
    /// An empty file (a mask, for the programs that read it so).
    Empty,
    /// A symbolic link to the target (`/dev/null`, elsewhere, or nowhere).
    Link(&'a str),
    /// A directory with the file's name.
    Dir,
    /// A regular file with this text.
    Text(&'a str),
}

/// Runs `rampart-agent facts FAMILY --root ROOT ARGS…` and parses its JSON; an
/// agent that cannot answer is a difference too (the real program did answer).
pub fn agent_facts(
    family: &str,
    root: &Path,
    args: &[String],
) -> Result<serde_json::Value, String> {
    let mut all: Vec<String> = vec![
        "facts".into(),
        family.into(),
        "--root".into(),
        root.display().to_string(),
    ];
    all.extend(args.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = crate::agent(&refs);
    if !out.status.success() {
        return Err(format!(
            "  rampart-agent facts {family} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("  rampart-agent printed no JSON: {e}"))
}

/// What one family's run found.
pub struct Tally {
    pub family: &'static str,
    pub settings: Settings,
    pub compared: usize,
    pub differences: Vec<String>,
    started: Instant,
}

impl Tally {
    pub fn new(family: &'static str, settings: Settings) -> Tally {
        // The agent is built before the clock starts: the first build of a test
        // process can take minutes, which would leave a family's budget nearly empty.
        crate::binary("rampart-agent");
        Tally {
            family,
            settings,
            compared: 0,
            differences: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Whether another configuration fits in the count and the time budget.
    pub fn more(&self) -> bool {
        self.compared < self.settings.count && self.started.elapsed() < self.settings.budget
    }

    /// Records a difference: the configuration (as files) and both answers.
    pub fn differ(&mut self, config: &str, what: &str) {
        let mut s = String::new();
        let _ = writeln!(s, "configuration #{}:\n{config}", self.compared);
        let _ = write!(s, "{what}");
        self.differences.push(s);
    }

    /// Prints the summary line and panics with every difference, if any.
    pub fn finish(self) {
        // On stderr too: a test harness that captures stdout still shows the figures.
        let line = format!(
            "differential {}: seed {}, {} configurations compared in {:.1} s, {} difference(s) found",
            self.family,
            self.settings.seed,
            self.compared,
            self.started.elapsed().as_secs_f64(),
            self.differences.len()
        );
        println!("{line}");
        eprintln!("{line}");
        for d in self.differences.iter().skip(5) {
            let answers: Vec<&str> = d.lines().filter(|l| l.starts_with("  ")).collect();
            println!("{}", answers.join("\n"));
        }
        if !self.differences.is_empty() {
            let shown: Vec<&String> = self.differences.iter().take(5).collect();
            panic!(
                "{} differs from the real program in {} configuration(s) (first {} shown):\n\n{}",
                self.family,
                self.differences.len(),
                shown.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n")
            );
        }
        // A family that compared almost nothing proves nothing: a time budget cut short
        // by a loaded machine, or a generator whose configurations all go unjudged.
        let floor = self.settings.count.min(MIN_COMPARED);
        assert!(
            self.compared >= floor,
            "{}: only {} configuration(s) compared, fewer than {floor}: the comparison says too little (raise RAMPART_DIFF_SECONDS on a loaded machine)",
            self.family,
            self.compared
        );
    }
}

/// The fewest configurations a family must compare (or its whole count, if smaller).
const MIN_COMPARED: usize = 20;
