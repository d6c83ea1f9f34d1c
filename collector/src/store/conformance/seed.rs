//! A deterministic fleet of scans for the query checks, and the truth it should give.

use super::*;

/// A small deterministic generator, so that failures repeat.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub(super) const STATUSES: [ScanStatus; 5] = [
    ScanStatus::Pending,
    ScanStatus::Running,
    ScanStatus::Completed,
    ScanStatus::Failed,
    ScanStatus::Cancelled,
];

/// What the suite wrote, to compare every answer with.
#[derive(Default)]
pub struct Truth {
    pub scans: std::collections::BTreeMap<String, ScanRecord>,
    pub agents: std::collections::BTreeMap<String, AgentRecord>,
    pub audit: Vec<AuditRecord>,
}

impl Truth {
    pub(super) fn all_scans(&self) -> Vec<ScanRecord> {
        self.scans.values().cloned().collect()
    }
}

/// Seeds `n` scans over a few dozen agents and projects, then rewrites some of them
/// the way the lifecycle does (and a few ways it does not: a completed scan failed
/// afterwards, a scan moved to another agent), plus agents and audit entries.
pub fn seed<S: Store>(s: &S, n: usize, truth: &mut Truth, seed: u64) {
    let mut r = Lcg(seed);
    let projects = [None, Some("web"), Some("db"), Some("x\0y"), Some("lab")];
    for i in 0..40 {
        let mut a = agent(&format!("ag-{i:02}"));
        a.instance_id = if i % 7 == 6 {
            String::new()
        } else {
            format!("i-{:02}", i % 30)
        };
        a.revoked = i % 11 == 10;
        s.put_agent(&a).unwrap();
        truth.agents.insert(a.id.clone(), a);
    }
    // An ID that is one agent's and another's instance ID: the gate reads both.
    let mut a = agent("ag-40");
    a.instance_id = "ag-05".into();
    s.put_agent(&a).unwrap();
    truth.agents.insert(a.id.clone(), a);
    let base = truth.scans.len();
    for i in 0..n {
        let id = format!("sc-{:08}-{:03}", base + i, r.next(1000));
        let agent = format!("ag-{:02}", r.next(40));
        let project = projects[r.next(projects.len() as u64) as usize];
        let mut sc = scan(&id, &agent, project, STATUSES[r.next(5) as usize]);
        // Spread over ten days, for the per-day figures.
        sc.created_at_ms = r.next(10 * 86_400_000) as i64;
        if sc.status == ScanStatus::Completed {
            // Scores as `policy::score` makes them: tenths from 0 to 100.
            sc.score = match r.next(10) {
                0 => None,
                _ => Some(r.next(1001) as f64 / 10.0),
            };
            sc.blocked = r.next(4) == 0;
            if sc.blocked && r.next(2) == 0 {
                sc.released_by = Some("ann".into());
            }
        }
        s.put_scan(&sc).unwrap();
        truth.scans.insert(id, sc);
    }
    // Rewrites of some scans.
    let ids: Vec<String> = truth.scans.keys().cloned().collect();
    for _ in 0..n / 5 {
        let id = &ids[r.next(ids.len() as u64) as usize];
        let mut sc = truth.scans[id].clone();
        match r.next(5) {
            0 => {
                sc.status = ScanStatus::Completed;
                sc.score = Some(r.next(1001) as f64 / 10.0);
                sc.blocked = r.next(2) == 0;
            }
            1 if sc.blocked => sc.released_by = Some("bob".into()),
            2 => {
                sc.status = ScanStatus::Failed;
                sc.blocked = false;
            }
            3 => sc.agent_id = format!("ag-{:02}", r.next(40)),
            _ => sc.status = ScanStatus::Running,
        }
        s.put_scan(&sc).unwrap();
        truth.scans.insert(id.clone(), sc);
    }
    // Agents revoked and their instance IDs.
    for i in [3, 4, 5] {
        let id = format!("ag-{i:02}");
        let a = s
            .update_agent(&id, &mut |a| a.revoked = !a.revoked)
            .unwrap()
            .unwrap();
        truth.agents.insert(id, a);
    }
    for i in 0..(n / 10).max(20) {
        let e = AuditRecord {
            seq: 0,
            at_ms: i as i64,
            actor: format!("u{}", r.next(4)),
            action: ["scan.create", "scan.release", "settings.change"][r.next(3) as usize].into(),
            target: None,
            detail: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let seq = s.append_audit(&e).unwrap();
        truth.audit.push(AuditRecord { seq, ..e });
    }
}
