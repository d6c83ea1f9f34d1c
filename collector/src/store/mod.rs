//! Storage behind one trait. sled (embedded, on disk) is the default backend;
//! PostgreSQL ([`pg`]) serves fleets that outgrow one collector. Every backend must
//! pass [`conformance::run`]; [`brute_force`] is the oracle it compares with.
//!
//! Records (`records`) are the on-disk format: they derive `Serialize` on purpose.

pub mod audit_chain;
pub mod brute_force;
pub mod codec;
pub mod conformance;
mod event;
pub mod pg;
mod records;
pub mod result_log;
pub mod sled_index;
pub mod sled_snapshot;
pub mod sled_store;

pub use event::Event;
pub use records::*;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed in a way we describe (a lock held, a schema too new, an
    /// empty password file): there is no underlying error to chain.
    #[error("storage backend: {0}")]
    Backend(String),
    /// sled failed (I/O, corruption).
    #[error("storage backend: {0}")]
    Sled(#[from] sled::Error),
    /// A file of the store could not be read or written.
    #[error("storage backend: {0}")]
    Io(#[from] std::io::Error),
    /// A named file or resource of the store could not be had.
    #[error("storage backend: {what}: {source}")]
    File {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("storage backend: {0}")]
    Encode(#[from] serde_json::Error),
    /// The TLS configuration for the database (its CA file) was refused.
    #[error("storage backend: {what}: {source}")]
    Tls {
        what: String,
        #[source]
        source: rustls::Error,
    },
    /// The store's CA file holds something that is not a PEM certificate.
    #[error("storage backend: {what}: {source}")]
    Pem {
        what: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The store URL is not a PostgreSQL URL.
    #[error("storage backend: the store URL is not a PostgreSQL URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    /// PostgreSQL or its client failed; the words are the server's message and
    /// code when it sent them, else the client's error and its causes.
    #[error("storage backend: database: {}", pg::words(.0))]
    Database(#[source] tokio_postgres::Error),
    /// No connection to the database could be had from the pool.
    #[error(
        "storage backend: database {target}: no connection: {}",
        pg::pool_words(source)
    )]
    NoConnection {
        target: String,
        #[source]
        source: deadpool_postgres::PoolError,
    },
    /// The connection pool could not be built.
    #[error("storage backend: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    /// A failure shared by every caller that waited on the same flush.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
    /// A stored record could not be decoded (a reason we compose: a locator that
    /// does not parse, a chunk that is damaged).
    #[error("stored record {key} is unreadable: {reason}")]
    Decode { key: String, reason: String },
    /// A stored record is not JSON of its type.
    #[error("stored record {key} is unreadable: {source}")]
    DecodeJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// A database row lacks its record or holds it in another type.
    #[error("stored record {key} is unreadable: {source}")]
    DecodeRow {
        key: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The store cannot do this now (a backup is already being taken) or at all (a
    /// backend backed up with its own tools); the words say which.
    #[error("{0}")]
    Refused(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The parts of a store a backup holds, each a set of records (key → value) in the
/// backend's own encoding. Console sessions are left out (people sign in again), and
/// so are the store's own bookkeeping and indexes, which a restore rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Meta,
    Agents,
    Tokens,
    Users,
    Scans,
    /// Where each batch of results is (sled: locators into the result log's files).
    Results,
    Audit,
    Deliveries,
    Attempts,
}

impl Section {
    pub const ALL: [Section; 9] = [
        Section::Meta,
        Section::Agents,
        Section::Tokens,
        Section::Users,
        Section::Scans,
        Section::Results,
        Section::Audit,
        Section::Deliveries,
        Section::Attempts,
    ];

    /// Its number in a backup file (from 1).
    pub fn id(self) -> u8 {
        self as u8 + 1
    }

    pub fn from_id(id: u8) -> Option<Section> {
        Section::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    /// Its place in [`Section::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Section::Meta => "meta",
            Section::Agents => "agents",
            Section::Tokens => "tokens",
            Section::Users => "users",
            Section::Scans => "scans",
            Section::Results => "results",
            Section::Audit => "audit",
            Section::Deliveries => "deliveries",
            Section::Attempts => "attempts",
        }
    }
}

/// One record of a snapshot: key and value as the backend stores them.
pub type SnapshotRecord = (Vec<u8>, Vec<u8>);

/// A file of the store's own (sled: a result log day file) as it was at the cut.
pub struct SnapshotFile {
    /// Its path inside the data directory, e.g. `db/results/00020000.results`.
    pub name: String,
    /// Its length at the cut; bytes appended since are not part of the snapshot.
    pub len: u64,
    /// Opened at the cut, so that it reads even if it is deleted since.
    pub file: std::fs::File,
}

/// A store as it was at one moment (the cut), read while the collector goes on
/// writing. Dropping it ends the snapshot.
pub trait Snapshot: Send {
    /// The records of `section` as they were at the cut, each once, mostly in key
    /// order (records deleted since the cut come last). One walk at a time; a section
    /// may be walked again (a backup counts its records first).
    fn records(&self, section: Section) -> Box<dyn Iterator<Item = Result<SnapshotRecord>> + '_>;
    /// The store's files as they were at the cut.
    fn files(&self) -> &[SnapshotFile];
    /// The last audit entry at the cut: its sequence number and hash (0 and
    /// [`audit_chain::GENESIS`] for an empty log).
    fn audit_head(&self) -> (u64, String);
    /// How long writes were held to take the cut.
    fn pause(&self) -> std::time::Duration;
}

/// The storage contract. Writes are durable when [`Store::sync`] returns.
pub trait Store: Send + Sync + 'static {
    fn put_agent(&self, a: &AgentRecord) -> Result<()>;
    /// Atomically applies `change` to the stored agent (compare-and-swap: a change
    /// made meanwhile by another writer is never undone; `change` may run again on
    /// the fresher record). Returns the record as written, `None` if unknown.
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>>;
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>>;
    /// The agents among `ids` that exist, in any order: one read for a page's
    /// worth of rows where a backend is a round trip away.
    fn agents_by_id(&self, ids: &[String]) -> Result<Vec<AgentRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.agent(id)?);
        }
        Ok(out)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>>;
    /// Up to `limit` agents in ID order, after the agent `after` (exclusive).
    fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        Ok(brute_force::agent_page(self.agents()?, after, limit))
    }
    /// Agents that are not revoked and enrolled with this (non-empty) instance ID.
    fn agents_by_instance(&self, instance_id: &str) -> Result<Vec<AgentRecord>> {
        Ok(brute_force::agents_by_instance(self.agents()?, instance_id))
    }

    /// What the handover gate reads, at once where the store is a round trip away:
    /// the agent whose ID is `id` and the live agents whose instance ID is `id`
    /// (as [`Store::agent`] and [`Store::agents_by_instance`] find them), each with
    /// its newest scan (as [`Store::latest_scan`] finds it).
    fn gate_candidates(&self, id: &str) -> Result<GateCandidates> {
        let with_latest = |a: AgentRecord| -> Result<(AgentRecord, Option<ScanRecord>)> {
            let latest = self.latest_scan(&a.id)?;
            Ok((a, latest))
        };
        let mut by_instance = self.agents_by_instance(id)?;
        by_instance.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(GateCandidates {
            by_id: self.agent(id)?.map(with_latest).transpose()?,
            by_instance: by_instance
                .into_iter()
                .map(with_latest)
                .collect::<Result<_>>()?,
        })
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()>;
    /// The token with that hash, as it is (no use counted).
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>>;
    /// Atomically checks a token (by hash) and counts one use if it is valid at `now_ms`.
    fn use_token(&self, hash: &str, now_ms: i64) -> Result<TokenUse>;
    fn tokens(&self) -> Result<Vec<TokenRecord>>;
    /// Atomically marks the token with that ID revoked (with respect to
    /// [`Store::use_token`]); returns the record as it was before, `None` if unknown.
    fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>>;

    fn put_scan(&self, s: &ScanRecord) -> Result<()>;
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>>;
    /// Matching scans, newest first, `offset` skipped, at most `limit`; and the total.
    fn scans(
        &self,
        filter: &ScanFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, usize)>;

    /// Matching scans, newest first, in the cursor's key range, `offset` skipped, at
    /// most `limit`; the total of the filter and the cursor of the next page.
    fn scan_list(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        offset: usize,
        limit: usize,
    ) -> Result<ScanList> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::scan_list(&all, filter, cursor, offset, limit))
    }
    /// Matching scans, newest first, in the cursor's key range, at most `limit`, and
    /// the cursor of the next page: [`Store::scan_list`] without the total, so that its
    /// cost follows the page whatever the filter.
    fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        let l = self.scan_list(filter, cursor, 0, limit)?;
        Ok((l.scans, l.next))
    }
    /// Completed scans ordered by [`score_key`] then ID, lowest first or highest first,
    /// strictly past `past` (a scan of the list) in that order, at most `limit`.
    fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::scans_by_score(&all, low_first, past, limit))
    }
    /// How many scans match, when a counter knows it (no walk); `None` otherwise.
    fn scan_total(&self, _filter: &ScanFilter) -> Result<Option<usize>> {
        Ok(None)
    }
    /// The agent's newest scan.
    fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        let f = ScanFilter {
            agent_id: Some(agent_id.into()),
            ..Default::default()
        };
        Ok(self.scans(&f, 0, 1)?.0.into_iter().next())
    }
    /// The overview's figures, `min_score` being the score a completed scan must meet.
    fn fleet(&self, min_score: f64) -> Result<Fleet> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::fleet(&all, min_score))
    }

    /// Completed scans per UTC creation day, for the days `from_day..from_day+days`
    /// that have any, oldest first.
    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        let (all, _) = self.scans(&ScanFilter::default(), 0, usize::MAX)?;
        Ok(brute_force::daily_scores(&all, from_day, days))
    }

    /// Upserts results: a rule's result is stored once per scan, whatever is resent.
    /// `at_ms` is now, by the caller's clock.
    fn put_results(&self, scan_id: &str, results: &[ResultRecord], at_ms: i64) -> Result<()>;
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>>;
    /// Retention: drops the results of finished scans created before `before_ms`,
    /// keeping the scans themselves (their counts, score and verdict). Returns how
    /// many scans lost their results; a second call with the same time finds none.
    fn prune_results(&self, before_ms: i64) -> Result<usize>;

    fn put_user(&self, u: &UserRecord) -> Result<()>;
    fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRecord>>;
    fn users(&self) -> Result<Vec<UserRecord>>;
    /// The user with that name.
    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        Ok(self.users()?.into_iter().find(|u| u.name == name))
    }

    /// Console sessions (by the SHA-256 of their secret).
    fn put_session(&self, s: &SessionRecord) -> Result<()>;
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>>;
    /// Ends one session; whether it existed.
    fn delete_session(&self, id_hash: &str) -> Result<bool>;
    /// Ends every session for which `keep` answers false; returns how many ended.
    fn delete_sessions(&self, keep: &mut dyn FnMut(&SessionRecord) -> bool) -> Result<usize>;

    /// Appends to the audit log and returns the entry's sequence number. The store
    /// assigns `seq`, `prev_hash` and `hash` with [`audit_chain::seal`], atomically
    /// with respect to other appends, whatever the caller put in them.
    fn append_audit(&self, entry: &AuditRecord) -> Result<u64>;
    /// Audit entries from the newest, `offset` skipped, at most `limit`; and the total.
    fn audit(&self, offset: usize, limit: usize) -> Result<(Vec<AuditRecord>, usize)>;

    /// Matching audit entries from the newest, older than `before` (a sequence
    /// number), `offset` skipped, at most `limit`; the total of the filter.
    fn audit_list(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        offset: usize,
        limit: usize,
    ) -> Result<AuditList> {
        let (all, _) = self.audit(0, usize::MAX)?;
        Ok(brute_force::audit_list(&all, filter, before, offset, limit))
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<()>;
    /// Deliveries still pending, oldest first.
    fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>>;
    /// Every delivery, whatever its state, oldest first (for a move between stores).
    fn deliveries(&self) -> Result<Vec<DeliveryRecord>>;
    fn append_attempt(&self, a: &AttemptRecord) -> Result<()>;
    /// Attempts from the newest, `offset` skipped, at most `limit`; and the total.
    fn attempts(&self, offset: usize, limit: usize) -> Result<(Vec<AttemptRecord>, usize)>;

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Every meta entry, by key (for a move between stores).
    fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>>;

    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`: granted
    /// when nobody holds it, `holder` already does, or the last holder's time ran out
    /// (atomically: two collectors never both hold it). Work that must run once for
    /// every collector sharing a store (retention, schedules, stalled scans, webhook
    /// deliveries) runs where the lease is held.
    fn lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    /// Records that collector `instance` holds agent `agent_id`'s stream (where
    /// several collectors share the store; nothing to record for one).
    fn stream_opened(&self, _agent_id: &str, _instance: &str, _now_ms: i64) -> Result<()> {
        Ok(())
    }
    /// Records that the stream `instance` opened at `since_ms` has ended (unless a
    /// newer one has been recorded since).
    fn stream_closed(&self, _agent_id: &str, _instance: &str, _since_ms: i64) -> Result<()> {
        Ok(())
    }
    /// Collector `instance` is alive at `now_ms`: how many collectors share the
    /// store now, counting `instance` and every other whose heartbeat is no older
    /// than `alive_since_ms` (one, for a store no other collector shares). Rates
    /// meant for the whole deployment are divided among them.
    fn heartbeat(&self, _instance: &str, _now_ms: i64, _alive_since_ms: i64) -> Result<usize> {
        Ok(1)
    }
    /// Those of `ids` whose stream another collector than `instance` holds, one
    /// whose heartbeat is no older than `alive_since_ms`.
    fn streams_elsewhere(
        &self,
        _ids: &[String],
        _instance: &str,
        _alive_since_ms: i64,
    ) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Failed console sign-ins where every collector sharing the store counts them:
    /// records one under each of `keys` at `at_ms`. `Ok(false)`: this store keeps
    /// none (one collector uses it, and counts in memory).
    fn note_signin_failure(&self, _keys: &[String], _at_ms: i64) -> Result<bool> {
        Ok(false)
    }
    /// The failed sign-ins recorded under any of `keys` at or after `since_ms`
    /// (key, time), newest first; `None` where the store keeps none.
    fn signin_failures(
        &self,
        _keys: &[String],
        _since_ms: i64,
    ) -> Result<Option<Vec<(String, i64)>>> {
        Ok(None)
    }
    /// Forgets the failed sign-ins under `key` (it signed in).
    fn clear_signin_failures(&self, _key: &str) -> Result<()> {
        Ok(())
    }

    /// Periodic upkeep of the store's layout, run where the lease is held (and by
    /// `migrate` once it has copied): PostgreSQL makes its monthly partitions ahead
    /// of time and forgets the streams of collectors long silent. Nothing to do for a
    /// store without any.
    fn maintain(&self, _now_ms: i64) -> Result<()> {
        Ok(())
    }

    /// Bytes the store takes where it is kept (for `/metrics`), if known.
    fn size_bytes(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// Tells the other collectors sharing this store about a change (see
    /// [`Event`]); a store that only one collector uses has nobody to tell.
    fn publish(&self, _event: &Event) -> Result<()> {
        Ok(())
    }
    /// What other collectors publish, from now on; `None` for a store no other
    /// collector shares. Events can be lost while the connection is down: a
    /// [`Event::Resync`] then says that anything may have changed.
    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Event>> {
        None
    }

    /// Begins a point-in-time snapshot for a backup (`crate::backup`): `before_cut`
    /// runs first (the backup's audit entry, so that the snapshot holds it), then the
    /// store takes its cut, and the snapshot reads the records as they were at that
    /// moment while writes go on. One at a time. A backend with backup tools of its
    /// own (PostgreSQL: `pg_dump`) refuses, without running `before_cut`.
    fn snapshot(&self, _before_cut: &mut dyn FnMut() -> Result<()>) -> Result<Box<dyn Snapshot>> {
        Err(StoreError::Refused(
            "this store has no built-in backup: back the database up with its own tools \
             (PostgreSQL: pg_dump, see docs/postgres.md), and the data directory's ca/ beside it"
                .into(),
        ))
    }

    /// Makes every write so far durable (survives a crash of the process or the host).
    /// Concurrent callers may share one flush; none returns before its writes are
    /// durable.
    fn sync(&self) -> Result<()>;

    /// Applies writes a backend held back within an ingest round
    /// ([`crate::ingest`]), without making them durable: a round that owes no sync
    /// ends with this. (A sync does it too.)
    fn settle(&self) -> Result<()> {
        Ok(())
    }
}
