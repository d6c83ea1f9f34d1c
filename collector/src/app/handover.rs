//! The handover gate: an agent found by ID or instance ID, its latest scan, and
//! releases of blocked handovers.

use super::{now_ms, App, AppError, Gate, Result};
use crate::store::{AgentRecord, ScanRecord, ScanStatus};

impl App {
    /// Finds an agent by its ID or by the cloud instance ID it enrolled with. An
    /// instance ID names at most one live agent (enrollment refuses a second); should
    /// stored data hold two, the answer is a conflict, never a guess.
    pub fn find_agent(&self, id: &str) -> Result<AgentRecord> {
        if let Some(a) = self.store.agent(id)? {
            return Ok(a);
        }
        if id.is_empty() {
            return Err(AppError::NotFound("agent or instance".into()));
        }
        let mut found = self.store.agents_by_instance(id)?;
        match found.len() {
            0 => Err(AppError::NotFound(format!("agent or instance {id}"))),
            1 => Ok(found.remove(0)),
            n => Err(AppError::Conflict(format!(
                "instance {id} is claimed by {n} agents; revoke all but one"
            ))),
        }
    }

    /// The agent's newest scan, from the latest-scan-per-agent index.
    pub fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        Ok(self.store.latest_scan(agent_id)?)
    }

    pub fn handover(&self, id: &str) -> Result<Gate> {
        let a = self.find_agent(id)?;
        let s = self.settings();
        let gate = |allowed, state, reasons: Vec<String>, scan: Option<&ScanRecord>| Gate {
            allowed,
            state,
            reasons,
            agent_id: a.id.clone(),
            instance_id: a.instance_id.clone(),
            hostname: a.hostname.clone(),
            scan_id: scan.map(|s| s.id.clone()),
        };
        if a.project
            .as_ref()
            .is_some_and(|p| s.exempt_projects.contains(p))
        {
            return Ok(gate(
                true,
                "exempt",
                vec![format!(
                    "project {} is exempt from scanning",
                    a.project.clone().unwrap_or_default()
                )],
                None,
            ));
        }
        if !s.scanning_enabled {
            return Ok(gate(
                true,
                "allowed",
                vec!["CIS scanning is disabled".into()],
                None,
            ));
        }
        let Some(scan) = self.latest_scan(&a.id)? else {
            return Ok(gate(
                false,
                "pending",
                vec!["no scan has been made yet".into()],
                None,
            ));
        };
        Ok(match scan.status {
            ScanStatus::Pending | ScanStatus::Running => gate(
                false,
                "pending",
                vec![format!(
                    "scan {} is {}",
                    scan.id,
                    if scan.status == ScanStatus::Pending {
                        "pending"
                    } else {
                        "running"
                    }
                )],
                Some(&scan),
            ),
            ScanStatus::Failed => gate(
                false,
                "failed",
                vec![format!(
                    "scan {} failed: {}",
                    scan.id,
                    scan.failure_reason.clone().unwrap_or_default()
                )],
                Some(&scan),
            ),
            ScanStatus::Cancelled => gate(
                false,
                "pending",
                vec![format!("scan {} was cancelled; no completed scan", scan.id)],
                Some(&scan),
            ),
            ScanStatus::Completed if scan.blocked && scan.released_by.is_some() => gate(
                true,
                "released",
                vec![format!(
                    "released by {} despite: {}",
                    scan.released_by.clone().unwrap_or_default(),
                    scan.block_reasons.join("; ")
                )],
                Some(&scan),
            ),
            ScanStatus::Completed if scan.blocked => {
                gate(false, "blocked", scan.block_reasons.clone(), Some(&scan))
            }
            ScanStatus::Completed => gate(true, "allowed", vec![], Some(&scan)),
        })
    }

    /// Releases a blocked scan (admin); recorded with the admin's identity and time.
    pub fn release(&self, scan_id: &str, actor: &str) -> Result<ScanRecord> {
        let mut s = self
            .store
            .scan(scan_id)?
            .ok_or_else(|| AppError::NotFound(format!("scan {scan_id}")))?;
        if !s.blocked {
            return Err(AppError::Invalid(format!("scan {scan_id} is not blocked")));
        }
        if s.released_by.is_some() {
            return Err(AppError::Invalid(format!(
                "scan {scan_id} was already released"
            )));
        }
        s.released_by = Some(actor.into());
        s.released_at_ms = Some(now_ms());
        self.store.put_scan(&s)?;
        self.audit(
            actor,
            "scan.release",
            Some(scan_id),
            format!(
                "handover of agent {} released despite: {}",
                s.agent_id,
                s.block_reasons.join("; ")
            ),
        )?;
        self.store.sync()?;
        Ok(s)
    }
}
