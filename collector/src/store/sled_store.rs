//! The sled backend. sled's `flush` writes with `sync_file_range`, which is not a
//! durability barrier, so [`SledStore::sync`] also `fsync`s every file of the database;
//! concurrent callers share one such flush (group commit).
//!
//! Scans, agents and the audit log carry secondary indexes and counters in their
//! own trees (layout in [`super::sled_index`]), so that no read walks every record.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex};

use super::codec::{decode, decode_chunk, encode, encode_chunk};
use super::result_log::{self, Locator, ResultLog};
use super::sled_index::{self as ix, Deltas, IDX};
use super::sled_snapshot::{Cow, SledSnapshot, TREES};
use super::{
    audit_chain, AgentRecord, AttemptRecord, AuditFilter, AuditList, AuditRecord, DayScores,
    DeliveryRecord, DeliveryState, Fleet, Result, ResultRecord, ScanCursor, ScanFilter, ScanList,
    ScanRecord, ScanStatus, Section, SessionRecord, Snapshot, SnapshotFile, Store, StoreError,
    TokenRecord, TokenUse, UserRecord,
};

/// sled under a directory.
pub struct SledStore {
    dir: PathBuf,
    db: sled::Db,
    agents: sled::Tree,
    tokens: sled::Tree,
    scans: sled::Tree,
    results: sled::Tree,
    meta: sled::Tree,
    users: sled::Tree,
    sessions: sled::Tree,
    audit: sled::Tree,
    deliveries: sled::Tree,
    attempts: sled::Tree,
    /// Result chunks; `results` holds their locators.
    log: ResultLog,
    audit_lock: Mutex<()>,
    /// Serialises scan writes: each reads the record it replaces, then writes it
    /// with its index entries and counters in one batch.
    scan_lock: Mutex<()>,
    /// The same for agents and their instance-ID index.
    agent_lock: Mutex<()>,
    group: GroupCommit,
    /// The write gate and the undo log of an open snapshot (`sled_snapshot`): every
    /// write of a record goes through [`SledStore::write`].
    cow: Arc<Cow>,
}

/// Group commit: a caller of `sync` waits for a flush that *started* after its call
/// and shares it with every caller that arrived meanwhile.
#[derive(Default)]
struct GroupCommit {
    state: Mutex<SyncState>,
    done: Condvar,
}

struct SyncState {
    /// Flushes started and finished so far (numbered from 1).
    started: u64,
    finished: u64,
    running: bool,
    /// The outcome of flush number `finished`.
    last: std::result::Result<(), String>,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            started: 0,
            finished: 0,
            running: false,
            last: Ok(()),
        }
    }
}

/// Meta key: the last scan (ID) whose results retention has dealt with, and every
/// one before it.
const PRUNED_TO_KEY: &str = "results_pruned_to";

/// Every record key is below `[IDX]`.
fn records(tree: &sled::Tree) -> sled::Iter {
    tree.range(..[IDX].as_slice())
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Audit keys are big-endian sequence numbers; errors name them as `audit/<seq>`.
fn decode_audit(key: &[u8], v: &[u8]) -> Result<AuditRecord> {
    let name = match <[u8; 8]>::try_from(key) {
        Ok(b) => format!("audit/{}", u64::from_be_bytes(b)),
        Err(_) => format!("audit/{}", String::from_utf8_lossy(key)),
    };
    decode(name.as_bytes(), v)
}

/// The byte after `scan\0` that marks a chunk's locator; a rule ID never starts
/// with it.
const CHUNK: u8 = 0;

/// The result log's directory, inside the store's.
pub(super) const LOG_DIR: &str = "results";

pub(super) fn chunk_key(scan_id: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(scan_id.len() + 10);
    k.extend_from_slice(scan_id.as_bytes());
    k.push(0);
    k.push(CHUNK);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The scan of a chunk's locator key (`None` for a key of the layout before chunks).
pub(super) fn chunk_scan(key: &[u8]) -> Option<&str> {
    let split = key.len().checked_sub(10)?;
    (key[split..split + 2] == [0, CHUNK])
        .then(|| std::str::from_utf8(&key[..split]).ok())
        .flatten()
}

/// Writes to a tree in batches of 10,000 operations: rebuilding the indexes of a
/// million-scan store in one batch held gigabytes at once.
struct Batches<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    n: usize,
}

impl<'a> Batches<'a> {
    const SIZE: usize = 10_000;

    fn new(tree: &'a sled::Tree) -> Batches<'a> {
        Batches {
            tree,
            batch: sled::Batch::default(),
            n: 0,
        }
    }

    fn insert(&mut self, k: impl Into<sled::IVec>, v: impl Into<sled::IVec>) -> Result<()> {
        self.batch.insert(k, v);
        self.step()
    }

    fn remove(&mut self, k: impl Into<sled::IVec>) -> Result<()> {
        self.batch.remove(k);
        self.step()
    }

    fn step(&mut self) -> Result<()> {
        self.n += 1;
        if self.n.is_multiple_of(Self::SIZE) {
            self.tree
                .apply_batch(std::mem::take(&mut self.batch))
                .map_err(backend)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        self.tree.apply_batch(self.batch).map_err(backend)
    }
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore> {
        let db = open_db(dir, LOCK_WAIT)?.ok_or_else(|| {
            backend(format!(
                "could not acquire lock on {}: another process holds the database",
                dir.display()
            ))
        })?;
        SledStore::with_db(dir, db)
    }

    /// Opens the database in `dir` unless another process holds it (a running
    /// collector): then `None`, at once.
    pub fn open_if_unlocked(dir: &Path) -> Result<Option<SledStore>> {
        match open_db(dir, std::time::Duration::ZERO)? {
            Some(db) => Ok(Some(SledStore::with_db(dir, db)?)),
            None => Ok(None),
        }
    }

    fn with_db(dir: &Path, db: sled::Db) -> Result<SledStore> {
        let t = |name: &str| db.open_tree(name).map_err(backend);
        Ok(SledStore {
            dir: dir.to_path_buf(),
            agents: t("agents")?,
            tokens: t("tokens")?,
            scans: t("scans")?,
            results: t("results")?,
            meta: t("meta")?,
            users: t("users")?,
            sessions: t("console_sessions")?,
            audit: t("audit")?,
            deliveries: t("webhook_deliveries")?,
            attempts: t("webhook_attempts")?,
            log: ResultLog::open(&dir.join(LOG_DIR)).map_err(backend)?,
            audit_lock: Mutex::new(()),
            scan_lock: Mutex::new(()),
            agent_lock: Mutex::new(()),
            group: GroupCommit::default(),
            cow: Arc::new(Cow::default()),
            db,
        })
        .and_then(|s| {
            s.ensure_indexes()?;
            Ok(s)
        })
    }

    /// Builds the indexes from the records unless they are complete and current (a
    /// store written before they existed, or by another index version).
    fn ensure_indexes(&self) -> Result<()> {
        if self
            .meta
            .get(ix::INDEX_VERSION_KEY)
            .map_err(backend)?
            .as_deref()
            == Some(ix::INDEX_VERSION)
        {
            return Ok(());
        }
        self.rebuild_indexes()
    }

    /// Drops every index entry and counter and builds them again from the records.
    pub fn rebuild_indexes(&self) -> Result<()> {
        let _s = lock(&self.scan_lock);
        let _a = lock(&self.agent_lock);
        let _l = lock(&self.audit_lock);
        self.meta.remove(ix::INDEX_VERSION_KEY).map_err(backend)?;
        for tree in [&self.scans, &self.agents, &self.audit] {
            let mut w = Batches::new(tree);
            for kv in tree.range([IDX].as_slice()..) {
                w.remove(kv.map_err(backend)?.0)?;
            }
            w.finish()?;
        }
        // Scans, oldest first: the last seen per agent is its newest.
        let mut deltas = Deltas::default();
        let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
        let mut latest_completed: HashMap<String, Vec<u8>> = HashMap::new();
        let mut w = Batches::new(&self.scans);
        for kv in records(&self.scans) {
            let (k, v) = kv.map_err(backend)?;
            let s: ScanRecord = decode(&k, &v)?;
            for key in ix::scan_keys(&s) {
                w.insert(key, &[])?;
            }
            deltas.add_scan(&s, 1);
            latest.insert(s.agent_id.clone(), ix::latest_value(&s));
            if s.status == ScanStatus::Completed {
                latest_completed.insert(s.agent_id.clone(), ix::latest_completed_value(&s));
            }
        }
        for (agent, v) in latest {
            w.insert(ix::latest(&agent), v)?;
        }
        for (agent, v) in latest_completed {
            w.insert(ix::latest_completed(&agent), v)?;
        }
        for (k, d) in deltas.0 {
            w.insert(k, &(d.max(0) as u64).to_be_bytes())?;
        }
        w.finish()?;

        let mut w = Batches::new(&self.agents);
        for kv in records(&self.agents) {
            let (k, v) = kv.map_err(backend)?;
            let a: AgentRecord = decode(&k, &v)?;
            if let Some(key) = ix::agent_key(&a) {
                w.insert(key, &[])?;
            }
        }
        w.finish()?;

        let mut deltas = Deltas::default();
        let mut w = Batches::new(&self.audit);
        for kv in records(&self.audit) {
            let (k, v) = kv.map_err(backend)?;
            let e = decode_audit(&k, &v)?;
            let (keys, counters) = ix::audit_keys(&e);
            for key in keys {
                w.insert(key, &[])?;
            }
            deltas.add(counters, 1);
        }
        for (k, d) in deltas.0 {
            w.insert(k, &(d.max(0) as u64).to_be_bytes())?;
        }
        w.finish()?;
        // The version goes last, once every index is complete on disk.
        self.db.flush().map_err(backend)?;
        self.meta
            .insert(ix::INDEX_VERSION_KEY, ix::INDEX_VERSION)
            .map_err(backend)?;
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    fn count(tree: &sled::Tree, key: &[u8]) -> Result<u64> {
        Ok(tree
            .get(key)
            .map_err(backend)?
            .map(|v| ix::decode_count(&v))
            .unwrap_or(0))
    }

    /// Adds counter deltas to a batch, reading the counters' current values.
    fn apply_deltas(tree: &sled::Tree, batch: &mut sled::Batch, deltas: Deltas) -> Result<()> {
        for (k, d) in deltas.0 {
            if d == 0 {
                continue;
            }
            let now = Self::count(tree, &k)? as i64 + d;
            if now <= 0 {
                batch.remove(k);
            } else {
                batch.insert(k, &(now as u64).to_be_bytes());
            }
        }
        Ok(())
    }

    /// The newest scan of `agent` other than `skip` (and completed, if asked), by
    /// walking the agent's index from its newest entry.
    fn newest_of(&self, agent: &str, skip: &str, completed: bool) -> Result<Option<ScanRecord>> {
        let p = ix::by_agent(agent);
        for kv in self.scans.range(p.clone()..ix::prefix_end(&p)).rev() {
            let (k, _) = kv.map_err(backend)?;
            let id = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            if id == skip {
                continue;
            }
            if let Some(s) = self.scan(&id)? {
                if !completed || s.status == ScanStatus::Completed {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    /// The count of scans matching a filter, if counters hold it exactly.
    fn counted(&self, f: &ScanFilter) -> Result<Option<u64>> {
        let Some(keys) = ix::filter_counters(f) else {
            return Ok(None);
        };
        let mut n = 0;
        for k in keys {
            n += Self::count(&self.scans, &k)?;
        }
        Ok(Some(n))
    }

    /// The index to walk for a filter (an empty prefix: the records themselves): the
    /// one with the fewest entries among those that cover part of the filter; and
    /// whether it covers the whole filter (then every entry matches).
    fn pick_index(&self, f: &ScanFilter) -> Result<(Vec<u8>, bool)> {
        let mut candidates = vec![(ScanFilter::default(), Vec::new())];
        if let Some(a) = &f.agent_id {
            let g = ScanFilter {
                agent_id: Some(a.clone()),
                ..Default::default()
            };
            candidates.push((g, ix::by_agent(a)));
        }
        if let Some(p) = &f.project {
            let g = ScanFilter {
                project: Some(p.clone()),
                ..Default::default()
            };
            candidates.push((g, ix::by_project(p)));
            if let Some(st) = f.status {
                let g = ScanFilter {
                    project: Some(p.clone()),
                    status: Some(st),
                    ..Default::default()
                };
                candidates.push((g, ix::by_project_status(p, st)));
            }
        }
        if let Some(st) = f.status {
            let g = ScanFilter {
                status: Some(st),
                ..Default::default()
            };
            candidates.push((g, ix::by_status(st)));
        }
        if f.blocked {
            let g = ScanFilter {
                blocked: true,
                ..Default::default()
            };
            candidates.push((g, ix::blocking()));
        }
        let mut best: Option<(u64, ScanFilter, Vec<u8>)> = None;
        for (g, prefix) in candidates {
            let n = self.counted(&g)?.unwrap_or(u64::MAX);
            if best.as_ref().is_none_or(|b| n < b.0) {
                best = Some((n, g, prefix));
            }
        }
        let (_, g, prefix) = best.unwrap_or_default();
        Ok((prefix, g == *f))
    }

    /// Walks matching scans newest first within the cursor's range, passing over
    /// `skip` of them (without decoding them when the index covers the filter),
    /// calling `visit` until it returns false.
    fn walk(
        &self,
        f: &ScanFilter,
        cursor: &ScanCursor,
        mut skip: usize,
        visit: &mut dyn FnMut(ScanRecord) -> bool,
    ) -> Result<()> {
        let (p, exact) = self.pick_index(f)?;
        let bound = |id: &Option<String>| {
            id.as_ref().map(|id| {
                let mut k = p.clone();
                k.extend_from_slice(id.as_bytes());
                Bound::Excluded(k)
            })
        };
        let lo = bound(&cursor.after).unwrap_or(Bound::Included(p.clone()));
        let hi = bound(&cursor.before).unwrap_or(Bound::Excluded(ix::prefix_end(&p)));
        let range = self.scans.range::<Vec<u8>, _>((lo, hi));
        let entries: Box<dyn Iterator<Item = _>> = if cursor.oldest_first {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        for kv in entries {
            let (k, v) = kv.map_err(backend)?;
            if exact && skip > 0 {
                skip -= 1;
                continue;
            }
            let s: ScanRecord = if p.is_empty() {
                decode(&k, &v)?
            } else {
                match self.scans.get(&k[p.len()..]).map_err(backend)? {
                    Some(v) => decode(&k[p.len()..], &v)?,
                    // Only an edit behind the store's back leaves an entry dangling.
                    None => continue,
                }
            };
            if !f.matches(&s) {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if !visit(s) {
                break;
            }
        }
        Ok(())
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>> {
        tree.iter()
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }

    /// Writes one record of a section (through the gate).
    fn put<T: Serialize>(&self, section: Section, key: &[u8], v: &T) -> Result<()> {
        let value = encode(v)?;
        self.write(section, &[key], || {
            self.tree(section).insert(key, value).map_err(backend)
        })?;
        Ok(())
    }

    /// The tree of a section.
    fn tree(&self, section: Section) -> &sled::Tree {
        match section {
            Section::Meta => &self.meta,
            Section::Agents => &self.agents,
            Section::Tokens => &self.tokens,
            Section::Users => &self.users,
            Section::Scans => &self.scans,
            Section::Results => &self.results,
            Section::Audit => &self.audit,
            Section::Deliveries => &self.deliveries,
            Section::Attempts => &self.attempts,
        }
    }

    /// One write of the records `keys` of `section` (and whatever index entries go
    /// with them): through the write gate, after an open snapshot has kept their
    /// values at its cut.
    fn write<T>(
        &self,
        section: Section,
        keys: &[&[u8]],
        write: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _pass = self.cow.pass();
        self.cow.keep(section, self.tree(section), keys);
        write()
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>> {
        tree.get(key)
            .map_err(backend)?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }
}

/// sled's page cache. Its default (1 GiB) is most of a small collector's memory;
/// the hot pages (indexes, counters, recent scans) fit in far less.
const CACHE_BYTES: u64 = 128 << 20;

/// How long an open waits for sled's lock (see [`open_db`]).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled. Its file lock outlives a dropped instance for a moment (its flusher
/// thread lets go last), so a reopen in the same process, or a restart right after a
/// stop, waits up to `wait` for the lock; `None` when another process still holds it.
fn open_db(dir: &Path, wait: std::time::Duration) -> Result<Option<sled::Db>> {
    let mut waited = std::time::Duration::ZERO;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => return Ok(Some(db)),
            // sled reports the lock as `Other` with the cause in words.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if waited >= wait {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                waited += std::time::Duration::from_millis(50);
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// The bytes of the files under `dir` (the database and the result files).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// `fsync`s every file and directory under `dir`, the result log's included (a
/// store just written by a restore).
pub(super) fn fsync_dir_all(dir: &Path) -> std::io::Result<()> {
    fsync_tree(dir, false)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fsync_tree(dir, true)
}

fn fsync_tree(dir: &Path, skip_log: bool) -> std::io::Result<()> {
    // sled creates and removes files as it works (snapshots, blobs): one that is gone
    // between listing and opening holds nothing left to make durable.
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if skip_log && entry.file_name() == LOG_DIR {
            continue; // the result log syncs what it wrote itself
        }
        gone(entry.file_type().and_then(|ft| {
            if ft.is_dir() {
                fsync_tree(&entry.path(), skip_log)
            } else if ft.is_file() {
                std::fs::File::open(entry.path())?.sync_all()
            } else {
                Ok(())
            }
        }))?;
    }
    std::fs::File::open(dir)?.sync_all()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SledStore {
    /// Writes an agent with its index entry; the caller holds `agent_lock`.
    fn write_agent(&self, old: Option<&AgentRecord>, a: &AgentRecord) -> Result<()> {
        let mut batch = sled::Batch::default();
        let new_key = ix::agent_key(a);
        if let Some(k) = old.and_then(ix::agent_key) {
            if Some(&k) != new_key.as_ref() {
                batch.remove(k);
            }
        }
        if let Some(k) = new_key {
            batch.insert(k, &[]);
        }
        batch.insert(a.id.as_bytes(), encode(a)?);
        self.write(Section::Agents, &[a.id.as_bytes()], || {
            self.agents.apply_batch(batch).map_err(backend)
        })
    }

    fn flush_and_fsync(&self) -> std::result::Result<(), String> {
        // Chunks before the locators that point at them.
        self.log.sync().map_err(|e| e.to_string())?;
        self.db.flush().map_err(|e| e.to_string())?;
        fsync_dir(&self.dir).map_err(|e| e.to_string())
    }
}

impl Store for SledStore {
    fn put_agent(&self, a: &AgentRecord) -> Result<()> {
        let _g = lock(&self.agent_lock);
        let old: Option<AgentRecord> = Self::get(&self.agents, &a.id)?;
        self.write_agent(old.as_ref(), a)
    }
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>> {
        // Every agent write holds the lock: the record read is the one replaced.
        let _g = lock(&self.agent_lock);
        let Some(old) = Self::get::<AgentRecord>(&self.agents, id)? else {
            return Ok(None);
        };
        let mut a = old.clone();
        change(&mut a);
        self.write_agent(Some(&old), &a)?;
        Ok(Some(a))
    }
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        Self::get(&self.agents, id)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        records(&self.agents)
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }
    fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        let lo = match after {
            Some(k) => Bound::Excluded(k.as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        self.agents
            .range::<Vec<u8>, _>((lo, Bound::Excluded(vec![IDX])))
            .take(limit)
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }
    fn agents_by_instance(&self, instance_id: &str) -> Result<Vec<AgentRecord>> {
        if instance_id.is_empty() {
            return Ok(vec![]);
        }
        let p = ix::by_instance(instance_id);
        let mut out = Vec::new();
        for kv in self.agents.range(p.clone()..ix::prefix_end(&p)) {
            let (k, _) = kv.map_err(backend)?;
            let id = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            if let Some(a) = self.agent(&id)? {
                // The record decides; the index only finds it.
                if !a.revoked && a.instance_id == instance_id {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()> {
        self.put(Section::Tokens, t.hash.as_bytes(), t)
    }
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        Self::get(&self.tokens, hash)
    }
    fn use_token(&self, hash: &str, now_ms: i64) -> Result<TokenUse> {
        loop {
            let Some(old) = self.tokens.get(hash).map_err(backend)? else {
                return Ok(TokenUse::Unknown);
            };
            let mut t: TokenRecord = decode(hash.as_bytes(), &old)?;
            if t.revoked {
                return Ok(TokenUse::Revoked);
            }
            if now_ms >= t.expires_at_ms {
                return Ok(TokenUse::Expired);
            }
            if t.uses >= t.max_uses {
                return Ok(TokenUse::UsedUp);
            }
            t.uses += 1;
            let new = encode(&t)?;
            // Compare-and-swap so that concurrent enrollments cannot overspend a token.
            let swapped = self.write(Section::Tokens, &[hash.as_bytes()], || {
                self.tokens
                    .compare_and_swap(hash, Some(old), Some(new))
                    .map_err(backend)
            })?;
            if swapped.is_ok() {
                return Ok(TokenUse::Accepted(t));
            }
        }
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        Self::all(&self.tokens)
    }
    fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        // Tokens are keyed by hash: find the ID, then compare-and-swap so that an
        // enrollment counting a use at the same moment is neither lost nor let through.
        loop {
            let found = self.tokens.iter().find_map(|kv| match kv {
                Err(e) => Some(Err(backend(e))),
                Ok((k, v)) => match decode::<TokenRecord>(&k, &v) {
                    Err(e) => Some(Err(e)),
                    Ok(t) if t.id == id => Some(Ok((k, v, t))),
                    Ok(_) => None,
                },
            });
            let Some((key, old, before)) = found.transpose()? else {
                return Ok(None);
            };
            if before.revoked {
                return Ok(Some(before));
            }
            let after = TokenRecord {
                revoked: true,
                ..before.clone()
            };
            let after = encode(&after)?;
            let swapped = self.write(Section::Tokens, &[&key], || {
                self.tokens
                    .compare_and_swap(&key, Some(old), Some(after))
                    .map_err(backend)
            })?;
            if swapped.is_ok() {
                return Ok(Some(before));
            }
        }
    }

    fn put_scan(&self, s: &ScanRecord) -> Result<()> {
        if s.id.is_empty() {
            return Err(backend("a scan needs an ID"));
        }
        let _g = lock(&self.scan_lock);
        let old: Option<ScanRecord> = Self::get(&self.scans, &s.id)?;
        let mut batch = sled::Batch::default();
        let mut deltas = Deltas::default();
        let new_keys = ix::scan_keys(s);
        let old_keys = old.as_ref().map(ix::scan_keys).unwrap_or_default();
        for k in &old_keys {
            if !new_keys.contains(k) {
                batch.remove(k.as_slice());
            }
        }
        if let Some(o) = &old {
            deltas.add_scan(o, -1);
        }
        // A progress write changes no index entry: only new ones are written.
        for k in new_keys {
            if !old_keys.contains(&k) {
                batch.insert(k, &[]);
            }
        }
        deltas.add_scan(s, 1);
        Self::apply_deltas(&self.scans, &mut batch, deltas)?;
        // The agent's newest scan, and its newest completed one.
        let current = |key: &[u8], completed: bool| -> Result<Option<String>> {
            Ok(self
                .scans
                .get(key)
                .map_err(backend)?
                .map(|v| String::from_utf8_lossy(ix::latest_id(&v, completed)).into_owned()))
        };
        let lk = ix::latest(&s.agent_id);
        if current(&lk, false)?.is_none_or(|cur| s.id >= cur) {
            batch.insert(lk, ix::latest_value(s));
        }
        let ck = ix::latest_completed(&s.agent_id);
        let cur_completed = current(&ck, true)?;
        if s.status == ScanStatus::Completed {
            if cur_completed.as_ref().is_none_or(|cur| s.id >= *cur) {
                batch.insert(ck, ix::latest_completed_value(s));
            }
        } else if cur_completed.as_deref() == Some(s.id.as_str()) {
            // It was the newest completed scan and is no longer completed.
            match self.newest_of(&s.agent_id, &s.id, true)? {
                Some(prev) => batch.insert(ck, ix::latest_completed_value(&prev)),
                None => batch.remove(ck),
            }
        }
        if let Some(o) = old.as_ref().filter(|o| o.agent_id != s.agent_id) {
            // The scan moved to another agent: the old agent's newest may change.
            let (lk, ck) = (ix::latest(&o.agent_id), ix::latest_completed(&o.agent_id));
            if current(&lk, false)?.as_deref() == Some(s.id.as_str()) {
                match self.newest_of(&o.agent_id, &s.id, false)? {
                    Some(prev) => batch.insert(lk, ix::latest_value(&prev)),
                    None => batch.remove(lk),
                }
            }
            if current(&ck, true)?.as_deref() == Some(s.id.as_str()) {
                match self.newest_of(&o.agent_id, &s.id, true)? {
                    Some(prev) => batch.insert(ck, ix::latest_completed_value(&prev)),
                    None => batch.remove(ck),
                }
            }
        }
        batch.insert(s.id.as_bytes(), encode(s)?);
        self.write(Section::Scans, &[s.id.as_bytes()], || {
            self.scans.apply_batch(batch).map_err(backend)
        })
    }
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>> {
        if id.as_bytes().first().is_some_and(|b| *b == IDX) {
            return Ok(None);
        }
        Self::get(&self.scans, id)
    }
    fn scans(
        &self,
        filter: &ScanFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, usize)> {
        let l = self.scan_list(filter, &ScanCursor::default(), offset, limit)?;
        Ok((l.scans, l.total))
    }
    fn scan_list(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        offset: usize,
        limit: usize,
    ) -> Result<ScanList> {
        let (mut page, mut more) = (Vec::new(), false);
        self.walk(filter, cursor, offset, &mut |s| {
            if page.len() == limit {
                more = true;
                return false;
            }
            page.push(s);
            true
        })?;
        let total = match self.counted(filter)? {
            Some(n) => n as usize,
            None => {
                let mut n = 0;
                self.walk(filter, &ScanCursor::default(), 0, &mut |_| {
                    n += 1;
                    true
                })?;
                n
            }
        };
        let next = if more {
            page.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok(ScanList {
            scans: page,
            total,
            next,
        })
    }
    fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        let (mut page, mut more) = (Vec::new(), false);
        self.walk(filter, cursor, 0, &mut |s| {
            if page.len() == limit {
                more = true;
                return false;
            }
            page.push(s);
            true
        })?;
        let next = if more {
            page.last().map(|s| s.id.clone())
        } else {
            None
        };
        Ok((page, next))
    }
    fn scan_total(&self, filter: &ScanFilter) -> Result<Option<usize>> {
        Ok(self.counted(filter)?.map(|n| n as usize))
    }
    fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        let p = ix::prefix(b'o');
        let past = past.map(|s| {
            let mut k = ix::score_order(s);
            k.extend_from_slice(s.id.as_bytes());
            Bound::Excluded(k)
        });
        let (lo, hi) = match (past, low_first) {
            (Some(b), true) => (b, Bound::Excluded(ix::prefix_end(&p))),
            (Some(b), false) => (Bound::Included(p.clone()), b),
            (None, _) => (
                Bound::Included(p.clone()),
                Bound::Excluded(ix::prefix_end(&p)),
            ),
        };
        let range = self.scans.range::<Vec<u8>, _>((lo, hi));
        let entries: Box<dyn Iterator<Item = _>> = if low_first {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        let mut out = Vec::new();
        for kv in entries {
            if out.len() == limit {
                break;
            }
            let (k, _) = kv.map_err(backend)?;
            // The key is the prefix, four bytes of score, then the ID.
            let id = &k[p.len() + 4..];
            if let Some(v) = self.scans.get(id).map_err(backend)? {
                out.push(decode(id, &v)?);
            }
        }
        Ok(out)
    }
    fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        let Some(v) = self.scans.get(ix::latest(agent_id)).map_err(backend)? else {
            return Ok(None);
        };
        self.scan(&String::from_utf8_lossy(ix::latest_id(&v, false)))
    }
    fn fleet(&self, min_score: f64) -> Result<Fleet> {
        let mut f = Fleet {
            completed_scans: Self::count(
                &self.scans,
                &ix::counter(b'*', "", ix::status_byte(ScanStatus::Completed)),
            )? as usize,
            ..Default::default()
        };
        // Completed scans by score: those at or above the minimum.
        let lo = ix::by_score(min_score);
        for kv in self.scans.range(lo..ix::prefix_end(&ix::prefix(b'h'))) {
            f.completed_meeting += ix::decode_count(&kv.map_err(backend)?.1) as usize;
        }
        let p = ix::prefix(b'c');
        for kv in self.scans.range(p.clone()..ix::prefix_end(&p)) {
            f.vms_scanned += 1;
            f.latest_score_sum += ix::latest_score(&kv.map_err(backend)?.1);
        }
        let p = ix::prefix(b'l');
        for kv in self.scans.range(p.clone()..ix::prefix_end(&p)) {
            if kv.map_err(backend)?.1.first() == Some(&1) {
                f.vms_blocked += 1;
            }
        }
        Ok(f)
    }

    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        let end = from_day.saturating_add(days);
        let counters = self
            .scans
            .range(ix::day_key(from_day, 0)..ix::day_key(end, 0))
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                Ok((k.to_vec(), ix::decode_count(&v)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ix::day_scores(counters))
    }

    fn put_results(&self, scan_id: &str, results: &[ResultRecord]) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        // One compressed chunk per batch in the result log; sled keeps its locator
        // under a monotonic ID, so that reads replay chunks in the order written.
        let chunk = encode_chunk(results)?;
        let id = self.db.generate_id().map_err(backend)?;
        let key = chunk_key(scan_id, id);
        // The chunk is appended inside the gate too: a snapshot's cut never falls
        // between a chunk and its locator, so the log files' lengths noted at the cut
        // cover every locator the snapshot holds.
        self.write(Section::Results, &[&key], || {
            let at = self.log.append(&chunk, now_ms()).map_err(backend)?;
            self.results
                .insert(key.as_slice(), &at.encode())
                .map_err(backend)
        })?;
        Ok(())
    }
    fn prune_results(&self, before_ms: i64) -> Result<usize> {
        // Scan IDs sort by creation: walk from the oldest (or where the last run
        // stopped) up to the first scan created at or after the cut.
        let from = self.meta.get(PRUNED_TO_KEY).map_err(backend)?;
        let lo = match &from {
            Some(k) => Bound::Excluded(k.to_vec()),
            None => Bound::Unbounded,
        };
        let (mut pruned, mut resume_at, mut all_final) = (0, None, true);
        // Day files before this hold chunks of pruned scans only.
        let mut keep_from_ms = before_ms;
        for kv in self
            .scans
            .range::<Vec<u8>, _>((lo, Bound::Excluded(vec![IDX])))
        {
            let (k, v) = kv.map_err(backend)?;
            let s: ScanRecord = decode(&k, &v)?;
            if s.created_at_ms >= before_ms {
                break;
            }
            if !s.status.is_final() {
                // Its results may still grow: kept, and looked at again next time.
                all_final = false;
                keep_from_ms = keep_from_ms.min(s.created_at_ms);
                continue;
            }
            let mut batch = sled::Batch::default();
            let mut keys = Vec::new();
            for r in self.results.scan_prefix(format!("{}\0", s.id)) {
                let k = r.map_err(backend)?.0;
                batch.remove(k.clone());
                keys.push(k);
            }
            if !keys.is_empty() {
                let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
                self.write(Section::Results, &keys, || {
                    self.results.apply_batch(batch).map_err(backend)
                })?;
                pruned += 1;
            }
            if all_final {
                resume_at = Some(k);
            }
        }
        if let Some(k) = resume_at {
            self.write(Section::Meta, &[PRUNED_TO_KEY.as_bytes()], || {
                self.meta.insert(PRUNED_TO_KEY, k).map_err(backend)
            })?;
        }
        // The locators go first (made durable here), then the files they pointed at.
        self.sync()?;
        self.log
            .remove_before(result_log::day_of(keep_from_ms))
            .map_err(backend)?;
        Ok(pruned)
    }
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>> {
        // A later write of a rule replaces an earlier one. Stores written before
        // chunks hold one record per rule (`scan\0rule`), all older than any chunk.
        let mut by_rule = std::collections::BTreeMap::new();
        let mut chunks = Vec::new();
        for kv in self.results.scan_prefix(format!("{scan_id}\0")) {
            let (k, v) = kv.map_err(backend)?;
            if k.get(scan_id.len() + 1) == Some(&CHUNK) {
                chunks.push((k, v));
            } else {
                let r: ResultRecord = decode(&k, &v)?;
                by_rule.insert(r.rule_id.clone(), r);
            }
        }
        for (k, v) in chunks {
            let chunk = Locator::decode(&v)
                .ok_or_else(|| StoreError::Decode {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "not a result locator".into(),
                })
                .and_then(|at| self.log.read(at).map_err(backend))
                .and_then(|bytes| decode_chunk(&k, &bytes));
            match chunk {
                Ok(rs) => {
                    for r in rs {
                        by_rule.insert(r.rule_id.clone(), r);
                    }
                }
                // A chunk whose batch was never acknowledged can be torn by a crash
                // (sled may persist its locator first); the agent sent that batch
                // again. A damaged acknowledged chunk shows as missing results.
                Err(e) => {
                    tracing::warn!(scan = scan_id, error = %e, "a result chunk is unreadable; skipped")
                }
            }
        }
        Ok(by_rule.into_values().collect())
    }

    fn put_user(&self, u: &UserRecord) -> Result<()> {
        self.put(Section::Users, u.token_hash.as_bytes(), u)
    }
    fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRecord>> {
        Self::get(&self.users, hash)
    }
    fn users(&self) -> Result<Vec<UserRecord>> {
        Self::all(&self.users)
    }

    fn put_session(&self, s: &SessionRecord) -> Result<()> {
        // Sessions are not part of a snapshot: no gate.
        self.sessions
            .insert(s.id_hash.as_bytes(), encode(s)?)
            .map_err(backend)?;
        Ok(())
    }
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        Self::get(&self.sessions, id_hash)
    }
    fn delete_session(&self, id_hash: &str) -> Result<bool> {
        Ok(self
            .sessions
            .remove(id_hash.as_bytes())
            .map_err(backend)?
            .is_some())
    }
    fn delete_sessions(&self, keep: &mut dyn FnMut(&SessionRecord) -> bool) -> Result<usize> {
        let mut ended = 0;
        for kv in self.sessions.iter() {
            let (k, v) = kv.map_err(backend)?;
            let s: SessionRecord = decode(&k, &v)?;
            if !keep(&s) && self.sessions.remove(&k).map_err(backend)?.is_some() {
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn append_audit(&self, entry: &AuditRecord) -> Result<u64> {
        // The sequence is one past the last key and the entry chains onto the last
        // entry's hash; a lock keeps concurrent appends apart.
        let _guard = lock(&self.audit_lock);
        let (next, last) = match records(&self.audit)
            .next_back()
            .transpose()
            .map_err(backend)?
        {
            Some((k, v)) => {
                let key: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| backend("bad audit key"))?;
                (u64::from_be_bytes(key) + 1, Some(decode_audit(&k, &v)?))
            }
            None => (1, None),
        };
        let e = audit_chain::seal(entry, next, last.as_ref());
        let mut batch = sled::Batch::default();
        let (keys, counters) = ix::audit_keys(&e);
        for k in keys {
            batch.insert(k, &[]);
        }
        let mut deltas = Deltas::default();
        deltas.add(counters, 1);
        Self::apply_deltas(&self.audit, &mut batch, deltas)?;
        batch.insert(&next.to_be_bytes(), encode(&e)?);
        self.write(Section::Audit, &[&next.to_be_bytes()], || {
            self.audit.apply_batch(batch).map_err(backend)
        })?;
        Ok(next)
    }
    fn audit(&self, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, usize)> {
        let l = self.audit_list(&AuditFilter::default(), None, offset, limit)?;
        Ok((l.entries, l.total))
    }
    fn audit_list(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<AuditList> {
        // Walk the smaller of the two indexes that apply, or the log itself.
        let mut choice: (u64, Vec<u8>) = (u64::MAX, Vec::new());
        if let Some(a) = &filter.action {
            let n = Self::count(&self.audit, &ix::audit_count_action(a))?;
            choice = (n, ix::audit_by_action(a));
        }
        if let Some(a) = &filter.actor {
            let n = Self::count(&self.audit, &ix::audit_count_actor(a))?;
            if n < choice.0 {
                choice = (n, ix::audit_by_actor(a));
            }
        }
        let p = choice.1;
        let lo = Bound::Included(p.clone());
        let hi = match before {
            // Sequence numbers of records stay below 2^56 (a first byte of 0).
            Some(b) if p.is_empty() && b >= 1 << 56 => Bound::Excluded(vec![IDX]),
            Some(b) => {
                let mut k = p.clone();
                k.extend_from_slice(&b.to_be_bytes());
                Bound::Excluded(k)
            }
            None if p.is_empty() => Bound::Excluded(vec![IDX]),
            None => Bound::Excluded(ix::prefix_end(&p)),
        };
        let (mut entries, mut skipped, mut seen, mut more) = (Vec::new(), 0, 0usize, false);
        let mut hi = hi;
        if p.is_empty() && offset > 0 {
            // The whole log holds sequence numbers 1..=last without a gap (appends
            // only, one past the last): the entry `offset` below the top is found by
            // arithmetic, not by a walk. Checked against the counter first.
            let last = match records(&self.audit)
                .next_back()
                .transpose()
                .map_err(backend)?
            {
                Some((k, _)) => <[u8; 8]>::try_from(k.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0),
                None => 0,
            };
            if last > 0 && Self::count(&self.audit, &ix::audit_count_all())? == last {
                let top = before.map_or(last, |b| b.saturating_sub(1).min(last));
                let start = top.saturating_sub(offset as u64);
                hi = Bound::Excluded((start + 1).to_be_bytes().to_vec());
                skipped = offset;
            }
        }
        let both = filter.action.is_some() && filter.actor.is_some();
        for kv in self.audit.range::<Vec<u8>, _>((lo, hi)).rev() {
            let (k, v) = kv.map_err(backend)?;
            if !both && skipped < offset {
                // The walk is exact (the whole log, or one index): every key matches,
                // and the ones skipped need not be read.
                skipped += 1;
                seen += 1;
                continue;
            }
            let e = if p.is_empty() {
                decode_audit(&k, &v)?
            } else {
                match self.audit.get(&k[p.len()..]).map_err(backend)? {
                    Some(v) => decode_audit(&k[p.len()..], &v)?,
                    None => continue,
                }
            };
            if !filter.matches(&e) {
                continue;
            }
            seen += 1;
            if skipped < offset {
                skipped += 1;
            } else if entries.len() < limit {
                entries.push(e);
            } else {
                more = true;
                if !both {
                    break;
                }
            }
        }
        let total = if both {
            if before.is_none() {
                seen
            } else {
                let all = self.audit_list(filter, None, usize::MAX, 0)?;
                all.total
            }
        } else {
            let key = match (&filter.action, &filter.actor) {
                (Some(a), _) => ix::audit_count_action(a),
                (_, Some(a)) => ix::audit_count_actor(a),
                _ => ix::audit_count_all(),
            };
            Self::count(&self.audit, &key)? as usize
        };
        let next = if more {
            entries.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditList {
            entries,
            total,
            next,
        })
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<()> {
        self.put(Section::Deliveries, d.id.as_bytes(), d)
    }
    fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        let all: Vec<DeliveryRecord> = Self::all(&self.deliveries)?;
        Ok(all
            .into_iter()
            .filter(|d| d.state == DeliveryState::Pending)
            .collect())
    }
    fn deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        Self::all(&self.deliveries)
    }
    fn append_attempt(&self, a: &AttemptRecord) -> Result<()> {
        // Time first, so that iteration order is the order attempts were made.
        let key = format!("{:013}\0{}\0{:04}", a.at_ms, a.delivery_id, a.attempt);
        let value = encode(a)?;
        self.write(Section::Attempts, &[key.as_bytes()], || {
            self.attempts.insert(key.as_bytes(), value).map_err(backend)
        })?;
        Ok(())
    }
    fn attempts(&self, offset: usize, limit: usize) -> Result<(Vec<AttemptRecord>, usize)> {
        let page = self
            .attempts
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect::<Result<Vec<_>>>()?;
        Ok((page, self.attempts.len()))
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.write(Section::Meta, &[key.as_bytes()], || {
            self.meta.insert(key, value).map_err(backend)
        })?;
        Ok(())
    }
    fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.meta
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Lease {
            holder: String,
            until_ms: i64,
        }
        let key = format!("lease/{name}");
        let new = encode(&Lease {
            holder: holder.into(),
            until_ms: now_ms.saturating_add(ttl_ms),
        })?;
        loop {
            let old = self.meta.get(&key).map_err(backend)?;
            if let Some(v) = &old {
                let l: Lease = decode(key.as_bytes(), v)?;
                if l.holder != holder && l.until_ms > now_ms {
                    return Ok(false);
                }
            }
            let swapped = self.write(Section::Meta, &[key.as_bytes()], || {
                self.meta
                    .compare_and_swap(&key, old, Some(new.clone()))
                    .map_err(backend)
            })?;
            if swapped.is_ok() {
                return Ok(true);
            }
        }
    }

    fn size_bytes(&self) -> Result<Option<u64>> {
        Ok(Some(dir_bytes(&self.dir)))
    }

    fn snapshot(&self, before_cut: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Snapshot>> {
        self.cow.reserve()?;
        let taken = before_cut().and_then(|()| {
            self.cow.cut(|| {
                // With every writer held off: the result log's files as they are, and
                // the audit head.
                let files = self
                    .log
                    .open_all()
                    .map_err(|e| backend(format!("cannot open the result log: {e}")))?
                    .into_iter()
                    .map(|(name, len, file)| SnapshotFile {
                        name: format!("{LOG_DIR}/{name}"),
                        len,
                        file,
                    })
                    .collect::<Vec<_>>();
                let head = match records(&self.audit)
                    .next_back()
                    .transpose()
                    .map_err(backend)?
                {
                    Some((k, v)) => {
                        let e = decode_audit(&k, &v)?;
                        (e.seq, e.hash)
                    }
                    None => (0, audit_chain::GENESIS.to_string()),
                };
                Ok((files, head))
            })
        });
        let ((files, head), pause) = match taken {
            Ok(t) => t,
            Err(e) => {
                self.cow.release();
                return Err(e);
            }
        };
        let trees = TREES
            .iter()
            .zip(Section::ALL)
            .map(|(name, section)| {
                let t = self.tree(section);
                debug_assert_eq!(t.name(), name.as_bytes());
                t.clone()
            })
            .collect();
        Ok(Box::new(SledSnapshot {
            cow: self.cow.clone(),
            trees,
            files,
            head,
            pause,
        }))
    }

    fn sync(&self) -> Result<()> {
        let g = &self.group;
        let mut st = g.state.lock().unwrap_or_else(|p| p.into_inner());
        // A flush already running may have missed this caller's writes: only one
        // that starts from now on counts.
        let wanted = st.started + 1;
        loop {
            if st.finished >= wanted {
                return st.last.clone().map_err(StoreError::Backend);
            }
            if st.running {
                st = g.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.running = true;
            st.started += 1;
            let number = st.started;
            drop(st);
            let outcome = self.flush_and_fsync();
            st = g.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            st.finished = number;
            st.last = outcome;
            g.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        super::super::conformance::run(&|| SledStore::open(&path).unwrap());
    }

    #[test]
    fn sled_answers_queries_like_a_walk_over_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        super::super::conformance::run_queries(&|| SledStore::open(&path).unwrap());
    }

    use crate::store::conformance::{check, seed, Truth};

    #[test]
    fn sled_keeps_results_for_the_retention_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        super::super::conformance::run_retention(&|| SledStore::open(&path).unwrap());
    }

    #[test]
    fn a_chunk_that_is_not_a_sound_zstd_frame_is_an_error_naming_it() {
        let e = decode_chunk(b"sc\0\0k", b"junk").unwrap_err().to_string();
        assert!(e.contains("without a zstd frame size"), "{e}");
        let r = ResultRecord {
            rule_id: "1.1".into(),
            status: "pass".into(),
            evidence: vec!["x".repeat(4000)],
        };
        let mut good = encode_chunk(std::slice::from_ref(&r)).unwrap();
        assert_eq!(decode_chunk(b"k", &good).unwrap(), [r]);
        // One flipped byte in the body: the frame's checksum catches it.
        let n = good.len();
        good[n - 8] ^= 0x55;
        let e = decode_chunk(b"k", &good).unwrap_err().to_string();
        assert!(e.contains("does not decompress"), "{e}");
    }

    #[test]
    fn results_of_a_store_written_one_record_per_rule_read_with_later_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let s = SledStore::open(&dir.path().join("db")).unwrap();
        let r = |id: &str, st: &str| ResultRecord {
            rule_id: id.into(),
            status: st.into(),
            evidence: vec![format!("{id}: {st}")],
        };
        // The layout before chunks: `scan\0rule` → one JSON record.
        for x in [r("1.1", "pass"), r("1.2", "fail")] {
            let key = format!("sc-1\0{}", x.rule_id);
            s.results.insert(key, encode(&x).unwrap()).unwrap();
        }
        s.put_results("sc-1", &[r("1.2", "pass"), r("1.3", "fail")])
            .unwrap();
        s.put_results("sc-1", &[r("1.3", "pass")]).unwrap();
        assert_eq!(
            s.results("sc-1").unwrap(),
            [r("1.1", "pass"), r("1.2", "pass"), r("1.3", "pass")],
            "the newest write of each rule wins, old records included"
        );
        // A chunk that cannot be read (a bad locator, a torn record) is skipped, not
        // a panic: its batch was never acknowledged, and was sent again.
        s.put_results("sc-2", &[r("2.1", "pass")]).unwrap();
        s.results
            .insert(chunk_key("sc-2", 7), b"junk".to_vec())
            .unwrap();
        let torn = Locator {
            day: result_log::day_of(now_ms()),
            offset: 1,
            len: 9,
        };
        s.results
            .insert(chunk_key("sc-2", 8), &torn.encode())
            .unwrap();
        assert_eq!(s.results("sc-2").unwrap(), [r("2.1", "pass")]);
        // Retention drops both kinds.
        let mut sc = ScanRecord::pending("sc-1".into(), "ag", None, "manual", "level1-server", 1);
        sc.status = ScanStatus::Completed;
        sc.created_at_ms = 1;
        s.put_scan(&sc).unwrap();
        assert_eq!(s.prune_results(1000).unwrap(), 1);
        assert!(s.results("sc-1").unwrap().is_empty());
    }

    /// sled without its background flusher, whose thread could still hold the
    /// database's lock for a moment after the handle is dropped.
    fn raw_open(path: &Path) -> sled::Db {
        sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .open()
            .unwrap()
    }

    /// Drops every index entry and the index version, as a store written before
    /// indexes existed has them.
    fn strip_indexes(path: &Path) {
        let raw = raw_open(path);
        for t in ["scans", "agents", "audit"] {
            let tree = raw.open_tree(t).unwrap();
            let keys: Vec<_> = tree
                .range([IDX].as_slice()..)
                .map(|kv| kv.unwrap().0)
                .collect();
            assert!(!keys.is_empty(), "{t} had index entries");
            for k in keys {
                tree.remove(k).unwrap();
            }
        }
        raw.open_tree("meta")
            .unwrap()
            .remove(ix::INDEX_VERSION_KEY)
            .unwrap();
        raw.flush().unwrap();
    }

    /// What the records say, read without any index.
    fn truth_from_records(path: &Path) -> Truth {
        let raw = raw_open(path);
        let mut t = Truth::default();
        for kv in records(&raw.open_tree("scans").unwrap()) {
            let (k, v) = kv.unwrap();
            let s: ScanRecord = decode(&k, &v).unwrap();
            t.scans.insert(s.id.clone(), s);
        }
        for kv in records(&raw.open_tree("agents").unwrap()) {
            let (k, v) = kv.unwrap();
            let a: AgentRecord = decode(&k, &v).unwrap();
            t.agents.insert(a.id.clone(), a);
        }
        for kv in records(&raw.open_tree("audit").unwrap()) {
            let (k, v) = kv.unwrap();
            t.audit.push(decode_audit(&k, &v).unwrap());
        }
        t
    }

    #[test]
    fn indexes_are_built_from_the_records_of_an_older_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut truth = Truth::default();
        {
            let s = SledStore::open(&path).unwrap();
            seed(&s, 800, &mut truth, 3);
            s.sync().unwrap();
        }
        strip_indexes(&path);
        let s = SledStore::open(&path).unwrap();
        assert_eq!(
            s.get_meta(ix::INDEX_VERSION_KEY).unwrap().as_deref(),
            Some(ix::INDEX_VERSION)
        );
        check(&s, &truth);
        // The rebuilt indexes go on being maintained.
        seed(&s, 200, &mut truth, 5);
        check(&s, &truth);
    }

    /// A writer killed (SIGKILL) in the middle of writing scans leaves records and
    /// indexes that agree: each record is written with its entries in one batch.
    #[test]
    fn indexes_agree_with_the_records_after_a_writer_is_killed() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "store::sled_store::tests::writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        // Once the child has synced a first round, it goes on writing; kill it then.
        let ready = out
            .lines()
            .map_while(|l| l.ok())
            .any(|l| l.contains("writer ready"));
        assert!(ready, "the writer child never got going");
        std::thread::sleep(std::time::Duration::from_millis(300));
        child.kill().unwrap();
        child.wait().unwrap();
        let truth = truth_from_records(&path);
        assert!(truth.scans.len() >= 500, "{}", truth.scans.len());
        let s = SledStore::open(&path).unwrap();
        check(&s, &truth);
    }

    const CHILD_DIR: &str = "RAMPART_TEST_WRITER_DIR";

    /// The process `indexes_agree_with_the_records_after_a_writer_is_killed` kills;
    /// without its variable, nothing.
    #[test]
    fn writer_child() {
        let Some(path) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let s = SledStore::open(Path::new(&path)).unwrap();
        let mut truth = Truth::default();
        seed(&s, 500, &mut truth, 1);
        s.sync().unwrap();
        println!("writer ready");
        for round in 2.. {
            seed(&s, 100, &mut truth, round);
        }
    }

    /// Concurrent syncs share flushes and all succeed; what each wrote is there.
    #[test]
    fn concurrent_syncs_all_return_and_keep_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = SledStore::open(&path).unwrap();
            std::thread::scope(|t| {
                for th in 0..8 {
                    let s = &s;
                    t.spawn(move || {
                        for i in 0..15 {
                            let sc = ScanRecord::pending(
                                format!("sc-{th}-{i:03}"),
                                &format!("ag-{th}"),
                                None,
                                "manual",
                                "p",
                                1,
                            );
                            s.put_scan(&sc).unwrap();
                            s.sync().unwrap();
                        }
                    });
                }
            });
        }
        let s = SledStore::open(&path).unwrap();
        assert_eq!(s.scans(&ScanFilter::default(), 0, 1).unwrap().1, 120);
        for th in 0..8 {
            let latest = s.latest_scan(&format!("ag-{th}")).unwrap().unwrap();
            assert_eq!(latest.id, format!("sc-{th}-014"));
        }
    }

    /// sled creates and removes files as it works (snapshots, blobs): `sync` must not
    /// fail when one goes between listing the directory and opening the file.
    #[test]
    fn sync_tolerates_files_vanishing_under_it() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let s = SledStore::open(&db).unwrap();
        let churn = db.join("churn");
        std::fs::create_dir_all(&churn).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let churner = {
            let (stop, churn) = (stop.clone(), churn.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..20 {
                        let _ = std::fs::write(churn.join(format!("f{i}")), b"x");
                    }
                    for i in 0..20 {
                        let _ = std::fs::remove_file(churn.join(format!("f{i}")));
                    }
                }
            })
        };
        let failures = (0..50).filter(|_| s.sync().is_err()).count();
        stop.store(true, Ordering::Relaxed);
        churner.join().unwrap();
        assert_eq!(failures, 0, "sync failed while files came and went");
    }
}
