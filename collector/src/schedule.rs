//! Scheduled scans: a standard 5-field crontab expression (minute hour day-of-month
//! month day-of-week, Sunday = 0 or 7), with each agent offset deterministically
//! inside a window so that a fleet does not scan in the same second.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use croner::Cron;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
}

/// Parses a standard 5-field crontab expression. Seconds fields, 6- or 7-field forms
/// and nicknames are refused with the reason.
pub fn parse(expr: &str) -> Result<Schedule, String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day month weekday), found {fields}"
        ));
    }
    let cron = Cron::from_str(expr).map_err(|e| e.to_string())?;
    Ok(Schedule { cron })
}

/// A stable offset in `[0, window)` for an agent: FNV-1a of its ID.
pub fn agent_offset(agent_id: &str, window: Duration) -> Duration {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in agent_id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let secs = window.num_seconds().max(1) as u64;
    Duration::seconds((h % secs) as i64)
}

impl Schedule {
    /// The next time strictly after `after` at which the fleet's schedule fires.
    pub fn next_fire(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    /// The next scan time of one agent after `after`: the schedule's fire time plus
    /// the agent's offset within `window`.
    pub fn next_for_agent(
        &self,
        agent_id: &str,
        after: DateTime<Utc>,
        window: Duration,
    ) -> Option<DateTime<Utc>> {
        let offset = agent_offset(agent_id, window);
        // The fire whose offset time lies after `after` may have fired before `after`.
        let base = self.next_fire(after - offset)?;
        Some(base + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn standard_crontab_semantics() {
        // 2026-11-27 is a Friday.
        let now = at(2026, 11, 27, 10, 0);
        for (expr, want) in [
            ("0 3 * * *", at(2026, 11, 28, 3, 0)),
            ("*/15 * * * *", at(2026, 11, 27, 10, 15)),
            ("30 2 * * 0", at(2026, 11, 29, 2, 30)), // Sunday as 0
            ("30 2 * * 7", at(2026, 11, 29, 2, 30)), // Sunday as 7
            ("0 9 * * 1-5", at(2026, 11, 30, 9, 0)), // next weekday morning: Monday
            ("0 0 1 * *", at(2026, 12, 1, 0, 0)),
        ] {
            assert_eq!(parse(expr).unwrap().next_fire(now), Some(want), "{expr}");
        }
    }

    #[test]
    fn refuses_non_standard_forms() {
        for bad in ["0 0 3 * * *", "* * *", "61 * * * *", "", "@daily x"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agents_spread_deterministically_over_the_window() {
        let s = parse("0 3 * * *").unwrap();
        let window = Duration::hours(1);
        let now = at(2026, 11, 27, 10, 0);
        let a = s.next_for_agent("agent-a", now, window).unwrap();
        assert_eq!(
            a,
            s.next_for_agent("agent-a", now, window).unwrap(),
            "deterministic"
        );
        let times: std::collections::BTreeSet<_> = (0..50)
            .map(|i| {
                s.next_for_agent(&format!("agent-{i}"), now, window)
                    .unwrap()
            })
            .collect();
        assert!(times.len() > 40, "offsets spread the fleet");
        for t in &times {
            assert!(
                *t >= at(2026, 11, 28, 3, 0) && *t < at(2026, 11, 28, 4, 0),
                "{t}"
            );
        }
        // An agent whose offset time today is still ahead is scanned today.
        let late = at(2026, 11, 28, 3, 0) + agent_offset("agent-a", window) - Duration::seconds(1);
        assert_eq!(
            s.next_for_agent("agent-a", late, window).unwrap(),
            late + Duration::seconds(1)
        );
    }
}
