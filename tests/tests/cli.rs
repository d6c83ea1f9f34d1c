//! The `rampart-agent` CLI contract: exit codes, JSON shape, bad input.

use std::fs;
use std::os::unix::fs::symlink;

use rampart_tests::{agent, agent_json};

fn debian_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc")).unwrap();
    fs::write(
        t.path().join("etc/os-release"),
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    )
    .unwrap();
    fs::write(
        t.path().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/bash\n",
    )
    .unwrap();
    fs::write(t.path().join("etc/group"), "root:x:0:\n").unwrap();
    fs::write(t.path().join("etc/hostname"), "fixture-host\n").unwrap();
    t
}

#[test]
fn json_document_has_the_contract_fields() {
    let t = debian_tree();
    let root = t.path().to_str().unwrap();
    let v = agent_json(&["check", "--root", root, "--format", "json"], 0);
    assert_eq!(v["schema"], "rampart-scan");
    assert_eq!(v["version"], 1);
    assert_eq!(v["live"], false);
    assert!(v.get("scan_id").is_none() && v.get("handover").is_none());
    assert_eq!(v["benchmark"]["id"], "debian-12");
    assert_eq!(v["benchmark"]["version"], "1.1.0");
    assert_eq!(v["profile"], "level1-server");
    assert_eq!(v["host"]["hostname"], "fixture-host");
    for k in [
        "started_at",
        "finished_at",
        "duration_ms",
        "summary",
        "results",
        "root",
    ] {
        assert!(!v[k].is_null(), "missing {k}");
    }
    for k in [
        "score",
        "passed",
        "failed",
        "error",
        "not_applicable",
        "not_checked",
        "exempted",
    ] {
        assert!(v["summary"][k].is_number(), "summary.{k}");
    }
    for k in ["critical", "high", "medium", "low"] {
        assert!(v["summary"]["failed_by_severity"][k].is_number());
    }
    let results = v["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        for k in [
            "id",
            "title",
            "section",
            "status",
            "severity",
            "description",
            "remediation",
        ] {
            assert!(r[k].is_string(), "result field {k} in {r}");
        }
        assert!(r["level"].is_number() && r["automated"].is_boolean());
        assert!(
            !r["evidence"].as_array().unwrap().is_empty(),
            "empty evidence in {r}"
        );
    }
    // The score is the one the counts give.
    let s = &v["summary"];
    let (p, f, e) = (
        s["passed"].as_f64().unwrap(),
        s["failed"].as_f64().unwrap(),
        s["error"].as_f64().unwrap(),
    );
    if p + f + e > 0.0 {
        assert!(
            (s["score"].as_f64().unwrap() - (p * 1000.0 / (p + f + e)).round() / 10.0).abs() < 1e-9
        );
    }
}

#[test]
fn exemptions_and_fail_under() {
    let t = debian_tree();
    let root = t.path().to_str().unwrap();
    let v = agent_json(
        &[
            "check", "--root", root, "--format", "json", "--exempt", "7.1.1",
        ],
        0,
    );
    let r = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "7.1.1")
        .unwrap()
        .clone();
    assert_eq!(r["status"], "exempted");
    let out = agent(&["check", "--root", root, "--fail-under", "100.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 0 and 100"));
    let out = agent(&[
        "check",
        "--root",
        root,
        "--format",
        "json",
        "--fail-under",
        "100",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expect = if v["summary"]["score"].as_f64().unwrap() < 100.0 {
        1
    } else {
        0
    };
    assert_eq!(out.status.code(), Some(expect));
    let out = agent(&["check", "--root", root, "--exempt", "99.99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("99.99"));
}

#[test]
fn cannot_run_is_exit_2_with_a_clear_message() {
    let t = debian_tree();
    let file = t.path().join("etc/passwd");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--root".into(), "/nonexistent/rampart".into()],
            "is not a directory",
        ),
        (
            vec!["--root".into(), file.display().to_string()],
            "is not a directory",
        ),
        (
            vec!["--profile".into(), "level3-server".into()],
            "unknown profile",
        ),
        (
            vec!["--benchmark".into(), "windows-11".into()],
            "not available",
        ),
        (vec!["--format".into(), "xml".into()], "invalid value"),
    ];
    for (args, want) in cases {
        let mut a = vec!["check".to_string()];
        a.extend(args.clone());
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = agent(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
    }
}

#[test]
fn unknown_os_is_named() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc")).unwrap();
    fs::write(
        t.path().join("etc/os-release"),
        "ID=plan9\nVERSION_ID=4\nPRETTY_NAME=\"Plan 9 4th edition\"\n",
    )
    .unwrap();
    let out = agent(&["check", "--root", t.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Plan 9 4th edition") && err.contains("debian-12"),
        "{err}"
    );
    let empty = tempfile::tempdir().unwrap();
    let out = agent(&["check", "--root", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("os-release"));
}

#[test]
fn hostile_trees_give_errors_not_panics() {
    let t = debian_tree();
    let etc = t.path().join("etc");
    // Garbage bytes where configuration is expected.
    fs::create_dir_all(etc.join("ssh")).unwrap();
    fs::write(
        etc.join("ssh/sshd_config"),
        [0xff, 0x00, 0xfe, b'\n', 0x80, b'P', b'e'],
    )
    .unwrap();
    fs::write(
        etc.join("login.defs"),
        (0..4096u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    // A 100 MB file where a config file is expected (sparse: costs no disk).
    let big = fs::File::create(etc.join("sysctl.conf")).unwrap();
    big.set_len(100 * 1024 * 1024).unwrap();
    // Symlink loops, including one that a directory walk meets.
    symlink("/etc/loop-b", etc.join("loop-a")).unwrap();
    symlink("/etc/loop-a", etc.join("loop-b")).unwrap();
    symlink("/etc/loop-a", etc.join("fstab")).unwrap();
    fs::create_dir_all(t.path().join("var/lib")).unwrap();
    symlink("..", t.path().join("var/lib/up")).unwrap();
    fs::write(t.path().join("etc/group"), "root:x:0:\nbroken line\n").unwrap();
    let root = t.path().to_str().unwrap();
    for profile in [
        "level1-server",
        "level2-server",
        "level1-workstation",
        "level2-workstation",
    ] {
        let out = agent(&[
            "check",
            "--root",
            root,
            "--profile",
            profile,
            "--format",
            "json",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{profile}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors: Vec<String> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "error")
            .map(|r| format!("{}: {}", r["id"], r["evidence"]))
            .collect();
        // Errors must name the cause.
        for e in &errors {
            assert!(
                e.contains("larger than")
                    || e.contains("symlink loop")
                    || e.contains("cannot")
                    || e.contains("not"),
                "unexplained error {e}"
            );
        }
        if profile == "level1-server" {
            let sysctl_err = v["results"].as_array().unwrap().iter().any(|r| {
                r["status"] == "error"
                    && r["evidence"]
                        .to_string()
                        .contains("/etc/sysctl.conf is 104857600 bytes")
            });
            assert!(
                sysctl_err,
                "the 100 MB sysctl.conf must surface as an error naming it: {errors:?}"
            );
        }
    }
}

#[test]
fn rules_lists_every_recommendation() {
    let v = agent_json(&["rules", "--format", "json"], 0);
    let rules = v["rules"].as_array().unwrap();
    assert_eq!(v["benchmark"]["id"], "debian-12");
    for r in rules {
        assert!(
            r["profiles"].as_array().is_some_and(|p| !p.is_empty()),
            "{r}"
        );
        assert!(r.get("status").is_none() && r.get("evidence").is_none());
    }
    let l1 = agent_json(
        &["rules", "--profile", "level1-server", "--format", "json"],
        0,
    );
    let l2 = agent_json(
        &["rules", "--profile", "level2-server", "--format", "json"],
        0,
    );
    assert!(l1["rules"].as_array().unwrap().len() <= l2["rules"].as_array().unwrap().len());
    let text = agent(&["rules"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("CIS Debian Linux 12 Benchmark"));
}
