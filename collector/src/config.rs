//! Collector configuration: a TOML file, parsed and validated without side effects.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Everything the collector needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory (CA, database).
    pub data_dir: PathBuf,
    /// Agents' gRPC port (mutual TLS).
    pub grpc_listen: SocketAddr,
    /// REST API port. Plain HTTP on loopback by default; with `rest_tls` it serves
    /// HTTPS with a certificate from the collector's CA.
    pub rest_listen: SocketAddr,
    /// Serve REST over HTTPS (certificate for `server_names`, issued by the CA;
    /// `GET /ca.pem` hands out the CA certificate).
    pub rest_tls: bool,
    /// Allow plain HTTP REST on a non-loopback address (behind a TLS-terminating
    /// proxy, say). Off: such a configuration is refused at start-up.
    pub rest_plaintext_on_network: bool,
    /// Names (DNS or IP) in the collector's server certificate.
    pub server_names: Vec<String>,
    /// Lifetime of agents' client certificates.
    pub agent_cert_days: i64,
    /// A running scan with no progress for this long fails.
    pub scan_timeout_secs: u64,
    /// The window over which scheduled scans of a fleet are spread.
    pub schedule_window_secs: i64,
    /// Files served unauthenticated under `/download/` (agent binary, packages) with
    /// SHA-256 sums; default `<data_dir>/download`.
    pub download_dir: Option<PathBuf>,
    /// Largest gRPC message accepted from an agent.
    pub max_message_bytes: usize,
    /// Most messages per second accepted from one agent, over all its streams.
    pub max_messages_per_sec: u32,
    /// The REST API's address as people reach it, for links in webhook alerts;
    /// default `http(s)://<first server name>:<rest port>`.
    pub public_url: Option<String>,
    /// Wait before the second webhook attempt; doubled for each next one (at most
    /// an hour).
    pub webhook_backoff_ms: u64,
    /// Attempts per webhook delivery before it is given up.
    pub webhook_max_attempts: u32,
    /// Rates that bound callers (see `limits`).
    pub limits: crate::limits::Limits,
    /// Allow webhook receivers on loopback addresses (this host). Off: such URLs
    /// are refused in settings and deliveries that resolve to them fail.
    pub webhook_allow_loopback: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/rampart-collector"),
            grpc_listen: "0.0.0.0:8443".parse().expect("static address"),
            rest_listen: "127.0.0.1:8080".parse().expect("static address"),
            rest_tls: false,
            rest_plaintext_on_network: false,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            agent_cert_days: 30,
            scan_timeout_secs: 600,
            schedule_window_secs: 3600,
            download_dir: None,
            max_message_bytes: 4 * 1024 * 1024,
            max_messages_per_sec: 200,
            public_url: None,
            webhook_backoff_ms: 10_000,
            webhook_max_attempts: 6,
            limits: crate::limits::Limits::default(),
            webhook_allow_loopback: false,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Config {
    /// Where `/download/` files come from.
    pub fn download_dir(&self) -> PathBuf {
        self.download_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("download"))
    }

    /// Parses TOML text; `path` is only for messages.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.into(),
            reason: e.to_string(),
        })?;
        c.validate().map_err(|reason| ConfigError::Invalid {
            path: path.into(),
            reason,
        })?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=397).contains(&self.agent_cert_days) {
            return Err(format!(
                "agent_cert_days {} must be between 1 and 397",
                self.agent_cert_days
            ));
        }
        if self.server_names.is_empty() {
            return Err("server_names must name at least one DNS name or IP".into());
        }
        if self.scan_timeout_secs < 5 {
            return Err("scan_timeout_secs must be at least 5".into());
        }
        if self.max_message_bytes < 64 * 1024 {
            return Err("max_message_bytes must be at least 65536".into());
        }
        if !(10..=3_600_000).contains(&self.webhook_backoff_ms) {
            return Err("webhook_backoff_ms must be between 10 and 3600000".into());
        }
        if !(1..=20).contains(&self.webhook_max_attempts) {
            return Err("webhook_max_attempts must be between 1 and 20".into());
        }
        self.limits.validate()?;
        if let Some(u) = &self.public_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!(
                    "public_url `{u}` must start with http:// or https://"
                ));
            }
        }
        self.check_rest_exposure(self.rest_listen)
    }

    /// The base of links to the REST API (no trailing slash).
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.rest_tls { "https" } else { "http" };
                let host = self
                    .server_names
                    .first()
                    .map_or("localhost", |h| h.as_str());
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                };
                format!("{scheme}://{host}:{}", self.rest_listen.port())
            }
        }
    }

    /// Plain HTTP on a non-loopback address would carry API tokens in clear:
    /// refused unless `rest_tls` is on or the operator opted out explicitly.
    pub fn check_rest_exposure(&self, addr: SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() || self.rest_tls || self.rest_plaintext_on_network {
            return Ok(());
        }
        Err(format!(
            "REST listener {addr} is not on loopback and rest_tls is off: set \
             rest_tls = true, or rest_plaintext_on_network = true if a TLS-terminating \
             proxy is in front"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn parse_and_validate() {
        let c = Config::parse(
            "grpc_listen = \"127.0.0.1:0\"\nagent_cert_days = 7\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.agent_cert_days, 7);
        assert_eq!(c.scan_timeout_secs, 600);
        assert!(!c.rest_tls);
        for ok in [
            "rest_listen = \"[::1]:8080\"",
            "rest_listen = \"0.0.0.0:8080\"\nrest_tls = true",
            "rest_listen = \"0.0.0.0:8080\"\nrest_plaintext_on_network = true",
        ] {
            Config::parse(ok, Path::new("c.toml")).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, want) in [
            ("agent_cert_days = 0", "between 1 and 397"),
            ("grpc_listen = \"nowhere\"", "grpc_listen"),
            ("colour = 1", "unknown field"),
            ("server_names = []", "server_names"),
            ("webhook_backoff_ms = 0", "webhook_backoff_ms"),
            ("webhook_max_attempts = 0", "webhook_max_attempts"),
            ("public_url = \"ftp://x\"", "public_url"),
            ("rest_listen = \"0.0.0.0:8080\"", "rest_tls"),
            (
                "rest_listen = \"192.0.2.1:8080\"",
                "rest_plaintext_on_network",
            ),
        ] {
            let e = Config::parse(bad, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want) && e.contains("c.toml"), "{bad}: {e}");
        }
    }
}
