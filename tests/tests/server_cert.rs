//! The collector's own server certificate is renewed in the background: with a
//! short lifetime, new connections on both ports get a new certificate (trusted
//! through the same CA) and `/metrics` shows its later expiry, while an agent's
//! stream opened before carries on.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::daemon::tls;
use rampart_tests::cluster::{http_raw, wait_for, Agent, Collector};
use rustls::pki_types::ServerName;
use serde_json::json;

fn root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// The certificate (DER) `addr` presents to a new TLS connection that trusts only
/// the collector's CA.
fn leaf(c: &Collector, addr: &str, alpn: &[u8]) -> Vec<u8> {
    let mut cfg = tls::client_config(&c.fingerprint, None).unwrap();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let mut conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {}
            Err(e) => panic!("handshake with {addr}: {e}"),
        }
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}

fn expiry(c: &Collector) -> i64 {
    let text = http_raw("GET", &c.rest, "/metrics", None).text();
    text.lines()
        .find_map(|l| l.strip_prefix("rampart_server_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("no expiry metric in {text}"))
        .parse()
        .unwrap()
}

#[test]
fn the_server_certificate_is_renewed_without_a_restart() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("rest_tls = true\nserver_cert_lifetime_secs = 20\nserver_cert_check_secs = 1\n"),
    );
    let first = leaf(&c, &c.grpc, b"h2");
    assert_eq!(
        leaf(&c, &c.rest, b"http/1.1"),
        first,
        "both ports, one certificate"
    );
    let (code, v) = c.api("GET", "/api/v1/settings", Some(&c.admin), None);
    assert_eq!(code, 200, "{v}");

    let tok = c.enrollment_token("web", 1, 3600);
    let mut agent = Agent::new(&t.path().join("agent"));
    let (ok, out) = agent.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    agent.run(&[]);
    let agent_id = agent.agent_id();
    wait_for("the agent to connect", 30, || {
        c.agents()
            .as_array()?
            .iter()
            .any(|a| a["id"] == agent_id.as_str() && a["connected"] == true)
            .then_some(())
    });

    // Renewed when a third of 20 s is left: within some 14 s of the start.
    let renewed = wait_for("a renewed certificate on the agents' port", 40, || {
        let now = leaf(&c, &c.grpc, b"h2");
        (now != first).then_some(now)
    });
    let rest_now = wait_for("a renewed certificate on the REST port", 20, || {
        let now = leaf(&c, &c.rest, b"http/1.1");
        (now != first).then_some(now)
    });
    assert_ne!(renewed, first);
    assert_ne!(rest_now, first);
    // curl, trusting only the CA, accepts the renewed certificate.
    let (code, v) = c.api("GET", "/api/v1/settings", Some(&c.admin), None);
    assert_eq!(code, 200, "{v}");

    // The agent's stream, opened with the first certificate, carries on.
    let scans = c.admin(
        "POST",
        "/api/v1/scans",
        Some(json!({ "agent_id": agent_id })),
    );
    let sid = scans[0]["id"].as_str().unwrap().to_string();
    wait_for("the manual scan", 60, || {
        (c.admin("GET", &format!("/api/v1/scans/{sid}"), None)["scan"]["status"] == "completed")
            .then_some(())
    });
    assert!(
        !agent.log().contains("collector session ended"),
        "{}",
        agent.log()
    );
}

#[test]
fn the_certificate_expiry_is_a_metric() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("server_cert_lifetime_secs = 30\nserver_cert_check_secs = 1\n"),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let first = expiry(&c);
    assert!((first - now - 30).abs() <= 5, "expiry {first}, now {now}");
    // Renewed with a third (10 s) left: the metric moves on.
    let later = wait_for("a later expiry", 40, || {
        let e = expiry(&c);
        (e > first).then_some(e)
    });
    assert!(later >= first + 15, "{first} -> {later}");
}
