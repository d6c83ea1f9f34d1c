//! Enrollment and the gate: strangers are bounded, the project comes from the token,
//! a failed enrollment keeps the token, revocation ends the stream at once.

use super::*;

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
