//! Point-in-time snapshots of the sled backend while it goes on writing, and the
//! loader that writes a snapshot's records into a new store (`crate::backup`).
//!
//! sled has no snapshot across trees, so the store keeps one itself, copy-on-write:
//!
//! - Every write of a record passes a *gate* (the shared side of a read-write lock),
//!   and, while a snapshot is open, first keeps the record's value as it is (or that
//!   it is absent) in the snapshot's *undo log* — once per key, so what is kept is the
//!   value at the cut.
//! - The *cut* takes the gate's exclusive side: it waits for the writes in flight,
//!   opens the undo log and the result log's files (a deleted file stays readable
//!   through its open handle; bytes appended later are past the length noted), reads
//!   the audit head, and lets go. That is all the writers ever wait for; the figure is
//!   [`Snapshot::pause`].
//! - A reader walks a tree in key order and, for each key, looks in the undo log: an
//!   earlier value kept there wins (a key created since the cut is skipped), otherwise
//!   the live value is the value at the cut (a write would have kept it first). Keys
//!   deleted since the cut are in the undo log and not in the tree: they are given at
//!   the end of the walk, unless the walk already passed their place when they were
//!   kept (then it gave them from the tree). The reader's position is kept under the
//!   same lock as the undo log, so the two never disagree.
//!
//! Indexes and counters (keys from `IDX`) are not part of a snapshot: a restore
//! rebuilds them from the records. Neither are console sessions or the store's own
//! bookkeeping (the index version, leases).
//!
//! The undo log is memory: it holds what changed during the backup, at most
//! [`MAX_KEPT_BYTES`]; past that the snapshot fails (the writes never do) and says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;

use super::sled_index::{self as ix, IDX};
use super::{Result, Section, Snapshot, SnapshotFile, SnapshotRecord, StoreError};

/// The most the undo log of one snapshot holds (keys, earlier values and overhead).
pub const MAX_KEPT_BYTES: usize = 256 << 20;
/// Bookkeeping counted per kept key beside its bytes.
const ENTRY_OVERHEAD: usize = 64;

/// sled's, the file system's or the codec's error, chained.
fn backend(e: impl Into<StoreError>) -> StoreError {
    e.into()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a key of `section` is a record a snapshot holds (not an index entry, not
/// the store's own bookkeeping).
pub(super) fn is_record(section: Section, key: &[u8]) -> bool {
    match section {
        Section::Agents | Section::Scans | Section::Audit => key.first() != Some(&IDX),
        Section::Meta => !own_bookkeeping(key),
        _ => true,
    }
}

/// Meta keys that belong to one store: rebuilt or taken again, never moved.
fn own_bookkeeping(key: &[u8]) -> bool {
    key == ix::INDEX_VERSION_KEY.as_bytes() || key.starts_with(b"lease/")
}

/// Where a snapshot's reader is in a section's walk.
#[derive(Default)]
enum Pos {
    #[default]
    Before,
    /// The last key it looked up.
    At(Vec<u8>),
    /// Past the end.
    Done,
}

/// A record's value at the cut, kept before its first write since.
struct Kept {
    /// `None`: the record did not exist at the cut.
    value: Option<Vec<u8>>,
    /// The current walk has dealt with this key (given it, or passed its place).
    seen: bool,
}

#[derive(Default)]
struct SectionUndo {
    pos: Pos,
    kept: BTreeMap<Vec<u8>, Kept>,
}

struct Undo {
    sections: Vec<SectionUndo>,
    bytes: usize,
    /// Why the snapshot can no longer be read (too many changes, a failed read).
    failed: Option<String>,
}

impl Undo {
    fn new() -> Undo {
        Undo {
            sections: Section::ALL
                .iter()
                .map(|_| SectionUndo::default())
                .collect(),
            bytes: 0,
            failed: None,
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(why);
        // What was kept is of no use any more: free it now.
        for s in &mut self.sections {
            s.kept.clear();
        }
        self.bytes = 0;
    }

    fn keep(&mut self, section: Section, tree: &sled::Tree, keys: &[&[u8]]) {
        for k in keys {
            if self.failed.is_some() {
                return;
            }
            let s = &mut self.sections[section.index()];
            if s.kept.contains_key(*k) {
                continue;
            }
            let value = match tree.get(k) {
                Ok(v) => v.map(|v| v.to_vec()),
                Err(e) => {
                    self.fail(format!(
                        "reading a {} record for the snapshot failed: {e}",
                        section.name()
                    ));
                    return;
                }
            };
            let seen = match &s.pos {
                Pos::Before => false,
                Pos::At(p) => *k <= p.as_slice(),
                Pos::Done => true,
            };
            self.bytes += k.len() + value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD;
            s.kept.insert(k.to_vec(), Kept { value, seen });
            if self.bytes > MAX_KEPT_BYTES {
                self.fail(format!(
                    "more than {} MiB of records changed while the backup was read; \
                     take it when the collector is less busy",
                    MAX_KEPT_BYTES >> 20
                ));
            }
        }
    }
}

enum Phase {
    Idle,
    /// A backup is starting (its audit entry is being written): no other may.
    Reserved,
    Open(Undo),
}

/// The gate and the undo log of the one snapshot a store may have open.
pub(super) struct Cow {
    gate: RwLock<()>,
    /// Whether a snapshot is open; changed only under the gate's exclusive side
    /// (opening) or re-checked under `phase` (closing).
    open: AtomicBool,
    phase: Mutex<Phase>,
}

impl Default for Cow {
    fn default() -> Self {
        Cow {
            gate: RwLock::new(()),
            open: AtomicBool::new(false),
            phase: Mutex::new(Phase::Idle),
        }
    }
}

/// What the undo log says of a key the walk found in the tree.
enum Look {
    /// Unchanged since the cut: the live value.
    Live,
    /// Changed since: its value at the cut (`None`: created since).
    Was(Option<Vec<u8>>),
}

impl Cow {
    /// The shared side of the gate, held across one write of records.
    pub(super) fn pass(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the values `keys` of `section` have now, unless kept already; called
    /// with the gate passed, before the write. Nothing to do without a snapshot.
    pub(super) fn keep(&self, section: Section, tree: &sled::Tree, keys: &[&[u8]]) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        if let Phase::Open(undo) = &mut *lock(&self.phase) {
            undo.keep(section, tree, keys);
        }
    }

    /// Claims the one snapshot slot.
    pub(super) fn reserve(&self) -> Result<()> {
        let mut p = lock(&self.phase);
        match *p {
            Phase::Idle => {
                *p = Phase::Reserved;
                Ok(())
            }
            _ => Err(StoreError::Refused(
                "a backup is already being taken; try again when it is done".into(),
            )),
        }
    }

    /// Gives the slot back (a backup that did not start, or one that ended).
    pub(super) fn release(&self) {
        self.open.store(false, Ordering::Release);
        *lock(&self.phase) = Phase::Idle;
    }

    /// Takes the cut: holds every writer off while `at_cut` runs (it reads what
    /// must be read at the cut) and the undo log opens. Returns what `at_cut`
    /// returned and how long writers were held.
    pub(super) fn cut<T>(&self, at_cut: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
        let start = std::time::Instant::now();
        let _all = self.gate.write().unwrap_or_else(|p| p.into_inner());
        let got = at_cut()?;
        *lock(&self.phase) = Phase::Open(Undo::new());
        self.open.store(true, Ordering::Release);
        Ok((got, start.elapsed()))
    }

    /// A walk of `section` begins: nothing of it is seen yet.
    fn start(&self, section: Section) -> Result<()> {
        let mut p = lock(&self.phase);
        let undo = open_undo(&mut p)?;
        let s = &mut undo.sections[section.index()];
        s.pos = Pos::Before;
        for k in s.kept.values_mut() {
            k.seen = false;
        }
        Ok(())
    }

    /// The walk of `section` is at `key`, found in the tree.
    fn look(&self, section: Section, key: &[u8]) -> Result<Look> {
        let mut p = lock(&self.phase);
        let s = &mut open_undo(&mut p)?.sections[section.index()];
        s.pos = Pos::At(key.to_vec());
        Ok(match s.kept.get_mut(key) {
            Some(k) => {
                k.seen = true;
                Look::Was(k.value.clone())
            }
            None => Look::Live,
        })
    }

    /// The walk of `section` reached the end of the tree: the records deleted since
    /// the cut that it has not given, in key order.
    fn rest(&self, section: Section) -> Result<Vec<SnapshotRecord>> {
        let mut p = lock(&self.phase);
        let s = &mut open_undo(&mut p)?.sections[section.index()];
        s.pos = Pos::Done;
        Ok(s.kept
            .iter_mut()
            .filter(|(_, k)| !k.seen)
            .filter_map(|(key, k)| {
                k.seen = true;
                k.value.clone().map(|v| (key.clone(), v))
            })
            .collect())
    }
}

fn open_undo(p: &mut Phase) -> Result<&mut Undo> {
    match p {
        Phase::Open(u) => match &u.failed {
            Some(why) => Err(StoreError::Refused(format!("the backup failed: {why}"))),
            None => Ok(u),
        },
        _ => Err(StoreError::Refused("the snapshot is closed".into())),
    }
}

/// An open snapshot of a [`super::sled_store::SledStore`].
pub(super) struct SledSnapshot {
    pub(super) cow: Arc<Cow>,
    /// The tree of each section, in [`Section::ALL`] order.
    pub(super) trees: Vec<sled::Tree>,
    pub(super) files: Vec<SnapshotFile>,
    pub(super) head: (u64, String),
    pub(super) pause: Duration,
}

impl Drop for SledSnapshot {
    fn drop(&mut self) {
        self.cow.release();
    }
}

/// A walk of one section as it was at the cut.
struct Records<'a> {
    snap: &'a SledSnapshot,
    section: Section,
    live: Option<sled::Iter>,
    rest: Option<std::vec::IntoIter<SnapshotRecord>>,
}

impl Iterator for Records<'_> {
    type Item = Result<SnapshotRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(live) = &mut self.live {
            match live.next() {
                Some(Ok((k, v))) => {
                    if !is_record(self.section, &k) {
                        continue;
                    }
                    match self.snap.cow.look(self.section, &k) {
                        Ok(Look::Live) => return Some(Ok((k.to_vec(), v.to_vec()))),
                        Ok(Look::Was(Some(was))) => return Some(Ok((k.to_vec(), was))),
                        Ok(Look::Was(None)) => continue,
                        Err(e) => return Some(Err(e)),
                    }
                }
                Some(Err(e)) => return Some(Err(backend(e))),
                None => {
                    self.live = None;
                    match self.snap.cow.rest(self.section) {
                        Ok(r) => self.rest = Some(r.into_iter()),
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
        let section = self.section;
        self.rest
            .as_mut()?
            .find(|(k, _)| is_record(section, k))
            .map(Ok)
    }
}

impl Snapshot for SledSnapshot {
    fn records(&self, section: Section) -> Box<dyn Iterator<Item = Result<SnapshotRecord>> + '_> {
        if let Err(e) = self.cow.start(section) {
            return Box::new(std::iter::once(Err(e)));
        }
        let tree = &self.trees[section.index()];
        let live = match section {
            // Records are below the index range: the walk never reads the indexes.
            Section::Agents | Section::Scans | Section::Audit => tree.range(..[IDX].as_slice()),
            _ => tree.iter(),
        };
        Box::new(Records {
            snap: self,
            section,
            live: Some(live),
            rest: None,
        })
    }

    fn files(&self) -> &[SnapshotFile] {
        &self.files
    }

    fn audit_head(&self) -> (u64, String) {
        self.head.clone()
    }

    fn pause(&self) -> Duration {
        self.pause
    }
}

/// Writes a snapshot's records and files into a new sled store directory. The store
/// opened on it afterwards rebuilds its indexes from the records.
pub struct Loader {
    dir: PathBuf,
    db: sled::Db,
    trees: Vec<sled::Tree>,
    /// Records not yet applied, per tree, with how many.
    batches: Vec<(sled::Batch, usize)>,
}

/// Records applied to a tree at once.
const LOAD_BATCH: usize = 10_000;

/// The tree of each section, in [`Section::ALL`] order.
pub(super) const TREES: [&str; 9] = [
    "meta",
    "agents",
    "tokens",
    "users",
    "scans",
    "results",
    "audit",
    "webhook_deliveries",
    "webhook_attempts",
];

/// The largest record key a loader takes.
pub const MAX_KEY_BYTES: usize = 64 << 10;

impl Loader {
    /// Creates the store directory `dir`, which must not exist yet.
    pub fn create(dir: &Path) -> Result<Loader> {
        if dir.exists() {
            return Err(StoreError::Refused(format!(
                "{} exists already; a restore writes a new store",
                dir.display()
            )));
        }
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .open()
            .map_err(backend)?;
        let trees = TREES
            .iter()
            .map(|t| db.open_tree(t).map_err(backend))
            .collect::<Result<Vec<_>>>()?;
        std::fs::create_dir_all(dir.join(super::sled_store::LOG_DIR)).map_err(backend)?;
        Ok(Loader {
            dir: dir.to_path_buf(),
            db,
            batches: trees.iter().map(|_| Default::default()).collect(),
            trees,
        })
    }

    /// Writes one record. A result locator gets a new chunk number from this store's
    /// generator, in the order written (so a scan's chunks keep their order, and
    /// chunks written later sort after them).
    pub fn record(&mut self, section: Section, key: &[u8], value: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return Err(StoreError::Refused(format!(
                "a {} record with a key of {} bytes",
                section.name(),
                key.len()
            )));
        }
        if !is_record(section, key) {
            return Err(StoreError::Refused(format!(
                "a {} key that is an index entry or the store's own bookkeeping",
                section.name()
            )));
        }
        let i = section.index();
        let (batch, n) = &mut self.batches[i];
        match (section, super::sled_store::chunk_scan(key)) {
            (Section::Results, Some(scan)) => {
                let id = self.db.generate_id().map_err(backend)?;
                batch.insert(super::sled_store::chunk_key(scan, id), value);
            }
            _ => batch.insert(key, value),
        }
        *n += 1;
        if *n == LOAD_BATCH {
            let (batch, _) = std::mem::take(&mut self.batches[i]);
            self.trees[i].apply_batch(batch).map_err(backend)?;
        }
        Ok(())
    }

    /// Creates a file of the store (`results/NNNNNNNN.results`, the only kind),
    /// mode 0600, to be written by the caller.
    pub fn file(&self, name: &str) -> Result<std::fs::File> {
        let Some(day) = name
            .strip_prefix(super::sled_store::LOG_DIR)
            .and_then(|n| n.strip_prefix('/'))
            .filter(|n| super::result_log::is_day_file(n))
        else {
            return Err(StoreError::Refused(format!(
                "`{name}` is not a file of the store"
            )));
        };
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(self.dir.join(super::sled_store::LOG_DIR).join(day))
            .map_err(|source| StoreError::File {
                what: format!("cannot create {name}"),
                source,
            })
    }

    /// Makes everything written durable and closes the store.
    pub fn finish(mut self) -> Result<()> {
        for (tree, (batch, _)) in self.trees.iter().zip(std::mem::take(&mut self.batches)) {
            tree.apply_batch(batch).map_err(backend)?;
        }
        self.db.flush().map_err(backend)?;
        drop(self.trees);
        drop(self.db);
        super::sled_store::fsync_dir_all(&self.dir).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use rampart_report::Status;

    use super::*;
    use crate::store::sled_store::SledStore;
    use crate::store::{ResultRecord, ScanRecord, ScanStatus, Store, TokenRecord};

    fn token(i: usize) -> TokenRecord {
        TokenRecord {
            id: format!("tok-{i:03}"),
            hash: format!("h-{i:03}"),
            project: None,
            created_by: "a".into(),
            created_at_ms: 1,
            expires_at_ms: i64::MAX,
            max_uses: 1,
            uses: 0,
            revoked: false,
        }
    }

    /// A scan `s-NNN` with one chunk of results; completed scans are the ones a
    /// retention pass deletes the results of.
    fn scan_with_results(s: &SledStore, i: usize, completed: bool) {
        let mut sc = ScanRecord::pending(
            format!("s-{i:03}"),
            "ag",
            None,
            "manual",
            rampart_report::Profile::default(),
            1,
        );
        if completed {
            sc.status = ScanStatus::Completed;
        }
        s.put_scan(&sc).unwrap();
        let r = ResultRecord {
            rule_id: "1.1".into(),
            status: Status::Pass,
            evidence: vec![format!("{i}")],
        };
        s.put_results(&sc.id, &[r], crate::clock::system_ms())
            .unwrap();
    }

    /// A whole walk, sorted (records deleted since the cut come at its end).
    fn walk(snap: &dyn Snapshot, section: Section) -> Vec<SnapshotRecord> {
        let mut all = snap.records(section).collect::<Result<Vec<_>>>().unwrap();
        all.sort();
        all
    }

    /// Half a walk, `change`, the rest: sorted, it is exactly the first walk, each
    /// record once, whatever `change` did before and behind the walk's position.
    fn interrupted(
        snap: &dyn Snapshot,
        section: Section,
        first: &[SnapshotRecord],
        change: impl FnOnce(),
    ) {
        let mut it = snap.records(section);
        let mut got: Vec<SnapshotRecord> = (0..first.len() / 2)
            .map(|_| it.next().unwrap().unwrap())
            .collect();
        change();
        got.extend(it.map(|r| r.unwrap()));
        got.sort();
        assert_eq!(got.len(), first.len(), "{section:?}: each record once");
        assert!(got == first, "{section:?}: the records at the cut");
    }

    #[test]
    fn a_walk_gives_each_record_once_as_it_was_at_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("db")).unwrap();
        for i in 0..100 {
            s.put_token(&token(i)).unwrap();
            scan_with_results(&s, i, i == 5 || i == 95);
        }
        let snap = s.snapshot(&mut || Ok(())).unwrap();
        let tokens = walk(&*snap, Section::Tokens);
        let results = walk(&*snap, Section::Results);
        let scans = walk(&*snap, Section::Scans);
        assert_eq!((tokens.len(), results.len(), scans.len()), (100, 100, 100));
        // Updates and new records on both sides of the walk.
        interrupted(&*snap, Section::Tokens, &tokens, || {
            for i in [2, 97] {
                s.revoke_token(&format!("tok-{i:03}")).unwrap();
            }
            s.put_token(&token(150)).unwrap();
            s.put_token(&TokenRecord {
                hash: "a-first".into(),
                ..token(151)
            })
            .unwrap();
        });
        // Deletions on both sides (retention drops the results of the two completed
        // scans), and new records.
        interrupted(&*snap, Section::Results, &results, || {
            assert_eq!(s.prune_results(10).unwrap(), 2);
            scan_with_results(&s, 3, false);
            scan_with_results(&s, 200, false);
        });
        interrupted(&*snap, Section::Scans, &scans, || {
            scan_with_results(&s, 1, true);
            scan_with_results(&s, 99, true);
            scan_with_results(&s, 300, true);
        });
        // Walks begun after the changes see the cut too.
        assert!(walk(&*snap, Section::Tokens) == tokens);
        assert!(walk(&*snap, Section::Results) == results);
        assert!(walk(&*snap, Section::Scans) == scans);
        drop(snap);
        // The next snapshot sees the changes.
        let snap = s.snapshot(&mut || Ok(())).unwrap();
        assert_eq!(walk(&*snap, Section::Tokens).len(), 102);
        assert_eq!(walk(&*snap, Section::Results).len(), 103);
    }

    #[test]
    fn the_cut_waits_for_writes_in_flight_and_no_longer() {
        let dir = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(SledStore::open(&dir.path().join("db")).unwrap());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (s, stop, done) = (s.clone(), stop.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        scan_with_results(&s, w * 100_000 + i, false);
                        done.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        let snap = s.snapshot(&mut || Ok(())).unwrap();
        let (scans, results) = (
            walk(&*snap, Section::Scans).len(),
            walk(&*snap, Section::Results).len(),
        );
        // The writers go on while the snapshot is open: wait (on a loaded machine they
        // may not have been scheduled yet) until one more scan than the cut holds is
        // written, or give up after a generous bound and let the assertion say so.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::Relaxed) <= scans && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(written > scans, "writes went on after the cut");
        // Each scan was written with its results inside the gate... in two writes:
        // the cut may fall between a scan and its chunk, never inside either.
        assert!(
            results == scans || results + 2 >= scans,
            "{results} {scans}"
        );
        assert!(snap.pause() < Duration::from_secs(1), "{:?}", snap.pause());
    }
}
