//! Command-line interface: flags are parsed and validated here, purely; `run`
//! then does the work and returns the exit code.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::content;
use crate::daemon::DaemonError;
use crate::engine::{self, ScanConfig};
use crate::error::{exit, AgentError};
use crate::model::{Profile, UnknownProfile};
use crate::report;

#[derive(Debug, Parser)]
#[command(
    name = "rampart-agent",
    version,
    about = "Checks this host (or a root filesystem) against CIS benchmarks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan once and print the results.
    Check(CheckArgs),
    /// List the benchmark content.
    Rules(RulesArgs),
    /// Obtain a client certificate from a collector with a bootstrap token.
    Enroll(EnrollArgs),
    /// Run as a daemon: stay connected to the collector, scan when asked.
    Run(RunArgs),
    /// Print the coverage document (docs/COVERAGE.md) of the compiled-in content.
    Coverage,
    /// Debug: print as JSON what a check family reads from a root, through the
    /// readers the checks use.
    #[command(subcommand)]
    Facts(FactsCommand),
}

/// The families `facts` can print.
#[derive(Debug, Subcommand)]
pub enum FactsCommand {
    /// The sysctl files systemd-sysctl reads at boot and the persisted value of keys.
    Sysctl {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A kernel parameter to give the persisted value of (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
    },
    /// Kernel modules: modprobe configuration as kmod reads it, and per module the
    /// kmod rules ask about, what `modprobe <name>` does and the rule's verdict.
    Modules {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A module to describe (repeatable; default: the modules of the kmod rules).
        #[arg(long = "module")]
        modules: Vec<String>,
    },
    /// Account defaults (/etc/login.defs, /etc/default/useradd) as the checks of a
    /// benchmark read and judge them.
    Accounts {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The benchmark whose checks judge them.
        #[arg(long, default_value = "debian-12")]
        benchmark: String,
    },
    /// systemd units as the checks read them: where, masked, enabled.
    Units {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A unit to describe (repeatable), e.g. `cron.service`.
        #[arg(long = "unit")]
        units: Vec<String>,
    },
    /// journald, systemd-coredump and systemd-timesyncd settings as the checks read
    /// them (journald.conf, coredump.conf, timesyncd.conf and their drop-ins).
    SystemdConf {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// The sudoers files sudo reads and the global Defaults of some options.
    Sudo {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A Defaults option to report (repeatable), e.g. `use_pty`.
        #[arg(long = "option")]
        options: Vec<String>,
    },
    /// Mount points as the mount checks judge them at boot: /etc/fstab and systemd
    /// mount units.
    Mounts {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A mount point to describe (repeatable), e.g. `/tmp`.
        #[arg(long = "path")]
        paths: Vec<String>,
    },
    /// pam_limits' core-file size limit per account (limits.conf and limits.d) and
    /// the `sysctl.core_limit` verdict.
    Limits {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// An account to describe (repeatable; default: every account in /etc/passwd).
        #[arg(long = "user")]
        users: Vec<String>,
    },
    /// PAM service stacks as the `pam.*` checks read them (includes expanded, the
    /// effective pam_faillock, pam_pwquality and pam_pwhistory settings per line) and
    /// the verdicts of a benchmark's rules that judge them.
    Pam {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A service to expand (repeatable), e.g. `common-auth`.
        #[arg(long = "service")]
        services: Vec<String>,
        /// A benchmark whose rules judge them (repeatable: each gets its own
        /// verdicts, read from one reading of the stacks).
        #[arg(long = "benchmark", default_value = "debian-12")]
        benchmarks: Vec<String>,
    },
    /// The package database (dpkg's or rpm's) as the `pkg.*` checks read it: per
    /// package asked about, installed or not and at which version, and the verdicts
    /// of `pkg.installed`, `pkg.absent` and `pkg.min_version`.
    Packages {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// A package to describe (repeatable).
        #[arg(long = "package")]
        packages: Vec<String>,
        /// `NAME=VERSION`: the `pkg.min_version` verdict for it (repeatable).
        #[arg(long = "at-least", value_parser = crate::inspect::packages::parse_at_least)]
        at_least: Vec<(String, String)>,
    },
    /// sshd's effective configuration, host keys and private key files.
    Sshd {
        /// Root of the system to read (`/` is the live host).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// The collector's agent port, https://HOST:PORT.
    #[arg(long)]
    pub collector: String,
    /// The bootstrap token from the collector's API (visible to local users in the
    /// process list while enrolling: prefer --token-file).
    #[arg(
        long,
        required_unless_present = "token_file",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A root-only file holding the bootstrap token (first line).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the collector's CA certificate (the pin).
    #[arg(long)]
    pub ca_fingerprint: String,
    /// Labels such as project=web (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    #[arg(long, default_value = crate::daemon::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[arg(long, default_value = crate::daemon::config::DEFAULT_STATE)]
    pub state_dir: PathBuf,
    /// The root that `run` scans (`/` on a VM).
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Where the cloud provider's metadata service answers, http://HOST[:PORT]
    /// (the signed instance identity document is fetched there on AWS, Azure and
    /// GCP; default: `metadata_url` in an existing --config file, else
    /// http://169.254.169.254).
    #[arg(long)]
    pub metadata_url: Option<String>,
    /// Read the provider and instance ID (DMI, cloud-init data) under this directory
    /// instead of `/` (tests, images).
    #[arg(long, default_value = "/")]
    pub identity_root: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[arg(long, default_value = crate::daemon::config::DEFAULT_CONFIG)]
    pub config: PathBuf,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label `{s}` is not key=value")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What `check` writes.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CheckFormat {
    /// A table grouped by section (colour on a terminal).
    Text,
    /// The full JSON document.
    Json,
    /// One self-contained HTML report, the collector's.
    Html,
    /// SCAP Asset Reporting Format 1.1 with an XCCDF 1.2 TestResult.
    Arf,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Root of the system to scan (a mounted image or chroot); `/` is the live host.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Benchmark: auto (from the root's /etc/os-release), debian-12, ubuntu-22.04, ubuntu-24.04,
    /// rhel-9 (also Rocky, AlmaLinux, Oracle Linux, CentOS Stream 9), al2023.
    #[arg(long, default_value = "auto")]
    pub benchmark: String,
    /// level1-server, level2-server, level1-workstation or level2-workstation.
    #[arg(long, default_value = "level1-server", value_parser = parse_profile)]
    pub profile: Profile,
    /// Recommendation IDs to skip, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exempt: Vec<String>,
    /// Output: text, json, html (self-contained report) or arf (SCAP ARF 1.1 XML).
    #[arg(long, value_enum, default_value = "text")]
    pub format: CheckFormat,
    /// Write the report to this file instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Exit 1 when the score is below this value (0–100).
    #[arg(long, value_parser = parse_score)]
    pub fail_under: Option<f64>,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[arg(long, default_value = "debian-12")]
    pub benchmark: String,
    /// Only the rules of this profile.
    #[arg(long, value_parser = parse_profile)]
    pub profile: Option<Profile>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

fn parse_profile(s: &str) -> Result<Profile, UnknownProfile> {
    s.parse()
}

fn parse_score(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a score between 0 and 100")),
    }
}

fn benchmark_arg(s: &str) -> Option<String> {
    (s != "auto").then(|| s.to_string())
}

/// Runs a parsed command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, AgentError> {
    match cli.command {
        Command::Check(a) => check(a),
        Command::Rules(a) => rules(a),
        Command::Enroll(a) => daemon_runtime(async move {
            let token = match (&a.token, &a.token_file) {
                (Some(t), _) => t.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|source| DaemonError::Io {
                        what: format!("cannot read token file {}", f.display()),
                        source,
                    })?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                (None, None) => String::new(),
            };
            let id = crate::daemon::enroll(crate::daemon::EnrollArgs {
                collector: a.collector,
                token,
                ca_fingerprint: a.ca_fingerprint,
                labels: a.labels.into_iter().collect(),
                config_path: a.config,
                state_dir: a.state_dir,
                root: a.root,
                metadata_url: a.metadata_url,
                identity_root: a.identity_root,
            })
            .await?;
            println!("enrolled as {id}");
            Ok(())
        }),
        Command::Coverage => {
            emit(None, &report::coverage_markdown(content::benchmarks()?))?;
            Ok(exit::OK)
        }
        Command::Facts(f) => {
            let json = match f {
                FactsCommand::Sysctl { root, keys } => {
                    to_json(&crate::inspect::sysctl(&root, &keys)?)
                }
                FactsCommand::Sshd { root } => to_json(&crate::inspect::sshd(&root)?),
                FactsCommand::Packages {
                    root,
                    packages,
                    at_least,
                } => to_json(&crate::inspect::packages::packages_facts(
                    &root, &packages, &at_least,
                )?),
                FactsCommand::Limits { root, users } => {
                    to_json(&crate::inspect::limits(&root, &users)?)
                }
                FactsCommand::Pam {
                    root,
                    services,
                    benchmarks,
                } => to_json(&crate::inspect::pam(&root, &services, &benchmarks)?),
                FactsCommand::Mounts { root, paths } => {
                    to_json(&crate::inspect::mounts::mounts(&root, &paths)?)
                }
                FactsCommand::Sudo { root, options } => {
                    to_json(&crate::inspect::sudo(&root, &options)?)
                }
                FactsCommand::SystemdConf { root } => {
                    to_json(&crate::inspect::systemd_conf(&root)?)
                }
                FactsCommand::Units { root, units } => {
                    to_json(&crate::inspect::units(&root, &units)?)
                }
                FactsCommand::Accounts { root, benchmark } => {
                    to_json(&crate::inspect::accounts(&root, &benchmark)?)
                }
                FactsCommand::Modules { root, modules } => {
                    to_json(&crate::inspect::modules(&root, &modules)?)
                }
            };
            emit(None, &json)?;
            Ok(exit::OK)
        }
        Command::Run(a) => {
            daemon_runtime(async move { crate::daemon::session::run(&a.config).await })
        }
    }
}

fn to_json(v: &impl serde::Serialize) -> String {
    let mut s =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

fn daemon_runtime(
    f: impl std::future::Future<Output = Result<(), crate::daemon::DaemonError>>,
) -> Result<i32, AgentError> {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| DaemonError::Io {
            what: "cannot start the runtime".into(),
            source,
        })?;
    rt.block_on(f)?;
    Ok(exit::OK)
}

fn emit(output: Option<&PathBuf>, text: &str) -> Result<(), AgentError> {
    match output {
        Some(p) => std::fs::write(p, text).map_err(|e| AgentError::Output {
            path: p.display().to_string(),
            source: e,
        }),
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            Ok(())
        }
    }
}

fn check(a: CheckArgs) -> Result<i32, AgentError> {
    let cfg = ScanConfig {
        root: a.root,
        benchmark: benchmark_arg(&a.benchmark),
        profile: a.profile,
        exempt: a
            .exempt
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<BTreeSet<_>>(),
    };
    let r = engine::scan(&cfg)?;
    let doc = || {
        let identity = r
            .live
            .then(|| crate::daemon::identity::detect(&crate::facts::Facts::new(&r.root, true)));
        report::scan_doc(&r, identity.as_ref(), time::OffsetDateTime::now_utc())
    };
    let text = match a.format {
        CheckFormat::Json => rampart_report::json(&doc()),
        CheckFormat::Text => {
            report::scan_text(&r, a.output.is_none() && std::io::stdout().is_terminal())
        }
        CheckFormat::Html => rampart_report::html(&doc()),
        CheckFormat::Arf => rampart_report::arf(&doc()),
    };
    emit(a.output.as_ref(), &text)?;
    Ok(match a.fail_under {
        Some(min) if r.summary.score < min => exit::BELOW_THRESHOLD,
        _ => exit::OK,
    })
}

fn rules(a: RulesArgs) -> Result<i32, AgentError> {
    let all = content::benchmarks()?;
    let names = all
        .iter()
        .map(|b| b.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let b = all
        .iter()
        .find(|b| b.id == a.benchmark)
        .ok_or_else(|| AgentError::UnknownBenchmark(a.benchmark.clone(), names))?;
    let rules: Vec<_> = b
        .rules
        .iter()
        .filter(|r| a.profile.is_none_or(|p| r.in_profile(p)))
        .collect();
    let text = match a.format {
        Format::Json => report::rules_json(b, &rules),
        Format::Text => report::rules_text(b, &rules),
    };
    emit(None, &text)?;
    Ok(exit::OK)
}
