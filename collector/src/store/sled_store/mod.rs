//! The sled backend. sled's `flush` writes with `sync_file_range`, which is not a
//! durability barrier, so [`SledStore::sync`] also `fsync`s every file of the database;
//! concurrent callers share one such flush (group commit).
//!
//! Scans, agents and the audit log carry secondary indexes and counters in their
//! own trees (layout in [`super::sled_index`]), so that no read walks every record.

mod durability;
mod indexes;
mod pending;
mod results;

pub(super) use durability::fsync_dir_all;
use durability::{dir_bytes, open_db, GroupCommit, LOCK_WAIT};
use pending::{Held, Pending};

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

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
    /// Serialises audit appends (each chains onto the newest entry), and holds
    /// those made inside an ingest round until they are applied together.
    held_audit: Held,
    /// Serialises scan writes (each reads the record it replaces, then writes it
    /// with its index entries and counters), and holds those made inside an ingest
    /// round until they are applied together (`pending`).
    held_scans: Held,
    /// The same for agents and their instance-ID index.
    agent_lock: Mutex<()>,
    group: GroupCommit,
    /// The write gate and the undo log of an open snapshot (`sled_snapshot`): every
    /// write of a record goes through [`SledStore::write`].
    cow: Arc<Cow>,
}

/// Meta key: the last scan (ID) whose results retention has dealt with, and every
/// one before it.
const PRUNED_TO_KEY: &str = "results_pruned_to";

/// Every record key is below `[IDX]`.
fn records(tree: &sled::Tree) -> sled::Iter {
    tree.range(..[IDX].as_slice())
}

/// sled's, the file system's or the codec's error, chained.
fn backend(e: impl Into<StoreError>) -> StoreError {
    e.into()
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
            StoreError::Backend(format!(
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
            held_audit: Held::new(Section::Audit),
            held_scans: Held::new(Section::Scans),
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
        self.write_scan(s)
    }
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>> {
        if id.as_bytes().first().is_some_and(|b| *b == IDX) {
            return Ok(None);
        }
        self.scans_get(id.as_bytes())?
            .map(|v| decode(id.as_bytes(), &v))
            .transpose()
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
        self.by_score_order(low_first, past, limit)
    }
    fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        let Some(v) = self.scans_get(&ix::latest(agent_id))? else {
            return Ok(None);
        };
        self.scan(&String::from_utf8_lossy(ix::latest_id(&v, false)))
    }
    fn fleet(&self, min_score: f64) -> Result<Fleet> {
        self.fleet_figures(min_score)
    }

    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        self.day_scores(from_day, days)
    }

    fn put_results(&self, scan_id: &str, results: &[ResultRecord], at_ms: i64) -> Result<()> {
        self.append_results(scan_id, results, at_ms)
    }
    fn prune_results(&self, before_ms: i64) -> Result<usize> {
        self.prune_results_before(before_ms)
    }
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>> {
        self.read_results(scan_id)
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
        self.append_audit_entry(entry)
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
        self.audit_page(filter, before, offset, limit)
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
        self.take_snapshot(before_cut)
    }

    fn sync(&self) -> Result<()> {
        self.group_sync()
    }
    fn settle(&self) -> Result<()> {
        self.settle_all()
    }
}

#[cfg(test)]
mod tests;
