//! The audit log in PostgreSQL: one hash chain for every collector (appends take
//! turns under an advisory lock), read newest first with counters for its totals.

use super::*;

pub(super) fn append_audit(st: &PgStore, entry: &AuditRecord) -> Result<u64> {
    let entry = entry.clone();
    st.run(move |mut c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        // One chain across every collector: appends take turns.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(pg)?;
        let last: Option<AuditRecord> = tx
            .query_opt("SELECT doc FROM audit ORDER BY seq DESC LIMIT 1", &[])
            .await
            .map_err(pg)?
            .map(|r| doc(&r, "audit/last"))
            .transpose()?;
        let next = last.as_ref().map_or(1, |l| l.seq + 1);
        let e = audit_chain::seal(&entry, next, last.as_ref());
        tx.execute(
            "INSERT INTO audit (seq, action, actor, doc) VALUES ($1, $2, $3, $4)",
            &[&(next as i64), &k(&e.action), &k(&e.actor), &encode(&e)?],
        )
        .await
        .map_err(pg)?;
        let mut d = Deltas::default();
        d.add(ix::audit_keys(&e).1, 1);
        apply_deltas(&tx, d).await?;
        tx.commit().await.map_err(pg)?;
        Ok(next)
    })
}

pub(super) fn audit_list(
    st: &PgStore,
    filter: &AuditFilter,
    before: Option<u64>,
    offset: usize,
    limit: usize,
) -> Result<AuditList> {
    let mut w = Where::default();
    if let Some(a) = &filter.action {
        w.add("action = ?", a.as_bytes().to_vec());
    }
    if let Some(a) = &filter.actor {
        w.add("actor = ?", a.as_bytes().to_vec());
    }
    let total_sql = format!("SELECT count(*) FROM audit{}", w.sql());
    let counter = match (&filter.action, &filter.actor) {
        (Some(_), Some(_)) => None,
        (Some(a), None) => Some(ix::audit_count_action(a)),
        (None, Some(a)) => Some(ix::audit_count_actor(a)),
        (None, None) => Some(ix::audit_count_all()),
    };
    if let Some(b) = before {
        w.add("seq < ?", b.min(i64::MAX as u64) as i64);
    }
    // Rows skipped by an offset are found from the indexes alone; only the page's
    // entries are read.
    let sql = format!(
        "SELECT doc FROM audit WHERE seq IN (SELECT seq FROM audit{} ORDER BY seq DESC
         LIMIT {} OFFSET {}) ORDER BY seq DESC",
        w.sql(),
        limit.saturating_add(1).min(i64::MAX as usize),
        offset.min(i64::MAX as usize)
    );
    let filter = filter.clone();
    st.run(move |c| async move {
        let rows = c.query(&sql, &w.refs()).await.map_err(pg)?;
        let mut entries: Vec<AuditRecord> = docs(&rows, "audit")?;
        let more = entries.len() > limit;
        entries.truncate(limit);
        let total = match counter {
            Some(k) => count_of(&c, vec![k]).await? as usize,
            None => {
                let mut w = Where::default();
                if let (Some(a), Some(b)) = (&filter.action, &filter.actor) {
                    w.add("action = ?", a.as_bytes().to_vec());
                    w.add("actor = ?", b.as_bytes().to_vec());
                }
                let n: i64 = c.query_one(&total_sql, &w.refs()).await.map_err(pg)?.get(0);
                n as usize
            }
        };
        let next = if more {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditList {
            entries,
            total,
            next,
        })
    })
}
