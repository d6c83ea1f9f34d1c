//! Scan and audit writes held back within an ingest round, then applied as one
//! batch per tree.
//!
//! Each `apply_batch` costs sled two synchronous log-buffer writes (it seals the
//! buffer before and after pinning the log, `PageCache::pin_log`), each a job on
//! sled's I/O pool that wakes every idle I/O thread: measured, the larger part of the
//! collector's context switches at fleet rates. A scan is written three times on its
//! way (created, started, finished) and its creation is audited, so writes made
//! inside an ingest round ([`crate::ingest`]) are gathered here and applied together:
//! by the next sync (before it flushes), at the round's end, before any read that
//! walks a range of the tree, or when many are waiting.
//!
//! Nothing changes for a reader: a point read (a scan, a counter, an agent's newest
//! scan, the audit chain's head) sees the gathered writes, and every walk takes its
//! tree from [`SledStore::scans_to_walk`] or [`SledStore::audit_to_walk`], which
//! apply them first. Nothing changes for durability either: a sync applies them before its flush, and nothing
//! is acknowledged before a sync. Writes made outside a round are applied at once,
//! with any gathered before them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::*;

/// Writes gathered at most before they are applied without waiting for the round.
const MAX_HELD: usize = 4096;

/// Writes not yet applied to a tree: key → value (`None`: removed). Each write adds
/// all of its entries at once (the record, its index entries and counters, an
/// agent's newest-scan pointers), so a batch holds whole writes.
#[derive(Default)]
pub(super) struct Pending {
    ops: HashMap<Vec<u8>, Option<sled::IVec>>,
    /// The records written (for an open snapshot's undo log).
    records: Vec<Vec<u8>>,
    /// The audit log's newest entry, while it is held here.
    pub(super) audit_head: Option<AuditRecord>,
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

/// A tree's gathered writes, and the lock that serialises its writers (each reads
/// what it replaces or chains onto, then writes).
pub(super) struct Held {
    section: Section,
    pending: Mutex<Pending>,
    /// Whether anything is gathered: point reads skip the lock when not.
    any: AtomicBool,
}

impl Held {
    pub(super) fn new(section: Section) -> Held {
        Held {
            section,
            pending: Mutex::new(Pending::default()),
            any: AtomicBool::new(false),
        }
    }

    /// The write lock, with the writes gathered so far.
    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SledStore {
    /// Ends a write to `held`'s tree made under `p`: applied now outside an ingest
    /// round (or when many are waiting), else left for the round's end.
    pub(super) fn written(&self, held: &Held, p: &mut Pending) -> Result<()> {
        held.any.store(!p.ops.is_empty(), Ordering::SeqCst);
        if !crate::ingest::in_round() || p.ops.len() >= MAX_HELD {
            self.apply(held, p)?;
        }
        Ok(())
    }

    /// Applies `held`'s gathered writes as one batch.
    pub(super) fn apply(&self, held: &Held, p: &mut Pending) -> Result<()> {
        p.audit_head = None;
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
        let tree = self.tree(held.section);
        let applied = self.write(held.section, &keys, || {
            tree.apply_batch(batch).map_err(backend)
        });
        held.any.store(false, Ordering::SeqCst);
        applied
    }

    /// The scans tree for a read of more than one key (a walk over a range, or
    /// counters read together): the gathered writes are applied first. Every such
    /// read takes the tree from here, so none can miss a held write; a point read
    /// goes through [`SledStore::scans_get`] instead.
    pub(super) fn scans_to_walk(&self) -> Result<&sled::Tree> {
        self.settle_held(&self.held_scans)?;
        Ok(&self.scans)
    }

    /// The same for the audit log.
    pub(super) fn audit_to_walk(&self) -> Result<&sled::Tree> {
        self.settle_held(&self.held_audit)?;
        Ok(&self.audit)
    }

    /// Applies everything gathered (a sync, a round's end, a snapshot's cut, a close).
    pub(super) fn settle_all(&self) -> Result<()> {
        self.settle_held(&self.held_scans)?;
        self.settle_held(&self.held_audit)
    }

    fn settle_held(&self, held: &Held) -> Result<()> {
        if !held.any.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut p = held.lock();
        self.apply(held, &mut p)
    }

    /// A point read of the scans tree that sees the gathered writes.
    pub(super) fn scans_get(&self, key: &[u8]) -> Result<Option<sled::IVec>> {
        if !self.held_scans.any.load(Ordering::SeqCst) {
            return self.scans.get(key).map_err(backend);
        }
        self.held_scans.lock().get(&self.scans, key)
    }
}

impl Drop for SledStore {
    /// Writes still held are applied, as sled keeps what was written before a drop.
    fn drop(&mut self) {
        if let Err(e) = self.settle_all() {
            tracing::error!(error = %e, "writes held by an ingest round were lost at close");
        }
    }
}
