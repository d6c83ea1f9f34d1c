//! Read models for the views: scan lists by cursor, the fleet overview and the
//! audit log, each answered from the store's indexes and counters.

use super::{App, Result};
use crate::store::{
    AgentRecord, AuditFilter, AuditList, DayScores, Fleet, ScanCursor, ScanFilter, ScanList,
    ScanRecord,
};

/// How many recent scans the overview shows.
pub const RECENT_SCANS: usize = 20;

/// The overview: the fleet's figures and the newest scans with their agents.
#[derive(Debug, Clone)]
pub struct Overview {
    pub fleet: Fleet,
    pub min_score: f64,
    pub recent: Vec<(ScanRecord, Option<AgentRecord>)>,
    /// The last [`TREND_DAYS`] UTC days (today included) that have completed scans.
    pub trend: Vec<DayScores>,
    /// The first day of the trend (days since the epoch).
    pub trend_from: u32,
}

/// Days the overview's trend covers.
pub const TREND_DAYS: u32 = 30;

impl App {
    /// Matching scans, newest first, from a cursor (see [`ScanCursor`]).
    pub fn list_scans(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        offset: usize,
        limit: usize,
    ) -> Result<ScanList> {
        Ok(self.store.scan_list(filter, cursor, offset, limit)?)
    }

    /// A page of matching scans without their total: its cost follows the page,
    /// whatever the filter. The cursor of the next page, if more match.
    pub fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        Ok(self.store.scan_page(filter, cursor, limit)?)
    }

    /// Completed scans by score, then ID, past `past` in that order (see
    /// [`crate::store::Store::scans_by_score`]).
    pub fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        Ok(self.store.scans_by_score(low_first, past, limit)?)
    }

    /// How many scans match, when counters know it without a walk.
    pub fn scan_total(&self, filter: &ScanFilter) -> Result<Option<usize>> {
        Ok(self.store.scan_total(filter)?)
    }

    pub fn overview(&self) -> Result<Overview> {
        let min_score = self.settings().min_score;
        let fleet = self.store.fleet(min_score)?;
        let recent = self
            .store
            .scan_list(
                &ScanFilter::default(),
                &ScanCursor::default(),
                0,
                RECENT_SCANS,
            )?
            .scans;
        let agents = self.agents_of_scans(&recent)?;
        let out: Vec<(ScanRecord, Option<AgentRecord>)> = recent
            .into_iter()
            .map(|s| {
                let a = agents.get(&s.agent_id).cloned();
                (s, a)
            })
            .collect();
        let today = (self.clock.now_ms().div_euclid(86_400_000)).max(0) as u32;
        let trend_from = today.saturating_sub(TREND_DAYS - 1);
        Ok(Overview {
            fleet,
            min_score,
            recent: out,
            trend: self.store.daily_scores(trend_from, TREND_DAYS)?,
            trend_from,
        })
    }

    /// Matching audit entries from the newest, older than `before` (a sequence number).
    pub fn audit_log(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<AuditList> {
        Ok(self.store.audit_list(filter, before, offset, limit)?)
    }
}
