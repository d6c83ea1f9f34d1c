//! A peer that sends junk on its stream gets INVALID_ARGUMENT and is disconnected;
//! another agent connected at the same time does not notice.

use std::fs;
use std::path::Path;

use rampart_agent::daemon::{tls, Identity};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::{agent_message, AgentMessage, Hello, ResultBatch, RuleResult};
use rampart_tests::cluster::{wait_for, Agent, Collector};
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

fn root(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// Opens a stream with an enrolled agent's identity, sends `msgs`, and returns the
/// status that ended the stream.
async fn send_junk(c: &Collector, state: &Path, msgs: Vec<AgentMessage>) -> tonic::Status {
    let id = Identity::load(state).unwrap();
    let cfg = tls::client_config(&c.fingerprint, Some((vec![id.cert_der], id.key_der))).unwrap();
    let ch = tls::channel(&c.url(), cfg).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    let mut client = AgentChannelClient::new(ch);
    let mut inbound = match client.connect(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => return s,
    };
    loop {
        match inbound.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => return tonic::Status::ok("stream closed without a status"),
            Err(s) => return s,
        }
    }
}

fn hello(agent_id: &str) -> AgentMessage {
    AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            agent_id: agent_id.into(),
            hostname: "junk".into(),
            ..Default::default()
        })),
    }
}

#[test]
fn junk_is_refused_and_others_carry_on() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start(&t.path().join("collector"), None, None);
    let tok = c.enrollment_token("web", 2, 3600);
    let mut good = Agent::new(&t.path().join("good"));
    assert!(good.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]).0);
    let bad = Agent::new(&t.path().join("bad"));
    assert!(bad.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]).0);
    good.run(&[]);
    let good_id = good.agent_id();
    wait_for("the good agent to connect", 30, || {
        c.agents()
            .as_array()?
            .iter()
            .any(|a| a["id"] == good_id.as_str() && a["connected"] == true)
            .then_some(())
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    let bad_state = bad.dir.join("state");
    let bad_id = bad.agent_id();
    let cases = vec![
        (
            "no hello first",
            vec![AgentMessage {
                body: Some(agent_message::Body::Results(ResultBatch {
                    scan_id: "x".into(),
                    batch_seq: 1,
                    results: vec![],
                })),
            }],
        ),
        ("empty message", vec![AgentMessage { body: None }]),
        ("someone else's ID", vec![hello("ag-0000000000000000")]),
        (
            "results for a scan that does not exist",
            vec![
                hello(&bad_id),
                AgentMessage {
                    body: Some(agent_message::Body::Results(ResultBatch {
                        scan_id: "sc-forged".into(),
                        batch_seq: 1,
                        results: vec![RuleResult {
                            rule_id: "1.1.1.1".into(),
                            status: 1,
                            evidence: vec![],
                        }],
                    })),
                },
            ],
        ),
        (
            "an oversized hello",
            vec![AgentMessage {
                body: Some(agent_message::Body::Hello(Hello {
                    agent_id: bad_id.clone(),
                    hostname: "h".repeat(5000),
                    ..Default::default()
                })),
            }],
        ),
    ];
    for (what, msgs) in cases {
        let status = rt.block_on(send_junk(&c, &bad_state, msgs));
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{what}: {status:?}"
        );
    }
    // A message above the size limit is refused by the transport.
    let huge = AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            agent_id: bad_id.clone(),
            hostname: "h".repeat(5 * 1024 * 1024),
            ..Default::default()
        })),
    };
    let status = rt.block_on(send_junk(&c, &bad_state, vec![huge]));
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

    // The good agent never noticed: it still answers a manual scan.
    let scans = c.admin(
        "POST",
        "/api/v1/scans",
        Some(json!({ "agent_id": good_id })),
    );
    let sid = scans[0]["id"].as_str().unwrap().to_string();
    wait_for("the manual scan", 30, || {
        (c.admin("GET", &format!("/api/v1/scans/{sid}"), None)["scan"]["status"] == "completed")
            .then_some(())
    });
    assert!(
        !good.log().contains("collector session ended"),
        "{}",
        good.log()
    );
    let metrics = std::process::Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", c.rest)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(text.contains("rampart_streams_rejected_total 6"), "{text}");

    // A rule status outside the enum (or left unspecified) is refused, naming the
    // number: never a panic, never read as some default status.
    for (n, says) in [
        (99, "rule status 99 is not a known value"),
        (-7, "rule status -7 is not a known value"),
        (0, "rule status 0 (unspecified) is not a known value"),
    ] {
        let batch = AgentMessage {
            body: Some(agent_message::Body::Results(ResultBatch {
                scan_id: "sc-forged".into(),
                batch_seq: 1,
                results: vec![RuleResult {
                    rule_id: "1.1.1.1".into(),
                    status: n,
                    evidence: vec![],
                }],
            })),
        };
        let status = rt.block_on(send_junk(&c, &bad_state, vec![hello(&bad_id), batch]));
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{status:?}");
    }
}
