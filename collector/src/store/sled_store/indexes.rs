//! Scans and their indexes: writes that keep every index entry, counter and latest-scan
//! pointer in the record's batch, and the reads that use them (layout in
//! [`crate::store::sled_index`]).

use std::ops::Bound;

use super::*;

impl SledStore {
    /// Builds the indexes from the records unless they are complete and current (a
    /// store written before they existed, or by another index version).
    pub(super) fn ensure_indexes(&self) -> Result<()> {
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
        let mut held = self.held_scans.lock();
        self.apply(&self.held_scans, &mut held)?;
        let _a = lock(&self.agent_lock);
        let mut held_audit = self.held_audit.lock();
        self.apply(&self.held_audit, &mut held_audit)?;
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

    pub(super) fn count(tree: &sled::Tree, key: &[u8]) -> Result<u64> {
        Ok(tree
            .get(key)
            .map_err(backend)?
            .map(|v| ix::decode_count(&v))
            .unwrap_or(0))
    }

    /// The counters' values after `deltas`, read through `get` (`None`: at zero,
    /// removed).
    pub(super) fn counter_values(
        get: impl Fn(&[u8]) -> Result<Option<sled::IVec>>,
        deltas: Deltas,
    ) -> Result<Vec<(Vec<u8>, Option<sled::IVec>)>> {
        let mut out = Vec::new();
        for (k, d) in deltas.0 {
            if d == 0 {
                continue;
            }
            let now = get(&k)?.map(|v| ix::decode_count(&v)).unwrap_or(0) as i64 + d;
            let v = (now > 0).then(|| sled::IVec::from(&(now as u64).to_be_bytes()));
            out.push((k, v));
        }
        Ok(out)
    }

    /// The newest scan of `agent` other than `skip` (and completed, if asked), by
    /// walking the agent's index from its newest entry.
    pub(super) fn newest_of(
        &self,
        agent: &str,
        skip: &str,
        completed: bool,
    ) -> Result<Option<ScanRecord>> {
        let p = ix::by_agent(agent);
        for kv in self.scans.range(p.clone()..ix::prefix_end(&p)).rev() {
            let (k, _) = kv.map_err(backend)?;
            let id = String::from_utf8_lossy(&k[p.len()..]).into_owned();
            if id == skip {
                continue;
            }
            // Read from the tree: the caller holds the scan-write lock, with nothing
            // gathered.
            if let Some(s) = Self::get::<ScanRecord>(&self.scans, &id)? {
                if !completed || s.status == ScanStatus::Completed {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    /// The count of scans matching a filter, if counters hold it exactly.
    pub(super) fn counted(&self, f: &ScanFilter) -> Result<Option<u64>> {
        let Some(keys) = ix::filter_counters(f) else {
            return Ok(None);
        };
        let scans = self.scans_to_walk()?;
        let mut n = 0;
        for k in keys {
            n += Self::count(scans, &k)?;
        }
        Ok(Some(n))
    }

    /// The index to walk for a filter (an empty prefix: the records themselves): the
    /// one with the fewest entries among those that cover part of the filter; and
    /// whether it covers the whole filter (then every entry matches).
    pub(super) fn pick_index(&self, f: &ScanFilter) -> Result<(Vec<u8>, bool)> {
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
    pub(super) fn walk(
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
        let scans = self.scans_to_walk()?;
        let range = scans.range::<Vec<u8>, _>((lo, hi));
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
                match scans.get(&k[p.len()..]).map_err(backend)? {
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

    pub(super) fn write_scan(&self, s: &ScanRecord) -> Result<()> {
        if s.id.is_empty() {
            return Err(StoreError::Backend("a scan needs an ID".into()));
        }
        let mut p = self.held_scans.lock();
        let old: Option<ScanRecord> = p
            .get(&self.scans, s.id.as_bytes())?
            .map(|v| decode(s.id.as_bytes(), &v))
            .transpose()?;
        // The agent's newest scan other than this one (and completed, if asked): a
        // walk of its index, so the writes gathered so far are applied first.
        let newest_other = |p: &mut Pending, agent: &str, completed: bool| {
            self.apply(&self.held_scans, p)?;
            self.newest_of(agent, &s.id, completed)
        };
        let mut deltas = Deltas::default();
        let new_keys = ix::scan_keys(s);
        let old_keys = old.as_ref().map(ix::scan_keys).unwrap_or_default();
        if let Some(o) = &old {
            deltas.add_scan(o, -1);
        }
        deltas.add_scan(s, 1);
        // The agent's newest scan, and its newest completed one.
        let current = |p: &Pending, key: &[u8], completed: bool| -> Result<Option<String>> {
            Ok(p.get(&self.scans, key)?
                .map(|v| String::from_utf8_lossy(ix::latest_id(&v, completed)).into_owned()))
        };
        // Reads (and walks) first, then every entry of this write at once.
        let mut latest: Vec<(Vec<u8>, Option<sled::IVec>)> = Vec::new();
        let lk = ix::latest(&s.agent_id);
        if current(&p, &lk, false)?.is_none_or(|cur| s.id >= cur) {
            latest.push((lk, Some(ix::latest_value(s).into())));
        }
        let ck = ix::latest_completed(&s.agent_id);
        let cur_completed = current(&p, &ck, true)?;
        if s.status == ScanStatus::Completed {
            if cur_completed.as_ref().is_none_or(|cur| s.id >= *cur) {
                latest.push((ck, Some(ix::latest_completed_value(s).into())));
            }
        } else if cur_completed.as_deref() == Some(s.id.as_str()) {
            // It was the newest completed scan and is no longer completed.
            let prev = newest_other(&mut p, &s.agent_id, true)?;
            latest.push((
                ck,
                prev.map(|prev| ix::latest_completed_value(&prev).into()),
            ));
        }
        if let Some(o) = old.as_ref().filter(|o| o.agent_id != s.agent_id) {
            // The scan moved to another agent: the old agent's newest may change.
            let (lk, ck) = (ix::latest(&o.agent_id), ix::latest_completed(&o.agent_id));
            if current(&p, &lk, false)?.as_deref() == Some(s.id.as_str()) {
                let prev = newest_other(&mut p, &o.agent_id, false)?;
                latest.push((lk, prev.map(|prev| ix::latest_value(&prev).into())));
            }
            if current(&p, &ck, true)?.as_deref() == Some(s.id.as_str()) {
                let prev = newest_other(&mut p, &o.agent_id, true)?;
                latest.push((
                    ck,
                    prev.map(|prev| ix::latest_completed_value(&prev).into()),
                ));
            }
        }
        let counters = Self::counter_values(|k| p.get(&self.scans, k), deltas)?;
        for k in &old_keys {
            if !new_keys.contains(k) {
                p.remove(k.clone());
            }
        }
        // A progress write changes no index entry: only new ones are written.
        for k in new_keys {
            if !old_keys.contains(&k) {
                p.insert(k, &[]);
            }
        }
        for (k, v) in counters.into_iter().chain(latest) {
            match v {
                Some(v) => p.insert(k, v),
                None => p.remove(k),
            }
        }
        p.insert(s.id.as_bytes(), encode(s)?);
        p.wrote_record(s.id.as_bytes());
        self.written(&self.held_scans, &mut p)
    }

    pub(super) fn by_score_order(
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
        let scans = self.scans_to_walk()?;
        let range = scans.range::<Vec<u8>, _>((lo, hi));
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
            if let Some(v) = scans.get(id).map_err(backend)? {
                out.push(decode(id, &v)?);
            }
        }
        Ok(out)
    }

    pub(super) fn fleet_figures(&self, min_score: f64) -> Result<Fleet> {
        let scans = self.scans_to_walk()?;
        let mut f = Fleet {
            completed_scans: Self::count(
                scans,
                &ix::counter(b'*', "", ix::status_byte(ScanStatus::Completed)),
            )? as usize,
            ..Default::default()
        };
        // Completed scans by score: those at or above the minimum.
        let lo = ix::by_score(min_score);
        for kv in scans.range(lo..ix::prefix_end(&ix::prefix(b'h'))) {
            f.completed_meeting += ix::decode_count(&kv.map_err(backend)?.1) as usize;
        }
        let p = ix::prefix(b'c');
        for kv in scans.range(p.clone()..ix::prefix_end(&p)) {
            f.vms_scanned += 1;
            f.latest_score_sum += ix::latest_score(&kv.map_err(backend)?.1);
        }
        let p = ix::prefix(b'l');
        for kv in scans.range(p.clone()..ix::prefix_end(&p)) {
            if kv.map_err(backend)?.1.first() == Some(&1) {
                f.vms_blocked += 1;
            }
        }
        Ok(f)
    }

    pub(super) fn day_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        let end = from_day.saturating_add(days);
        let counters = self
            .scans_to_walk()?
            .range(ix::day_key(from_day, 0)..ix::day_key(end, 0))
            .map(|kv| {
                let (k, v) = kv.map_err(backend)?;
                Ok((k.to_vec(), ix::decode_count(&v)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ix::day_scores(counters))
    }
}
