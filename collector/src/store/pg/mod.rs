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

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::codec::{decode, decode_chunk, encode, encode_chunk};
use super::sled_index::{self as ix, Deltas};
use super::{
    audit_chain, score_key, AgentRecord, AttemptRecord, AuditFilter, AuditList, AuditRecord,
    DayScores, DeliveryRecord, DeliveryState, Fleet, Result, ResultRecord, ScanCursor, ScanFilter,
    ScanList, ScanRecord, ScanStatus, SessionRecord, Store, StoreError, TokenRecord, TokenUse,
    UserRecord,
};

/// The schema's migrations, in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("schema_1.sql")),
    (2, include_str!("schema_2.sql")),
];

/// The NOTIFY channel collectors tell each other about changes on.
const EVENTS: &str = "rampart_events";

/// Advisory lock keys: schema migrations, and appends to the audit chain; and the
/// first half of an agent's scan lock (the second is a hash of its ID).
const MIGRATION_LOCK: i64 = 0x5241_4d50_0001;
const AUDIT_LOCK: i64 = 0x5241_4d50_0002;
const AGENT_LOCKS: i32 = 0x5241_4d51;

/// FNV-1a of an agent ID: which of 2^32 locks guards its newest-scan rows.
fn agent_lock(agent: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in agent.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as i32
}

/// Sets an agent's newest scan and newest completed scan from its scans as this
/// transaction sees them (the caller holds the agent's lock).
async fn refresh_latest(tx: &tokio_postgres::Transaction<'_>, agent: &[u8]) -> Result<()> {
    for (table, cond, value) in [
        ("latest_scans", "", "blocking"),
        ("latest_completed", " AND status = 2", "coalesce(score, 0)"),
    ] {
        let column = if table == "latest_scans" {
            "blocking"
        } else {
            "score"
        };
        let sql = format!(
            "WITH n AS (SELECT id, {value} AS v FROM scans WHERE agent_id = $1{cond}
                        ORDER BY id DESC LIMIT 1),
                  gone AS (DELETE FROM {table} WHERE agent_id = $1
                           AND NOT EXISTS (SELECT 1 FROM n))
             INSERT INTO {table} (agent_id, scan_id, {column}) SELECT $1, id, v FROM n
             ON CONFLICT (agent_id) DO UPDATE SET scan_id = EXCLUDED.scan_id,
             {column} = EXCLUDED.{column}"
        );
        tx.execute(&sql, &[&agent]).await.map_err(pg)?;
    }
    Ok(())
}

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

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A database error with PostgreSQL's own code and words when it sent them.
fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => backend(format!("database: {} ({})", d.message(), d.code().code())),
        None => {
            // The client's own errors keep their cause apart ("invalid configuration"
            // / "password missing"): say both.
            let mut words = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                words.push_str(": ");
                words.push_str(&c.to_string());
                cause = c.source();
            }
            backend(format!("database: {words}"))
        }
    }
}

/// The `doc` column of a row (the record's JSON) as a record; errors name it.
fn doc<T: DeserializeOwned>(row: &Row, what: &str) -> Result<T> {
    let bytes: &[u8] = row.try_get("doc").map_err(|e| StoreError::Decode {
        key: what.to_string(),
        reason: e.to_string(),
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

/// `user@host:port/db`, never the password: what logs and errors may say.
fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("?")
    )
}

fn tls(ca_file: Option<&PathBuf>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(f) = ca_file {
        let pem =
            std::fs::read(f).map_err(|e| backend(format!("store CA file {}: {e}", f.display())))?;
        let mut any = false;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|e| backend(format!("store CA file {}: {e}", f.display())))?;
            roots
                .add(cert)
                .map_err(|e| backend(format!("store CA file {}: {e}", f.display())))?;
            any = true;
        }
        if !any {
            return Err(backend(format!(
                "store CA file {} holds no PEM certificate",
                f.display()
            )));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(backend)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
}

impl PgStore {
    /// Connects, then brings the schema up to date under a lock (several collectors
    /// starting at once migrate it once).
    pub fn open(o: &PgOptions) -> Result<PgStore> {
        let mut cfg: tokio_postgres::Config = o
            .url
            .parse()
            .map_err(|e| backend(format!("the store URL is not a PostgreSQL URL: {e}")))?;
        if cfg.get_password().is_none() {
            if let Some(f) = &o.password_file {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| backend(format!("store password file {}: {e}", f.display())))?;
                let line = text.lines().next().unwrap_or("");
                if line.is_empty() {
                    return Err(backend(format!(
                        "store password file {} is empty",
                        f.display()
                    )));
                }
                cfg.password(line);
            } else if let Ok(p) = std::env::var(PASSWORD_ENV) {
                cfg.password(p);
            }
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("rampart-collector");
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(10));
        }
        let target = describe(&cfg);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rampart-pg")
            .enable_all()
            .build()
            .map_err(backend)?;
        let tls = tls(o.ca_file.as_ref())?;
        let mgr = Manager::from_config(
            cfg.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(o.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(backend)?;
        let mut nonce = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| backend("no randomness for the store's origin"))?;
        let store = PgStore {
            rt: Some(rt),
            pool,
            target,
            config: cfg,
            tls,
            origin: nonce.iter().map(|b| format!("{b:02x}")).collect(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// `user@host:port/db` of the database (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

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
                    Err(deadpool_postgres::PoolError::Backend(e)) => Err(backend(format!(
                        "database {target}: no connection: {}",
                        pg(e)
                    ))),
                    Err(e) => Err(backend(format!("database {target}: no connection: {e}"))),
                };
                let _ = tx.send(r);
            });
        rx.recv()
            .map_err(|_| backend("the database task ended without an answer"))?
    }

    fn migrate(&self) -> Result<()> {
        let target = self.target.clone();
        self.run(move |mut c| async move {
            c.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(pg)?;
            let r = async {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS rampart_schema (
                        version integer PRIMARY KEY,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map_err(pg)?;
                let current: i32 = c
                    .query_one("SELECT coalesce(max(version), 0) FROM rampart_schema", &[])
                    .await
                    .map_err(pg)?
                    .get(0);
                let newest = MIGRATIONS.last().map_or(0, |m| m.0);
                if current > newest {
                    return Err(backend(format!(
                        "the database {target} has schema version {current}, newer than this \
                         collector's {newest}: run a newer collector"
                    )));
                }
                for (v, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
                    let tx = c.transaction().await.map_err(pg)?;
                    tx.batch_execute(sql).await.map_err(pg)?;
                    tx.execute("INSERT INTO rampart_schema (version) VALUES ($1)", &[v])
                        .await
                        .map_err(pg)?;
                    tx.commit().await.map_err(pg)?;
                    tracing::info!(database = %target, version = v, "store schema migrated");
                }
                Ok(())
            }
            .await;
            let unlocked = c
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(pg);
            r.and(unlocked.map(|_| ()))
        })
    }

    /// The schema version the database holds.
    pub fn schema_version(&self) -> Result<i32> {
        self.run(|c| async move {
            Ok(
                c.query_one("SELECT coalesce(max(version), 0) FROM rampart_schema", &[])
                    .await
                    .map_err(pg)?
                    .get(0),
            )
        })
    }

    fn one<T>(&self, sql: &'static str, key: String) -> Result<Option<T>>
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(move |c| async move {
            c.query_opt(sql, &[&k(&key)])
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
        self.run(move |c| async move { docs(&c.query(sql, &[]).await.map_err(pg)?, what) })
    }

    fn exec(&self, sql: &'static str, params: Vec<Box<dyn ToSql + Sync + Send>>) -> Result<u64> {
        self.run(move |c| async move {
            let p: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect();
            c.execute(sql, &p).await.map_err(pg)
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

/// LISTENs on its own connection and hands other collectors' events to `tx` until
/// `tx`'s reader goes; a lost connection is made again, after which a
/// [`super::Event::Resync`] says that events may have been missed.
async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    origin: String,
    target: String,
    tx: tokio::sync::mpsc::UnboundedSender<super::Event>,
) {
    use tokio_postgres::AsyncMessage;
    let mut first = true;
    while !tx.is_closed() {
        let (client, mut conn) = match config.connect(tls.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(database = %target, error = %pg(e), "cannot listen for other collectors' events; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        // The connection runs beside the LISTEN; notifications come out of it.
        let (ntx, mut nrx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            while let Some(m) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx.send(n.payload().to_string()).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        if let Err(e) = client.batch_execute(&format!("LISTEN {EVENTS}")).await {
            tracing::warn!(database = %target, error = %pg(e), "LISTEN failed; retrying");
            driver.abort();
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        if !first && tx.send(super::Event::Resync).is_err() {
            break;
        }
        first = false;
        while let Some(payload) = nrx.recv().await {
            let Some((from, text)) = payload.split_once(' ') else {
                continue;
            };
            if from == origin {
                continue;
            }
            match super::Event::decode(text) {
                Some(e) => {
                    if tx.send(e).is_err() {
                        break;
                    }
                }
                None => {
                    tracing::warn!(event = %text, "an event from another collector is not understood")
                }
            }
        }
        driver.abort();
        drop(client);
        if !tx.is_closed() {
            tracing::warn!(database = %target, "the event connection ended; listening again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Adds counter changes in one statement, in key order (so that concurrent writers
/// lock counter rows in the same order).
async fn apply_deltas(tx: &tokio_postgres::Transaction<'_>, d: Deltas) -> Result<()> {
    let (keys, ns): (Vec<Vec<u8>>, Vec<i64>) = d.0.into_iter().filter(|(_, n)| *n != 0).unzip();
    if keys.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO counters (key, n) SELECT * FROM unnest($1::bytea[], $2::int8[])
         ON CONFLICT (key) DO UPDATE SET n = counters.n + EXCLUDED.n",
        &[&keys, &ns],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

async fn count_of(c: &Object, keys: Vec<Vec<u8>>) -> Result<u64> {
    let n: i64 = c
        .query_one(
            "SELECT coalesce(sum(n), 0)::int8 FROM counters WHERE key = ANY($1)",
            &[&keys],
        )
        .await
        .map_err(pg)?
        .get(0);
    Ok(n.max(0) as u64)
}

/// A query's WHERE clause and its parameters, built from what is set.
#[derive(Default)]
struct Where {
    parts: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn add(&mut self, cond: &str, v: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(v));
        self.parts
            .push(cond.replace('?', &format!("${}", self.params.len())));
    }
    fn flag(&mut self, cond: &str) {
        self.parts.push(cond.to_string());
    }
    fn scans(f: &ScanFilter) -> Where {
        let mut w = Where::default();
        if let Some(st) = f.status {
            w.add("status = ?", status_code(st));
        }
        if let Some(p) = &f.project {
            w.add("project = ?", p.as_bytes().to_vec());
        }
        if let Some(a) = &f.agent_id {
            w.add("agent_id = ?", a.as_bytes().to_vec());
        }
        if f.blocked {
            w.flag("blocking");
        }
        w
    }
    fn sql(&self) -> String {
        if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        }
    }
    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl Store for PgStore {
    fn put_agent(&self, a: &AgentRecord) -> Result<()> {
        let a = a.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO agents (id, instance_id, revoked, doc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET instance_id = EXCLUDED.instance_id,
                 revoked = EXCLUDED.revoked, doc = EXCLUDED.doc",
                &[&k(&a.id), &k(&a.instance_id), &a.revoked, &encode(&a)?],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn update_agent(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut AgentRecord),
    ) -> Result<Option<AgentRecord>> {
        // Compare-and-swap on the whole record: the change runs here, between a read
        // and a write that only lands if nobody wrote meanwhile.
        loop {
            let Some(old) = self.agent(id)? else {
                return Ok(None);
            };
            let mut a = old.clone();
            change(&mut a);
            let written = self.run(move |c| async move {
                c.execute(
                    "UPDATE agents SET instance_id = $2, revoked = $3, doc = $4
                     WHERE id = $1 AND doc = $5",
                    &[
                        &k(&a.id),
                        &k(&a.instance_id),
                        &a.revoked,
                        &encode(&a)?,
                        &encode(&old)?,
                    ],
                )
                .await
                .map_err(pg)
                .map(|n| (n == 1).then_some(a))
            })?;
            if let Some(a) = written {
                return Ok(Some(a));
            }
        }
    }
    fn agent(&self, id: &str) -> Result<Option<AgentRecord>> {
        self.one("SELECT doc FROM agents WHERE id = $1", id.to_string())
    }
    fn agents(&self) -> Result<Vec<AgentRecord>> {
        self.all("SELECT doc FROM agents ORDER BY id", "agents")
    }
    fn agent_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<AgentRecord>> {
        let after = after.map(String::from);
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(move |c| async move {
            let rows = match &after {
                Some(a) => {
                    c.query(
                        "SELECT doc FROM agents WHERE id > $1 ORDER BY id LIMIT $2",
                        &[&k(a), &limit],
                    )
                    .await
                }
                None => {
                    c.query("SELECT doc FROM agents ORDER BY id LIMIT $1", &[&limit])
                        .await
                }
            }
            .map_err(pg)?;
            docs(&rows, "agents")
        })
    }
    fn agents_by_instance(&self, instance_id: &str) -> Result<Vec<AgentRecord>> {
        if instance_id.is_empty() {
            return Ok(vec![]);
        }
        let i = instance_id.to_string();
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT doc FROM agents WHERE instance_id = $1 AND NOT revoked
                     AND instance_id <> ''::bytea ORDER BY id",
                    &[&k(&i)],
                )
                .await
                .map_err(pg)?;
            docs(&rows, "agents")
        })
    }

    fn put_token(&self, t: &TokenRecord) -> Result<()> {
        let t = t.clone();
        self.run(move |c| async move {
            c.execute(
                "INSERT INTO tokens (hash, id, doc) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO UPDATE SET id = EXCLUDED.id, doc = EXCLUDED.doc",
                &[&k(&t.hash), &k(&t.id), &encode(&t)?],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>> {
        self.one("SELECT doc FROM tokens WHERE hash = $1", hash.to_string())
    }
    fn use_token(&self, hash: &str, now_ms: i64) -> Result<TokenUse> {
        let hash = hash.to_string();
        self.run(move |mut c| async move {
            let tx = c.transaction().await.map_err(pg)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT doc FROM tokens WHERE hash = $1 FOR UPDATE",
                    &[&k(&hash)],
                )
                .await
                .map_err(pg)?
            else {
                return Ok(TokenUse::Unknown);
            };
            let mut t: TokenRecord = doc(&row, &hash)?;
            let verdict = if t.revoked {
                TokenUse::Revoked
            } else if now_ms >= t.expires_at_ms {
                TokenUse::Expired
            } else if t.uses >= t.max_uses {
                TokenUse::UsedUp
            } else {
                t.uses += 1;
                tx.execute(
                    "UPDATE tokens SET doc = $2 WHERE hash = $1",
                    &[&k(&hash), &encode(&t)?],
                )
                .await
                .map_err(pg)?;
                TokenUse::Accepted(t)
            };
            tx.commit().await.map_err(pg)?;
            Ok(verdict)
        })
    }
    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        self.all("SELECT doc FROM tokens ORDER BY hash", "tokens")
    }
    fn revoke_token(&self, id: &str) -> Result<Option<TokenRecord>> {
        let id = id.to_string();
        self.run(move |mut c| async move {
            let tx = c.transaction().await.map_err(pg)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT hash, doc FROM tokens WHERE id = $1 ORDER BY hash LIMIT 1 FOR UPDATE",
                    &[&k(&id)],
                )
                .await
                .map_err(pg)?
            else {
                return Ok(None);
            };
            let hash: Vec<u8> = row.get("hash");
            let before: TokenRecord = doc(&row, &id)?;
            if !before.revoked {
                let after = TokenRecord {
                    revoked: true,
                    ..before.clone()
                };
                tx.execute(
                    "UPDATE tokens SET doc = $2 WHERE hash = $1",
                    &[&hash, &encode(&after)?],
                )
                .await
                .map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(Some(before))
        })
    }

    fn put_scan(&self, s: &ScanRecord) -> Result<()> {
        if s.id.is_empty() {
            return Err(backend("a scan needs an ID"));
        }
        let s = s.clone();
        self.run(move |mut c| async move {
            let tx = c.transaction().await.map_err(pg)?;
            let old: Option<ScanRecord> = tx
                .query_opt(
                    "SELECT doc FROM scans WHERE id = $1 FOR UPDATE",
                    &[&k(&s.id)],
                )
                .await
                .map_err(pg)?
                .map(|r| doc(&r, &s.id))
                .transpose()?;
            tx.execute(
                "INSERT INTO scans (id, agent_id, project, status, blocking, score_key,
                 score, created_at_ms, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET agent_id = EXCLUDED.agent_id,
                 project = EXCLUDED.project, status = EXCLUDED.status,
                 blocking = EXCLUDED.blocking, score_key = EXCLUDED.score_key,
                 score = EXCLUDED.score, created_at_ms = EXCLUDED.created_at_ms,
                 doc = EXCLUDED.doc",
                &[
                    &k(&s.id),
                    &k(&s.agent_id),
                    &s.project.as_deref().map(k),
                    &status_code(s.status),
                    &s.is_blocking(),
                    &order_key(&s),
                    &s.score,
                    &s.created_at_ms,
                    &encode(&s)?,
                ],
            )
            .await
            .map_err(pg)?;
            let mut d = Deltas::default();
            if let Some(o) = &old {
                d.add_scan(o, -1);
            }
            d.add_scan(&s, 1);
            apply_deltas(&tx, d).await?;
            // The newest scans of the agent, and of the one it had if it moved, under
            // their locks (in one order, so that two writers never wait on each other).
            let mut agents = vec![s.agent_id.clone()];
            if let Some(o) = old.as_ref().filter(|o| o.agent_id != s.agent_id) {
                agents.push(o.agent_id.clone());
            }
            agents.sort_by_key(|a| agent_lock(a));
            for a in &agents {
                tx.execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&AGENT_LOCKS, &agent_lock(a)],
                )
                .await
                .map_err(pg)?;
            }
            for a in &agents {
                refresh_latest(&tx, k(a)).await?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(())
        })
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
        let (scans, next) = self.page(filter, cursor, offset, limit)?;
        let total = match self.scan_total(filter)? {
            Some(n) => n,
            None => {
                let w = Where::scans(filter);
                let sql = format!("SELECT count(*) FROM scans{}", w.sql());
                self.run(move |c| async move {
                    let n: i64 = c.query_one(&sql, &w.refs()).await.map_err(pg)?.get(0);
                    Ok(n as usize)
                })?
            }
        };
        Ok(ScanList { scans, total, next })
    }
    fn scan_page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        self.page(filter, cursor, 0, limit)
    }
    fn scans_by_score(
        &self,
        low_first: bool,
        past: Option<&ScanRecord>,
        limit: usize,
    ) -> Result<Vec<ScanRecord>> {
        let past = past.map(|p| (order_key(p), p.id.clone()));
        let limit = limit.min(i64::MAX as usize) as i64;
        self.run(move |c| async move {
            let (cmp, dir) = if low_first {
                (">", "ASC")
            } else {
                ("<", "DESC")
            };
            let rows = match &past {
                Some((key, id)) => {
                    let sql = format!(
                        "SELECT doc FROM scans WHERE status = 2 AND (score_key, id) {cmp} ($1, $2)
                         ORDER BY score_key {dir}, id {dir} LIMIT $3"
                    );
                    c.query(&sql, &[key, &k(id), &limit]).await
                }
                None => {
                    let sql = format!(
                        "SELECT doc FROM scans WHERE status = 2
                         ORDER BY score_key {dir}, id {dir} LIMIT $1"
                    );
                    c.query(&sql, &[&limit]).await
                }
            }
            .map_err(pg)?;
            docs(&rows, "scans")
        })
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
        self.run(move |c| async move {
            let completed = count_of(
                &c,
                vec![ix::counter(
                    b'*',
                    "",
                    ix::status_byte(ScanStatus::Completed),
                )],
            )
            .await?;
            let meeting: i64 = c
                .query_one(
                    "SELECT coalesce(sum(n), 0)::int8 FROM counters WHERE key >= $1 AND key < $2",
                    &[&ix::by_score(min_score), &ix::prefix_end(&ix::prefix(b'h'))],
                )
                .await
                .map_err(pg)?
                .get(0);
            let latest = c
                .query_one(
                    "SELECT count(*), coalesce(sum(score), 0)::float8 FROM latest_completed",
                    &[],
                )
                .await
                .map_err(pg)?;
            let blocked: i64 = c
                .query_one("SELECT count(*) FROM latest_scans WHERE blocking", &[])
                .await
                .map_err(pg)?
                .get(0);
            Ok(Fleet {
                completed_scans: completed as usize,
                completed_meeting: meeting.max(0) as usize,
                vms_scanned: latest.get::<_, i64>(0) as usize,
                latest_score_sum: latest.get(1),
                vms_blocked: blocked as usize,
            })
        })
    }
    fn daily_scores(&self, from_day: u32, days: u32) -> Result<Vec<DayScores>> {
        let end = from_day.saturating_add(days);
        self.run(move |c| async move {
            let rows = c
                .query(
                    "SELECT key, n FROM counters WHERE key >= $1 AND key < $2 ORDER BY key",
                    &[&ix::day_key(from_day, 0), &ix::day_key(end, 0)],
                )
                .await
                .map_err(pg)?;
            let mut out: Vec<DayScores> = Vec::new();
            for r in rows {
                let k: Vec<u8> = r.get(0);
                let n: i64 = r.get(1);
                let Some((day, kind)) = ix::parse_day_key(&k) else {
                    continue;
                };
                if out.last().is_none_or(|d| d.day != day) {
                    out.push(DayScores {
                        day,
                        ..Default::default()
                    });
                }
                let d = out.last_mut().expect("pushed above");
                match kind {
                    b'n' => d.completed = n.max(0) as u64,
                    b's' => d.score_sum = n.max(0) as f64 / 100.0,
                    _ => {}
                }
            }
            Ok(out)
        })
    }

    fn put_results(&self, scan_id: &str, results: &[ResultRecord]) -> Result<()> {
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
        let id = scan_id.to_string();
        let chunks: Vec<(i64, Vec<u8>)> = self.run(move |c| async move {
            Ok(c.query(
                "SELECT seq, chunk FROM result_chunks WHERE scan_id = $1 ORDER BY seq",
                &[&k(&id)],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
        })?;
        // A later write of a rule replaces an earlier one.
        let mut by_rule = std::collections::BTreeMap::new();
        for (seq, chunk) in chunks {
            for r in decode_chunk(format!("result_chunks/{seq}").as_bytes(), &chunk)? {
                by_rule.insert(r.rule_id.clone(), r);
            }
        }
        Ok(by_rule.into_values().collect())
    }
    fn prune_results(&self, before_ms: i64) -> Result<usize> {
        self.run(move |c| async move {
            let n: i64 = c
                .query_one(
                    "WITH gone AS (
                        DELETE FROM result_chunks c USING scans s
                        WHERE c.scan_id = s.id AND s.created_at_ms < $1
                        AND s.status IN (2, 3, 4)
                        RETURNING c.scan_id)
                     SELECT count(DISTINCT scan_id) FROM gone",
                    &[&before_ms],
                )
                .await
                .map_err(pg)?
                .get(0);
            Ok(n as usize)
        })
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
        let entry = entry.clone();
        self.run(move |mut c| async move {
            let tx = c.transaction().await.map_err(pg)?;
            // One chain across every collector: appends take turns.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
                .await
                .map_err(pg)?;
            let last: Option<AuditRecord> = tx
                .query_opt("SELECT doc FROM audit ORDER BY seq DESC LIMIT 1", &[])
                .await
                .map_err(pg)?
                .map(|r| doc(&r, "audit/last"))
                .transpose()?;
            let next = last.as_ref().map_or(1, |l| l.seq + 1);
            let e = audit_chain::seal(&entry, next, last.as_ref());
            tx.execute(
                "INSERT INTO audit (seq, action, actor, doc) VALUES ($1, $2, $3, $4)",
                &[&(next as i64), &k(&e.action), &k(&e.actor), &encode(&e)?],
            )
            .await
            .map_err(pg)?;
            let mut d = Deltas::default();
            d.add(ix::audit_keys(&e).1, 1);
            apply_deltas(&tx, d).await?;
            tx.commit().await.map_err(pg)?;
            Ok(next)
        })
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
        let mut w = Where::default();
        if let Some(a) = &filter.action {
            w.add("action = ?", a.as_bytes().to_vec());
        }
        if let Some(a) = &filter.actor {
            w.add("actor = ?", a.as_bytes().to_vec());
        }
        let total_sql = format!("SELECT count(*) FROM audit{}", w.sql());
        let counter = match (&filter.action, &filter.actor) {
            (Some(_), Some(_)) => None,
            (Some(a), None) => Some(ix::audit_count_action(a)),
            (None, Some(a)) => Some(ix::audit_count_actor(a)),
            (None, None) => Some(ix::audit_count_all()),
        };
        if let Some(b) = before {
            w.add("seq < ?", b.min(i64::MAX as u64) as i64);
        }
        let sql = format!(
            "SELECT doc FROM audit{} ORDER BY seq DESC LIMIT {} OFFSET {}",
            w.sql(),
            limit.saturating_add(1).min(i64::MAX as usize),
            offset.min(i64::MAX as usize)
        );
        let filter = filter.clone();
        self.run(move |c| async move {
            let rows = c.query(&sql, &w.refs()).await.map_err(pg)?;
            let mut entries: Vec<AuditRecord> = docs(&rows, "audit")?;
            let more = entries.len() > limit;
            entries.truncate(limit);
            let total = match counter {
                Some(k) => count_of(&c, vec![k]).await? as usize,
                None => {
                    let mut w = Where::default();
                    if let (Some(a), Some(b)) = (&filter.action, &filter.actor) {
                        w.add("action = ?", a.as_bytes().to_vec());
                        w.add("actor = ?", b.as_bytes().to_vec());
                    }
                    let n: i64 = c.query_one(&total_sql, &w.refs()).await.map_err(pg)?.get(0);
                    n as usize
                }
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
        })
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
        let (name, holder) = (name.to_string(), holder.to_string());
        self.run(move |c| async move {
            Ok(c.query_opt(
                "INSERT INTO leases (name, holder, until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                 until_ms = EXCLUDED.until_ms
                 WHERE leases.holder = EXCLUDED.holder OR leases.until_ms <= $4
                 RETURNING holder",
                &[
                    &k(&name),
                    &k(&holder),
                    &now_ms.saturating_add(ttl_ms),
                    &now_ms,
                ],
            )
            .await
            .map_err(pg)?
            .is_some())
        })
    }

    fn publish(&self, event: &super::Event) -> Result<()> {
        let payload = format!("{} {}", self.origin, event.encode());
        self.run(move |c| async move {
            c.execute("SELECT pg_notify($1, $2)", &[&EVENTS, &payload])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<super::Event>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (config, tls, origin, target) = (
            self.config.clone(),
            self.tls.clone(),
            self.origin.clone(),
            self.target.clone(),
        );
        self.rt
            .as_ref()?
            .spawn(listen(config, tls, origin, target, tx));
        Some(rx)
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

impl PgStore {
    /// A page of matching scans in the cursor's range and order, and the cursor of the
    /// next page.
    fn page(
        &self,
        filter: &ScanFilter,
        cursor: &ScanCursor,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<ScanRecord>, Option<String>)> {
        let mut w = Where::scans(filter);
        if let Some(b) = &cursor.before {
            w.add("id < ?", b.as_bytes().to_vec());
        }
        if let Some(a) = &cursor.after {
            w.add("id > ?", a.as_bytes().to_vec());
        }
        let dir = if cursor.oldest_first { "ASC" } else { "DESC" };
        let sql = format!(
            "SELECT doc FROM scans{} ORDER BY id {dir} LIMIT {} OFFSET {}",
            w.sql(),
            limit.saturating_add(1).min(i64::MAX as usize),
            offset.min(i64::MAX as usize)
        );
        self.run(move |c| async move {
            let rows = c.query(&sql, &w.refs()).await.map_err(pg)?;
            let mut page: Vec<ScanRecord> = docs(&rows, "scans")?;
            let more = page.len() > limit;
            page.truncate(limit);
            let next = if more {
                page.last().map(|s| s.id.clone())
            } else {
                None
            };
            Ok((page, next))
        })
    }
}
