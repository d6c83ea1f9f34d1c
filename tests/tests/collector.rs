//! The collector and the agent together, as real processes over loopback with real
//! mutual TLS: enrollment, scan on provision, scoring, the handover gate in block
//! mode, releases and roles; a collector killed mid-stream; refused credentials.

use std::fs;
use std::path::Path;

use rampart_tests::cluster::{wait_for, Agent, Collector};
use rampart_tests::{agent_json, statuses};
use serde_json::{json, Value};

/// A small Debian 12 tree. With `critical`, it has a second UID 0 account and an
/// account with an empty password: critical failures.
fn fixture_root(dir: &Path, critical: bool) {
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

#[test]
fn enroll_scan_on_provision_gate_release_and_roles() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, true);
    let c = Collector::start(&t.path().join("collector"), None, None);
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

#[test]
fn collector_killed_mid_stream_loses_and_duplicates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, false);
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    assert!(a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]).0);
    let cfg = fs::read_to_string(a.config())
        .unwrap()
        .replace("batch_size = 500", "batch_size = 3");
    fs::write(a.config(), cfg).unwrap();
    a.run(&[("RAMPART_AGENT_BATCH_DELAY_MS", "120")]);
    let id = a.agent_id();
    let scan_id = wait_for("results arriving", 60, || {
        let s = c
            .scans_of(&id)
            .into_iter()
            .find(|s| s["status"] == "running")?;
        let sid = s["id"].as_str()?.to_string();
        let n = c.admin("GET", &format!("/api/v1/scans/{sid}"), None)["results"]
            .as_array()?
            .len();
        (n > 0).then_some(sid)
    });
    let (ports, admin) = (c.ports(), c.admin.clone());
    c.kill9();
    drop(c);
    let c = Collector::start(&data, Some(ports), Some(&admin));
    let done = wait_for("the scan to complete after the restart", 90, || {
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

#[test]
fn refusals_are_clear() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, false);
    let c = Collector::start(&t.path().join("collector"), None, None);

    // The wrong pin: the agent refuses the collector.
    let a = Agent::new(&t.path().join("wrong-pin"));
    let token = c.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&c.url(), &token, &"ab".repeat(32), &root, &[]);
    assert!(!ok && out.contains("pinned fingerprint"), "{out}");

    // A token past its uses, an unknown token, an expired token.
    let mut first = Agent::new(&t.path().join("first"));
    assert!(first.enroll(&c.url(), &token, &c.fingerprint, &root, &[]).0);
    let (ok, out) =
        Agent::new(&t.path().join("second")).enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(!ok && out.contains("no uses left"), "{out}");
    let (ok, out) = Agent::new(&t.path().join("unknown")).enroll(
        &c.url(),
        "rpe_nope",
        &c.fingerprint,
        &root,
        &[],
    );
    assert!(!ok && out.contains("unknown enrollment token"), "{out}");
    let short = c.enrollment_token("web", 5, 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (ok, out) =
        Agent::new(&t.path().join("late")).enroll(&c.url(), &short, &c.fingerprint, &root, &[]);
    assert!(!ok && out.contains("expired"), "{out}");
    // Refusals of a real token are audited; an unknown token is only counted (a
    // stranger must not be able to grow the audit log).
    let refused = c.admin("GET", "/api/v1/audit?action=enrollment.refused", None);
    assert_eq!(
        refused["total"], 2,
        "every refused use of a real token is recorded: {refused}"
    );
    let metrics = String::from_utf8_lossy(
        &std::process::Command::new("curl")
            .args(["-s", &format!("http://{}/metrics", c.rest)])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        metrics.contains("rampart_enrollment_refusals_total{reason=\"unknown_token\"} 1"),
        "{metrics}"
    );

    // A revoked agent is refused at the TLS handshake.
    let id = first.agent_id();
    c.admin("POST", &format!("/api/v1/agents/{id}/revoke"), None);
    first.run(&[]);
    let log = wait_for("the revoked agent to be refused", 30, || {
        let l = first.log();
        l.contains("collector session ended").then_some(l)
    });
    assert!(log.to_lowercase().contains("revoked"), "{log}");
    let agents = c.agents();
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["connected"] == false),
        "{agents}"
    );

    // A certificate from another collector's CA is refused.
    let other = Collector::start(&t.path().join("other"), None, None);
    let mut stranger = Agent::new(&t.path().join("stranger"));
    assert!(
        stranger
            .enroll(
                &other.url(),
                &other.enrollment_token("web", 1, 3600),
                &other.fingerprint,
                &root,
                &[]
            )
            .0
    );
    let cfg = fs::read_to_string(stranger.config())
        .unwrap()
        .replace(&other.url(), &c.url())
        .replace(&other.fingerprint, &c.fingerprint);
    fs::write(stranger.config(), cfg).unwrap();
    stranger.run(&[]);
    let log = wait_for("the stranger to be refused", 30, || {
        let l = stranger.log();
        l.contains("collector session ended").then_some(l)
    });
    assert!(
        log.contains("UnknownCA") || log.contains("BadCertificate") || log.contains("unknown ca"),
        "{log}"
    );
}

#[test]
fn certificates_renew_sighup_reloads_and_stalled_scans_fail() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, false);
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        // REST over HTTPS here: renewal and reloads do not depend on the REST port.
        Some("agent_cert_days = 1\nscan_timeout_secs = 5\nrest_tls = true\n"),
    );
    assert!(c.rest_ca.is_some());
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    assert!(a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]).0);
    let state = |a: &Agent| -> Value {
        serde_json::from_slice(&fs::read(a.dir.join("state/agent.json")).unwrap()).unwrap()
    };
    let first_cert = fs::read(a.dir.join("state/agent.crt")).unwrap();
    let first_expiry = state(&a)["cert_not_after_unix"].as_i64().unwrap();
    // Renew when less than two days are left: at once, with one-day certificates.
    let cfg = fs::read_to_string(a.config()).unwrap().replace(
        "batch_size = 500",
        "batch_size = 60\nrenew_before_secs = 172800",
    );
    fs::write(a.config(), cfg).unwrap();
    a.run(&[]);
    let id = a.agent_id();
    c.completed_scan(&id, 60);
    wait_for("the renewed certificate", 60, || {
        (fs::read(a.dir.join("state/agent.crt")).ok()? != first_cert).then_some(())
    });
    assert!(state(&a)["cert_not_after_unix"].as_i64().unwrap() >= first_expiry);
    assert_eq!(
        c.admin("GET", "/api/v1/audit?action=agent.renew", None)["total"],
        1
    );

    // SIGHUP: the agent reloads and reconnects, now with the renewed certificate.
    let pid = a.child.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("a reconnect after SIGHUP", 30, || {
        let l = a.log();
        (l.contains("reloading configuration") && l.matches(" connected ").count() >= 2)
            .then_some(())
    });
    let agents = c.agents();
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str() && x["connected"] == true),
        "{agents}"
    );

    // Twelve seconds between batches is longer than the 5 s progress timeout.
    assert!(a.stop().unwrap().success());
    a.run(&[("RAMPART_AGENT_BATCH_DELAY_MS", "12000")]);
    wait_for("the agent to reconnect", 30, || {
        c.agents()
            .as_array()?
            .iter()
            .any(|x| x["connected"] == true)
            .then_some(())
    });
    c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": id })));
    let failed = wait_for("the stalled scan to fail", 60, || {
        c.scans_of(&id)
            .into_iter()
            .find(|s| s["status"] == "failed")
    });
    assert!(
        failed["failure_reason"]
            .as_str()
            .unwrap()
            .contains("no progress from the agent for 5 s"),
        "{failed}"
    );
}

#[test]
fn cli_manages_users_and_tokens_while_stopped() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    let (ports, admin) = (c.ports(), c.admin.clone());
    c.kill9();
    drop(c);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let viewer = run(&[
        "user",
        "add",
        "vic",
        "--role",
        "viewer",
        "--data",
        data.to_str().unwrap(),
    ]);
    let enroll = run(&[
        "token",
        "create",
        "--data",
        data.to_str().unwrap(),
        "--project",
        "ops",
    ]);
    let bad = std::process::Command::new(rampart_tests::binary("rampart-collector"))
        .args([
            "user",
            "add",
            "x",
            "--role",
            "root",
            "--data",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
    let c = Collector::start(&data, Some(ports), Some(&admin));
    assert_eq!(c.api("GET", "/api/v1/scans", Some(&viewer), None).0, 403);
    let root = t.path().join("root");
    fixture_root(&root, false);
    let a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &enroll, &c.fingerprint, &root, &[]);
    assert!(ok, "{out}");
    let agents = c.agents();
    assert_eq!(agents[0]["project"], "ops");
}

#[test]
fn downloads_are_served_with_checksums() {
    use rampart_tests::cluster::http_raw;
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let c = Collector::start(&data, None, None);
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(data.join("download/rampart-agent"), &payload).unwrap();
    let r = http_raw("GET", &c.rest, "/download/rampart-agent", None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, payload);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let sum = http_raw("GET", &c.rest, "/download/rampart-agent.sha256", None);
    assert_eq!(sum.status, 200);
    let expect = std::process::Command::new("sha256sum")
        .arg(data.join("download/rampart-agent"))
        .output()
        .unwrap();
    let expect = String::from_utf8_lossy(&expect.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&sum.body),
        format!("{expect}  rampart-agent\n")
    );
    assert_eq!(
        http_raw("GET", &c.rest, "/download/missing", None).status,
        404
    );
    // Nothing outside the download directory: not the CA key, whatever the spelling.
    for bad in [
        "/download/..%2Fca%2Fca.key",
        "/download/.hidden",
        "/download/%2e%2e",
    ] {
        let st = http_raw("GET", &c.rest, bad, None).status;
        assert!(st == 400 || st == 404, "{bad}: {st}");
    }
}

#[test]
fn user_add_on_a_fresh_directory_makes_the_only_admin() {
    // What the collector package's postinst does before the service first starts: the
    // token it prints must be the one admin, not a second one beside an unseen first.
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
        .args(["user", "add", "admin", "--role", "admin", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("rpt_"), "{token}");
    let c = Collector::start(&data, None, Some(&token));
    assert_eq!(
        c.admin, token,
        "the collector made a first admin of its own"
    );
    let users = c.admin("GET", "/api/v1/users", None);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin"], "{users}");
}
