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
    /// Where records live: unset for sled under `<data_dir>/db` (the default), or a
    /// `postgres://user@host:port/database` URL for PostgreSQL (`?sslmode=require`
    /// for TLS, which then verifies the server's certificate). The password comes
    /// from `store_password_file` or the `RAMPART_STORE_PASSWORD` environment
    /// variable, never from logs.
    pub store: Option<String>,
    /// A file whose first line is the database password.
    pub store_password_file: Option<PathBuf>,
    /// PEM certificates trusted for the database's TLS, beside the system's roots.
    pub store_ca_file: Option<PathBuf>,
    /// Connections to the database.
    pub store_pool_size: usize,
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
    /// Per-rule results of finished scans are deleted this many days after the scan
    /// was created; the scan's summary (counts, score, verdict) stays. 0 keeps them.
    pub results_retention_days: u32,
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

    // ---- Network limits (SPEC §4 Trust: every input bounded, connection time too).
    // Exceeding one closes or answers that connection only.
    /// Time a REST client has to send a request's headers, and the longest a kept-
    /// alive REST connection may sit idle between requests; then it is closed.
    pub rest_header_timeout_secs: u64,
    /// Time a REST request has to send its body and get its answer (a download's
    /// body streams after that); then 408 with an error body.
    pub rest_request_timeout_secs: u64,
    /// Open REST connections at most; more are answered 503 (plain HTTP) or
    /// closed (HTTPS) at once.
    pub rest_max_connections: usize,
    /// Open REST connections per source address (IPv6: per /64) at most; more are
    /// treated as above. Raise it behind a reverse proxy.
    pub rest_max_connections_per_ip: usize,
    /// Open connections to the agents' port at most (an agent holds one); more
    /// are closed at once.
    pub grpc_max_connections: usize,
    /// Connections to the agents' port without a client certificate (being
    /// handshaken, or enrolling) per source address (IPv6: per /64) at most; more
    /// are closed at once.
    pub grpc_max_unauthenticated_per_ip: usize,
    /// Connections to the agents' port with one agent's client certificate at most
    /// (it needs one); more are closed after the handshake.
    pub grpc_max_connections_per_agent: usize,
    /// How long a connection without a client certificate may stay open: it may
    /// only enroll, which takes a moment.
    pub grpc_unauthenticated_secs: u64,
    /// Concurrent HTTP/2 streams per agents' connection (an agent needs one);
    /// more are refused with REFUSED_STREAM.
    pub grpc_max_streams_per_connection: u32,
    /// Time a gRPC call has to send its request and get its response (all of
    /// Enroll; for an agent's stream, until it is accepted); then
    /// DEADLINE_EXCEEDED.
    pub grpc_request_timeout_secs: u64,
    /// Downloads (`/download/`) served at the same time at most; more get 503
    /// with `Retry-After`.
    pub max_concurrent_downloads: usize,

    // ---- The collector's own server certificate (gRPC and HTTPS REST).
    /// Lifetime of the server certificate, issued by the CA at start and renewed in
    /// the background when less than a third of it is left (default 90 days).
    pub server_cert_lifetime_secs: u64,
    /// How often the server certificate's remaining lifetime is checked.
    pub server_cert_check_secs: u64,

    // ---- `/metrics`.
    /// Who may read `/metrics`: `auto` (the default) serves it without a token
    /// only while the REST listener is on loopback, and otherwise asks for a bearer
    /// token of `metrics_role`; `open` never asks for a token; `token` always does.
    pub metrics_access: MetricsAccess,
    /// The least role a `/metrics` token needs (`viewer`, `user`, `provisioner` or
    /// `admin`; default `admin`). A monitoring system can get a `viewer` user.
    pub metrics_role: String,

    /// Signed instance identity documents: trust anchors and what is required
    /// (`[instance_identity]`; see `identity`).
    pub instance_identity: crate::identity::IdentityConfig,

    // ---- Agentless scans over SSH (`crate::ssh`).
    /// SSH scans running at the same time at most; more wait their turn.
    pub ssh_max_concurrent_scans: usize,
    /// Time to connect, agree on keys and authenticate.
    pub ssh_connect_timeout_secs: u64,
    /// Time of each short step (architecture, directory, copy, removal).
    pub ssh_step_timeout_secs: u64,
    /// Time the agent's `check` may run on the target.
    pub ssh_check_timeout_secs: u64,
    /// Bytes of the agent's output read at most; more fails the scan.
    pub ssh_max_output_bytes: usize,
    /// SSH scans may reach this host (loopback addresses); off by default, like
    /// `webhook_allow_loopback`: a provisioner must not turn the collector on itself.
    pub ssh_allow_loopback: bool,
}

/// Who may read `/metrics` (see [`Config::metrics_access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    /// Without a token on a loopback listener, with one otherwise.
    Auto,
    /// Never a token.
    Open,
    /// Always a token.
    Token,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/rampart-collector"),
            store: None,
            store_password_file: None,
            store_ca_file: None,
            store_pool_size: 16,
            grpc_listen: "0.0.0.0:8443".parse().expect("static address"),
            rest_listen: "127.0.0.1:8080".parse().expect("static address"),
            rest_tls: false,
            rest_plaintext_on_network: false,
            server_names: vec!["localhost".into(), "127.0.0.1".into()],
            agent_cert_days: 30,
            scan_timeout_secs: 600,
            results_retention_days: 400,
            schedule_window_secs: 3600,
            download_dir: None,
            max_message_bytes: 4 * 1024 * 1024,
            max_messages_per_sec: 200,
            public_url: None,
            webhook_backoff_ms: 10_000,
            webhook_max_attempts: 6,
            limits: crate::limits::Limits::default(),
            webhook_allow_loopback: false,
            rest_header_timeout_secs: 10,
            rest_request_timeout_secs: 60,
            rest_max_connections: 1024,
            rest_max_connections_per_ip: 64,
            grpc_max_connections: 10_000,
            grpc_max_unauthenticated_per_ip: 32,
            grpc_max_connections_per_agent: 4,
            grpc_unauthenticated_secs: 30,
            grpc_max_streams_per_connection: 4,
            grpc_request_timeout_secs: 30,
            max_concurrent_downloads: 32,
            server_cert_lifetime_secs: 90 * 86_400,
            server_cert_check_secs: 3600,
            metrics_access: MetricsAccess::Auto,
            metrics_role: "admin".into(),
            instance_identity: crate::identity::IdentityConfig::default(),
            ssh_max_concurrent_scans: 4,
            ssh_connect_timeout_secs: 15,
            ssh_step_timeout_secs: 60,
            ssh_check_timeout_secs: 900,
            ssh_max_output_bytes: 64 << 20,
            ssh_allow_loopback: false,
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
        if let Some(url) = &self.store {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(
                    "store must be a postgres:// URL (leave it unset for the built-in store)"
                        .into(),
                );
            }
        }
        if !(1..=256).contains(&self.store_pool_size) {
            return Err(format!(
                "store_pool_size {} must be between 1 and 256",
                self.store_pool_size
            ));
        }
        if self.server_names.is_empty() {
            return Err("server_names must name at least one DNS name or IP".into());
        }
        if self.scan_timeout_secs < 5 {
            return Err("scan_timeout_secs must be at least 5".into());
        }
        if self.results_retention_days > 36_500 {
            return Err(format!(
                "results_retention_days {} is over 100 years (0 keeps results for ever)",
                self.results_retention_days
            ));
        }
        // Agents fill a batch up to BATCH_BYTES of results; the message around them
        // must still fit.
        let least = 2 * rampart_proto::bounds::BATCH_BYTES;
        if self.max_message_bytes < least {
            return Err(format!(
                "max_message_bytes {} is below {least}: agents' batches of up to {} bytes of results would be refused",
                self.max_message_bytes,
                rampart_proto::bounds::BATCH_BYTES
            ));
        }
        if !(10..=3_600_000).contains(&self.webhook_backoff_ms) {
            return Err("webhook_backoff_ms must be between 10 and 3600000".into());
        }
        if !(1..=20).contains(&self.webhook_max_attempts) {
            return Err("webhook_max_attempts must be between 1 and 20".into());
        }
        self.limits.validate()?;
        self.instance_identity.validate()?;
        let at_least_one = [
            ("rest_header_timeout_secs", self.rest_header_timeout_secs),
            ("rest_request_timeout_secs", self.rest_request_timeout_secs),
            ("rest_max_connections", self.rest_max_connections as u64),
            (
                "rest_max_connections_per_ip",
                self.rest_max_connections_per_ip as u64,
            ),
            ("grpc_max_connections", self.grpc_max_connections as u64),
            (
                "grpc_max_unauthenticated_per_ip",
                self.grpc_max_unauthenticated_per_ip as u64,
            ),
            (
                "grpc_max_connections_per_agent",
                self.grpc_max_connections_per_agent as u64,
            ),
            ("grpc_unauthenticated_secs", self.grpc_unauthenticated_secs),
            (
                "ssh_max_concurrent_scans",
                self.ssh_max_concurrent_scans as u64,
            ),
            ("ssh_connect_timeout_secs", self.ssh_connect_timeout_secs),
            ("ssh_step_timeout_secs", self.ssh_step_timeout_secs),
            ("ssh_check_timeout_secs", self.ssh_check_timeout_secs),
            ("ssh_max_output_bytes", self.ssh_max_output_bytes as u64),
            (
                "grpc_max_streams_per_connection",
                u64::from(self.grpc_max_streams_per_connection),
            ),
            ("grpc_request_timeout_secs", self.grpc_request_timeout_secs),
            (
                "max_concurrent_downloads",
                self.max_concurrent_downloads as u64,
            ),
            ("server_cert_check_secs", self.server_cert_check_secs),
        ];
        for (name, v) in at_least_one {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if !(10..=397 * 86_400).contains(&self.server_cert_lifetime_secs) {
            return Err(format!(
                "server_cert_lifetime_secs {} must be between 10 and {} (397 days)",
                self.server_cert_lifetime_secs,
                397 * 86_400
            ));
        }
        if self.server_cert_check_secs.saturating_mul(3) > self.server_cert_lifetime_secs {
            return Err(format!(
                "server_cert_check_secs {} must be at most a third of server_cert_lifetime_secs \
                 {}, or the certificate could expire between two checks",
                self.server_cert_check_secs, self.server_cert_lifetime_secs
            ));
        }
        if crate::auth::Role::parse(&self.metrics_role).is_none() {
            return Err(format!(
                "metrics_role `{}` is not a role; expected viewer, user, provisioner or admin",
                self.metrics_role
            ));
        }
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

    /// Whether `/metrics` on a REST listener at `addr` asks for a token.
    pub fn metrics_need_token(&self, addr: SocketAddr) -> bool {
        match self.metrics_access {
            MetricsAccess::Open => false,
            MetricsAccess::Token => true,
            MetricsAccess::Auto => !addr.ip().is_loopback(),
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
        let (lo, net) = (
            "127.0.0.1:8080".parse().unwrap(),
            "192.0.2.1:8080".parse().unwrap(),
        );
        assert!(!c.metrics_need_token(lo) && c.metrics_need_token(net));
        let open = Config::parse("metrics_access = \"open\"", Path::new("c.toml")).unwrap();
        assert!(!open.metrics_need_token(net));
        let token = Config::parse("metrics_access = \"token\"", Path::new("c.toml")).unwrap();
        assert!(token.metrics_need_token(lo));
        let short = Config::parse(
            "server_cert_lifetime_secs = 20\nserver_cert_check_secs = 1",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(short.server_cert_lifetime_secs, 20);
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
            ("rest_header_timeout_secs = 0", "rest_header_timeout_secs"),
            (
                "grpc_max_streams_per_connection = 0",
                "grpc_max_streams_per_connection",
            ),
            ("max_concurrent_downloads = 0", "max_concurrent_downloads"),
            ("server_cert_lifetime_secs = 5", "server_cert_lifetime_secs"),
            (
                "server_cert_lifetime_secs = 30\nserver_cert_check_secs = 11",
                "a third",
            ),
            ("metrics_access = \"sometimes\"", "metrics_access"),
            ("metrics_role = \"root\"", "metrics_role"),
            (
                "[instance_identity]\nmax_age_secs = 1",
                "instance_identity.max_age_secs",
            ),
            ("[instance_identity]\ngcp = 1", "unknown field"),
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
