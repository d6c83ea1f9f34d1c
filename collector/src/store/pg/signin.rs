//! Failed console sign-ins in the database (`schema_5.sql`), so that every collector
//! sharing it bounds guessing alike. Rows older than [`KEPT_MS`] are removed by the
//! lease holder's upkeep (`Store::maintain`); no window the collector uses is longer.

use super::*;

/// Failures older than this are forgotten.
pub(super) const KEPT_MS: i64 = 3_600_000;
/// Most failures read back at once (the largest bound is far below).
const READ_AT_MOST: i64 = 1_000;

pub(super) fn note(st: &PgStore, keys: &[String], at_ms: i64) -> Result<()> {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    st.run(move |c| async move {
        c.execute(
            "INSERT INTO signin_failures (key, at_ms) SELECT unnest($1::bytea[]), $2",
            &[&keys, &at_ms],
        )
        .await
        .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn since(st: &PgStore, keys: &[String], since_ms: i64) -> Result<Vec<(String, i64)>> {
    let keys: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    st.run(move |c| async move {
        let rows = c
            .query(
                "SELECT key, at_ms FROM signin_failures WHERE key = ANY($1) AND at_ms >= $2
                 ORDER BY at_ms DESC LIMIT $3",
                &[&keys, &since_ms, &READ_AT_MOST],
            )
            .await
            .map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| {
                let key: Vec<u8> = r.get(0);
                (String::from_utf8_lossy(&key).into_owned(), r.get(1))
            })
            .collect())
    })
}

pub(super) fn clear(st: &PgStore, key: &str) -> Result<()> {
    let key = key.to_string();
    st.run(move |c| async move {
        c.execute("DELETE FROM signin_failures WHERE key = $1", &[&k(&key)])
            .await
            .map_err(pg)?;
        Ok(())
    })
}

pub(super) fn forget_old(st: &PgStore, now_ms: i64) -> Result<u64> {
    let before = now_ms.saturating_sub(KEPT_MS);
    st.run(move |c| async move {
        c.execute("DELETE FROM signin_failures WHERE at_ms < $1", &[&before])
            .await
            .map_err(pg)
    })
}
