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
        identity: Default::default(),
        replaced_certs: Vec::new(),
        ssh: None,
    }
}

/// Runs the suite; `open` must return the same store each time (reopened).
pub fn run<S: Store>(open: &dyn Fn() -> S) {
    {
        let s = open();
        // Leases: one holder at a time, renewable by it, taken over once run out.
        assert!(s.lease("work", "a", 1000, 500).unwrap());
        assert!(!s.lease("work", "b", 1200, 500).unwrap(), "held by a");
        assert!(s.lease("work", "a", 1400, 500).unwrap(), "renewed by a");
        assert!(
            !s.lease("work", "b", 1899, 500).unwrap(),
            "a's runs to 1900"
        );
        assert!(
            s.lease("other", "b", 1899, 500).unwrap(),
            "another lease is apart"
        );
        assert!(
            s.lease("work", "b", 1900, 500).unwrap(),
            "run out: b takes it"
        );
        assert!(!s.lease("work", "a", 2000, 500).unwrap(), "now b holds it");
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
        // A target scanned over SSH is an agent with its SSH part, kept whole.
        let mut target = agent("tg-1");
        target.ssh = Some(super::SshTarget {
            host: "10.0.0.7".into(),
            port: 2222,
            user: Some("scan".into()),
            host_key: None,
            host_key_pinned: false,
        });
        s.put_agent(&target).unwrap();
        let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
        s.update_agent("tg-1", &mut |a| {
            if let Some(t) = a.ssh.as_mut() {
                t.host_key = Some(fp.into());
            }
        })
        .unwrap();
        target.ssh.as_mut().unwrap().host_key = Some(fp.into());
        assert_eq!(s.agent("tg-1").unwrap(), Some(target));
        assert_eq!(s.agent("ag-1").unwrap().unwrap().ssh, None);

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
            password_hash: Some("$argon2id$...".into()),
            password_changed_at_ms: 5,
        };
        s.put_user(&u).unwrap();
        assert_eq!(s.user_by_token_hash("th").unwrap(), Some(u.clone()));
        assert_eq!(s.user_by_token_hash("other").unwrap(), None);
        assert_eq!(s.user("ann").unwrap(), Some(u));
        assert_eq!(s.user("an").unwrap(), None);

        // Console sessions by the hash of their secret; ended one by one or by a test.
        let session = |id: &str, user: &str| SessionRecord {
            id_hash: id.into(),
            user: user.into(),
            csrf: format!("csrf-{id}"),
            created_at_ms: 1,
            last_seen_ms: 2,
        };
        for (id, user) in [("h1", "ann"), ("h2", "ann"), ("h3", "bob")] {
            s.put_session(&session(id, user)).unwrap();
        }
        assert_eq!(s.session("h1").unwrap(), Some(session("h1", "ann")));
        assert_eq!(s.session("h").unwrap(), None);
        assert!(s.delete_session("h1").unwrap());
        assert!(!s.delete_session("h1").unwrap(), "already ended");
        assert_eq!(s.session("h1").unwrap(), None);
        assert_eq!(s.delete_sessions(&mut |x| x.user != "ann").unwrap(), 1);
        assert_eq!(s.session("h2").unwrap(), None);
        assert_eq!(s.session("h3").unwrap(), Some(session("h3", "bob")));
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
    // Every delivery whatever its state, and every meta entry, for a move.
    let all: Vec<String> = s.deliveries().unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(all, ["wh-1", "wh-2", "wh-3"]);
    let meta = s.meta_entries().unwrap();
    assert!(meta.iter().any(|(k, v)| k == "k" && v == b"v"), "{meta:?}");
    assert!(meta.windows(2).all(|w| w[0].0 < w[1].0), "by key");
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

/// Retention drops the results of finished scans older than the cut, keeps every
/// scan's summary and the results of newer or unfinished scans, and leaves the
/// indexes' answers as they were.
pub fn run_retention<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let r = ResultRecord {
        rule_id: "1.1".into(),
        status: "pass".into(),
        evidence: vec![],
    };
    let mut truth = Truth::default();
    for i in 0..40 {
        let status = if i == 5 {
            ScanStatus::Running
        } else {
            STATUSES[2 + i % 3]
        };
        let mut sc = scan(&format!("sc-{i:04}"), "ag-1", Some("web"), status);
        sc.created_at_ms = i as i64 * 100;
        s.put_scan(&sc).unwrap();
        s.put_results(&sc.id, std::slice::from_ref(&r)).unwrap();
        truth.scans.insert(sc.id.clone(), sc);
    }
    s.append_audit(&AuditRecord {
        seq: 0,
        at_ms: 0,
        actor: "a".into(),
        action: "b".into(),
        target: None,
        detail: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    })
    .unwrap();
    let (log, _) = s.audit(0, 10).unwrap();
    truth.audit = log;
    // Scans 0-19 were created before 2000; scan 5 is still running.
    assert_eq!(s.prune_results(2000).unwrap(), 19);
    for i in 0..40 {
        let id = format!("sc-{i:04}");
        let kept = i >= 20 || i == 5;
        assert_eq!(!s.results(&id).unwrap().is_empty(), kept, "{id}");
        assert_eq!(s.scan(&id).unwrap().as_ref(), truth.scans.get(&id), "{id}");
    }
    assert_eq!(s.prune_results(2000).unwrap(), 0, "nothing left to drop");
    // Once the running scan ends, a later run drops its results too.
    let mut sc = truth.scans["sc-0005"].clone();
    sc.status = ScanStatus::Failed;
    s.put_scan(&sc).unwrap();
    truth.scans.insert(sc.id.clone(), sc);
    assert_eq!(s.prune_results(2500).unwrap(), 6);
    assert!(s.results("sc-0005").unwrap().is_empty());
    assert!(!s.results("sc-0025").unwrap().is_empty());
    check(&s, &truth);
}

/// A small deterministic generator, so that failures repeat.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

const STATUSES: [ScanStatus; 5] = [
    ScanStatus::Pending,
    ScanStatus::Running,
    ScanStatus::Completed,
    ScanStatus::Failed,
    ScanStatus::Cancelled,
];

/// What the suite wrote, to compare every answer with.
#[derive(Default)]
pub struct Truth {
    pub scans: std::collections::BTreeMap<String, ScanRecord>,
    pub agents: std::collections::BTreeMap<String, AgentRecord>,
    pub audit: Vec<AuditRecord>,
}

impl Truth {
    fn all_scans(&self) -> Vec<ScanRecord> {
        self.scans.values().cloned().collect()
    }
}

/// Seeds `n` scans over a few dozen agents and projects, then rewrites some of them
/// the way the lifecycle does (and a few ways it does not: a completed scan failed
/// afterwards, a scan moved to another agent), plus agents and audit entries.
pub fn seed<S: Store>(s: &S, n: usize, truth: &mut Truth, seed: u64) {
    let mut r = Lcg(seed);
    let projects = [None, Some("web"), Some("db"), Some("x\0y"), Some("lab")];
    for i in 0..40 {
        let mut a = agent(&format!("ag-{i:02}"));
        a.instance_id = if i % 7 == 6 {
            String::new()
        } else {
            format!("i-{:02}", i % 30)
        };
        a.revoked = i % 11 == 10;
        s.put_agent(&a).unwrap();
        truth.agents.insert(a.id.clone(), a);
    }
    let base = truth.scans.len();
    for i in 0..n {
        let id = format!("sc-{:08}-{:03}", base + i, r.next(1000));
        let agent = format!("ag-{:02}", r.next(40));
        let project = projects[r.next(projects.len() as u64) as usize];
        let mut sc = scan(&id, &agent, project, STATUSES[r.next(5) as usize]);
        // Spread over ten days, for the per-day figures.
        sc.created_at_ms = r.next(10 * 86_400_000) as i64;
        if sc.status == ScanStatus::Completed {
            // Scores as `policy::score` makes them: tenths from 0 to 100.
            sc.score = match r.next(10) {
                0 => None,
                _ => Some(r.next(1001) as f64 / 10.0),
            };
            sc.blocked = r.next(4) == 0;
            if sc.blocked && r.next(2) == 0 {
                sc.released_by = Some("ann".into());
            }
        }
        s.put_scan(&sc).unwrap();
        truth.scans.insert(id, sc);
    }
    // Rewrites of some scans.
    let ids: Vec<String> = truth.scans.keys().cloned().collect();
    for _ in 0..n / 5 {
        let id = &ids[r.next(ids.len() as u64) as usize];
        let mut sc = truth.scans[id].clone();
        match r.next(5) {
            0 => {
                sc.status = ScanStatus::Completed;
                sc.score = Some(r.next(1001) as f64 / 10.0);
                sc.blocked = r.next(2) == 0;
            }
            1 if sc.blocked => sc.released_by = Some("bob".into()),
            2 => {
                sc.status = ScanStatus::Failed;
                sc.blocked = false;
            }
            3 => sc.agent_id = format!("ag-{:02}", r.next(40)),
            _ => sc.status = ScanStatus::Running,
        }
        s.put_scan(&sc).unwrap();
        truth.scans.insert(id.clone(), sc);
    }
    // Agents revoked and their instance IDs.
    for i in [3, 4, 5] {
        let id = format!("ag-{i:02}");
        let a = s
            .update_agent(&id, &mut |a| a.revoked = !a.revoked)
            .unwrap()
            .unwrap();
        truth.agents.insert(id, a);
    }
    for i in 0..(n / 10).max(20) {
        let e = AuditRecord {
            seq: 0,
            at_ms: i as i64,
            actor: format!("u{}", r.next(4)),
            action: ["scan.create", "scan.release", "settings.change"][r.next(3) as usize].into(),
            target: None,
            detail: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let seq = s.append_audit(&e).unwrap();
        truth.audit.push(AuditRecord { seq, ..e });
    }
}

fn summary(l: &ScanList) -> (Vec<&str>, usize, Option<&str>) {
    (
        l.scans.iter().map(|s| s.id.as_str()).collect(),
        l.total,
        l.next.as_deref(),
    )
}

/// Checks every list, filter, page, look-up and figure against the brute-force
/// answer over `truth`.
pub fn check<S: Store>(s: &S, truth: &Truth) {
    let all = truth.all_scans();
    let mut filters = vec![];
    let agents = [None, Some("ag-00"), Some("ag-17"), Some("nobody")];
    let projects = [None, Some("web"), Some("x\0y"), Some("none")];
    let statuses = [
        None,
        Some(ScanStatus::Completed),
        Some(ScanStatus::Failed),
        Some(ScanStatus::Pending),
    ];
    for a in agents {
        for p in projects {
            for st in statuses {
                for blocked in [false, true] {
                    filters.push(ScanFilter {
                        status: st,
                        project: p.map(String::from),
                        agent_id: a.map(String::from),
                        blocked,
                    });
                }
            }
        }
    }
    let mid = all[all.len() / 2].id.clone();
    let mut cursors = vec![
        ScanCursor::default(),
        ScanCursor {
            before: Some(mid.clone()),
            ..Default::default()
        },
        ScanCursor {
            after: Some(mid.clone()),
            ..Default::default()
        },
        ScanCursor {
            before: Some("sc-99999999".into()),
            after: Some("sc-00000100".into()),
            ..Default::default()
        },
    ];
    // The same ranges, oldest first.
    for i in 0..cursors.len() {
        let mut c = cursors[i].clone();
        c.oldest_first = true;
        cursors.push(c);
    }
    for f in &filters {
        for c in &cursors {
            for (offset, limit) in [(0, 50), (7, 13), (0, 0), (0, 100_000)] {
                let got = s.scan_list(f, c, offset, limit).unwrap();
                let want = brute_force::scan_list(&all, f, c, offset, limit);
                assert_eq!(
                    summary(&got),
                    summary(&want),
                    "{f:?} {c:?} offset {offset} limit {limit}"
                );
                assert!(got == want, "the same scans, but records differ: {f:?}");
                if offset == 0 {
                    let (page, next) = s.scan_page(f, c, limit).unwrap();
                    assert_eq!(
                        (page, next),
                        (want.scans, want.next),
                        "scan_page {f:?} {c:?}"
                    );
                }
            }
        }
        // A total from counters, when there is one, is the exact one.
        if let Some(n) = s.scan_total(f).unwrap() {
            let want = brute_force::scan_list(&all, f, &ScanCursor::default(), 0, 0).total;
            assert_eq!(n, want, "scan_total {f:?}");
        }
        let (page, total) = s.scans(f, 3, 20).unwrap();
        let want = brute_force::scan_list(&all, f, &ScanCursor::default(), 3, 20);
        assert_eq!((page, total), (want.scans, want.total), "{f:?}");
    }
    // Following `next` visits every match once, in order, either way.
    for f in filters.iter().step_by(5) {
        for oldest_first in [false, true] {
            let start = ScanCursor {
                oldest_first,
                ..Default::default()
            };
            let mut seen = vec![];
            let mut c = start.clone();
            loop {
                let l = s.scan_list(f, &c, 0, 97).unwrap();
                seen.extend(l.scans.into_iter().map(|x| x.id));
                match l.next {
                    Some(n) => c = c.following(n),
                    None => break,
                }
            }
            let want = brute_force::scan_list(&all, f, &start, 0, usize::MAX);
            assert_eq!(
                seen,
                want.scans.into_iter().map(|x| x.id).collect::<Vec<_>>(),
                "{f:?} oldest first: {oldest_first}"
            );
        }
    }
    // Completed scans by score, either way, page after page from any scan of the list.
    for low_first in [true, false] {
        let want = brute_force::scans_by_score(&all, low_first, None, usize::MAX);
        let mut seen: Vec<ScanRecord> = vec![];
        loop {
            let page = s.scans_by_score(low_first, seen.last(), 23).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 23);
            seen.extend(page);
        }
        assert!(seen == want, "scans by score, low first: {low_first}");
        if let Some(p) = want.get(want.len() / 3) {
            assert!(
                s.scans_by_score(low_first, Some(p), 10).unwrap()
                    == brute_force::scans_by_score(&all, low_first, Some(p), 10),
                "from a scan in the middle, low first: {low_first}"
            );
        }
    }
    for a in truth.agents.keys().map(String::as_str).chain(["nobody"]) {
        assert_eq!(
            s.latest_scan(a).unwrap(),
            brute_force::latest_scan(&all, a),
            "{a}"
        );
    }
    for min in [0.0, 50.0, 50.05, 70.0, 100.0, 101.0] {
        let got = s.fleet(min).unwrap();
        let want = brute_force::fleet(&all, min);
        assert!(
            (got.latest_score_sum - want.latest_score_sum).abs() < 1e-6,
            "{got:?} {want:?}"
        );
        assert_eq!(
            Fleet {
                latest_score_sum: 0.0,
                ..got
            },
            Fleet {
                latest_score_sum: 0.0,
                ..want
            },
            "min score {min}"
        );
    }
    // Per-day figures of completed scans, over windows inside, across and past them.
    for (from, days) in [(0, 10), (0, 1), (3, 4), (9, 30), (10, 5), (0, 0)] {
        let got = s.daily_scores(from, days).unwrap();
        let want = brute_force::daily_scores(&all, from, days);
        assert_eq!(got.len(), want.len(), "{from}+{days}: {got:?} {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!((g.day, g.completed), (w.day, w.completed), "{from}+{days}");
            assert!((g.score_sum - w.score_sum).abs() < 1e-6, "{g:?} {w:?}");
        }
    }
    let agents: Vec<AgentRecord> = truth.agents.values().cloned().collect();
    for i in 0..32 {
        let inst = format!("i-{i:02}");
        let mut got = s.agents_by_instance(&inst).unwrap();
        got.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(
            got,
            brute_force::agents_by_instance(agents.clone(), &inst),
            "{inst}"
        );
    }
    assert!(s.agents_by_instance("").unwrap().is_empty());
    // Agents by ID: those that exist, whatever else is asked (repeats aside).
    let mut ids: Vec<String> = agents.iter().step_by(2).map(|a| a.id.clone()).collect();
    ids.extend(["nobody".to_string(), String::new()]);
    ids.extend(ids.clone());
    let mut got = s.agents_by_id(&ids).unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    got.dedup();
    let want: Vec<AgentRecord> = agents.iter().step_by(2).cloned().collect();
    assert_eq!(got, want);
    assert!(s.agents_by_id(&[]).unwrap().is_empty());
    assert_eq!(s.agents().unwrap(), agents, "index entries are not agents");
    // Agent pages: from the start, from each agent, past the last, and from an ID
    // that is no agent's; every page size from 1 to past the whole list.
    let mut afters: Vec<Option<String>> = vec![None, Some("ag-0".into()), Some("zz".into())];
    afters.extend(agents.iter().map(|a| Some(a.id.clone())));
    for after in &afters {
        for limit in [1, 2, 7, agents.len() + 1] {
            assert_eq!(
                s.agent_page(after.as_deref(), limit).unwrap(),
                brute_force::agent_page(agents.clone(), after.as_deref(), limit),
                "after {after:?}, limit {limit}"
            );
        }
    }
    let afilters = [
        AuditFilter::default(),
        AuditFilter {
            action: Some("scan.release".into()),
            actor: None,
        },
        AuditFilter {
            action: None,
            actor: Some("u1".into()),
        },
        AuditFilter {
            action: Some("settings.change".into()),
            actor: Some("u2".into()),
        },
        AuditFilter {
            action: Some("none".into()),
            actor: None,
        },
    ];
    let (log, _) = s.audit(0, usize::MAX).unwrap();
    let mid = log[log.len() / 2].seq;
    for f in &afilters {
        for before in [None, Some(mid), Some(1), Some(u64::MAX)] {
            let n = log.len();
            for (offset, limit) in [
                (0, 10),
                (3, 7),
                (0, 0),
                (0, 100_000),
                (n / 2, 5),
                (n.saturating_sub(1), 5),
                (n, 5),
                (n + 7, 5),
            ] {
                assert_eq!(
                    s.audit_list(f, before, offset, limit).unwrap(),
                    brute_force::audit_list(&log, f, before, offset, limit),
                    "{f:?} before {before:?} offset {offset} limit {limit}"
                );
            }
        }
    }
    let want_log = brute_force::audit_list(&truth.audit, &AuditFilter::default(), None, 0, 1 << 30);
    let got_log: Vec<(u64, String)> = log.iter().map(|e| (e.seq, e.action.clone())).collect();
    assert!(
        want_log
            .entries
            .iter()
            .all(|e| got_log.contains(&(e.seq, e.action.clone()))),
        "every appended entry is listed"
    );
}

/// The store's queries against a brute-force oracle: a few thousand scans; pages
/// that stay put while newer scans arrive; the same answers after a reopen.
pub fn run_queries<S: Store>(open: &dyn Fn() -> S) {
    let mut truth = Truth::default();
    {
        let s = open();
        seed(&s, 2500, &mut truth, 7);
        check(&s, &truth);

        // Paging by cursor is stable while scans are written: a page taken after
        // newer scans arrived continues exactly where the one before ended.
        let f = ScanFilter {
            status: Some(ScanStatus::Completed),
            ..Default::default()
        };
        let before: Vec<ScanRecord> = truth.all_scans();
        let first = s.scan_list(&f, &ScanCursor::default(), 0, 40).unwrap();
        let want: Vec<String> =
            brute_force::scan_list(&before, &f, &ScanCursor::default(), 0, usize::MAX)
                .scans
                .into_iter()
                .map(|x| x.id)
                .collect();
        let writer_truth = std::sync::Mutex::new(&mut truth);
        let mut seen: Vec<String> = first.scans.iter().map(|x| x.id.clone()).collect();
        std::thread::scope(|t| {
            let s = &s;
            let wt = &writer_truth;
            t.spawn(move || {
                for i in 0..300 {
                    let mut sc = scan(
                        &format!("sc-9{i:07}"),
                        "ag-01",
                        Some("web"),
                        ScanStatus::Completed,
                    );
                    sc.score = Some(90.0);
                    s.put_scan(&sc).unwrap();
                    wt.lock().unwrap().scans.insert(sc.id.clone(), sc);
                }
            });
            let mut c = ScanCursor {
                before: first.next.clone(),
                ..Default::default()
            };
            while c.before.is_some() {
                let l = s.scan_list(&f, &c, 0, 40).unwrap();
                seen.extend(l.scans.into_iter().map(|x| x.id));
                c.before = l.next;
            }
        });
        assert_eq!(seen, want, "no scan skipped or repeated");
        check(&s, &truth);
        s.sync().unwrap();
    }
    // The indexes are as consistent after a reopen.
    let s = open();
    check(&s, &truth);
    seed(&s, 300, &mut truth, 11);
    check(&s, &truth);
    s.sync().unwrap();
}
