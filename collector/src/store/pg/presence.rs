//! Which collector holds each agent's stream (`schema_4.sql`), so that every
//! collector sharing the database answers "is it connected?" alike. A collector
//! writes a row when it accepts a stream and removes it when the stream ends; its
//! heartbeat says it is alive, and rows of a collector whose heartbeat stopped (it was
//! killed) count for nothing, and are removed after [`FORGET_MS`] by the lease
//! holder's upkeep (`Store::maintain`).

use super::*;

/// Rows of a collector silent this long are removed.
const FORGET_MS: i64 = 10 * 60_000;

pub(super) fn stream_opened(
    st: &PgStore,
    agent_id: &str,
    instance: &str,
    now_ms: i64,
) -> Result<()> {
    let (a, i) = (agent_id.to_string(), instance.to_string());
    st.run(move |c| async move {
        c.execute(
            "INSERT INTO streams (agent_id, instance, since_ms) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id) DO UPDATE SET instance = EXCLUDED.instance,
             since_ms = EXCLUDED.since_ms",
            &[&k(&a), &k(&i), &now_ms],
        )
        .await
        .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn stream_closed(
    st: &PgStore,
    agent_id: &str,
    instance: &str,
    since_ms: i64,
) -> Result<()> {
    let (a, i) = (agent_id.to_string(), instance.to_string());
    st.run(move |c| async move {
        // Only the row this stream wrote: the agent may already have a newer stream,
        // here or on another collector.
        c.execute(
            "DELETE FROM streams WHERE agent_id = $1 AND instance = $2 AND since_ms = $3",
            &[&k(&a), &k(&i), &since_ms],
        )
        .await
        .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn heartbeat(
    st: &PgStore,
    instance: &str,
    now_ms: i64,
    alive_since_ms: i64,
) -> Result<usize> {
    let i = instance.to_string();
    st.run(move |c| async move {
        // The count sees the table as it was before this statement: the others
        // alive, plus this collector.
        let others: i64 = c
            .query_one(
                "WITH beat AS (INSERT INTO instances (instance, seen_ms) VALUES ($1, $2)
                 ON CONFLICT (instance) DO UPDATE SET seen_ms = EXCLUDED.seen_ms)
                 SELECT count(*) FROM instances WHERE instance <> $1 AND seen_ms >= $3",
                &[&k(&i), &now_ms, &alive_since_ms],
            )
            .await
            .map_err(pg)?
            .get(0);
        Ok(usize::try_from(others).unwrap_or(0) + 1)
    })
}

/// Removes the collectors silent for [`FORGET_MS`] and their streams: the lease
/// holder's upkeep (their rows already count for nothing).
pub(super) fn forget_gone(st: &PgStore, now_ms: i64) -> Result<u64> {
    let forget = now_ms.saturating_sub(FORGET_MS);
    st.run(move |c| async move {
        c.execute(
            "WITH gone AS (DELETE FROM instances WHERE seen_ms < $1 RETURNING instance)
             DELETE FROM streams WHERE instance IN (SELECT instance FROM gone)",
            &[&forget],
        )
        .await
        .map_err(pg)
    })
}

pub(super) fn streams_elsewhere(
    st: &PgStore,
    ids: &[String],
    instance: &str,
    alive_since_ms: i64,
) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let keys: Vec<Vec<u8>> = ids.iter().map(|i| i.as_bytes().to_vec()).collect();
    let me = instance.to_string();
    st.run(move |c| async move {
        let rows = c
            .query(
                "SELECT s.agent_id FROM streams s JOIN instances i ON i.instance = s.instance
                 WHERE s.agent_id = ANY($1) AND s.instance <> $2 AND i.seen_ms >= $3",
                &[&keys, &k(&me), &alive_since_ms],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| String::from_utf8_lossy(r.get::<_, &[u8]>(0)).into_owned())
            .collect())
    })
}
