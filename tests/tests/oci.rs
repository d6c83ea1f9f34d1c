//! The collector's OCI image, built by `packaging/oci/build.sh` and run by podman with
//! its ports published on loopback: its configuration and OCI labels, the first admin
//! made in a one-off container, a real agent enrolled over mutual TLS and scanned, the
//! non-root user, the health check, `/metrics` closed to the network, and the data
//! volume surviving a stop and a new container.

use std::process::Stdio;

use rampart_tests::cluster::{free_port, wait_for, Agent, Collector};
use rampart_tests::podman::{image_archive, image_name, Podman};
use rampart_tests::{agent_json, debian_root};
use serde_json::{json, Value};

const VOLUME: &str = "rampart-oci-data";
const CONFIG: &str = "/etc/rampart/collector.toml";
/// The image's health check, as an operator gives it to `podman run`: exec form, as
/// the image has no shell.
const HEALTH_CMD: &str =
    r#"["/usr/bin/rampart-collector","healthcheck","--config","/etc/rampart/collector.toml"]"#;

/// Starts a container of the image on the data volume, its two ports published on
/// 127.0.0.1 at `ports` (gRPC, REST), and attaches to its output.
fn start(
    podman: &Podman,
    name: &str,
    ports: (u16, u16),
    log: &std::path::Path,
) -> std::process::Child {
    podman
        .cmd()
        .args(["run", "--name", name])
        .args(["--publish", &format!("127.0.0.1:{}:8443", ports.0)])
        .args(["--publish", &format!("127.0.0.1:{}:8080", ports.1)])
        .args(["--volume", &format!("{VOLUME}:/data")])
        .args(["--health-cmd", HEALTH_CMD, "--health-interval", "disable"])
        .arg(image_name())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        ))
        .spawn()
        .expect("spawn podman run")
}

/// The uid and gid lines of a process's status: (real, effective, saved, fs) each.
fn ids(pid: &str) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

#[test]
fn the_image_enrolls_and_scans_an_agent_and_keeps_its_volume() {
    let t = tempfile::tempdir().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let podman = Podman::new();

    // The archive loads under its own name.
    let archive = image_archive();
    let loaded = podman.ok(&["load", "--input", archive.to_str().unwrap()]);
    assert!(
        loaded.contains(&format!("Loaded image: {}", image_name())),
        "{loaded}"
    );

    // Its configuration: non-root, both ports, the volume, serve by default, and the
    // OCI annotations as labels.
    let inspect: Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", &image_name()])).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    let ports: Vec<&String> = config["ExposedPorts"].as_object().unwrap().keys().collect();
    assert_eq!(ports, ["8080/tcp", "8443/tcp"], "{config}");
    let volumes: Vec<&String> = config["Volumes"].as_object().unwrap().keys().collect();
    assert_eq!(volumes, ["/data"], "{config}");
    assert_eq!(config["Entrypoint"], json!(["/usr/bin/rampart-collector"]));
    assert_eq!(config["Cmd"], json!(["serve", "--config", CONFIG]));
    let labels = &config["Labels"];
    for (k, want) in [
        ("title", "rampart-collector"),
        ("version", version),
        ("licenses", "Apache-2.0"),
        ("source", "https://example.invalid/rampart"),
    ] {
        assert_eq!(
            labels[format!("org.opencontainers.image.{k}")],
            want,
            "{labels}"
        );
    }
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()),
        "{labels}"
    );
    let created = labels["org.opencontainers.image.created"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "{labels}"
    );
    assert!(labels["org.opencontainers.image.description"]
        .as_str()
        .unwrap()
        .contains("CIS"));

    // The first admin, made in a one-off container on the fresh volume: its token
    // goes to this terminal, not to the server's log.
    podman.ok(&["volume", "create", VOLUME]);
    let admin = podman
        .ok(&[
            "run",
            "--rm",
            "--volume",
            &format!("{VOLUME}:/data"),
            &image_name(),
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--data",
            "/data",
            "--config",
            CONFIG,
        ])
        .trim()
        .to_string();
    assert!(admin.starts_with("rpt_"), "{admin}");

    // The server, its ports on loopback.
    let ports = (free_port(), free_port());
    let reach = Some((
        format!("127.0.0.1:{}", ports.0),
        format!("127.0.0.1:{}", ports.1),
    ));
    let run1 = t.path().join("first");
    let child = start(&podman, "rampart-oci-1", ports, &run1.with_extension("log"));
    let mut c = Collector::attach(child, &run1, Some(&admin), reach.clone());
    assert_eq!(c.admin, admin, "the server made a first admin of its own");
    assert!(c.rest_ca.is_some(), "REST must be HTTPS off loopback");
    let users = c.admin("GET", "/api/v1/users", None);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // It runs as the image's user, not as root.
    let pid = podman
        .ok(&["inspect", "--format", "{{.State.Pid}}", "rampart-oci-1"])
        .trim()
        .to_string();
    assert_eq!(
        ids(&pid),
        (
            "65532 65532 65532 65532".into(),
            "65532 65532 65532 65532".into()
        )
    );

    // The health check passes while it serves, and fails against a port where
    // nothing listens.
    let health = podman.run(&["healthcheck", "run", "rampart-oci-1"]);
    assert!(
        health.status.success(),
        "healthcheck: {}{}",
        String::from_utf8_lossy(&health.stdout),
        String::from_utf8_lossy(&health.stderr)
    );
    let wrong = podman.run(&[
        "exec",
        "rampart-oci-1",
        "/usr/bin/rampart-collector",
        "healthcheck",
        "--config",
        CONFIG,
        "--rest-listen",
        "127.0.0.1:1",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("https://127.0.0.1:1/healthz"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );

    // The REST listener is on the network inside the container: /metrics wants a
    // token there (SPEC, Trust).
    assert_eq!(c.api("GET", "/healthz", None, None).0, 200);
    assert_eq!(c.api("GET", "/metrics", None, None).0, 401);

    // A real agent enrolls over mutual TLS and its scan on provision completes with
    // the score the agent computes locally on the same root.
    let root = debian_root();
    let token = c.enrollment_token("oci", 1, 3600);
    let mut agent = Agent::new(&t.path().join("agent"));
    let (ok, out) = agent.enroll(&c.url(), &token, &c.fingerprint, root, &["project=oci"]);
    assert!(ok, "enroll failed: {out}");
    agent.run(&[]);
    let id = agent.agent_id();
    let scan = c.completed_scan(&id, 180);
    assert_eq!(scan["trigger"], "provision");
    assert_eq!(scan["project"], "oci");
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
    for k in ["score", "passed", "failed", "error", "not_applicable"] {
        assert_eq!(scan[k], local["summary"][k], "{k}: {scan}");
    }
    assert!(
        scan["passed"].as_u64().unwrap() > 50 && scan["failed"].as_u64().unwrap() > 0,
        "{scan}"
    );
    let scan_id = scan["id"].as_str().unwrap().to_string();
    let results = c.admin("GET", &format!("/api/v1/scans/{scan_id}"), None)["results"]
        .as_array()
        .unwrap()
        .len();
    assert!(results > 100, "{results} results");

    // Stopped, the collector exits cleanly on SIGTERM.
    agent.stop();
    podman.ok(&["stop", "--time", "30", "rampart-oci-1"]);
    let status = c.wait_exit(60);
    assert!(status.success(), "{status}; log:\n{}", c.log());
    assert!(
        c.log().contains(" INFO ") && !c.log().contains('\u{1b}'),
        "the log, without colour codes:\n{}",
        c.log()
    );
    podman.ok(&["rm", "rampart-oci-1"]);

    // A new container on the same volume: the same CA, admin, scan and results.
    let run2 = t.path().join("second");
    let child = start(&podman, "rampart-oci-2", ports, &run2.with_extension("log"));
    let c2 = Collector::attach(child, &run2, Some(&admin), reach);
    assert_eq!(c2.fingerprint, c.fingerprint, "the CA is the volume's");
    let kept = c2.admin("GET", &format!("/api/v1/scans/{scan_id}"), None);
    assert_eq!(kept["scan"]["status"], "completed");
    assert_eq!(kept["scan"]["score"], scan["score"]);
    assert_eq!(kept["results"].as_array().unwrap().len(), results);
    let users = c2.admin("GET", "/api/v1/users", None);
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");

    // The agent's certificate from before still holds: it reconnects and a scan
    // requested now completes.
    agent.run(&[]);
    wait_for("the agent to reconnect", 60, || {
        c2.agents()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str() && a["connected"] == true)
            .then_some(())
    });
    let requested = c2.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": id })));
    let second = requested[0]["id"].as_str().unwrap().to_string();
    let done = wait_for("the requested scan to complete", 120, || {
        let s = c2.admin("GET", &format!("/api/v1/scans/{second}"), None);
        (s["scan"]["status"] == "completed").then_some(s)
    });
    assert_eq!(done["scan"]["score"], scan["score"]);
    assert_eq!(c2.scans_of(&id).len(), 2);
    agent.stop();
}
