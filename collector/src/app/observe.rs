//! What `/metrics` reads from the domain: the state at a scrape, and the figures
//! that cost a walk, refreshed by the background tick.

use super::App;
use crate::metrics::{Scrape, EXPIRING_DAYS};
use crate::store::{ScanFilter, ScanStatus};

impl App {
    /// The values of a scrape: from memory, the store's counters and the CA.
    pub fn scrape(&self, server_cert_not_after_unix: i64) -> Scrape {
        let statuses = [
            ScanStatus::Pending,
            ScanStatus::Running,
            ScanStatus::Completed,
            ScanStatus::Failed,
            ScanStatus::Cancelled,
        ];
        let scans_by_status = statuses
            .into_iter()
            .filter_map(|status| {
                let f = ScanFilter {
                    status: Some(status),
                    ..Default::default()
                };
                Some((status, self.store.scan_total(&f).ok()??))
            })
            .collect();
        let min_score = self.settings().min_score;
        Scrape {
            agents_connected: self.connected().len(),
            scans_by_status,
            vms_blocked: self.store.fleet(min_score).ok().map(|f| f.vms_blocked),
            server_cert_not_after_unix,
            ca_not_after_unix: self.ca.not_after_unix(),
            data_fs: rustix::fs::statvfs(&self.config.data_dir)
                .ok()
                .map(|v| (v.f_bavail * v.f_frsize, v.f_blocks * v.f_frsize)),
        }
    }

    /// Counts the agents whose certificate expires within [`EXPIRING_DAYS`] and the
    /// store's bytes, for `/metrics`. A walk over the agents: run now and then.
    pub fn refresh_fleet_metrics(&self) {
        let soon = self.clock.now_ms() + EXPIRING_DAYS * 86_400_000;
        let expiring = match self.store.agents() {
            Ok(agents) => Some(
                agents
                    .iter()
                    .filter(|a| !a.revoked && a.cert_not_after_ms < soon)
                    .count(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot count expiring agent certificates");
                None
            }
        };
        let bytes = self.store.size_bytes().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the store's size");
            None
        });
        self.metrics.set_fleet(expiring, bytes);
    }
}
