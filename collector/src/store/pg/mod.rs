//! The PostgreSQL backend, for fleets that share one database between collectors.
//!
//! The [`Store`] trait is synchronous: the collector already calls it only where
//! blocking is allowed (store work runs in `spawn_blocking` or `block_in_place`).
//! Each call hands its queries to a small runtime of this backend's own (two threads
//! and a pool of connections) and waits for the answer, so no caller ever starts or
//! nests a runtime. A write returns once its transaction has committed, which makes it
//! durable (`synchronous_commit`, on by default): [`Store::sync`] has nothing left to do.
//!
//! Layout (`schema_1.sql`): a row per record with the columns lists filter and order
//! by, the record itself as `jsonb`; results as one compressed chunk per batch; the
//! newest scan per agent as its own row; counters kept in the writing transaction with
//! the sled backend's keys ([`super::sled_index`]), so that totals and the overview
//! read a few rows whatever the number of scans.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

mod audit;
mod connect;
mod events;
mod partitions;
mod presence;
mod records;
mod scans;
mod signin;
mod sql;

use sql::{apply_deltas, count_of, Where};

use super::codec::{decode, decode_chunk, encode, encode_chunk};
use super::sled_index::{self as ix, Deltas};
use super::{
    audit_chain, score_key, AgentRecord, AttemptRecord, AuditFilter, AuditList, AuditRecord,
    DayScores, DeliveryRecord, DeliveryState, Fleet, GateCandidates, Result, ResultRecord,
    ScanCursor, ScanFilter, ScanList, ScanRecord, ScanStatus, SessionRecord, Store, StoreError,
    TokenRecord, TokenUse, UserRecord,
};

/// The NOTIFY channel collectors tell each other about changes on.
const EVENTS: &str = "rampart_events";

/// Advisory lock keys (schema migrations have theirs in `connect`): appends to the
/// audit chain; and the first half of an agent's scan lock (the second is a hash of its ID).
const AUDIT_LOCK: i64 = 0x5241_4d50_0002;
const AGENT_LOCKS: i32 = 0x5241_4d51;

/// How to reach the database.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// `postgres://user@host:port/db?sslmode=…` (a password in it is taken, but a
    /// file or the environment is the place for one).
    pub url: String,
    /// A file holding the password (its first line).
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust for the database's TLS, beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool.
    pub pool_size: usize,
}

/// The environment variable read for the password when neither the URL nor a file
/// gives one.
pub const PASSWORD_ENV: &str = "RAMPART_STORE_PASSWORD";

pub struct PgStore {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    target: String,
    /// For the listening connection of [`Store::subscribe`].
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Marks this store's own events, which its listener skips.
    origin: String,
}

/// A failure in our own words (there is no underlying error).
fn backend(words: impl Into<String>) -> StoreError {
    StoreError::Backend(words.into())
}

/// A database error, chained.
fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(e)
}

/// What a database error says: PostgreSQL's own words and code when it sent them,
/// else the client's error and its causes (the client's own errors keep their cause
/// apart, "invalid configuration" / "password missing": say both).
pub(super) fn words(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => {
            let mut words = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                words.push_str(": ");
                words.push_str(&c.to_string());
                cause = c.source();
            }
            words
        }
    }
}

/// What a pool's failure to give a connection says (a database error as [`words`]).
pub(super) fn pool_words(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => {
            format!("storage backend: database: {}", words(e))
        }
        e => e.to_string(),
    }
}

/// The `doc` column of a row (the record's JSON) as a record; errors name it.
fn doc<T: DeserializeOwned>(row: &Row, what: &str) -> Result<T> {
    let bytes: &[u8] = row.try_get("doc").map_err(|source| StoreError::DecodeRow {
        key: what.to_string(),
        source,
    })?;
    decode(what.as_bytes(), bytes)
}

/// A key as the database holds it (bytea).
fn k(s: &str) -> &[u8] {
    s.as_bytes()
}

fn docs<T: DeserializeOwned>(rows: &[Row], what: &str) -> Result<Vec<T>> {
    rows.iter().map(|r| doc(r, what)).collect()
}

fn status_code(s: ScanStatus) -> i16 {
    i16::from(ix::status_byte(s))
}

fn order_key(s: &ScanRecord) -> i32 {
    score_key(s).clamp(0, i64::from(i32::MAX)) as i32
}

impl PgStore {
    /// Runs `f` with a pooled connection on this backend's runtime and waits for it.
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let target = self.target.clone();
        let (tx, rx) = mpsc::sync_channel(1);
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the store")
            .spawn(async move {
                let r = match pool.get().await {
                    Ok(c) => f(c).await,
                    Err(source) => Err(StoreError::NoConnection { target, source }),
                };
                let _ = tx.send(r);
            });
        rx.recv()
            .map_err(|_| backend("the database task ended without an answer"))?
    }

    fn one<T>(&self, sql: &'static str, key: String) -> Result<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |c| async move {
            let st = c.prepare_cached(sql).await.map_err(pg)?;
            c.query_opt(&st, &[&k(&key)])
                .await
                .map_err(pg)?
                .map(|r| doc(&r, &key))
                .transpose()
        })
    }

    fn all<T>(&self, sql: &'static str, what: &'static str) -> Result<Vec<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |c| async move {
            let st = c.prepare_cached(sql).await.map_err(pg)?;
            docs(&c.query(&st, &[]).await.map_err(pg)?, what)
        })
    }

    fn exec(&self, sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Result<u64> {
        self.run(move |c| async move {
            let p: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let st = c.prepare_cached(sql).await.map_err(pg)?;
            c.execute(&st, &p).await.map_err(pg)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropped anywhere, an async context included.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Store for PgStore {
    fn put_agent(&self, a: &AgentRecord) -> Result<()> {
        records::put_agent(self, a)
    }
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>> {
        records::update_agent(self, id, change)
    }
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        self.one("SELECT doc FROM agents WHERE id = $1", id.to_string())
    }
    fn agents_by_id(&self, ids: &[String]) -> Result<Vec<AgentRecord>> {
        records::agents_by_id(self, ids)
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.all("SELECT doc FROM agents ORDER BY id", "agents")
    }
    fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        records::agent_page(self, after, limit)
    }
    fn agents_by_instance(&self, instance_id: &str) -> Result<Vec<AgentRecord>> {
        records::agents_by_instance(self, instance_id)
    }
    fn gate_candidates(&self, id: &str) -> Result<GateCandidates> {
        records::gate_candidates(self, id)
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()> {
        records::put_token(self, t)
    }
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.one("SELECT doc FROM tokens WHERE hash = $1", hash.to_string())
    }
    fn use_token(&self, hash: &str, now_ms: i64) -> Result<TokenUse> {
        records::use_token(self, hash, now_ms)
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.all("SELECT doc FROM tokens ORDER BY hash", "tokens")
    }
    fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        records::revoke_token(self, id)
    }

    fn put_scan(&self, s: &ScanRecord) -> Result<()> {
        scans::put_scan(self, s)
    }
    fn scan(&self, id: &str) -> Result<Option<ScanRecord>> {
        self.one("SELECT doc FROM scans WHERE id = $1", id.to_string())
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
        scans::scan_list(self, filter, cursor, offset, limit)
    }
    fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        scans::page(self, filter, cursor, 0, limit)
    }
    fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        scans::scans_by_score(self, low_first, past, limit)
    }
    fn scan_total(&self, filter: &ScanFilter) -> Result<Option<usize>> {
        let Some(keys) = ix::filter_counters(filter) else {
            return Ok(None);
        };
        self.run(move |c| async move { Ok(Some(count_of(&c, keys).await? as usize)) })
    }
    fn latest_scan(&self, agent_id: &str) -> Result<Option<ScanRecord>> {
        self.one(
            "SELECT s.doc FROM latest_scans l JOIN scans s ON s.id = l.scan_id
             WHERE l.agent_id = $1",
            agent_id.to_string(),
        )
    }
    fn fleet(&self, min_score: f64) -> Result<Fleet> {
        scans::fleet(self, min_score)
    }
    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        scans::daily_scores(self, from_day, days)
    }

    fn put_results(&self, scan_id: &str, results: &[ResultRecord], _at_ms: i64) -> Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let chunk = encode_chunk(results)?;
        self.exec(
            "INSERT INTO result_chunks (scan_id, chunk) VALUES ($1, $2)",
            vec![Box::new(scan_id.as_bytes().to_vec()), Box::new(chunk)],
        )
        .map(|_| ())
    }
    fn results(&self, scan_id: &str) -> Result<Vec<ResultRecord>> {
        scans::results(self, scan_id)
    }
    fn prune_results(&self, before_ms: i64) -> Result<usize> {
        scans::prune_results(self, before_ms)
    }

    fn put_user(&self, u: &UserRecord) -> Result<()> {
        let u = u.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO users (token_hash, name, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (token_hash) DO UPDATE SET name = EXCLUDED.name, doc = EXCLUDED.doc",
                &[&k(&u.token_hash), &k(&u.name), &encode(&u)?],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn user_by_token_hash(&self, hash: &str) -> Result<Option<UserRecord>> {
        self.one(
            "SELECT doc FROM users WHERE token_hash = $1",
            hash.to_string(),
        )
    }
    fn users(&self) -> Result<Vec<UserRecord>> {
        self.all("SELECT doc FROM users ORDER BY token_hash", "users")
    }
    fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        self.one(
            "SELECT doc FROM users WHERE name = $1 ORDER BY token_hash LIMIT 1",
            name.to_string(),
        )
    }

    fn put_session(&self, s: &SessionRecord) -> Result<()> {
        let s = s.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO sessions (id_hash, doc) VALUES ($1, $2)
                 ON CONFLICT (id_hash) DO UPDATE SET doc = EXCLUDED.doc",
                &[&k(&s.id_hash), &encode(&s)?],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>> {
        self.one(
            "SELECT doc FROM sessions WHERE id_hash = $1",
            id_hash.to_string(),
        )
    }
    fn delete_session(&self, id_hash: &str) -> Result<bool> {
        self.exec(
            "DELETE FROM sessions WHERE id_hash = $1",
            vec![Box::new(id_hash.as_bytes().to_vec())],
        )
        .map(|n| n > 0)
    }
    fn delete_sessions(&self, keep: &mut dyn FnMut(&SessionRecord) -> bool) -> Result<usize> {
        let all: Vec<SessionRecord> =
            self.all("SELECT doc FROM sessions ORDER BY id_hash", "sessions")?;
        let gone: Vec<Vec<u8>> = all
            .into_iter()
            .filter(|s| !keep(s))
            .map(|s| s.id_hash.into_bytes())
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.exec(
            "DELETE FROM sessions WHERE id_hash = ANY($1)",
            vec![Box::new(gone)],
        )
        .map(|n| n as usize)
    }

    fn append_audit(&self, entry: &AuditRecord) -> Result<u64> {
        audit::append_audit(self, entry)
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
        audit::audit_list(self, filter, before, offset, limit)
    }

    fn put_delivery(&self, d: &DeliveryRecord) -> Result<()> {
        let d = d.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO deliveries (id, pending, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET pending = EXCLUDED.pending, doc = EXCLUDED.doc",
                &[
                    &k(&d.id),
                    &(d.state == DeliveryState::Pending),
                    &encode(&d)?,
                ],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn pending_deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        self.all(
            "SELECT doc FROM deliveries WHERE pending ORDER BY id",
            "deliveries",
        )
    }
    fn deliveries(&self) -> Result<Vec<DeliveryRecord>> {
        self.all("SELECT doc FROM deliveries ORDER BY id", "deliveries")
    }
    fn append_attempt(&self, a: &AttemptRecord) -> Result<()> {
        let a = a.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO attempts (at_ms, delivery_id, attempt, doc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (at_ms, delivery_id, attempt) DO UPDATE SET doc = EXCLUDED.doc",
                &[
                    &a.at_ms,
                    &k(&a.delivery_id),
                    &(a.attempt as i32),
                    &encode(&a)?,
                ],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn attempts(&self, offset: usize, limit: usize) -> Result<(Vec<AttemptRecord>, usize)> {
        let (offset, limit) = (
            offset.min(i64::MAX as usize) as i64,
            limit.min(i64::MAX as usize) as i64,
        );
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT doc FROM attempts ORDER BY at_ms DESC, delivery_id DESC,
                     attempt DESC LIMIT $1 OFFSET $2",
                    &[&limit, &offset],
                )
                .await
                .map_err(pg)?;
            let n: i64 = c
                .query_one("SELECT count(*) FROM attempts", &[])
                .await
                .map_err(pg)?
                .get(0);
            Ok((docs(&rows, "attempts")?, n as usize))
        })
    }

    fn size_bytes(&self) -> Result<Option<u64>> {
        self.run(move |c| async move {
            let r = c
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await
                .map_err(pg)?;
            Ok(u64::try_from(r.get::<_, i64>(0)).ok())
        })
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.run(move |c| async move {
            Ok(
                c.query_opt("SELECT value FROM meta WHERE key = $1", &[&k(&key)])
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0)),
            )
        })
    }
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.exec(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            vec![Box::new(key.as_bytes().to_vec()), Box::new(value.to_vec())],
        )
        .map(|_| ())
    }

    fn lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        events::lease(self, name, holder, now_ms, ttl_ms)
    }
    fn stream_opened(&self, agent_id: &str, instance: &str, now_ms: i64) -> Result<()> {
        presence::stream_opened(self, agent_id, instance, now_ms)
    }
    fn stream_closed(&self, agent_id: &str, instance: &str, since_ms: i64) -> Result<()> {
        presence::stream_closed(self, agent_id, instance, since_ms)
    }
    fn heartbeat(&self, instance: &str, now_ms: i64, alive_since_ms: i64) -> Result<usize> {
        presence::heartbeat(self, instance, now_ms, alive_since_ms)
    }
    fn streams_elsewhere(
        &self,
        ids: &[String],
        instance: &str,
        alive_since_ms: i64,
    ) -> Result<Vec<String>> {
        presence::streams_elsewhere(self, ids, instance, alive_since_ms)
    }
    fn note_signin_failure(&self, keys: &[String], at_ms: i64) -> Result<bool> {
        signin::note(self, keys, at_ms).map(|()| true)
    }
    fn signin_failures(
        &self,
        keys: &[String],
        since_ms: i64,
    ) -> Result<Option<Vec<(String, i64)>>> {
        signin::since(self, keys, since_ms).map(Some)
    }
    fn clear_signin_failures(&self, key: &str) -> Result<()> {
        signin::clear(self, key)
    }

    fn maintain(&self, now_ms: i64) -> Result<()> {
        for month in partitions::maintain(self, now_ms)? {
            tracing::info!(database = %self.target, month, "scans partitioned for the month");
        }
        if let Err(e) = signin::forget_old(self, now_ms) {
            tracing::warn!(database = %self.target, error = %e, "cannot forget old failed sign-ins");
        }
        let gone = presence::forget_gone(self, now_ms)?;
        if gone > 0 {
            tracing::info!(database = %self.target, streams = gone, "streams of collectors gone silent removed");
        }
        Ok(())
    }

    fn publish(&self, event: &crate::store::Event) -> Result<()> {
        events::publish(self, event)
    }

    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::store::Event>> {
        events::subscribe(self)
    }

    fn meta_entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.run(|c| async move {
            Ok(c.query("SELECT key, value FROM meta ORDER BY key", &[])
                .await
                .map_err(pg)?
                .iter()
                .map(|r| {
                    let k: Vec<u8> = r.get(0);
                    (String::from_utf8_lossy(&k).into_owned(), r.get(1))
                })
                .collect())
        })
    }

    fn sync(&self) -> Result<()> {
        // Every write above returned after its commit.
        Ok(())
    }
}
