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

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rampart_agent::facts::packages::{packages, Format};
use rampart_agent::facts::rpmdb::{self, RPMDB};
use rampart_agent::facts::Facts;

#[path = "rpmdb/build.rs"]
mod build;
#[path = "rpmdb/damage.rs"]
mod damage;
#[path = "rpmdb/version_order.rs"]
mod version_order;

use build::{expected, listing, root_with, rpm_file, rpm_lists, AL2023, LATE, RHEL9};

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
    let pk = packages(&facts).unwrap();
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
    let pk = packages(&facts).unwrap();
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
    let pk = packages(&facts).unwrap();
    assert_eq!(pk.format, Format::Dpkg);
    assert_eq!(pk.source, "/var/lib/dpkg/status");
    assert!(pk.is_installed("rpm") && !pk.is_installed("openssh-server"));

    let empty = tempfile::tempdir().unwrap();
    let facts = Facts::new(empty.path(), false);
    let err = packages(&facts).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read /var/lib/dpkg/status: no dpkg status database, \
         and no rpm database at /var/lib/rpm/rpmdb.sqlite"
    );
    assert_eq!(rpmdb::read(&facts), Ok(None));
}
