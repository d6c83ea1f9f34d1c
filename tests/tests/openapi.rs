//! The REST API against its own OpenAPI 3.1 document: the document and its page are
//! served without a token, and schemathesis (pinned; scripts/test.sh installs it in a
//! cached venv and names it in `RAMPART_SCHEMATHESIS`) drives a real collector that
//! holds an enrolled agent and a completed, blocked scan, as admin: no answer is a
//! 5xx, every status is documented, and every body matches its schema.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_tests::cluster::{http_raw, Agent, Collector};
use serde_json::{json, Value};

/// A small Debian 12 tree with a critical failure (a second UID 0 account), so that
/// the scan blocks in `block` mode and a release has something to release.
fn fixture_root(dir: &Path) {
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
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/bash\n",
    );
    w(
        "etc/shadow",
        "root:!:19500:0:99999:7:::\ntoor:!:19500:0:99999:7:::\n",
    );
    w("etc/group", "root:x:0:\nshadow:x:42:\n");
}

#[test]
fn the_document_and_its_page_need_no_token() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    let r = http_raw("GET", &c.rest, "/api/v1/openapi.json", None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    for path in [
        "/api/v1/users/{name}",
        "/api/v1/enrollment-tokens/{id}",
        "/api/v1/scans/{id}/report.html",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["application/openmetrics-text; version=1.0.0; charset=utf-8"]
    );

    let page = http_raw("GET", &c.rest, "/api/v1/docs", None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = page.text();
    assert!(html.contains("<script id=\"openapi\" type=\"application/json\">"));
    assert!(
        html.contains("\"/api/v1/users/{name}\""),
        "the document is embedded"
    );
    for external in ["http:", "https:", "src=", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page loads nothing: {external}"
        );
    }

    // axum's own rejections answer with the error body, as documented.
    let r = http_raw("GET", &c.rest, "/api/v1/scans/%FF", Some(&c.admin));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.text().contains("UTF-8"), "{}", r.text());
    assert!(doc["paths"]["/api/v1/scans/{id}"]["get"]["responses"]["400"].is_object());
    let big = json!({ "project": "x".repeat(3 << 20) });
    let (code, v) = c.api("POST", "/api/v1/scans", Some(&c.admin), Some(big));
    assert_eq!(code, 413, "{v}");
    assert!(v["error"].is_string(), "{v}");
    assert!(doc["paths"]["/api/v1/scans"]["post"]["responses"]["413"].is_object());
    // Unknown endpoints and methods answer with the error body too.
    let (code, v) = c.api("GET", "/api/v1/nothing", Some(&c.admin), None);
    assert_eq!((code, v["error"].is_string()), (404, true), "{v}");
    let (code, v) = c.api("PATCH", "/api/v1/settings", Some(&c.admin), None);
    assert_eq!((code, v["error"].is_string()), (405, true), "{v}");
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let st = std::env::var_os("RAMPART_SCHEMATHESIS").unwrap_or_else(|| {
        panic!(
            "RAMPART_SCHEMATHESIS must name the schemathesis binary; scripts/test.sh \
             installs the pinned version in a cached venv and sets it"
        )
    });
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root);
    let data = t.path().join("collector");
    fs::create_dir_all(data.join("download")).unwrap();
    fs::write(data.join("download/rampart-agent"), b"\x7fELF not really").unwrap();
    let c = Collector::start(&data, None, None);
    c.set_settings(|s| s["mode"] = json!("block"));

    // An enrolled agent with a completed, blocked scan; a token and users of every role.
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "enroll failed: {out}");
    a.run(&[]);
    let agent_id = a.agent_id();
    let scan = c.completed_scan(&agent_id, 60);
    assert_eq!(scan["blocked"], true, "{scan}");
    let scan_id = scan["id"].as_str().unwrap().to_string();
    // No agent stays connected during the run: a scan completing in warn mode would
    // post an alert to whatever webhook URL the run configured, and a test may only
    // reach loopback.
    a.stop();
    let tokens = c.admin("GET", "/api/v1/enrollment-tokens", None);
    let token_id = tokens[0]["id"].as_str().unwrap().to_string();
    for (name, role) in [("v", "viewer"), ("u", "user"), ("p", "provisioner")] {
        c.user(name, role);
    }

    // Real identifiers as well as generated ones, so that the run reaches past 404s.
    let dir = t.path().join("schemathesis");
    fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    fs::write(
        &config,
        format!(
            r#"
[dictionaries.scan]
values = ["{scan_id}"]
[dictionaries.agent]
values = ["{agent_id}"]
[dictionaries.token]
values = ["{token_id}"]
[dictionaries.user]
values = ["v", "u", "p", "admin"]
[dictionaries.download]
values = ["rampart-agent", "rampart-agent.sha256"]

[[operations]]
include-path-regex = '^/api/v1/scans/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "scan", probability = 0.5 }} }}
[[operations]]
include-path-regex = '^/api/v1/(handover|agents)/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "agent", probability = 0.5 }} }}
[[operations]]
include-path = "/api/v1/enrollment-tokens/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "token", probability = 0.5 }} }}
[[operations]]
include-path = "/api/v1/users/{{name}}"
parameters = {{ "path.name" = {{ dictionary = "user", probability = 0.5 }} }}
[[operations]]
include-path = "/download/{{name}}"
parameters = {{ "path.name" = {{ dictionary = "download", probability = 0.5 }} }}
"#
        ),
    )
    .unwrap();

    let setup = Instant::now();
    let base = format!("http://{}", c.rest);
    let log_path = dir.join("schemathesis.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut child = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--url",
            &base,
        ])
        .args(["--header", &format!("Authorization: Bearer {}", c.admin)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance,ignored_auth",
        ])
        .args([
            "--max-examples",
            "100",
            "--workers",
            "1",
            "--seed",
            "20261127",
        ])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .args(["--no-color", "--max-failures", "20"])
        .current_dir(&dir)
        .env("HOME", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.to_string_lossy()));
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis ran over 300 s:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = fs::read_to_string(&log_path).unwrap_or_default();
    // Shown with --nocapture: what the run covered and warned about.
    eprintln!(
        "schemathesis took {:.0?}:\n{}",
        setup.elapsed(),
        &report[report.find("Examples").unwrap_or(0)..]
    );
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{report}\ncollector log:\n{}",
        c.log()
    );
    assert!(report.contains("passed"), "{report}");

    // The run could not lock the admin out (nobody revokes themselves), and the
    // collector is still whole.
    let (code, v) = c.api("GET", "/api/v1/settings", Some(&c.admin), None);
    assert_eq!(code, 200, "{v}");
    let audit = c.admin(
        "GET",
        "/api/v1/audit?action=user.revoke&per_page=1000",
        None,
    );
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["target"] != "admin"),
        "{audit}"
    );
    assert_eq!(http_raw("GET", &c.rest, "/healthz", None).text(), "ok\n");
}
