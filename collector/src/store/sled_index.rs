//! The sled backend's secondary indexes and counters: their key layout, and the
//! entries each record contributes.
//!
//! Index entries live in the *same* tree as the records they index, under keys that
//! start with [`IDX`] (0xFF). Record keys are UTF-8 strings (scan and agent IDs) or
//! big-endian sequence numbers below 2^56 (audit), so none starts with 0xFF: records
//! are the key range `..[IDX]`, index entries `[IDX]..`. A record and its index
//! entries are written by one `apply_batch`, which sled applies atomically (also
//! across a crash), under a writer lock so that the old record read first is still
//! the one replaced.
//!
//! Strings inside keys are length-prefixed (u32, big-endian), so that any bytes may
//! appear in a project or agent ID without making two keys ambiguous.
//!
//! Scans tree (`scans`):
//! - `IDX 'a' part(agent) id` → ``: scans by agent
//! - `IDX 's' status id` → ``: scans by status
//! - `IDX 'p' part(project) id` → ``: scans by project
//! - `IDX 'q' part(project) status id` → ``: scans by project and status
//! - `IDX 'b' id` → ``: scans blocked and not released
//! - `IDX 'l' agent` → `flag id`: the agent's newest scan (flag 1 if it blocks)
//! - `IDX 'c' agent` → `score(f64 BE bits) id`: the agent's newest completed scan
//! - `IDX 'o' score_key(u32 BE) id` → ``: completed scans by score, for the list
//!   sorted by score
//! - `IDX 'h' sortable(score)` → count (u64 BE): completed scans by score
//! - `IDX 'n' dim part(value) slot` → count (u64 BE): scans per status (slot 0-4),
//!   blocking (slot 5) or blocking per status (slot 10-14), over all scans (`dim` `*`, empty value), per project (`p`)
//!   and per agent (`a`).
//! - `IDX 'd' day(u32 BE) 'n'` → count and `IDX 'd' day 's'` → sum of scores in
//!   hundredths (u64 BE): completed scans by the UTC day they were created, for the
//!   overview's trend.
//!
//! Agents tree (`agents`): `IDX 'i' part(instance_id) agent` → `` for agents not
//! revoked with an instance ID.
//!
//! Audit tree (`audit`): `IDX 'A' part(action) seq` and `IDX 'U' part(actor) seq` → ``;
//! counters `IDX 'n' 'A' part(action)`, `IDX 'n' 'U' part(actor)` and `IDX 'n' '*'`.

use std::collections::BTreeMap;

use super::{AgentRecord, AuditRecord, ScanRecord, ScanStatus};

/// The first byte of every index or counter key.
pub const IDX: u8 = 0xFF;
/// Written to the meta tree once the indexes are complete; a store without it (or
/// with another version) has its indexes rebuilt from the records when opened.
pub const INDEX_VERSION_KEY: &str = "index_version";
pub const INDEX_VERSION: &[u8] = b"4";
/// The counter slot of blocking scans (after the five statuses).
pub const SLOT_BLOCKING: u8 = 5;
/// The first counter slot of blocking scans by status (10-14: this plus the status).
pub const SLOT_BLOCKING_BY_STATUS: u8 = 10;

pub fn status_byte(s: ScanStatus) -> u8 {
    match s {
        ScanStatus::Pending => 0,
        ScanStatus::Running => 1,
        ScanStatus::Completed => 2,
        ScanStatus::Failed => 3,
        ScanStatus::Cancelled => 4,
    }
}

fn part(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// `IDX tag`.
pub fn prefix(tag: u8) -> Vec<u8> {
    vec![IDX, tag]
}

/// `IDX tag part(value)`.
pub fn prefix_part(tag: u8, value: &str) -> Vec<u8> {
    let mut k = prefix(tag);
    part(&mut k, value);
    k
}

pub fn by_agent(agent: &str) -> Vec<u8> {
    prefix_part(b'a', agent)
}
pub fn by_status(st: ScanStatus) -> Vec<u8> {
    vec![IDX, b's', status_byte(st)]
}
pub fn by_project(project: &str) -> Vec<u8> {
    prefix_part(b'p', project)
}
pub fn by_project_status(project: &str, st: ScanStatus) -> Vec<u8> {
    let mut k = prefix_part(b'q', project);
    k.push(status_byte(st));
    k
}
pub fn blocking() -> Vec<u8> {
    prefix(b'b')
}
pub fn latest(agent: &str) -> Vec<u8> {
    let mut k = prefix(b'l');
    k.extend_from_slice(agent.as_bytes());
    k
}
pub fn latest_completed(agent: &str) -> Vec<u8> {
    let mut k = prefix(b'c');
    k.extend_from_slice(agent.as_bytes());
    k
}

/// Scores as keys that sort like the numbers.
pub fn sortable(score: f64) -> [u8; 8] {
    let b = score.to_bits();
    let b = if b >> 63 == 1 { !b } else { b | (1 << 63) };
    b.to_be_bytes()
}
pub fn by_score(score: f64) -> Vec<u8> {
    let mut k = prefix(b'h');
    k.extend_from_slice(&sortable(score));
    k
}

/// A completed scan's key in the score order (`IDX 'o'`), without its ID.
pub fn score_order(s: &ScanRecord) -> Vec<u8> {
    let mut k = prefix(b'o');
    k.extend_from_slice(&(super::score_key(s).clamp(0, i64::from(u32::MAX)) as u32).to_be_bytes());
    k
}

/// A scan counter: `dim` is `*` (value empty), `p` (project) or `a` (agent).
pub fn counter(dim: u8, value: &str, slot: u8) -> Vec<u8> {
    let mut k = vec![IDX, b'n', dim];
    part(&mut k, value);
    k.push(slot);
    k
}

/// The counters whose sum is the number of scans matching `f`, if counters hold it
/// exactly (not for an agent and a project at once).
pub fn filter_counters(f: &super::ScanFilter) -> Option<Vec<Vec<u8>>> {
    let (dim, value) = match (&f.agent_id, &f.project) {
        (Some(_), Some(_)) => return None,
        (Some(a), None) => (b'a', a.as_str()),
        (None, Some(p)) => (b'p', p.as_str()),
        (None, None) => (b'*', ""),
    };
    let slots: Vec<u8> = match (f.status, f.blocked) {
        (Some(st), true) => vec![SLOT_BLOCKING_BY_STATUS + status_byte(st)],
        (Some(st), false) => vec![status_byte(st)],
        (None, true) => vec![SLOT_BLOCKING],
        (None, false) => (0..5).collect(),
    };
    Some(
        slots
            .into_iter()
            .map(|slot| counter(dim, value, slot))
            .collect(),
    )
}

/// The index keys (with empty values) a scan record has.
pub fn scan_keys(s: &ScanRecord) -> Vec<Vec<u8>> {
    let id = s.id.as_bytes();
    let with = |mut k: Vec<u8>| {
        k.extend_from_slice(id);
        k
    };
    let mut keys = vec![with(by_agent(&s.agent_id)), with(by_status(s.status))];
    if let Some(p) = &s.project {
        keys.push(with(by_project(p)));
        keys.push(with(by_project_status(p, s.status)));
    }
    if s.is_blocking() {
        keys.push(with(blocking()));
    }
    if s.status == ScanStatus::Completed {
        keys.push(with(score_order(s)));
    }
    keys
}

/// The counters a scan record adds one to.
pub fn scan_counters(s: &ScanRecord) -> Vec<Vec<u8>> {
    let mut slots = vec![status_byte(s.status)];
    if s.is_blocking() {
        slots.push(SLOT_BLOCKING);
        slots.push(SLOT_BLOCKING_BY_STATUS + status_byte(s.status));
    }
    let mut out = Vec::new();
    for slot in slots {
        out.push(counter(b'*', "", slot));
        out.push(counter(b'a', &s.agent_id, slot));
        if let Some(p) = &s.project {
            out.push(counter(b'p', p, slot));
        }
    }
    if s.status == ScanStatus::Completed {
        out.push(by_score(s.score.unwrap_or(0.0)));
    }
    out
}

/// The day and kind (`n` or `s`) of a per-day key.
pub fn parse_day_key(k: &[u8]) -> Option<(u32, u8)> {
    let day = u32::from_be_bytes(k.get(2..6)?.try_into().ok()?);
    Some((day, *k.get(6)?))
}

/// The per-day counters (key, count), in key order, as the overview's trend: one
/// entry per day that has any.
pub fn day_scores(counters: impl IntoIterator<Item = (Vec<u8>, u64)>) -> Vec<super::DayScores> {
    let mut out: Vec<super::DayScores> = Vec::new();
    for (k, n) in counters {
        let Some((day, kind)) = parse_day_key(&k) else {
            continue;
        };
        if out.last().is_none_or(|d| d.day != day) {
            out.push(super::DayScores {
                day,
                ..Default::default()
            });
        }
        let d = out.last_mut().expect("pushed above");
        match kind {
            b'n' => d.completed = n,
            b's' => d.score_sum = n as f64 / 100.0,
            _ => {}
        }
    }
    out
}

/// Days since the Unix epoch (UTC) of a time in ms.
pub fn day_of(ms: i64) -> u32 {
    ms.div_euclid(86_400_000).clamp(0, i64::from(u32::MAX)) as u32
}

/// `IDX 'd' day kind`: the per-day count (`n`) or score sum (`s`) of completed scans.
pub fn day_key(day: u32, kind: u8) -> Vec<u8> {
    let mut k = prefix(b'd');
    k.extend_from_slice(&day.to_be_bytes());
    k.push(kind);
    k
}

/// A score in hundredths, as the per-day sums add them.
pub fn centi(score: Option<f64>) -> i64 {
    (score.unwrap_or(0.0).clamp(0.0, 100.0) * 100.0).round() as i64
}

/// The value of an `IDX 'l'` entry.
pub fn latest_value(s: &ScanRecord) -> Vec<u8> {
    let mut v = vec![u8::from(s.is_blocking())];
    v.extend_from_slice(s.id.as_bytes());
    v
}

/// The value of an `IDX 'c'` entry.
pub fn latest_completed_value(s: &ScanRecord) -> Vec<u8> {
    let mut v = s.score.unwrap_or(0.0).to_bits().to_be_bytes().to_vec();
    v.extend_from_slice(s.id.as_bytes());
    v
}

/// The scan ID in an `IDX 'l'` or `IDX 'c'` value.
pub fn latest_id(v: &[u8], completed: bool) -> &[u8] {
    let skip = if completed { 8 } else { 1 };
    v.get(skip..).unwrap_or_default()
}

/// The score in an `IDX 'c'` value.
pub fn latest_score(v: &[u8]) -> f64 {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(|b| f64::from_bits(u64::from_be_bytes(b)))
        .unwrap_or(0.0)
}

pub fn decode_count(v: &[u8]) -> u64 {
    <[u8; 8]>::try_from(v).map(u64::from_be_bytes).unwrap_or(0)
}

/// The instance-ID index key of an agent, if it has one.
pub fn agent_key(a: &AgentRecord) -> Option<Vec<u8>> {
    (!a.revoked && !a.instance_id.is_empty()).then(|| {
        let mut k = by_instance(&a.instance_id);
        k.extend_from_slice(a.id.as_bytes());
        k
    })
}
pub fn by_instance(instance: &str) -> Vec<u8> {
    prefix_part(b'i', instance)
}

pub fn audit_by_action(action: &str) -> Vec<u8> {
    prefix_part(b'A', action)
}
pub fn audit_by_actor(actor: &str) -> Vec<u8> {
    prefix_part(b'U', actor)
}
pub fn audit_count_action(action: &str) -> Vec<u8> {
    let mut k = vec![IDX, b'n', b'A'];
    part(&mut k, action);
    k
}
pub fn audit_count_actor(actor: &str) -> Vec<u8> {
    let mut k = vec![IDX, b'n', b'U'];
    part(&mut k, actor);
    k
}
pub fn audit_count_all() -> Vec<u8> {
    vec![IDX, b'n', b'*']
}

/// The index keys and counters of an audit entry.
pub fn audit_keys(e: &AuditRecord) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let seq = e.seq.to_be_bytes();
    let with = |mut k: Vec<u8>| {
        k.extend_from_slice(&seq);
        k
    };
    (
        vec![
            with(audit_by_action(&e.action)),
            with(audit_by_actor(&e.actor)),
        ],
        vec![
            audit_count_action(&e.action),
            audit_count_actor(&e.actor),
            audit_count_all(),
        ],
    )
}

/// Counter changes gathered before they are written.
#[derive(Default)]
pub struct Deltas(pub BTreeMap<Vec<u8>, i64>);

impl Deltas {
    pub fn add(&mut self, keys: Vec<Vec<u8>>, by: i64) {
        for k in keys {
            *self.0.entry(k).or_default() += by;
        }
    }

    /// Adds (`sign` 1) or takes away (`sign` -1) everything a scan record counts: its
    /// counters and, when completed, its day's count and score.
    pub fn add_scan(&mut self, s: &ScanRecord, sign: i64) {
        self.add(scan_counters(s), sign);
        if s.status == ScanStatus::Completed {
            let day = day_of(s.created_at_ms);
            *self.0.entry(day_key(day, b'n')).or_default() += sign;
            *self.0.entry(day_key(day, b's')).or_default() += sign * centi(s.score);
        }
    }
}

/// The upper bound (exclusive) of every key that starts with `prefix` and goes on
/// with UTF-8 or a sequence number below 2^56.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.push(0xFF);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_sort_like_numbers() {
        let xs = [-1.5, -0.0, 0.0, 0.1, 49.9, 50.0, 99.9, 100.0];
        for w in xs.windows(2) {
            assert!(sortable(w[0]) <= sortable(w[1]), "{w:?}");
        }
    }

    #[test]
    fn length_prefixes_keep_values_apart() {
        // Without the length, project "a" + scan "bc" and project "ab" + scan "c"
        // would be the same key.
        let mut k1 = by_project("a");
        k1.extend_from_slice(b"bc");
        let mut k2 = by_project("ab");
        k2.extend_from_slice(b"c");
        assert_ne!(k1, k2);
        assert!(!k1.starts_with(&by_project("ab")));
    }
}
