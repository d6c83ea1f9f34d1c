//! What the real `rampart-agent` does with the files it reads and writes: special
//! files in a scanned tree are refused rather than waited for, globs stay inside
//! `--root`, and the private key written by `enroll` is 0600 whatever the umask.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_tests::binary;
use rampart_tests::cluster::{Agent, Collector};

/// A minimal Debian 12 root with openssh-server installed (so the sshd rules run).
fn debian_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let files = [
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        ),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/hostname", "fixture-host\n"),
        (
            "var/lib/dpkg/status",
            "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2+deb12u3\n",
        ),
        (
            "etc/ssh/sshd_config",
            "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n",
        ),
    ];
    for (path, text) in files {
        let p = t.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    t
}

/// Runs `rampart-agent check --root ROOT --profile PROFILE --format json`, killing
/// it (and failing) when it has not finished within `secs`; returns the document.
fn check_within(root: &Path, profile: &str, secs: u64) -> serde_json::Value {
    let out_path = root.with_extension("json");
    let mut child = Command::new(binary("rampart-agent"))
        .args(["check", "--root"])
        .arg(root)
        .args(["--profile", profile, "--format", "json"])
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run rampart-agent");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rampart-agent check did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(matches!(status.code(), Some(0 | 1)), "exit {status:?}");
    let doc = fs::read(&out_path).unwrap();
    let _ = fs::remove_file(&out_path);
    serde_json::from_slice(&doc).expect("a JSON document")
}

/// The result of rule `id`: (status, evidence as one string).
fn result(doc: &serde_json::Value, id: &str) -> (String, String) {
    let r = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}"));
    (
        r["status"].as_str().unwrap().to_string(),
        r["evidence"].to_string(),
    )
}

#[test]
fn fifos_at_config_paths_are_refused_not_waited_for() {
    let t = debian_tree();
    let fifos = [
        "/etc/login.defs",
        "/etc/ssh/sshd_config.d/x.conf",
        "/etc/sysctl.d/x.conf",
    ];
    for f in fifos {
        let h = t.path().join(f.trim_start_matches('/'));
        fs::create_dir_all(h.parent().unwrap()).unwrap();
        let made = Command::new("mkfifo").arg(&h).status().unwrap();
        assert!(made.success(), "mkfifo {f}");
    }
    let doc = check_within(t.path(), "level1-server", 60);
    let results = doc["results"].as_array().unwrap();
    // systemd-sysctl lists only regular files and links in sysctl.d (a FIFO there is
    // never read at boot), and so does the agent: it sets nothing and blocks nothing.
    assert!(
        !results
            .iter()
            .any(|r| r["evidence"].to_string().contains("/etc/sysctl.d/x.conf")),
        "a FIFO in sysctl.d applies nothing"
    );
    for f in &fifos[..2] {
        let said = format!("{f} is a FIFO, not a regular file");
        let named: Vec<&serde_json::Value> = results
            .iter()
            .filter(|r| r["evidence"].to_string().contains(&said))
            .collect();
        assert!(!named.is_empty(), "no rule names `{said}`");
        for r in named {
            assert!(
                r["status"] == "error" || r["status"] == "fail",
                "{}: {} with evidence naming the FIFO",
                r["id"],
                r["status"]
            );
        }
    }
}

/// A globbed directory that is a symlink to an absolute path is followed inside the
/// root: here /etc/audit points at "/etc", so the audit-files rule must judge the
/// root's /etc (a world-writable inside.conf: fail), never list the host's /etc.
#[test]
fn globbed_symlinked_directories_stay_inside_the_root() {
    let t = debian_tree();
    let etc = t.path().join("etc");
    fs::write(etc.join("inside.conf"), "x\n").unwrap();
    fs::set_permissions(etc.join("inside.conf"), fs::Permissions::from_mode(0o666)).unwrap();
    symlink("/etc", etc.join("audit")).unwrap();
    let doc = check_within(t.path(), "level2-server", 120);
    let (status, evidence) = result(&doc, "6.2.4.5");
    assert_eq!(status, "fail", "{evidence}");
    assert!(evidence.contains("/etc/inside.conf"), "{evidence}");
    for host_only in ["ld.so.conf", "host.conf", "adduser.conf"] {
        assert!(
            !evidence.contains(host_only),
            "host file listed: {evidence}"
        );
    }
}

/// `enroll` under umask 000, over a state directory where an interrupted write left
/// a world-writable temporary file: the private key is still 0600, and the key and
/// certificate files are the only state besides agent.json and ca.crt.
#[test]
fn enroll_writes_the_key_0600_whatever_the_umask() {
    let d = tempfile::tempdir().unwrap();
    let c = Collector::start(&d.path().join("collector"), None, None);
    let a = Agent::new(&d.path().join("agent"));
    let state = a.dir.join("state");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("agent.tmp"), b"stale").unwrap();
    fs::set_permissions(state.join("agent.tmp"), fs::Permissions::from_mode(0o666)).unwrap();
    let token = c.enrollment_token("proj", 1, 3600);
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(binary("rampart-agent"))
        .args(["enroll", "--collector", &c.url(), "--token", &token])
        .args(["--ca-fingerprint", &c.fingerprint, "--config"])
        .arg(a.config())
        .arg("--state-dir")
        .arg(&state)
        .arg("--root")
        .arg("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enroll: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = |f: &str| fs::metadata(state.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("agent.key"), 0o600, "the private key");
    assert_eq!(mode("agent.crt"), 0o644);
    assert_eq!(mode("agent.json"), 0o644);
    let mut names: Vec<String> = fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agent.crt",
            "agent.json",
            "agent.key",
            "agent.tmp",
            "ca.crt"
        ]
    );
}
