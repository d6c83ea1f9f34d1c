//! Flags, and their validation into a plan (pure: files are read through the
//! function the caller gives).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::agents::IngestConfig;
use crate::rest::RestConfig;
use crate::seed::SeedConfig;
use crate::{Error, Result};

/// Load for one Rampart collector, measured. Without a subcommand: ingest (or idle
/// connections with --connect-only). Progress goes to stderr, one JSON line to stdout.
#[derive(Debug, Parser)]
#[command(
    name = "rampart-loadgen",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub ingest: IngestFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fill a stopped collector's data directory with agents, scans and audit entries.
    Seed(SeedFlags),
    /// Measure the latency of REST GETs.
    Rest(RestFlags),
}

#[derive(Debug, Args)]
pub struct IngestFlags {
    /// The collector's gRPC URL, https://HOST:PORT.
    #[arg(long)]
    pub collector: Option<String>,
    /// The collector's REST URL, http(s)://HOST:PORT.
    #[arg(long)]
    pub rest: Option<String>,
    /// A file holding an admin (or provisioner) API token.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    /// Simulated agents.
    #[arg(long, default_value_t = 10)]
    pub agents: usize,
    /// Scans each agent completes (its provision scan included).
    #[arg(long, default_value_t = 1)]
    pub scans_per_agent: u32,
    /// Results per scan: switches the collector to the server profile with at least
    /// this many rules (300 → level2-server, 310 rules).
    #[arg(long)]
    pub results: Option<usize>,
    /// Results per ResultBatch (the agent's default).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Enroll and hold idle streams for --duration; report the collector's RSS.
    #[arg(long)]
    pub connect_only: bool,
    /// With --connect-only: reconnect as the agent does when a stream ends (a
    /// collector restart) and report how long the fleet took to come back.
    #[arg(long)]
    pub reconnect: bool,
    /// Seconds: how long idle streams are held, or a cap on ingest.
    #[arg(long)]
    pub duration: Option<u64>,
    /// SHA-256 of the collector's CA (asked of the REST API when absent).
    #[arg(long)]
    pub ca_fingerprint: Option<String>,
    /// The collector's process ID, for its RSS (/proc/PID/status).
    #[arg(long)]
    pub collector_pid: Option<u32>,
    /// Terraform project of the enrollment token.
    #[arg(long, default_value = "loadgen")]
    pub project: String,
    /// Up to this many milliseconds of random delay before each scan starts.
    #[arg(long, default_value_t = 20)]
    pub jitter_ms: u64,
    /// Enrollments in flight at once.
    #[arg(long, default_value_t = 16)]
    pub enroll_concurrency: usize,
    /// Scans per second offered by the whole fleet (each agent starts one every
    /// agents/rate seconds, at its own phase) instead of as fast as acknowledgements
    /// come: acknowledgement latency below saturation, as a fleet scanning on a
    /// schedule sees it.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A Debian 12 root to record a real scan from (default: $RAMPART_DEBIAN_ROOT).
    #[arg(long)]
    pub record_root: Option<PathBuf>,
    /// The rampart-agent binary that records it (default: beside this binary).
    #[arg(long)]
    pub agent_binary: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SeedFlags {
    /// The (stopped) collector's data directory.
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, default_value_t = 100)]
    pub agents: usize,
    #[arg(long, default_value_t = 1000)]
    pub scans: usize,
    /// Results stored for each agent's latest scan.
    #[arg(long, default_value_t = 0)]
    pub results: usize,
    #[arg(long, default_value_t = 20)]
    pub projects: usize,
    /// Days of history.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Create an admin user and write its token to this file.
    #[arg(long)]
    pub admin_token_file: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Seed this PostgreSQL database (`postgres://…`) instead of `DATA/db`.
    #[arg(long)]
    pub store: Option<String>,
    /// The database password's file (its first line), with `--store`.
    #[arg(long)]
    pub store_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestFlags {
    #[arg(long)]
    pub rest: String,
    #[arg(long)]
    pub admin_token_file: PathBuf,
    #[arg(long)]
    pub ca_fingerprint: Option<String>,
    /// A path to GET (repeatable); `{instance}` names a random seeded agent.
    #[arg(long = "path", required = true)]
    pub paths: Vec<String>,
    /// Requests per path.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seeded agents, for `{instance}`.
    #[arg(long, default_value_t = 1)]
    pub agents: usize,
    #[arg(long)]
    pub collector_pid: Option<u32>,
}

/// What to run.
#[derive(Debug)]
pub enum Plan {
    /// Ingest or idle connections; a Debian root to record a real scan from.
    Ingest(IngestConfig, Option<PathBuf>),
    Seed(SeedConfig),
    Rest(RestConfig),
}

fn token(path: &Path, read: &dyn Fn(&Path) -> Result<String>) -> Result<String> {
    let t = read(path)?.trim().to_string();
    if t.is_empty() {
        return Err(Error::Config(format!("{} holds no token", path.display())));
    }
    Ok(t)
}

/// Validates flags into a plan; `read` reads the token file, `env_root` is
/// $RAMPART_DEBIAN_ROOT.
pub fn plan(
    cli: Cli,
    read: &dyn Fn(&Path) -> Result<String>,
    env_root: Option<PathBuf>,
) -> Result<Plan> {
    match cli.command {
        Some(Command::Seed(s)) => {
            if s.agents == 0 {
                return Err(Error::Config("--agents must be at least 1".into()));
            }
            Ok(Plan::Seed(SeedConfig {
                data: s.data,
                agents: s.agents,
                scans: s.scans,
                results: s.results,
                projects: s.projects.max(1),
                days: s.days.max(1),
                admin_token_file: s.admin_token_file,
                threads: s.threads,
                store: s.store,
                store_password_file: s.store_password_file,
            }))
        }
        Some(Command::Rest(r)) => {
            if r.requests == 0 || r.concurrency == 0 {
                return Err(Error::Config(
                    "--requests and --concurrency must be at least 1".into(),
                ));
            }
            crate::http::parse_base(&r.rest)?;
            Ok(Plan::Rest(RestConfig {
                admin_token: token(&r.admin_token_file, read)?,
                rest: r.rest,
                fingerprint: r.ca_fingerprint,
                paths: r.paths,
                requests: r.requests,
                concurrency: r.concurrency,
                agents: r.agents.max(1),
                collector_pid: r.collector_pid,
            }))
        }
        None => {
            let f = cli.ingest;
            let need = |v: Option<String>, flag: &str| {
                v.ok_or_else(|| Error::Config(format!("{flag} is required")))
            };
            let collector = need(f.collector, "--collector")?;
            if !collector.starts_with("https://") {
                return Err(Error::Config(format!(
                    "--collector `{collector}` must be https://HOST:PORT"
                )));
            }
            let rest = need(f.rest, "--rest")?;
            crate::http::parse_base(&rest)?;
            let token_file = f
                .admin_token_file
                .ok_or_else(|| Error::Config("--admin-token-file is required".into()))?;
            if f.agents == 0 {
                return Err(Error::Config("--agents must be at least 1".into()));
            }
            if !(1..=2000).contains(&f.batch) {
                return Err(Error::Config("--batch must be between 1 and 2000".into()));
            }
            if f.reconnect && !f.connect_only {
                return Err(Error::Config("--reconnect needs --connect-only".into()));
            }
            if f.connect_only && f.duration.is_none() {
                return Err(Error::Config("--connect-only needs --duration".into()));
            }
            if f.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return Err(Error::Config(
                    "--rate must be a number of scans per second above 0".into(),
                ));
            }
            let record = f.record_root.or(env_root).filter(|_| !f.connect_only);
            Ok(Plan::Ingest(
                IngestConfig {
                    collector,
                    rest,
                    admin_token: token(&token_file, read)?,
                    fingerprint: f.ca_fingerprint,
                    agents: f.agents,
                    scans_per_agent: f.scans_per_agent,
                    results: f.results,
                    batch: f.batch,
                    connect_only: f.connect_only,
                    reconnect: f.reconnect,
                    duration: f.duration.map(Duration::from_secs),
                    collector_pid: f.collector_pid,
                    project: f.project,
                    jitter_ms: f.jitter_ms,
                    enroll_concurrency: f.enroll_concurrency,
                    rate: f.rate,
                    agent_binary: f.agent_binary,
                },
                record,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Plan> {
        let cli =
            Cli::try_parse_from(std::iter::once("rampart-loadgen").chain(args.iter().copied()))
                .map_err(|e| Error::Config(e.to_string()))?;
        plan(cli, &|_| Ok("tok\n".into()), None)
    }

    const BASE: [&str; 6] = [
        "--collector",
        "https://127.0.0.1:1",
        "--rest",
        "http://127.0.0.1:2",
        "--admin-token-file",
        "t",
    ];

    #[test]
    fn ingest_flags() {
        let mut args = BASE.to_vec();
        args.extend([
            "--agents",
            "5",
            "--scans-per-agent",
            "2",
            "--results",
            "300",
        ]);
        let Plan::Ingest(c, root) = parse(&args).unwrap() else {
            panic!("not ingest")
        };
        assert_eq!((c.agents, c.scans_per_agent, c.results), (5, 2, Some(300)));
        assert_eq!(c.admin_token, "tok");
        assert!(root.is_none());
        for (extra, want) in [
            (vec!["--agents", "0"], "--agents"),
            (vec!["--batch", "0"], "--batch"),
            (vec!["--connect-only"], "--duration"),
            (vec!["--reconnect"], "--connect-only"),
            (vec!["--rate", "0"], "--rate"),
            (vec!["--rate", "NaN"], "--rate"),
        ] {
            let mut a = BASE.to_vec();
            a.extend(extra);
            let e = parse(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
        }
        for (flag, value, want) in [
            ("--collector", "http://x:1", "https://"),
            ("--rest", "x:1", "http://"),
        ] {
            let mut a = BASE.to_vec();
            let at = a.iter().position(|x| *x == flag).unwrap();
            a[at + 1] = value;
            let e = parse(&a).unwrap_err().to_string();
            assert!(e.contains(want), "{a:?}: {e}");
        }
        let e = parse(&["--agents", "3"]).unwrap_err().to_string();
        assert!(e.contains("--collector"), "{e}");
    }

    #[test]
    fn seed_and_rest_flags() {
        let Plan::Seed(s) =
            parse(&["seed", "--data", "d", "--agents", "4", "--scans", "9"]).unwrap()
        else {
            panic!("not seed")
        };
        assert_eq!((s.agents, s.scans), (4, 9));
        let Plan::Rest(r) = parse(&[
            "rest",
            "--rest",
            "http://h:1",
            "--admin-token-file",
            "t",
            "--path",
            "/a",
            "--path",
            "/b",
        ])
        .unwrap() else {
            panic!("not rest")
        };
        assert_eq!(r.paths, ["/a", "/b"]);
        assert!(parse(&["rest", "--rest", "http://h:1", "--admin-token-file", "t"]).is_err());
        assert!(parse(&["seed", "--data", "d", "--agents", "0"]).is_err());
    }
}
