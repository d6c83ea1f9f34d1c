//! The store's queries against the brute-force oracle.

use super::*;

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
    // The gate's candidates: what the separate reads find, each with its newest scan
    // (agent IDs, instance IDs, both, neither, and the empty ID).
    let with_latest = |a: AgentRecord| {
        let latest = brute_force::latest_scan(&all, &a.id);
        (a, latest)
    };
    let ids = truth
        .agents
        .keys()
        .cloned()
        .chain((0..32).map(|i| format!("i-{i:02}")))
        .chain(["nobody".to_string(), String::new()]);
    for id in ids {
        let got = s.gate_candidates(&id).unwrap();
        let want = GateCandidates {
            by_id: truth.agents.get(&id).cloned().map(with_latest),
            by_instance: brute_force::agents_by_instance(agents.clone(), &id)
                .into_iter()
                .map(with_latest)
                .collect(),
        };
        assert_eq!(got, want, "gate candidates of {id:?}");
    }
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
