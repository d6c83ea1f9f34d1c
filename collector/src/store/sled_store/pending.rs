//! Scan writes held back within an ingest round, then applied as one batch.
//!
//! Each `apply_batch` costs sled two synchronous log-buffer writes (it seals the
//! buffer before and after pinning the log, `PageCache::pin_log`), each a job on
//! sled's I/O pool that wakes every idle I/O thread: measured, the larger part of the
//! collector's context switches at fleet rates. A scan is written three times on its
//! way (created, started, finished), so writes made inside an ingest round
//! ([`crate::ingest`]) are gathered here and applied together: by the next sync
//! (before it flushes), at the round's end, before any read that walks a range of
//! the tree, or when many are waiting.
//!
//! Nothing changes for a reader: a point read (a scan, a counter, an agent's newest
//! scan) sees the gathered writes, and every walk applies them first. Nothing
//! changes for durability either: a sync applies them before its flush, and nothing
//! is acknowledged before a sync. Writes made outside a round are applied at once,
//! with any gathered before them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::*;

/// Writes gathered at most before they are applied without waiting for the round.
const MAX_HELD: usize = 4096;

/// Scan writes not yet applied to the `scans` tree: key → value (`None`: removed).
/// Each scan write adds all of its entries at once (the record, its index entries,
/// counters and the agent's newest-scan pointers), so a batch holds whole writes.
#[derive(Default)]
pub(super) struct Pending {
    ops: HashMap<Vec<u8>, Option<sled::IVec>>,
    /// The records written (for an open snapshot's undo log).
    records: Vec<Vec<u8>>,
}

impl Pending {
    /// The value of `key` with the gathered writes over the tree's.
    pub(super) fn get(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<sled::IVec>> {
        match self.ops.get(key) {
            Some(v) => Ok(v.clone()),
            None => tree.get(key).map_err(backend),
        }
    }

    pub(super) fn insert(&mut self, key: impl Into<Vec<u8>>, v: impl Into<sled::IVec>) {
        self.ops.insert(key.into(), Some(v.into()));
    }

    pub(super) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.insert(key.into(), None);
    }

    pub(super) fn wrote_record(&mut self, key: &[u8]) {
        self.records.push(key.to_vec());
    }
}

/// The scans tree's gathered writes, and the lock that serialises scan writes (each
/// reads what it replaces, then writes).
#[derive(Default)]
pub(super) struct HeldScans {
    pending: Mutex<Pending>,
    /// Whether anything is gathered: point reads skip the lock when not.
    any: AtomicBool,
}

impl SledStore {
    /// The scan-write lock, with the writes gathered so far.
    pub(super) fn scan_writes(&self) -> MutexGuard<'_, Pending> {
        self.held.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a scan write made under `p`: applied now outside an ingest round (or when
    /// many are waiting), else left for the round's end.
    pub(super) fn scan_written(&self, p: &mut Pending) -> Result<()> {
        self.held.any.store(!p.ops.is_empty(), Ordering::SeqCst);
        if !crate::ingest::in_round() || p.ops.len() >= MAX_HELD {
            self.apply_held(p)?;
        }
        Ok(())
    }

    /// Applies the gathered writes as one batch.
    pub(super) fn apply_held(&self, p: &mut Pending) -> Result<()> {
        if p.ops.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (k, v) in p.ops.drain() {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        let records = std::mem::take(&mut p.records);
        let keys: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let applied = self.write(Section::Scans, &keys, || {
            self.scans.apply_batch(batch).map_err(backend)
        });
        self.held.any.store(false, Ordering::SeqCst);
        applied
    }

    /// Applies whatever scan writes are gathered (before a walk, a sync, a snapshot,
    /// or at the end of an ingest round).
    pub(super) fn settle_scans(&self) -> Result<()> {
        if !self.held.any.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut p = self.scan_writes();
        self.apply_held(&mut p)
    }

    /// A point read of the scans tree that sees the gathered writes.
    pub(super) fn scans_get(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        if !self.held.any.load(Ordering::SeqCst) {
            return self.scans.get(key).map_err(backend);
        }
        self.scan_writes().get(&self.scans, key)
    }
}

impl Drop for SledStore {
    /// Writes still held are applied, as sled keeps what was written before a drop.
    fn drop(&mut self) {
        if let Err(e) = self.settle_scans() {
            tracing::error!(error = %e, "scan writes held by an ingest round were lost at close");
        }
    }
}
