//! Collectors on PostgreSQL: the end-to-end scenarios on one collector, two
//! collectors on one database working as one (behind a balancer, one killed mid-stream,
//! the lease and the schedule taken over, targets scanned over SSH with one key), and
//! the CLI on the configured store.

use rampart_tests::pg::Postgres;

#[test]
fn a_collector_on_postgres_enrolls_scans_gates_and_releases() {
    let pg = Postgres::start();
    pg.create_database("rampart");
    let config = pg.collector_config("rampart");
    rampart_tests::scenarios::enroll_scan_gate_release(Some(&config));
    // It was PostgreSQL that held them.
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM agents"), "1");
    assert!(
        pg.psql("rampart", "SELECT count(*) FROM result_chunks")
            .parse::<u32>()
            .unwrap()
            > 0
    );
    assert_eq!(
        pg.psql(
            "rampart",
            "SELECT count(*) FROM audit WHERE action = convert_to('scan.release', 'UTF8')"
        ),
        "1"
    );
}

#[test]
fn a_collector_on_postgres_killed_mid_stream_loses_and_duplicates_nothing() {
    let pg = Postgres::start();
    pg.create_database("rampart");
    rampart_tests::scenarios::killed_mid_stream(Some(&pg.collector_config("rampart")));
}

#[test]
fn two_collectors_behind_a_balancer_one_killed_mid_stream_lose_and_duplicate_nothing() {
    use rampart_tests::cluster::wait_for;
    use rampart_tests::scenarios::{every_rule_once, fixture_root, slow_stream_started};
    let pg = Postgres::start();
    pg.create_database("rampart");
    let config = pg.collector_config("rampart");
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fixture_root(&root, false);
    let (mut a, b) = rampart_tests::pg::two_collectors(t.path(), &config);
    // The agents' port behind a TCP pass-through balancer that prefers A.
    let lb = rampart_tests::balancer::Balancer::start(&[&a.grpc, &b.grpc]);
    let token = a.enrollment_token("web", 1, 3600);
    let mut agent = rampart_tests::cluster::Agent::new(&t.path().join("agent"));
    let (ok, out) = agent.enroll(&lb.url(), &token, &a.fingerprint, &root, &[]);
    assert!(ok, "enroll through the balancer: {out}");
    let scan_id = slow_stream_started(&mut agent, &a);
    assert_eq!(
        a.agents()[0]["connected"],
        true,
        "the stream went to A first"
    );
    wait_for("B to see the agent connected through A", 10, || {
        (b.agents()[0]["connected"] == true).then_some(())
    });
    // A dies with batches in flight (the agent held still, so that it cannot come
    // back at once): B stops counting A's stream once A's heartbeat is old.
    let pid = agent.child.as_ref().unwrap().id().to_string();
    let signal = |s: &str| {
        let st = std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap();
        assert!(st.success());
    };
    signal("-STOP");
    a.kill9();
    wait_for("B to stop counting the dead collector's stream", 40, || {
        (b.agents()[0]["connected"] == false).then_some(())
    });
    // Let go, the agent's reconnection lands on B, which finishes the scan from what
    // the database holds.
    signal("-CONT");
    every_rule_once(&b, &scan_id, &root, &agent);
    assert_eq!(b.agents()[0]["connected"], true);
    assert_eq!(
        pg.psql(
            "rampart",
            &format!("SELECT status FROM scans WHERE id = convert_to('{scan_id}', 'UTF8')")
        ),
        "2"
    );
}

#[test]
fn the_cli_works_on_the_configured_postgres_store() {
    // `user add`, `token create` and `audit verify` with `--config` change and read
    // the database, not the data directory.
    let pg = Postgres::start();
    pg.create_database("rampart");
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let config = t.path().join("collector.toml");
    std::fs::write(&config, pg.collector_config("rampart")).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
            .args(args)
            .args([
                "--data",
                data.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let token = run(&["user", "add", "ops", "--role", "admin"]);
    assert!(token.starts_with("rpt_"), "{token}");
    run(&["token", "create", "--project", "web"]);
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM users"), "1");
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM tokens"), "1");
    assert!(
        !data.join("db").exists(),
        "no sled database was made in the data directory"
    );
    let verified = run(&["audit", "verify"]);
    assert!(verified.starts_with("OK: audit chain intact"), "{verified}");
    // An edited entry is found by the same command.
    pg.psql(
        "rampart",
        "UPDATE audit SET doc = convert_to(replace(convert_from(doc, 'UTF8'), '\"at_ms\":', '\"at_ms\":1'), 'UTF8') WHERE seq = 1",
    );
    let out = std::process::Command::new(rampart_tests::binary("rampart-collector"))
        .args([
            "audit",
            "verify",
            "--data",
            data.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an edited entry must fail the check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1"), "the broken entry is named: {err}");
}

#[test]
fn two_collectors_on_one_database_work_as_one() {
    use rampart_tests::cluster::{wait_for, Agent};
    use serde_json::json;

    let pg = Postgres::start();
    pg.create_database("rampart");
    let config = pg.collector_config("rampart");
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    rampart_tests::scenarios::fixture_root(&root, false);
    // Every collector is given the same CA (its key signs every enrollment): here a
    // copy of the first one's.
    let (mut a, b) = rampart_tests::pg::two_collectors(t.path(), &config);
    assert_eq!(a.fingerprint, b.fingerprint, "one CA");

    // A token made through A enrolls through B; the agent stays connected to B.
    let token = a.enrollment_token("web", 1, 3600);
    let mut agent = Agent::new(&t.path().join("agent"));
    let (ok, out) = agent.enroll(&b.url(), &token, &b.fingerprint, &root, &[]);
    assert!(ok, "enroll through B: {out}");
    agent.run(&[]);
    let id = agent.agent_id();
    let first = a.completed_scan(&id, 90);
    assert_eq!(first["trigger"], "provision", "seen through A: {first}");
    // A says the agent is connected, though its stream is on B.
    wait_for("A to see the agent connected through B", 10, || {
        (a.agents()[0]["connected"] == true).then_some(())
    });

    // A's console finds the VM that enrolled through B by its host name.
    let host = a.agents()[0]["hostname"].as_str().unwrap().to_string();
    a.console_user("ada", "admin", "ada's long password");
    let mut ui = rampart_tests::console_http::Console::new(&a.rest);
    assert_eq!(ui.sign_in("ada", "ada's long password").status, 303);
    wait_for("A's host search to know B's VM", 20, || {
        ui.get(&format!("/ui/scans?q={host}"))
            .text()
            .contains(&format!("/ui/vms/{id}"))
            .then_some(())
    });

    // Failed sign-ins count on every collector: four wrong passwords through B and one
    // through A spend ada's five, so the right one is refused through either.
    for (c, n) in [(&b, 4), (&a, 1)] {
        for _ in 0..n {
            let mut guesser = rampart_tests::console_http::Console::new(&c.rest);
            assert_eq!(guesser.sign_in("ada", "a wrong guess 123").status, 401);
        }
    }
    for c in [&a, &b] {
        let r = rampart_tests::console_http::Console::new(&c.rest)
            .sign_in("ada", "ada's long password");
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(
            r.text().contains("too many failed sign-ins for this user"),
            "{}",
            r.text()
        );
    }
    // A session begun before goes on.
    assert_eq!(ui.get("/ui/").status, 200);

    // A scan requested through A reaches the agent through B and completes; both
    // collectors show the same scan with the same results.
    let created = a.admin("POST", "/api/v1/scans", Some(json!({ "agent_id": id })));
    let scan_id = created[0]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/scans/{scan_id}");
    let done = wait_for("the scan requested through A to complete", 90, || {
        let s = a.admin("GET", &path, None);
        (s["scan"]["status"] == "completed").then_some(s)
    });
    assert_eq!(
        done,
        b.admin("GET", &path, None),
        "both collectors answer alike"
    );
    assert!(!done["results"].as_array().unwrap().is_empty());

    // Settings saved through A reach B (it serves them and sends them to its agents).
    a.set_settings(|s| s["min_score"] = json!(42));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while b.admin("GET", "/api/v1/settings", None)["min_score"].as_f64() != Some(42.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "B does not serve A's settings after 20 s; B's log:\n{}",
            b.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Revoking through A ends the agent's stream on B at once, and B refuses it after.
    a.admin("POST", &format!("/api/v1/agents/{id}/revoke"), None);
    wait_for("B to end the revoked agent's stream", 20, || {
        (b.agents()[0]["connected"] == false).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        b.agents()[0]["connected"],
        false,
        "the agent did not get back in"
    );
    assert_eq!(a.agents()[0]["connected"], false, "nor does A count it");

    // One of them holds the background lease; killed, the other takes it over.
    let holder = || pg.psql("rampart", "SELECT convert_from(holder, 'UTF8') FROM leases");
    let before = holder();
    assert!(before.starts_with("collector-"), "{before}");
    let mut b = b;
    let (dead, alive) = if a.log().contains(&before) {
        (&mut a, &b)
    } else {
        assert!(
            b.log().contains(&before),
            "the holder {before} is one of the two"
        );
        (&mut b, &a)
    };
    dead.kill9();
    let after = wait_for("the other collector to take the lease", 60, || {
        let h = holder();
        (h != before).then_some(h)
    });
    wait_for("the new holder to say so", 10, || {
        alive.log().contains(&after).then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_scans_are_made_once_per_slot_across_collectors() {
    // Two collectors in this process on one database, on one manual clock that the
    // test moves 5 s (a background pass) at a time: a schedule firing every minute
    // makes exactly one scan per agent and minute, also across the death of the
    // collector that held the lease (the other takes it over once it runs out and
    // resumes where the schedule was left).
    use rampart_collector::app::App;
    use rampart_collector::background;
    use rampart_collector::clock::Clock;
    use rampart_collector::store::{ScanFilter, ScanStatus};
    use std::sync::Arc;
    use std::time::Duration;

    let pg = Postgres::start();
    pg.create_database("rampart");
    let text = format!(
        "{}schedule_window_secs = 1\n",
        pg.collector_config("rampart")
    );
    // 2026-12-07 10:00:30 UTC.
    let t0: i64 = 1_796_637_630_000;
    let minute = |m: i64| t0 - 30_000 + m * 60_000;
    let clock = Clock::manual(t0);
    let (_t, a, b) = two_apps(&text, &clock, |a| {
        for id in ["ag-1", "ag-2"] {
            a.store.put_agent(&agent_record(id, t0)).unwrap();
        }
        let mut s = a.settings();
        s.schedule_enabled = true;
        s.schedule_cron = "* * * * *".into();
        a.update_settings(s, "admin").unwrap();
    });

    let start = |app: &Arc<App>| {
        let (stop, rx) = tokio::sync::broadcast::channel::<()>(1);
        (stop, tokio::spawn(background::run(app.clone(), rx)))
    };
    let (loop_a, loop_b) = (start(&a), start(&b));
    assert!(clock.settle(2).await, "both loops made their first pass");
    assert!(a.is_leader() != b.is_leader(), "one holds the lease");
    let (doomed, survivor, doomed_loop, survivor_loop) = if a.is_leader() {
        (a, b, loop_a, loop_b)
    } else {
        (b, a, loop_b, loop_a)
    };
    let mut doomed_loop = Some(doomed_loop);
    let mut loops = 2;
    let scheduled = || -> Vec<(String, i64)> {
        let (scans, _) = survivor
            .store
            .scans(&ScanFilter::default(), 0, usize::MAX)
            .unwrap();
        let mut v: Vec<_> = scans
            .into_iter()
            .filter(|s| s.trigger == "schedule")
            .map(|s| (s.agent_id, s.created_at_ms))
            .collect();
        v.sort_by_key(|(a, t)| (*t, a.clone()));
        v
    };
    // What agents do with their scans: an agent has one pending scan at most.
    let run_pending = || {
        let (scans, _) = survivor
            .store
            .scans(&ScanFilter::default(), 0, usize::MAX)
            .unwrap();
        for s in scans
            .into_iter()
            .filter(|s| s.status == ScanStatus::Pending)
        {
            survivor.cancel_scan(&s.id, "agent").unwrap();
        }
    };
    let mut want = Vec::new();
    let mut now = t0;
    for m in 1..=4 {
        while now < minute(m) {
            clock.advance(Duration::from_secs(5));
            now += 5_000;
            assert!(clock.settle(loops).await, "the loops sleep again at {now}");
            if m == 3 {
                // The lease, last renewed at 10:02:00, runs out 30 s later.
                let lease_out = minute(2) + 30_000;
                assert_eq!(survivor.is_leader(), now >= lease_out, "at {now}");
            }
        }
        for id in ["ag-1", "ag-2"] {
            want.push((id.to_string(), minute(m)));
        }
        assert_eq!(scheduled(), want, "minute {m}");
        run_pending();
        if m == 2 {
            // The holder dies between two passes, its lease not given back.
            let (stop, task) = doomed_loop.take().unwrap();
            task.abort();
            assert!(task.await.unwrap_err().is_cancelled());
            drop(stop);
            loops = 1;
            assert!(doomed.is_leader(), "as it last knew");
        }
    }
    let _ = survivor_loop.0.send(());
    survivor_loop.1.await.unwrap();
}

/// Collectors sharing a store share the SSH key: a target registered through one is
/// scanned by it, a scan requested through the other completes too, and a collector
/// started with a key of its own fails its scans saying what to copy.
#[test]
fn collectors_on_one_database_scan_targets_with_one_ssh_key() {
    use rampart_tests::cluster::{wait_for, Collector};
    use rampart_tests::sshd::{stage_agent, Sshd};
    use serde_json::json;

    let pg = Postgres::start();
    pg.create_database("rampart");
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("download");
    stage_agent(&dl);
    let config = format!(
        "{}download_dir = \"{}\"\nssh_allow_loopback = true\n",
        pg.collector_config("rampart"),
        dl.display()
    );
    let (a, b) = rampart_tests::pg::two_collectors(t.path(), &config);
    assert_eq!(a.ssh_public_key(), b.ssh_public_key(), "one key");
    let sshd = Sshd::start(&a.ssh_public_key(), &["root"]);
    let done = |c: &Collector, id: &str| {
        wait_for("the scan over SSH to end", 240, || {
            let s = c.admin("GET", &format!("/api/v1/scans/{id}"), None);
            matches!(
                s["scan"]["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
            .then_some(s)
        })
    };
    let reg = b.admin(
        "POST",
        "/api/v1/targets",
        Some(json!({"host": "127.0.0.1", "port": sshd.port, "user": "root"})),
    );
    let target = reg["target"]["id"].as_str().unwrap().to_string();
    // Listed through either collector at once: B told A.
    wait_for("A to list the target registered through B", 10, || {
        a.admin("GET", "/api/v1/targets", None)
            .to_string()
            .contains(&target)
            .then_some(())
    });
    let first = done(&a, reg["scan_id"].as_str().unwrap());
    assert_eq!(
        first["scan"]["status"], "completed",
        "seen through A: {first}"
    );
    let v = a.admin("POST", "/api/v1/scans", Some(json!({"agent_id": target})));
    let second = done(&b, v[0]["id"].as_str().unwrap());
    assert_eq!(
        second["scan"]["status"], "completed",
        "seen through B: {second}"
    );

    // A third collector given the CA but not the SSH key.
    let dc = t.path().join("c");
    std::fs::create_dir_all(&dc).unwrap();
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(t.path().join("a/ca"))
        .arg(dc.join("ca"))
        .status()
        .unwrap();
    assert!(st.success());
    let c = Collector::start_with(&dc, None, Some(&a.admin), Some(&config));
    assert_ne!(c.ssh_public_key(), a.ssh_public_key());
    let v = c.admin("POST", "/api/v1/scans", Some(json!({"agent_id": target})));
    let refused = done(&a, v[0]["id"].as_str().unwrap());
    assert_eq!(refused["scan"]["status"], "failed", "{refused}");
    let why = refused["scan"]["failure_reason"].as_str().unwrap();
    assert!(
        why.contains("is not the one the targets were given")
            && why.contains("copy the first collector's <data_dir>/ssh"),
        "{why}"
    );
}

/// An agent's key holds one stream across the fleet, as on one collector: a stream
/// accepted through B ends the agent's older stream on A (the budget of messages per
/// second is per collector, so a stream on each collector would multiply it). A stream
/// on A accepted after the one on B stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_stream_through_another_collector_ends_the_older_one() {
    use rampart_collector::app::{App, StreamEnd};
    use rampart_collector::clock::Clock;
    use rampart_collector::store::Event;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    use std::time::Duration;

    let pg = Postgres::start();
    pg.create_database("rampart");
    let t0: i64 = 1_796_637_630_000;
    let clock = Clock::manual(t0);
    let (_t, a, b) = two_apps(&pg.collector_config("rampart"), &clock, |a| {
        a.store.put_agent(&agent_record("ag-1", t0)).unwrap();
    });
    let mut events = a.store.subscribe().expect("PostgreSQL delivers events");
    // A's listener connects in the background: B's events reach it once it listens.
    let mut heard = false;
    for _ in 0..40 {
        let app = b.clone();
        tokio::task::spawn_blocking(move || app.store.publish(&Event::Webhook))
            .await
            .unwrap()
            .unwrap();
        if let Ok(e) = tokio::time::timeout(Duration::from_millis(250), events.recv()).await {
            assert_eq!(e, Some(Event::Webhook));
            heard = true;
            break;
        }
    }
    assert!(heard, "A listens within 10 s");
    while let Ok(e) = events.try_recv() {
        assert_eq!(e, Event::Webhook);
    }
    // What the collector's event task does: each event applied where blocking is allowed.
    async fn next_stream_event(
        events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
        app: &Arc<App>,
    ) -> Event {
        loop {
            let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .expect("an event within 10 s")
                .expect("the listener goes on");
            if matches!(e, Event::Stream { .. }) {
                let (app, e2) = (app.clone(), e.clone());
                tokio::task::spawn_blocking(move || app.apply_event(e2))
                    .await
                    .unwrap()
                    .unwrap();
                return e;
            }
        }
    }
    let stream = |app: &Arc<App>| {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let end = Arc::new(StreamEnd::default());
        let since = app
            .attach("ag-1", tx, end.clone(), Arc::new(AtomicBool::new(false)))
            .unwrap();
        (end, rx, since)
    };

    // The agent's stream on A, then one on B a second later.
    let (end_a, _rx_a, since_a) = stream(&a);
    let app = a.clone();
    tokio::task::spawn_blocking(move || app.record_stream("ag-1", since_a))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(1));
    let (end_b, _rx_b, since_b) = stream(&b);
    let app = b.clone();
    tokio::task::spawn_blocking(move || app.record_stream("ag-1", since_b))
        .await
        .unwrap();
    let e = next_stream_event(&mut events, &a).await;
    assert_eq!(
        e,
        Event::Stream {
            agent_id: "ag-1".into(),
            since_ms: since_b
        },
        "A hears of B's stream (and not of its own)"
    );
    assert_eq!(
        end_a.reason().as_deref(),
        Some("agent ag-1 opened a newer stream through another collector"),
        "A's older stream is told to end"
    );
    assert_eq!(end_b.reason(), None, "B's stream goes on");

    // The agent back on A before news of an older stream elsewhere arrives: A's
    // newer stream stays.
    clock.advance(Duration::from_secs(1));
    let (end_a2, _rx_a2, since_a2) = stream(&a);
    let app = a.clone();
    tokio::task::spawn_blocking(move || {
        app.apply_event(Event::Stream {
            agent_id: "ag-1".into(),
            since_ms: since_a2 - 1,
        })
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(end_a2.reason(), None, "a stream newer than the news stays");
    assert!(a.is_connected("ag-1"));
}

/// Two collectors in this process on one database and one clock, B with A's CA and
/// SSH key (as a fleet's second collector is given them); `prepare` runs on A before
/// B starts.
fn two_apps(
    config_text: &str,
    clock: &rampart_collector::clock::Clock,
    prepare: impl FnOnce(&std::sync::Arc<rampart_collector::app::App>),
) -> (
    tempfile::TempDir,
    std::sync::Arc<rampart_collector::app::App>,
    std::sync::Arc<rampart_collector::app::App>,
) {
    let t = tempfile::tempdir().unwrap();
    let config = t.path().join("collector.toml");
    std::fs::write(&config, config_text).unwrap();
    let build = |name: &str| {
        let dir = t.path().join(name);
        let c = rampart_collector::server::load_config(Some(&config), Some(&dir)).unwrap();
        rampart_collector::server::build_on(c, clock.clone())
            .unwrap()
            .app
    };
    let a = build("a");
    prepare(&a);
    std::fs::create_dir_all(t.path().join("b")).unwrap();
    for d in ["ca", "ssh"] {
        let st = std::process::Command::new("cp")
            .arg("-a")
            .arg(t.path().join("a").join(d))
            .arg(t.path().join("b").join(d))
            .status()
            .unwrap();
        assert!(st.success(), "copying {d} failed");
    }
    let b = build("b");
    (t, a, b)
}

/// An enrolled agent's record at `t0`.
fn agent_record(id: &str, t0: i64) -> rampart_collector::store::AgentRecord {
    rampart_collector::store::AgentRecord {
        id: id.into(),
        hostname: format!("{id}.example"),
        ip_addresses: vec![],
        provider: "aws".into(),
        instance_id: String::new(),
        os: String::new(),
        project: None,
        labels: Default::default(),
        enrolled_at_ms: t0,
        last_seen_ms: t0,
        cert_serial: "01".into(),
        cert_not_after_ms: t0 + 86_400_000,
        revoked: false,
        identity: Default::default(),
        replaced_certs: Vec::new(),
        renewed_at_ms: 0,
        ssh: None,
    }
}
