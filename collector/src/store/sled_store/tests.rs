//! The sled backend against the conformance suite, older layouts and crashes.

use rampart_report::{Profile, Status};

use super::*;

#[test]
fn sled_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    super::super::conformance::run(&|| SledStore::open(&path).unwrap());
}

#[test]
fn sled_answers_queries_like_a_walk_over_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    super::super::conformance::run_queries(&|| SledStore::open(&path).unwrap());
}

/// The suite again with every write made as inside an ingest round, where scan
/// writes are held back until a sync, a walk, the round's end or the store's drop:
/// every read must still see them.
#[test]
fn sled_passes_the_conformance_suite_with_writes_held_in_a_round() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ((), _) = crate::ingest::deferring(|| {
        super::super::conformance::run(&|| SledStore::open(&path).unwrap());
    });
}

#[test]
fn scan_writes_in_a_round_are_seen_at_once_and_applied_as_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(&dir.path().join("db")).unwrap();
    let scan = |id: &str, status| {
        let mut s = ScanRecord::pending(id.into(), "ag-1", None, "manual", Profile::default(), 1);
        s.status = status;
        s
    };
    crate::ingest::deferring(|| {
        s.put_scan(&scan("sc-1", ScanStatus::Pending)).unwrap();
        s.put_scan(&scan("sc-1", ScanStatus::Running)).unwrap();
        s.put_scan(&scan("sc-2", ScanStatus::Pending)).unwrap();
        // Held: not in the tree yet, but every read sees them.
        assert!(s.scans.get("sc-1").unwrap().is_none());
        assert_eq!(s.scan("sc-1").unwrap().unwrap().status, ScanStatus::Running);
        assert_eq!(s.latest_scan("ag-1").unwrap().unwrap().id, "sc-2");
        // A walk applies them first.
        let f = ScanFilter {
            status: Some(ScanStatus::Pending),
            ..Default::default()
        };
        assert_eq!(s.scans(&f, 0, 10).unwrap().1, 1);
        assert!(s.scans.get("sc-1").unwrap().is_some());
        s.put_scan(&scan("sc-3", ScanStatus::Pending)).unwrap();
        assert!(s.scans.get("sc-3").unwrap().is_none());
        // A round's end applies them.
        s.settle().unwrap();
        assert!(s.scans.get("sc-3").unwrap().is_some());
        s.put_scan(&scan("sc-4", ScanStatus::Pending)).unwrap();
    });
    // Outside a round a write is applied at once, with anything held before it.
    s.put_scan(&scan("sc-5", ScanStatus::Pending)).unwrap();
    for id in ["sc-4", "sc-5"] {
        assert!(s.scans.get(id).unwrap().is_some(), "{id}");
    }
    let f = ScanFilter {
        status: Some(ScanStatus::Pending),
        ..Default::default()
    };
    assert_eq!(s.scans(&f, 0, 10).unwrap().1, 4);
}

#[test]
fn audit_appends_in_a_round_chain_onto_held_ones_and_are_applied_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(&dir.path().join("db")).unwrap();
    let entry = |a: &str| AuditRecord {
        seq: 0,
        at_ms: 1,
        actor: "ann".into(),
        action: a.into(),
        target: None,
        detail: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    assert_eq!(s.append_audit(&entry("one")).unwrap(), 1);
    crate::ingest::deferring(|| {
        assert_eq!(s.append_audit(&entry("two")).unwrap(), 2);
        assert_eq!(s.append_audit(&entry("three")).unwrap(), 3);
        assert!(s.audit.get(3u64.to_be_bytes()).unwrap().is_none(), "held");
        s.settle().unwrap();
        assert!(s.audit.get(3u64.to_be_bytes()).unwrap().is_some());
        assert_eq!(s.append_audit(&entry("four")).unwrap(), 4);
        // A read of the log applies what is held.
        let (mut all, total) = s.audit(0, 10).unwrap();
        assert_eq!(total, 4);
        all.sort_by_key(|e| e.seq);
        assert_eq!(crate::store::audit_chain::verify(&all), Ok(4));
        assert_eq!(s.append_audit(&entry("five")).unwrap(), 5);
    });
    // Held at the close: applied, and the chain is whole after a reopen.
    drop(s);
    let s = SledStore::open(&dir.path().join("db")).unwrap();
    let (mut all, _) = s.audit(0, 10).unwrap();
    all.sort_by_key(|e| e.seq);
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["one", "two", "three", "four", "five"]);
    assert_eq!(crate::store::audit_chain::verify(&all), Ok(5));
}

use crate::store::conformance::{check, seed, Truth};

#[test]
fn sled_keeps_results_for_the_retention_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    super::super::conformance::run_retention(&|| SledStore::open(&path).unwrap());
}

#[test]
fn a_chunk_that_is_not_a_sound_zstd_frame_is_an_error_naming_it() {
    let e = decode_chunk(b"sc\0\0k", b"junk").unwrap_err().to_string();
    assert!(e.contains("without a zstd frame size"), "{e}");
    let r = ResultRecord {
        rule_id: "1.1".into(),
        status: Status::Pass,
        evidence: vec!["x".repeat(4000)],
    };
    let mut good = encode_chunk(std::slice::from_ref(&r)).unwrap();
    assert_eq!(decode_chunk(b"k", &good).unwrap(), [r]);
    // One flipped byte in the body: the frame's checksum catches it.
    let n = good.len();
    good[n - 8] ^= 0x55;
    let e = decode_chunk(b"k", &good).unwrap_err().to_string();
    assert!(e.contains("does not decompress"), "{e}");
}

#[test]
fn results_of_a_store_written_one_record_per_rule_read_with_later_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(&dir.path().join("db")).unwrap();
    let r = |id: &str, st: &str| ResultRecord {
        rule_id: id.into(),
        status: Status::parse(st).unwrap(),
        evidence: vec![format!("{id}: {st}")],
    };
    // The layout before chunks: `scan\0rule` → one JSON record.
    for x in [r("1.1", "pass"), r("1.2", "fail")] {
        let key = format!("sc-1\0{}", x.rule_id);
        s.results.insert(key, encode(&x).unwrap()).unwrap();
    }
    s.put_results(
        "sc-1",
        &[r("1.2", "pass"), r("1.3", "fail")],
        crate::clock::system_ms(),
    )
    .unwrap();
    s.put_results("sc-1", &[r("1.3", "pass")], crate::clock::system_ms())
        .unwrap();
    assert_eq!(
        s.results("sc-1").unwrap(),
        [r("1.1", "pass"), r("1.2", "pass"), r("1.3", "pass")],
        "the newest write of each rule wins, old records included"
    );
    // A chunk that cannot be read (a bad locator, a torn record) is skipped, not
    // a panic: its batch was never acknowledged, and was sent again.
    s.put_results("sc-2", &[r("2.1", "pass")], crate::clock::system_ms())
        .unwrap();
    s.results
        .insert(chunk_key("sc-2", 7), b"junk".to_vec())
        .unwrap();
    let torn = Locator {
        day: result_log::day_of(crate::clock::system_ms()),
        offset: 1,
        len: 9,
    };
    s.results
        .insert(chunk_key("sc-2", 8), &torn.encode())
        .unwrap();
    assert_eq!(s.results("sc-2").unwrap(), [r("2.1", "pass")]);
    // Retention drops both kinds.
    let mut sc = ScanRecord::pending("sc-1".into(), "ag", None, "manual", Profile::default(), 1);
    sc.status = ScanStatus::Completed;
    sc.created_at_ms = 1;
    s.put_scan(&sc).unwrap();
    assert_eq!(s.prune_results(1000).unwrap(), 1);
    assert!(s.results("sc-1").unwrap().is_empty());
}

/// sled without its background flusher, whose thread could still hold the
/// database's lock for a moment after the handle is dropped.
fn raw_open(path: &Path) -> sled::Db {
    sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .open()
        .unwrap()
}

/// Drops every index entry and the index version, as a store written before
/// indexes existed has them.
fn strip_indexes(path: &Path) {
    let raw = raw_open(path);
    for t in ["scans", "agents", "audit"] {
        let tree = raw.open_tree(t).unwrap();
        let keys: Vec<_> = tree
            .range([IDX].as_slice()..)
            .map(|kv| kv.unwrap().0)
            .collect();
        assert!(!keys.is_empty(), "{t} had index entries");
        for k in keys {
            tree.remove(k).unwrap();
        }
    }
    raw.open_tree("meta")
        .unwrap()
        .remove(ix::INDEX_VERSION_KEY)
        .unwrap();
    raw.flush().unwrap();
}

/// What the records say, read without any index.
fn truth_from_records(path: &Path) -> Truth {
    let raw = raw_open(path);
    let mut t = Truth::default();
    for kv in records(&raw.open_tree("scans").unwrap()) {
        let (k, v) = kv.unwrap();
        let s: ScanRecord = decode(&k, &v).unwrap();
        t.scans.insert(s.id.clone(), s);
    }
    for kv in records(&raw.open_tree("agents").unwrap()) {
        let (k, v) = kv.unwrap();
        let a: AgentRecord = decode(&k, &v).unwrap();
        t.agents.insert(a.id.clone(), a);
    }
    for kv in records(&raw.open_tree("audit").unwrap()) {
        let (k, v) = kv.unwrap();
        t.audit.push(decode_audit(&k, &v).unwrap());
    }
    t
}

#[test]
fn indexes_are_built_from_the_records_of_an_older_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut truth = Truth::default();
    {
        let s = SledStore::open(&path).unwrap();
        seed(&s, 800, &mut truth, 3);
        s.sync().unwrap();
    }
    strip_indexes(&path);
    let s = SledStore::open(&path).unwrap();
    assert_eq!(
        s.get_meta(ix::INDEX_VERSION_KEY).unwrap().as_deref(),
        Some(ix::INDEX_VERSION)
    );
    check(&s, &truth);
    // The rebuilt indexes go on being maintained.
    seed(&s, 200, &mut truth, 5);
    check(&s, &truth);
}

/// A writer killed (SIGKILL) in the middle of writing scans leaves records and
/// indexes that agree: each record is written with its entries in one batch.
#[test]
fn indexes_agree_with_the_records_after_a_writer_is_killed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "store::sled_store::tests::writer_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    // Once the child has synced a first round, it goes on writing; kill it then.
    let ready = out
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.contains("writer ready"));
    assert!(ready, "the writer child never got going");
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let truth = truth_from_records(&path);
    assert!(truth.scans.len() >= 500, "{}", truth.scans.len());
    let s = SledStore::open(&path).unwrap();
    check(&s, &truth);
}

const CHILD_DIR: &str = "RAMPART_TEST_WRITER_DIR";

/// The process `indexes_agree_with_the_records_after_a_writer_is_killed` kills;
/// without its variable, nothing.
#[test]
fn writer_child() {
    let Some(path) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let s = SledStore::open(Path::new(&path)).unwrap();
    let mut truth = Truth::default();
    seed(&s, 500, &mut truth, 1);
    s.sync().unwrap();
    println!("writer ready");
    for round in 2.. {
        seed(&s, 100, &mut truth, round);
    }
}

/// Concurrent syncs share flushes and all succeed; what each wrote is there.
#[test]
fn concurrent_syncs_all_return_and_keep_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = SledStore::open(&path).unwrap();
        std::thread::scope(|t| {
            for th in 0..8 {
                let s = &s;
                t.spawn(move || {
                    for i in 0..15 {
                        let sc = ScanRecord::pending(
                            format!("sc-{th}-{i:03}"),
                            &format!("ag-{th}"),
                            None,
                            "manual",
                            Profile::default(),
                            1,
                        );
                        s.put_scan(&sc).unwrap();
                        s.sync().unwrap();
                    }
                });
            }
        });
    }
    let s = SledStore::open(&path).unwrap();
    assert_eq!(s.scans(&ScanFilter::default(), 0, 1).unwrap().1, 120);
    for th in 0..8 {
        let latest = s.latest_scan(&format!("ag-{th}")).unwrap().unwrap();
        assert_eq!(latest.id, format!("sc-{th}-014"));
    }
}

/// sled creates and removes files as it works (snapshots, blobs): `sync` must not
/// fail when one goes between listing the directory and opening the file.
#[test]
fn sync_tolerates_files_vanishing_under_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let s = SledStore::open(&db).unwrap();
    let churn = db.join("churn");
    std::fs::create_dir_all(&churn).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let churner = {
        let (stop, churn) = (stop.clone(), churn.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for i in 0..20 {
                    let _ = std::fs::write(churn.join(format!("f{i}")), b"x");
                }
                for i in 0..20 {
                    let _ = std::fs::remove_file(churn.join(format!("f{i}")));
                }
            }
        })
    };
    let failures = (0..50).filter(|_| s.sync().is_err()).count();
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    assert_eq!(failures, 0, "sync failed while files came and went");
}
