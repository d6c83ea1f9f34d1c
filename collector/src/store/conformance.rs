//! The behaviour every [`Store`] backend must show. `run` takes a function that
//! opens the *same* store again, to check that synced data survives a reopen.

use super::*;

fn scan(id: &str, agent: &str, project: Option<&str>, status: ScanStatus) -> ScanRecord {
    let mut s = ScanRecord::pending(
        id.into(),
        agent,
        project.map(String::from),
        "manual",
        "level1-server",
        1,
    );
    s.status = status;
    s
}

fn token(hash: &str, expires: i64, max_uses: u32) -> TokenRecord {
    TokenRecord {
        id: format!("t-{hash}"),
        hash: hash.into(),
        project: Some("web".into()),
        created_by: "admin".into(),
        created_at_ms: 0,
        expires_at_ms: expires,
        max_uses,
        uses: 0,
        revoked: false,
    }
}

fn agent(id: &str) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        hostname: "h".into(),
        ip_addresses: vec![],
        provider: String::new(),
        instance_id: String::new(),
        os: String::new(),
        project: None,
        labels: Default::default(),
        enrolled_at_ms: 0,
        last_seen_ms: 0,
        cert_serial: "01".into(),
        cert_not_after_ms: 0,
        revoked: false,
    }
}

/// Runs the suite; `open` must return the same store each time (reopened).
pub fn run<S: Store>(open: &dyn Fn() -> S) {
    {
        let s = open();
        // Tokens: uses are counted atomically, expiry and exhaustion are told apart.
        s.put_token(&token("h1", 1000, 2)).unwrap();
        assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::Accepted(t) if t.uses == 1));
        assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::Accepted(t) if t.uses == 2));
        assert_eq!(s.use_token("h1", 10).unwrap(), TokenUse::UsedUp);
        assert_eq!(s.use_token("nope", 10).unwrap(), TokenUse::Unknown);
        s.put_token(&token("h2", 1000, 5)).unwrap();
        assert_eq!(s.use_token("h2", 1000).unwrap(), TokenUse::Expired);
        let mut revoked = token("h3", 1000, 5);
        revoked.revoked = true;
        s.put_token(&revoked).unwrap();
        assert_eq!(s.use_token("h3", 1).unwrap(), TokenUse::Revoked);
        // Revocation by ID: the record as it was is returned, and the token is refused.
        let before = s.revoke_token("t-h2").unwrap().unwrap();
        assert!(!before.revoked && before.hash == "h2");
        assert_eq!(s.use_token("h2", 1).unwrap(), TokenUse::Revoked);
        assert!(
            s.revoke_token("t-h2").unwrap().unwrap().revoked,
            "idempotent"
        );
        assert_eq!(s.revoke_token("t-none").unwrap(), None);
        assert_eq!(
            s.token("h1").unwrap().unwrap().uses,
            2,
            "a look counts no use"
        );
        assert_eq!(s.token("none").unwrap(), None);

        // Agents: an update is atomic, so a revocation racing other writers holds.
        s.put_agent(&agent("ag-1")).unwrap();
        assert_eq!(s.update_agent("ag-none", &mut |_| {}).unwrap(), None);
        std::thread::scope(|t| {
            for i in 0..4 {
                let s = &s;
                t.spawn(move || {
                    for n in 0..50 {
                        s.update_agent("ag-1", &mut |a| {
                            a.last_seen_ms = i * 1000 + n;
                            if i == 0 && n == 25 {
                                a.revoked = true;
                            }
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert!(
            s.agent("ag-1").unwrap().unwrap().revoked,
            "no writer undid the revocation"
        );

        // Scans: newest first, filtered, paginated with a total.
        for (i, (status, project)) in [
            (ScanStatus::Completed, Some("web")),
            (ScanStatus::Failed, Some("db")),
            (ScanStatus::Completed, Some("db")),
            (ScanStatus::Pending, None),
        ]
        .into_iter()
        .enumerate()
        {
            s.put_scan(&scan(&format!("s{i:03}"), "a1", project, status))
                .unwrap();
        }
        let (all, total) = s.scans(&ScanFilter::default(), 0, 10).unwrap();
        assert_eq!(total, 4);
        assert_eq!(
            all.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
            ["s003", "s002", "s001", "s000"]
        );
        let (page, total) = s.scans(&ScanFilter::default(), 1, 2).unwrap();
        assert_eq!(
            (
                page.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
                total
            ),
            (vec!["s002", "s001"], 4)
        );
        let f = ScanFilter {
            status: Some(ScanStatus::Completed),
            project: Some("db".into()),
            ..Default::default()
        };
        let (only, total) = s.scans(&f, 0, 10).unwrap();
        assert_eq!((only.len(), total, only[0].id.as_str()), (1, 1, "s002"));

        // Results are idempotent on (scan, rule).
        let r = |id: &str, st: &str| ResultRecord {
            rule_id: id.into(),
            status: st.into(),
            evidence: vec![format!("{id} {st}")],
        };
        s.put_results("s000", &[r("1.1", "pass"), r("1.2", "fail")])
            .unwrap();
        s.put_results("s000", &[r("1.2", "fail"), r("1.3", "pass")])
            .unwrap();
        s.put_results("s001", &[r("1.1", "fail")]).unwrap();
        let got = s.results("s000").unwrap();
        assert_eq!(
            got.iter().map(|x| x.rule_id.as_str()).collect::<Vec<_>>(),
            ["1.1", "1.2", "1.3"]
        );
        assert_eq!(s.results("s001").unwrap().len(), 1);
        assert!(
            s.results("s00").unwrap().is_empty(),
            "prefixes of scan IDs do not leak"
        );

        // Users by token hash; the audit log appends in order and lists newest first.
        let u = UserRecord {
            name: "ann".into(),
            role: "admin".into(),
            token_hash: "th".into(),
            created_at_ms: 0,
            revoked: false,
        };
        s.put_user(&u).unwrap();
        assert_eq!(s.user_by_token_hash("th").unwrap(), Some(u));
        assert_eq!(s.user_by_token_hash("other").unwrap(), None);
        let entry = |a: &str| AuditRecord {
            seq: 0,
            at_ms: 1,
            actor: "ann".into(),
            action: a.into(),
            target: None,
            detail: String::new(),
            // Whatever the caller puts here, the store chains the entry itself.
            prev_hash: "forged".into(),
            hash: "forged".into(),
        };
        assert_eq!(s.append_audit(&entry("one")).unwrap(), 1);
        assert_eq!(s.append_audit(&entry("two")).unwrap(), 2);
        let (log, total) = s.audit(0, 10).unwrap();
        assert_eq!(
            (
                log.iter()
                    .map(|e| (e.seq, e.action.as_str()))
                    .collect::<Vec<_>>(),
                total
            ),
            (vec![(2, "two"), (1, "one")], 2)
        );
        // The log is a hash chain: the first entry starts from GENESIS, each next one
        // carries the hash of the one before, and the whole log verifies.
        assert_eq!(log[1].prev_hash, audit_chain::GENESIS);
        assert_eq!(log[1].hash, audit_chain::entry_hash(&log[1]));
        assert_eq!(log[0].prev_hash, log[1].hash);
        assert_eq!(log[0].hash, audit_chain::entry_hash(&log[0]));
        assert_eq!(audit_chain::verify_store(&s).unwrap(), 2);
        // Concurrent appends still form one unbroken chain.
        std::thread::scope(|sc| {
            for t in 0..4 {
                let s = &s;
                sc.spawn(move || {
                    for i in 0..10 {
                        s.append_audit(&entry(&format!("c{t}.{i}"))).unwrap();
                    }
                });
            }
        });
        assert_eq!(audit_chain::verify_store(&s).unwrap(), 42);

        // Webhook deliveries: only pending ones are listed; attempts newest first.
        let delivery = |id: &str, state: DeliveryState| DeliveryRecord {
            id: id.into(),
            scan_id: "s000".into(),
            url: "http://127.0.0.1:9/hook".into(),
            body: "{}".into(),
            created_at_ms: 1,
            attempts: 0,
            state,
            next_attempt_ms: Some(1),
        };
        s.put_delivery(&delivery("wh-1", DeliveryState::Pending))
            .unwrap();
        s.put_delivery(&delivery("wh-2", DeliveryState::Pending))
            .unwrap();
        s.put_delivery(&delivery("wh-2", DeliveryState::Delivered))
            .unwrap();
        s.put_delivery(&delivery("wh-3", DeliveryState::Failed))
            .unwrap();
        let pending = s.pending_deliveries().unwrap();
        assert_eq!(
            pending.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ["wh-1"]
        );
        for (at, n) in [(10, 1), (20, 2), (40, 3)] {
            s.append_attempt(&AttemptRecord {
                delivery_id: "wh-1".into(),
                scan_id: "s000".into(),
                attempt: n,
                at_ms: at,
                http_status: Some(500),
                error: None,
                state: DeliveryState::Pending,
                next_attempt_ms: Some(at * 2),
            })
            .unwrap();
        }
        let (page, total) = s.attempts(1, 5).unwrap();
        assert_eq!(
            (page.iter().map(|a| a.attempt).collect::<Vec<_>>(), total),
            (vec![2, 1], 3)
        );

        s.put_meta("k", b"v").unwrap();
        s.sync().unwrap();
    }
    // Everything synced is there after a reopen.
    let s = open();
    assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.scans(&ScanFilter::default(), 0, 100).unwrap().1, 4);
    assert_eq!(s.results("s000").unwrap().len(), 3);
    assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::UsedUp));
    assert_eq!(s.pending_deliveries().unwrap().len(), 1);
    assert_eq!(s.attempts(0, 10).unwrap().1, 3);
    // After a reopen the chain continues from the last entry.
    assert_eq!(
        s.append_audit(&AuditRecord {
            seq: 0,
            at_ms: 2,
            actor: "x".into(),
            action: "three".into(),
            target: Some("t".into()),
            detail: "d".into(),
            prev_hash: String::new(),
            hash: String::new(),
        })
        .unwrap(),
        43
    );
    let (log, total) = s.audit(0, 2).unwrap();
    assert_eq!(
        (total, log[0].seq, log[0].action.as_str()),
        (43, 43, "three")
    );
    assert_eq!(log[0].prev_hash, log[1].hash);
    assert_eq!(audit_chain::verify_store(&s).unwrap(), 43);
}
