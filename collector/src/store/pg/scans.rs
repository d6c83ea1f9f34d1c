//! Scans and their results in PostgreSQL: a scan's row, its counters and its agent's
//! newest scans written in one transaction; lists, totals and the overview's figures;
//! result chunks and their retention.

use super::*;

/// FNV-1a of an agent ID: which of 2^32 locks guards its newest-scan rows.
fn agent_lock(agent: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in agent.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// The statements that set an agent's newest scan and newest completed scan (`$1`)
/// from its scans as the transaction sees them (the caller holds the agent's lock).
fn refresh_sql() -> &'static [String; 2] {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        [
            ("latest_scans", "", "blocking", "blocking"),
            (
                "latest_completed",
                " AND status = 2",
                "coalesce(score, 0)",
                "score",
            ),
        ]
        .map(|(table, cond, value, column)| {
            format!(
                "WITH n AS (SELECT id, {value} AS v FROM scans WHERE agent_id = $1{cond}
                            ORDER BY id DESC LIMIT 1),
                      gone AS (DELETE FROM {table} WHERE agent_id = $1
                               AND NOT EXISTS (SELECT 1 FROM n))
                 INSERT INTO {table} (agent_id, scan_id, {column}) SELECT $1, id, v FROM n
                 ON CONFLICT (agent_id) DO UPDATE SET scan_id = EXCLUDED.scan_id,
                 {column} = EXCLUDED.{column}"
            )
        })
    })
}

pub(super) fn put_scan(st: &PgStore, s: &ScanRecord) -> Result<()> {
    if s.id.is_empty() {
        return Err(backend("a scan needs an ID"));
    }
    let s = s.clone();
    st.run(move |mut c| async move {
        let tx = c.transaction().await.map_err(pg)?;
        let select = tx
            .prepare_cached("SELECT doc FROM scans WHERE id = $1 FOR UPDATE")
            .await
            .map_err(pg)?;
        let old: Option<ScanRecord> = tx
            .query_opt(&select, &[&k(&s.id)])
            .await
            .map_err(pg)?
            .map(|r| doc(&r, &s.id))
            .transpose()?;
        let upsert = tx
            .prepare_cached(
                "INSERT INTO scans (id, agent_id, project, status, blocking, score_key,
                 score, created_at_ms, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET agent_id = EXCLUDED.agent_id,
                 project = EXCLUDED.project, status = EXCLUDED.status,
                 blocking = EXCLUDED.blocking, score_key = EXCLUDED.score_key,
                 score = EXCLUDED.score, created_at_ms = EXCLUDED.created_at_ms,
                 doc = EXCLUDED.doc",
            )
            .await
            .map_err(pg)?;
        let doc_bytes = encode(&s)?;
        let mut d = Deltas::default();
        if let Some(o) = &old {
            d.add_scan(o, -1);
        }
        d.add_scan(&s, 1);
        // The newest scans of the agent, and of the one it had if it moved, under
        // their locks (in one order, so that two writers never wait on each other).
        let mut agents = vec![s.agent_id.clone()];
        if let Some(o) = old.as_ref().filter(|o| o.agent_id != s.agent_id) {
            agents.push(o.agent_id.clone());
        }
        agents.sort_by_key(|a| agent_lock(a));
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
            .await
            .map_err(pg)?;
        let [latest, completed] = refresh_sql();
        let latest = tx.prepare_cached(latest).await.map_err(pg)?;
        let completed = tx.prepare_cached(completed).await.map_err(pg)?;
        let params: [&(dyn ToSql + Sync); 9] = [
            &k(&s.id),
            &k(&s.agent_id),
            &s.project.as_deref().map(k),
            &status_code(s.status),
            &s.is_blocking(),
            &order_key(&s),
            &s.score,
            &s.created_at_ms,
            &doc_bytes,
        ];
        let lock_keys: Vec<i32> = agents.iter().map(|a| agent_lock(a)).collect();
        let lock_params: Vec<[&(dyn ToSql + Sync); 2]> = lock_keys
            .iter()
            .map(|key| [&AGENT_LOCKS as &(dyn ToSql + Sync), key])
            .collect();
        let agent_keys: Vec<&[u8]> = agents.iter().map(|a| k(a)).collect();
        let agent_params: Vec<[&(dyn ToSql + Sync); 1]> = agent_keys
            .iter()
            .map(|a| [a as &(dyn ToSql + Sync)])
            .collect();
        let mut steps = vec![step(&tx, &upsert, &params)];
        for p in &lock_params {
            steps.push(step(&tx, &lock, p));
        }
        for p in &agent_params {
            steps.push(step(&tx, &latest, p));
            steps.push(step(&tx, &completed, p));
        }
        // Sent at once and run in order by the server (pipelined: one round trip for
        // all): the counters, the row, the agents' locks, their newest rows.
        let (deltas, steps) = tokio::join!(apply_deltas(&tx, d), join_in_order(steps));
        deltas?;
        steps?;
        tx.commit().await.map_err(pg)?;
        Ok(())
    })
}

/// One statement of a pipeline, its rows' count dropped.
async fn step(
    tx: &deadpool_postgres::Transaction<'_>,
    st: &tokio_postgres::Statement,
    params: &[&(dyn ToSql + Sync)],
) -> Result<()> {
    tx.execute(st, params).await.map(|_| ()).map_err(pg)
}

/// Polls `steps` together, each first in the order given (so that statements on one
/// connection are sent, and run, in that order), and returns the first error.
async fn join_in_order<F: std::future::Future<Output = Result<()>>>(steps: Vec<F>) -> Result<()> {
    let mut steps: Vec<std::pin::Pin<Box<F>>> = steps.into_iter().map(Box::pin).collect();
    let mut done = vec![false; steps.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in steps.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(())) => done[i] = true,
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(Ok(()))
        }
    })
    .await
}

pub(super) fn scan_list(
    st: &PgStore,
    filter: &ScanFilter,
    cursor: &ScanCursor,
    offset: usize,
    limit: usize,
) -> Result<ScanList> {
    let (scans, next) = page(st, filter, cursor, offset, limit)?;
    let total = match st.scan_total(filter)? {
        Some(n) => n,
        None => {
            let w = Where::scans(filter);
            let sql = format!("SELECT count(*) FROM scans{}", w.sql());
            st.run(move |c| async move {
                let n: i64 = c.query_one(&sql, &w.refs()).await.map_err(pg)?.get(0);
                Ok(n as usize)
            })?
        }
    };
    Ok(ScanList { scans, total, next })
}

pub(super) fn scans_by_score(
    st: &PgStore,
    low_first: bool,
    past: Option<&ScanRecord>,
    limit: usize,
) -> Result<Vec<ScanRecord>> {
    let past = past.map(|p| (order_key(p), p.id.clone()));
    let limit = limit.min(i64::MAX as usize) as i64;
    st.run(move |c| async move {
        let (cmp, dir) = if low_first {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let rows = match &past {
            Some((key, id)) => {
                let sql = format!(
                    "SELECT doc FROM scans WHERE status = 2 AND (score_key, id) {cmp} ($1, $2)
                     ORDER BY score_key {dir}, id {dir} LIMIT $3"
                );
                c.query(&sql, &[key, &k(id), &limit]).await
            }
            None => {
                let sql = format!(
                    "SELECT doc FROM scans WHERE status = 2
                     ORDER BY score_key {dir}, id {dir} LIMIT $1"
                );
                c.query(&sql, &[&limit]).await
            }
        }
        .map_err(pg)?;
        docs(&rows, "scans")
    })
}

/// The overview's figures in one statement (one round trip): counters for the
/// completed scans and those meeting the score, the newest-scan tables for the rest.
pub(super) fn fleet(st: &PgStore, min_score: f64) -> Result<Fleet> {
    st.run(move |c| async move {
        let sql = c
            .prepare_cached(
                "SELECT (SELECT coalesce(sum(n), 0)::int8 FROM counters WHERE key = $1),
                        (SELECT coalesce(sum(n), 0)::int8 FROM counters
                          WHERE key >= $2 AND key < $3),
                        (SELECT count(*) FROM latest_completed),
                        (SELECT coalesce(sum(score), 0)::float8 FROM latest_completed),
                        (SELECT count(*) FROM latest_scans WHERE blocking)",
            )
            .await
            .map_err(pg)?;
        let completed = ix::counter(b'*', "", ix::status_byte(ScanStatus::Completed));
        let r = c
            .query_one(
                &sql,
                &[
                    &completed,
                    &ix::by_score(min_score),
                    &ix::prefix_end(&ix::prefix(b'h')),
                ],
            )
            .await
            .map_err(pg)?;
        let count = |i: usize| r.get::<_, i64>(i).max(0) as usize;
        Ok(Fleet {
            completed_scans: count(0),
            completed_meeting: count(1),
            vms_scanned: count(2),
            latest_score_sum: r.get(3),
            vms_blocked: count(4),
        })
    })
}

pub(super) fn daily_scores(st: &PgStore, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
    let end = from_day.saturating_add(days);
    st.run(move |c| async move {
        let rows = c
            .query(
                "SELECT key, n FROM counters WHERE key >= $1 AND key < $2 ORDER BY key",
                &[&ix::day_key(from_day, 0), &ix::day_key(end, 0)],
            )
            .await
            .map_err(pg)?;
        Ok(ix::day_scores(rows.iter().map(|r| {
            let n: i64 = r.get(1);
            (r.get::<_, Vec<u8>>(0), n.max(0) as u64)
        })))
    })
}

pub(super) fn results(st: &PgStore, scan_id: &str) -> Result<Vec<ResultRecord>> {
    let id = scan_id.to_string();
    let chunks: Vec<(i64, Vec<u8>)> = st.run(move |c| async move {
        Ok(c.query(
            "SELECT seq, chunk FROM result_chunks WHERE scan_id = $1 ORDER BY seq",
            &[&k(&id)],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    })?;
    // A later write of a rule replaces an earlier one.
    let mut by_rule = std::collections::BTreeMap::new();
    for (seq, chunk) in chunks {
        for r in decode_chunk(format!("result_chunks/{seq}").as_bytes(), &chunk)? {
            by_rule.insert(r.rule_id.clone(), r);
        }
    }
    Ok(by_rule.into_values().collect())
}

pub(super) fn prune_results(st: &PgStore, before_ms: i64) -> Result<usize> {
    st.run(move |mut c| async move {
        // Whole months first, then what is left of the month the cut falls in (and of
        // months that still had a scan running), row by row.
        let months = super::partitions::prune_months(&mut c, before_ms).await?;
        let n: i64 = c
            .query_one(
                "WITH gone AS (
                    DELETE FROM result_chunks c USING scans s
                    WHERE c.scan_id = s.id AND s.created_at_ms < $1
                    AND s.status IN (2, 3, 4)
                    RETURNING c.scan_id)
                 SELECT count(DISTINCT scan_id) FROM gone",
                &[&before_ms],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(months + n as usize)
    })
}

/// A page of matching scans in the cursor's range and order, and the cursor of the
/// next page.
pub(super) fn page(
    st: &PgStore,
    filter: &ScanFilter,
    cursor: &ScanCursor,
    offset: usize,
    limit: usize,
) -> Result<(Vec<ScanRecord>, Option<String>)> {
    let mut w = Where::scans(filter);
    if let Some(b) = &cursor.before {
        w.add("id < ?", b.as_bytes().to_vec());
    }
    if let Some(a) = &cursor.after {
        w.add("id > ?", a.as_bytes().to_vec());
    }
    let dir = if cursor.oldest_first { "ASC" } else { "DESC" };
    let (limit_sql, offset_sql) = (
        limit.saturating_add(1).min(i64::MAX as usize),
        offset.min(i64::MAX as usize),
    );
    let sql = if offset == 0 {
        format!(
            "SELECT doc FROM scans{} ORDER BY id {dir} LIMIT {limit_sql}",
            w.sql()
        )
    } else {
        // The rows skipped are found from the indexes alone; only the page's records
        // are read.
        format!(
            "SELECT doc FROM scans WHERE id IN (SELECT id FROM scans{} ORDER BY id {dir}
             LIMIT {limit_sql} OFFSET {offset_sql}) ORDER BY id {dir}",
            w.sql()
        )
    };
    st.run(move |c| async move {
        let rows = c.query(&sql, &w.refs()).await.map_err(pg)?;
        let mut page: Vec<ScanRecord> = docs(&rows, "scans")?;
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more {
            page.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok((page, next))
    })
}
