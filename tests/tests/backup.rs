//! Backup and restore of the built-in store: a backup taken through a running
//! collector while `rampart-loadgen` ingests, restored into a new directory and
//! served by a second collector, holds every scan completed before the backup began,
//! with its results and an intact audit chain; and the commands refuse clearly.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rampart_tests::binary;
use rampart_tests::cluster::{wait_for, Collector};
use serde_json::Value;

/// Limits raised as the benchmark raises them (enrollment and message rates).
const CONFIG: &str = "max_messages_per_sec = 100000\n\
                      [limits]\n\
                      enroll_per_source_per_minute = 100000\n\
                      enroll_per_second = 10000\n";

fn collector(args: &[&str]) -> Output {
    Command::new(binary("rampart-collector"))
        .args(args)
        .output()
        .expect("run rampart-collector")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every completed scan, newest first, following the API's pages.
fn completed(c: &Collector) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = "/api/v1/scans?status=completed&per_page=200".to_string();
    loop {
        let page = c.admin("GET", &path, None);
        all.extend(page["scans"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/scans?status=completed&per_page=200&before={n}"),
            None => return all,
        }
    }
}

fn total(c: &Collector, query: &str) -> u64 {
    c.admin("GET", &format!("/api/v1/scans?per_page=1{query}"), None)["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_backup_during_ingest_restores_every_scan_completed_before_it() {
    let started = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let c = Collector::start_with(&data, None, None, Some(CONFIG));
    let token = t.path().join("admin.token");
    std::fs::write(&token, &c.admin).unwrap();

    // Ingest: simulated agents, each completing scans of 310 results one after another.
    let load = Command::new(binary("rampart-loadgen"))
        .args([
            "--collector",
            &c.url(),
            "--rest",
            &format!("http://{}", c.rest),
        ])
        .args(["--admin-token-file", s(&token)])
        .args([
            "--agents",
            "8",
            "--scans-per-agent",
            "12",
            "--results",
            "300",
        ])
        .args(["--batch", "100", "--duration", "50"])
        .env_remove("RAMPART_DEBIAN_ROOT")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(t.path().join("loadgen.log")).unwrap(),
        ))
        .spawn()
        .expect("run rampart-loadgen");
    wait_for("16 completed scans", 60, || {
        (total(&c, "&status=completed") >= 16).then_some(())
    });

    // What was acknowledged before the backup begins: every completed scan and its
    // results.
    let before: Vec<(String, usize)> = completed(&c)
        .iter()
        .map(|sc| {
            let id = sc["id"].as_str().unwrap().to_string();
            let n = c.admin("GET", &format!("/api/v1/scans/{id}"), None)["results"]
                .as_array()
                .unwrap()
                .len();
            (id, n)
        })
        .collect();
    assert!(before.iter().all(|(_, n)| *n == 310), "{before:?}");

    // Without a token, the running collector cannot be asked.
    let file = t.path().join("fleet.backup");
    let refused = collector(&["backup", "--data", s(&data), "--to", s(&file)]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("admin token"), "{}", text(&refused));
    assert!(!file.exists());

    let took = Instant::now();
    let out = collector(&[
        "backup",
        "--data",
        s(&data),
        "--to",
        s(&file),
        "--token-file",
        s(&token),
        "--url",
        &format!("http://{}", c.rest),
    ]);
    let took = took.elapsed();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("through the running collector's API"),
        "{said}"
    );
    eprintln!("backup during ingest, {took:?}:\n{said}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup holds the CA's key");

    // Ingest went on, and ends without an error.
    let lg = load.wait_with_output_timeout(Duration::from_secs(90));
    let report: Value = serde_json::from_slice(&lg.stdout).unwrap_or(Value::Null);
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let done = total(&c, "&status=completed");
    assert!(
        done > before.len() as u64,
        "scans completed after the backup began: {done} vs {}",
        before.len()
    );
    let source_total = total(&c, "");
    let source_audit = c.admin("GET", "/api/v1/audit?per_page=1", None)["total"]
        .as_u64()
        .unwrap();

    // Restore into a new directory, check its chain with the stopped-collector tool,
    // and serve it.
    let restored = t.path().join("restored");
    let out = collector(&["restore", "--from", s(&file), "--data", s(&restored)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("chain intact"), "{}", text(&out));
    let out = collector(&["audit", "verify", "--data", s(&restored)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("audit chain intact"), "{}", text(&out));

    let c2 = Collector::start_with(&restored, None, Some(&c.admin), Some(CONFIG));
    assert_eq!(c2.fingerprint, c.fingerprint, "the same CA");
    assert_eq!(
        c2.ssh_public_key(),
        c.ssh_public_key(),
        "the same SSH key: targets that trust it are still reached"
    );
    let mut missing = Vec::new();
    for (id, n) in &before {
        let (code, v) = c2.api("GET", &format!("/api/v1/scans/{id}"), Some(&c.admin), None);
        if code != 200
            || v["scan"]["status"] != "completed"
            || v["results"].as_array().map(Vec::len) != Some(*n)
        {
            missing.push(format!("{id}: {code} {}", v["scan"]["status"]));
        }
    }
    assert!(missing.is_empty(), "lost in the backup: {missing:?}");
    let restored_total = total(&c2, "");
    assert!(
        restored_total >= before.len() as u64 && restored_total < source_total,
        "the backup is of a moment during ingest: {restored_total} scans restored, \
         {} completed before it, {source_total} at the end",
        before.len()
    );
    // The backup's own audit entry is in it, by the admin who asked.
    let entries = c2.admin("GET", "/api/v1/audit?action=backup.create", None);
    assert_eq!(entries["total"], 1, "{entries}");
    assert_eq!(entries["entries"][0]["actor"], "admin");
    let restored_audit = c2.admin("GET", "/api/v1/audit?per_page=1", None)["total"]
        .as_u64()
        .unwrap();
    assert!(restored_audit <= source_audit);
    eprintln!(
        "{} scans completed before the backup, {restored_total} restored, {source_total} in the source at the end; {:?} in all",
        before.len(),
        started.elapsed()
    );
}

#[test]
fn backup_and_restore_refuse_clearly() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    c.kill9();

    // A stopped collector is backed up from its store.
    let file = t.path().join("stopped.backup");
    let out = collector(&["backup", "--data", s(&data), "--to", s(&file)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("from the stopped collector's store"),
        "{}",
        text(&out)
    );
    // Never over an existing file.
    let out = collector(&["backup", "--data", s(&data), "--to", s(&file)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("never overwrites"), "{}", text(&out));
    // PostgreSQL has its own tools.
    let pg = t.path().join("pg.toml");
    std::fs::write(&pg, "store = \"postgres://rampart@127.0.0.1:1/rampart\"\n").unwrap();
    let out = collector(&[
        "backup",
        "--data",
        s(&data),
        "--config",
        s(&pg),
        "--to",
        s(&t.path().join("pg.backup")),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));

    // Restores: into a directory that is not empty, of a truncated file, of a file
    // with a flipped byte, of something else.
    let bytes = std::fs::read(&file).unwrap();
    let full = t.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), "x").unwrap();
    let out = collector(&["restore", "--from", s(&file), "--data", s(&full)]);
    assert!(text(&out).contains("is not empty"), "{}", text(&out));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            bytes[..bytes.len() * 2 / 3].to_vec(),
            "truncated",
        ),
        (
            "flipped",
            {
                let mut b = bytes.clone();
                let mid = b.len() / 2;
                b[mid] ^= 0x10;
                b
            },
            "damaged",
        ),
        (
            "other",
            b"not a backup at all".to_vec(),
            "not a Rampart backup",
        ),
    ];
    for (name, b, says) in cases {
        let f = t.path().join(format!("{name}.backup"));
        std::fs::write(&f, b).unwrap();
        let to = t.path().join(format!("restored-{name}"));
        let out = collector(&["restore", "--from", s(&f), "--data", s(&to)]);
        assert!(!out.status.success(), "{name}");
        let said = text(&out);
        assert!(
            said.contains(says) || (name == "flipped" && said.contains("checksum")),
            "{name}: {said}"
        );
        assert!(!said.contains("panicked"), "{name}: {said}");
        assert!(!to.exists(), "{name}: nothing is left behind");
    }
    let out = collector(&[
        "restore",
        "--from",
        s(&file),
        "--data",
        s(&t.path().join("ok")),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// `wait_with_output`, bounded: the child is killed past `limit`.
trait WaitBounded {
    fn wait_with_output_timeout(self, limit: Duration) -> Output;
}

impl WaitBounded for std::process::Child {
    fn wait_with_output_timeout(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while self.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.wait_with_output().unwrap()
    }
}
