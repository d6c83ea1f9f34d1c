//! The collector's own rule metadata, by content version and by scan.

use std::sync::Arc;

use super::{App, Catalog, Result};
use crate::store::ScanRecord;

impl App {
    /// The collector's own rule metadata for an agent's content version (never what
    /// an agent sent).
    pub fn catalog(&self, version: &str) -> Result<Option<Arc<Catalog>>> {
        Ok(self.catalogs.for_version(version))
    }

    /// The rule metadata a scan was made with (the newest catalog the collector has
    /// for the scan's benchmark content), for titles and severities in views.
    pub fn catalog_for_scan(&self, s: &ScanRecord) -> Option<Arc<Catalog>> {
        s.content_version
            .as_deref()
            .and_then(|v| self.catalog(v).ok().flatten())
    }

    /// Whether some benchmark the collector knows has a rule with this ID.
    pub fn knows_rule(&self, id: &str) -> bool {
        self.catalogs.knows_rule(id)
    }
}
