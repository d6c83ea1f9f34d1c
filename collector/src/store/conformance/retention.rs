//! Retention: old finished scans lose their results, nothing else changes.

use rampart_report::Status;

use super::seed::STATUSES;
use super::*;

/// Retention drops the results of finished scans older than the cut, keeps every
/// scan's summary and the results of newer or unfinished scans, and leaves the
/// indexes' answers as they were.
pub fn run_retention<S: Store>(open: &dyn Fn() -> S) {
    let s = open();
    let r = ResultRecord {
        rule_id: "1.1".into(),
        status: Status::Pass,
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
        s.put_results(&sc.id, std::slice::from_ref(&r), crate::clock::system_ms())
            .unwrap();
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
