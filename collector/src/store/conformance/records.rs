//! Leases, enrollment tokens and agents.

use super::*;

/// One holder at a time, renewable by it, taken over once run out.
pub(super) fn leases<S: Store>(s: &S) {
    assert!(s.lease("work", "a", 1000, 500).unwrap());
    assert!(!s.lease("work", "b", 1200, 500).unwrap(), "held by a");
    assert!(s.lease("work", "a", 1400, 500).unwrap(), "renewed by a");
    assert!(
        !s.lease("work", "b", 1899, 500).unwrap(),
        "a's runs to 1900"
    );
    assert!(
        s.lease("other", "b", 1899, 500).unwrap(),
        "another lease is apart"
    );
    assert!(
        s.lease("work", "b", 1900, 500).unwrap(),
        "run out: b takes it"
    );
    assert!(!s.lease("work", "a", 2000, 500).unwrap(), "now b holds it");
}

/// Uses are counted atomically, expiry, exhaustion and revocation told apart.
pub(super) fn tokens<S: Store>(s: &S) {
    // Tokens: uses are counted atomically, expiry and exhaustion are told apart.
    s.put_token(&token("h1", 1000, 2)).unwrap();
    assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::Accepted(t) if t.uses == 1));
    assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::Accepted(t) if t.uses == 2));
    assert_eq!(s.use_token("h1", 10).unwrap(), TokenUse::UsedUp);
    assert_eq!(s.use_token("nope", 10).unwrap(), TokenUse::Unknown);
    s.put_token(&token("h2", 1000, 5)).unwrap();
    assert_eq!(s.use_token("h2", 1000).unwrap(), TokenUse::Expired);
    let mut revoked = token("h3", 1000, 5);
    revoked.revoked = true;
    s.put_token(&revoked).unwrap();
    assert_eq!(s.use_token("h3", 1).unwrap(), TokenUse::Revoked);
    // Revocation by ID: the record as it was is returned, and the token is refused.
    let before = s.revoke_token("t-h2").unwrap().unwrap();
    assert!(!before.revoked && before.hash == "h2");
    assert_eq!(s.use_token("h2", 1).unwrap(), TokenUse::Revoked);
    assert!(
        s.revoke_token("t-h2").unwrap().unwrap().revoked,
        "idempotent"
    );
    assert_eq!(s.revoke_token("t-none").unwrap(), None);
    assert_eq!(
        s.token("h1").unwrap().unwrap().uses,
        2,
        "a look counts no use"
    );
    assert_eq!(s.token("none").unwrap(), None);
}

/// An update is atomic; an SSH target is an agent with its SSH part, kept whole.
pub(super) fn agents<S: Store>(s: &S) {
    // Agents: an update is atomic, so a revocation racing other writers holds.
    s.put_agent(&agent("ag-1")).unwrap();
    assert_eq!(s.update_agent("ag-none", &mut |_| {}).unwrap(), None);
    std::thread::scope(|t| {
        for i in 0..4 {
            let s = &s;
            t.spawn(move || {
                for n in 0..50 {
                    s.update_agent("ag-1", &mut |a| {
                        a.last_seen_ms = i * 1000 + n;
                        if i == 0 && n == 25 {
                            a.revoked = true;
                        }
                    })
                    .unwrap();
                }
            });
        }
    });
    assert!(
        s.agent("ag-1").unwrap().unwrap().revoked,
        "no writer undid the revocation"
    );
    // A target scanned over SSH is an agent with its SSH part, kept whole.
    let mut target = agent("tg-1");
    target.ssh = Some(super::SshTarget {
        host: "10.0.0.7".into(),
        port: 2222,
        user: Some("scan".into()),
        host_key: None,
        host_key_pinned: false,
    });
    s.put_agent(&target).unwrap();
    let fp = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
    s.update_agent("tg-1", &mut |a| {
        if let Some(t) = a.ssh.as_mut() {
            t.host_key = Some(fp.into());
        }
    })
    .unwrap();
    target.ssh.as_mut().unwrap().host_key = Some(fp.into());
    assert_eq!(s.agent("tg-1").unwrap(), Some(target));
    assert_eq!(s.agent("ag-1").unwrap().unwrap().ssh, None);
}
