//! `rampart-loadgen` against a real collector: what it says it did is what the
//! collector recorded, and a store it seeded is served.

use std::path::Path;
use std::process::Command;

use rampart_tests::binary;
use rampart_tests::cluster::Collector;
use serde_json::Value;

/// Limits raised as the benchmark raises them (enrollment and message rates).
const CONFIG: &str = "max_messages_per_sec = 100000\n\
                      [limits]\n\
                      enroll_per_source_per_minute = 100000\n\
                      enroll_per_second = 10000\n";

/// Runs the load generator; its one JSON line.
fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(binary("rampart-loadgen"))
        .args(args)
        .env_remove("RAMPART_DEBIAN_ROOT")
        .output()
        .expect("run rampart-loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "rampart-loadgen {args:?}: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line on stdout: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn total(c: &Collector, query: &str) -> u64 {
    c.admin("GET", &format!("/api/v1/scans?per_page=1{query}"), None)["total"]
        .as_u64()
        .unwrap()
}

fn token_file(dir: &Path, token: &str) -> String {
    let p = dir.join("admin.token");
    std::fs::write(&p, token).unwrap();
    p.display().to_string()
}

/// A collector with the raised limits, and the load generator run against it (its
/// gRPC and REST addresses and admin token given) with `args` after those.
fn against_collector(dir: &Path, args: &[&str]) -> (Collector, Value) {
    let c = Collector::start_with(&dir.join("collector"), None, None, Some(CONFIG));
    let tok = token_file(dir, &c.admin);
    let url = c.url();
    let rest = format!("http://{}", c.rest);
    let mut all = vec![
        "--collector",
        &url,
        "--rest",
        &rest,
        "--admin-token-file",
        &tok,
    ];
    all.extend_from_slice(args);
    let v = loadgen(&all);
    (c, v)
}

#[test]
fn ingest_reports_the_scans_the_collector_completed() {
    let t = tempfile::tempdir().unwrap();
    let (c, v) = against_collector(
        t.path(),
        &[
            "--agents",
            "5",
            "--scans-per-agent",
            "2",
            "--results",
            "300",
            "--batch",
            "100",
        ],
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["connected"], 5, "{v}");
    assert_eq!(v["scans_completed"], 10, "{v}");
    assert_eq!(
        v["scans_completed"].as_u64(),
        Some(total(&c, "&status=completed")),
        "{v}"
    );
    assert_eq!(total(&c, ""), 10, "no scan failed, none is left pending");
    // 310 rules of level2-server in batches of 100: 4 batches and the finish, per scan.
    assert_eq!(v["results_per_scan"], 310, "{v}");
    assert_eq!(v["acks"], 50, "{v}");
    assert!(v["ack_p99_ms"].as_f64().unwrap() >= v["ack_p50_ms"].as_f64().unwrap());
    // Its own CPU, for the rate a shared machine allows: TLS and 310 results per
    // scan cost it something.
    assert!(v["loadgen_cpu_ms_per_scan"].as_f64().is_some(), "{v}");
    let scans = c.admin("GET", "/api/v1/scans?per_page=10", None)["scans"]
        .as_array()
        .unwrap()
        .clone();
    let agents: std::collections::BTreeSet<&str> = scans
        .iter()
        .map(|s| s["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(agents.len(), 5, "every simulated agent scanned");
    let one = c.admin(
        "GET",
        &format!("/api/v1/scans/{}", scans[0]["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(one["scan"]["profile"], "level2-server");
    assert_eq!(one["results"].as_array().unwrap().len(), 310);
    let s = &one["scan"];
    let counted = [
        "passed",
        "failed",
        "error",
        "not_applicable",
        "not_checked",
        "exempted",
    ]
    .iter()
    .map(|k| s[k].as_u64().unwrap())
    .sum::<u64>();
    assert_eq!(counted, 310, "{s}");
    assert!(
        s["failed"].as_u64().unwrap() > 0 && s["passed"].as_u64().unwrap() > 0,
        "{s}"
    );
}

#[test]
fn a_rate_spaces_each_agents_scans() {
    // 4 agents offered 4 scans/s in all: each starts one scan a second (its provision
    // scan, queued at enrollment, in its first slot), so an agent's second and third
    // scans are requested a second apart (as fast as acknowledged, all three would be
    // done within a few hundred milliseconds).
    let t = tempfile::tempdir().unwrap();
    let (c, v) = against_collector(
        t.path(),
        &[
            "--agents",
            "4",
            "--scans-per-agent",
            "3",
            "--rate",
            "4",
            "--jitter-ms",
            "0",
        ],
    );
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["scans_completed"], 12, "{v}");
    assert_eq!(v["offered_scans_per_second"], 4.0, "{v}");
    // The first slot falls within the first second; the third two seconds later.
    assert!(v["seconds"].as_f64().unwrap() >= 2.0, "{v}");
    let scans = c.admin("GET", "/api/v1/scans?per_page=20", None)["scans"]
        .as_array()
        .unwrap()
        .clone();
    let mut by_agent: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for s in &scans {
        by_agent
            .entry(s["agent_id"].as_str().unwrap())
            .or_default()
            .push(s["created_at_ms"].as_i64().unwrap());
    }
    assert_eq!(by_agent.len(), 4, "{scans:?}");
    for (agent, mut at) in by_agent {
        at.sort();
        assert_eq!(at.len(), 3, "{agent}: {at:?}");
        // at[0] is the provision scan, made at enrollment. The interval is 1 s; the
        // clock of the request and of the record differ by the request's own time, a
        // few milliseconds.
        let gap = at[2] - at[1];
        assert!(gap >= 950, "{agent}: scans requested {gap} ms apart");
    }
}

#[test]
fn connect_only_holds_idle_streams() {
    let t = tempfile::tempdir().unwrap();
    let (c, v) = against_collector(
        t.path(),
        &["--agents", "4", "--connect-only", "--duration", "1"],
    );
    assert_eq!(v["connected"], 4, "{v}");
    let agents = c.agents();
    assert_eq!(agents.as_array().unwrap().len(), 4, "{agents}");
}

#[test]
fn a_seeded_store_is_served() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let tok = t.path().join("admin.token");
    let v = loadgen(&[
        "seed",
        "--data",
        data.to_str().unwrap(),
        "--agents",
        "20",
        "--scans",
        "300",
        "--results",
        "10",
        "--projects",
        "4",
        "--admin-token-file",
        tok.to_str().unwrap(),
    ]);
    assert_eq!(v["scans"], 300, "{v}");
    let admin = std::fs::read_to_string(&tok).unwrap();
    let c = Collector::start_with(&data, None, Some(&admin), Some(CONFIG));
    assert_eq!(total(&c, ""), 300);
    let by_status: u64 = ["completed", "failed", "cancelled"]
        .iter()
        .map(|s| total(&c, &format!("&status={s}")))
        .sum();
    assert_eq!(by_status, 300);
    assert!(total(&c, "&status=failed") > 0, "the mix has failed scans");
    let by_project: u64 = (0..4)
        .map(|p| total(&c, &format!("&project=proj-{p:03}")))
        .sum();
    assert_eq!(by_project, 300);
    // Agents page by cursor: 20 in pages of 7 are 7, 7, 6, each in ID order, none
    // twice; a bad page size is refused with a reason.
    let mut ids = Vec::new();
    let mut path = "/api/v1/agents?per_page=7".to_string();
    let mut sizes = Vec::new();
    loop {
        let page = c.admin("GET", &path, None);
        let got: Vec<String> = page["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        sizes.push(got.len());
        ids.extend(got);
        match page["next"].as_str() {
            Some(n) => path = format!("/api/v1/agents?per_page=7&after={n}"),
            None => break,
        }
    }
    assert_eq!(sizes, [7, 7, 6]);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "ID order, no repeats");
    assert_eq!(c.agents().as_array().unwrap().len(), 20);
    let (code, body) = c.api("GET", "/api/v1/agents?per_page=lots", Some(&c.admin), None);
    assert_eq!(code, 400, "{body}");
    // The REST mode measures the calls the benchmark measures, without errors.
    let r = loadgen(&[
        "rest",
        "--rest",
        &format!("http://{}", c.rest),
        "--admin-token-file",
        tok.to_str().unwrap(),
        "--requests",
        "6",
        "--concurrency",
        "2",
        "--agents",
        "20",
        "--path",
        "/api/v1/scans?per_page=50",
        "--path",
        "/api/v1/handover/{instance}",
        "--path",
        "/api/v1/overview",
    ]);
    let paths = r["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 3, "{r}");
    for p in paths {
        assert_eq!(
            (p["requests"].as_u64(), p["errors"].as_u64()),
            (Some(6), Some(0)),
            "{p}"
        );
    }
    let newest = &c.admin("GET", "/api/v1/scans?per_page=1", None)["scans"][0];
    assert_eq!(
        newest["status"], "completed",
        "an agent's latest scan is completed"
    );
    let detail = c.admin(
        "GET",
        &format!("/api/v1/scans/{}", newest["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(detail["results"].as_array().unwrap().len(), 10);
}
