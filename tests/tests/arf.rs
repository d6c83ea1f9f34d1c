//! `rampart-agent check --format arf|html` on the real Debian 12 root: the ARF
//! document passes the published ARF 1.1, SCAP 1.3 data-stream and XCCDF 1.2 schemas
//! and OpenSCAP's own tools read it; a broken one is rejected; the HTML is the
//! report the collector serves.

use std::fs;

use rampart_tests::scap::{check_arf, rule_result, xccdf_status};
use rampart_tests::{agent, agent_json, debian_root};

#[test]
fn check_writes_arf_that_scap_tooling_accepts() {
    let root = debian_root().to_str().unwrap();
    let t = tempfile::tempdir().unwrap();
    let arf = t.path().join("check.arf.xml");
    let out = agent(&[
        "check",
        "--root",
        root,
        "--format",
        "arf",
        "--output",
        arf.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "check --format arf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = fs::read_to_string(&arf).unwrap();

    // The same scan as JSON: every profile rule has its status in the ARF, every other
    // rule of the benchmark is there once, not selected.
    let scan = agent_json(&["check", "--root", root, "--format", "json"], 0);
    let results = rampart_tests::statuses(&scan);
    let all = agent_json(
        &["rules", "--benchmark", "debian-12", "--format", "json"],
        0,
    );
    let all = all["rules"].as_array().unwrap();
    assert_eq!(xml.matches("<rule-result ").count(), all.len());
    assert_eq!(xml.matches("<Rule ").count(), all.len());
    for r in all {
        let id = r["id"].as_str().unwrap();
        let want = results
            .get(id)
            .map(|(st, _)| xccdf_status(st))
            .unwrap_or("notselected");
        assert_eq!(rule_result(&xml, id).as_deref(), Some(want), "rule {id}");
    }
    assert!(xml.contains("<profile idref=\"xccdf_org.rampart_profile_level1-server\"/>"));
    let score = scan["summary"]["score"].as_f64().unwrap();
    assert!(
        xml.contains(&format!(">{score:.6}</score>")),
        "score {score}"
    );

    let failed = results
        .iter()
        .find(|(_, (st, _))| st == "fail")
        .map(|(id, _)| id.clone())
        .expect("the Debian root fails some rules");
    let report = check_arf(&arf, t.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.contains(&format!("xccdf_org.rampart_rule_{failed}")),
        "oscap's report shows failed rule {failed}"
    );

    // A status XCCDF does not know must be caught.
    let broken = t.path().join("broken.arf.xml");
    fs::write(
        &broken,
        xml.replacen("<result>fail</result>", "<result>failed</result>", 1),
    )
    .unwrap();
    let err = check_arf(&broken, t.path()).expect_err("a broken status must not validate");
    assert!(err.contains("TestResult"), "{err}");
    // So must a rule ID outside XCCDF's `xccdf_<namespace>_rule_<name>` pattern.
    fs::write(
        &broken,
        xml.replacen("<Rule id=\"xccdf_org.rampart_rule_", "<Rule id=\"rule_", 1),
    )
    .unwrap();
    let err = check_arf(&broken, t.path()).expect_err("a malformed rule ID must not validate");
    assert!(err.contains("xccdf_[^_]+_rule_"), "{err}");
}

#[test]
fn check_writes_the_html_report() {
    let root = debian_root().to_str().unwrap();
    let out = agent(&["check", "--root", root, "--format", "html"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    let scan = agent_json(&["check", "--root", root, "--format", "json"], 0);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("CIS Debian Linux 12 Benchmark"),
        "benchmark named"
    );
    assert!(html.contains(&format!(
        "{:.1}%",
        scan["summary"]["score"].as_f64().unwrap()
    )));
    for (id, (st, _)) in rampart_tests::statuses(&scan) {
        assert!(
            html.contains(&format!("<tr data-status=\"{st}\" data-rule=\"{id}\">")),
            "rule {id} ({st}) missing"
        );
    }
    assert!(!html.contains("Handover"), "no enforcement offline");
}
