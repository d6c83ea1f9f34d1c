//! The REST port over HTTPS (`rest_tls`): the CA certificate at `/ca.pem` matches the
//! fingerprint agents pin, curl trusts the port with it and only with it, and plain
//! HTTP on a network address is refused at start-up.

use std::process::Command;

use rampart_tests::binary;
use rampart_tests::cluster::{https, pem_fingerprint, Collector};
use serde_json::json;

fn curl(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30"])
        .args(args)
        .output()
        .expect("run curl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn https_with_the_collectors_ca_and_only_with_it() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("rest_tls = true\n"),
    );
    // The bootstrap's first step: fetch /ca.pem without verification, compare its
    // SHA-256 with the pinned fingerprint (what the collector reports).
    let pem = c.fetch_ca_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(pem_fingerprint(&pem), c.fingerprint);
    let ca = t.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    let port = c.ports().1;

    // With --cacert: verified, by IP SAN and by DNS SAN (the default server names).
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{port}/healthz");
        let (code, out, err) = curl(&["--fail", "--cacert", ca.to_str().unwrap(), &url]);
        assert_eq!(code, Some(0), "{url}: {err}");
        assert_eq!(out, "ok\n");
    }
    // The API itself over HTTPS, with a token.
    let (status, v) = https(
        "GET",
        &c.rest,
        "/api/v1/settings",
        Some(&c.admin),
        None,
        &ca,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["mode"], "audit");
    let (status, _) = https("GET", &c.rest, "/api/v1/settings", None, None, &ca);
    assert_eq!(status, 401);
    let (status, v) = https(
        "POST",
        &c.rest,
        "/api/v1/enrollment-tokens",
        Some(&c.admin),
        Some(&json!({"project": "web"})),
        &ca,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ca_fingerprint"], c.fingerprint.as_str());

    // Without the CA: curl's system trust store does not know it (exit 60).
    let url = format!("https://127.0.0.1:{port}/healthz");
    let (code, _, err) = curl(&[&url]);
    assert_eq!(code, Some(60), "{err}");
    // Another CA (another collector's) is refused too.
    let other = Collector::start_with(
        &t.path().join("other"),
        None,
        None,
        Some("rest_tls = true\n"),
    );
    let (code, _, err) = curl(&[
        "--cacert",
        other.rest_ca.as_ref().unwrap().to_str().unwrap(),
        &url,
    ]);
    assert_eq!(code, Some(60), "{err}");
    // A name outside server_names does not match the certificate.
    let url = format!("https://127.0.0.2:{port}/healthz");
    let (code, _, err) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_ne!(code, Some(0), "{err}");
    // Plain HTTP to the TLS port gets nothing usable.
    let url = format!("http://127.0.0.1:{port}/healthz");
    let (code, out, _) = curl(&["--fail", &url]);
    assert_ne!(code, Some(0), "{out}");
    // /ca.pem over plain HTTP on a loopback-only (default) collector works too.
    let plain = Collector::start(&t.path().join("plain"), None, None);
    let (code, out, err) = curl(&["--fail", &format!("http://{}/ca.pem", plain.rest)]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(pem_fingerprint(&out), plain.fingerprint);
}

#[test]
fn plaintext_rest_on_a_network_address_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(binary("rampart-collector"))
            .args(["serve", "--data"])
            .arg(t.path().join("data"))
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    // From the command line and from the config file: refused before anything binds.
    let config = t.path().join("c.toml");
    std::fs::write(&config, "rest_listen = \"0.0.0.0:0\"\n").unwrap();
    for args in [
        vec!["--rest-listen", "0.0.0.0:0"],
        vec!["--config", config.to_str().unwrap()],
    ] {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(
            err.contains("0.0.0.0:0 is not on loopback")
                && err.contains("rest_tls = true")
                && err.contains("rest_plaintext_on_network = true"),
            "{args:?}: {err}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).is_empty());
    }
}
