//! Whole scenarios with real processes, run by more than one test file: the same
//! story on the built-in store and on PostgreSQL.

use std::fs;
use std::path::Path;

use crate::cluster::{wait_for, Agent, Collector};
use crate::{agent_json, statuses};
use serde_json::json;

/// A small Debian 12 tree. With `critical`, it has a second UID 0 account and an
/// account with an empty password: critical failures.
pub fn fixture_root(dir: &Path, critical: bool) {
    let w = |p: &str, t: &str| {
        let h = dir.join(p);
        fs::create_dir_all(h.parent().unwrap()).unwrap();
        fs::write(h, t).unwrap();
    };
    w(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w("etc/hostname", "fixture\n");
    let mut passwd =
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
            .to_string();
    let mut shadow = "root:!:19500:0:99999:7:::\ndaemon:*:19500:0:99999:7:::\n".to_string();
    if critical {
        passwd.push_str("toor:x:0:0::/root:/bin/bash\nguest:x:1001:1001::/home/guest:/bin/bash\n");
        shadow.push_str("toor:!:19500:0:99999:7:::\nguest::19500:0:99999:7:::\n");
    }
    w("etc/passwd", &passwd);
    w("etc/shadow", &shadow);
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
}

/// Enrollment, a scan on provision scored as the agent scores it locally, the gate
/// in block mode, roles, a release and the audit entry, on a collector started with
/// `config` (TOML; `None`: the defaults, sled).
pub fn enroll_scan_gate_release(config: Option<&str>) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, true);
    let c = Collector::start_with(&t.path().join("collector"), None, None, config);
    c.set_settings(|s| s["mode"] = json!("block"));
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &["project=web"]);
    assert!(ok, "enroll failed: {out}");
    let key_mode = fs::metadata(a.dir.join("state/agent.key"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(key_mode, 0o600);
    a.run(&[]);
    let id = a.agent_id();
    let scan = c.completed_scan(&id, 60);
    assert_eq!(scan["trigger"], "provision");
    assert_eq!(scan["project"], "web");

    // The collector's score is the one the agent computes locally on the same root.
    let local = agent_json(
        &[
            "check",
            "--root",
            root.to_str().unwrap(),
            "--format",
            "json",
        ],
        0,
    );
    assert_eq!(
        scan["score"], local["summary"]["score"],
        "collector {scan} vs local {}",
        local["summary"]
    );
    for k in ["passed", "failed", "error", "not_applicable", "not_checked"] {
        assert_eq!(scan[k], local["summary"][k], "{k}");
    }
    assert_eq!(
        scan["failed_by_severity"]["critical"],
        local["summary"]["failed_by_severity"]["critical"]
    );
    let crit = scan["failed_by_severity"]["critical"].as_u64().unwrap();
    assert!(crit >= 2, "the fixture has two critical failures: {scan}");
    let detail = c.admin(
        "GET",
        &format!("/api/v1/scans/{}", scan["id"].as_str().unwrap()),
        None,
    );
    let by_id: std::collections::BTreeMap<String, String> = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (rid, (st, _)) in statuses(&local) {
        assert_eq!(by_id.get(&rid), Some(&st), "rule {rid}");
    }
    assert!(
        detail["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["title"].is_string() && r["severity"] == "critical"),
        "rule metadata joined"
    );

    // Block mode: critical failures block the handover, with the reason in words.
    let gate = c.admin("GET", &format!("/api/v1/handover/{id}"), None);
    assert_eq!(gate["allowed"], false, "{gate}");
    assert_eq!(gate["state"], "blocked");
    let reasons = gate["reasons"].to_string();
    assert!(
        reasons.contains(&format!("{crit} critical CIS check(s) failed")),
        "{reasons}"
    );

    // Roles: no token 401, viewer 403, provisioner may read but not release.
    let viewer = c.user("vera", "viewer");
    let prov = c.user("pipeline", "provisioner");
    assert_eq!(c.api("GET", "/api/v1/scans", None, None).0, 401);
    assert_eq!(
        c.api("GET", "/api/v1/scans", Some("rpt_wrong"), None).0,
        401
    );
    assert_eq!(c.api("GET", "/api/v1/scans", Some(&viewer), None).0, 403);
    assert_eq!(
        c.api("GET", &format!("/api/v1/handover/{id}"), Some(&prov), None)
            .0,
        200
    );
    let release = format!("/api/v1/scans/{}/release", scan["id"].as_str().unwrap());
    let (code, body) = c.api("POST", &release, Some(&prov), None);
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        c.api("PUT", "/api/v1/settings", Some(&prov), Some(json!({})))
            .0,
        403
    );

    // The blocked scan is listed as blocking, and counted so by the overview.
    let blocking = c.admin("GET", "/api/v1/scans?blocked=true", None);
    assert_eq!(
        (
            blocking["total"].clone(),
            blocking["scans"][0]["id"].clone()
        ),
        (json!(1), scan["id"].clone()),
        "{blocking}"
    );
    assert_eq!(c.admin("GET", "/api/v1/overview", None)["vms_blocked"], 1);

    // An admin release opens the gate and is recorded with who and when.
    let released = c.admin("POST", &release, None);
    assert_eq!(released["released_by"], "admin");
    assert!(released["released_at_ms"].as_i64().unwrap() > 0);
    let gate = c.admin("GET", &format!("/api/v1/handover/{id}"), None);
    assert_eq!(
        (gate["allowed"].clone(), gate["state"].clone()),
        (json!(true), json!("released")),
        "{gate}"
    );
    let audit = c.admin("GET", "/api/v1/audit?action=scan.release", None);
    assert_eq!(audit["total"], 1);
    assert_eq!(audit["entries"][0]["actor"], "admin");
    assert_eq!(audit["entries"][0]["target"], scan["id"]);
    assert_eq!(
        c.admin("GET", "/api/v1/scans?blocked=true", None)["total"],
        0
    );
    assert_eq!(c.admin("GET", "/api/v1/overview", None)["vms_blocked"], 0);
    // Pages follow by cursor: `next` of one page is the `before` of the next.
    let first = c.admin("GET", "/api/v1/audit?per_page=1", None);
    let next = first["next"].as_u64().expect("more than one entry");
    assert_eq!(first["entries"][0]["seq"].as_u64(), Some(next));
    let second = c.admin(
        "GET",
        &format!("/api/v1/audit?per_page=1&before={next}"),
        None,
    );
    assert_eq!(second["entries"][0]["seq"].as_u64(), Some(next - 1));
    assert_eq!(second["total"], first["total"]);
    let scans = c.admin("GET", "/api/v1/scans?per_page=1", None);
    assert_eq!(
        (scans["total"].clone(), scans["next"].clone()),
        (json!(1), json!(null)),
        "one scan: no next page {scans}"
    );

    // SIGTERM stops the daemon cleanly.
    let st = a.stop().expect("agent was running");
    assert!(st.success(), "agent exit {st:?}: {}", a.log());
}

/// A collector killed (SIGKILL) while results stream in, started again on the same
/// store: the scan completes with every rule exactly once.
pub fn killed_mid_stream(config: Option<&str>) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, false);
    let data = t.path().join("collector");
    let mut c = Collector::start_with(&data, None, None, config);
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    assert!(a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]).0);
    let scan_id = slow_stream_started(&mut a, &c);
    let (ports, admin) = (c.ports(), c.admin.clone());
    c.kill9();
    drop(c);
    let c = Collector::start_with(&data, Some(ports), Some(&admin), config);
    every_rule_once(&c, &scan_id, &root, &a);
}

/// Runs `agent` sending its results three at a time, slowly, and returns the ID of
/// its first scan once `c` has stored some of its results.
pub fn slow_stream_started(a: &mut Agent, c: &Collector) -> String {
    let cfg = fs::read_to_string(a.config())
        .unwrap()
        .replace("batch_size = 500", "batch_size = 3");
    fs::write(a.config(), cfg).unwrap();
    a.run(&[("RAMPART_AGENT_BATCH_DELAY_MS", "120")]);
    let id = a.agent_id();
    wait_for("results arriving", 60, || {
        let s = c
            .scans_of(&id)
            .into_iter()
            .find(|s| s["status"] == "running")?;
        let sid = s["id"].as_str()?.to_string();
        let n = c.admin("GET", &format!("/api/v1/scans/{sid}"), None)["results"]
            .as_array()?
            .len();
        (n > 0).then_some(sid)
    })
}

/// Waits for scan `scan_id` of `a` to complete as `c` sees it, then checks it holds
/// every rule of the profile exactly once, each with the status the agent finds
/// locally on `root`.
pub fn every_rule_once(c: &Collector, scan_id: &str, root: &Path, a: &Agent) {
    let done = wait_for("the scan to complete after the kill", 90, || {
        let s = c.admin("GET", &format!("/api/v1/scans/{scan_id}"), None);
        (s["scan"]["status"] == "completed").then_some(s)
    });
    let ids: Vec<String> = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "a result was stored twice");
    let expected = agent_json(
        &["rules", "--profile", "level1-server", "--format", "json"],
        0,
    )["rules"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(ids.len(), expected, "every rule exactly once");
    let local = statuses(&agent_json(
        &[
            "check",
            "--root",
            root.to_str().unwrap(),
            "--format",
            "json",
        ],
        0,
    ));
    for r in done["results"].as_array().unwrap() {
        assert_eq!(
            local[r["id"].as_str().unwrap()].0,
            r["status"].as_str().unwrap()
        );
    }
    assert!(
        a.log().contains("collector session ended"),
        "the agent saw the collector go away: {}",
        a.log()
    );
}
