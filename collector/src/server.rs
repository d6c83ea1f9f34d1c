//! Starting the collector: open the data directory, build the app, and serve gRPC
//! (agents) and REST (people, pipelines) on listeners the caller bound, until the
//! shutdown future resolves. Connection bounds are `net`'s; here the gRPC server's
//! own (streams per connection, call timeout, keepalive) and the background tasks
//! (`background`, `webhook`, the server certificate's renewal).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rampart_proto::v1::agent_channel_server::AgentChannelServer;
use rampart_proto::v1::enrollment_server::EnrollmentServer;
use tokio::net::TcpListener;

use crate::app::App;
use crate::auth::Role;
use crate::ca::Ca;
use crate::clock::Clock;
use crate::config::Config;
use crate::downloads::Downloads;
use crate::grpc::{ChannelService, EnrollmentService};
use crate::net::{grpc_incoming, serve_rest, ConnStats, GrpcLimits, RestLimits};
use crate::rest::RestContext;
use crate::store::sled_store::SledStore;
use crate::tls::TlsState;

/// A built collector, ready to serve.
pub struct Collector {
    pub app: Arc<App>,
    pub tls: Arc<TlsState>,
    /// The first admin's token, when this start created it (shown once).
    pub first_admin_token: Option<String>,
    /// The key pair scans over SSH authenticate with.
    pub ssh_key: Arc<crate::ssh::SshKey>,
}

/// Why the collector could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    DataDir(#[from] crate::datadir::DataDirError),
    #[error(transparent)]
    Ca(#[from] crate::ca::CaError),
    #[error(transparent)]
    SshKey(#[from] crate::ssh::KeyError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the PostgreSQL store: {0}")]
    Postgres(crate::store::StoreError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A file or socket the collector needs.
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The REST listener's address and the config disagree (plain HTTP on the network).
    #[error("{0}")]
    Exposure(String),
    /// The stored schedule does not parse.
    #[error("the schedule: {0}")]
    Schedule(String),
    #[error("the agents' port: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

type Result<T> = std::result::Result<T, ServerError>;

/// Opens (or initialises) the data directory: CA, database, first admin.
pub fn build(config: Config) -> Result<Collector> {
    build_with(config, true, Clock::system())
}

/// [`build`] with the app on `clock` (tests: a paused or manual clock).
pub fn build_on(config: Config, clock: Clock) -> Result<Collector> {
    build_with(config, true, clock)
}

/// Opens (or initialises) the data directory for an administrative command (`user add`,
/// `token create`): no first admin is created behind the operator's back, so that
/// `user add admin` on a fresh directory makes the one admin whose token it prints.
pub fn build_for_cli(config: Config) -> Result<Collector> {
    build_with(config, false, Clock::system())
}

fn build_with(config: Config, first_admin: bool, clock: Clock) -> Result<Collector> {
    let dir = config.data_dir.clone();
    crate::datadir::prepare(&dir)?;
    let ca = Ca::open_or_create(&dir.join("ca"))?;
    let ssh_key = Arc::new(crate::ssh::SshKey::open_or_create(&dir.join("ssh"))?);
    let downloads = config.download_dir();
    std::fs::create_dir_all(&downloads).map_err(io(format!(
        "create download directory {}",
        downloads.display()
    )))?;
    let store = open_store(&config)?;
    let app = Arc::new(App::with_clock(store, ca, config.clone(), clock)?);
    let first_admin_token = if first_admin && app.store.users()?.is_empty() {
        Some(app.add_user("admin", Role::Admin, "system")?)
    } else {
        None
    };
    let crl = app.ca.crl(
        &app.revoked_serials()?,
        app.clock.now_ms() as u64,
        time::Duration::days(3650),
    )?;
    let tls = Arc::new(TlsState::new(
        &app.ca,
        &config.server_names,
        Duration::from_secs(config.server_cert_lifetime_secs),
        crl,
    )?);
    let (weak_app, tls2) = (Arc::downgrade(&app), tls.clone());
    app.set_on_revoke(Box::new(move || {
        let Some(app) = weak_app.upgrade() else {
            return;
        };
        match app
            .revoked_serials()
            .map_err(ServerError::from)
            .and_then(|s| {
                Ok(app
                    .ca
                    .crl(&s, app.clock.now_ms() as u64, time::Duration::days(3650))?)
            }) {
            Ok(crl) => {
                if let Err(e) = tls2.rebuild(crl) {
                    tracing::error!(error = %e, "cannot rebuild TLS after revocation");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot issue CRL after revocation"),
        }
    }));
    Ok(Collector {
        app,
        tls,
        first_admin_token,
        ssh_key,
    })
}

/// Serves until `shutdown` resolves.
pub async fn run(
    c: Collector,
    grpc: TcpListener,
    rest: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let cfg = &c.app.config;
    let max = cfg.max_message_bytes;
    let conns = Arc::new(ConnStats::of(&c.app.metrics));
    let grpc_limits = GrpcLimits {
        max_connections: cfg.grpc_max_connections,
        max_unauthenticated_per_ip: cfg.grpc_max_unauthenticated_per_ip,
        max_per_agent: cfg.grpc_max_connections_per_agent,
        unauthenticated_lifetime: Duration::from_secs(cfg.grpc_unauthenticated_secs),
    };
    let grpc_server = tonic::transport::Server::builder()
        // An agent needs one stream; a few more leave room for enrollment retries.
        .max_concurrent_streams(cfg.grpc_max_streams_per_connection)
        // Enroll must finish, and a stream be accepted, within this time.
        .timeout(Duration::from_secs(cfg.grpc_request_timeout_secs))
        // A peer that stops answering pings is gone: its connection is closed.
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .add_service(
            EnrollmentServer::new(EnrollmentService { app: c.app.clone() })
                .max_decoding_message_size(crate::limits::ENROLL_MESSAGE_BYTES),
        )
        .add_service(
            AgentChannelServer::new(ChannelService { app: c.app.clone() })
                .max_decoding_message_size(max),
        )
        .serve_with_incoming_shutdown(
            grpc_incoming(grpc, c.tls.clone(), grpc_limits, conns.clone()),
            wait(stop_tx.subscribe()),
        );
    let rest_addr = rest
        .local_addr()
        .map_err(io("read the REST listener's address"))?;
    cfg.check_rest_exposure(rest_addr)
        .map_err(ServerError::Exposure)?;
    let ctx = Arc::new(RestContext {
        tls: c.tls.clone(),
        conns: conns.clone(),
        downloads: Downloads::new(
            cfg.download_dir(),
            cfg.max_concurrent_downloads,
            c.app.metrics.limit(crate::metrics::Limit::Downloads),
        ),
        metrics_need_token: cfg.metrics_need_token(rest_addr),
        metrics_role: Role::parse(&cfg.metrics_role).unwrap_or(Role::Admin),
        request_timeout: Duration::from_secs(cfg.rest_request_timeout_secs),
    });
    let router = crate::rest::router(c.app.clone(), ctx);
    let rest_limits = RestLimits {
        header_timeout: Duration::from_secs(cfg.rest_header_timeout_secs),
        max_connections: cfg.rest_max_connections,
        max_per_ip: cfg.rest_max_connections_per_ip,
    };
    let rest_server = serve_rest(
        rest,
        cfg.rest_tls.then(|| c.tls.clone()),
        router,
        rest_limits,
        conns,
        wait(stop_tx.subscribe()),
    );
    {
        let app = c.app.clone();
        let _ = tokio::task::spawn_blocking(move || app.take_lead()).await;
        // Scans over SSH run from here on, those left pending first.
        let (app, key) = (c.app.clone(), c.ssh_key.clone());
        let rt = tokio::runtime::Handle::current();
        let _ = tokio::task::spawn_blocking(move || app.start_ssh(key, rt)).await;
    }
    let webhooks = tokio::spawn(crate::webhook::run(c.app.clone(), stop_tx.subscribe()));
    // What other collectors sharing the store change.
    let events = c.app.store.subscribe().map(|mut rx| {
        let app = c.app.clone();
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let app = app.clone();
                let what = e.encode();
                match tokio::task::spawn_blocking(move || app.apply_event(e)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::error!(event = %what, error = %err, "cannot apply another collector's change")
                    }
                    Err(_) => {}
                }
            }
        })
    });
    let renewal = tokio::spawn(renew_server_cert(
        c.app.clone(),
        c.tls.clone(),
        Duration::from_secs(cfg.server_cert_check_secs),
        stop_tx.subscribe(),
    ));
    let background = tokio::spawn(crate::background::run(c.app.clone(), stop_tx.subscribe()));
    let mut stopped = stop_tx.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(());
    });
    // Connected agents hold long-lived streams: drain for a bounded time, then stop.
    // Nothing is lost: results are acknowledged only once durable.
    let servers = async { tokio::join!(grpc_server, rest_server) };
    let g = tokio::select! {
        (g, ()) = servers => g,
        _ = async { let _ = stopped.recv().await; tokio::time::sleep(Duration::from_secs(5)).await } => {
            tracing::info!("drain timed out; closing remaining connections");
            Ok(())
        }
    };
    background.abort();
    webhooks.abort();
    if let Some(e) = events {
        e.abort();
    }
    renewal.abort();
    g?;
    Ok(())
}

/// HTTP/2 pings on the agents' port: sent after this much silence...
const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// ...and a connection whose peer does not answer one within this is closed.
const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Every `every`, renews the server certificate when a third of its lifetime is
/// left (both ports serve the new one to new connections).
async fn renew_server_cert(
    app: Arc<App>,
    tls: Arc<TlsState>,
    every: Duration,
    mut stop: tokio::sync::broadcast::Receiver<()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.recv() => break,
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match tls.renew_if_due(&app.ca, now) {
            Ok(Some(info)) => tracing::info!(
                serial = %info.serial,
                not_after_unix = info.not_after_unix,
                "server certificate renewed"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot renew the server certificate"),
        }
    }
}

async fn wait(mut rx: tokio::sync::broadcast::Receiver<()>) {
    let _ = rx.recv().await;
}

/// The configured store: PostgreSQL when `store` names one, sled under
/// `<data_dir>/db` otherwise.
pub fn open_store(config: &Config) -> Result<Arc<dyn crate::store::Store>> {
    Ok(match &config.store {
        Some(url) => {
            let s = crate::store::pg::PgStore::open(&crate::store::pg::PgOptions {
                url: url.clone(),
                password_file: config.store_password_file.clone(),
                ca_file: config.store_ca_file.clone(),
                pool_size: config.store_pool_size,
            })
            .map_err(ServerError::Postgres)?;
            tracing::info!(database = %s.target(), "store: PostgreSQL");
            Arc::new(s)
        }
        None => Arc::new(SledStore::open(&config.data_dir.join("db"))?),
    })
}

/// Reads a config file, or the defaults with `data_dir` when none is given.
pub fn load_config(path: Option<&Path>, data_dir: Option<&Path>) -> Result<Config> {
    let mut c = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(io(format!("read config {}", p.display())))?;
            Config::parse(&text, p)?
        }
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        c.data_dir = d.to_path_buf();
    }
    Ok(c)
}
