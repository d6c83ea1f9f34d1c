//! Connected agents' streams: attach, detach, the commands sent to them, hellos.

use std::sync::Arc;

use super::{App, AppError, Command, HelloInfo, Live, Result, StreamEnd};
use crate::store::{ScanFilter, ScanRecord, ScanStatus};

impl App {
    /// Whether the agent was revoked (an in-memory set, updated on revocation).
    pub fn is_revoked(&self, agent_id: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(agent_id)
    }

    /// Refuses a revoked agent.
    pub fn ensure_live(&self, agent_id: &str) -> Result<()> {
        if self.is_revoked(agent_id) {
            return Err(AppError::Refused(format!("agent {agent_id} is revoked")));
        }
        Ok(())
    }

    /// Takes one message from the agent's per-second budget (all its streams).
    pub fn allow_message(&self, agent_id: &str) -> bool {
        self.agent_messages.allow(agent_id)
    }

    /// Registers a connected agent's stream. An agent has one live stream: an
    /// older one is told to end. A revoked agent is refused. Returns when the
    /// stream was attached, which [`App::record_stream`] takes.
    pub fn attach(
        &self,
        agent_id: &str,
        tx: super::CommandTx,
        end: Arc<StreamEnd>,
        resync: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<i64> {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the sessions lock, which revocation also takes.
        self.ensure_live(agent_id)?;
        let since_ms = self.clock.now_ms();
        let live = Live {
            tx,
            end,
            resync,
            since_ms,
        };
        if let Some(old) = s.insert(agent_id.into(), live) {
            old.end
                .end(format!("agent {agent_id} opened a newer stream"));
        }
        Ok(since_ms)
    }

    /// Another collector accepted a stream of the agent at `since_ms`: the stream
    /// here ends if it is older, as it would for a newer stream here. Without this an
    /// agent's key could hold a stream on every collector of the fleet at once, each
    /// with a full message budget. A stream here attached after that time stays (the
    /// agent came back here before the news arrived); the collectors' clocks are
    /// assumed to agree within the seconds an agent takes to reconnect.
    pub(super) fn newer_stream_elsewhere(&self, agent_id: &str, since_ms: i64) {
        let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = s.get(agent_id) {
            if live.since_ms <= since_ms {
                live.end.end(format!(
                    "agent {agent_id} opened a newer stream through another collector"
                ));
            }
        }
    }

    pub fn detach(&self, agent_id: &str, tx: &super::CommandTx) {
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if s.get(agent_id).is_some_and(|cur| cur.tx.same_channel(tx)) {
            s.remove(agent_id);
        }
    }

    /// Tells the store that this collector holds the agent's stream attached at
    /// `since` ([`App::attach`]), for the other collectors sharing it, and tells them
    /// to end any older stream of the agent they hold ([`Event::Stream`]). Blocking.
    ///
    /// [`Event::Stream`]: crate::store::Event::Stream
    pub fn record_stream(&self, agent_id: &str, since: i64) {
        if let Err(e) = self.store.stream_opened(agent_id, &self.instance, since) {
            tracing::warn!(%agent_id, error = %e, "cannot record where the agent's stream is");
        }
        self.tell_others(crate::store::Event::Stream {
            agent_id: agent_id.into(),
            since_ms: since,
        });
    }

    /// Tells the store that the stream recorded at `since` has ended. Blocking.
    pub fn record_stream_end(&self, agent_id: &str, since: i64) {
        if let Err(e) = self.store.stream_closed(agent_id, &self.instance, since) {
            tracing::warn!(%agent_id, error = %e, "cannot record that the agent's stream ended");
        }
    }

    /// Those of `ids` connected here or to another live collector sharing the
    /// store. Blocking.
    pub fn connected_among(&self, ids: &[String]) -> std::collections::HashSet<String> {
        let mut on: std::collections::HashSet<String> = {
            let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter().filter(|i| s.contains_key(*i)).cloned().collect()
        };
        let alive_since = self.clock.now_ms() - super::cluster::ALIVE_MS;
        match self
            .store
            .streams_elsewhere(ids, &self.instance, alive_since)
        {
            Ok(more) => on.extend(more),
            Err(e) => tracing::warn!(error = %e, "cannot read which agents other collectors hold"),
        }
        on
    }

    /// Queues a command for a connected agent. When its queue is full the command
    /// is not lost: scans are in the store, and the stream re-reads them.
    pub(super) fn send(&self, agent_id: &str, cmd: Command) -> bool {
        let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(live) = s.get(agent_id) else {
            return false;
        };
        match live.tx.try_send(Box::new(cmd)) {
            Ok(()) => true,
            Err(_) => {
                live.resync.store(true, std::sync::atomic::Ordering::SeqCst);
                false
            }
        }
    }

    /// Whether the agent has a live stream.
    pub fn is_connected(&self, agent_id: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(agent_id)
    }

    pub fn connected(&self) -> Vec<String> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// The settings command for an agent.
    pub fn settings_command(&self, agent_id: &str) -> Command {
        let s = self.settings();
        let window = chrono::Duration::seconds(self.config.schedule_window_secs);
        Command::Settings {
            scanning_enabled: s.scanning_enabled,
            profile: s.profile,
            exempt_rules: s.exempt_rules.iter().cloned().collect(),
            schedule_cron: if s.schedule_enabled {
                s.schedule_cron.clone()
            } else {
                String::new()
            },
            schedule_offset_s: crate::schedule::agent_offset(agent_id, window).num_seconds() as u32,
        }
    }

    /// Scan requests an agent should receive when it connects: its pending scans.
    pub fn pending_commands(&self, agent_id: &str) -> Result<Vec<Command>> {
        let f = ScanFilter {
            status: Some(ScanStatus::Pending),
            agent_id: Some(agent_id.into()),
            ..Default::default()
        };
        let (scans, _) = self.store.scans(&f, 0, 100)?;
        Ok(scans
            .into_iter()
            .rev()
            .map(|s| self.scan_command(&s))
            .collect())
    }

    pub(super) fn scan_command(&self, s: &ScanRecord) -> Command {
        Command::Scan {
            scan_id: s.id.clone(),
            profile: s.profile,
            exempt_rules: self.settings().exempt_rules.iter().cloned().collect(),
        }
    }

    /// Records what a hello says that may change over a VM's life (host name,
    /// addresses, OS); identity (instance ID, provider, project, labels) was fixed at
    /// enrollment and stays. A hello that differs in identity is logged, not applied.
    pub fn hello(&self, agent_id: &str, h: &HelloInfo) -> Result<()> {
        let mut claimed_other = None;
        self.store
            .update_agent(agent_id, &mut |a| {
                a.last_seen_ms = self.clock.now_ms();
                a.hostname = h.hostname.clone();
                a.ip_addresses = h.ip_addresses.clone();
                a.os = h.os.clone();
                claimed_other = (!h.instance_id.is_empty() && h.instance_id != a.instance_id)
                    .then(|| a.instance_id.clone());
            })?
            .ok_or_else(|| AppError::NotFound(format!("agent {agent_id}")))
            .inspect(|a| self.hosts.note(a))?;
        self.tell_others(crate::store::Event::Agent {
            agent_id: agent_id.to_string(),
        });
        if let Some(enrolled) = claimed_other {
            tracing::warn!(
                %agent_id,
                claimed = %crate::limits::echo(&h.instance_id),
                %enrolled,
                "hello claims another instance ID than the one enrolled; ignored"
            );
        }
        Ok(())
    }
}
