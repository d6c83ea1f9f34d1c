//! Command-line interface: flags are parsed and validated here, purely; `run`
//! then does the work and returns the exit code.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::content;
use crate::engine::{self, ScanConfig};
use crate::error::{exit, AgentError};
use crate::model::Profile;
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
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Root of the system to scan (a mounted image or chroot); `/` is the live host.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// Benchmark: auto (from the root's /etc/os-release), debian-12, ubuntu-22.04, ubuntu-24.04.
    #[arg(long, default_value = "auto")]
    pub benchmark: String,
    /// level1-server, level2-server, level1-workstation or level2-workstation.
    #[arg(long, default_value = "level1-server", value_parser = parse_profile)]
    pub profile: Profile,
    /// Recommendation IDs to skip, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub exempt: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
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

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::parse(s).ok_or_else(|| {
        format!(
            "unknown profile `{s}`; expected one of {}",
            Profile::ALL.map(|p| p.name()).join(", ")
        )
    })
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
    }
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
    let text = match a.format {
        Format::Json => report::scan_json(&r),
        Format::Text => {
            report::scan_text(&r, a.output.is_none() && std::io::stdout().is_terminal())
        }
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
