//! Who may read `/metrics`: without a token on a loopback REST listener (the
//! default), only with a token of `metrics_role` (admin by default) on a network
//! listener, and as `metrics_access` says when it is set.

use std::io::BufReader;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rampart_tests::binary;
use rampart_tests::cluster::{http, https, pem_fingerprint, read_startup, Collector};
use serde_json::json;

/// A collector whose REST port listens on every address (over HTTPS, as required
/// there); killed when dropped.
struct OnNetwork {
    child: Child,
    rest: String,
    admin: String,
    ca: std::path::PathBuf,
}

impl Drop for OnNetwork {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_network(dir: &Path) -> OnNetwork {
    let data = dir.join("net");
    let config = dir.join("net.toml");
    std::fs::write(&config, "rest_tls = true\n").unwrap();
    let mut child = Command::new(binary("rampart-collector"))
        .arg("serve")
        .arg("--data")
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .args(["--grpc-listen", "127.0.0.1:0"])
        .args(["--rest-listen", "0.0.0.0:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rampart-collector");
    let started = read_startup(&mut BufReader::new(child.stdout.take().unwrap()))
        .expect("collector exited early");
    let (admin, fp) = (started.admin, Some(started.ready.ca_fingerprint));
    // Bound on every address at a port the collector chose; reached on loopback.
    let port = started.ready.rest.rsplit(':').next().unwrap().to_string();
    let rest = format!("127.0.0.1:{port}");
    let pem = Command::new("curl")
        .args(["-sS", "--fail", "--insecure", "--max-time", "30"])
        .arg(format!("https://{rest}/ca.pem"))
        .output()
        .unwrap();
    let pem = String::from_utf8(pem.stdout).unwrap();
    assert_eq!(Some(pem_fingerprint(&pem)), fp, "/ca.pem");
    let ca = dir.join("net-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    OnNetwork {
        child,
        rest,
        admin: admin.expect("admin token"),
        ca,
    }
}

#[test]
fn metrics_need_a_token_off_loopback() {
    let t = tempfile::tempdir().unwrap();
    let c = on_network(t.path());
    let viewer = https(
        "POST",
        &c.rest,
        "/api/v1/users",
        Some(&c.admin),
        Some(&json!({"name": "prometheus", "role": "viewer"})),
        &c.ca,
    );
    assert_eq!(viewer.0, 201, "{}", viewer.1);
    let viewer = viewer.1["token"].as_str().unwrap().to_string();

    let (code, v) = https("GET", &c.rest, "/metrics", None, None, &c.ca);
    assert_eq!(code, 401, "{v}");
    assert!(v["error"].as_str().unwrap().contains("token"), "{v}");
    let (code, v) = https("GET", &c.rest, "/metrics", Some(&viewer), None, &c.ca);
    assert_eq!(code, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("admin"), "{v}");
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "30", "--cacert"])
        .arg(&c.ca)
        .args(["-H", &format!("Authorization: Bearer {}", c.admin)])
        .arg(format!("https://{}/metrics", c.rest))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rampart_server_certificate_expiry_seconds "),
        "{text}"
    );
    // Health stays open.
    let (code, _) = https("GET", &c.rest, "/healthz", None, None, &c.ca);
    assert_eq!(code, 200);
}

#[test]
fn metrics_are_open_on_loopback_and_as_configured() {
    let t = tempfile::tempdir().unwrap();
    let open = Collector::start(&t.path().join("loopback"), None, None);
    let (code, _) = http("GET", &open.rest, "/metrics", None, None);
    assert_eq!(code, 200);

    let strict = Collector::start_with(
        &t.path().join("strict"),
        None,
        None,
        Some("metrics_access = \"token\"\nmetrics_role = \"viewer\"\n"),
    );
    let viewer = strict.user("prometheus", "viewer");
    let (code, v) = http("GET", &strict.rest, "/metrics", None, None);
    assert_eq!(code, 401, "{v}");
    let (code, _) = http("GET", &strict.rest, "/metrics", Some(&viewer), None);
    assert_eq!(code, 200);
}
