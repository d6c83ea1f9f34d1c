//! The collector's data directory (CA key, database, webhook secret) is its own,
//! whatever umask it is started with (issue 10 #15): `serve` and the administrative
//! commands, started under `umask 000` on a fresh directory, leave the directory
//! 0700 and nothing under it readable, writable or searchable by group or others.

use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rampart_tests::binary;
use rampart_tests::cluster::{http, read_startup};
use serde_json::json;

/// `rampart-collector args…` under `umask 000`.
fn under_umask_000(args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"umask 000; exec "$0" "$@""#)
        .arg(binary("rampart-collector"))
        .args(args);
    c
}

/// Every path under `dir` (itself included) whose mode grants group or others
/// anything, with its mode.
fn open_paths(dir: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !meta.file_type().is_symlink() {
            bad.push(format!("{} {mode:04o}", p.display()));
        }
        if meta.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    bad
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn serve_under_umask_000_keeps_its_data_private() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    // Port 0: the collector binds and its ready line says where.
    let mut child = under_umask_000(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--grpc-listen",
        "127.0.0.1:0",
        "--rest-listen",
        "127.0.0.1:0",
    ])
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let started = read_startup(&mut BufReader::new(child.stdout.take().unwrap()))
        .expect("collector exited early");
    let rest = started.ready.rest;
    let admin = started.admin.expect("a first start prints the admin token");
    // Write through every path that stores something: a token, a user, settings
    // with the webhook secret (kept in clear in the store).
    let api = |method: &str, path: &str, body: serde_json::Value| {
        let (code, v) = http(method, &rest, path, Some(&admin), Some(&body));
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    };
    api(
        "POST",
        "/api/v1/enrollment-tokens",
        json!({"project": "web", "max_uses": 1, "ttl_seconds": 600}),
    );
    api(
        "POST",
        "/api/v1/users",
        json!({"name": "ops", "role": "viewer"}),
    );
    let mut s = http("GET", &rest, "/api/v1/settings", Some(&admin), None).1;
    s["webhook_url"] = json!("https://hooks.example.com/rampart");
    s["webhook_secret"] = json!("a-webhook-secret-0123456789");
    api("PUT", "/api/v1/settings", s);
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(mode(&data), 0o700);
    assert!(data.join("ca/ca.key").exists() && data.join("db").is_dir());
    assert_eq!(open_paths(&data), Vec::<String>::new());
}

#[test]
fn cli_commands_under_umask_000_keep_their_data_private() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let out = under_umask_000(&[
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--data",
        data.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = under_umask_000(&["token", "create", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(open_paths(&data), Vec::<String>::new());

    // A data directory left open by an older version is narrowed at the next start,
    // and the log says so.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("ca/ca.crt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = under_umask_000(&["token", "create", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("narrowed to 0700"), "{log}");
    assert_eq!(open_paths(&data), Vec::<String>::new());
}
