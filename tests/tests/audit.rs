//! The audit log is a hash chain: a real collector records audited actions, the
//! API shows each entry's `seq`, `prev_hash` and `hash`, and
//! `rampart-collector audit verify` accepts the log as written and names the entry
//! once someone rewrites it behind the collector's back.

use std::path::Path;
use std::process::{Command, Output};

use rampart_collector::store::sled_store::SledStore;
use rampart_collector::store::{audit_chain, AuditRecord, Store};
use rampart_tests::binary;
use rampart_tests::cluster::Collector;
use serde_json::{json, Value};

fn verify(data: &Path) -> Output {
    Command::new(binary("rampart-collector"))
        .args(["audit", "verify", "--data"])
        .arg(data)
        .output()
        .expect("run rampart-collector audit verify")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_hex64(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn the_audit_log_is_a_verifiable_hash_chain() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);

    // Audited actions through the API.
    c.user("alice", "viewer");
    c.user("bob", "admin");
    c.set_settings(|s| s["mode"] = json!("block"));
    c.set_settings(|s| s["mode"] = json!("warn"));
    c.enrollment_token("web", 1, 3600);

    // Every entry shows its place in the chain; newest first, each pointing at the
    // one below it, the oldest at the genesis hash.
    let page = c.admin("GET", "/api/v1/audit?per_page=1000", None);
    let entries = page["entries"].as_array().unwrap();
    let total = page["total"].as_u64().unwrap();
    assert_eq!(entries.len() as u64, total);
    assert!(total >= 5, "{page}");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(total - i as u64), "{e}");
        assert!(is_hex64(&e["prev_hash"]) && is_hex64(&e["hash"]), "{e}");
        match entries.get(i + 1) {
            Some(older) => assert_eq!(e["prev_hash"], older["hash"], "{e}"),
            None => assert_eq!(e["prev_hash"], json!(audit_chain::GENESIS), "{e}"),
        }
    }
    // The filters still apply; the settings changes are what we will tamper with.
    let changes = c.admin("GET", "/api/v1/audit?action=settings.change", None);
    let changes = changes["entries"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    let victim = changes[1]["seq"].as_u64().unwrap();
    assert!(changes[1]["detail"].as_str().unwrap().contains("block"));
    assert!(victim < total, "the victim is not the last entry");

    // While the collector runs, its database is locked: verify refuses, not hangs.
    let locked = verify(&data);
    assert!(!locked.status.success(), "{}", text(&locked));
    assert!(
        text(&locked).contains("stop the collector first"),
        "{}",
        text(&locked)
    );

    c.kill9();
    let ok = verify(&data);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains(&format!("OK: audit chain intact, {total} entries")),
        "{}",
        text(&ok)
    );

    // The library agrees, and sees the entry the API showed.
    let db = data.join("db");
    {
        let store = SledStore::open(&db).unwrap();
        assert_eq!(audit_chain::verify_store(&store).unwrap(), total);
        let (log, _) = store.audit(0, usize::MAX).unwrap();
        let e = log.iter().find(|e| e.seq == victim).unwrap();
        assert_eq!(e.action, "settings.change");
    }

    // Someone with access to the files rewrites what the settings change said,
    // going straight to sled: the collector itself has no way to edit the log.
    {
        let raw = sled::open(&db).unwrap();
        let tree = raw.open_tree("audit").unwrap();
        let key = victim.to_be_bytes();
        let mut e: AuditRecord = serde_json::from_slice(&tree.get(key).unwrap().unwrap()).unwrap();
        e.detail = "nothing to see here".into();
        tree.insert(key, serde_json::to_vec(&e).unwrap()).unwrap();
        raw.flush().unwrap();
    }
    let bad = verify(&data);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        text(&bad).contains(&format!("broken at seq {victim}:")),
        "{}",
        text(&bad)
    );
    assert!(text(&bad).contains("edited"), "{}", text(&bad));

    // Recomputing the edited entry's own hash only moves the break to the next one.
    {
        let raw = sled::open(&db).unwrap();
        let tree = raw.open_tree("audit").unwrap();
        let key = victim.to_be_bytes();
        let mut e: AuditRecord = serde_json::from_slice(&tree.get(key).unwrap().unwrap()).unwrap();
        e.hash = audit_chain::entry_hash(&e);
        tree.insert(key, serde_json::to_vec(&e).unwrap()).unwrap();
        raw.flush().unwrap();
    }
    let bad = verify(&data);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        text(&bad).contains(&format!("broken at seq {}:", victim + 1)),
        "{}",
        text(&bad)
    );
}

#[test]
fn a_deleted_entry_is_named() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    for name in ["u1", "u2", "u3"] {
        c.user(name, "viewer");
    }
    let total = c.admin("GET", "/api/v1/audit", None)["total"]
        .as_u64()
        .unwrap();
    c.kill9();
    assert!(verify(&data).status.success());
    let victim = total - 1;
    {
        let raw = sled::open(data.join("db")).unwrap();
        let tree = raw.open_tree("audit").unwrap();
        assert!(tree.remove(victim.to_be_bytes()).unwrap().is_some());
        raw.flush().unwrap();
    }
    let bad = verify(&data);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        text(&bad).contains(&format!("broken at seq {victim}:")),
        "{}",
        text(&bad)
    );
}
