//! The store itself: the same
//! conformance suites as the sled backend, then what only a server database has:
//! credentials, the schema's version, several stores opening it at once, partitions
//! by month, and a sled store moved into it.

use std::sync::Arc;

use rampart_collector::store::conformance;
use rampart_collector::store::pg::{PgOptions, PgStore};
use rampart_collector::store::{codec, ResultRecord, ScanRecord, ScanStatus, Store};
use rampart_report::{Profile, Status};
use rampart_tests::pg::Postgres;

fn options(pg: &Postgres, db: &str) -> PgOptions {
    PgOptions {
        url: pg.url(db),
        password_file: Some(pg.password_file()),
        ca_file: None,
        pool_size: 4,
    }
}

fn open(pg: &Postgres, db: &str) -> PgStore {
    PgStore::open(&options(pg, db)).unwrap_or_else(|e| panic!("open {db}: {e}"))
}

#[test]
fn postgres_passes_the_conformance_suites() {
    let pg = Postgres::start();
    pg.create_database("conformance");
    conformance::run(&|| open(&pg, "conformance"));
    pg.create_database("queries");
    conformance::run_queries(&|| open(&pg, "queries"));
    pg.create_database("retention");
    conformance::run_retention(&|| open(&pg, "retention"));
}

#[test]
fn credentials_and_the_schema() {
    let pg = Postgres::start();
    pg.create_database("rampart");

    // A wrong password is refused in words that never carry it.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password-4711\n").unwrap();
    let e = PgStore::open(&PgOptions {
        password_file: Some(wrong),
        ..options(&pg, "rampart")
    })
    .err()
    .expect("a wrong password is refused")
    .to_string();
    assert!(e.contains("password"), "{e}");
    assert!(!e.contains("4711"), "the error repeats the password: {e}");
    // No password at all: refused too (the server asks for one on TCP).
    let e = PgStore::open(&PgOptions {
        password_file: None,
        ..options(&pg, "rampart")
    })
    .err()
    .expect("no password is refused")
    .to_string();
    assert!(e.contains("password"), "{e}");
    // An empty password file is named.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let e = PgStore::open(&PgOptions {
        password_file: Some(empty),
        ..options(&pg, "rampart")
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("is empty"), "{e}");
    // Not a URL at all.
    let e = PgStore::open(&PgOptions {
        url: "postgres://[nope".into(),
        ..options(&pg, "rampart")
    })
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("not a PostgreSQL URL"), "{e}");

    // Four collectors starting at once migrate the schema once, under the lock.
    let stores: Vec<PgStore> = std::thread::scope(|t| {
        let hs: Vec<_> = (0..4).map(|_| t.spawn(|| open(&pg, "rampart"))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for s in &stores {
        assert_eq!(s.schema_version().unwrap(), 5);
    }
    assert_eq!(
        pg.psql(
            "rampart",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM rampart_schema"
        ),
        "1,2,3,4,5",
        "each migration once, in order"
    );
    assert!(
        !stores[0].target().contains(&pg.password),
        "the target names no password"
    );
    drop(stores);

    // A database migrated by a newer collector is refused, naming both versions.
    pg.psql(
        "rampart",
        "INSERT INTO rampart_schema (version) VALUES (99)",
    );
    let e = PgStore::open(&options(&pg, "rampart"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("schema version 99") && e.contains("newer"),
        "{e}"
    );
}

#[test]
fn streams_of_a_collector_gone_silent_count_for_nothing_then_are_forgotten() {
    let pg = Postgres::start();
    pg.create_database("presence");
    let (a, b) = (open(&pg, "presence"), open(&pg, "presence"));
    let t0 = 1_800_000_000_000;
    assert_eq!(a.heartbeat("coll-a", t0, t0 - 15_000).unwrap(), 1, "alone");
    assert_eq!(
        b.heartbeat("coll-b", t0, t0 - 15_000).unwrap(),
        2,
        "two collectors share the store"
    );
    assert_eq!(
        a.heartbeat("coll-a", t0 + 5_000, t0 - 10_000).unwrap(),
        2,
        "a beat counts itself once"
    );
    a.stream_opened("ag-1", "coll-a", t0).unwrap();
    b.stream_opened("ag-2", "coll-b", t0).unwrap();
    let ids = vec!["ag-1".to_string(), "ag-2".to_string()];
    assert_eq!(
        b.streams_elsewhere(&ids, "coll-b", t0 - 15_000).unwrap(),
        ["ag-1"]
    );
    // coll-a is killed: its heartbeat stops; coll-b's goes on.
    let later = t0 + 11 * 60_000;
    assert_eq!(
        b.heartbeat("coll-b", later, later - 15_000).unwrap(),
        1,
        "a silent collector no longer takes a share of the rates"
    );
    assert!(b
        .streams_elsewhere(&ids, "coll-b", later - 15_000)
        .unwrap()
        .is_empty());
    // A heartbeat removes nothing; the lease holder's upkeep does.
    assert_eq!(pg.psql("presence", "SELECT count(*) FROM streams"), "2");
    b.maintain(later).unwrap();
    assert_eq!(
        pg.psql("presence", "SELECT count(*) FROM streams"),
        "1",
        "coll-a's stream is gone, coll-b's stays"
    );
    assert_eq!(pg.psql("presence", "SELECT count(*) FROM instances"), "1");
}

#[test]
fn failed_signins_are_counted_for_every_collector_then_forgotten() {
    let pg = Postgres::start();
    pg.create_database("signin");
    let (a, b) = (open(&pg, "signin"), open(&pg, "signin"));
    let t0 = 1_800_000_000_000;
    let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert!(a
        .note_signin_failure(&keys(&["user:ada", "addr:10.0.0.1"]), t0)
        .unwrap());
    assert!(b.note_signin_failure(&keys(&["user:ada"]), t0 + 1).unwrap());
    let mut seen = b
        .signin_failures(&keys(&["user:ada", "user:bob"]), t0)
        .unwrap()
        .expect("PostgreSQL keeps them");
    seen.sort();
    assert_eq!(
        seen,
        [
            ("user:ada".to_string(), t0),
            ("user:ada".to_string(), t0 + 1)
        ]
    );
    assert_eq!(
        a.signin_failures(&keys(&["user:ada"]), t0 + 1)
            .unwrap()
            .unwrap()
            .len(),
        1,
        "only those since the window's start"
    );
    // A sign-in clears its own key, not the address's.
    b.clear_signin_failures("user:ada").unwrap();
    assert!(a
        .signin_failures(&keys(&["user:ada"]), t0)
        .unwrap()
        .unwrap()
        .is_empty());
    assert_eq!(
        a.signin_failures(&keys(&["addr:10.0.0.1"]), t0)
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    // The upkeep forgets what is older than any window.
    a.maintain(t0 + 3_600_001).unwrap();
    assert_eq!(
        pg.psql("signin", "SELECT count(*) FROM signin_failures"),
        "0"
    );
}

#[test]
fn two_stores_on_one_database_share_one_audit_chain() {
    // Two collectors appending at once: one chain, no sequence number twice, every
    // entry linked to the one before (checked by the same verifier as sled's).
    let pg = Postgres::start();
    pg.create_database("rampart");
    let a = Arc::new(open(&pg, "rampart"));
    let b = Arc::new(open(&pg, "rampart"));
    std::thread::scope(|t| {
        for (i, s) in [a.clone(), b.clone(), a.clone(), b.clone()]
            .into_iter()
            .enumerate()
        {
            t.spawn(move || {
                for n in 0..50 {
                    s.append_audit(&rampart_collector::store::AuditRecord {
                        seq: 0,
                        at_ms: n,
                        actor: format!("writer-{i}"),
                        action: "test.append".into(),
                        target: None,
                        detail: format!("{n}"),
                        prev_hash: String::new(),
                        hash: String::new(),
                    })
                    .unwrap();
                }
            });
        }
    });
    let n = rampart_collector::store::audit_chain::verify_store(&*a).unwrap();
    assert_eq!(n, 200);
    let (entries, total) = b.audit(0, 1000).unwrap();
    assert_eq!(total, 200);
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}

#[test]
fn a_sled_store_of_thousands_of_scans_moves_to_postgres() {
    // A real store (the load generator's seeding, through the Store trait), moved
    // with the CLI, checked by it, served by a collector on PostgreSQL; moved again
    // without harm.
    use rampart_tests::cluster::Collector;
    let pg = Postgres::start();
    pg.create_database("rampart");
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let token_file = t.path().join("admin.token");
    let seeded = std::process::Command::new(rampart_tests::binary("rampart-loadgen"))
        .args(["seed", "--data", data.to_str().unwrap()])
        .args(["--agents", "60", "--scans", "3000", "--results", "300"])
        .args(["--admin-token-file", token_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        seeded.status.success(),
        "{}",
        String::from_utf8_lossy(&seeded.stderr)
    );
    let config = t.path().join("pg.toml");
    std::fs::write(&config, pg.collector_config("rampart")).unwrap();
    let migrate = || {
        std::process::Command::new(rampart_tests::binary("rampart-collector"))
            .args(["migrate", "--from", data.to_str().unwrap()])
            .args(["--to", &pg.url("rampart")])
            .args(["--config", config.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = migrate();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("verified: 60 agents") && said.contains("3000 scans"),
        "{said}"
    );
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM scans"), "3000");
    // Again: the same records, no second copy of any result or audit entry.
    let chunks = pg.psql("rampart", "SELECT count(*) FROM result_chunks");
    let entries = pg.psql("rampart", "SELECT count(*) FROM audit");
    let again = migrate();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM result_chunks"),
        chunks
    );
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM audit"), entries);

    // A collector on the database serves what the sled store held, with the same
    // token, and the same answers as a collector on the sled store.
    let admin = std::fs::read_to_string(&token_file).unwrap();
    let admin = admin.trim();
    let on_sled = Collector::start(&data, None, Some(admin));
    let sled_view: Vec<serde_json::Value> = [
        "/api/v1/scans?per_page=20",
        "/api/v1/scans?status=completed&per_page=5",
        "/api/v1/overview",
    ]
    .iter()
    .map(|p| on_sled.admin("GET", p, None))
    .collect();
    let latest = sled_view[0]["scans"][0]["id"].as_str().unwrap().to_string();
    let sled_detail = on_sled.admin("GET", &format!("/api/v1/scans/{latest}"), None);
    drop(on_sled);
    let pg_data = t.path().join("pg-collector");
    let on_pg = Collector::start_with(
        &pg_data,
        None,
        Some(admin),
        Some(&pg.collector_config("rampart")),
    );
    for (i, p) in [
        "/api/v1/scans?per_page=20",
        "/api/v1/scans?status=completed&per_page=5",
        "/api/v1/overview",
    ]
    .iter()
    .enumerate()
    {
        let mut got = on_pg.admin("GET", p, None);
        let mut want = sled_view[i].clone();
        // The overview's clock-dependent parts aside.
        for v in [&mut got, &mut want] {
            if let Some(o) = v.as_object_mut() {
                o.remove("generated_at_ms");
                o.remove("connected_agents");
            }
        }
        assert_eq!(got, want, "{p}");
    }
    assert_eq!(
        on_pg.admin("GET", &format!("/api/v1/scans/{latest}"), None),
        sled_detail
    );
}

/// 2025-03-10T00:00:00Z and other days, as milliseconds.
const MAR_2025: i64 = 1_741_564_800_000;
const MAY_2025: i64 = 1_746_057_600_000;
const JUN_2025: i64 = 1_748_736_000_000;
const JAN_2024: i64 = 1_704_067_200_000;

fn month_scan(id: &str, created: i64, status: ScanStatus) -> ScanRecord {
    let mut s = ScanRecord::pending(id.into(), "ag-1", None, "manual", Profile::default(), 1);
    s.created_at_ms = created;
    s.status = status;
    s
}

fn one_result(rule: &str) -> Vec<ResultRecord> {
    vec![ResultRecord {
        rule_id: rule.into(),
        status: Status::Pass,
        evidence: vec![format!("{rule} found")],
    }]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn scans_and_results_are_kept_by_month() {
    let pg = Postgres::start();
    pg.create_database("rampart");
    // A database a collector of schema 2 left: its tables, by its own SQL, holding
    // scans of two months and one whose ID no collector made.
    let schema = |n: u32| {
        std::fs::read_to_string(
            rampart_tests::workspace().join(format!("collector/src/store/pg/schema_{n}.sql")),
        )
        .unwrap()
    };
    pg.psql("rampart", &schema(1));
    pg.psql("rampart", &schema(2));
    pg.psql(
        "rampart",
        "CREATE TABLE rampart_schema (version integer PRIMARY KEY,
         applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO rampart_schema (version) VALUES (1), (2);",
    );
    let old = [
        month_scan("sc-1741564800000-aaaa0001", MAR_2025, ScanStatus::Completed),
        month_scan("sc-1741564900000-aaaa0002", MAR_2025, ScanStatus::Failed),
        month_scan("sc-1746057600000-bbbb0001", MAY_2025, ScanStatus::Running),
        month_scan("sc-1746057700000-bbbb0002", MAY_2025, ScanStatus::Completed),
        month_scan("legacy-1", MAR_2025, ScanStatus::Completed),
    ];
    for s in &old {
        let doc = hex(&codec::encode(s).unwrap());
        let chunk = hex(&codec::encode_chunk(&one_result(&s.id)).unwrap());
        pg.psql(
            "rampart",
            &format!(
                "INSERT INTO scans (id, agent_id, status, blocking, score_key, created_at_ms, doc)
                 VALUES (convert_to('{id}', 'UTF8'), convert_to('ag-1', 'UTF8'), {status}, false, 0,
                 {created}, '\\x{doc}');
                 INSERT INTO result_chunks (scan_id, chunk) VALUES (convert_to('{id}', 'UTF8'),
                 '\\x{chunk}');",
                id = s.id,
                created = s.created_at_ms,
                status = match s.status {
                    ScanStatus::Running => 1,
                    ScanStatus::Completed => 2,
                    _ => 3,
                }
            ),
        );
    }
    // The upgrade: the rows wait in the defaults, the current and the next month get
    // their partitions at once; then the upkeep gives every month its own, and the
    // odd ID stays in the default.
    let store = open(&pg, "rampart");
    assert_eq!(store.schema_version().unwrap(), 5);
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM scans_other"), "5");
    let now = rampart_collector::clock::system_ms();
    store.maintain(now).unwrap();
    let parts = |table: &str| {
        pg.psql(
            "rampart",
            &format!(
                "SELECT string_agg(c.relname::text, ',' ORDER BY c.relname) FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{table}'::regclass"
            ),
        )
    };
    let this_month = chrono_month(now);
    let next_month = {
        let (y, m): (u32, u32) = (
            this_month[..4].parse().unwrap(),
            this_month[4..].parse().unwrap(),
        );
        if m == 12 {
            format!("{:04}01", y + 1)
        } else {
            format!("{y:04}{:02}", m + 1)
        }
    };
    for table in ["scans", "result_chunks"] {
        let got = parts(table);
        for m in ["202503", "202505", &this_month, &next_month] {
            assert!(got.contains(&format!("{table}_p{m}")), "{table}: {got}");
        }
        assert!(got.contains(&format!("{table}_other")), "{got}");
    }
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM scans_p202503"),
        "2"
    );
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM result_chunks_p202505"),
        "2"
    );
    assert_eq!(
        pg.psql(
            "rampart",
            "SELECT convert_from(id, 'UTF8') FROM scans_other"
        ),
        "legacy-1"
    );
    for s in &old {
        assert_eq!(store.scan(&s.id).unwrap().as_ref(), Some(s));
        assert_eq!(store.results(&s.id).unwrap(), one_result(&s.id), "{}", s.id);
    }

    // Retention to June 2025: March's results go as one partition, the odd scan's row
    // by row; May keeps its running scan's results and loses its finished one's.
    assert_eq!(store.prune_results(JUN_2025).unwrap(), 4);
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM result_chunks_p202503"),
        "0"
    );
    for s in &old {
        let kept = s.status == ScanStatus::Running;
        assert_eq!(!store.results(&s.id).unwrap().is_empty(), kept, "{}", s.id);
        assert_eq!(
            store.scan(&s.id).unwrap().as_ref(),
            Some(s),
            "the summary stays"
        );
    }
    assert_eq!(store.prune_results(JUN_2025).unwrap(), 0, "nothing left");

    // A scan of a month without partitions (written by a store moved from sled)
    // waits in the default until the upkeep gives the month its own.
    let late = month_scan("sc-1704067200000-cccc0001", JAN_2024, ScanStatus::Completed);
    store.put_scan(&late).unwrap();
    store.put_results(&late.id, &one_result("r"), now).unwrap();
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM scans_other"), "2");
    store.maintain(now).unwrap();
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM scans_p202401"),
        "1"
    );
    assert_eq!(
        pg.psql("rampart", "SELECT count(*) FROM result_chunks_p202401"),
        "1"
    );
    assert_eq!(pg.psql("rampart", "SELECT count(*) FROM scans_other"), "1");
    assert_eq!(store.results(&late.id).unwrap(), one_result("r"));
    // The upkeep again makes nothing new.
    let before = parts("scans");
    store.maintain(now).unwrap();
    assert_eq!(parts("scans"), before);
}

/// `YYYYMM` of a time in milliseconds (UTC), by civil-from-days arithmetic.
fn chrono_month(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}")
}
