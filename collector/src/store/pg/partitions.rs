//! Scans and their results by month (`schema_3.sql`). A scan's ID begins with its
//! creation time (`sc-<13-digit ms>-…`), so a month of scans is a range of IDs, and
//! both `scans` and `result_chunks` are range-partitioned on it: `scans_p202612`,
//! `result_chunks_p202612`. Rows of a month without a partition (a store moved from
//! sled, or one upgraded from schema 2) wait in the DEFAULT partitions until
//! [`maintain`] (the lease holder's upkeep, in the background) moves them into one;
//! [`ahead`] (at every start) and [`maintain`] keep the current and the next month
//! ready, so that new scans never land in the default. Retention empties a whole
//! month of results at once ([`prune_months`]): the space comes back at once, with no
//! row-by-row delete and no vacuum debt.

use chrono::{Datelike, TimeZone, Utc};

use super::*;

/// The advisory lock under which partitions are made and emptied.
const PARTITION_LOCK: i64 = 0x5241_4d50_0003;

/// The partitioned tables and the column each is partitioned on.
const TABLES: [(&str, &str); 2] = [("scans", "id"), ("result_chunks", "scan_id")];

/// A calendar month (UTC) as a range of milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Month {
    /// `YYYYMM`, the partitions' suffix.
    pub name: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// Scan IDs hold 13 digits of milliseconds: up to the year 2286.
const LAST_MS: i64 = 9_999_999_999_999;

impl Month {
    /// The month holding `ms`, if a scan ID can name it.
    pub fn of(ms: i64) -> Option<Month> {
        if !(0..=LAST_MS).contains(&ms) {
            return None;
        }
        let t = Utc.timestamp_millis_opt(ms).single()?;
        let start = |y: i32, m: u32| {
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()
                .map(|d| d.timestamp_millis())
        };
        let (y, m) = (t.year(), t.month());
        let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
        Some(Month {
            name: format!("{y:04}{m:02}"),
            from_ms: start(y, m)?,
            to_ms: start(ny, nm)?.min(LAST_MS + 1),
        })
    }

    /// The month a scan ID made by the collector belongs to.
    pub fn of_scan_id(id: &[u8]) -> Option<Month> {
        let digits = id.strip_prefix(b"sc-")?.get(..13)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Month::of(std::str::from_utf8(digits).ok()?.parse().ok()?)
    }

    /// The month after this one.
    pub fn next(&self) -> Option<Month> {
        Month::of(self.to_ms)
    }

    /// From a partition's name (`scans_p202612`).
    fn of_partition(table: &str, name: &str) -> Option<Month> {
        let ym = name.strip_prefix(table)?.strip_prefix("_p")?;
        if ym.len() != 6 || !ym.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (y, m): (i32, u32) = (ym[..4].parse().ok()?, ym[4..].parse().ok()?);
        Month::of(
            Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .single()?
                .timestamp_millis(),
        )
    }
}

/// The first scan ID of the millisecond `ms` (the bound of a month's range).
pub(super) fn id_bound(ms: i64) -> Vec<u8> {
    format!("sc-{ms:013}").into_bytes()
}

/// A bytea literal for a partition bound (DDL takes no parameters).
fn literal(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("'\\x{hex}'::bytea")
}

/// Makes `month`'s partitions unless they exist, moving its rows out of the
/// defaults; true when it made them.
async fn ensure_month(c: &mut Object, month: &Month) -> Result<bool> {
    let tx = c.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
        .await
        .map_err(pg)?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("scans_p{}", month.name)],
        )
        .await
        .map_err(pg)?
        .get(0);
    if exists {
        tx.commit().await.map_err(pg)?;
        return Ok(false);
    }
    // Writers to the defaults wait until the month's rows have moved.
    tx.batch_execute("LOCK TABLE scans_other, result_chunks_other IN EXCLUSIVE MODE")
        .await
        .map_err(pg)?;
    let (from, to) = (id_bound(month.from_ms), id_bound(month.to_ms));
    for (table, key) in TABLES {
        let part = format!("{table}_p{}", month.name);
        tx.batch_execute(&format!(
            "CREATE TABLE {part} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ))
        .await
        .map_err(pg)?;
        tx.execute(
            &format!(
                "WITH moved AS (DELETE FROM {table}_other WHERE {key} >= $1 AND {key} < $2
                 RETURNING *) INSERT INTO {part} SELECT * FROM moved"
            ),
            &[&from, &to],
        )
        .await
        .map_err(pg)?;
        tx.batch_execute(&format!(
            "ALTER TABLE {table} ATTACH PARTITION {part} FOR VALUES FROM ({}) TO ({})",
            literal(&from),
            literal(&to)
        ))
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(true)
}

/// The months that have rows waiting in the default partitions, oldest first.
async fn waiting_months(c: &Object) -> Result<Vec<Month>> {
    let mut months: Vec<Month> = Vec::new();
    for (table, key) in TABLES {
        let mut after = b"sc-".to_vec();
        loop {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT {key} FROM {table}_other WHERE {key} >= $1 AND {key} < 'sc.'::bytea
                         ORDER BY {key} LIMIT 1"
                    ),
                    &[&after],
                )
                .await
                .map_err(pg)?;
            let Some(row) = row else { break };
            let id: Vec<u8> = row.get(0);
            match Month::of_scan_id(&id) {
                Some(m) => {
                    after = id_bound(m.to_ms);
                    if !months.contains(&m) {
                        months.push(m);
                    }
                }
                // Not an ID the collector made: it stays in the default.
                None => {
                    after = id;
                    after.push(0);
                }
            }
        }
    }
    months.sort_by_key(|m| m.from_ms);
    Ok(months)
}

/// Makes the current and the next month's partitions unless they exist: cheap, run
/// at every start, so that new scans never land in the defaults.
pub(super) fn ahead(st: &PgStore, now_ms: i64) -> Result<Vec<String>> {
    st.run(move |mut c| async move { ensure(&mut c, this_and_next(now_ms)).await })
}

/// Gives every month with rows in the defaults its partitions (moving the rows), and
/// makes the current and the next month's ahead of time. Returns the months made.
pub(super) fn maintain(st: &PgStore, now_ms: i64) -> Result<Vec<String>> {
    st.run(move |mut c| async move {
        let mut months = waiting_months(&c).await?;
        months.extend(this_and_next(now_ms));
        ensure(&mut c, months).await
    })
}

fn this_and_next(now_ms: i64) -> Vec<Month> {
    let now = Month::of(now_ms);
    let next = now.as_ref().and_then(Month::next);
    now.into_iter().chain(next).collect()
}

async fn ensure(c: &mut Object, months: Vec<Month>) -> Result<Vec<String>> {
    let mut made = Vec::new();
    for m in months {
        if ensure_month(c, &m).await? {
            made.push(m.name);
        }
    }
    Ok(made)
}

/// Empties the results of every month that ended before `before_ms` and holds no
/// scan still pending or running, a partition at a time (TRUNCATE: the partition's
/// lock only, the space freed at once). Returns the number of scans whose results
/// went.
pub(super) async fn prune_months(c: &mut Object, before_ms: i64) -> Result<usize> {
    let names: Vec<String> = c
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'result_chunks'::regclass",
            &[],
        )
        .await
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut months: Vec<(String, Month)> = names
        .into_iter()
        .filter_map(|n| Month::of_partition("result_chunks", &n).map(|m| (n, m)))
        .filter(|(_, m)| m.to_ms <= before_ms)
        .collect();
    months.sort_by_key(|(_, m)| m.from_ms);
    let mut scans = 0usize;
    for (part, m) in months {
        let tx = c.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await
            .map_err(pg)?;
        let (from, to) = (id_bound(m.from_ms), id_bound(m.to_ms));
        let unfinished = tx
            .query_opt(
                "SELECT 1 FROM scans WHERE id >= $1 AND id < $2 AND status IN (0, 1) LIMIT 1",
                &[&from, &to],
            )
            .await
            .map_err(pg)?
            .is_some();
        if unfinished {
            // Its finished scans lose their results row by row, with the rest.
            tx.commit().await.map_err(pg)?;
            continue;
        }
        let n: i64 = tx
            .query_one(&format!("SELECT count(DISTINCT scan_id) FROM {part}"), &[])
            .await
            .map_err(pg)?
            .get(0);
        if n > 0 {
            tx.batch_execute(&format!("TRUNCATE {part}"))
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        scans += n as usize;
    }
    Ok(scans)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months_of_scan_ids() {
        // 2026-12-05T19:57:17Z
        let m = Month::of(1_796_500_637_000).unwrap();
        assert_eq!(m.name, "202612");
        assert_eq!(m.from_ms, 1_796_083_200_000); // 2026-12-01
        assert_eq!(m.to_ms, 1_798_761_600_000); // 2027-01-01
        assert_eq!(m.next().unwrap().name, "202701");
        assert_eq!(
            Month::of_scan_id(b"sc-1796500637000-0a1b2c3d"),
            Some(m.clone())
        );
        assert_eq!(Month::of_partition("scans", "scans_p202612"), Some(m));
        // The last millisecond of a month is in it; the next is not.
        assert_eq!(Month::of(1_798_761_599_999).unwrap().name, "202612");
        assert_eq!(Month::of(1_798_761_600_000).unwrap().name, "202701");
    }

    #[test]
    fn ids_the_collector_did_not_make_have_no_month() {
        for id in [
            &b"sc-17965006370"[..],
            b"sc-x796500637000-0a",
            b"ag-1796500637000",
            b"",
            b"sc-\xff\xfe",
        ] {
            assert_eq!(Month::of_scan_id(id), None, "{id:?}");
        }
        assert_eq!(Month::of(-1), None);
        assert_eq!(Month::of(LAST_MS + 1), None);
        assert_eq!(Month::of_partition("scans", "scans_other"), None);
        assert_eq!(Month::of_partition("scans", "scans_p2026120"), None);
        assert_eq!(Month::of_partition("scans", "scans_p202613"), None);
    }

    #[test]
    fn bounds_sort_as_the_ids_they_hold() {
        let m = Month::of(1_796_500_637_000).unwrap();
        let id = b"sc-1796500637000-0a1b2c3d".to_vec();
        assert!(id_bound(m.from_ms) <= id && id < id_bound(m.to_ms));
        assert_eq!(literal(b"sc-"), "'\\x73632d'::bytea");
    }
}
