//! Answers computed from every record: what a backend without indexes does, and the
//! oracle the conformance suite compares indexed answers with.

use std::collections::HashMap;

use super::*;

/// `all` in any order.
pub fn scan_list(
    all: &[ScanRecord],
    filter: &ScanFilter,
    cursor: &ScanCursor,
    offset: usize,
    limit: usize,
) -> ScanList {
    let mut m: Vec<&ScanRecord> = all.iter().filter(|s| filter.matches(s)).collect();
    m.sort_by(|a, b| b.id.cmp(&a.id));
    if cursor.oldest_first {
        m.reverse();
    }
    let total = m.len();
    let mut page: Vec<ScanRecord> = m
        .into_iter()
        .filter(|s| cursor.before.as_ref().is_none_or(|b| &s.id < b))
        .filter(|s| cursor.after.as_ref().is_none_or(|a| &s.id > a))
        .skip(offset)
        .take(limit.saturating_add(1))
        .cloned()
        .collect();
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|s| s.id.clone())
    });
    ScanList {
        scans: page,
        total,
        next: next.flatten(),
    }
}

/// Completed scans by score (none counts as 0), then ID, lowest first or highest
/// first, strictly past `past` in that order, at most `limit`.
pub fn scans_by_score(
    all: &[ScanRecord],
    low_first: bool,
    past: Option<&ScanRecord>,
    limit: usize,
) -> Vec<ScanRecord> {
    let key = |s: &ScanRecord| (super::score_key(s), s.id.clone());
    let mut m: Vec<&ScanRecord> = all
        .iter()
        .filter(|s| s.status == ScanStatus::Completed)
        .filter(|s| {
            past.is_none_or(|p| {
                if low_first {
                    key(s) > key(p)
                } else {
                    key(s) < key(p)
                }
            })
        })
        .collect();
    m.sort_by_key(|s| key(s));
    if !low_first {
        m.reverse();
    }
    m.into_iter().take(limit).cloned().collect()
}

/// The newest scan of an agent.
pub fn latest_scan(all: &[ScanRecord], agent_id: &str) -> Option<ScanRecord> {
    all.iter()
        .filter(|s| s.agent_id == agent_id)
        .max_by(|a, b| a.id.cmp(&b.id))
        .cloned()
}

pub fn fleet(all: &[ScanRecord], min_score: f64) -> Fleet {
    let mut newest: Vec<&ScanRecord> = all.iter().collect();
    newest.sort_by(|a, b| b.id.cmp(&a.id));
    let mut latest: HashMap<&str, &ScanRecord> = HashMap::new();
    let mut latest_completed: HashMap<&str, f64> = HashMap::new();
    let mut f = Fleet::default();
    for s in newest {
        latest.entry(s.agent_id.as_str()).or_insert(s);
        if s.status == ScanStatus::Completed {
            f.completed_scans += 1;
            let score = s.score.unwrap_or(0.0);
            if score >= min_score {
                f.completed_meeting += 1;
            }
            latest_completed.entry(s.agent_id.as_str()).or_insert(score);
        }
    }
    f.vms_scanned = latest_completed.len();
    f.latest_score_sum = latest_completed.values().sum();
    f.vms_blocked = latest.values().filter(|s| s.is_blocking()).count();
    f
}

/// `all` in any order.
pub fn daily_scores(all: &[ScanRecord], from_day: u32, days: u32) -> Vec<DayScores> {
    let mut by_day: std::collections::BTreeMap<u32, (u64, i64)> = Default::default();
    for s in all.iter().filter(|s| s.status == ScanStatus::Completed) {
        let day = (s.created_at_ms.div_euclid(86_400_000)).clamp(0, i64::from(u32::MAX)) as u32;
        if day >= from_day && day < from_day.saturating_add(days) {
            let e = by_day.entry(day).or_default();
            e.0 += 1;
            e.1 += (s.score.unwrap_or(0.0).clamp(0.0, 100.0) * 100.0).round() as i64;
        }
    }
    by_day
        .into_iter()
        .map(|(day, (completed, sum))| DayScores {
            day,
            completed,
            score_sum: sum as f64 / 100.0,
        })
        .collect()
}

/// `all` in any order.
pub fn audit_list(
    all: &[AuditRecord],
    filter: &AuditFilter,
    before: Option<u64>,
    offset: usize,
    limit: usize,
) -> AuditList {
    let mut m: Vec<&AuditRecord> = all.iter().filter(|e| filter.matches(e)).collect();
    m.sort_by_key(|e| std::cmp::Reverse(e.seq));
    let total = m.len();
    let mut entries: Vec<AuditRecord> = m
        .into_iter()
        .filter(|e| before.is_none_or(|b| e.seq < b))
        .skip(offset)
        .take(limit.saturating_add(1))
        .cloned()
        .collect();
    let next = (entries.len() > limit).then(|| {
        entries.truncate(limit);
        entries.last().map(|e| e.seq)
    });
    AuditList {
        entries,
        total,
        next: next.flatten(),
    }
}

/// Up to `limit` agents in ID order after `after`.
pub fn agent_page(
    mut all: Vec<AgentRecord>,
    after: Option<&str>,
    limit: usize,
) -> Vec<AgentRecord> {
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all.into_iter()
        .filter(|a| after.is_none_or(|k| a.id.as_str() > k))
        .take(limit)
        .collect()
}

/// Live (not revoked) agents that enrolled with this instance ID.
pub fn agents_by_instance(all: Vec<AgentRecord>, instance_id: &str) -> Vec<AgentRecord> {
    all.into_iter()
        .filter(|a| !a.revoked && !instance_id.is_empty() && a.instance_id == instance_id)
        .collect()
}
