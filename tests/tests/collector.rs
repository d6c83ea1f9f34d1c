//! The collector and the agent together, as real processes over loopback with real
//! mutual TLS: enrollment, scan on provision, scoring, the handover gate in block
//! mode, releases and roles; a collector killed mid-stream; refused credentials.

use std::fs;

use rampart_tests::cluster::{wait_for, Agent, Collector};
use rampart_tests::scenarios::{self, fixture_root};
use serde_json::{json, Value};

#[test]
fn enroll_scan_on_provision_gate_release_and_roles() {
    scenarios::enroll_scan_gate_release(None);
}

#[test]
fn collector_killed_mid_stream_loses_and_duplicates_nothing() {
    scenarios::killed_mid_stream(None);
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

    // The agent connects again with its renewed certificate on its own.
    wait_for("a reconnect with the renewed certificate", 30, || {
        let l = a.log();
        (l.contains("connecting again with the renewed certificate")
            && l.matches(" connected ").count() >= 2)
            .then_some(())
    });
    // SIGHUP: the agent reloads and reconnects, with the renewed certificate.
    let connects = a.log().matches(" connected ").count();
    let pid = a.child.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    wait_for("a reconnect after SIGHUP", 30, || {
        let l = a.log();
        (l.contains("reloading configuration") && l.matches(" connected ").count() > connects)
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
    assert_eq!(bad.status.code(), Some(2), "unknown role is a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown role `root`"));
    // Exit codes: 2 for what the command was given, 1 for what it found.
    let exit = |args: &[&str]| {
        let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = exit(&["serve", "--no-such-flag"]);
    assert_eq!(code, Some(2), "{err}");
    let broken = t.path().join("broken.toml");
    fs::write(&broken, "grpc_listen = [\n").unwrap();
    let (code, err) = exit(&[
        "audit",
        "verify",
        "--data",
        data.to_str().unwrap(),
        "--config",
        broken.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("broken.toml"), "the config is named: {err}");
    let nowhere = t.path().join("nowhere");
    let (code, err) = exit(&["audit", "verify", "--data", nowhere.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("rampart-collector: no collector database at "),
        "{err}"
    );
    let (code, err) = exit(&["audit", "verify", "--data", data.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let c = Collector::start(&data, Some(ports), Some(&admin));
    // A port in use: the collector cannot start (1) and says which address.
    let (code, err) = exit(&[
        "serve",
        "--data",
        t.path().join("second").to_str().unwrap(),
        "--grpc-listen",
        &c.grpc,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {}", c.grpc)),
        "{err}"
    );
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
