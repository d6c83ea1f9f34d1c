//! One small harness for the black-box tests in `tests/tests/`: find the real
//! binaries, run them, and provide the cached Debian 12, RHEL 9 and AL2023 roots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod balancer;
pub mod cluster;
pub mod console_http;
pub mod differential;
pub mod imds;
pub mod pg;
pub mod podman;
pub mod scap;
pub mod scenarios;
pub mod sshd;
pub mod tls;
pub mod vm;

/// Runs `packaging/build.sh` once per test process into `target/packages` (incremental:
/// the packaging and VM tests share its output) and returns that directory.
pub fn packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/packages");
        let out = Command::new("bash")
            .arg(workspace().join("packaging/build.sh"))
            .arg(&dir)
            .output()
            .expect("run packaging/build.sh");
        assert!(
            out.status.success(),
            "packaging/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// Path of a workspace binary built by `cargo build` (debug profile, or the one
/// named by `RAMPART_PROFILE`).
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let profile = std::env::var("RAMPART_PROFILE").unwrap_or_else(|_| "debug".into());
    let p = target.join(&profile).join(name);
    // Built once per test process so a test never runs a stale binary: the whole
    // workspace, as scripts/test.sh builds it before the tests. A build of one package
    // (`-p NAME`) unifies other features of the shared dependencies, so each would
    // rebuild the programs another had just built (minutes of a CI run).
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let mut args = vec!["build", "--quiet", "--workspace", "--locked"];
        if profile == "release" {
            args.push("--release");
        }
        let status = Command::new(env!("CARGO"))
            .args(&args)
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build --workspace failed");
    });
    p
}

/// Runs `rampart-agent` with `args`.
pub fn agent(args: &[&str]) -> Output {
    Command::new(binary("rampart-agent"))
        .args(args)
        .output()
        .expect("run rampart-agent")
}

/// Runs the agent and parses its standard output as JSON, insisting on `code`.
pub fn agent_json(args: &[&str], code: i32) -> serde_json::Value {
    let out = agent(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "rampart-agent {args:?} exited {:?}; stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rampart-agent {args:?} printed no JSON: {e}"))
}

/// The real Debian 12 root (debootstrap, cached; see tests/fixtures/build-debian-root.sh).
/// `RAMPART_DEBIAN_ROOT` names an already built one.
pub fn debian_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(p) = std::env::var_os("RAMPART_DEBIAN_ROOT") {
            return PathBuf::from(p);
        }
        let out = Command::new("bash")
            .arg(workspace().join("tests/fixtures/build-debian-root.sh"))
            .output()
            .expect("run build-debian-root.sh");
        assert!(
            out.status.success(),
            "building the Debian 12 root failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A root laid out like a minimal cloud image of RHEL 9.4 (`rhel-9`) or Amazon Linux
/// 2023 (`al2023`), with a real rpm database (built once and cached; see
/// tests/fixtures/build-rpm-root.sh). `RAMPART_RHEL9_ROOT` and `RAMPART_AL2023_ROOT`
/// name already built ones.
pub fn rpm_root(distro: &str) -> &'static Path {
    static RHEL9: OnceLock<PathBuf> = OnceLock::new();
    static AL2023: OnceLock<PathBuf> = OnceLock::new();
    let (cell, var) = match distro {
        "rhel-9" => (&RHEL9, "RAMPART_RHEL9_ROOT"),
        "al2023" => (&AL2023, "RAMPART_AL2023_ROOT"),
        other => panic!("no rpm root for {other}"),
    };
    cell.get_or_init(|| {
        if let Some(p) = std::env::var_os(var) {
            return PathBuf::from(p);
        }
        let out = Command::new("bash")
            .arg(workspace().join("tests/fixtures/build-rpm-root.sh"))
            .arg(distro)
            .output()
            .expect("run build-rpm-root.sh");
        assert!(
            out.status.success(),
            "building the {distro} root failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Standard base64 with padding, as Terraform's base64encode() writes it.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Renders a cloud-init template the way Terraform's templatefile() would: `${name}` is
/// replaced by its value, `${base64encode(name)}` by its base64. Any other `${` or a `%{`
/// directive would be an error in Terraform (or a shell expansion it would eat), so it
/// panics here.
pub fn render_template(text: &str, vars: &std::collections::BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').expect("unclosed ${ in template");
        let expr = &after[..end];
        let (name, encode) = match expr
            .strip_prefix("base64encode(")
            .and_then(|e| e.strip_suffix(')'))
        {
            Some(inner) => (inner, true),
            None => (expr, false),
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("template uses ${{{expr}}}, which is not a known variable"));
        if encode {
            out.push_str(&base64(value.as_bytes()));
        } else {
            out.push_str(value);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    assert!(!out.contains("%{"), "templatefile directives are not used");
    out
}

/// The results of a scan document as (id → (status, evidence)).
pub fn statuses(
    scan: &serde_json::Value,
) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
    scan["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| {
            let ev = r["evidence"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (
                r["id"].as_str().unwrap().to_string(),
                (r["status"].as_str().unwrap().to_string(), ev),
            )
        })
        .collect()
}

/// A small Debian 12 tree with critical failures (a second UID 0 account and an
/// account with an empty password) and the given /etc/motd, whose lines the motd rule
/// quotes as evidence.
pub fn failing_root(dir: &Path, motd: &str) {
    let w = |p: &str, t: &str| {
        let h = dir.join(p);
        std::fs::create_dir_all(h.parent().unwrap()).unwrap();
        std::fs::write(h, t).unwrap();
    };
    w(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w("etc/hostname", "fixture\n");
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         toor:x:0:0::/root:/bin/bash\nguest:x:1001:1001::/home/guest:/bin/bash\n",
    );
    w(
        "etc/shadow",
        "root:!:19500:0:99999:7:::\ndaemon:*:19500:0:99999:7:::\n\
         toor:!:19500:0:99999:7:::\nguest::19500:0:99999:7:::\n",
    );
    w(
        "etc/group",
        "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nguest:x:1001:\n",
    );
    w(
        "var/lib/dpkg/status",
        "Package: sudo\nStatus: install ok installed\nVersion: 1.9.13p3-1+deb12u1\n\n",
    );
    w(
        "etc/login.defs",
        "PASS_MAX_DAYS 99999\nPASS_WARN_AGE 7\nUMASK 022\n",
    );
    w("etc/motd", motd);
}
