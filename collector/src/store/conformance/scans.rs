//! Scans (newest first, filtered, paginated) and their results.

use rampart_report::Status;

use super::*;

/// Scans newest first, filtered and paginated with a total; results idempotent on (scan, rule).
pub(super) fn scans_and_results<S: Store>(s: &S) {
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
        status: Status::parse(st).unwrap(),
        evidence: vec![format!("{id} {st}")],
    };
    s.put_results(
        "s000",
        &[r("1.1", "pass"), r("1.2", "fail")],
        crate::clock::system_ms(),
    )
    .unwrap();
    s.put_results(
        "s000",
        &[r("1.2", "fail"), r("1.3", "pass")],
        crate::clock::system_ms(),
    )
    .unwrap();
    s.put_results("s001", &[r("1.1", "fail")], crate::clock::system_ms())
        .unwrap();
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
}
