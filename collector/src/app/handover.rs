//! The handover gate: an agent found by ID or instance ID, its latest scan, and
//! releases of blocked handovers.

use super::{App, AppError, Gate, Result};
use crate::policy;
use crate::store::{AgentRecord, ScanRecord};

impl App {
    /// Finds an agent by its ID or by the cloud instance ID it enrolled with. An
    /// instance ID names at most one live agent (enrollment refuses a second); should
    /// stored data hold two, the answer is a conflict, never a guess.
    pub fn find_agent(&self, id: &str) -> Result<AgentRecord> {
        if id.is_empty() {
            return Err(AppError::NotFound("agent or instance".into()));
        }
        // Agent IDs are ours (`ag-…`): anything else is looked up as an instance ID
        // first, which is what pipelines poll with (one read fewer where the store is
        // a round trip away).
        let by_id = id.starts_with("ag-");
        if by_id {
            if let Some(a) = self.store.agent(id)? {
                return Ok(a);
            }
        }
        let mut found = self.store.agents_by_instance(id)?;
        if found.is_empty() && !by_id {
            if let Some(a) = self.store.agent(id)? {
                return Ok(a);
            }
        }
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

    /// The handover gate: the agent (by ID or instance ID), its newest scan from
    /// the index, and [`policy::handover`]'s decision.
    pub fn handover(&self, id: &str) -> Result<Gate> {
        let a = self.find_agent(id)?;
        let latest = self.latest_scan(&a.id)?;
        let h = policy::handover(&self.settings(), a.project.as_deref(), latest.as_ref());
        Ok(Gate {
            allowed: h.allowed,
            state: h.state,
            reasons: h.reasons,
            scan_id: latest.filter(|_| h.on_scan).map(|s| s.id),
            agent_id: a.id,
            instance_id: a.instance_id,
            hostname: a.hostname,
            identity_verified: a.identity.verified,
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
        s.released_at_ms = Some(self.clock.now_ms());
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
        self.sync_store()?;
        self.metrics.released();
        Ok(s)
    }
}
