//! The handover gate: an agent found by ID or instance ID, its latest scan, and
//! releases of blocked handovers.

use super::{App, AppError, Gate, Result};
use crate::policy;
use crate::store::{AgentRecord, ScanRecord};

/// Which agent an ID names: agent IDs are ours (`ag-…`), anything else is taken
/// as an instance ID first (what pipelines poll with), falling back to the other
/// reading. An instance ID names at most one live agent (enrollment refuses a
/// second); should stored data hold two, the answer is a conflict, never a guess.
fn pick<T>(id: &str, by_id: Option<T>, mut by_instance: Vec<T>) -> Result<T> {
    if id.starts_with("ag-") || by_instance.is_empty() {
        if let Some(a) = by_id {
            return Ok(a);
        }
    }
    match by_instance.len() {
        0 => Err(AppError::NotFound(format!("agent or instance {id}"))),
        1 => Ok(by_instance.remove(0)),
        n => Err(AppError::Conflict(format!(
            "instance {id} is claimed by {n} agents; revoke all but one"
        ))),
    }
}

impl App {
    /// Finds an agent by its ID or by the cloud instance ID it enrolled with (see
    /// [`pick`]).
    pub fn find_agent(&self, id: &str) -> Result<AgentRecord> {
        if id.is_empty() {
            return Err(AppError::NotFound("agent or instance".into()));
        }
        // Only the reads the answer needs, in the order `pick` prefers them.
        let by_id = id.starts_with("ag-");
        let first = if by_id { self.store.agent(id)? } else { None };
        if first.is_some() {
            return pick(id, first, Vec::new());
        }
        let found = self.store.agents_by_instance(id)?;
        let second = if found.is_empty() && !by_id {
            self.store.agent(id)?
        } else {
            None
        };
        pick(id, second, found)
    }

    /// The agent's newest scan, from the latest-scan-per-agent index.
    pub fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        Ok(self.store.latest_scan(agent_id)?)
    }

    /// The handover gate: the agent (by ID or instance ID, as [`App::find_agent`]),
    /// its newest scan from the index — both in one read of the store — and
    /// [`policy::handover`]'s decision.
    pub fn handover(&self, id: &str) -> Result<Gate> {
        if id.is_empty() {
            return Err(AppError::NotFound("agent or instance".into()));
        }
        let c = self.store.gate_candidates(id)?;
        let (a, latest) = pick(id, c.by_id, c.by_instance)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_the_agent_the_gate_reads() {
        let pick = |id: &str, by_id: Option<&'static str>, inst: &[&'static str]| {
            pick(id, by_id, inst.to_vec()).map_err(|e| e.to_string())
        };
        assert_eq!(pick("ag-1", Some("A"), &["B"]), Ok("A"), "our IDs first");
        assert_eq!(
            pick("i-1", Some("A"), &["B"]),
            Ok("B"),
            "instance IDs first"
        );
        assert_eq!(pick("i-1", Some("A"), &[]), Ok("A"));
        assert_eq!(pick("ag-1", None, &["B"]), Ok("B"));
        assert!(pick("i-1", None, &["B", "C"])
            .unwrap_err()
            .contains("claimed by 2 agents"));
        assert!(
            pick("ag-1", Some("A"), &["B", "C"]).is_ok(),
            "an agent ID is exact"
        );
        assert!(pick("x", None, &[])
            .unwrap_err()
            .contains("agent or instance x"));
    }
}
