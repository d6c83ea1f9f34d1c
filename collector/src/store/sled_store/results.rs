//! Results (compressed chunks in the result log, their locators in sled, retention),
//! the audit log's chained entries, and snapshots for backups.

use std::ops::Bound;

use super::*;

impl SledStore {
    pub(super) fn append_results(
        &self,
        scan_id: &str,
        results: &[ResultRecord],
        at_ms: i64,
    ) -> Result<()> {
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
            let at = self.log.append(&chunk, at_ms).map_err(backend)?;
            self.results
                .insert(key.as_slice(), &at.encode())
                .map_err(backend)
        })?;
        Ok(())
    }

    pub(super) fn prune_results_before(&self, before_ms: i64) -> Result<usize> {
        let scans = self.scans_to_walk()?;
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
        for kv in scans.range::<Vec<u8>, _>((lo, Bound::Excluded(vec![IDX]))) {
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

    pub(super) fn read_results(&self, scan_id: &str) -> Result<Vec<ResultRecord>> {
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

    pub(super) fn append_audit_entry(&self, entry: &AuditRecord) -> Result<u64> {
        // The sequence is one past the newest entry and the entry chains onto its
        // hash; the lock keeps concurrent appends apart.
        let mut p = self.held_audit.lock();
        let (next, last) = match p.audit_head.take() {
            // Held by this round: its sequence is the one it was given.
            Some(e) => (e.seq + 1, Some(e)),
            None => match records(&self.audit)
                .next_back()
                .transpose()
                .map_err(backend)?
            {
                Some((k, v)) => {
                    let key: [u8; 8] = k
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Backend("bad audit key".into()))?;
                    (u64::from_be_bytes(key) + 1, Some(decode_audit(&k, &v)?))
                }
                None => (1, None),
            },
        };
        let e = audit_chain::seal(entry, next, last.as_ref());
        let (keys, counters) = ix::audit_keys(&e);
        let mut deltas = Deltas::default();
        deltas.add(counters, 1);
        for (k, v) in Self::counter_values(|k| p.get(&self.audit, k), deltas)? {
            match v {
                Some(v) => p.insert(k, v),
                None => p.remove(k),
            }
        }
        for k in keys {
            p.insert(k, &[]);
        }
        p.insert(next.to_be_bytes(), encode(&e)?);
        p.wrote_record(&next.to_be_bytes());
        p.audit_head = Some(e);
        self.written(&self.held_audit, &mut p)?;
        Ok(next)
    }

    pub(super) fn audit_page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<AuditList> {
        let audit = self.audit_to_walk()?;
        // Walk the smaller of the two indexes that apply, or the log itself.
        let mut choice: (u64, Vec<u8>) = (u64::MAX, Vec::new());
        if let Some(a) = &filter.action {
            let n = Self::count(audit, &ix::audit_count_action(a))?;
            choice = (n, ix::audit_by_action(a));
        }
        if let Some(a) = &filter.actor {
            let n = Self::count(audit, &ix::audit_count_actor(a))?;
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
            let last = match records(audit).next_back().transpose().map_err(backend)? {
                Some((k, _)) => <[u8; 8]>::try_from(k.as_ref())
                    .map(u64::from_be_bytes)
                    .unwrap_or(0),
                None => 0,
            };
            if last > 0 && Self::count(audit, &ix::audit_count_all())? == last {
                let top = before.map_or(last, |b| b.saturating_sub(1).min(last));
                let start = top.saturating_sub(offset as u64);
                hi = Bound::Excluded((start + 1).to_be_bytes().to_vec());
                skipped = offset;
            }
        }
        let both = filter.action.is_some() && filter.actor.is_some();
        for kv in audit.range::<Vec<u8>, _>((lo, hi)).rev() {
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
                match audit.get(&k[p.len()..]).map_err(backend)? {
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
            Self::count(audit, &key)? as usize
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

    pub(super) fn take_snapshot(
        &self,
        before_cut: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Box<dyn Snapshot>> {
        self.cow.reserve()?;
        let taken = before_cut().and_then(|()| {
            // Writes gathered by an ingest round go in before the cut.
            self.settle_all()?;
            self.cow.cut(|| {
                // With every writer held off: the result log's files as they are, and
                // the audit head.
                let files = self
                    .log
                    .open_all()
                    .map_err(|source| StoreError::File {
                        what: "cannot open the result log".into(),
                        source,
                    })?
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
}
