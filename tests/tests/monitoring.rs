//! `/metrics` as an operator's Prometheus sees it: a real agent's enrollment, scan,
//! block and release counted in a real collector's metrics; a real Prometheus
//! (Debian's, from `RAMPART_PROMETHEUS`, which scripts/test.sh fills) scrapes it,
//! loads `packaging/monitoring/rampart-alerts.yml` with every rule healthy and
//! answers every query of `rampart-dashboard.json` with data; `promtool` checks the
//! rules and runs their unit tests; and every metric the rules and the dashboard
//! name is one the collector serves.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rampart_tests::cluster::{free_port, http_raw, wait_for, Agent, Collector};
use rampart_tests::scenarios::fixture_root;
use serde_json::{json, Value};

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/monitoring")
}

fn prometheus_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("RAMPART_PROMETHEUS").unwrap_or_else(|| {
        panic!(
            "RAMPART_PROMETHEUS must name a directory with Debian's prometheus and \
             promtool binaries; scripts/test.sh unpacks them"
        )
    }))
}

/// The samples of an exposition: series (name and labels as written) → value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn scrape(c: &Collector) -> (String, HashMap<String, f64>) {
    let r = http_raw("GET", &c.rest, "/metrics", None);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let s = samples(&text);
    (text, s)
}

fn value(s: &HashMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no series {series} among {:?}", s.keys()))
}

/// A Prometheus server on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    addr: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: &str, rules: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: rampart-collector\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_dir().join("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr }
    }

    /// An instant query's result vector.
    fn query(&self, expr: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent(expr));
        let r = http_raw("GET", &self.addr, &path, None);
        let v: Value =
            serde_json::from_str(&r.text()).unwrap_or_else(|e| panic!("{expr}: {e}: {}", r.text()));
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every `rampart_*` and `process_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if boundary && (rest.starts_with("rampart_") || rest.starts_with("process_")) {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_string());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

/// The queries of the dashboard, with its variables given values.
fn dashboard_queries() -> Vec<String> {
    let d: Value = serde_json::from_slice(
        &std::fs::read(monitoring_dir().join("rampart-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().replace("$instance", ".*"));
        }
    }
    assert!(out.len() >= 15, "{out:?}");
    out
}

#[test]
fn metrics_count_a_real_scan_and_feed_the_shipped_alerts_and_dashboard() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, true);
    let c = Collector::start_with_env(
        &t.path().join("collector"),
        None,
        None,
        None,
        &[("RAMPART_LOG_FORMAT", "json")],
    );
    c.set_settings(|s| s["mode"] = json!("block"));
    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "enroll failed: {out}");
    // A stranger's guess is counted by reason.
    let (ok, _) = Agent::new(&t.path().join("guess")).enroll(
        &c.url(),
        "rpe_nope",
        &c.fingerprint,
        &root,
        &[],
    );
    assert!(!ok);
    a.run(&[]);
    let scan = c.completed_scan(&a.agent_id(), 60);
    let id = scan["id"].as_str().unwrap();
    assert_eq!(
        scan["blocked"], true,
        "the fixture fails critical rules: {scan}"
    );
    c.admin("POST", &format!("/api/v1/scans/{id}/release"), None);
    let results = c.admin("GET", &format!("/api/v1/scans/{id}"), None)["results"]
        .as_array()
        .unwrap()
        .len();

    // JSON log lines: the scan's end in the agent's stream and the release in its
    // REST request, each with the spans that name the agent and the scan.
    let lines: Vec<Value> = c
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let spans_of = |message: &str| -> Vec<Value> {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message && l["spans"].is_array())
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:?}"))["spans"]
            .as_array()
            .unwrap()
            .clone()
    };
    let finished = spans_of("scan finished");
    assert!(
        finished
            .iter()
            .any(|s| s["name"] == "agent_session" && s["agent_id"] == a.agent_id()),
        "{finished:?}"
    );
    assert!(
        finished
            .iter()
            .any(|s| s["name"] == "agent_message" && s["scan_id"] == id),
        "{finished:?}"
    );
    let release = lines
        .iter()
        .find(|l| l["fields"]["action"] == "scan.release")
        .unwrap_or_else(|| panic!("no release line in {lines:?}"));
    assert_eq!(release["span"]["scan_id"], id, "{release}");
    assert_eq!(release["span"]["route"], "/api/v1/scans/{id}/release");

    let (text, s) = scrape(&c);
    assert_eq!(value(&s, "rampart_enrollments_accepted_total"), 1.0);
    assert_eq!(
        value(
            &s,
            "rampart_enrollment_refusals_total{reason=\"unknown_token\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&s, "rampart_scans_created_total{trigger=\"provision\"}"),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "rampart_scans_ended_total{status=\"completed\",trigger=\"provision\"}"
        ),
        1.0
    );
    assert_eq!(value(&s, "rampart_scans{status=\"completed\"}"), 1.0);
    assert_eq!(value(&s, "rampart_handovers_blocked_total"), 1.0);
    assert_eq!(value(&s, "rampart_handovers_released_total"), 1.0);
    assert_eq!(value(&s, "rampart_vms_blocked"), 0.0, "released");
    assert_eq!(value(&s, "rampart_results_total"), results as f64);
    assert_eq!(value(&s, "rampart_agents_connected"), 1.0);
    // Every batch was acknowledged after a timed write and sync.
    let acks = value(&s, "rampart_batch_ack_duration_seconds_count");
    assert!(acks >= 1.0, "{text}");
    assert_eq!(
        value(&s, "rampart_store_write_duration_seconds_count"),
        acks
    );
    assert!(value(&s, "rampart_store_sync_duration_seconds_count") >= acks);
    assert_eq!(
        value(&s, "rampart_batch_ack_duration_seconds_bucket{le=\"+Inf\"}"),
        acks
    );
    // The release went through its route template, not its path.
    assert_eq!(
        value(
            &s,
            "rampart_http_request_duration_seconds_count{route=\"/api/v1/scans/{id}/release\",method=\"POST\",status_class=\"2xx\"}"
        ),
        1.0
    );
    assert!(!text.contains(id), "no scan ID in a label");
    assert!(value(&s, "rampart_store_size_bytes") > 0.0);
    assert!(value(&s, "rampart_data_filesystem_free_bytes") > 0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(value(&s, "rampart_ca_certificate_expiry_seconds") > now + 300.0 * 86400.0);
    assert!(value(&s, "rampart_server_certificate_expiry_seconds") > now);
    assert!(value(&s, "process_resident_memory_bytes") > 1e6);
    assert!(value(&s, "process_open_fds") > 3.0);

    // Every metric the shipped rules and dashboard name is served.
    // Sample names, and family names (a histogram's, as its text names it).
    let served: BTreeSet<String> = s
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .chain(
            text.lines()
                .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_string())),
        )
        .collect();
    let rules_text = std::fs::read_to_string(monitoring_dir().join("rampart-alerts.yml")).unwrap();
    let dash_text =
        std::fs::read_to_string(monitoring_dir().join("rampart-dashboard.json")).unwrap();
    let named: BTreeSet<String> = metric_names(&rules_text)
        .into_iter()
        .chain(metric_names(&dash_text))
        .collect();
    assert!(named.len() >= 15, "{named:?}");
    let missing: Vec<&String> = named.iter().filter(|n| !served.contains(*n)).collect();
    assert!(missing.is_empty(), "named but not served: {missing:?}");

    // promtool: the rules parse, and their unit tests pass.
    let promtool = prometheus_dir().join("promtool");
    for args in [
        vec!["check", "rules", "rampart-alerts.yml"],
        vec!["test", "rules", "rampart-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(monitoring_dir())
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A real Prometheus scrapes the collector and evaluates the rules.
    let p = Prometheus::start(
        t.path(),
        &c.rest,
        &monitoring_dir().join("rampart-alerts.yml"),
    );
    wait_for(
        "Prometheus to have scraped the collector 3 times",
        60,
        || {
            let up = std::panic::catch_unwind(|| {
                p.query("count_over_time(up{job=\"rampart-collector\"}[1m]) >= 3 and up == 1")
            })
            .ok()?;
            (!up.is_empty()).then_some(())
        },
    );
    for q in dashboard_queries() {
        let r = p.query(&q);
        assert!(!r.is_empty(), "the dashboard's query has no data: {q}");
    }
    wait_for("every rule to have been evaluated", 30, || {
        let r = http_raw("GET", &p.addr, "/api/v1/rules", None);
        let v: Value = serde_json::from_str(&r.text()).ok()?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(rules.len(), 9, "{v}");
        for r in &rules {
            assert_ne!(r["health"], "err", "{r}");
        }
        rules.iter().all(|r| r["health"] == "ok").then_some(())
    });
    // Nothing fires on a healthy collector.
    let firing = p.query("ALERTS{alertstate=\"firing\"}");
    assert!(firing.is_empty(), "{firing:?}");
}
