//! `rampart-collector`: parse flags, init logging, build, serve, drain on shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rampart_collector::auth::Role;
use rampart_collector::backup;
use rampart_collector::healthcheck;
use rampart_collector::server;
use rampart_collector::store::audit_chain;
use rampart_collector::store::sled_store::SledStore;

#[derive(Parser)]
#[command(
    name = "rampart-collector",
    version,
    about = "Collects, scores and gates Rampart scans"
)]
struct Cli {
    /// Log lines as text, or as one JSON object each (fields, and the spans with
    /// their `agent_id` and `scan_id`), for a log pipeline.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "RAMPART_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve agents (gRPC, mutual TLS) and the REST API.
    Serve {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        grpc_listen: Option<SocketAddr>,
        #[arg(long)]
        rest_listen: Option<SocketAddr>,
        /// A postgres:// URL: PostgreSQL instead of the built-in store.
        #[arg(long)]
        store: Option<String>,
    },
    /// Ask the collector on this host for /healthz (HTTPS with its CA when rest_tls is
    /// on); exit 0 when it answers 200, 1 otherwise. Takes serve's flags, so it finds
    /// the same listener: a container's health check.
    Healthcheck {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        rest_listen: Option<SocketAddr>,
    },
    /// Manage API users (while the collector is stopped).
    User {
        #[command(subcommand)]
        action: UserCmd,
    },
    /// Manage enrollment tokens (while the collector is stopped).
    Token {
        #[command(subcommand)]
        action: TokenCmd,
    },
    /// Inspect the audit log (while the collector is stopped).
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Copy the built-in store of a data directory into PostgreSQL, then check that
    /// both hold the same (while the collector is stopped; safe to run again).
    Migrate {
        /// The data directory whose store is copied.
        #[arg(long)]
        from: PathBuf,
        /// The postgres:// URL of the database to copy into.
        #[arg(long)]
        to: String,
        /// A config file for the database's password and CA (`store_password_file`,
        /// `store_ca_file`); or set RAMPART_STORE_PASSWORD.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Back the collector up into a new file, running or stopped.
    ///
    /// The file (mode 0600) holds the store's records as they were at one moment, the
    /// result log and the CA with its private key: keep it as you keep the CA. While
    /// the collector runs, the backup is asked of it through its API (an admin token:
    /// --token-file or RAMPART_ADMIN_TOKEN) and writes are held only for the moment of
    /// its cut; when it is stopped, the store is read directly. The file is checked
    /// before it takes its name. A collector on PostgreSQL is backed up with pg_dump
    /// instead.
    Backup {
        /// The collector's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The backup file to create (never overwritten).
        #[arg(long)]
        to: PathBuf,
        /// The collector's config file: where its REST API listens (rest_listen,
        /// rest_tls), and its store.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A file whose first line is an admin's API token (for a running collector).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// The running collector's REST API, e.g. https://127.0.0.1:8080 (default:
        /// from the config's rest_listen and rest_tls).
        #[arg(long)]
        url: Option<String>,
    },
    /// Restore a backup into a new (or empty) data directory.
    ///
    /// A file that is not a backup, truncated, altered (checksum), inconsistent with
    /// its manifest or whose restored audit chain does not verify is refused, naming
    /// the problem, and nothing is left behind. Start a collector with --data NEWDIR
    /// afterwards.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The new data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Check the audit log's hash chain; exits non-zero naming the first broken entry.
    Verify {
        #[arg(long)]
        data: PathBuf,
        /// The collector's config file: its `store` (PostgreSQL) is the one changed.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user and print its API token once.
    Add {
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        data: PathBuf,
        /// Also set a console password, read from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// The collector's config file: its `store` (PostgreSQL) is the one changed.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Set a user's console password, read from the first line of stdin; their
    /// console sessions end.
    Passwd {
        name: String,
        #[arg(long)]
        data: PathBuf,
        /// The collector's config file: its `store` (PostgreSQL) is the one changed.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The first line of stdin, without its line ending: a password.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("cannot read the password from stdin: {e}"))?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        anyhow::bail!("no password on stdin: write it as the first line");
    }
    Ok(p)
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create an enrollment token and print it once.
    Create {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value_t = 86400)]
        ttl_seconds: i64,
        #[arg(long, default_value_t = 1)]
        max_uses: u32,
        /// The collector's config file: its `store` (PostgreSQL) is the one changed.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// The shipped collector is static (musl), whose allocator takes one lock for every
/// thread: mimalloc keeps ingest and REST work from queueing on it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for store work (`spawn_blocking`). Each waits for a group commit while it
/// holds one; more than this only queue, and thousands of parked threads cost
/// context switches.
const BLOCKING_THREADS: usize = 128;

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // Before anything is written: files and directories are the collector's alone.
    rampart_collector::datadir::restrict_umask();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    match cli.command {
        Cmd::Serve {
            data,
            config,
            grpc_listen,
            rest_listen,
            store,
        } => {
            let mut cfg = server::load_config(config.as_deref(), data.as_deref())?;
            cfg.store = store.or(cfg.store);
            cfg.grpc_listen = grpc_listen.unwrap_or(cfg.grpc_listen);
            cfg.rest_listen = rest_listen.unwrap_or(cfg.rest_listen);
            cfg.validate().map_err(anyhow::Error::msg)?;
            let grpc = tokio::net::TcpListener::bind(cfg.grpc_listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.grpc_listen))?;
            let rest = tokio::net::TcpListener::bind(cfg.rest_listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.rest_listen))?;
            let c = server::build(cfg)?;
            if let Some(t) = &c.first_admin_token {
                println!("admin token (shown once): {t}");
            }
            println!("ca fingerprint: {}", c.app.ca.fingerprint());
            println!("grpc listening on {}", grpc.local_addr()?);
            let scheme = if c.app.config.rest_tls {
                "https"
            } else {
                "http"
            };
            println!("rest listening on {scheme} {}", rest.local_addr()?);
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            };
            Ok(server::run(c, grpc, rest, shutdown).await?)
        }
        Cmd::Healthcheck {
            data,
            config,
            rest_listen,
        } => {
            let mut cfg = server::load_config(config.as_deref(), data.as_deref())?;
            cfg.rest_listen = rest_listen.unwrap_or(cfg.rest_listen);
            let probe = healthcheck::Probe::for_config(&cfg)?;
            probe.check()?;
            println!("ok: {}", probe.url());
            Ok(())
        }
        Cmd::User {
            action:
                UserCmd::Add {
                    name,
                    role,
                    data,
                    password_stdin,
                    config,
                },
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown role `{role}`; expected viewer, user, provisioner or admin"
                )
            })?;
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let c = server::build_for_cli(server::load_config(config.as_deref(), Some(&data))?)?;
            println!(
                "{}",
                c.app
                    .add_user_with_password(&name, role, password.as_deref(), "cli")?
            );
            Ok(())
        }
        Cmd::User {
            action: UserCmd::Passwd { name, data, config },
        } => {
            let password = password_from_stdin()?;
            let c = server::build_for_cli(server::load_config(config.as_deref(), Some(&data))?)?;
            c.app.set_password(&name, &password, "cli")?;
            println!("password set for {name}; their console sessions ended");
            Ok(())
        }
        Cmd::Token {
            action:
                TokenCmd::Create {
                    data,
                    project,
                    ttl_seconds,
                    max_uses,
                    config,
                },
        } => {
            let c = server::build_for_cli(server::load_config(config.as_deref(), Some(&data))?)?;
            let (_, token, _) = c.app.create_token(
                project.as_deref(),
                ttl_seconds,
                max_uses,
                "cli",
                Role::Admin,
            )?;
            println!("{token}");
            Ok(())
        }
        Cmd::Migrate { from, to, config } => {
            let mut cfg = server::load_config(config.as_deref(), Some(&from))?;
            let db = from.join("db");
            if !db.is_dir() {
                anyhow::bail!("no collector database at {}", db.display());
            }
            let source = SledStore::open(&db).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open {} ({e}); stop the collector first: it locks its database",
                    db.display()
                )
            })?;
            cfg.store = Some(to);
            cfg.validate().map_err(anyhow::Error::msg)?;
            let target = server::open_store(&cfg)?;
            let n = rampart_collector::migrate::migrate(&source, &*target, &mut std::io::stdout())?;
            println!(
                "done: {} scans and {} audit entries in the new store; give every collector a copy of {}",
                n.scans,
                n.audit_entries,
                from.join("ca").display()
            );
            Ok(())
        }
        Cmd::Backup {
            data,
            to,
            config,
            token_file,
            url,
        } => {
            let cfg = server::load_config(config.as_deref(), Some(&data))?;
            let token = match token_file {
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.display()))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                ),
                None => std::env::var("RAMPART_ADMIN_TOKEN").ok(),
            };
            let remote = backup::Remote { url, token };
            let t = backup::backup_command(&cfg, &to, &remote).await?;
            println!("{}", backup::describe_taken(&t, &to));
            Ok(())
        }
        Cmd::Restore { from, data } => {
            let file = std::fs::File::open(&from)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", from.display()))?;
            let r = tokio::task::spawn_blocking(move || {
                backup::restore(file, &data).map(|r| (r, data))
            })
            .await??;
            println!("{}", backup::describe_restored(&r.0, &r.1));
            Ok(())
        }
        Cmd::Audit {
            action: AuditCmd::Verify { data, config },
        } => {
            let cfg = server::load_config(config.as_deref(), Some(&data))?;
            let store: std::sync::Arc<dyn rampart_collector::store::Store> = if cfg.store.is_some()
            {
                server::open_store(&cfg)?
            } else {
                let db = data.join("db");
                if !db.is_dir() {
                    anyhow::bail!("no collector database at {}", db.display());
                }
                std::sync::Arc::new(SledStore::open(&db).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot open {} ({e}); stop the collector first: it locks its database",
                        db.display()
                    )
                })?)
            };
            let n = audit_chain::verify_store(&*store)?;
            println!("OK: audit chain intact, {n} entries");
            Ok(())
        }
    }
}
