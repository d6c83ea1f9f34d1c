//! Per-scan reports and the overview against a real collector and agent: the three
//! report formats as downloads (content type, file name, every rule of the scan, no
//! external assets, agent text escaped; the ARF accepted by the published schemas and
//! by OpenSCAP), the HTML the same as `rampart-agent check --format html` writes and
//! the JSON document agreeing with `check --format json`'s, the
//! overview's figures before and after a release, and the role matrix of the endpoints.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rampart_tests::cluster::{http_raw, Agent, Collector, RawResponse};
use rampart_tests::scap::{check_arf, rule_result, xccdf_status};
use serde_json::{json, Value};

/// Planted in /etc/motd: the motd rule quotes the file's lines as evidence.
const HOSTILE: &str = "<script>alert('rampart')</script><img src=\"https://evil.example/x.png\">";

/// The small Debian 12 tree with critical failures, with a hostile /etc/motd.
fn fixture_root(dir: &Path) {
    rampart_tests::failing_root(dir, &format!("Welcome {HOSTILE} to debian\n"));
}

fn get(c: &Collector, path: &str, token: Option<&str>) -> RawResponse {
    http_raw("GET", &c.rest, path, token)
}

/// `src=` / `href=` attributes (quoted or not) whose value points off the document.
fn external_refs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut found = Vec::new();
    for attr in ["src=", "href="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(attr) {
            let at = from + i + attr.len();
            let v = lower[at..].trim_start_matches(['"', '\'']);
            if v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//") {
                found.push(lower[at..(at + 60).min(lower.len())].to_string());
            }
            from = at;
        }
    }
    if lower.contains("@import") || lower.contains("url(http") || lower.contains("url(//") {
        found.push("css import or url()".into());
    }
    found
}

#[test]
fn reports_overview_and_roles() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root);
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["mode"] = json!("block"));
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "enroll failed: {out}");
    a.run(&[]);
    let agent_id = a.agent_id();
    let scan = c.completed_scan(&agent_id, 60);
    let sid = scan["id"].as_str().unwrap().to_string();
    assert_eq!(scan["blocked"], true, "critical failures block: {scan}");
    let detail = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
    let results: BTreeMap<String, Value> = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert!(results.len() > 50, "a full profile: {}", results.len());
    let agents = c.agents();
    let hostname = agents[0]["hostname"].as_str().unwrap().to_string();
    let safe_host: String = hostname
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect();

    // ---- HTML, as admin.
    let html_path = format!("/api/v1/scans/{sid}/report.html");
    let r = get(&c, &html_path, Some(&c.admin));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"rampart-{safe_host}-{sid}.html\"").as_str())
    );
    let html = r.text();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    assert!(html.contains(&hostname), "host name shown");
    for id in results.keys() {
        assert!(
            html.contains(&format!(">{id}<")),
            "rule {id} missing from HTML"
        );
    }
    assert!(html.contains(&format!("{:.1}%", scan["score"].as_f64().unwrap())));
    let band = if scan["score"].as_f64().unwrap() >= 90.0 {
        "green"
    } else if scan["score"].as_f64().unwrap() >= 70.0 {
        "amber"
    } else {
        "red"
    };
    assert!(html.contains(&format!("band-{band}")), "colour band {band}");
    for reason in scan["block_reasons"].as_array().unwrap() {
        assert!(html.contains(reason.as_str().unwrap()), "reason {reason}");
    }
    assert!(html.contains("@media print"), "print CSS");
    let ext = external_refs(&html);
    assert!(ext.is_empty(), "external references: {ext:?}");
    // The motd evidence quotes the hostile line; the report shows it, escaped.
    assert!(
        results
            .values()
            .any(|r| r["evidence"].to_string().contains("<script>alert")),
        "the fixture's motd must reach the evidence for this test to mean anything"
    );
    assert!(
        !html.contains("<script>alert"),
        "unescaped evidence in HTML"
    );
    assert!(!html.contains("<img"), "unescaped evidence in HTML");
    assert!(html.contains("&lt;script&gt;alert("));
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the report's own filter"
    );

    // ---- JSON, as admin.
    let json_path = format!("/api/v1/scans/{sid}/report.json");
    let r = get(&c, &json_path, Some(&c.admin));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"rampart-{safe_host}-{sid}.json\"").as_str())
    );
    let doc: Value = serde_json::from_slice(&r.body).expect("JSON report parses");
    assert_eq!(doc["schema"], "rampart-scan");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["scan_id"], scan["id"]);
    for k in ["profile", "status", "trigger", "project"] {
        assert_eq!(doc[k], scan[k], "scan field {k}");
    }
    for k in ["score", "passed", "failed", "failed_by_severity"] {
        assert_eq!(doc["summary"][k], scan[k], "scan field {k}");
    }
    assert_eq!(doc["handover"]["blocked"], scan["blocked"]);
    assert_eq!(doc["handover"]["reasons"], scan["block_reasons"]);
    assert_eq!(doc["host"]["hostname"], json!(hostname));
    assert_eq!(doc["host"]["agent_id"], json!(agent_id));
    assert!(
        doc["benchmark"]["title"].is_string(),
        "{}",
        doc["benchmark"]
    );
    let rules = doc["results"].as_array().unwrap();
    assert_eq!(rules.len(), results.len());
    for rule in rules {
        let id = rule["id"].as_str().unwrap();
        let api = &results[id];
        assert_eq!(rule["status"], api["status"], "rule {id}");
        assert_eq!(rule["evidence"], api["evidence"], "rule {id}");
        for k in ["title", "section", "severity", "remediation", "description"] {
            assert!(rule[k].is_string(), "rule {id} lacks {k}: {rule}");
        }
    }

    // ---- One JSON document: `check --format json` on the same root agrees with the
    // collector's report.json on every field both know. (Not `host`: the daemon names
    // the host it runs on, `check --root` the tree's /etc/hostname.)
    let local = rampart_tests::agent_json(
        &[
            "check",
            "--root",
            root.to_str().unwrap(),
            "--format",
            "json",
        ],
        0,
    );
    for k in [
        "schema",
        "version",
        "profile",
        "status",
        "benchmark",
        "summary",
        "results",
    ] {
        assert_eq!(doc[k], local[k], "report.json and check disagree on {k}");
    }

    // ---- ARF, as admin: every rule with its status; schemas and OpenSCAP accept it.
    let arf_path = format!("/api/v1/scans/{sid}/report.arf.xml");
    let r = get(&c, &arf_path, Some(&c.admin));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/xml"));
    assert_eq!(
        r.header("content-disposition"),
        Some(format!("attachment; filename=\"rampart-{safe_host}-{sid}.arf.xml\"").as_str())
    );
    let xml = r.text();
    for (id, api) in &results {
        let want = xccdf_status(api["status"].as_str().unwrap());
        assert_eq!(rule_result(&xml, id).as_deref(), Some(want), "rule {id}");
    }
    assert!(
        xml.contains(&format!("<target>{hostname}</target>")),
        "target"
    );
    assert!(!xml.contains("<script>alert"), "unescaped evidence in ARF");
    let arf_file = t.path().join("collector.arf.xml");
    fs::write(&arf_file, &r.body).unwrap();
    let oscap_html = check_arf(&arf_file, t.path()).unwrap_or_else(|e| panic!("{e}"));
    let failed = results
        .iter()
        .find(|(_, r)| r["status"] == "fail")
        .map(|(id, _)| id.clone())
        .expect("the fixture fails rules");
    assert!(
        oscap_html.contains(&format!("xccdf_org.rampart_rule_{failed}")),
        "oscap's report shows failed rule {failed}"
    );

    // ---- One HTML implementation: `check --format html` on the same root gives the
    // same sections and the same rows (ID, title, status, severity) in the same order.
    let out = rampart_tests::agent(&[
        "check",
        "--root",
        root.to_str().unwrap(),
        "--format",
        "html",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let skeleton = |h: &str| -> Vec<String> {
        h.lines()
            .filter(|l| l.starts_with("<h2>") || l.starts_with("<tr data-status="))
            .map(|l| match l.find("class=\"sev-") {
                Some(i) => l[..i + l[i..].find("</td>").unwrap_or(0)].to_string(),
                None => l.to_string(),
            })
            .collect()
    };
    let (served, local) = (
        skeleton(&html),
        skeleton(&String::from_utf8_lossy(&out.stdout)),
    );
    assert!(
        served.len() > results.len(),
        "sections and rows: {}",
        served.len()
    );
    assert_eq!(served, local, "collector and agent HTML differ");

    // ---- Overview.
    let ov = c.admin("GET", "/api/v1/overview", None);
    assert_eq!(ov["vms_scanned"], 1, "{ov}");
    assert_eq!(ov["vms_blocked"], 1, "{ov}");
    assert_eq!(ov["average_score"], scan["score"], "{ov}");
    let meets = scan["score"].as_f64().unwrap() >= 70.0;
    assert_eq!(ov["pass_rate"], json!(if meets { 100.0 } else { 0.0 }));
    let recent = ov["recent_scans"].as_array().unwrap();
    let mine = recent
        .iter()
        .find(|s| s["id"] == json!(sid))
        .expect("listed");
    assert_eq!(mine["host"], json!(hostname));
    assert_eq!(mine["status"], "completed");
    assert_eq!(mine["score"], scan["score"]);
    assert_eq!(
        mine["critical_failures"],
        scan["failed_by_severity"]["critical"]
    );
    assert!(mine["provider"].is_string());
    assert!(mine["created_at_ms"].as_i64().unwrap() > 0);
    assert_eq!(mine["can_release"], true, "admin may release: {mine}");

    // ---- Roles.
    let viewer = c.user("vera", "viewer");
    let user = c.user("ursula", "user");
    let prov = c.user("pipeline", "provisioner");
    let paths = [
        html_path.as_str(),
        json_path.as_str(),
        arf_path.as_str(),
        "/api/v1/overview",
    ];
    for p in paths {
        assert_eq!(get(&c, p, None).status, 401, "{p} without a token");
        assert_eq!(get(&c, p, Some("rpt_wrong")).status, 401, "{p} bad token");
        assert_eq!(get(&c, p, Some(&viewer)).status, 403, "{p} as viewer");
        assert_eq!(get(&c, p, Some(&user)).status, 403, "{p} as user");
        assert_eq!(get(&c, p, Some(&prov)).status, 200, "{p} as provisioner");
    }
    for p in [
        "/api/v1/scans/nosuchscan/report.html",
        "/api/v1/scans/nosuchscan/report.json",
        "/api/v1/scans/nosuchscan/report.arf.xml",
    ] {
        assert_eq!(get(&c, p, Some(&c.admin)).status, 404, "{p}");
        assert_eq!(get(&c, p, Some(&prov)).status, 404, "{p}");
        assert_eq!(get(&c, p, Some(&viewer)).status, 403, "{p} role first");
    }
    let (_, ov) = c.api("GET", "/api/v1/overview", Some(&prov), None);
    let mine = ov["recent_scans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(sid))
        .unwrap()
        .clone();
    assert_eq!(mine["can_release"], false, "a provisioner may not release");

    // ---- After a release: nothing blocked, and the report says who released.
    c.admin("POST", &format!("/api/v1/scans/{sid}/release"), None);
    let ov = c.admin("GET", "/api/v1/overview", None);
    assert_eq!(ov["vms_blocked"], 0, "{ov}");
    let mine = ov["recent_scans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == json!(sid))
        .unwrap()
        .clone();
    assert_eq!(mine["can_release"], false, "already released");
    let html = get(&c, &html_path, Some(&prov)).text();
    assert!(html.contains("Released by <b>admin</b>"), "release shown");
    let doc: Value = serde_json::from_slice(&get(&c, &json_path, Some(&prov)).body).unwrap();
    assert_eq!(doc["handover"]["released_by"], "admin");
    assert!(doc["handover"]["released_at"].as_str().unwrap() > doc["created_at"].as_str().unwrap());

    let st = a.stop().expect("agent was running");
    assert!(st.success(), "agent exit {st:?}: {}", a.log());
}
