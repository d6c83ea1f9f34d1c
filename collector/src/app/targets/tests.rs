//! Targets: validation, registration with audit, scans over SSH recorded or failed with
//! their reason, claims between collectors.

use super::*;
use crate::ca::Ca;
use crate::config::Config;
use crate::store::sled_store::SledStore;
use rampart_report::Profile;

fn app(dir: &std::path::Path) -> App {
    let store = Arc::new(SledStore::open(&dir.join("db")).unwrap());
    let ca = Ca::open_or_create(&dir.join("ca")).unwrap();
    let config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    App::new(store, ca, config).unwrap()
}

fn spec(host: &str) -> TargetSpec {
    TargetSpec {
        host: host.into(),
        ..Default::default()
    }
}

#[test]
fn targets_are_validated() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    for (s, ok) in [
        (spec("10.0.0.7"), true),
        (spec("web-1.example"), true),
        (spec("fe80::1"), true),
        (spec(""), false),
        (spec("-oProxyCommand=x"), false),
        (spec("a b"), false),
        (spec(&"a".repeat(254)), false),
        (
            TargetSpec {
                port: Some(0),
                ..spec("h")
            },
            false,
        ),
        (
            TargetSpec {
                user: Some("ubuntu".into()),
                ..spec("h")
            },
            true,
        ),
        (
            TargetSpec {
                user: Some("-l".into()),
                ..spec("h")
            },
            false,
        ),
        (
            TargetSpec {
                user: Some("a;b".into()),
                ..spec("h")
            },
            false,
        ),
        (
            TargetSpec {
                host_key: Some(fp.into()),
                ..spec("h")
            },
            true,
        ),
        (
            TargetSpec {
                host_key: Some("SHA256:short".into()),
                ..spec("h")
            },
            false,
        ),
        (
            TargetSpec {
                project: Some("web/prod".into()),
                ..spec("h")
            },
            true,
        ),
        (
            TargetSpec {
                project: Some("a b".into()),
                ..spec("h")
            },
            false,
        ),
        (
            TargetSpec {
                instance_id: Some("i-0abc".into()),
                ..spec("h")
            },
            true,
        ),
    ] {
        assert_eq!(app.register_target(&s, "ann").is_ok(), ok, "{s:?}");
    }
}

#[test]
fn a_target_is_registered_scanned_as_ssh_changed_and_removed_with_audit() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let (t, scan) = app
        .register_target(
            &TargetSpec {
                project: Some("web".into()),
                instance_id: Some("i-0abc".into()),
                ..spec("10.0.0.7")
            },
            "ann",
        )
        .unwrap();
    // Scan-on-provision is on by default; without a runner the scan waits.
    let scan = scan.expect("a provision scan");
    assert_eq!(
        (scan.trigger.as_str(), scan.status),
        ("ssh", ScanStatus::Pending)
    );
    assert_eq!(scan.project.as_deref(), Some("web"));
    let ssh = t.ssh.clone().unwrap();
    assert_eq!((ssh.port, ssh.user, ssh.host_key), (22, None, None));
    // The gate finds it by instance ID, like an agent.
    assert_eq!(app.handover("i-0abc").unwrap().agent_id, t.id);
    // A second request while one is pending is the same scan.
    let again = app.create_scan(&t.id, "manual", "ann").unwrap().unwrap();
    assert_eq!(again.id, scan.id);
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let changed = app
        .update_target(
            &t.id,
            &TargetSpec {
                port: Some(2222),
                user: Some("scan".into()),
                host_key: Some(fp.into()),
                ..spec("10.0.0.8")
            },
            "ann",
        )
        .unwrap();
    let ssh = changed.ssh.unwrap();
    assert_eq!(
        (
            ssh.host.as_str(),
            ssh.port,
            ssh.host_key.as_deref(),
            ssh.host_key_pinned
        ),
        ("10.0.0.8", 2222, Some(fp), true)
    );
    assert_eq!(app.targets().unwrap().len(), 1);
    app.remove_target(&t.id, "ann").unwrap();
    assert!(app.targets().unwrap().is_empty());
    // It had no certificate: the CRL names none for it.
    assert!(app.revoked_serials().unwrap().is_empty());
    assert!(matches!(app.target(&t.id), Err(AppError::NotFound(_))));
    assert!(app.create_scan(&t.id, "manual", "ann").is_err());
    // An agent is no target.
    assert!(matches!(
        app.update_target("ag-none", &spec("h"), "ann"),
        Err(AppError::NotFound(_))
    ));
    let (log, _) = app.store.audit(0, 20).unwrap();
    for action in ["target.register", "target.update", "target.remove"] {
        assert!(
            log.iter().any(|e| e.action == action && e.actor == "ann"),
            "{action}"
        );
    }
}

#[test]
fn what_a_scan_brings_back_is_recorded_or_fails_the_scan_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    let run = |out: std::result::Result<ssh::ScanOutput, ScanError>| {
        let (t, scan) = app.register_target(&spec("h"), "ann").unwrap();
        let scan = scan.unwrap();
        app.scan_started(&t.id, &scan.id).unwrap();
        app.ssh_finish(&t.id, &scan.id, out).unwrap();
        (
            app.target(&t.id).unwrap(),
            app.store.scan(&scan.id).unwrap().unwrap(),
        )
    };
    // Output that is no scan document: failed, but the key seen is recorded.
    let (t, s) = run(Ok(ssh::ScanOutput {
        document: b"sudo: unknown user".to_vec(),
        host_key: fp.into(),
    }));
    assert_eq!(s.status, ScanStatus::Failed);
    let why = s.failure_reason.unwrap();
    assert!(why.contains("not a scan document"), "{why}");
    assert_eq!(t.ssh.unwrap().host_key.as_deref(), Some(fp));
    // A document of another profile.
    let doc = serde_json::json!({
        "benchmark": {"id": "debian-12"}, "profile": "level2-server",
        "host": {"hostname": "h", "os": "Debian"}, "results": []
    });
    let (_, s) = run(Ok(ssh::ScanOutput {
        document: doc.to_string().into_bytes(),
        host_key: fp.into(),
    }));
    assert!(s.failure_reason.unwrap().contains("profile level2-server"));
    // The same in the versioned document `check --format json` prints since.
    let doc = rampart_report::json(&rampart_report::Doc {
        profile: Profile::ALL[1],
        benchmark: rampart_report::Benchmark {
            id: "debian-12".into(),
            ..Default::default()
        },
        ..Default::default()
    });
    let (_, s) = run(Ok(ssh::ScanOutput {
        document: doc.into_bytes(),
        host_key: fp.into(),
    }));
    assert!(s.failure_reason.unwrap().contains("profile level2-server"));
    // A mismatch: failed with the reason, and audited.
    let (t, s) = run(Err(ScanError::HostKeyMismatch {
        expected: fp.into(),
        seen: "SHA256:other".into(),
    }));
    assert!(s.failure_reason.unwrap().starts_with("host key mismatch"));
    assert_eq!(t.ssh.unwrap().host_key, None, "nothing recorded");
    let (log, _) = app.store.audit(0, 50).unwrap();
    for action in ["target.host_key_recorded", "target.host_key_mismatch"] {
        assert!(log.iter().any(|e| e.action == action), "{action}");
    }
}

#[test]
fn schedules_and_manual_requests_scan_targets_over_ssh() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let mut s = app.settings();
    s.scan_on_provision = false;
    s.schedule_enabled = true;
    s.schedule_cron = "0 3 * * *".into();
    app.update_settings(s, "admin").unwrap();
    let (t, none) = app.register_target(&spec("h"), "ann").unwrap();
    assert!(none.is_none(), "scan-on-provision is off");
    let window = chrono::Duration::seconds(app.config.schedule_window_secs);
    let due = crate::schedule::parse("0 3 * * *")
        .unwrap()
        .next_for_agent(&t.id, chrono::Utc::now(), window)
        .unwrap();
    crate::background::scheduled_scans(&app, due - chrono::Duration::seconds(1), due).unwrap();
    let scheduled = app
        .store
        .latest_scan(&t.id)
        .unwrap()
        .expect("a scheduled scan");
    assert_eq!(scheduled.trigger, "ssh");
    let (log, _) = app.store.audit(0, 5).unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "scan.create"
            && e.detail == format!("schedule scan of target {}", t.id)));
    // Once it is over, a manual request makes the next one.
    app.fail_scan(&scheduled.id, "test").unwrap();
    let manual = app.create_scan(&t.id, "manual", "ann").unwrap().unwrap();
    assert_ne!(manual.id, scheduled.id);
    assert_eq!(manual.trigger, "ssh");
}

/// Where collectors share a store, the one that claims a target runs its scan;
/// the others leave it alone until the claim is given up or runs out.
#[test]
fn a_target_claimed_by_another_collector_is_left_to_it() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let (t, scan) = app.register_target(&spec("10.0.0.7"), "ann").unwrap();
    let scan = scan.expect("scan on provision");
    let status = || app.store.scan(&scan.id).unwrap().unwrap();
    assert!(app
        .store
        .lease(
            &claim(&t.id),
            "another-collector",
            app.clock.now_ms(),
            CLAIM_MS
        )
        .unwrap());
    assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
    assert_eq!(status().status, ScanStatus::Pending, "left to the claimant");
    // A pending scan nobody runs is picked up by the lease holder's round only
    // once it is old enough.
    assert_eq!(app.run_pending_ssh_scans(Some(ORPHAN_MS)).unwrap(), 0);
    assert_eq!(app.run_pending_ssh_scans(Some(0)).unwrap(), 1);
    // Given up: this collector claims it and starts it (here it fails at once:
    // no agent binary in the download directory).
    app.store
        .lease(&claim(&t.id), "another-collector", app.clock.now_ms(), 0)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
    let s = status();
    assert_eq!(s.status, ScanStatus::Failed, "{s:?}");
    assert!(
        s.failure_reason
            .as_deref()
            .unwrap_or_default()
            .contains("agent binary"),
        "{s:?}"
    );
    // ... and, since nothing runs, gave the claim up again.
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(app
        .store
        .lease(
            &claim(&t.id),
            "another-collector",
            app.clock.now_ms(),
            CLAIM_MS
        )
        .unwrap());
}

/// Collectors sharing a store share the SSH key the targets trust: the first
/// records it, and one with another key fails its scans saying what to copy.
#[test]
fn a_collector_with_another_ssh_key_fails_its_scans_saying_why() {
    let d = tempfile::tempdir().unwrap();
    let app = app(d.path());
    let first = SshKey::open_or_create(&d.path().join("first")).unwrap();
    let other = SshKey::open_or_create(&d.path().join("other")).unwrap();
    assert_eq!(app.fleet_ssh_key(&first).unwrap(), None, "recorded");
    assert_eq!(app.fleet_ssh_key(&first).unwrap(), None, "the same key");
    let why = app.fleet_ssh_key(&other).unwrap().expect("another key");
    assert!(why.contains(other.fingerprint()), "{why}");
    assert!(
        why.contains("copy the first collector's <data_dir>/ssh"),
        "{why}"
    );
    let _ = app.ssh.refused.set(why.clone());
    let (t, scan) = app.register_target(&spec("10.0.0.7"), "ann").unwrap();
    let scan = scan.expect("scan on provision");
    assert!(app.ssh_prepare(&t.id, &scan.id).unwrap().is_none());
    let s = app.store.scan(&scan.id).unwrap().unwrap();
    assert_eq!(s.status, ScanStatus::Failed);
    assert_eq!(s.failure_reason.as_deref(), Some(why.as_str()));
}
