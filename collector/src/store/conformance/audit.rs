//! Users, console sessions, and the audit log as a hash chain.

use super::*;

/// Users by token hash, sessions by secret hash, and the chained audit log.
pub(super) fn users_sessions_and_audit<S: Store>(s: &S) {
    // Users by token hash; the audit log appends in order and lists newest first.
    let u = UserRecord {
        name: "ann".into(),
        role: "admin".into(),
        token_hash: "th".into(),
        created_at_ms: 0,
        revoked: false,
        password_hash: Some("$argon2id$...".into()),
        password_changed_at_ms: 5,
    };
    s.put_user(&u).unwrap();
    assert_eq!(s.user_by_token_hash("th").unwrap(), Some(u.clone()));
    assert_eq!(s.user_by_token_hash("other").unwrap(), None);
    assert_eq!(s.user("ann").unwrap(), Some(u));
    assert_eq!(s.user("an").unwrap(), None);

    // Console sessions by the hash of their secret; ended one by one or by a test.
    let session = |id: &str, user: &str| SessionRecord {
        id_hash: id.into(),
        user: user.into(),
        csrf: format!("csrf-{id}"),
        created_at_ms: 1,
        last_seen_ms: 2,
    };
    for (id, user) in [("h1", "ann"), ("h2", "ann"), ("h3", "bob")] {
        s.put_session(&session(id, user)).unwrap();
    }
    assert_eq!(s.session("h1").unwrap(), Some(session("h1", "ann")));
    assert_eq!(s.session("h").unwrap(), None);
    assert!(s.delete_session("h1").unwrap());
    assert!(!s.delete_session("h1").unwrap(), "already ended");
    assert_eq!(s.session("h1").unwrap(), None);
    assert_eq!(s.delete_sessions(&mut |x| x.user != "ann").unwrap(), 1);
    assert_eq!(s.session("h2").unwrap(), None);
    assert_eq!(s.session("h3").unwrap(), Some(session("h3", "bob")));
    let entry = |a: &str| AuditRecord {
        seq: 0,
        at_ms: 1,
        actor: "ann".into(),
        action: a.into(),
        target: None,
        detail: String::new(),
        // Whatever the caller puts here, the store chains the entry itself.
        prev_hash: "forged".into(),
        hash: "forged".into(),
    };
    assert_eq!(s.append_audit(&entry("one")).unwrap(), 1);
    assert_eq!(s.append_audit(&entry("two")).unwrap(), 2);
    let (log, total) = s.audit(0, 10).unwrap();
    assert_eq!(
        (
            log.iter()
                .map(|e| (e.seq, e.action.as_str()))
                .collect::<Vec<_>>(),
            total
        ),
        (vec![(2, "two"), (1, "one")], 2)
    );
    // The log is a hash chain: the first entry starts from GENESIS, each next one
    // carries the hash of the one before, and the whole log verifies.
    assert_eq!(log[1].prev_hash, audit_chain::GENESIS);
    assert_eq!(log[1].hash, audit_chain::entry_hash(&log[1]));
    assert_eq!(log[0].prev_hash, log[1].hash);
    assert_eq!(log[0].hash, audit_chain::entry_hash(&log[0]));
    assert_eq!(audit_chain::verify_store(s).unwrap(), 2);
    // Concurrent appends still form one unbroken chain.
    std::thread::scope(|sc| {
        for t in 0..4 {
            let s = &s;
            sc.spawn(move || {
                for i in 0..10 {
                    s.append_audit(&entry(&format!("c{t}.{i}"))).unwrap();
                }
            });
        }
    });
    assert_eq!(audit_chain::verify_store(s).unwrap(), 42);
}
