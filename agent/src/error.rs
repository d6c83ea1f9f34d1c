//! The agent's error type and its exit codes.

use crate::content::ContentError;
use crate::daemon::DaemonError;

/// Exit codes of `rampart-agent`.
pub mod exit {
    /// The command completed (and the score met `--fail-under`).
    pub const OK: i32 = 0;
    /// The scan completed with a score below `--fail-under`.
    pub const BELOW_THRESHOLD: i32 = 1;
    /// The command could not run: usage, unreadable root, unknown OS.
    pub const CANNOT_RUN: i32 = 2;
}

/// Everything that stops a command of the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The scan root is not a directory.
    #[error("scan root {path} is not a directory: {reason}")]
    BadRoot { path: String, reason: String },
    /// The scan root does not exist or cannot be read.
    #[error("scan root {path} is not a directory: {source}")]
    RootUnreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The root's os-release names a system we have no benchmark for.
    #[error("unsupported operating system {os} (from {source_file}); supported: {supported}; use --benchmark to force one")]
    UnsupportedOs {
        os: String,
        source_file: String,
        supported: String,
    },
    /// The root has no os-release to choose a benchmark from.
    #[error("cannot tell the operating system: no /etc/os-release or /usr/lib/os-release under the root; use --benchmark")]
    NoOsRelease,
    /// The requested benchmark is not compiled into this agent.
    #[error("benchmark {0} is not available in this agent; available: {1}")]
    UnknownBenchmark(String, String),
    /// An exempted ID is not a rule of the benchmark.
    #[error("--exempt names {0}, which is not a recommendation of {1}")]
    UnknownExemption(String, String),
    /// The compiled-in content is invalid (a build defect).
    #[error("benchmark content is invalid: {0}")]
    Content(#[from] ContentError),
    /// A fact the `facts` command prints could not be read.
    #[error("{0}")]
    Facts(#[from] crate::facts::FactError),
    /// Enrollment or the daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Writing the output failed.
    #[error("cannot write {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
