//! Conventions that check themselves: module docs, one crypto provider (ring), a
//! licence allow-list for every crate we link, workspace lints in every member, and the
//! agent's architecture invariants (it never listens and runs exactly one program).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_tests::workspace;

/// Licences every dependency may carry (SPDX identifiers; `WITH` exceptions included).
const ALLOWED_LICENCES: &[&str] = &[
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Zlib",
    "Unlicense",
    "BSL-1.0",
    "0BSD",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "LLVM-exception",
    "CDLA-Permissive-2.0",
    "MPL-2.0",
];

/// Crates that must never be in the tree: a second rustls provider panics at start-up,
/// and the agent must not depend on the host's OpenSSL.
const FORBIDDEN_CRATES: &[&str] = &["aws-lc-rs", "aws-lc-sys", "openssl-sys", "native-tls"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The workspace members, from the root manifest's `members = [...]`.
fn members() -> Vec<String> {
    let text = fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["workspace"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for m in members() {
        rust_files(&workspace().join(&m).join("src"), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` module doc: {missing:#?}"
    );
}

#[test]
fn every_member_uses_the_workspace_lints() {
    for m in members() {
        let path = workspace().join(&m).join("Cargo.toml");
        let v: toml::Value = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            v.get("lints")
                .and_then(|l| l.get("workspace"))
                .and_then(|w| w.as_bool()),
            Some(true),
            "{} lacks `[lints] workspace = true` (unsafe_code = forbid comes from there)",
            path.display()
        );
    }
}

/// Every SPDX identifier of a licence expression, operators and brackets removed.
fn licence_ids(expr: &str) -> Vec<String> {
    expr.replace(['(', ')'], " ")
        .replace('/', " OR ")
        .split_whitespace()
        .filter(|w| !matches!(*w, "OR" | "AND" | "WITH"))
        .map(str::to_string)
        .collect()
}

#[test]
fn licence_ids_parse_expressions() {
    assert_eq!(licence_ids("MIT/Apache-2.0"), ["MIT", "Apache-2.0"]);
    assert_eq!(
        licence_ids("(MIT OR Apache-2.0) AND Unicode-3.0"),
        ["MIT", "Apache-2.0", "Unicode-3.0"]
    );
    assert_eq!(licence_ids("GPL-3.0-only"), ["GPL-3.0-only"]);
}

#[test]
fn dependency_tree_has_one_crypto_provider_and_allowed_licences() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let linked: std::collections::HashSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let packages: Vec<&serde_json::Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| linked.contains(p["id"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ring"), "ring is not in the tree");
    let forbidden: Vec<&&str> = names
        .iter()
        .filter(|n| FORBIDDEN_CRATES.contains(n))
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden crates in the tree: {forbidden:?}"
    );

    let mut bad = Vec::new();
    for p in &packages {
        if p["source"].is_null() {
            continue; // our own crates
        }
        let name = p["name"].as_str().unwrap();
        match p["license"].as_str() {
            None => bad.push(format!("{name}: no SPDX licence expression")),
            Some(expr) => {
                let unknown: Vec<String> = licence_ids(expr)
                    .into_iter()
                    .filter(|id| !ALLOWED_LICENCES.contains(&id.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    bad.push(format!(
                        "{name}: {expr} (not allowed: {})",
                        unknown.join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "dependencies outside the licence allow-list: {bad:#?}"
    );
}

/// Lines of the agent's sources that contain `needle`, as `path:line`.
fn agent_lines_with(needle: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&workspace().join("agent/src"), &mut files);
    let mut hits = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains(needle) {
                hits.push(format!("{}:{}", f.display(), i + 1));
            }
        }
    }
    hits
}

#[test]
fn the_agent_never_listens() {
    for needle in ["TcpListener", "UdpSocket", "UnixListener", ".bind("] {
        let hits = agent_lines_with(needle);
        assert!(
            hits.is_empty(),
            "the agent must not listen, found `{needle}` at {hits:?}"
        );
    }
}

#[test]
fn the_agent_runs_one_program_only() {
    let hits = agent_lines_with("Command::new");
    assert_eq!(
        hits.len(),
        1,
        "the agent runs exactly one fixed program (auditctl -l); found {hits:?}"
    );
    assert!(hits[0].contains("facts/audit.rs"), "{hits:?}");
}
