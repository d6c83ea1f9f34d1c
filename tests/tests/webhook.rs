//! Warn-mode alerts (SPEC §4): a scan that block mode would have blocked is posted to
//! the webhook, signed with HMAC-SHA256 over the timestamp and the body, retried with
//! growing waits until the receiver accepts it, and every attempt is visible in the
//! API. Block and audit modes, and scans that break no rule, send nothing. A queued
//! delivery survives `kill -9`. The URL (a credential, often) is never in the log or
//! the audit log, and receivers on this host (loopback, by address or by name) or on
//! link-local and metadata addresses are refused unless the config allows loopback.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rampart_tests::cluster::{wait_for, Agent, Collector};
use serde_json::{json, Value};

const SECRET: &str = "hook-secret-0123456789";
/// A path segment standing for the token a chat service puts in its webhook URLs.
const PATH_TOKEN: &str = "T0001/B0002/pathToken5ecret";
/// The receivers here run on 127.0.0.1: the collector must be told to allow that.
const ALLOW_LOOPBACK: &str = "webhook_allow_loopback = true\n";

/// A Debian 12 tree with a second UID 0 account and an empty password: two
/// critical failures, which block mode would block on.
fn critical_root(dir: &Path) {
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
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/bash\n\
         guest:x:1001:1001::/home/guest:/bin/bash\n",
    );
    w(
        "etc/shadow",
        "root:!:19500:0:99999:7:::\ntoor:!:19500:0:99999:7:::\nguest::19500:0:99999:7:::\n",
    );
    w("etc/group", "root:x:0:\nshadow:x:42:\nguest:x:1001:\n");
}

/// A request the receiver got.
struct Received {
    at: Instant,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A loopback HTTP receiver: answers 500 while `fail(n)` is true for the n-th
/// request (from 0), else 200.
fn receiver(fail: impl Fn(usize) -> bool + Send + 'static) -> (String, Arc<Mutex<Vec<Received>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/{PATH_TOKEN}?team=ops",
        l.local_addr().unwrap()
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap_or(0);
            assert!(
                line.starts_with(&format!("POST /hooks/{PATH_TOKEN}?team=ops ")),
                "{line}"
            );
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let n = {
                let mut g = seen.lock().unwrap();
                g.push(Received {
                    at: Instant::now(),
                    headers,
                    body,
                });
                g.len() - 1
            };
            let status = if fail(n) {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = s.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (url, got)
}

/// HMAC-SHA256 of `body` in hex, computed by openssl (not by the collector's code).
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    c.stdin.take().unwrap().write_all(body).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

fn scan(c: &Collector, id: &str) -> Value {
    c.admin("GET", &format!("/api/v1/scans/{id}"), None)["scan"].clone()
}

/// A manual scan of `agent`, waited for until it completes.
fn completed_manual_scan(c: &Collector, agent: &str) -> Value {
    let s = c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": agent })));
    let id = s[0]["id"].as_str().unwrap().to_string();
    wait_for("the manual scan to complete", 60, || {
        let s = scan(c, &id);
        (s["status"] == "completed").then_some(s)
    })
}

fn attempts(c: &Collector) -> Value {
    c.admin("GET", "/api/v1/webhook/deliveries", None)
}

fn enrolled_agent(c: &Collector, dir: &Path) -> (Agent, String) {
    let root = dir.join("root");
    critical_root(&root);
    let mut a = Agent::new(&dir.join("agent"));
    let token = c.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "{out}");
    a.run(&[]);
    let id = a.agent_id();
    (a, id)
}

#[test]
fn warn_mode_alert_is_signed_retried_with_backoff_and_visible() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some(&format!("webhook_backoff_ms = 400\n{ALLOW_LOOPBACK}")),
    );
    let (url, got) = receiver(|n| n < 3);
    c.set_settings(|s| {
        s["mode"] = json!("warn");
        s["webhook_url"] = json!(url);
        s["webhook_secret"] = json!(SECRET);
    });
    // The secret is write-only, and the audit entry only says it changed.
    let settings = c.admin("GET", "/api/v1/settings", None);
    assert_eq!(settings["webhook_url"], url.as_str());
    assert_eq!(settings["webhook_secret_set"], true);
    assert!(settings.get("webhook_secret").is_none(), "{settings}");
    let audit = c.admin("GET", "/api/v1/audit?action=settings.change", None);
    let entry = audit["entries"][0]["detail"].as_str().unwrap().to_string();
    assert!(entry.contains("webhook_secret (changed)"), "{entry}");
    assert!(!entry.contains(SECRET), "{entry}");
    // A bad URL is refused with its reason, and so is a URL with no secret to sign.
    let mut bad = settings.clone();
    bad["webhook_url"] = json!("ftp://x/");
    let (code, v) = c.api("PUT", "/api/v1/settings", Some(&c.admin), Some(bad));
    assert_eq!(code, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("http:// or https://"));
    let mut unsigned = settings.clone();
    unsigned["webhook_secret"] = json!("");
    let (code, v) = c.api("PUT", "/api/v1/settings", Some(&c.admin), Some(unsigned));
    assert_eq!(code, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("webhook_secret"),
        "{v}"
    );

    // The provision scan breaks the policy: 3 refusals (500), then accepted.
    let (_agent, agent_id) = enrolled_agent(&c, t.path());
    wait_for("4 webhook attempts", 60, || {
        (got.lock().unwrap().len() >= 4).then_some(())
    });
    let got_now = got.lock().unwrap();
    let first = &got_now[0];
    let body = first.json();
    let scan_id = body["scan_id"].as_str().unwrap().to_string();
    let s = scan(&c, &scan_id);
    assert_eq!(s["status"], "completed");
    assert_eq!(s["blocked"], false, "warn mode never blocks");
    assert_eq!(body["event"], "scan.would_block");
    assert_eq!(body["agent_id"], agent_id.as_str());
    assert_eq!(body["host"], s["hostname"]);
    assert!(!body["host"].as_str().unwrap().is_empty());
    assert_eq!(body["project"], "web");
    assert_eq!(body["mode"], "warn");
    assert_eq!(body["score"], s["score"]);
    assert_eq!(body["reasons"], s["block_reasons"]);
    assert!(
        body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("critical CIS check(s) failed"),
        "{body}"
    );
    assert!(
        body["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/scans/{scan_id}")),
        "{body}"
    );
    let delivery = first.header("x-rampart-delivery").to_string();
    assert!(delivery.starts_with("wh-"), "{delivery}");
    assert_eq!(body["delivery_id"], delivery.as_str());
    for r in got_now.iter() {
        // Every retry is the same delivery with the same bytes, signed over its
        // timestamp header, a dot and the body: an old alert replayed with a fresh
        // timestamp does not verify.
        assert_eq!(r.header("x-rampart-delivery"), delivery);
        assert_eq!(r.body, first.body);
        assert_eq!(r.header("content-type"), "application/json");
        let ts = r.header("x-rampart-timestamp");
        let signed = [format!("{ts}.").as_bytes(), &r.body].concat();
        assert_eq!(
            r.header("x-rampart-signature"),
            format!("sha256={}", openssl_hmac(SECRET, &signed))
        );
        for forged in [
            openssl_hmac("another-secret-0000", &signed),
            openssl_hmac(SECRET, &r.body),
            openssl_hmac(SECRET, &[b"1700000000.", r.body.as_slice()].concat()),
        ] {
            assert_ne!(r.header("x-rampart-signature"), format!("sha256={forged}"));
        }
        let ts: i64 = ts.parse().unwrap();
        assert!(ts > 1_700_000_000, "{ts}");
    }
    // Waits grow: 400 ms, 800 ms, 1600 ms.
    let gaps: Vec<u128> = got_now
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    assert!(
        gaps[0] >= 350
            && gaps[1] >= 700
            && gaps[2] >= 1400
            && gaps[0] < gaps[1]
            && gaps[1] < gaps[2],
        "{gaps:?}"
    );
    drop(got_now);

    // Every attempt is in the API, newest first, with its outcome.
    let page = wait_for("the delivered attempt in the API", 30, || {
        let p = attempts(&c);
        (p["total"] == 4).then_some(p)
    });
    let list = page["attempts"].as_array().unwrap();
    let numbers: Vec<u64> = list
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1], "{page}");
    assert_eq!(list[0]["outcome"], "delivered");
    assert_eq!(list[0]["http_status"], 200);
    assert!(list[0]["next_attempt_ms"].is_null());
    for a in &list[1..] {
        assert_eq!(a["outcome"], "retrying", "{a}");
        assert_eq!(a["http_status"], 500);
        assert_eq!(a["error"], "HTTP 500");
        assert_eq!(a["delivery_id"], delivery.as_str());
        assert_eq!(a["scan_id"], scan_id.as_str());
        let wait = a["next_attempt_ms"].as_i64().unwrap() - a["at_ms"].as_i64().unwrap();
        let n = a["attempt"].as_u64().unwrap() as i64;
        assert!(wait >= 400 << (n - 1), "attempt {n} waits {wait} ms");
    }
    let page2 = c.admin("GET", "/api/v1/webhook/deliveries?page=1&per_page=3", None);
    assert_eq!(page2["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(page2["attempts"][0]["attempt"], 1);

    // Block mode, audit mode, and warn mode with a scan that breaks no rule: no
    // alert. A last warn-mode scan that would block is the marker: deliveries go
    // out in order, so once it arrives the others would have too.
    let quiet = [
        json!({"mode": "block"}),
        json!({"mode": "audit"}),
        json!({"mode": "warn", "block_on_critical": false, "min_score": 0.0}),
    ];
    let mut quiet_scans = Vec::new();
    for change in quiet {
        c.set_settings(|s| {
            for (k, v) in change.as_object().unwrap() {
                s[k] = v.clone();
            }
        });
        quiet_scans.push(completed_manual_scan(&c, &agent_id));
    }
    assert_eq!(quiet_scans[0]["blocked"], true);
    assert_eq!(quiet_scans[1]["blocked"], false);
    assert!(quiet_scans[2]["block_reasons"]
        .as_array()
        .unwrap()
        .is_empty());
    c.set_settings(|s| {
        s["block_on_critical"] = json!(true);
        s["min_score"] = json!(70.0);
    });
    let marker = completed_manual_scan(&c, &agent_id);
    wait_for("the marker alert", 30, || {
        got.lock()
            .unwrap()
            .iter()
            .any(|r| r.json()["scan_id"] == marker["id"])
            .then_some(())
    });
    let scans: Vec<Value> = got
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.json()["scan_id"].clone())
        .collect();
    assert_eq!(scans.len(), 5, "{scans:?}");
    assert!(scans[..4].iter().all(|s| s == scan_id.as_str()));
    assert_eq!(scans[4], marker["id"]);
    // The secret never reaches the log; nor does the URL's path, in the log or in
    // the audit log, which show it redacted. Only the settings show it, to admins.
    assert!(!c.log().contains(SECRET));
    let log = c.log();
    assert!(
        !log.contains(PATH_TOKEN) && !log.contains("pathToken"),
        "{log}"
    );
    let audit = c
        .admin("GET", "/api/v1/audit?per_page=1000", None)
        .to_string();
    assert!(!audit.contains("pathToken"), "{audit}");
    let host = url.split('/').nth(2).unwrap();
    assert!(
        audit.contains(&format!("http://{host}/…(sha256 ")),
        "{audit}"
    );
    assert!(log.contains(&format!("http://{host}/…(sha256 ")), "{log}");
}

#[test]
fn a_queued_delivery_survives_kill_9() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let config = format!("webhook_backoff_ms = 1500\n{ALLOW_LOOPBACK}");
    let config = config.as_str();
    let mut c = Collector::start_with(&data, None, None, Some(config));
    let accept = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let (url, got) = receiver({
        let (accept, refused) = (accept.clone(), refused.clone());
        move |_| {
            let no = !accept.load(Ordering::SeqCst);
            if no {
                refused.fetch_add(1, Ordering::SeqCst);
            }
            no
        }
    });
    c.set_settings(|s| {
        s["mode"] = json!("warn");
        s["webhook_url"] = json!(url);
        s["webhook_secret"] = json!(SECRET);
    });
    let (mut agent, _) = enrolled_agent(&c, t.path());
    wait_for("a refused first attempt in the API", 60, || {
        (attempts(&c)["total"].as_u64()? >= 1).then_some(())
    });
    let (ports, admin) = (c.ports(), c.admin.clone());
    c.kill9();
    agent.stop();
    let before = got.lock().unwrap().len();
    assert!(before >= 1 && refused.load(Ordering::SeqCst) == before);
    accept.store(true, Ordering::SeqCst);

    let c = Collector::start_with(&data, Some(ports), Some(&admin), Some(config));
    wait_for("the delivery after the restart", 60, || {
        (got.lock().unwrap().len() > before).then_some(())
    });
    let g = got.lock().unwrap();
    let id = g[0].header("x-rampart-delivery").to_string();
    assert!(g.iter().all(|r| r.header("x-rampart-delivery") == id));
    assert!(g.iter().all(|r| r.body == g[0].body));
    drop(g);
    let page = wait_for("the delivered attempt in the API", 30, || {
        let p = attempts(&c);
        (p["attempts"][0]["outcome"] == "delivered").then_some(p)
    });
    // The count goes on from the attempts recorded before the crash (one in flight
    // at the kill may have reached the receiver unrecorded: receivers deduplicate on
    // the delivery ID).
    let last = &page["attempts"][0];
    assert_eq!(last["delivery_id"], id.as_str());
    let n = last["attempt"].as_u64().unwrap() as usize;
    assert!(n >= 2 && n <= before + 1, "{page}");
    assert_eq!(page["total"].as_u64().unwrap() as usize, n);
}

#[test]
fn receivers_on_this_host_and_metadata_addresses_are_refused_by_default() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("webhook_max_attempts = 1\n"),
    );
    let (url, got) = receiver(|_| false);
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let mut s = c.admin("GET", "/api/v1/settings", None);
    s["mode"] = json!("warn");
    s["webhook_secret"] = json!(SECRET);
    // Literal addresses are refused when set, with the reason and (for loopback) the
    // way to allow it; the URL's path is not echoed.
    for (bad, kind) in [
        (url.clone(), "a loopback address"),
        (url.replace("127.0.0.1", "[::1]"), "a loopback address"),
        (
            format!("http://169.254.169.254/latest/meta-data/{PATH_TOKEN}"),
            "a link-local address",
        ),
        (format!("http://0.0.0.0:{port}/x"), "an unspecified address"),
    ] {
        let mut put = s.clone();
        put["webhook_url"] = json!(bad);
        let (code, v) = c.api("PUT", "/api/v1/settings", Some(&c.admin), Some(put));
        assert_eq!(code, 422, "{bad}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(kind), "{bad}: {e}");
        assert!(!e.contains("pathToken"), "{e}");
        assert_eq!(
            e.contains("webhook_allow_loopback = true"),
            kind.contains("loopback"),
            "{e}"
        );
    }
    // A name is checked when it is resolved: "localhost" is accepted as a setting,
    // but the delivery is refused after resolution, and the attempt says why.
    let by_name = url.replace("127.0.0.1", "localhost");
    s["webhook_url"] = json!(by_name);
    c.admin("PUT", "/api/v1/settings", Some(s));
    let (_agent, _) = enrolled_agent(&c, t.path());
    let page = wait_for("the refused attempt in the API", 60, || {
        let p = attempts(&c);
        (p["total"] == 1).then_some(p)
    });
    let a = &page["attempts"][0];
    assert_eq!(a["outcome"], "failed", "{page}");
    assert!(a["http_status"].is_null(), "{page}");
    let e = a["error"].as_str().unwrap();
    assert!(
        e.starts_with("refused: localhost points at ") && e.contains("a loopback address"),
        "{e}"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(got.lock().unwrap().len(), 0, "the receiver was contacted");
    assert!(!c.log().contains("pathToken"), "{}", c.log());
}
