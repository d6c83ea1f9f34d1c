//! Slow and greedy clients against a real collector: a REST client that never
//! finishes its headers (or its body) is cut off while others are served; a TLS
//! connection to the agents' port without a client certificate lives only briefly;
//! connections over the caps are closed while a connected agent carries on; more
//! HTTP/2 streams than the limit on one connection are refused, and a call that
//! never sends its request is ended.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_agent::daemon::{tls, Identity};
use rampart_tests::cluster::{http, http_raw, wait_for, Agent, Collector};
use rustls::pki_types::ServerName;
use serde_json::json;

fn root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// Reads until the peer closes the connection; `Some(elapsed)` when it did within
/// `secs`, `None` when it was still open then.
fn closed_within(s: &mut impl Read, started: Instant, secs: u64) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if started.elapsed() >= Duration::from_secs(secs) {
                    return None;
                }
            }
            Err(_) => return Some(started.elapsed()),
        }
        if started.elapsed() >= Duration::from_secs(secs) {
            return None;
        }
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to the agents' port trusting the collector's CA, with an
/// agent's identity or none; `Err` when the collector closed it before the
/// handshake completed.
fn tls_connect(c: &Collector, identity: Option<&Identity>) -> Result<Tls, String> {
    let id = identity.map(|i| (vec![i.cert_der.clone()], i.key_der.clone()));
    let cfg = tls::client_config(&c.fingerprint, id).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let tcp = TcpStream::connect(&c.grpc).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.conn.is_handshaking() {
        match s.conn.complete_io(&mut s.sock) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() > deadline {
                    return Err("handshake did not finish".into());
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(s)
}

fn metric(c: &Collector, line: &str) -> String {
    let r = http_raw("GET", &c.rest, "/metrics", None);
    let text = r.text();
    text.lines()
        .find(|l| l.starts_with(line))
        .unwrap_or_else(|| panic!("no {line} in {text}"))
        .to_string()
}

#[test]
fn a_rest_client_that_never_finishes_its_request_is_cut_off() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some(
            "rest_header_timeout_secs = 2\nrest_request_timeout_secs = 2\n\
             rest_max_connections_per_ip = 6\n",
        ),
    );
    let started = Instant::now();
    // Half a header line, then nothing.
    let mut slow = TcpStream::connect(&c.rest).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x").unwrap();
    // Connected, and nothing sent at all.
    let mut idle = TcpStream::connect(&c.rest).unwrap();
    idle.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A body announced and never sent, by an admin.
    let mut body = TcpStream::connect(&c.rest).unwrap();
    body.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    body.write_all(
        format!(
            "PUT /api/v1/settings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            c.admin
        )
        .as_bytes(),
    )
    .unwrap();
    // Meanwhile another client is served.
    let r = http_raw("GET", &c.rest, "/healthz", None);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    let took = closed_within(&mut slow, started, 15);
    assert!(
        took.is_some(),
        "the half-sent request is still open after 15 s"
    );
    let took = closed_within(&mut idle, started, 15);
    assert!(
        took.is_some(),
        "the idle connection is still open after 15 s"
    );
    let mut raw = Vec::new();
    let _ = body.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 408") && text.contains("\"error\""),
        "a stalled body: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));

    // More connections from one address than the cap: the excess gets 503 with an
    // error body and is closed; once they are gone the port serves again.
    let held: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(&c.rest).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut over = TcpStream::connect(&c.rest).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = over.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 503")
            && text.contains("retry-after")
            && text.contains("\"error\""),
        "over the cap: {text}"
    );
    drop(held);
    // Let the collector see the held connections close first: a probe that arrives
    // while they are still counted is itself refused, and counted.
    std::thread::sleep(Duration::from_secs(1));
    wait_for("the REST port to serve again", 15, || {
        (http("GET", &c.rest, "/healthz", None, None).0 == 200).then_some(())
    });
    assert_eq!(
        metric(
            &c,
            "rampart_limit_refusals_total{kind=\"rest_connections\"}"
        ),
        "rampart_limit_refusals_total{kind=\"rest_connections\"} 1"
    );
}

#[test]
fn a_tls_connection_without_a_client_certificate_lives_briefly() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("grpc_unauthenticated_secs = 2\n"),
    );
    let started = Instant::now();
    let mut s = tls_connect(&c, None).expect("a handshake without a certificate");
    let took = closed_within(&mut s, started, 15);
    assert!(
        took.is_some(),
        "a connection without a client certificate is still open after 15 s"
    );
    // Enrollment (without a certificate) still works within that time.
    let r = t.path().join("root");
    root(&r);
    let tok = c.enrollment_token("web", 1, 3600);
    let a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
}

#[test]
fn connections_over_the_caps_are_closed_and_a_connected_agent_carries_on() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some(
            "grpc_max_connections = 4\ngrpc_max_unauthenticated_per_ip = 2\n\
             grpc_max_connections_per_agent = 2\n",
        ),
    );
    let tok = c.enrollment_token("web", 2, 3600);
    let mut agent = Agent::new(&t.path().join("agent"));
    let (ok, out) = agent.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    let other = Agent::new(&t.path().join("other"));
    let (ok, out) = other.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    agent.run(&[]);
    let agent_id = agent.agent_id();
    let connected = || {
        c.agents()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == agent_id.as_str() && a["connected"] == true)
    };
    wait_for("the agent to connect", 30, || connected().then_some(()));
    let identity = Identity::load(&agent.dir.join("state")).unwrap();
    let other_identity = Identity::load(&other.dir.join("state")).unwrap();
    // Refused: closed before the handshake ends, or right after it.
    let refused = |r: Result<Tls, String>| match r {
        Err(_) => true,
        Ok(mut s) => closed_within(&mut s, Instant::now(), 10).is_some(),
    };

    // Two connections without a certificate from this address: the per-address cap.
    let a1 = tls_connect(&c, None).expect("first unauthenticated connection");
    let a2 = tls_connect(&c, None).expect("second unauthenticated connection");
    assert!(
        refused(tls_connect(&c, None)),
        "a third unauthenticated connection was accepted"
    );
    // The running agent no longer counts against its address but against itself:
    // one more connection with its certificate fits, a third does not.
    drop(a2);
    let b1 = wait_for("a slot for the agent's second connection", 15, || {
        tls_connect(&c, Some(&identity)).ok()
    });
    assert!(
        refused(tls_connect(&c, Some(&identity))),
        "a third connection of one agent was accepted"
    );
    // Another agent's connection fills the total (agent, a1, b1, c1); one more
    // does not fit.
    let c1 = wait_for("a slot for another agent", 15, || {
        tls_connect(&c, Some(&other_identity)).ok()
    });
    assert!(
        refused(tls_connect(&c, Some(&other_identity))),
        "a connection over the total cap was accepted"
    );
    let refusals: u64 = metric(
        &c,
        "rampart_limit_refusals_total{kind=\"grpc_connections\"}",
    )
    .rsplit(' ')
    .next()
    .unwrap()
    .parse()
    .unwrap();
    assert!(refusals >= 3, "{refusals} connections refused");

    // The agent never noticed: it answers a manual scan on its stream.
    assert!(connected());
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
    drop((a1, b1, c1));
}

// ---- HTTP/2 by hand: the client side of the stream limit must not be enforced
// by a client library, so that the server's refusal shows.

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK: a literal header field without indexing, new name, no Huffman.
fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    for s in [name, value] {
        assert!(s.len() < 127);
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
}

fn read_frame(s: &mut Tls) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).ok()?;
    let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).ok()?;
    Some((head[3], head[4], stream, payload))
}

#[test]
fn more_streams_than_the_limit_on_one_connection_are_refused_and_stalled_calls_end() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("grpc_request_timeout_secs = 2\n"),
    );
    let mut s = tls_connect(&c, None).expect("handshake");
    s.sock
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    s.write_all(&frame(4, 0, 0, &[])).unwrap();
    // The server's settings announce the limit.
    let (kind, flags, _, settings) = loop {
        let f = read_frame(&mut s).expect("server settings");
        if f.0 == 4 && f.1 & 1 == 0 {
            break f;
        }
    };
    assert_eq!((kind, flags), (4, 0));
    let max_streams = settings
        .chunks(6)
        .find(|p| u16::from_be_bytes([p[0], p[1]]) == 3)
        .map(|p| u32::from_be_bytes([p[2], p[3], p[4], p[5]]));
    assert_eq!(
        max_streams,
        Some(4),
        "SETTINGS_MAX_CONCURRENT_STREAMS in {settings:?}"
    );
    s.write_all(&frame(4, 1, 0, &[])).unwrap();
    // Five Enroll calls whose bodies never come.
    let mut block = vec![0x83, 0x87]; // :method POST, :scheme https
    literal(&mut block, ":path", "/rampart.v1.Enrollment/Enroll");
    literal(&mut block, ":authority", "127.0.0.1");
    literal(&mut block, "content-type", "application/grpc");
    literal(&mut block, "te", "trailers");
    for id in [1u32, 3, 5, 7, 9] {
        s.write_all(&frame(1, 0x4, id, &block)).unwrap();
    }
    s.flush().unwrap();
    let refused = loop {
        let Some((kind, _, stream, payload)) = read_frame(&mut s) else {
            panic!("connection ended without refusing the fifth stream");
        };
        if kind == 3 {
            break (stream, u32::from_be_bytes(payload[..4].try_into().unwrap()));
        }
        assert_ne!(
            kind, 7,
            "GOAWAY instead of refusing one stream: {payload:?}"
        );
    };
    // Stream 9 is the fifth; 7 is REFUSED_STREAM.
    assert_eq!(refused, (9, 7), "(stream, error code) of the reset");
    // The four admitted Enroll calls never send their requests: each is ended by
    // the collector (DEADLINE_EXCEEDED in a trailers-only answer, END_STREAM).
    let mut open = vec![1u32, 3, 5, 7];
    while !open.is_empty() {
        let Some((kind, flags, stream, _)) = read_frame(&mut s) else {
            panic!("streams {open:?} still open after 20 s of silence");
        };
        if (kind == 1 && flags & 1 == 1) || kind == 3 {
            open.retain(|&id| id != stream);
        }
    }
}

/// The collector's allocator keeps small thread caches (`.cargo/config.toml`): with
/// jemalloc's defaults, the caches of the store's many threads held a tenth of an idle
/// fleet's memory. jemalloc prints the options it was built with when asked to.
#[test]
fn the_collectors_allocator_is_built_with_small_thread_caches() {
    let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run rampart-collector --version");
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for want in [
        "opt.tcache_max: 16384",
        "opt.tcache_nslots_small_max: 16",
        "opt.tcache_nslots_large: 2",
    ] {
        assert!(
            stats.contains(want),
            "jemalloc's statistics do not say `{want}`:\n{}",
            &stats[..stats.len().min(3000)]
        );
    }
}
