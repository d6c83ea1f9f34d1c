//! The collector's command line: its flags and subcommands, what each does, and the
//! exit codes (`exit`). `main.rs` only parses, sets up logging and maps the result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::auth::Role;
use crate::store::audit_chain;
use crate::store::sled_store::SledStore;
use crate::store::Store;
use crate::{backup, healthcheck, server};

/// The collector's exit codes.
pub mod exit {
    /// The command did what it was asked (serve: stopped by SIGTERM or Ctrl-C).
    pub const OK: i32 = 0;
    /// The command ran and failed: the collector could not start or stopped on an
    /// error, the health check found it unhealthy, the audit chain is broken, a
    /// backup or restore was refused.
    pub const FAILED: i32 = 1;
    /// The command could not run as given: unknown flags or subcommand, a config
    /// file that does not parse or validate, a missing password on stdin.
    pub const USAGE: i32 = 2;
}

/// Why a command of the collector stopped.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The flags, the config or stdin do not say what the command needs.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Server(#[from] server::ServerError),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Health(#[from] healthcheck::HealthError),
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    #[error(transparent)]
    Audit(#[from] audit_chain::VerifyError),
    /// A file or socket the command needs.
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The built-in store is missing or held by a running collector.
    #[error("cannot open {path} ({source}); stop the collector first: it locks its database")]
    Locked {
        path: String,
        #[source]
        source: crate::store::StoreError,
    },
    #[error("no collector database at {0}")]
    NoDatabase(String),
    #[error("a worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl CliError {
    /// The exit code this error ends the process with.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) | CliError::Server(server::ServerError::Config(_)) => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

/// The error and every source its message does not already include, joined by
/// `: ` — one line that says what failed and why.
pub fn explain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CliError {
    let what = what.into();
    move |source| CliError::Io { what, source }
}

type Result<T> = std::result::Result<T, CliError>;

/// The line `serve` prints on stdout once both listeners are bound and the
/// collector is built: `ready ` and one JSON object. Scripts and tests wait for it
/// and read the addresses from it (with port 0, the ones the system chose).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ready {
    /// The agents' gRPC (mutual TLS) address.
    pub grpc: SocketAddr,
    /// The REST API's and console's address.
    pub rest: SocketAddr,
    /// `https` when the REST API is served over TLS (`rest_tls`), else `http`.
    pub rest_scheme: String,
    /// The SHA-256 fingerprint of the collector's CA: what agents pin.
    pub ca_fingerprint: String,
    /// The collector's version.
    pub version: String,
}

impl Ready {
    /// The line's prefix.
    pub const PREFIX: &'static str = "ready ";

    /// The line, without its newline.
    pub fn line(&self) -> String {
        format!(
            "{}{}",
            Self::PREFIX,
            serde_json::to_string(self).expect("plain fields serialise")
        )
    }

    /// The ready line's fields, when `line` is one.
    pub fn parse(line: &str) -> Option<Ready> {
        serde_json::from_str(line.trim_end().strip_prefix(Self::PREFIX)?).ok()
    }
}

/// The first admin's token line, printed before the ready line on the start that
/// created it, and never again.
pub const ADMIN_TOKEN_PREFIX: &str = "admin token (shown once): ";

#[derive(Parser)]
#[command(
    name = "rampart-collector",
    version,
    about = "Collects, scores and gates Rampart scans"
)]
pub struct Cli {
    /// Log lines as text, or as one JSON object each (fields, and the spans with
    /// their `agent_id` and `scan_id`), for a log pipeline.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "RAMPART_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
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

/// The first line of stdin, without its line ending: a password.
fn password_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(io("read the password from stdin"))?;
    let p = line.trim_end_matches(['\n', '\r']).to_string();
    if p.is_empty() {
        return Err(CliError::Usage(
            "no password on stdin: write it as the first line".into(),
        ));
    }
    Ok(p)
}

/// The built-in store of a stopped collector's data directory.
fn stopped_store(data: &Path) -> Result<SledStore> {
    let db = data.join("db");
    if !db.is_dir() {
        return Err(CliError::NoDatabase(db.display().to_string()));
    }
    SledStore::open(&db).map_err(|source| CliError::Locked {
        path: db.display().to_string(),
        source,
    })
}

fn validate(cfg: &crate::config::Config) -> Result<()> {
    cfg.validate().map_err(CliError::Usage)
}

/// Runs the command (logging is already set up).
pub async fn run(cli: Cli) -> Result<()> {
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
            validate(&cfg)?;
            let grpc = tokio::net::TcpListener::bind(cfg.grpc_listen)
                .await
                .map_err(io(format!("listen on {}", cfg.grpc_listen)))?;
            let rest = tokio::net::TcpListener::bind(cfg.rest_listen)
                .await
                .map_err(io(format!("listen on {}", cfg.rest_listen)))?;
            let c = server::build(cfg)?;
            if let Some(t) = &c.first_admin_token {
                println!("{ADMIN_TOKEN_PREFIX}{t}");
            }
            let ready = Ready {
                grpc: grpc.local_addr().map_err(io("read the gRPC address"))?,
                rest: rest.local_addr().map_err(io("read the REST address"))?,
                rest_scheme: if c.app.config.rest_tls {
                    "https"
                } else {
                    "http"
                }
                .into(),
                ca_fingerprint: c.app.ca.fingerprint(),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            println!("{}", ready.line());
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
                CliError::Usage(format!(
                    "unknown role `{role}`; expected viewer, user, provisioner or admin"
                ))
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
            let source = stopped_store(&from)?;
            cfg.store = Some(to);
            validate(&cfg)?;
            let target = server::open_store(&cfg)?;
            let n = crate::migrate::migrate(&source, &*target, &mut std::io::stdout())?;
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
                        .map_err(io(format!("read {}", f.display())))?
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
            let file =
                std::fs::File::open(&from).map_err(io(format!("open {}", from.display())))?;
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
            let store: Arc<dyn Store> = if cfg.store.is_some() {
                server::open_store(&cfg)?
            } else {
                Arc::new(stopped_store(&data)?)
            };
            let n = audit_chain::verify_store(&*store)?;
            println!("OK: audit chain intact, {n} entries");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_is_one_json_object_after_its_word() {
        let r = Ready {
            grpc: "127.0.0.1:8443".parse().unwrap(),
            rest: "[::1]:8080".parse().unwrap(),
            rest_scheme: "https".into(),
            ca_fingerprint: "ab:cd".into(),
            version: "0.1.0".into(),
        };
        let line = r.line();
        assert_eq!(
            line,
            r#"ready {"grpc":"127.0.0.1:8443","rest":"[::1]:8080","rest_scheme":"https","ca_fingerprint":"ab:cd","version":"0.1.0"}"#
        );
        assert_eq!(Ready::parse(&format!("{line}\n")), Some(r));
        assert_eq!(Ready::parse("rest listening on http 127.0.0.1:1"), None);
        assert_eq!(Ready::parse("ready {\"grpc\":1}"), None);
    }

    #[test]
    fn errors_explain_their_sources_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = CliError::Io {
            what: "listen on 127.0.0.1:1".into(),
            source: inner,
        };
        assert_eq!(explain(&e), "cannot listen on 127.0.0.1:1: address in use");
        assert_eq!(e.exit_code(), exit::FAILED);
        assert_eq!(CliError::Usage("x".into()).exit_code(), exit::USAGE);
    }
}
