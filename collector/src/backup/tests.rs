//! The backup's round trip, its consistency under writes, and every refusal.

use rampart_report::{Profile, Status};

use super::format::{MAX_VALUE_BYTES, TAG_FILE, TAG_RECORD};
use super::*;
use crate::store::conformance::{seed, Truth};
use crate::store::{
    AgentRecord, AttemptRecord, DeliveryRecord, DeliveryState, ResultRecord, ScanRecord,
    ScanStatus, SessionRecord, TokenRecord, UserRecord,
};

/// A collector's data directory with a CA and a store holding some of
/// everything.
fn source(dir: &Path) -> (SledStore, Truth) {
    crate::ca::Ca::open_or_create(&dir.join("ca")).unwrap();
    crate::ssh::SshKey::open_or_create(&dir.join("ssh")).unwrap();
    let s = SledStore::open(&dir.join("db")).unwrap();
    let mut truth = Truth::default();
    seed(&s, 120, &mut truth, 3);
    for (i, id) in truth.scans.keys().take(30).enumerate() {
        // Two chunks each, the second rewriting a rule of the first.
        s.put_results(
            id,
            &[result("1.1", "fail", i), result("1.2", "pass", i)],
            crate::clock::system_ms(),
        )
        .unwrap();
        s.put_results(id, &[result("1.1", "pass", i)], crate::clock::system_ms())
            .unwrap();
    }
    for i in 0..3 {
        s.put_token(&TokenRecord {
            id: format!("tok-{i}"),
            hash: format!("hash-{i}"),
            project: Some("web".into()),
            created_by: "admin".into(),
            created_at_ms: 1,
            expires_at_ms: i64::MAX,
            max_uses: 5,
            uses: 0,
            revoked: false,
        })
        .unwrap();
        s.put_user(&UserRecord {
            name: format!("user-{i}"),
            role: "admin".into(),
            token_hash: format!("uhash-{i}"),
            created_at_ms: 1,
            revoked: false,
            password_hash: None,
            password_changed_at_ms: 0,
        })
        .unwrap();
        s.put_delivery(&delivery(&format!("dl-{i}"))).unwrap();
        s.append_attempt(&attempt(&format!("dl-{i}"), i as i64))
            .unwrap();
    }
    s.put_meta("settings", b"{\"mode\":\"audit\"}").unwrap();
    s.put_meta("webhook_secret", b"s3cret").unwrap();
    assert!(s.lease("leader", "collector-a", 1, 30_000).unwrap());
    s.put_session(&SessionRecord {
        id_hash: "sess".into(),
        user: "user-0".into(),
        csrf: "c".into(),
        created_at_ms: 1,
        last_seen_ms: 1,
    })
    .unwrap();
    s.sync().unwrap();
    (s, truth)
}

fn result(rule: &str, status: &str, i: usize) -> ResultRecord {
    ResultRecord {
        rule_id: rule.into(),
        status: Status::parse(status).unwrap(),
        evidence: vec![format!("evidence {i} {}", "x".repeat(i * 40))],
    }
}

fn delivery(id: &str) -> DeliveryRecord {
    DeliveryRecord {
        id: id.into(),
        scan_id: "sc".into(),
        url: "https://hooks.example/x".into(),
        body: "{}".into(),
        created_at_ms: 1,
        attempts: 1,
        state: DeliveryState::Pending,
        next_attempt_ms: Some(5),
    }
}

fn attempt(id: &str, at: i64) -> AttemptRecord {
    AttemptRecord {
        delivery_id: id.into(),
        scan_id: "sc".into(),
        attempt: 1,
        at_ms: at,
        http_status: Some(500),
        error: None,
        state: DeliveryState::Pending,
        next_attempt_ms: Some(5),
    }
}

/// Everything a store answers, through the `Store` trait.
#[derive(Debug, PartialEq)]
struct Dump {
    agents: Vec<AgentRecord>,
    tokens: Vec<TokenRecord>,
    users: Vec<UserRecord>,
    scans: Vec<ScanRecord>,
    results: Vec<(String, Vec<ResultRecord>)>,
    audit: Vec<AuditRecord>,
    deliveries: Vec<DeliveryRecord>,
    attempts: Vec<AttemptRecord>,
    meta: Vec<(String, Vec<u8>)>,
}

fn dump(s: &dyn Store) -> Dump {
    let (scans, _) = s.scans(&ScanFilter::default(), 0, usize::MAX).unwrap();
    Dump {
        agents: s.agents().unwrap(),
        tokens: s.tokens().unwrap(),
        users: s.users().unwrap(),
        results: scans
            .iter()
            .map(|sc| (sc.id.clone(), s.results(&sc.id).unwrap()))
            .filter(|(_, r)| !r.is_empty())
            .collect(),
        scans,
        audit: s.audit(0, usize::MAX).unwrap().0,
        deliveries: s.deliveries().unwrap(),
        attempts: s.attempts(0, usize::MAX).unwrap().0,
        meta: s
            .meta_entries()
            .unwrap()
            .into_iter()
            .filter(|(k, _)| k != "index_version" && !k.starts_with("lease/"))
            .collect(),
    }
}

/// `got` is `want`, field by field (a difference named briefly, not printed whole).
fn assert_same(got: &Dump, want: &Dump) {
    fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
        assert_eq!(got.len(), want.len(), "{what}: how many");
        if let Some(i) = (0..got.len()).find(|i| got[*i] != want[*i]) {
            let short = |t: &T| format!("{t:?}").chars().take(300).collect::<String>();
            panic!(
                "{what} #{i}: got {} want {}",
                short(&got[i]),
                short(&want[i])
            );
        }
    }
    same("agents", &got.agents, &want.agents);
    same("tokens", &got.tokens, &want.tokens);
    same("users", &got.users, &want.users);
    same("scans", &got.scans, &want.scans);
    same("results", &got.results, &want.results);
    same("audit", &got.audit, &want.audit);
    same("deliveries", &got.deliveries, &want.deliveries);
    same("attempts", &got.attempts, &want.attempts);
    same("meta", &got.meta, &want.meta);
}

fn take_bytes(s: &SledStore, data: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    take(s, data, "tester", &mut out).unwrap();
    out
}

/// Restores `bytes` into a new directory under `t`; the store and the directory.
fn restored(bytes: &[u8], t: &Path, name: &str) -> Result<(SledStore, PathBuf)> {
    let data = t.join(name);
    restore(bytes, &data)?;
    Ok((SledStore::open(&data.join("db")).unwrap(), data))
}

#[test]
fn a_restore_holds_every_record_the_ca_and_the_backups_own_audit_entry() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (s, mut truth) = source(&src);
    let bytes = take_bytes(&s, &src);
    let want = dump(&s);
    assert_eq!(
        want.audit[0].action, AUDIT_ACTION,
        "the backup audits itself"
    );
    assert_eq!(want.audit[0].actor, "tester");
    truth.audit.push(want.audit[0].clone());
    let m = verify(bytes.as_slice()).unwrap();
    assert_eq!(m.counts.scans, truth.scans.len() as u64);
    assert_eq!(m.counts.agents, truth.agents.len() as u64);
    assert_eq!(m.counts.results, 60, "two chunks for each of 30 scans");
    assert_eq!((m.counts.tokens, m.counts.users), (3, 3));
    assert_eq!(m.counts.audit, m.audit_head_seq);
    assert_eq!(m.audit_head_hash, want.audit[0].hash);
    assert_eq!(m.created_by, "tester");

    let (r, data) = restored(&bytes, t.path(), "new").unwrap();
    assert_same(&dump(&r), &want);
    crate::store::conformance::check(&r, &truth);
    assert!(r.session("sess").unwrap().is_none(), "sessions stay behind");
    assert_eq!(r.get_meta("lease/leader").unwrap(), None, "leases too");
    for f in ["ca/ca.key", "ca/ca.crt", "ssh/id_ed25519"] {
        assert_eq!(
            fs::read(data.join(f)).unwrap(),
            fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }
    // The SSH key the targets trust comes back, and loads.
    let key = |d: &Path| crate::ssh::SshKey::open_or_create(&d.join("ssh")).unwrap();
    assert_eq!(key(&data).public_openssh(), key(&src).public_openssh());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("ca/ca.key")), 0o600);
    assert_eq!(mode(&data.join("ssh/id_ed25519")), 0o600);
    assert_eq!(mode(&data.join("ssh")), 0o700);
    assert_eq!(mode(&data), 0o700);
    // New results of a restored scan sort after the restored ones.
    let id = want.results[0].0.clone();
    r.put_results(&id, &[result("1.2", "fail", 0)], crate::clock::system_ms())
        .unwrap();
    let got = r.results(&id).unwrap();
    assert_eq!(
        got.iter().find(|x| x.rule_id == "1.2").unwrap().status,
        Status::Fail
    );
    assert_eq!(
        got.iter().find(|x| x.rule_id == "1.1").unwrap().status,
        Status::Pass
    );
}

#[test]
fn the_backup_is_the_store_at_its_cut_whatever_is_written_meanwhile() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let (s, truth) = source(&src);
    let snap = begin(&s, "tester", crate::clock::system_ms()).unwrap();
    let want = dump(&s);
    // After the cut: every kind of write, deletions included.
    let ids: Vec<String> = truth.scans.keys().cloned().collect();
    for id in ids.iter().step_by(3) {
        let mut sc = s.scan(id).unwrap().unwrap();
        sc.status = ScanStatus::Completed;
        sc.score = Some(12.5);
        s.put_scan(&sc).unwrap();
    }
    for i in 0..50 {
        let sc = ScanRecord::pending(
            format!("sc-new-{i:03}"),
            "ag-01",
            None,
            "manual",
            Profile::default(),
            9,
        );
        s.put_scan(&sc).unwrap();
        s.put_results(
            &sc.id,
            &[result("9.9", "pass", 1)],
            crate::clock::system_ms(),
        )
        .unwrap();
    }
    for id in ids.iter().take(10) {
        s.put_results(id, &[result("1.1", "error", 2)], crate::clock::system_ms())
            .unwrap();
    }
    assert!(s.prune_results(i64::MAX).unwrap() > 0, "locators deleted");
    s.update_agent("ag-02", &mut |a| a.hostname = "renamed".into())
        .unwrap();
    assert!(matches!(
        s.use_token("hash-0", 5).unwrap(),
        crate::store::TokenUse::Accepted(_)
    ));
    s.revoke_token("tok-1").unwrap();
    s.put_meta("settings", b"{}").unwrap();
    s.put_delivery(&delivery("dl-9")).unwrap();
    s.append_attempt(&attempt("dl-0", 7)).unwrap();
    let mut changed = dump(&s);
    // And while the backup is read: a writer that does not stop until it is done.
    let done = std::sync::atomic::AtomicBool::new(false);
    let bytes = std::thread::scope(|th| {
        th.spawn(|| {
            let mut i = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let id = &ids[i % ids.len()];
                let mut sc = s.scan(id).unwrap().unwrap();
                sc.last_progress_ms += 1;
                s.put_scan(&sc).unwrap();
                s.put_results(id, &[result("7.7", "fail", i)], crate::clock::system_ms())
                    .unwrap();
                s.append_audit(&AuditRecord {
                    seq: 0,
                    at_ms: 1,
                    actor: "w".into(),
                    action: "x".into(),
                    target: None,
                    detail: String::new(),
                    prev_hash: String::new(),
                    hash: String::new(),
                })
                .unwrap();
                i += 1;
            }
        });
        let mut out = Vec::new();
        write(&*snap, &src, "tester", 1, &mut out).unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        out
    });
    drop(snap);
    changed.audit.clear();
    assert!(dump(&s).scans != want.scans, "the store did change");
    let (r, _) = restored(&bytes, t.path(), "new").unwrap();
    assert_same(&dump(&r), &want);
    // A second backup, after the first ended, sees the writes.
    let (r2, _) = restored(&take_bytes(&s, &src), t.path(), "new2").unwrap();
    let now = dump(&r2);
    assert!(now.tokens == changed.tokens, "tokens");
    assert!(now.deliveries == changed.deliveries, "deliveries");
    assert!(now.meta == changed.meta, "meta");
}

#[test]
fn one_backup_at_a_time() {
    let t = tempfile::tempdir().unwrap();
    let (s, _) = source(&t.path().join("src"));
    let first = begin(&s, "a", crate::clock::system_ms()).unwrap();
    let e = begin(&s, "b", crate::clock::system_ms())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("already being taken"), "{e}");
    drop(first);
    begin(&s, "c", crate::clock::system_ms()).unwrap();
}

/// Every entry of a backup, to write again altered.
#[derive(Default)]
struct Entries {
    records: Vec<(Section, Vec<u8>, Vec<u8>)>,
    files: Vec<(String, Vec<u8>)>,
}

impl Sink for Entries {
    fn record(&mut self, s: Section, key: &[u8], value: &[u8]) -> Result<()> {
        self.records.push((s, key.to_vec(), value.to_vec()));
        Ok(())
    }
    fn file(&mut self, name: &str) -> Result<Box<dyn Write + '_>> {
        self.files.push((name.into(), Vec::new()));
        Ok(Box::new(&mut self.files.last_mut().unwrap().1))
    }
}

/// `bytes` written again (a valid checksum) after `edit` changed the manifest
/// or the entries.
fn forge(bytes: &[u8], edit: impl FnOnce(&mut Manifest, &mut Entries)) -> Vec<u8> {
    let mut e = Entries::default();
    let mut m = read_into(bytes, &mut e).unwrap();
    edit(&mut m, &mut e);
    let mut w = Writer::new(Vec::new()).unwrap();
    for (s, k, v) in &e.records {
        w.record(*s, k, v).unwrap();
    }
    for (name, b) in &e.files {
        w.file(name, &mut b.as_slice(), b.len() as u64).unwrap();
    }
    w.finish(&m).unwrap().0
}

/// Where the manifest's length is: before the manifest, which ends where the
/// checksum begins.
fn manifest_at(bytes: &[u8]) -> usize {
    let m = verify(bytes).unwrap();
    bytes.len() - 32 - serde_json::to_vec(&m).unwrap().len() - 4
}

/// A restore of `bytes` fails with a message containing `says`, and leaves
/// nothing behind.
fn refused(bytes: &[u8], t: &Path, says: &str) {
    let data = t.join("refused");
    let e = restore(bytes, &data).expect_err("refused").to_string();
    assert!(e.contains(says), "{e:?} should say {says:?}");
    assert!(!data.exists(), "{e}: the directory it made is gone");
}

fn small_backup(t: &Path) -> Vec<u8> {
    let src = t.join("small");
    crate::ca::Ca::open_or_create(&src.join("ca")).unwrap();
    let s = SledStore::open(&src.join("db")).unwrap();
    let mut truth = Truth::default();
    seed(&s, 8, &mut truth, 5);
    let id = truth.scans.keys().next().unwrap();
    s.put_results(id, &[result("1.1", "pass", 3)], crate::clock::system_ms())
        .unwrap();
    take_bytes(&s, &src)
}

#[test]
fn a_file_cut_short_anywhere_is_refused_as_truncated() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let header_end = 12;
    let manifest = manifest_at(&bytes);
    let n = bytes.len();
    for cut in [
        1,
        5,
        8,
        11,
        14,
        header_end + 5,
        manifest - 1,
        manifest + 2,
        manifest + 10,
        n / 2,
        n - 41,
        n - 33,
        n - 32,
        n - 1,
    ] {
        let e = verify(&bytes[..cut]).expect_err("refused");
        assert!(
            matches!(e, BackupError::Truncated { .. }),
            "cut at {cut} of {n}: {e}"
        );
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    for cut in [3, header_end + 2, n / 3, n - 10] {
        refused(&bytes[..cut], t.path(), "truncated");
    }
    refused(&[], t.path(), "not a Rampart backup");
}

#[test]
fn a_flipped_byte_anywhere_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let mut positions: Vec<usize> = (0..bytes.len()).step_by(5).collect();
    // Every byte of the end: the end block, the manifest, the checksum.
    positions.extend(manifest_at(&bytes) - 8..bytes.len());
    for at in positions {
        let mut b = bytes.clone();
        b[at] ^= 0x20;
        let e = verify(b.as_slice());
        assert!(
            e.is_err(),
            "a flipped byte at {at} of {} passed",
            bytes.len()
        );
    }
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    let e = restore(b.as_slice(), &t.path().join("flip")).err().unwrap();
    assert!(
        matches!(
            e,
            BackupError::Checksum { .. } | BackupError::Damaged { .. }
        ),
        "{e}"
    );
    assert!(!t.path().join("flip").exists());
    let mut b = bytes.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    refused(&b, t.path(), "checksum does not match");
}

#[test]
fn bad_magic_another_version_and_trailing_bytes_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let mut b = bytes.clone();
    b[0] = b'X';
    refused(&b, t.path(), "not a Rampart backup");
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&7u32.to_be_bytes());
    refused(&b, t.path(), "format version 7");
    let mut b = bytes.clone();
    b.push(0);
    refused(&b, t.path(), "bytes after the checksum");
    refused(b"#!/bin/sh\necho hi\n", t.path(), "not a Rampart backup");
}

#[test]
fn a_forged_manifest_with_a_good_checksum_is_refused_by_its_counts() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let b = forge(&bytes, |m, _| m.counts.scans += 1);
    assert!(verify(b.as_slice()).is_err());
    refused(
        &b,
        t.path(),
        "the manifest says 9 scans records, the backup holds 8",
    );
    let b = forge(&bytes, |m, _| m.counts.file_bytes -= 1);
    refused(&b, t.path(), "bytes of files");
    // Records dropped and the counts made to agree: the restored store still
    // disagrees with what the manifest says of the audit log.
    let b = forge(&bytes, |m, e| {
        let last = e
            .records
            .iter()
            .rposition(|(s, ..)| *s == Section::Audit)
            .unwrap();
        e.records.remove(last);
        m.counts.audit -= 1;
    });
    refused(&b, t.path(), "audit");
    // A duplicated scan with its count raised: the restored store holds fewer.
    let b = forge(&bytes, |m, e| {
        let dup = e
            .records
            .iter()
            .find(|(s, ..)| *s == Section::Scans)
            .unwrap()
            .clone();
        e.records.push(dup);
        m.counts.scans += 1;
    });
    refused(&b, t.path(), "scans in the restored store");
}

#[test]
fn a_broken_audit_chain_is_refused_after_restoring() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let b = forge(&bytes, |_, e| {
        let (_, _, v) = e
            .records
            .iter_mut()
            .find(|(s, k, _)| *s == Section::Audit && k.as_slice() == 3u64.to_be_bytes())
            .unwrap();
        let mut rec: AuditRecord = serde_json::from_slice(v).unwrap();
        rec.actor = "mallory".into();
        *v = serde_json::to_vec(&rec).unwrap();
    });
    assert!(verify(b.as_slice()).is_ok(), "the file itself is sound");
    refused(&b, t.path(), "audit chain broken at seq 3");
}

#[test]
fn huge_declared_lengths_are_refused_before_anything_is_allocated() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let mut b = bytes.clone();
    let at = manifest_at(&bytes);
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    refused(&b, t.path(), "a manifest of 4294967295 bytes");
    let mut b = bytes.clone();
    b[12..16].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    refused(&b, t.path(), "a compressed block of 2147483647 bytes");
    // Entries that declare more than a bound, or more than the file holds.
    let m = verify(bytes.as_slice()).unwrap();
    for (value_len, says) in [
        (u32::MAX, "a record value of 4294967295 bytes"),
        (MAX_VALUE_BYTES, "the entries end inside an entry"),
    ] {
        let mut w = Writer::new(Vec::new()).unwrap();
        w.put(&[TAG_RECORD, Section::Meta.id(), 0, 0, 0, 1, b'k'])
            .unwrap();
        w.put(&value_len.to_be_bytes()).unwrap();
        w.put(b"only a few bytes").unwrap();
        let b = w.finish(&m).unwrap().0;
        refused(&b, t.path(), says);
    }
    let mut w = Writer::new(Vec::new()).unwrap();
    w.put(&[TAG_FILE, 0, 12]).unwrap();
    w.put(b"ca/../../etc").unwrap();
    let b = w.finish(&m).unwrap().0;
    refused(&b, t.path(), "not one a backup holds");
}

#[test]
fn a_restore_goes_only_into_a_new_or_empty_directory() {
    let t = tempfile::tempdir().unwrap();
    let bytes = small_backup(t.path());
    let full = t.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("keep.txt"), "mine").unwrap();
    let e = restore(bytes.as_slice(), &full).err().unwrap().to_string();
    assert!(e.contains("is not empty"), "{e}");
    assert_eq!(fs::read_to_string(full.join("keep.txt")).unwrap(), "mine");
    // An empty directory is used, and emptied again when the restore fails.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut b = bytes.clone();
    let mid = b.len() / 2;
    b[mid] ^= 4;
    assert!(restore(b.as_slice(), &empty).is_err());
    assert!(empty.is_dir() && fs::read_dir(&empty).unwrap().next().is_none());
    restore(bytes.as_slice(), &empty).unwrap();
    assert!(empty.join("db").is_dir() && empty.join("ca/ca.key").is_file());
}

#[tokio::test]
async fn backup_refuses_postgresql_and_points_at_pg_dump() {
    let t = tempfile::tempdir().unwrap();
    let cfg = crate::config::Config {
        data_dir: t.path().to_path_buf(),
        store: Some("postgres://rampart@db.example/rampart".into()),
        ..Default::default()
    };
    let to = t.path().join("b.backup");
    let e = backup_command(&cfg, &to, &Remote::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("pg_dump"), "{e}");
    assert!(!to.exists());
}
