//! Pieces of SQL shared by the backend's queries: a WHERE clause built from what is
//! set, and the counters kept in the writing transaction.

use super::*;

/// Adds counter changes in one statement, in key order (so that concurrent writers
/// lock counter rows in the same order).
pub(super) async fn apply_deltas(tx: &deadpool_postgres::Transaction<'_>, d: Deltas) -> Result<()> {
    let (keys, ns): (Vec<Vec<u8>>, Vec<i64>) = d.0.into_iter().filter(|(_, n)| *n != 0).unzip();
    if keys.is_empty() {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO counters (key, n) SELECT * FROM unnest($1::bytea[], $2::int8[])
             ON CONFLICT (key) DO UPDATE SET n = counters.n + EXCLUDED.n",
        )
        .await
        .map_err(pg)?;
    tx.execute(&st, &[&keys, &ns]).await.map_err(pg)?;
    Ok(())
}

pub(super) async fn count_of(c: &Object, keys: Vec<Vec<u8>>) -> Result<u64> {
    let st = c
        .prepare_cached("SELECT coalesce(sum(n), 0)::int8 FROM counters WHERE key = ANY($1)")
        .await
        .map_err(pg)?;
    let n: i64 = c.query_one(&st, &[&keys]).await.map_err(pg)?.get(0);
    Ok(n.max(0) as u64)
}

/// A query's WHERE clause and its parameters, built from what is set.
#[derive(Default)]
pub(super) struct Where {
    parts: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    pub(super) fn add(&mut self, cond: &str, v: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(v));
        self.parts
            .push(cond.replace('?', &format!("${}", self.params.len())));
    }
    pub(super) fn flag(&mut self, cond: &str) {
        self.parts.push(cond.to_string());
    }
    pub(super) fn scans(f: &ScanFilter) -> Where {
        let mut w = Where::default();
        if let Some(st) = f.status {
            w.add("status = ?", status_code(st));
        }
        if let Some(p) = &f.project {
            w.add("project = ?", p.as_bytes().to_vec());
        }
        if let Some(a) = &f.agent_id {
            w.add("agent_id = ?", a.as_bytes().to_vec());
        }
        if f.blocked {
            w.flag("blocking");
        }
        w
    }
    pub(super) fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
