//! The rpm database read natively, against databases the real rpm wrote: Debian's rpm
//! (4.18) writes the SQLite rpmdb that RHEL 9 and Amazon Linux 2023 use. Tiny noarch
//! packages with real RHEL 9 and AL2023 names and versions are built by `rpmbuild`
//! and installed with `rpm --justdb` into temporary roots; what the agent reads is
//! compared with what it should be and with what rpm itself lists. Then committed
//! transactions left in the WAL, and the same database damaged in many ways: every
//! damage is a `Malformed` error naming the file, never a panic.
//!
//! Needs Debian's `rpm` package (rpm and rpmbuild; scripts/test.sh installs it) and
//! python3's sqlite3 module (to hold a reader open while rpm commits).

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rampart_agent::facts::packages::{compare_rpm_versions, packages, Format};
use rampart_agent::facts::rpmdb::{self, RpmPackage, RPMDB};
use rampart_agent::facts::{FactError, Facts};
use tempfile::TempDir;

/// A package to build: name, epoch, version, release, and how many bytes of
/// description to give it (a header larger than a page spills to overflow pages).
#[derive(Debug, Clone, Copy)]
struct Pkg {
    name: &'static str,
    epoch: Option<u32>,
    version: &'static str,
    release: &'static str,
    description: usize,
}

const fn pkg(name: &'static str, version: &'static str, release: &'static str) -> Pkg {
    Pkg {
        name,
        epoch: None,
        version,
        release,
        description: 40,
    }
}

const fn with_epoch(p: Pkg, epoch: u32) -> Pkg {
    Pkg {
        epoch: Some(epoch),
        ..p
    }
}

/// Packages of a RHEL 9 system: epochs on two, two kernels installed side by side,
/// and one header of ~24 KiB (six pages of overflow).
const RHEL9: &[Pkg] = &[
    pkg("openssh-server", "8.7p1", "38.el9"),
    pkg("sudo", "1.9.5p2", "10.el9_3"),
    pkg("chrony", "4.5", "1.el9"),
    with_epoch(pkg("shadow-utils", "4.9", "8.el9"), 2),
    with_epoch(pkg("openssl", "3.0.7", "27.el9"), 1),
    pkg("audit", "3.1.2", "2.el9"),
    pkg("crypto-policies", "20240202", "1.git283706d.el9"),
    pkg("kernel", "5.14.0", "362.8.1.el9_3"),
    pkg("kernel", "5.14.0", "427.13.1.el9_4"),
    pkg("libselinux", "3.6", "1.el9"),
    pkg("firewalld", "1.3.4", "1.el9"),
    Pkg {
        description: 24 * 1024,
        ..pkg("aide", "0.16", "100.el9")
    },
];

/// Packages of an Amazon Linux 2023 system.
const AL2023: &[Pkg] = &[
    pkg("system-release", "2023.5.20240730", "0.amzn2023"),
    pkg("openssh-server", "8.7p1", "8.amzn2023.0.11"),
    pkg("sudo", "1.9.15", "1.p5.amzn2023.0.1"),
    pkg("chrony", "4.3", "1.amzn2023.0.4"),
    with_epoch(pkg("openssl", "3.0.8", "1.amzn2023.0.14"), 1),
    pkg("kernel", "6.1.102", "111.182.amzn2023"),
];

/// Installed while a reader holds the database open: it stays in the WAL.
const LATE: Pkg = pkg("rsyslog", "8.2310.0", "4.el9");

/// Runs a program of Debian's rpm package, failing with what to install.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program} ({e}): these tests need Debian's rpm (apt-get install rpm)"
            )
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The spec of every test package: noarch, no files, a description.
const SPEC: &str = "Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}\
                    Summary: rampart test package\nLicense: MIT\nBuildArch: noarch\n\
                    %description\n{description}\n%files\n";

/// The packages built by rpmbuild (`rpms/<name>-<version>-<release>.rpm`) and a root
/// for each list with its packages installed by rpm (`RHEL9/`, `AL2023/`). Made once
/// and kept under cargo's target directory, named by a hash of everything that goes
/// into them; a run that finds them complete reuses them.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp_root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let recipe = format!(
            "{SPEC}{RHEL9:?}{AL2023:?}{LATE:?}{}",
            run("rpm", &["--version"])
        );
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&recipe, &mut h);
        let dir = tmp_root.join(format!("rpmdb-{:016x}", std::hash::Hasher::finish(&h)));
        if dir.join("complete").exists() {
            return dir;
        }
        let tmp = tempfile::tempdir_in(tmp_root).unwrap();
        build_packages(&tmp.path().join("rpms"));
        for (name, pkgs) in [("RHEL9", RHEL9), ("AL2023", AL2023)] {
            let root = tmp.path().join(name);
            fs::create_dir_all(&root).unwrap();
            let r = root.to_str().unwrap();
            run(
                "rpm",
                &["--root", r, "--dbpath", "/var/lib/rpm", "--initdb"],
            );
            install_from(&tmp.path().join("rpms"), &root, pkgs);
        }
        fs::write(tmp.path().join("complete"), "").unwrap();
        // Another test binary may have won the race: then its copy is the one.
        if fs::rename(tmp.path(), &dir).is_ok() {
            let _ = tmp.keep();
        }
        dir
    })
}

/// Builds every package of the tests into `out`, rpmbuild runs side by side.
fn build_packages(out: &Path) {
    fs::create_dir_all(out).unwrap();
    let all: Vec<Pkg> = RHEL9.iter().chain(AL2023).chain([&LATE]).copied().collect();
    let mut children = Vec::new();
    for (i, p) in all.iter().enumerate() {
        let top = out.join(format!("build-{i}"));
        fs::create_dir_all(&top).unwrap();
        let description: String = (0..p.description)
            .map(|j| {
                if j % 64 == 63 {
                    '\n'
                } else {
                    (b'a' + (j % 26) as u8) as char
                }
            })
            .collect();
        let spec = SPEC
            .replace("{name}", p.name)
            .replace("{version}", p.version)
            .replace("{release}", p.release)
            .replace(
                "{epoch}",
                &p.epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default(),
            )
            .replace("{description}", &description);
        fs::write(top.join("p.spec"), spec).unwrap();
        let child = Command::new("rpmbuild")
            .arg("--define")
            .arg(format!("_topdir {}", top.display()))
            .args(["--quiet", "-bb"])
            .arg(top.join("p.spec"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run rpmbuild ({e}): these tests need Debian's rpm (apt-get install rpm)")
            });
        children.push((p, top, child));
    }
    for (p, top, child) in children {
        let done = child.wait_with_output().unwrap();
        assert!(
            done.status.success(),
            "rpmbuild of {} failed: {}",
            p.name,
            String::from_utf8_lossy(&done.stderr)
        );
        let file = format!("{}.noarch.rpm", key(p));
        fs::rename(
            top.join("RPMS/noarch").join(file),
            out.join(format!("{}.rpm", key(p))),
        )
        .unwrap();
        fs::remove_dir_all(top).unwrap();
    }
}

fn key(p: &Pkg) -> String {
    format!("{}-{}-{}", p.name, p.version, p.release)
}

/// The .rpm file of a package of the tests.
fn rpm_file(p: &Pkg) -> PathBuf {
    fixtures().join("rpms").join(format!("{}.rpm", key(p)))
}

/// Installs packages from `rpms` into `root`'s /var/lib/rpm with the real rpm,
/// database only.
fn install_from(rpms: &Path, root: &Path, pkgs: &[Pkg]) {
    let files: Vec<String> = pkgs
        .iter()
        .map(|p| {
            rpms.join(format!("{}.rpm", key(p)))
                .to_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut args = vec![
        "--root",
        root.to_str().unwrap(),
        "--dbpath",
        "/var/lib/rpm",
        "-i",
        "--justdb",
        "--nodeps",
        "--noscripts",
        "--notriggers",
    ];
    args.extend(files.iter().map(String::as_str));
    run("rpm", &args);
}

/// A fresh root with the database of `RHEL9` or `AL2023` (copied: each test has
/// its own).
fn root_with(list: &str) -> TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(
        &fixtures().join(list).join("var/lib/rpm"),
        &t.path().join("var/lib/rpm"),
    );
    t
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// What rpm itself lists in `root`, as the agent's type.
fn rpm_lists(root: &Path) -> Vec<RpmPackage> {
    let out = run(
        "rpm",
        &[
            "--root",
            root.to_str().unwrap(),
            "--dbpath",
            "/var/lib/rpm",
            "-qa",
            "--qf",
            "%{NAME}|%{EPOCH}|%{VERSION}|%{RELEASE}|%{ARCH}\\n",
        ],
    );
    let mut list: Vec<RpmPackage> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            RpmPackage {
                name: f[0].into(),
                epoch: f[1].parse().ok(),
                version: f[2].into(),
                release: f[3].into(),
                arch: (f[4] != "(none)").then(|| f[4].into()),
            }
        })
        .collect();
    list.sort();
    list
}

fn expected(pkgs: &[Pkg]) -> Vec<RpmPackage> {
    let mut list: Vec<RpmPackage> = pkgs
        .iter()
        .map(|p| RpmPackage {
            name: p.name.into(),
            epoch: p.epoch,
            version: p.version.into(),
            release: p.release.into(),
            arch: Some("noarch".into()),
        })
        .collect();
    list.sort();
    list
}

/// Every file of the directory with its length and modification time.
fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut l: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.modified().unwrap(),
            )
        })
        .collect();
    l.sort();
    l
}

fn read(root: &Path) -> rpmdb::RpmDb {
    rpmdb::read(&Facts::new(root, false))
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("an rpm database")
}

#[test]
fn a_rhel9_database_is_read_as_rpm_lists_it() {
    let t = root_with("RHEL9");
    let dir = t.path().join("var/lib/rpm");
    let before = listing(&dir);
    let db = read(t.path());
    assert_eq!(
        listing(&dir),
        before,
        "reading changed the database directory"
    );
    assert_eq!(db.packages, expected(RHEL9));
    assert_eq!(db.packages, rpm_lists(t.path()));
    assert_eq!(db.source, RPMDB);

    let facts = Facts::new(t.path(), false);
    let pk = packages(&facts);
    let pk = pk.as_ref().as_ref().unwrap();
    assert_eq!(pk.format, Format::Rpm);
    assert_eq!(pk.source, RPMDB);
    assert_eq!(pk.version("openssh-server"), Some("8.7p1-38.el9"));
    assert_eq!(pk.version("shadow-utils"), Some("2:4.9-8.el9"));
    assert_eq!(pk.version("openssl"), Some("1:3.0.7-27.el9"));
    assert_eq!(pk.version("aide"), Some("0.16-100.el9"));
    // Two kernels installed: the newest counts.
    assert_eq!(pk.version("kernel"), Some("5.14.0-427.13.1.el9_4"));
    assert!(pk.is_installed("sudo") && !pk.is_installed("ufw"));
    assert_eq!(
        pk.describe("chrony"),
        "package chrony 4.5-1.el9 is installed (/var/lib/rpm/rpmdb.sqlite)"
    );
    assert!(pk.compare_versions("1:3.0.7-27.el9", "3.1.0-1.el9").is_gt());
}

#[test]
fn an_al2023_database_is_read_as_rpm_lists_it() {
    let t = root_with("AL2023");
    let db = read(t.path());
    assert_eq!(db.packages, expected(AL2023));
    assert_eq!(db.packages, rpm_lists(t.path()));
    let facts = Facts::new(t.path(), false);
    let pk = packages(&facts);
    let pk = pk.as_ref().as_ref().unwrap();
    assert_eq!(pk.version("sudo"), Some("1.9.15-1.p5.amzn2023.0.1"));
    assert_eq!(pk.version("openssl"), Some("1:3.0.8-1.amzn2023.0.14"));
}

/// /var/lib/rpm a symlink (as Fedora makes it, to /usr/lib/sysimage/rpm): followed
/// inside the root, the WAL looked for beside the real file.
#[test]
fn a_symlinked_database_directory_is_followed_inside_the_root() {
    let t = root_with("AL2023");
    let sysimage = t.path().join("usr/lib/sysimage");
    fs::create_dir_all(&sysimage).unwrap();
    fs::rename(t.path().join("var/lib/rpm"), sysimage.join("rpm")).unwrap();
    std::os::unix::fs::symlink("/usr/lib/sysimage/rpm", t.path().join("var/lib/rpm")).unwrap();
    assert_eq!(read(t.path()).packages, expected(AL2023));
}

/// A package committed while another process holds a read transaction stays in
/// rpmdb.sqlite-wal: rpm cannot checkpoint it, and waits for the reader to go away;
/// killed meanwhile (as a reboot or a snapshot would), it leaves the WAL behind. The
/// package is read all the same, and nothing is written; without its WAL the
/// database file alone does not have it.
#[test]
fn committed_transactions_still_in_the_wal_are_read() {
    let t = root_with("AL2023");
    let dir = t.path().join("var/lib/rpm");
    let holder = "import sqlite3, sys\n\
                  c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                  c.execute('BEGIN')\n\
                  c.execute('SELECT count(*) FROM Packages').fetchall()\n\
                  print('ready', flush=True)\n\
                  sys.stdin.readline()\n";
    let mut python = Command::new("python3")
        .args(["-c", holder])
        .arg(dir.join("rpmdb.sqlite"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("these tests need python3 (with its sqlite3 module)");
    let mut line = String::new();
    BufReader::new(python.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the python reader did not start");

    let mut rpm = Command::new("rpm")
        .args([
            "--root",
            t.path().to_str().unwrap(),
            "--dbpath",
            "/var/lib/rpm",
        ])
        .args(["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers"])
        .arg(rpm_file(&LATE))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let facts_see_late = || {
        rpmdb::read(&Facts::new(t.path(), false))
            .ok()
            .flatten()
            .is_some_and(|db| db.packages.iter().any(|p| p.name == LATE.name))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !facts_see_late() {
        assert!(
            std::time::Instant::now() < deadline,
            "rpm did not commit {} within 20 s",
            LATE.name
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    rpm.kill().unwrap();
    rpm.wait().unwrap();
    let wal_len = fs::metadata(dir.join("rpmdb.sqlite-wal")).unwrap().len();
    assert!(wal_len > 0, "rpm checkpointed despite the open reader");

    let before = listing(&dir);
    let db = read(t.path());
    assert_eq!(
        listing(&dir),
        before,
        "reading changed the database directory"
    );
    let mut want = AL2023.to_vec();
    want.push(LATE);
    assert_eq!(db.packages, expected(&want));
    assert_eq!(
        db.source,
        "/var/lib/rpm/rpmdb.sqlite with /var/lib/rpm/rpmdb.sqlite-wal"
    );

    // The database file alone: the late package is not there.
    let alone = tempfile::tempdir().unwrap();
    fs::create_dir_all(alone.path().join("var/lib/rpm")).unwrap();
    fs::copy(
        dir.join("rpmdb.sqlite"),
        alone.path().join("var/lib/rpm/rpmdb.sqlite"),
    )
    .unwrap();
    assert_eq!(read(alone.path()).packages, expected(AL2023));

    // The reader goes; rpm itself then lists what was read.
    python.stdin.take().unwrap().write_all(b"\n").unwrap();
    python.wait().unwrap();
    assert_eq!(db.packages, rpm_lists(t.path()));
}

#[test]
fn dpkg_wins_on_a_root_with_both_and_neither_is_an_error() {
    let t = root_with("AL2023");
    fs::create_dir_all(t.path().join("var/lib/dpkg")).unwrap();
    fs::write(
        t.path().join("var/lib/dpkg/status"),
        "Package: rpm\nStatus: install ok installed\nVersion: 4.18.0+dfsg-1+deb12u1\n",
    )
    .unwrap();
    let facts = Facts::new(t.path(), false);
    let pk = packages(&facts);
    let pk = pk.as_ref().as_ref().unwrap();
    assert_eq!(pk.format, Format::Dpkg);
    assert_eq!(pk.source, "/var/lib/dpkg/status");
    assert!(pk.is_installed("rpm") && !pk.is_installed("openssh-server"));

    let empty = tempfile::tempdir().unwrap();
    let facts = Facts::new(empty.path(), false);
    let err = packages(&facts).as_ref().clone().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read /var/lib/dpkg/status: no dpkg status database, \
         and no rpm database at /var/lib/rpm/rpmdb.sqlite"
    );
    assert_eq!(rpmdb::read(&facts), Ok(None));
}

// ---- damaged databases ----

/// A copy of the RHEL 9 database with its file changed by `damage`.
fn damaged(damage: impl FnOnce(&mut Vec<u8>)) -> TempDir {
    let t = root_with("RHEL9");
    let path = t.path().join("var/lib/rpm/rpmdb.sqlite");
    let mut bytes = fs::read(&path).unwrap();
    damage(&mut bytes);
    fs::write(&path, bytes).unwrap();
    t
}

/// Reading fails with a `Malformed` error on the database file whose reason
/// contains `want`, both directly and through the package facts.
fn assert_malformed(root: &Path, want: &str) {
    let facts = Facts::new(root, false);
    match rpmdb::read(&facts) {
        Err(FactError::Malformed { path, reason }) => {
            assert_eq!(path, RPMDB);
            assert!(reason.contains(want), "{reason:?} does not say {want:?}");
        }
        other => panic!("expected a Malformed error saying {want:?}, got {other:?}"),
    }
    assert!(packages(&facts).is_err());
}

/// Where each package's header starts in the file (headers small enough to sit in
/// one page), found by their region entry, keyed by name.
fn headers(bytes: &[u8]) -> BTreeMap<String, usize> {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut found = BTreeMap::new();
    for at in 8..bytes.len() - 24 {
        if bytes[at..at + 8] != [0, 0, 0, 63, 0, 0, 0, 7] || be(at + 12) != 16 {
            continue;
        }
        let start = at - 8;
        let (il, dl) = (be(start), be(start + 4));
        let store = start + 8 + 16 * il;
        if il > 200 || store + dl > bytes.len() {
            continue;
        }
        for e in 0..il {
            let entry = start + 8 + 16 * e;
            if be(entry) == 1000 {
                let name = &bytes[store + be(entry + 8)..];
                let name = &name[..name.iter().position(|b| *b == 0).unwrap()];
                found.insert(String::from_utf8_lossy(name).into_owned(), start);
            }
        }
    }
    found
}

/// The offset in the file of the index entry for `tag` of the header at `start`.
fn entry(bytes: &[u8], start: usize, tag: u32) -> usize {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (0..be(start) as usize)
        .map(|e| start + 8 + 16 * e)
        .find(|at| be(*at) == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"))
}

fn put(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn damaged_files_are_errors_naming_the_problem() {
    // Truncated: the tail pages are gone.
    let t = damaged(|b| b.truncate(b.len() * 3 / 5));
    assert_malformed(t.path(), "truncated");
    // Cut inside the header, and empty.
    let t = damaged(|b| b.truncate(60));
    assert_malformed(t.path(), "too short for an SQLite database");
    let t = damaged(|b| b.clear());
    assert_malformed(t.path(), "too short for an SQLite database");
    // Garbage of the right size.
    let t = damaged(|b| {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i * 131 % 256) as u8;
        }
    });
    assert_malformed(t.path(), "not an SQLite 3 database");
    // An SQLite database without a Packages table.
    let t = damaged(|b| {
        for at in 0..b.len() - 8 {
            if &b[at..at + 8] == b"Packages" {
                b[at + 7] = b'z';
            }
        }
    });
    assert_malformed(t.path(), "no Packages table");
    // An impossible page size.
    let t = damaged(|b| b[16..18].copy_from_slice(&1000u16.to_be_bytes()));
    assert_malformed(t.path(), "invalid page size 1000");
}

/// A change to a file, given where the header it damages starts.
type Damage = fn(&mut [u8], usize);

#[test]
fn damaged_headers_are_errors_naming_the_row_and_the_problem() {
    let cases: [(&str, Damage, &str); 6] = [
        (
            "an index count past the blob",
            |b, h| put(b, h, 0x7fff_ffff),
            "index entry count 2147483647",
        ),
        (
            "a data length past the blob",
            |b, h| {
                let dl = u32::from_be_bytes(b[h + 4..h + 8].try_into().unwrap());
                put(b, h + 4, dl + 64)
            },
            "but the header is",
        ),
        (
            "an offset past the data store",
            |b, h| put(b, entry(b, h, 1001) + 8, 0x00ff_0000),
            "past the",
        ),
        (
            "a huge count of integers",
            |b, h| put(b, entry(b, h, 1003) + 12, 0xffff_ffff),
            "4294967295 integers",
        ),
        (
            "a huge count on a string",
            |b, h| put(b, entry(b, h, 1000) + 12, 0xffff_ffff),
            "count of 4294967295",
        ),
        (
            "an unknown type",
            |b, h| put(b, entry(b, h, 1002) + 4, 77),
            "unknown type 77",
        ),
    ];
    for (what, damage, want) in cases {
        let t = damaged(|b| {
            let h = headers(b)["shadow-utils"];
            damage(b, h);
        });
        let facts = Facts::new(t.path(), false);
        match rpmdb::read(&facts) {
            Err(FactError::Malformed { path, reason }) => {
                assert_eq!(path, RPMDB, "{what}");
                assert!(
                    reason.contains("the header in Packages row") && reason.contains(want),
                    "{what}: {reason:?} does not say {want:?}"
                );
            }
            other => panic!("{what}: expected a Malformed error, got {other:?}"),
        }
    }
}

// ---- version order, against rpm's own ----

/// A small deterministic generator (xorshift), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// A version string: real ones, pieces of them, or bytes from an alphabet that has
/// every kind of character the order treats differently.
fn version(rng: &mut Rng) -> String {
    const REAL: &[&str] = &[
        "8.7p1-38.el9",
        "1:3.0.7-27.el9",
        "2:4.9-8.el9",
        "5.14.0-427.13.1.el9_4",
        "20240202-1.git283706d.el9",
        "1.9.5p2-10.el9_3",
        "2023.5.20240730-0.amzn2023",
        "1.0~rc1-1",
        "1.0^git20240101.abc-2",
        "0.16-100.el9",
        "10.0001",
        "4.999.9",
    ];
    const PIECES: &[&str] = &[
        "0", "1", "2", "9", "10", "007", "p", "a", "b", "rc", "Z", ".", "_", "+", "-", ":", "~",
        "^", "el", "git", "..",
    ];
    match rng.below(3) {
        0 => rng.pick(REAL).to_string(),
        1 => (0..1 + rng.below(8)).map(|_| rng.pick(PIECES)).collect(),
        _ => (0..1 + rng.below(10))
            .map(|_| b"019az.~^-:_"[rng.below(11)] as char)
            .collect(),
    }
}

/// `v` changed a little: a byte changed, added or removed, or a suffix.
fn mutate(rng: &mut Rng, v: &str) -> String {
    let mut b: Vec<char> = v.chars().collect();
    let at = rng.below(b.len() + 1);
    let c = b"0189abz.~^-:"[rng.below(12)] as char;
    match rng.below(5) {
        0 if at < b.len() => b[at] = c,
        1 => b.insert(at, c),
        2 if at < b.len() => {
            b.remove(at);
        }
        3 => b.extend(["~rc1", "^git1", ".1", "a", "-1", ".0", "~", "^"][rng.below(8)].chars()),
        _ => {}
    }
    b.into_iter().collect()
}

/// `compare_rpm_versions` agrees with rpm 4.18's `rpm.vercmp` on generated pairs:
/// unrelated versions, and versions a small change apart (the same but for one
/// byte, or a suffix), every pair in both orders.
#[test]
fn version_order_agrees_with_rpm() {
    const PAIRS: usize = 50_000;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut pairs = Vec::with_capacity(2 * PAIRS);
    while pairs.len() < 2 * PAIRS {
        let a = version(&mut rng);
        let b = if rng.below(2) == 0 {
            mutate(&mut rng, &a)
        } else {
            version(&mut rng)
        };
        pairs.push((b.clone(), a.clone()));
        pairs.push((a, b));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs");
    let text: String = pairs.iter().map(|(a, b)| format!("{a}\t{b}\n")).collect();
    fs::write(&input, text).unwrap();
    let script = dir.path().join("vercmp.lua");
    fs::write(
        &script,
        format!(
            "for line in io.lines('{}') do\n\
             local a, b = line:match('^([^\\t]*)\\t(.*)$')\n\
             local ok, r = pcall(rpm.vercmp, a, b)\n\
             io.write(ok and tostring(r) or 'invalid', '\\n')\n\
             end\n",
            input.display()
        ),
    )
    .unwrap();
    let out = run(
        "rpm",
        &[
            "--eval",
            &format!("%{{lua: dofile('{}')}}", script.display()),
        ],
    );
    let answers: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        answers.len(),
        pairs.len(),
        "rpm answered {} pairs",
        answers.len()
    );
    let mut compared = 0;
    let mut seen = BTreeMap::new();
    let mut wrong = Vec::new();
    for ((a, b), answer) in pairs.iter().zip(answers) {
        let want = match answer {
            "-1" => std::cmp::Ordering::Less,
            "0" => std::cmp::Ordering::Equal,
            "1" => std::cmp::Ordering::Greater,
            // rpm refuses an empty version; the agent never meets one.
            _ => continue,
        };
        compared += 1;
        *seen.entry(answer).or_insert(0) += 1;
        if compare_rpm_versions(a, b) != want {
            wrong.push(format!("{a:?} vs {b:?}: rpm says {want:?}"));
        }
    }
    assert!(
        compared > 2 * PAIRS * 9 / 10,
        "only {compared} pairs compared"
    );
    assert!(
        seen.len() == 3 && seen.values().all(|n| *n > PAIRS / 10),
        "too few pairs of some order: {seen:?}"
    );
    assert!(
        wrong.is_empty(),
        "{} of {compared} pairs ordered unlike rpm:\n{}",
        wrong.len(),
        wrong
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!("{compared} version pairs ordered as rpm orders them: {seen:?}");
}
