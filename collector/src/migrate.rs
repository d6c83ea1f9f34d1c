//! `rampart-collector migrate`: copies one store into another (the built-in store into
//! PostgreSQL), then checks that both hold the same. Safe to run again: records are
//! written by key (a second run rewrites them alike), results only for scans that
//! have none in the target yet, and the audit log only past the entries both already
//! share, which must be the same chain.
//!
//! Not copied: console sessions (people sign in again) and the store's own
//! bookkeeping (the sled index version, how far retention got, leases). The CA stays
//! in the data directory: every collector on the new store is given a copy of it.

use std::io::Write;

use crate::store::{
    audit_chain, AuditFilter, AuditRecord, ScanCursor, ScanFilter, Store, StoreError,
};

/// Why a migration or its check stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audit chain is broken: {0}")]
    Chain(#[from] audit_chain::VerifyError),
    /// The target holds an audit log that is not the start of the source's.
    #[error("the target's audit log is another log: {0}")]
    AnotherLog(String),
    /// The store gave an appended audit entry another sequence number.
    #[error("audit entry {wanted} was appended as {got}")]
    Renumbered { wanted: u64, got: u64 },
    /// After the copy, the two stores do not hold the same.
    #[error("the stores differ: {0}")]
    Differ(String),
    /// Writing the progress lines failed.
    #[error("cannot write the progress: {0}")]
    Output(#[from] std::io::Error),
}

type Result<T> = std::result::Result<T, MigrateError>;

/// Meta entries that belong to one store and are not moved.
fn own_bookkeeping(key: &str) -> bool {
    key == crate::store::sled_index::INDEX_VERSION_KEY
        || key == "results_pruned_to"
        || key.starts_with("lease/")
}

/// What a migration copied.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Copied {
    pub agents: usize,
    pub tokens: usize,
    pub users: usize,
    pub scans: usize,
    pub scans_with_results: usize,
    pub audit_entries: u64,
    pub deliveries: usize,
    pub attempts: usize,
    pub meta: usize,
}

/// Scans read at a time.
const PAGE: usize = 500;

/// The whole audit log, oldest first, read by pages.
fn audit_log(s: &dyn Store) -> Result<Vec<AuditRecord>> {
    let mut all = Vec::new();
    let mut before = None;
    loop {
        let page = s.audit_list(&AuditFilter::default(), before, 0, 1000)?;
        all.extend(page.entries);
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    all.reverse();
    Ok(all)
}

/// Copies `from` into `to`, saying what it does on `out`, then checks both.
pub fn migrate(from: &dyn Store, to: &dyn Store, out: &mut dyn Write) -> Result<Copied> {
    let mut n = Copied::default();
    // The audit log: the entries both have must be one chain; the rest is appended,
    // and the store seals each exactly as the source did.
    let source = audit_log(from)?;
    let target = audit_log(to)?;
    if target.len() > source.len() {
        return Err(MigrateError::AnotherLog(format!(
            "it has {} entries, the source's {}",
            target.len(),
            source.len()
        )));
    }
    if let Some((s, t)) = source.iter().zip(&target).find(|(s, t)| s.hash != t.hash) {
        return Err(MigrateError::AnotherLog(format!(
            "its entry {} differs from the source's ({} vs {})",
            t.seq, t.hash, s.hash
        )));
    }
    // Appended last (below), once everything it speaks of is there.
    for a in from.agents()? {
        to.put_agent(&a)?;
        n.agents += 1;
    }
    for t in from.tokens()? {
        to.put_token(&t)?;
        n.tokens += 1;
    }
    for u in from.users()? {
        to.put_user(&u)?;
        n.users += 1;
    }
    for (k, v) in from.meta_entries()? {
        if !own_bookkeeping(&k) {
            to.put_meta(&k, &v)?;
            n.meta += 1;
        }
    }
    writeln!(
        out,
        "copied {} agents, {} enrollment tokens, {} users, {} settings and keys",
        n.agents, n.tokens, n.users, n.meta
    )?;

    // Scans oldest first, each with its results.
    let mut cursor = ScanCursor {
        oldest_first: true,
        ..Default::default()
    };
    loop {
        let (page, next) = from.scan_page(&ScanFilter::default(), &cursor, PAGE)?;
        for s in &page {
            to.put_scan(s)?;
            n.scans += 1;
            if to.results(&s.id)?.is_empty() {
                let results = from.results(&s.id)?;
                if !results.is_empty() {
                    to.put_results(&s.id, &results, crate::clock::system_ms())?;
                    n.scans_with_results += 1;
                }
            }
        }
        if n.scans % 10_000 < PAGE && !page.is_empty() {
            writeln!(out, "copied {} scans", n.scans)?;
        }
        match next {
            Some(id) => cursor = cursor.following(id),
            None => break,
        }
    }

    for d in from.deliveries()? {
        to.put_delivery(&d)?;
        n.deliveries += 1;
    }
    let (attempts, _) = from.attempts(0, usize::MAX)?;
    for a in attempts.iter().rev() {
        to.append_attempt(a)?;
        n.attempts += 1;
    }

    for e in &source[target.len()..] {
        let seq = to.append_audit(e)?;
        if seq != e.seq {
            return Err(MigrateError::Renumbered {
                wanted: e.seq,
                got: seq,
            });
        }
        n.audit_entries += 1;
    }
    // The copied months get their partitions (PostgreSQL).
    to.maintain(chrono::Utc::now().timestamp_millis())?;
    to.sync()?;
    writeln!(
        out,
        "copied {} scans ({} with results), {} audit entries, {} webhook deliveries, {} attempts",
        n.scans, n.scans_with_results, n.audit_entries, n.deliveries, n.attempts
    )?;
    verify(from, to, out)?;
    Ok(n)
}

/// Checks that `to` holds what `from` does: the counts of every kind of record, and
/// the same intact audit chain.
pub fn verify(from: &dyn Store, to: &dyn Store, out: &mut dyn Write) -> Result<()> {
    let count = |s: &dyn Store| -> Result<[usize; 5]> {
        Ok([
            s.agents()?.len(),
            s.tokens()?.len(),
            s.users()?.len(),
            s.scan_total(&ScanFilter::default())?
                .map_or_else(|| s.scans(&ScanFilter::default(), 0, 0).map(|x| x.1), Ok)?,
            s.deliveries()?.len(),
        ])
    };
    let (a, b) = (count(from)?, count(to)?);
    if a != b {
        return Err(MigrateError::Differ(format!(
            "agents, tokens, users, scans, deliveries are {a:?} in the source and {b:?} in the target"
        )));
    }
    let (ca, cb) = (
        audit_chain::verify_store(from)?,
        audit_chain::verify_store(to)?,
    );
    let last = |s: &dyn Store| {
        s.audit(0, 1)
            .map(|(e, _)| e.first().map(|e| e.hash.clone()))
    };
    if ca != cb || last(from)? != last(to)? {
        return Err(MigrateError::Differ(format!(
            "the audit logs: {ca} entries in the source, {cb} in the target"
        )));
    }
    writeln!(
        out,
        "verified: {} agents, {} tokens, {} users, {} scans, {} deliveries, and an intact audit chain of {ca} entries on both sides",
        a[0], a[1], a[2], a[3], a[4]
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rampart_report::Status;

    use super::*;
    use crate::store::conformance::{seed, Truth};
    use crate::store::sled_store::SledStore;

    #[test]
    fn a_store_moves_whole_and_a_second_run_changes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let from = SledStore::open(&d.path().join("from")).unwrap();
        seed(&from, 700, &mut Truth::default(), 5);
        for i in 0..30 {
            from.append_audit(&AuditRecord {
                seq: 0,
                at_ms: i,
                actor: "ann".into(),
                action: "test".into(),
                target: None,
                detail: format!("{i}"),
                prev_hash: String::new(),
                hash: String::new(),
            })
            .unwrap();
        }
        let r = crate::store::ResultRecord {
            rule_id: "1.1".into(),
            status: Status::Pass,
            evidence: vec!["x".into()],
        };
        let some = from.scans(&ScanFilter::default(), 0, 3).unwrap().0;
        for s in &some {
            from.put_results(&s.id, std::slice::from_ref(&r), crate::clock::system_ms())
                .unwrap();
        }
        from.put_meta("settings", b"{}").unwrap();
        let to = SledStore::open(&d.path().join("to")).unwrap();
        let mut out = Vec::new();
        let n = migrate(&from, &to, &mut out).unwrap();
        assert_eq!(n.scans, 700);
        assert_eq!(n.scans_with_results, 3);
        assert_eq!(n.audit_entries, from.audit(0, 0).unwrap().1 as u64);
        assert!(n.audit_entries >= 30);
        assert_eq!(to.results(&some[0].id).unwrap(), vec![r.clone()]);
        assert_eq!(
            to.get_meta("settings").unwrap().as_deref(),
            Some(&b"{}"[..])
        );
        let text = String::from_utf8(out).unwrap();
        let agents = from.agents().unwrap().len();
        assert!(agents > 0);
        assert!(
            text.contains(&format!("verified: {agents} agents")),
            "{text}"
        );
        // Again: nothing new, nothing doubled.
        let again = migrate(&from, &to, &mut Vec::new()).unwrap();
        assert_eq!((again.audit_entries, again.scans_with_results), (0, 0));
        assert_eq!(to.results(&some[0].id).unwrap().len(), 1);
        // A target with another log is refused, naming the entry.
        let other = SledStore::open(&d.path().join("other")).unwrap();
        other
            .append_audit(&AuditRecord {
                seq: 0,
                at_ms: 1,
                actor: "eve".into(),
                action: "test".into(),
                target: None,
                detail: String::new(),
                prev_hash: String::new(),
                hash: String::new(),
            })
            .unwrap();
        let e = migrate(&from, &other, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, MigrateError::AnotherLog(_)), "{e:?}");
        assert!(e.to_string().contains("its entry 1 differs"), "{e}");
    }
}
