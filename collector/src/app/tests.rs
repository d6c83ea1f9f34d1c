//! The domain's unit tests, on a sled store in a temporary directory.

use rampart_report::Status;

use super::*;
use crate::store::sled_store::SledStore;
use crate::store::{AgentRecord, ResultRecord, ScanFilter, ScanRecord, ScanStatus};

fn app(dir: &std::path::Path) -> App {
    app_with(dir, Config::default().results_retention_days)
}

#[test]
fn a_command_that_does_not_fit_is_not_lost() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    agent(&app, "ag-1", None, "");
    let (tx, mut rx) = mpsc::channel(1);
    let end = Arc::new(StreamEnd::default());
    let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
    app.attach("ag-1", tx, end, resync.clone()).unwrap();
    // The one slot is taken by the first scan request: the cancel and the next
    // scan request cannot be queued.
    let first = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    assert!(!resync.load(std::sync::atomic::Ordering::SeqCst));
    app.cancel_scan(&first.id, "test").unwrap();
    let second = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    assert!(
        resync.load(std::sync::atomic::Ordering::SeqCst),
        "the stream is told to re-read pending scans"
    );
    // What it re-reads holds the scan that did not fit.
    let pending = app.pending_commands("ag-1").unwrap();
    assert!(
        pending
            .iter()
            .any(|c| matches!(c, Command::Scan { scan_id, .. } if *scan_id == second.id)),
        "{pending:?}"
    );
    assert!(rx.try_recv().is_ok());
}

#[test]
fn revocation_ends_a_live_stream_and_refuses_a_new_one() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    agent(&app, "ag-1", None, "");
    let (tx, _rx) = mpsc::channel(4);
    let end = Arc::new(StreamEnd::default());
    let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
    app.attach("ag-1", tx.clone(), end.clone(), resync.clone())
        .unwrap();
    app.revoke_agent("ag-1", "admin").unwrap();
    assert_eq!(end.reason().as_deref(), Some("agent ag-1 is revoked"));
    assert!(app.attach("ag-1", tx, end, resync).is_err());
    assert!(app.ensure_live("ag-1").is_err());
    assert!(app.store.agent("ag-1").unwrap().unwrap().revoked);
}

pub(crate) fn agent(app: &App, id: &str, project: Option<&str>, instance: &str) {
    app.store
        .put_agent(&AgentRecord {
            id: id.into(),
            hostname: format!("{id}.example"),
            ip_addresses: vec![],
            provider: "aws".into(),
            instance_id: instance.into(),
            os: String::new(),
            project: project.map(String::from),
            labels: Default::default(),
            enrolled_at_ms: 0,
            last_seen_ms: 0,
            cert_serial: "01".into(),
            cert_not_after_ms: 0,
            revoked: false,
            identity: Default::default(),
            replaced_certs: Vec::new(),
            renewed_at_ms: 0,
            ssh: None,
        })
        .unwrap();
}

#[test]
fn gate_by_instance_id_exempt_projects_and_disabled_scanning() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    agent(&app, "ag-1", Some("web"), "i-0abc");
    agent(&app, "ag-2", Some("lab"), "i-0def");
    let g = app.handover("i-0abc").unwrap();
    assert_eq!(
        (g.allowed, g.state, g.agent_id.as_str()),
        (false, "pending", "ag-1")
    );
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    assert_eq!(
        app.handover("ag-1").unwrap().reasons,
        vec![format!("scan {} is pending", scan.id)]
    );
    assert!(matches!(
        app.handover("i-missing"),
        Err(AppError::NotFound(_))
    ));
    let mut s = app.settings();
    s.exempt_projects.insert("lab".into());
    app.update_settings(s, "admin").unwrap();
    assert!(
        app.create_scan("ag-2", "manual", "test").unwrap().is_none(),
        "exempt projects are never scanned"
    );
    let g = app.handover("i-0def").unwrap();
    assert_eq!((g.allowed, g.state), (true, "exempt"));
    let mut s = app.settings();
    s.scanning_enabled = false;
    app.update_settings(s, "admin").unwrap();
    assert!(app.create_scan("ag-1", "manual", "test").unwrap().is_none());
    assert_eq!(app.handover("ag-1").unwrap().state, "allowed");
    // Every settings change is audited with old and new values.
    let (log, _) = app.store.audit(0, 10).unwrap();
    let change = log.iter().find(|e| e.action == "settings.change").unwrap();
    assert!(change.detail.contains("old ") && change.detail.contains("new "));
}

#[test]
fn retention_deletes_old_results_and_keeps_the_summary() {
    let d = tempfile::tempdir().unwrap();
    let app = app_with(d.path(), 30);
    agent(&app, "ag-1", None, "");
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    let results = full_results(&app, &scan);
    for batch in results.chunks(100) {
        app.record_results("ag-1", &scan.id, "debian-12@test", batch)
            .unwrap();
    }
    let done = app
        .scan_finished("ag-1", &scan.id, results.len() as u32, "debian-12@test")
        .unwrap();
    assert_eq!(
        done.status,
        ScanStatus::Completed,
        "{:?}",
        done.failure_reason
    );
    // Within the retention: nothing goes.
    let now = app.clock.now_ms();
    assert_eq!(app.apply_retention(now + 29 * 86_400_000).unwrap(), 0);
    assert_eq!(app.store.results(&scan.id).unwrap().len(), results.len());
    assert!(!app.results_expired(&done));
    // Past it: the results go, the summary stays, and the deletion is audited.
    assert_eq!(app.apply_retention(now + 31 * 86_400_000).unwrap(), 1);
    assert!(app.store.results(&scan.id).unwrap().is_empty());
    assert_eq!(app.store.scan(&scan.id).unwrap().unwrap(), done);
    let (log, _) = app.store.audit(0, 5).unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "retention.results" && e.detail.starts_with("results of 1 scans")));
    assert_eq!(app.metrics.results_pruned_scans.get(), 1);
    // 0 keeps results for ever.
    let d2 = tempfile::tempdir().unwrap();
    let keep = app_with(d2.path(), 0);
    assert_eq!(keep.apply_retention(now + 10_000 * 86_400_000).unwrap(), 0);
}

#[test]
fn a_scan_whose_batches_keep_coming_is_not_expired() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let timeout = app.config.scan_timeout_secs as i64 * 1000;
    agent(&app, "ag-1", None, "");
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    let started = app.store.scan(&scan.id).unwrap().unwrap().last_progress_ms;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let cat = app.catalog("debian-12@test").unwrap().unwrap();
    let rule = cat.profile_rules(scan.profile)[0].to_string();
    let r = ResultRecord {
        rule_id: rule,
        status: Status::Pass,
        evidence: vec![],
    };
    app.record_results("ag-1", &scan.id, "debian-12@test", &[r])
        .unwrap();
    // The stored record still says the start; the batch a second later counts.
    let stale = started + timeout + 500;
    assert_eq!(app.expire_stalled_at(stale).unwrap(), 0);
    assert_eq!(
        app.store.scan(&scan.id).unwrap().unwrap().status,
        ScanStatus::Running
    );
    // Silence past the timeout from that batch: it fails, with the reason.
    assert_eq!(app.expire_stalled_at(started + timeout + 3000).unwrap(), 1);
    let s = app.store.scan(&scan.id).unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Failed);
    assert!(s.failure_reason.unwrap().contains("no progress"));
}

/// One result per rule of the scan's profile, as an honest agent reports them:
/// automated rules pass, manual ones are not checked.
pub(crate) fn full_results(app: &App, scan: &crate::store::ScanRecord) -> Vec<ResultRecord> {
    let cat = app.catalog("debian-12@test").unwrap().unwrap();
    cat.profile_rules(scan.profile)
        .iter()
        .map(|id| ResultRecord {
            rule_id: id.to_string(),
            status: if cat.rules[*id].automated {
                Status::Pass
            } else {
                Status::NotChecked
            },
            evidence: vec![],
        })
        .collect()
}

#[test]
fn counts_are_the_latest_status_of_each_rule_with_or_without_a_restart() {
    for restart in [false, true] {
        let d = tempfile::tempdir().unwrap();
        let mut app = app(d.path());
        agent(&app, "ag-1", None, "");
        let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
        app.scan_started("ag-1", &scan.id).unwrap();
        let mut all = full_results(&app, &scan);
        let (first, rest) = all.split_at(all.len() / 2);
        // The first rule fails in the first batch, then passes when sent again.
        let mut early = first.to_vec();
        early[0].status = Status::Fail;
        app.record_results("ag-1", &scan.id, "debian-12@test", &early)
            .unwrap();
        if restart {
            drop(app);
            app = self::app(d.path());
        }
        app.record_results("ag-1", &scan.id, "debian-12@test", rest)
            .unwrap();
        app.record_results("ag-1", &scan.id, "debian-12@test", &first[..1])
            .unwrap();
        let done = app
            .scan_finished("ag-1", &scan.id, all.len() as u32, "debian-12@test")
            .unwrap();
        all.retain(|r| r.status == Status::Pass);
        assert_eq!(done.status, ScanStatus::Completed, "restart {restart}");
        assert_eq!(
            (done.passed as usize, done.failed),
            (all.len(), 0),
            "restart {restart}"
        );
    }
}

pub(crate) fn app_with(dir: &std::path::Path, results_retention_days: u32) -> App {
    let config = Config {
        results_retention_days,
        ..Config::default()
    };
    app_on(dir, crate::clock::Clock::system(), config)
}

/// An app on `clock` with `config`, its data under `dir`.
pub(crate) fn app_on(dir: &std::path::Path, clock: crate::clock::Clock, config: Config) -> App {
    let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
    let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
    let config = Config {
        data_dir: dir.to_path_buf(),
        ..config
    };
    App::with_clock(store, ca, config, clock).unwrap()
}

#[test]
fn metrics_count_expiring_certificates_and_each_scan_once_where_it_ends() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let day = 86_400_000;
    // Expiring in 2 days, in 30 days, and in 1 day but revoked.
    for (id, left, revoked) in [("ag-1", 2, false), ("ag-2", 30, false), ("ag-3", 1, true)] {
        agent(&app, id, None, "");
        let mut a = app.store.agent(id).unwrap().unwrap();
        a.cert_not_after_ms = app.clock.now_ms() + left * day;
        a.revoked = revoked;
        app.store.put_agent(&a).unwrap();
    }
    app.refresh_fleet_metrics();
    let sample = |name: &str| -> f64 {
        let text = app.metrics.render(&app.scrape(0));
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(sample("rampart_agent_certificates_expiring"), 1.0);
    assert!(sample("rampart_store_size_bytes") > 0.0);
    assert!(sample("rampart_data_filesystem_size_bytes") > 0.0);
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    assert_eq!(sample("rampart_scans{status=\"running\"}"), 1.0);
    app.cancel_scan(&scan.id, "ann").unwrap();
    // A second cancel is refused and counts nothing.
    assert!(app.cancel_scan(&scan.id, "ann").is_err());
    assert_eq!(
        sample("rampart_scans_created_total{trigger=\"manual\"}"),
        1.0
    );
    assert_eq!(
        sample("rampart_scans_ended_total{status=\"cancelled\",trigger=\"manual\"}"),
        1.0
    );
    assert_eq!(sample("rampart_scans{status=\"cancelled\"}"), 1.0);
    let sync = sample("rampart_store_sync_duration_seconds_count");
    assert!(sync >= 2.0, "{sync}");
}

#[test]
fn a_cancelled_scan_accepts_no_more_results() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    agent(&app, "ag-1", None, "");
    let scan = app.create_scan("ag-1", "manual", "test").unwrap().unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    let c = app.cancel_scan(&scan.id, "ann").unwrap();
    assert_eq!(c.status, ScanStatus::Cancelled);
    let r = ResultRecord {
        rule_id: "1.1.1".into(),
        status: Status::Pass,
        evidence: vec![],
    };
    // A late batch and finish from the agent are acknowledged but change nothing.
    app.record_results("ag-1", &scan.id, "debian-12@test", &[r])
        .unwrap();
    app.scan_started("ag-1", &scan.id).unwrap();
    let s = app.scan_finished("ag-1", &scan.id, 1, "v1").unwrap();
    assert_eq!(s.status, ScanStatus::Cancelled);
    assert!(app.store.results(&scan.id).unwrap().is_empty());
    assert!(matches!(
        app.cancel_scan(&scan.id, "ann"),
        Err(AppError::Invalid(m)) if m.contains("already cancelled")
    ));
    let (log, _) = app.store.audit(0, 10).unwrap();
    assert!(log.iter().any(|e| e.action == "scan.cancel"
        && e.actor == "ann"
        && e.target.as_deref() == Some(scan.id.as_str())));
    // Nor is it sent again to an agent that connects.
    assert!(app.pending_commands("ag-1").unwrap().is_empty());
}

#[test]
fn scheduled_scans_follow_the_crontab_and_the_agent_offset() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    agent(&app, "ag-1", None, "");
    let mut s = app.settings();
    s.schedule_enabled = true;
    s.schedule_cron = "0 3 * * *".into();
    app.update_settings(s, "admin").unwrap();
    let window = chrono::Duration::seconds(app.config.schedule_window_secs);
    let due = crate::schedule::parse("0 3 * * *")
        .unwrap()
        .next_for_agent("ag-1", chrono::Utc::now(), window)
        .unwrap();
    let count = |app: &App| app.store.scans(&ScanFilter::default(), 0, 100).unwrap().1;
    crate::background::scheduled_scans(
        &app,
        due - chrono::Duration::seconds(10),
        due - chrono::Duration::seconds(1),
    )
    .unwrap();
    assert_eq!(count(&app), 0, "not yet due");
    crate::background::scheduled_scans(&app, due - chrono::Duration::seconds(1), due).unwrap();
    assert_eq!(count(&app), 1, "due exactly at the agent's offset");
    let (scans, _) = app.store.scans(&ScanFilter::default(), 0, 1).unwrap();
    assert_eq!(scans[0].trigger, "schedule");
}

#[test]
fn a_projects_scans_share_one_sync_and_an_error_keeps_those_made_before_it() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let syncs = || -> f64 {
        let text = app.metrics.render(&app.scrape(0));
        text.lines()
            .find_map(|l| {
                l.strip_prefix("rampart_store_sync_duration_seconds_count ")?
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let ids: Vec<String> = (1..=4).map(|i| format!("ag-{i}")).collect();
    let mut streams = Vec::new();
    for id in &ids {
        agent(&app, id, Some("web"), "");
        let (tx, rx) = mpsc::channel(4);
        let end = Arc::new(StreamEnd::default());
        let resync = Arc::new(std::sync::atomic::AtomicBool::new(false));
        app.attach(id, tx, end, resync).unwrap();
        streams.push(rx);
    }
    let before = syncs();
    let made = app.create_scans(&ids, "manual", "ann").unwrap();
    assert_eq!(made.len(), 4);
    assert_eq!(syncs() - before, 1.0, "four scans, one sync");
    for rx in &mut streams {
        assert!(
            matches!(rx.try_recv().as_deref(), Ok(Command::Scan { .. })),
            "every agent is asked to scan"
        );
    }
    // Asked again while they are pending: the same scans, nothing written, no sync.
    let before = syncs();
    let again = app.create_scans(&ids, "manual", "ann").unwrap();
    let same = |a: &[ScanRecord]| a.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(same(&again), same(&made));
    assert_eq!(syncs() - before, 0.0);
    // A revoked agent in the middle: the error is returned, and the scans made
    // before it are durable and sent; none is made after it.
    for s in &made {
        app.cancel_scan(&s.id, "ann").unwrap();
    }
    for rx in &mut streams {
        while rx.try_recv().is_ok() {}
    }
    app.revoke_agent("ag-3", "ann").unwrap();
    let before = syncs();
    assert!(app.create_scans(&ids, "manual", "ann").is_err());
    assert_eq!(syncs() - before, 1.0);
    let pending = |id: &str| {
        app.store
            .latest_scan(id)
            .unwrap()
            .is_some_and(|s| s.status == ScanStatus::Pending)
    };
    assert_eq!(
        ids.iter().map(|i| pending(i)).collect::<Vec<_>>(),
        [true, true, false, false]
    );
    assert!(matches!(
        streams[1].try_recv().as_deref(),
        Ok(Command::Scan { .. })
    ));
}

#[test]
fn a_renewal_through_one_collector_bounds_the_next_through_another() {
    // Two collectors on one store, each with its own (empty) local limiter: the
    // stored record decides.
    let d = tempfile::tempdir().unwrap();
    let (store, two) = two_collectors(d.path());
    agent(&two[0], "ag-1", None, "");
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    two[0].renew("ag-1", &csr, "01").unwrap();
    let renewed = store.agent("ag-1").unwrap().unwrap();
    assert!(renewed.renewed_at_ms > 0);
    let e = two[1].renew("ag-1", &csr, "01").unwrap_err();
    assert!(
        matches!(&e, AppError::Limited(m) if m.contains("renewed its certificate less than 600 s ago")),
        "{e}"
    );
    assert_eq!(
        store.agent("ag-1").unwrap().unwrap(),
        renewed,
        "the refused renewal changed nothing"
    );
    // Refused before the CA reads (and would sign) the request: even a CSR that is
    // not one gets the limit's answer, not the CSR's.
    let e = two[1].renew("ag-1", b"not a CSR", "01").unwrap_err();
    assert!(matches!(&e, AppError::Limited(_)), "{e}");
}

/// A renewal's answer can be lost on its way: the agent then holds only the
/// certificate it renewed with, which must stay accepted (or the agent is locked out
/// for good) until the agent is seen with a newer one; then all it replaced are refused.
#[test]
fn a_renewal_whose_answer_is_lost_leaves_the_agent_its_certificate() {
    let d = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.limits.renew_interval_secs = 0;
    let app = app_on(d.path(), crate::clock::Clock::system(), config);
    agent(&app, "ag-1", None, "");
    let far = app.clock.now_ms() + 86_400_000;
    app.store
        .update_agent("ag-1", &mut |a| a.cert_not_after_ms = far)
        .unwrap();
    let csr = || {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .der()
            .to_vec()
    };
    let serial = |der: &[u8]| crate::ca::serial_of(der).unwrap();
    let on_crl = |s: &str| {
        let mut all = app.revoked_serials().unwrap();
        all.extend(app.ca.superseded_serials().unwrap());
        all.iter().any(|x| crate::ca::same_serial(x, s))
    };
    let seen = |s: &str| {
        let a = app.store.agent("ag-1").unwrap().unwrap();
        app.seen_with(&a, s).unwrap();
    };
    // Renewed over a stream that came with "01"; the answer (b) never arrives.
    let (b, _) = app.renew("ag-1", &csr(), "01").unwrap();
    assert!(!on_crl("01"), "the certificate renewed with stays accepted");
    assert!(!on_crl(&serial(&b)));
    // The agent is back with "01" and renews again: the lost one is refused at once.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (c, _) = app.renew("ag-1", &csr(), "01").unwrap();
    assert!(on_crl(&serial(&b)), "the lost certificate is refused");
    assert!(!on_crl("01"));
    // Seen with an older certificate: nothing changes.
    seen("01");
    assert!(!on_crl("01"));
    // Seen with its newest: everything it replaced is refused.
    seen(&serial(&c));
    assert!(on_crl("01") && on_crl(&serial(&b)) && !on_crl(&serial(&c)));
    let rec = app.store.agent("ag-1").unwrap().unwrap();
    assert_eq!(rec.replaced_certs.len(), 2);
    assert!(rec.replaced_certs.iter().all(|c| c.refused));
    // A record written before the field: its replaced certificates were refused.
    let old: crate::store::ReplacedCert =
        serde_json::from_str(r#"{"serial":"0a","not_after_ms":5}"#).unwrap();
    assert!(old.refused);
}

/// Two apps on one store under `dir`, as two collectors sharing a database.
fn two_collectors(dir: &std::path::Path) -> (Arc<dyn crate::store::Store>, [App; 2]) {
    let store: Arc<dyn crate::store::Store> = Arc::new(SledStore::open(&dir.join("db")).unwrap());
    let two = [0, 1].map(|_| {
        let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
        let config = Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        };
        App::with_clock(store.clone(), ca, config, crate::clock::Clock::system()).unwrap()
    });
    (store, two)
}

#[test]
fn a_revoked_token_is_refused_here_at_once_and_by_another_collector_within_the_ttl() {
    let d = tempfile::tempdir().unwrap();
    let (_, two) = two_collectors(d.path());
    let token = two[0]
        .add_user("pipe", crate::auth::Role::Provisioner, "root")
        .unwrap();
    for app in &two {
        assert_eq!(
            app.authenticate(&token).unwrap().map(|(n, _)| n).as_deref(),
            Some("pipe")
        );
    }
    two[0].revoke_user("pipe", "root").unwrap();
    assert!(
        two[0].authenticate(&token).unwrap().is_none(),
        "refused at once where it was revoked"
    );
    let since = std::time::Instant::now();
    while two[1].authenticate(&token).unwrap().is_some() {
        assert!(
            since.elapsed() < super::accounts::TOKEN_TTL + std::time::Duration::from_secs(1),
            "the other collector still takes the revoked token"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
