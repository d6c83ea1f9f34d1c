//! The databases the tests read: tiny noarch packages built by `rpmbuild` and
//! installed with `rpm --justdb` into roots kept under cargo's target directory,
//! and what rpm itself lists from them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use rampart_agent::facts::rpmdb::RpmPackage;
use tempfile::TempDir;

/// A package to build: name, epoch, version, release, and how many bytes of
/// description to give it (a header larger than a page spills to overflow pages).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pkg {
    pub(crate) name: &'static str,
    pub(crate) epoch: Option<u32>,
    pub(crate) version: &'static str,
    pub(crate) release: &'static str,
    pub(crate) description: usize,
}

pub(crate) const fn pkg(name: &'static str, version: &'static str, release: &'static str) -> Pkg {
    Pkg {
        name,
        epoch: None,
        version,
        release,
        description: 40,
    }
}

pub(crate) const fn with_epoch(p: Pkg, epoch: u32) -> Pkg {
    Pkg {
        epoch: Some(epoch),
        ..p
    }
}

/// Packages of a RHEL 9 system: epochs on two, two kernels installed side by side,
/// and one header of ~24 KiB (six pages of overflow).
pub(crate) const RHEL9: &[Pkg] = &[
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
pub(crate) const AL2023: &[Pkg] = &[
    pkg("system-release", "2023.5.20240730", "0.amzn2023"),
    pkg("openssh-server", "8.7p1", "8.amzn2023.0.11"),
    pkg("sudo", "1.9.15", "1.p5.amzn2023.0.1"),
    pkg("chrony", "4.3", "1.amzn2023.0.4"),
    with_epoch(pkg("openssl", "3.0.8", "1.amzn2023.0.14"), 1),
    pkg("kernel", "6.1.102", "111.182.amzn2023"),
];

/// Installed while a reader holds the database open: it stays in the WAL.
pub(crate) const LATE: Pkg = pkg("rsyslog", "8.2310.0", "4.el9");

/// Runs a program of Debian's rpm package, failing with what to install.
pub(crate) fn run(program: &str, args: &[&str]) -> String {
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
pub(crate) const SPEC: &str = "Name: {name}\nVersion: {version}\nRelease: {release}\n{epoch}\
                    Summary: rampart test package\nLicense: MIT\nBuildArch: noarch\n\
                    %description\n{description}\n%files\n";

/// The packages built by rpmbuild (`rpms/<name>-<version>-<release>.rpm`) and a root
/// for each list with its packages installed by rpm (`RHEL9/`, `AL2023/`). Made once
/// and kept under cargo's target directory, named by a hash of everything that goes
/// into them; a run that finds them complete reuses them.
pub(crate) fn fixtures() -> &'static Path {
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
pub(crate) fn build_packages(out: &Path) {
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

pub(crate) fn key(p: &Pkg) -> String {
    format!("{}-{}-{}", p.name, p.version, p.release)
}

/// The .rpm file of a package of the tests.
pub(crate) fn rpm_file(p: &Pkg) -> PathBuf {
    fixtures().join("rpms").join(format!("{}.rpm", key(p)))
}

/// Installs packages from `rpms` into `root`'s /var/lib/rpm with the real rpm,
/// database only.
pub(crate) fn install_from(rpms: &Path, root: &Path, pkgs: &[Pkg]) {
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
pub(crate) fn root_with(list: &str) -> TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(
        &fixtures().join(list).join("var/lib/rpm"),
        &t.path().join("var/lib/rpm"),
    );
    t
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// What rpm itself lists in `root`, as the agent's type.
pub(crate) fn rpm_lists(root: &Path) -> Vec<RpmPackage> {
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

pub(crate) fn expected(pkgs: &[Pkg]) -> Vec<RpmPackage> {
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
pub(crate) fn listing(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
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
