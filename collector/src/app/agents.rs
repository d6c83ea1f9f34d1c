//! Agents: look-up, revocation and the serials for the CRL.

use super::{App, AppError, Result};
use crate::store::AgentRecord;

impl App {
    pub fn agent(&self, id: &str) -> Result<AgentRecord> {
        self.store
            .agent(id)?
            .ok_or_else(|| AppError::NotFound(format!("agent {id}")))
    }

    /// Up to `limit` agents in ID order after `after`.
    pub fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        Ok(self.store.agent_page(after, limit)?)
    }

    /// The live (not revoked) agents of a project, by ID.
    pub fn agents_of_project(&self, project: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .agents()?
            .into_iter()
            .filter(|a| a.project.as_deref() == Some(project) && !a.revoked)
            .map(|a| a.id)
            .collect())
    }

    /// An agent's host name, if the agent is known.
    pub fn hostname_of(&self, id: &str) -> Option<String> {
        self.store.agent(id).ok().flatten().map(|a| a.hostname)
    }

    /// Serial numbers of revoked agents' certificates (for the CRL).
    pub fn revoked_serials(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .agents()?
            .into_iter()
            .filter(|a| a.revoked)
            .map(|a| a.cert_serial)
            .collect())
    }

    /// Revokes an agent's certificate and drops its connection; revoking a revoked
    /// agent changes nothing.
    pub fn revoke_agent(&self, id: &str, actor: &str) -> Result<AgentRecord> {
        let mut was_revoked = false;
        let a = self
            .store
            .update_agent(id, &mut |a| {
                was_revoked = a.revoked;
                a.revoked = true;
            })?
            .ok_or_else(|| AppError::NotFound(format!("agent {id}")))?;
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        // Its live stream ends now, whatever it is doing.
        if let Some(live) = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
        {
            live.end.end(format!("agent {id} is revoked"));
        }
        if was_revoked {
            return Ok(a);
        }
        self.audit(
            actor,
            "agent.revoke",
            Some(id),
            format!("certificate {} revoked", a.cert_serial),
        )?;
        self.store.sync()?;
        self.revocations_changed();
        Ok(a)
    }

    /// Tells the TLS layer that the set of refused certificates changed.
    pub(crate) fn revocations_changed(&self) {
        if let Some(f) = self
            .on_revoke
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            f();
        }
    }
}
