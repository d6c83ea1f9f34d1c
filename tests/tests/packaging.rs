//! The .deb and .rpm packages built by `packaging/build.sh`: their metadata, file lists
//! and conffiles, the static agent inside them, and their systemd units, which
//! `systemd-analyze verify` accepts inside a real Debian 12 root (no output at all) and
//! `systemd-analyze security --offline` scores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rampart_tests::{debian_root, packages, rpm_root, workspace};

fn version() -> String {
    let text = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let ws = &text[text.find("[workspace.package]").unwrap()..];
    let line = ws.lines().find(|l| l.starts_with("version = ")).unwrap();
    line.trim_start_matches("version = ")
        .trim_matches('"')
        .into()
}

fn file(name: &str) -> PathBuf {
    let v = version();
    let name = name.replace("VER", &v);
    let p = packages().join(&name);
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A control field of a .deb (`dpkg-deb -f`), empty when absent.
fn deb_field(deb: &Path, field: &str) -> String {
    run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field))
        .trim()
        .to_string()
}

/// Paths of a .deb's data (`dpkg-deb -c`), with owners; `./` stripped.
fn deb_files(deb: &Path) -> Vec<(String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let path = cols[5].trim_start_matches('.').to_string();
            (path, cols[1].to_string())
        })
        .collect()
}

/// One file of a .deb's control archive (conffiles, postinst...).
fn deb_control(deb: &Path, name: &str) -> String {
    let t = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(t.path()));
    std::fs::read_to_string(t.path().join(name)).unwrap_or_default()
}

fn rpm_q(rpm: &Path, args: &[&str]) -> String {
    run(Command::new("rpm").arg("-qp").args(args).arg(rpm))
}

#[test]
fn debs_have_their_metadata_files_and_conffiles() {
    let v = version();
    let agent = file("rampart-agent_VER_amd64.deb");
    assert_eq!(deb_field(&agent, "Package"), "rampart-agent");
    assert_eq!(deb_field(&agent, "Version"), v);
    assert_eq!(deb_field(&agent, "Architecture"), "amd64");
    // Static: installs on a minimal cloud image with nothing else.
    assert_eq!(deb_field(&agent, "Depends"), "");
    assert_eq!(deb_field(&agent, "Pre-Depends"), "");
    let files = deb_files(&agent);
    assert!(
        files.iter().all(|(_, owner)| owner == "root/root"),
        "{files:?}"
    );
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "/usr/bin/rampart-agent",
        "/lib/systemd/system/rampart-agent.service",
        "/etc/default/rampart-agent",
        "/usr/share/man/man8/rampart-agent.8.gz",
        "/usr/share/doc/rampart-agent/copyright",
        "/usr/share/doc/rampart-agent/README.md",
    ] {
        assert!(paths.contains(&want), "agent .deb lacks {want}: {paths:?}");
    }
    // enroll writes agent.toml: the package must not own it.
    assert!(!paths.contains(&"/etc/rampart/agent.toml"));
    assert_eq!(
        deb_control(&agent, "conffiles").trim(),
        "/etc/default/rampart-agent"
    );
    assert!(deb_control(&agent, "postinst").contains("systemctl enable rampart-agent.service"));

    let coll = file("rampart-collector_VER_amd64.deb");
    assert_eq!(deb_field(&coll, "Package"), "rampart-collector");
    assert_eq!(deb_field(&coll, "Version"), v);
    // Static, like the agent: no libc, only the maintainer scripts' adduser.
    assert_eq!(deb_field(&coll, "Depends"), "adduser");
    let paths: Vec<String> = deb_files(&coll).into_iter().map(|(p, _)| p).collect();
    let dl = "/usr/share/rampart-collector/download";
    for want in [
        "/usr/bin/rampart-collector".to_string(),
        "/lib/systemd/system/rampart-collector.service".into(),
        "/etc/rampart/collector.toml".into(),
        "/usr/lib/sysusers.d/rampart-collector.conf".into(),
        "/usr/share/man/man8/rampart-collector.8.gz".into(),
        "/usr/share/doc/rampart-collector/copyright".into(),
        format!("{dl}/rampart-agent"),
        format!("{dl}/install.sh"),
        format!("{dl}/rampart-agent.service"),
        format!("{dl}/rampart-agent_{v}_amd64.deb"),
        format!("{dl}/rampart-agent-{v}-1.x86_64.rpm"),
    ] {
        assert!(paths.contains(&want), "collector .deb lacks {want}");
    }
    assert_eq!(
        deb_control(&coll, "conffiles").trim(),
        "/etc/rampart/collector.toml"
    );
    let postinst = deb_control(&coll, "postinst");
    assert!(
        postinst.contains("adduser --system") && postinst.contains("rampart-collector"),
        "{postinst}"
    );
}

#[test]
fn rpms_have_their_metadata_files_and_config_files() {
    let v = version();
    let agent = file("rampart-agent-VER-1.x86_64.rpm");
    assert_eq!(
        rpm_q(
            &agent,
            &["--qf", "%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}"]
        ),
        format!("rampart-agent {v} 1 x86_64 Apache-2.0")
    );
    let list = rpm_q(&agent, &["-l"]);
    for want in [
        "/usr/bin/rampart-agent",
        "/usr/lib/systemd/system/rampart-agent.service",
        "/etc/sysconfig/rampart-agent",
        "/usr/share/man/man8/rampart-agent.8.gz",
        "/usr/share/licenses/rampart-agent/LICENSE",
    ] {
        assert!(list.lines().any(|l| l == want), "agent .rpm lacks {want}");
    }
    assert_eq!(
        rpm_q(&agent, &["-c"]).trim(),
        "/etc/sysconfig/rampart-agent"
    );
    assert_eq!(
        rpm_q(&agent, &["-L"]).trim(),
        "/usr/share/licenses/rampart-agent/LICENSE"
    );
    // Static: it requires no library, only rpm's own features and a shell for its scripts.
    let requires = rpm_q(&agent, &["-R"]);
    assert!(
        requires
            .lines()
            .all(|l| l.starts_with("rpmlib(") || l == "/bin/sh"),
        "{requires}"
    );

    let coll = file("rampart-collector-VER-1.x86_64.rpm");
    assert_eq!(
        rpm_q(&coll, &["--qf", "%{NAME} %{VERSION} %{ARCH}"]),
        format!("rampart-collector {v} x86_64")
    );
    let list = rpm_q(&coll, &["-l"]);
    for want in [
        "/usr/bin/rampart-collector".to_string(),
        "/usr/lib/systemd/system/rampart-collector.service".into(),
        format!("/usr/share/rampart-collector/download/rampart-agent-{v}-1.x86_64.rpm"),
        "/usr/share/rampart-collector/download/install.sh".into(),
    ] {
        assert!(
            list.lines().any(|l| l == want),
            "collector .rpm lacks {want}"
        );
    }
    assert_eq!(rpm_q(&coll, &["-c"]).trim(), "/etc/rampart/collector.toml");
    let scripts = rpm_q(&coll, &["--scripts"]);
    assert!(scripts.contains("useradd -r"), "{scripts}");
}

/// The agent's .rpm installs with rpm's dependency check on (no `--nodeps`) into roots
/// whose rpm database is that of a RHEL 9 and an Amazon Linux 2023 image: it needs nothing
/// but a shell, which their bash provides. The installed agent then scans its own root
/// with the benchmark os-release chooses. (Scriptlets are not run: the roots hold no real
/// programs; `rpms_have_their_metadata_files_and_config_files` checks what they say.)
#[test]
fn the_agent_rpm_installs_on_rhel_9_and_al2023_without_dependencies() {
    let v = version();
    let agent = file("rampart-agent-VER-1.x86_64.rpm");
    for (distro, benchmark) in [("rhel-9", "rhel-9"), ("al2023", "al2023")] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        run(Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(rpm_root(distro))
            .arg(&root));
        let rpm = |args: &[&str]| -> Output {
            Command::new("rpm")
                .arg("--root")
                .arg(&root)
                .args(["--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite"])
                .args(args)
                .output()
                .unwrap()
        };
        let out = rpm(&["-i", "--noscripts", agent.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{distro}: rpm -i refused the agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let q = rpm(&["-q", "--qf", "%{NAME} %{VERSION}", "rampart-agent"]);
        assert_eq!(
            String::from_utf8_lossy(&q.stdout),
            format!("rampart-agent {v}")
        );
        let verify = rpm(&["-V", "rampart-agent"]);
        assert!(
            verify.status.success(),
            "{distro}: the installed files differ from the package: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let scan = Command::new(root.join("usr/bin/rampart-agent"))
            .args(["check", "--format", "json", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&scan.stdout)
            .unwrap_or_else(|e| panic!("{distro}: {e}: {}", String::from_utf8_lossy(&scan.stderr)));
        assert_eq!(doc["benchmark"]["id"], benchmark, "{distro}");
    }
}

/// PT_INTERP (a dynamic loader) and DT_NEEDED (shared libraries) of an ELF64 file.
fn elf_dynamic_bits(bytes: &[u8]) -> (bool, usize) {
    assert_eq!(&bytes[..4], b"\x7fELF", "not ELF");
    assert_eq!(bytes[4], 2, "not ELF64");
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let mut interp = false;
    let mut needed = 0;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph) {
            3 => interp = true,
            2 => {
                let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
                for d in (off..off + size).step_by(16) {
                    match u64_at(d) {
                        0 => break,
                        1 => needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (interp, needed)
}

#[test]
fn the_packaged_programs_are_static_and_the_agent_the_same_everywhere() {
    let t = tempfile::tempdir().unwrap();
    let deb_root = t.path().join("deb");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(file("rampart-agent_VER_amd64.deb"))
        .arg(&deb_root));
    let bin = std::fs::read(deb_root.join("usr/bin/rampart-agent")).unwrap();
    assert_eq!(
        elf_dynamic_bits(&bin),
        (false, 0),
        "the agent is not static"
    );
    // The same binary is served for download, by the collector's package too.
    assert!(std::fs::read(file("rampart-agent")).unwrap() == bin);
    let coll_root = t.path().join("coll");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(file("rampart-collector_VER_amd64.deb"))
        .arg(&coll_root));
    // The collector is static too: one binary for every distribution and the image.
    let coll_bin = std::fs::read(coll_root.join("usr/bin/rampart-collector")).unwrap();
    assert_eq!(
        elf_dynamic_bits(&coll_bin),
        (false, 0),
        "the collector is not static"
    );
    let dl = coll_root.join("usr/share/rampart-collector/download");
    assert!(std::fs::read(dl.join("rampart-agent")).unwrap() == bin);
    let served_deb = std::fs::read(dl.join(format!("rampart-agent_{}_amd64.deb", version())));
    assert!(served_deb.unwrap() == std::fs::read(file("rampart-agent_VER_amd64.deb")).unwrap());
    // install.sh is served with its version filled in.
    let install = std::fs::read_to_string(dl.join("install.sh")).unwrap();
    assert!(install.contains(&format!("VERSION='{}'", version())));
    // The packaged collector config points the download dir at these files.
    let conf = std::fs::read_to_string(coll_root.join("etc/rampart/collector.toml")).unwrap();
    assert!(conf.contains("download_dir = \"/usr/share/rampart-collector/download\""));
    let parsed = rampart_collector::config::Config::parse(&conf, Path::new("collector.toml"));
    assert!(parsed.is_ok(), "{parsed:?}");
    // It runs, and its man page is there.
    let version_out = run(Command::new(deb_root.join("usr/bin/rampart-agent")).arg("--version"));
    assert_eq!(version_out.trim(), format!("rampart-agent {}", version()));
    // SHA256SUMS lists every output.
    let sums = std::fs::read_to_string(file("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 7, "{sums}");
    let out = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(packages())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A copy of the Debian 12 root (never the cache itself) with both .debs installed in
/// it by its own dpkg (`chroot ROOT dpkg -i`), maintainer scripts and all.
fn root_with_packages() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    run(Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(debian_root())
        .arg(&root));
    let mut dpkg = Command::new("chroot");
    dpkg.arg(&root).args(["dpkg", "-i"]);
    for deb in [
        "rampart-agent_VER_amd64.deb",
        "rampart-collector_VER_amd64.deb",
    ] {
        let f = file(deb);
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        std::fs::copy(&f, root.join("tmp").join(&name)).unwrap();
        dpkg.arg(format!("/tmp/{name}"));
    }
    run(&mut dpkg);
    t
}

fn chroot(root: &Path, args: &[&str]) -> String {
    run(Command::new("chroot").arg(root).args(args))
}

/// What the maintainer scripts did: the collector's user and data directory, its first
/// admin's token in a root-only file, both units enabled, the conffiles registered; and
/// removal and purge undo what they should.
#[test]
fn debs_install_and_purge_in_a_debian_root() {
    use std::os::unix::fs::MetadataExt;
    let t = root_with_packages();
    let root = t.path().join("root");
    let passwd = chroot(&root, &["getent", "passwd", "rampart-collector"]);
    assert!(
        passwd
            .trim()
            .ends_with(":/var/lib/rampart-collector:/usr/sbin/nologin"),
        "{passwd}"
    );
    let uid: u32 = passwd.split(':').nth(2).unwrap().parse().unwrap();
    let data = std::fs::metadata(root.join("var/lib/rampart-collector")).unwrap();
    assert_eq!((data.uid(), data.mode() & 0o777), (uid, 0o700));
    let ca = std::fs::metadata(root.join("var/lib/rampart-collector/ca")).unwrap();
    assert_eq!(ca.uid(), uid, "the collector's files belong to its user");
    let token = root.join("etc/rampart/collector-admin-token");
    let meta = std::fs::metadata(&token).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (0, 0o600));
    let text = std::fs::read_to_string(&token).unwrap();
    assert!(text.starts_with("rpt_") && text.trim().len() > 20, "{text}");
    for unit in ["rampart-agent.service", "rampart-collector.service"] {
        let wants = root
            .join("etc/systemd/system/multi-user.target.wants")
            .join(unit);
        assert!(wants.symlink_metadata().is_ok(), "{unit} is not enabled");
    }
    let conf = chroot(
        &root,
        &[
            "dpkg-query",
            "-W",
            "-f",
            "${Conffiles}",
            "rampart-collector",
        ],
    );
    assert!(conf.contains("/etc/rampart/collector.toml"), "{conf}");
    // An enrolled agent's files go on purge; the collector's data stays.
    std::fs::write(root.join("etc/rampart/agent.toml"), "x = 1\n").unwrap();
    std::fs::create_dir_all(root.join("var/lib/rampart")).unwrap();
    chroot(
        &root,
        &["dpkg", "--purge", "rampart-agent", "rampart-collector"],
    );
    assert!(!root.join("etc/rampart/agent.toml").exists());
    assert!(!root.join("var/lib/rampart").exists());
    assert!(!root.join("etc/rampart/collector-admin-token").exists());
    assert!(!root.join("etc/rampart/collector.toml").exists());
    assert!(root.join("var/lib/rampart-collector/db").exists());
    assert!(!root
        .join("etc/systemd/system/multi-user.target.wants/rampart-agent.service")
        .exists());
}

/// `systemd-analyze verify --root=ROOT UNIT`: its whole output (stdout and stderr).
fn verify(root: &Path, unit: &str) -> Output {
    Command::new("systemd-analyze")
        .args(["verify", "--man=no", "--recursive-errors=no"])
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .current_dir(root)
        .output()
        .expect("systemd-analyze (Debian package systemd)")
}

/// The overall exposure score of `systemd-analyze security --offline=yes`.
fn exposure(root: &Path, unit: &str) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let score = line
        .split(": ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    (score, text)
}

#[test]
fn units_verify_cleanly_in_a_debian_root_and_are_hardened() {
    let t = root_with_packages();
    let root = t.path().join("root");
    for unit in ["rampart-agent.service", "rampart-collector.service"] {
        assert!(root.join("lib/systemd/system").join(unit).is_file());
        let out = verify(&root, unit);
        assert!(
            out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
            "systemd-analyze verify {unit}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (agent, agent_text) = exposure(&root, "rampart-agent.service");
    let (coll, coll_text) = exposure(&root, "rampart-collector.service");
    println!("systemd-analyze security --offline=yes exposure: rampart-agent.service {agent}, rampart-collector.service {coll}");
    assert!(
        agent < 5.0,
        "the agent's exposure is {agent}:\n{agent_text}"
    );
    assert!(
        coll < 5.0,
        "the collector's exposure is {coll}:\n{coll_text}"
    );
    // What the agent keeps: read access everywhere, write only to its state.
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/rampart-agent.service")).unwrap();
    for want in [
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "StateDirectory=rampart\n",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_AUDIT_CONTROL\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(want), "agent unit lacks {want}");
    }
    let unit =
        std::fs::read_to_string(root.join("lib/systemd/system/rampart-collector.service")).unwrap();
    assert!(unit.contains("User=rampart-collector\n") && unit.contains("CapabilityBoundingSet=\n"));
}

/// The verify check is not blind: a misspelt directive, a missing binary and a unit
/// that wants a unit the root lacks each produce output.
#[test]
fn verify_reports_a_broken_unit() {
    let t = root_with_packages();
    let root = t.path().join("root");
    let good =
        std::fs::read_to_string(root.join("lib/systemd/system/rampart-agent.service")).unwrap();
    for (name, broken) in [
        (
            "typo",
            good.replace("ProtectSystem=strict", "ProtectSytem=strict"),
        ),
        (
            "nobinary",
            good.replace("/usr/bin/rampart-agent run", "/usr/bin/rampart-agnet run"),
        ),
        ("nosection", good.replace("[Install]", "[Instal]")),
    ] {
        assert_ne!(broken, good, "{name}");
        let unit = format!("rampart-broken-{name}.service");
        std::fs::write(root.join("etc/systemd/system").join(&unit), broken).unwrap();
        let out = verify(&root, &unit);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "{name}: verify said nothing");
        println!("{name}: {stderr}");
    }
}
