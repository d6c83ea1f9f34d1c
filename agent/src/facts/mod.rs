//! Fact probes: everything a rule may know about the scanned system, read natively
//! and rooted at the scan root (`/` for a live host, or an image's root).
//!
//! Every fact is read at most once per scan and shared by all the rules that need it:
//! [`Facts::get`] memoises a [`Fact`] by its type, [`Facts::get_keyed`] a
//! [`KeyedFact`] by its type and key (a unit, a PAM service, a path). Paths given to
//! probes are as seen *inside* the root, e.g. `/etc/ssh/sshd_config`; symlinks are
//! resolved inside the root, never outside it.

pub mod account_defaults;
pub mod accounts;
pub mod aide;
pub mod audit;
pub mod auditd_conf;
pub mod boot_units;
pub mod bootargs;
pub mod chrony;
pub mod crypto_policies;
pub mod dnf;
pub mod dpkg;
pub mod dpkg_fields;
pub mod dpkg_version;
pub mod firewall;
pub mod firewalld;
pub mod grub;
pub mod include_budget;
pub mod iptables;
pub mod ipv6;
pub mod journald;
pub mod kv;
pub mod limits;
pub mod logger;
pub mod modules;
pub mod mounts;
pub mod nftables;
pub mod packages;
pub mod pam;
pub mod rpmdb;
pub mod rsyslog;
pub mod selinux;
pub mod shell;
pub mod sockets;
pub mod sshd;
pub mod sudoers;
pub mod sysctl;
pub mod ufw;
pub mod units;
pub mod walk;

mod file;
mod glob;
mod root;

pub use file::{BinaryFile, FileKind, FileMeta, FileStamp};
pub use root::{Fact, Facts, KeyedFact};

/// The largest file a probe will read as configuration text.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
/// Symlinks followed while resolving one path before it counts as a loop.
const MAX_SYMLINK_HOPS: usize = 40;
/// Directory levels a `**` glob component descends below its base.
const MAX_GLOB_DEPTH: usize = 32;

/// Why a fact could not be read. Cheap to clone so a cached failure can be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    /// Reading the path failed with an I/O error (permissions, a bad disk).
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: SharedIoError,
    },
    /// The path cannot be read for a reason we name (missing, a directory, changed
    /// while being read).
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The file is larger than any configuration file should be.
    #[error("{path} is {size} bytes, larger than the {limit}-byte limit for a configuration file")]
    TooLarge { path: String, size: u64, limit: u64 },
    /// Resolving the path went round in a symlink loop.
    #[error("symlink loop while resolving {path}")]
    SymlinkLoop { path: String },
    /// A runtime-only fact asked for while scanning an offline root.
    #[error("{what} is a runtime fact, not available when scanning an offline root")]
    RuntimeOnly { what: String },
    /// The content could not be understood.
    #[error("cannot parse {path}: {reason}")]
    Malformed { path: String, reason: String },
    /// A file's content was wanted but the path names a FIFO, socket or device:
    /// it is never opened (reading a FIFO or a device could block the scan forever).
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
}

/// An I/O error shared by every reader of a memoised fact (so that [`FactError`]
/// stays `Clone`). Two are equal when they say the same: the same kind and words.
#[derive(Debug, Clone)]
pub struct SharedIoError(std::sync::Arc<std::io::Error>);

impl From<std::io::Error> for SharedIoError {
    fn from(e: std::io::Error) -> Self {
        SharedIoError(std::sync::Arc::new(e))
    }
}

impl std::ops::Deref for SharedIoError {
    type Target = std::io::Error;
    fn deref(&self) -> &std::io::Error {
        &self.0
    }
}

impl PartialEq for SharedIoError {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl Eq for SharedIoError {}

impl std::fmt::Display for SharedIoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedIoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Strips a `#` comment and surrounding whitespace from a configuration line.
pub fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => line[..i].trim(),
        None => line.trim(),
    }
}

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with `!`/`^` negation and ranges).
/// Iterative, backtracking only to the last `*`, so hostile patterns stay cheap.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match bracket(&p, pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None if n[ni] == '[' => Some(pi + 1),
                None => None,
            },
            Some(c) if *c == n[ni] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the bracket expression starting at `p[start]` (`[`): whether
/// it matched and the index after `]`, or `None` when there is no closing `]`.
fn bracket(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (first || p[i] != ']') {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    (i < p.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests;
