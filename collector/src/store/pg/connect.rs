//! Connecting to the database (URL, password, TLS roots, the pool and this backend's
//! own runtime) and bringing its schema up to date.

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};

use super::*;

/// The schema's migrations, in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("schema_1.sql")),
    (2, include_str!("schema_2.sql")),
    (3, include_str!("schema_3.sql")),
    (4, include_str!("schema_4.sql")),
    (5, include_str!("schema_5.sql")),
];

/// The advisory lock key of schema migrations.
const MIGRATION_LOCK: i64 = 0x5241_4d50_0001;

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
        let what = || format!("store CA file {}", f.display());
        let pem = std::fs::read(f).map_err(|source| StoreError::File {
            what: what(),
            source,
        })?;
        let mut any = false;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer<'static> =
                cert.map_err(|source| StoreError::Pem {
                    what: what(),
                    source,
                })?;
            roots.add(cert).map_err(|source| StoreError::Tls {
                what: what(),
                source,
            })?;
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
        .map_err(|source| StoreError::Tls {
            what: "the database's TLS configuration".into(),
            source,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
}

impl PgStore {
    /// Connects, then brings the schema up to date under a lock (several collectors
    /// starting at once migrate it once).
    pub fn open(o: &PgOptions) -> Result<PgStore> {
        let mut cfg: tokio_postgres::Config = o.url.parse().map_err(StoreError::Url)?;
        if cfg.get_password().is_none() {
            if let Some(f) = &o.password_file {
                let text = std::fs::read_to_string(f).map_err(|source| StoreError::File {
                    what: format!("store password file {}", f.display()),
                    source,
                })?;
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
            .build()?;
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
            .build()?;
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
        for month in partitions::ahead(&store, chrono::Utc::now().timestamp_millis())? {
            tracing::info!(database = %store.target, month, "scans partitioned for the month");
        }
        Ok(store)
    }

    /// `user@host:port/db` of the database (no password).
    pub fn target(&self) -> &str {
        &self.target
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
}
