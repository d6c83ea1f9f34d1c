//! Several collectors on one store: the lease that picks the one that does the
//! once-for-all work, and the events by which each tells the others what changed
//! (a scan for an agent connected elsewhere, a revocation, the settings, a queued
//! webhook delivery). On a store no other collector shares, this collector always
//! holds the lease and nothing is told.

use std::sync::atomic::Ordering;

use super::{App, Result};
use crate::store::{Event, ScanStatus};

/// The lease's name, and how long a holder keeps it without renewing: the
/// background loop renews it every 5 s, so a collector that dies is replaced
/// within this.
const LEASE: &str = "background";
pub const LEASE_MS: i64 = 30_000;
/// How long a collector's heartbeat (every background tick, 5 s) keeps the streams
/// it holds counted as connected by the others: three ticks.
pub const ALIVE_MS: i64 = 15_000;

impl App {
    /// This collector among those sharing the store (a random name per process).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Says this collector is alive (every background tick) and learns how many
    /// share the store; a failed heartbeat keeps the last count.
    pub fn heartbeat(&self) {
        let now = self.clock.now_ms();
        match self.store.heartbeat(&self.instance, now, now - ALIVE_MS) {
            Ok(n) => self.collectors.store(n.max(1), Ordering::SeqCst),
            Err(e) => tracing::warn!(error = %e, "cannot record this collector's heartbeat"),
        }
    }

    /// Collectors sharing the store, this one included, as of the last heartbeat.
    pub fn collectors(&self) -> usize {
        self.collectors.load(Ordering::SeqCst).max(1)
    }

    /// Whether this collector holds the lease (as of its last renewal).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Takes or renews the lease; whether this collector now holds it. A store that
    /// cannot be reached leaves this collector without it.
    pub fn take_lead(&self) -> bool {
        let held = match self
            .store
            .lease(LEASE, &self.instance, self.clock.now_ms(), LEASE_MS)
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot renew the background lease");
                false
            }
        };
        let was = self.leader.swap(held, Ordering::SeqCst);
        if held != was {
            tracing::info!(
                instance = %self.instance,
                "{} the background lease (retention, schedules, stalled scans, webhooks)",
                if held { "took" } else { "lost" }
            );
            if held {
                self.webhook_wake.notify_one();
            }
        }
        held
    }

    /// Tells the other collectors; a failure is logged (they catch up on their
    /// next resync), never the caller's error: what changed is already stored.
    pub(super) fn tell_others(&self, e: Event) {
        if let Err(err) = self.store.publish(&e) {
            tracing::warn!(event = %e.encode(), error = %err, "cannot tell the other collectors");
        }
    }

    /// Applies what another collector published.
    pub fn apply_event(&self, e: Event) -> Result<()> {
        tracing::debug!(event = %e.encode(), "another collector's change");
        match e {
            Event::Scan { agent_id, scan_id } => {
                if self.is_connected(&agent_id) {
                    if let Some(s) = self.store.scan(&scan_id)? {
                        if s.status == ScanStatus::Pending && s.agent_id == agent_id {
                            self.send(&agent_id, self.scan_command(&s));
                        }
                    }
                }
            }
            Event::Agent { agent_id } => {
                if let Some(a) = self.store.agent(&agent_id)? {
                    self.hosts.note(&a);
                }
            }
            Event::Revoke { agent_id } => self.revoked_elsewhere(&agent_id),
            Event::Stream { agent_id, since_ms } => {
                self.newer_stream_elsewhere(&agent_id, since_ms)
            }
            Event::Settings => self.reload_settings()?,
            Event::Crl => self.revocations_changed(),
            Event::Webhook => self.webhook_wake.notify_one(),
            Event::Resync => {
                self.reload_settings()?;
                for a in self.store.agents()? {
                    self.hosts.note(&a);
                    if a.revoked && !self.is_revoked(&a.id) {
                        self.revoked_elsewhere(&a.id);
                    }
                }
                self.revocations_changed();
                for agent in self.connected() {
                    for c in self.pending_commands(&agent)? {
                        self.send(&agent, c);
                    }
                }
                self.webhook_wake.notify_one();
            }
        }
        Ok(())
    }

    /// An agent revoked through another collector: refused here too, its stream
    /// here ended, its certificate on this collector's CRL.
    fn revoked_elsewhere(&self, agent_id: &str) {
        self.refuse_here(agent_id);
        self.revocations_changed();
    }

    /// A revoked agent as this collector holds it: refused from now on, its stream
    /// here ended.
    pub(super) fn refuse_here(&self, agent_id: &str) {
        self.revoked
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent_id.to_string());
        if let Some(live) = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id)
        {
            live.end.end(format!("agent {agent_id} is revoked"));
        }
    }
}
