//! Agents: look-up, revocation, the serials for the CRL, and the host directory a
//! host or IP search reads.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{App, AppError, Result};
use crate::store::AgentRecord;

/// Every agent's host name (lower-cased) and addresses, in memory, so that a search
/// by host or IP reads no agent record it does not show. Built from the store at
/// start; enrollment and each hello (the only writers of these fields) keep it.
#[derive(Default)]
pub struct HostDirectory(RwLock<BTreeMap<String, (String, Vec<String>)>>);

impl HostDirectory {
    pub fn note(&self, a: &AgentRecord) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(
            a.id.clone(),
            (a.hostname.to_lowercase(), a.ip_addresses.clone()),
        );
    }

    /// The IDs that begin with `prefix`, in order (a range of the directory).
    pub fn ids_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .range(prefix.to_string()..)
            .take_while(|(id, _)| id.starts_with(prefix))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The IDs of agents whose host name, an address or ID contains `q` (lower-cased),
    /// in ID order; `None` when more than `most` do.
    pub fn find(&self, q: &str, most: usize) -> Option<Vec<String>> {
        let mut found = Vec::new();
        for (id, (host, ips)) in self.0.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if host.contains(q) || ips.iter().any(|ip| ip.contains(q)) || id.contains(q) {
                if found.len() == most {
                    return None;
                }
                found.push(id.clone());
            }
        }
        Some(found)
    }
}

impl App {
    pub fn agent(&self, id: &str) -> Result<AgentRecord> {
        self.store
            .agent(id)?
            .ok_or_else(|| AppError::NotFound(format!("agent {id}")))
    }

    /// The agents of `scans`, read at once, by ID (a scan of an agent no longer
    /// stored has none).
    pub fn agents_of_scans<'a>(
        &self,
        scans: impl IntoIterator<Item = &'a crate::store::ScanRecord>,
    ) -> Result<std::collections::HashMap<String, AgentRecord>> {
        let mut ids: Vec<String> = scans.into_iter().map(|s| s.agent_id.clone()).collect();
        ids.sort();
        ids.dedup();
        Ok(self
            .store
            .agents_by_id(&ids)?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect())
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

    /// The agents whose host name, an address or ID contains `q` (any case), or `None`
    /// when more than `most` do.
    pub fn search_hosts(&self, q: &str, most: usize) -> Result<Option<Vec<AgentRecord>>> {
        let Some(ids) = self.hosts.find(&q.to_lowercase(), most) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.store.agent(&id)? {
                out.push(a);
            }
        }
        Ok(Some(out))
    }

    /// An agent's host name, if the agent is known.
    pub fn hostname_of(&self, id: &str) -> Option<String> {
        self.store.agent(id).ok().flatten().map(|a| a.hostname)
    }

    /// Serials every collector refuses (the CRL): revoked agents' certificates, and
    /// those a renewal replaced, once refused, until they expire.
    pub fn revoked_serials(&self) -> Result<Vec<String>> {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        for a in self.store.agents()? {
            out.extend(
                a.replaced_certs
                    .into_iter()
                    .filter(|c| c.refused && c.not_after_ms > now)
                    .map(|c| c.serial),
            );
            // A removed SSH target was never issued a certificate.
            if a.revoked && !a.cert_serial.is_empty() {
                out.push(a.cert_serial);
            }
        }
        Ok(out)
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
        // Its live stream ends now, whatever it is doing.
        self.refuse_here(id);
        if was_revoked {
            return Ok(a);
        }
        self.audit(
            actor,
            "agent.revoke",
            Some(id),
            format!("certificate {} revoked", a.cert_serial),
        )?;
        self.sync_store()?;
        self.revocations_changed();
        self.tell_others(crate::store::Event::Revoke {
            agent_id: id.into(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_directory_finds_by_name_address_and_id() {
        let d = HostDirectory::default();
        let a = |id: &str, host: &str, ip: &str| AgentRecord {
            id: id.into(),
            hostname: host.into(),
            ip_addresses: vec![ip.into()],
            provider: String::new(),
            instance_id: String::new(),
            os: String::new(),
            project: None,
            labels: Default::default(),
            enrolled_at_ms: 0,
            last_seen_ms: 0,
            cert_serial: String::new(),
            cert_not_after_ms: 0,
            revoked: false,
            identity: Default::default(),
            replaced_certs: Vec::new(),
            renewed_at_ms: 0,
            ssh: None,
        };
        d.note(&a("ag-1", "Web-01", "10.0.0.1"));
        d.note(&a("ag-2", "db-01", "10.0.0.2"));
        assert_eq!(d.find("web", 10), Some(vec!["ag-1".to_string()]));
        assert_eq!(d.find("10.0.0.2", 10), Some(vec!["ag-2".to_string()]));
        assert_eq!(d.find("-01", 10).unwrap().len(), 2);
        assert_eq!(d.find("-01", 1), None, "more than asked for");
        // A hello that renames the host replaces the entry.
        d.note(&a("ag-1", "api-01", "10.0.0.9"));
        assert_eq!(d.find("web", 10), Some(vec![]));
        d.note(&a("tg-2", "t2", ""));
        d.note(&a("tg-1", "t1", ""));
        d.note(&a("th-1", "t3", ""));
        assert_eq!(d.ids_with_prefix("tg-"), vec!["tg-1", "tg-2"]);
        assert_eq!(d.ids_with_prefix("zz-"), Vec::<String>::new());
    }
}
