//! The daemon's configuration file (`/etc/rampart/agent.toml`), written by `enroll`
//! and read by `run`. Parsing is pure; nothing here touches the network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default locations.
pub const DEFAULT_CONFIG: &str = "/etc/rampart/agent.toml";
pub const DEFAULT_STATE: &str = "/var/lib/rampart";

/// What `run` needs. The agent ID and certificates live in the state directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `https://host:port` of the collector's agent port.
    pub collector: String,
    /// SHA-256 of the collector CA certificate (hex, colons allowed): the pin.
    pub ca_fingerprint: String,
    #[serde(default = "default_state")]
    pub state_dir: PathBuf,
    /// Root scanned by `run` (`/` on a VM).
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Labels sent with every hello (e.g. `project`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Results per batch on the wire.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Most finished scans kept while the collector is unreachable.
    #[serde(default = "default_spool_scans")]
    pub spool_max_scans: usize,
    /// Renew the client certificate when less than this is left (default: a third of
    /// its lifetime).
    #[serde(default)]
    pub renew_before_secs: Option<i64>,
    /// The cloud metadata service, `http://HOST[:PORT]`, where enrollment fetched
    /// the signed instance identity document (default `http://169.254.169.254`).
    #[serde(default)]
    pub metadata_url: Option<String>,
}

fn default_state() -> PathBuf {
    PathBuf::from(DEFAULT_STATE)
}
fn default_root() -> PathBuf {
    PathBuf::from("/")
}
/// A CIS profile (300-400 rules) in one batch: one acknowledgement per scan rather
/// than four. Batches also close at [`rampart_proto::bounds::BATCH_BYTES`].
pub const DEFAULT_BATCH: usize = 500;

fn default_batch() -> usize {
    DEFAULT_BATCH
}
fn default_spool_scans() -> usize {
    50
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML of the configuration's shape.
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    /// A value is refused (a message we compose from it).
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Normalises a SHA-256 fingerprint: lowercase hex, colons removed.
pub fn normalize_fingerprint(s: &str) -> Result<String, String> {
    let f: String = s
        .trim()
        .trim_start_matches("sha256:")
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if f.len() != 64 || !f.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "`{s}` is not a SHA-256 fingerprint (64 hex digits)"
        ));
    }
    Ok(f)
}

/// Checks a collector URL: `https://host:port`.
pub fn validate_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("https://")
        .ok_or_else(|| format!("collector URL `{s}` must start with https://"))?;
    let hostport = rest.trim_end_matches('/');
    if hostport.is_empty() || hostport.contains('/') || !hostport.contains(':') {
        return Err(format!("collector URL `{s}` must be https://HOST:PORT"));
    }
    Ok(())
}

/// Checks a metadata service URL: `http://HOST[:PORT]` (metadata services speak
/// plain HTTP on a link-local address).
pub fn validate_metadata_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .ok_or_else(|| format!("metadata URL `{s}` must start with http://"))?;
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("metadata URL `{s}` must be http://HOST[:PORT]"));
    }
    Ok(())
}

impl AgentConfig {
    pub fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.into(),
            reason,
        };
        let mut c: AgentConfig = toml::from_str(text).map_err(|source| ConfigError::Toml {
            path: path.into(),
            source,
        })?;
        c.ca_fingerprint = normalize_fingerprint(&c.ca_fingerprint).map_err(invalid)?;
        validate_url(&c.collector).map_err(invalid)?;
        if !(1..=rampart_proto::bounds::RESULTS_PER_BATCH).contains(&c.batch_size) {
            return Err(invalid(format!(
                "batch_size {} must be between 1 and {}",
                c.batch_size,
                rampart_proto::bounds::RESULTS_PER_BATCH
            )));
        }
        if let Some(u) = &c.metadata_url {
            validate_metadata_url(u).map_err(invalid)?;
        }
        if !(1..=10_000).contains(&c.spool_max_scans) {
            return Err(invalid(format!(
                "spool_max_scans {} must be between 1 and 10000",
                c.spool_max_scans
            )));
        }
        Ok(c)
    }

    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            source: e,
        })?;
        AgentConfig::parse(&text, path)
    }

    pub fn to_toml(&self) -> String {
        toml_string(self)
    }
}

fn toml_string(c: &AgentConfig) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = format!(
        "# Rampart agent configuration, written by `rampart-agent enroll`.\ncollector = {}\nca_fingerprint = {}\nstate_dir = {}\nroot = {}\nbatch_size = {}\nspool_max_scans = {}\n",
        q(&c.collector),
        q(&c.ca_fingerprint),
        q(&c.state_dir.display().to_string()),
        q(&c.root.display().to_string()),
        c.batch_size,
        c.spool_max_scans
    );
    if let Some(r) = c.renew_before_secs {
        out.push_str(&format!("renew_before_secs = {r}\n"));
    }
    if let Some(u) = &c.metadata_url {
        out.push_str(&format!("metadata_url = {}\n", q(u)));
    }
    if !c.labels.is_empty() {
        out.push_str("\n[labels]\n");
        for (k, v) in &c.labels {
            out.push_str(&format!("{} = {}\n", q(k), q(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let fp = "AB:".repeat(31) + "AB";
        let text = format!("collector = \"https://c.example:8443\"\nca_fingerprint = \"{fp}\"\nmetadata_url = \"http://127.0.0.1:9\"\n[labels]\nproject = \"web\"\n");
        let c = AgentConfig::parse(&text, Path::new("a.toml")).unwrap();
        assert_eq!(c.ca_fingerprint, "ab".repeat(32));
        assert_eq!(c.labels["project"], "web");
        assert_eq!(
            AgentConfig::parse(&c.to_toml(), Path::new("a.toml")).unwrap(),
            c
        );
        for (bad, want) in [
            (
                "collector = \"http://c:1\"\nca_fingerprint = \"00\"",
                "fingerprint",
            ),
            (
                &format!(
                    "collector = \"http://c:1\"\nca_fingerprint = \"{}\"",
                    "0".repeat(64)
                ),
                "https://",
            ),
            (
                &format!(
                    "collector = \"https://c:1\"\nca_fingerprint = \"{}\"\nbatch_size = 0",
                    "0".repeat(64)
                ),
                "batch_size",
            ),
            ("nonsense", "a.toml"),
            (
                &format!(
                    "collector = \"https://c:1\"\nca_fingerprint = \"{}\"\nmetadata_url = \"https://m\"",
                    "0".repeat(64)
                ),
                "metadata URL",
            ),
        ] {
            let e = AgentConfig::parse(bad, Path::new("a.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
