//! The sled backend. sled's `flush` writes with `sync_file_range`, which is not a
//! durability barrier, so [`SledStore::sync`] also `fsync`s every file of the database.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    audit_chain, AgentRecord, AttemptRecord, AuditRecord, DeliveryRecord, DeliveryState, Result,
    ResultRecord, ScanFilter, ScanRecord, Store, StoreError, TokenRecord, TokenUse, UserRecord,
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
    audit: sled::Tree,
    deliveries: sled::Tree,
    attempts: sled::Tree,
    audit_lock: std::sync::Mutex<()>,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(backend)
}

fn decode<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Audit keys are big-endian sequence numbers; errors name them as `audit/<seq>`.
fn decode_audit(key: &[u8], v: &[u8]) -> Result<AuditRecord> {
    let name = match <[u8; 8]>::try_from(key) {
        Ok(b) => format!("audit/{}", u64::from_be_bytes(b)),
        Err(_) => format!("audit/{}", String::from_utf8_lossy(key)),
    };
    decode(name.as_bytes(), v)
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore> {
        let db = sled::Config::new().path(dir).open().map_err(backend)?;
        let t = |name: &str| db.open_tree(name).map_err(backend);
        Ok(SledStore {
            dir: dir.to_path_buf(),
            agents: t("agents")?,
            tokens: t("tokens")?,
            scans: t("scans")?,
            results: t("results")?,
            meta: t("meta")?,
            users: t("users")?,
            audit: t("audit")?,
            deliveries: t("webhook_deliveries")?,
            attempts: t("webhook_attempts")?,
            audit_lock: std::sync::Mutex::new(()),
            db,
        })
    }

    fn all<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>> {
        tree.iter()
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }

    fn get<T: DeserializeOwned>(tree: &sled::Tree, key: &str) -> Result<Option<T>> {
        tree.get(key)
            .map_err(backend)?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    // sled creates and removes files as it works (snapshots, blobs): one that is gone
    // between listing and opening holds nothing left to make durable.
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        gone(entry.file_type().and_then(|ft| {
            if ft.is_dir() {
                fsync_dir(&entry.path())
            } else if ft.is_file() {
                std::fs::File::open(entry.path())?.sync_all()
            } else {
                Ok(())
            }
        }))?;
    }
    std::fs::File::open(dir)?.sync_all()
}

impl Store for SledStore {
    fn put_agent(&self, a: &AgentRecord) -> Result<()> {
        self.agents
            .insert(a.id.as_bytes(), encode(a)?)
            .map_err(backend)?;
        Ok(())
    }
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>> {
        loop {
            let Some(old) = self.agents.get(id).map_err(backend)? else {
                return Ok(None);
            };
            let mut a: AgentRecord = decode(id.as_bytes(), &old)?;
            change(&mut a);
            let new = encode(&a)?;
            if self
                .agents
                .compare_and_swap(id, Some(old), Some(new))
                .map_err(backend)?
                .is_ok()
            {
                return Ok(Some(a));
            }
        }
    }
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        Self::get(&self.agents, id)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        Self::all(&self.agents)
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()> {
        self.tokens
            .insert(t.hash.as_bytes(), encode(t)?)
            .map_err(backend)?;
        Ok(())
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
            if self
                .tokens
                .compare_and_swap(hash, Some(old), Some(new))
                .map_err(backend)?
                .is_ok()
            {
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
            if self
                .tokens
                .compare_and_swap(&key, Some(old), Some(encode(&after)?))
                .map_err(backend)?
                .is_ok()
            {
                return Ok(Some(before));
            }
        }
    }

    fn put_scan(&self, s: &ScanRecord) -> Result<()> {
        self.scans
            .insert(s.id.as_bytes(), encode(s)?)
            .map_err(backend)?;
        Ok(())
    }
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>> {
        Self::get(&self.scans, id)
    }
    fn scans(
        &self,
        filter: &ScanFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, usize)> {
        let mut total = 0;
        let mut page = Vec::new();
        for kv in self.scans.iter().rev() {
            let (k, v) = kv.map_err(backend)?;
            let s: ScanRecord = decode(&k, &v)?;
            if !filter.matches(&s) {
                continue;
            }
            if total >= offset && page.len() < limit {
                page.push(s);
            }
            total += 1;
        }
        Ok((page, total))
    }

    fn put_results(&self, scan_id: &str, results: &[ResultRecord]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for r in results {
            batch.insert(format!("{scan_id}\0{}", r.rule_id).as_bytes(), encode(r)?);
        }
        self.results.apply_batch(batch).map_err(backend)
    }
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>> {
        self.results
            .scan_prefix(format!("{scan_id}\0"))
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode(&k, &v)))
            .collect()
    }

    fn put_user(&self, u: &UserRecord) -> Result<()> {
        self.users
            .insert(u.token_hash.as_bytes(), encode(u)?)
            .map_err(backend)?;
        Ok(())
    }
    fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRecord>> {
        Self::get(&self.users, hash)
    }
    fn users(&self) -> Result<Vec<UserRecord>> {
        Self::all(&self.users)
    }

    fn append_audit(&self, entry: &AuditRecord) -> Result<u64> {
        // The sequence is one past the last key and the entry chains onto the last
        // entry's hash; a lock keeps concurrent appends apart.
        let _guard = self.audit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let (next, last) = match self.audit.last().map_err(backend)? {
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
        self.audit
            .insert(next.to_be_bytes(), encode(&e)?)
            .map_err(backend)?;
        Ok(next)
    }
    fn audit(&self, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, usize)> {
        let total = self.audit.len();
        let page = self
            .audit
            .iter()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|kv| kv.map_err(backend).and_then(|(k, v)| decode_audit(&k, &v)))
            .collect::<Result<Vec<_>>>()?;
        Ok((page, total))
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<()> {
        self.deliveries
            .insert(d.id.as_bytes(), encode(d)?)
            .map_err(backend)?;
        Ok(())
    }
    fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        let all: Vec<DeliveryRecord> = Self::all(&self.deliveries)?;
        Ok(all
            .into_iter()
            .filter(|d| d.state == DeliveryState::Pending)
            .collect())
    }
    fn append_attempt(&self, a: &AttemptRecord) -> Result<()> {
        // Time first, so that iteration order is the order attempts were made.
        let key = format!("{:013}\0{}\0{:04}", a.at_ms, a.delivery_id, a.attempt);
        self.attempts
            .insert(key.as_bytes(), encode(a)?)
            .map_err(backend)?;
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
        self.meta.insert(key, value).map_err(backend)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.db.flush().map_err(backend)?;
        fsync_dir(&self.dir).map_err(backend)
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
