//! Cancelling scans end to end: a scan the agent is running stops (the engine checks
//! a cancellation flag between rules and in the filesystem walk), ends `cancelled`
//! with no results and an audit entry naming the admin; a pending scan cancelled
//! while its agent is offline is never run when the agent comes back.

use std::fs;
use std::path::Path;

use rampart_tests::cluster::{wait_for, Agent, Collector};
use serde_json::{json, Value};

/// A small Debian 12 root plus `dirs` × 1000 entries under /srv/big (hard links,
/// quick to make), so that the filesystem walk takes a while.
fn big_root(dir: &Path, dirs: usize) {
    let w = |p: &str, t: &str| {
        let h = dir.join(p);
        fs::create_dir_all(h.parent().unwrap()).unwrap();
        fs::write(h, t).unwrap();
    };
    w(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w("etc/hostname", "big\n");
    w("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    w("etc/shadow", "root:!:19500:0:99999:7:::\n");
    w("etc/group", "root:x:0:\nshadow:x:42:\n");
    for d in 0..dirs {
        let sub = dir.join(format!("srv/big/d{d:03}"));
        fs::create_dir_all(&sub).unwrap();
        let seed = sub.join("f0000");
        fs::write(&seed, "").unwrap();
        for f in 1..1000 {
            fs::hard_link(&seed, sub.join(format!("f{f:04}"))).unwrap();
        }
    }
}

fn scan(c: &Collector, id: &str) -> Value {
    c.admin("GET", &format!("/api/v1/scans/{id}"), None)
}

fn manual_scan(c: &Collector, agent: &str) -> String {
    let v = c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": agent })));
    v[0]["id"].as_str().unwrap().to_string()
}

fn connected(c: &Collector, agent: &str) -> Option<()> {
    c.agents()
        .as_array()?
        .iter()
        .any(|a| a["id"] == agent && a["connected"] == true)
        .then_some(())
}

/// The `elapsed_ms=N` the agent logged when it dropped `scan_id`.
fn cancelled_after_ms(log: &str, scan_id: &str) -> Option<u64> {
    log.lines()
        .find(|l| l.contains("scan cancelled; nothing is sent") && l.contains(scan_id))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix("elapsed_ms="))?
        .parse()
        .ok()
}

#[test]
fn cancel_stops_a_running_scan_and_a_pending_one_never_runs() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    big_root(&root, 400);
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    let mut a = Agent::new(&t.path().join("agent"));
    let token = c.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "{out}");
    a.run(&[]);
    let agent = a.agent_id();
    wait_for("the agent to connect", 30, || connected(&c, &agent));

    // Cancel while the agent is running the scan (it says so when it starts).
    let id = manual_scan(&c, &agent);
    wait_for("the scan to be running", 60, || {
        (scan(&c, &id)["scan"]["status"] == "running").then_some(())
    });
    let cancelled = c.admin("POST", &format!("/api/v1/scans/{id}/cancel"), None);
    assert_eq!(cancelled["status"], "cancelled");
    let stopped_ms = wait_for("the agent to drop the scan", 60, || {
        cancelled_after_ms(&a.log(), &id)
    });
    assert!(a.log().contains("cancelling the running scan"));
    let detail = scan(&c, &id);
    assert_eq!(detail["scan"]["status"], "cancelled", "{detail}");
    assert!(detail["scan"]["score"].is_null());
    assert_eq!(detail["results"].as_array().unwrap().len(), 0);
    let audit = c.admin("GET", "/api/v1/audit?action=scan.cancel", None);
    assert_eq!(audit["total"], 1);
    assert_eq!(audit["entries"][0]["actor"], "admin");
    assert_eq!(audit["entries"][0]["target"], id.as_str());
    // Cancelling twice is refused with the reason.
    let (code, v) = c.api(
        "POST",
        &format!("/api/v1/scans/{id}/cancel"),
        Some(&c.admin),
        None,
    );
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already cancelled"));

    // The agent carries on: the next scan runs in full, and takes longer than the
    // cancelled one ran, so the cancel did stop the work.
    let full = manual_scan(&c, &agent);
    let done = wait_for("the full scan", 120, || {
        let s = scan(&c, &full);
        (s["scan"]["status"] == "completed").then_some(s)
    });
    assert!(!done["results"].as_array().unwrap().is_empty());
    let ran_ms = done["scan"]["finished_at_ms"].as_u64().unwrap()
        - done["scan"]["started_at_ms"].as_u64().unwrap();
    eprintln!("the cancelled scan stopped after {stopped_ms} ms; a full scan ran {ran_ms} ms");
    assert!(
        stopped_ms < ran_ms,
        "the cancelled scan ran {stopped_ms} ms, a full one {ran_ms} ms"
    );
    assert_eq!(scan(&c, &id)["scan"]["status"], "cancelled");

    // A pending scan cancelled while the agent is offline is never run.
    assert!(a.stop().unwrap().success());
    wait_for("the agent to be offline", 30, || {
        connected(&c, &agent).is_none().then_some(())
    });
    let offline = manual_scan(&c, &agent);
    assert_eq!(scan(&c, &offline)["scan"]["status"], "pending");
    let v = c.admin("POST", &format!("/api/v1/scans/{offline}/cancel"), None);
    assert_eq!(v["status"], "cancelled");
    a.run(&[]);
    wait_for("the agent to reconnect", 30, || connected(&c, &agent));
    // A scan requested after the reconnect completes; the cancelled one, which would
    // have been handed over first, never reached the agent.
    let after = manual_scan(&c, &agent);
    wait_for("the scan after the reconnect", 120, || {
        (scan(&c, &after)["scan"]["status"] == "completed").then_some(())
    });
    assert!(!a.log().contains(&offline), "{}", a.log());
    let detail = scan(&c, &offline);
    assert_eq!(detail["scan"]["status"], "cancelled");
    assert_eq!(detail["results"].as_array().unwrap().len(), 0);
}
