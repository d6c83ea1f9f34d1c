//! One small harness for the black-box tests in `tests/tests/`: find the real
//! binaries, run them, and provide the cached Debian 12 root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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
    let p = target.join(profile).join(name);
    if !p.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", name])
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {name} failed");
    }
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
