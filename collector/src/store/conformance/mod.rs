//! The behaviour every [`Store`] backend must show. `run` takes a function that
//! opens the *same* store again, to check that synced data survives a reopen.

use super::*;
use rampart_report::Profile;
mod audit;
mod deliveries;
mod queries;
mod records;
mod retention;
mod scans;
mod seed;

pub use queries::{check, run_queries};
pub use retention::run_retention;
pub use seed::{seed, Truth};

fn scan(id: &str, agent: &str, project: Option<&str>, status: ScanStatus) -> ScanRecord {
    let mut s = ScanRecord::pending(
        id.into(),
        agent,
        project.map(String::from),
        "manual",
        Profile::default(),
        1,
    );
    s.status = status;
    s
}

fn token(hash: &str, expires: i64, max_uses: u32) -> TokenRecord {
    TokenRecord {
        id: format!("t-{hash}"),
        hash: hash.into(),
        project: Some("web".into()),
        created_by: "admin".into(),
        created_at_ms: 0,
        expires_at_ms: expires,
        max_uses,
        uses: 0,
        revoked: false,
    }
}

fn agent(id: &str) -> AgentRecord {
    AgentRecord {
        id: id.into(),
        hostname: "h".into(),
        ip_addresses: vec![],
        provider: String::new(),
        instance_id: String::new(),
        os: String::new(),
        project: None,
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
    }
}

/// Runs the suite; `open` must return the same store each time (reopened).
pub fn run<S: Store>(open: &dyn Fn() -> S) {
    {
        let s = open();
        records::leases(&s);
        records::tokens(&s);
        records::agents(&s);
        scans::scans_and_results(&s);
        audit::users_sessions_and_audit(&s);
        deliveries::deliveries(&s);

        s.put_meta("k", b"v").unwrap();
        s.sync().unwrap();
    }
    // Everything synced is there after a reopen.
    let s = open();
    assert_eq!(s.get_meta("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.scans(&ScanFilter::default(), 0, 100).unwrap().1, 4);
    assert_eq!(s.results("s000").unwrap().len(), 3);
    assert!(matches!(s.use_token("h1", 10).unwrap(), TokenUse::UsedUp));
    assert_eq!(s.pending_deliveries().unwrap().len(), 1);
    // Every delivery whatever its state, and every meta entry, for a move.
    let all: Vec<String> = s.deliveries().unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(all, ["wh-1", "wh-2", "wh-3"]);
    let meta = s.meta_entries().unwrap();
    assert!(meta.iter().any(|(k, v)| k == "k" && v == b"v"), "{meta:?}");
    assert!(meta.windows(2).all(|w| w[0].0 < w[1].0), "by key");
    assert_eq!(s.attempts(0, 10).unwrap().1, 3);
    // After a reopen the chain continues from the last entry.
    assert_eq!(
        s.append_audit(&AuditRecord {
            seq: 0,
            at_ms: 2,
            actor: "x".into(),
            action: "three".into(),
            target: Some("t".into()),
            detail: "d".into(),
            prev_hash: String::new(),
            hash: String::new(),
        })
        .unwrap(),
        43
    );
    let (log, total) = s.audit(0, 2).unwrap();
    assert_eq!(
        (total, log[0].seq, log[0].action.as_str()),
        (43, 43, "three")
    );
    assert_eq!(log[0].prev_hash, log[1].hash);
    assert_eq!(audit_chain::verify_store(&s).unwrap(), 43);
}
