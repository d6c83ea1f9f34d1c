//! `rampart-loadgen`: load for one collector, measured.
//!
//! Three modes, each printing progress to stderr and one JSON line to stdout:
//! - ingest (the default): simulated agents enroll with real CSRs through a real
//!   enrollment token, keep real mutual-TLS streams, ask for scans through the REST
//!   API and answer each with a full scan of the requested profile; it reports scans
//!   per second and the latency of the durable acknowledgements. With
//!   `--connect-only` the agents only hold idle streams, for the collector's memory
//!   per connection.
//! - `seed`: fills a stopped collector's data directory with agents, completed scans
//!   and audit entries through the store trait, for REST figures on a big store.
//! - `rest`: a closed-loop latency measurement of REST reads.
//!
//! *Architecture Invariant:* the load generator speaks to a running collector only
//! through its public surfaces (gRPC, REST) and to a stopped one only through
//! `rampart_collector::store::Store`; it needs no hook inside the collector.

pub mod agents;
pub mod cli;
pub mod http;
pub mod rest;
pub mod scan;
pub mod seed;
pub mod stats;

/// Everything that stops a load run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or an unusable input file.
    #[error("{0}")]
    Config(String),
    /// A REST call failed or answered with an error status.
    #[error("REST {what}: {reason}")]
    Rest { what: String, reason: String },
    /// The gRPC side (enrollment, stream) failed.
    #[error("gRPC {what}: {reason}")]
    Grpc { what: String, reason: String },
    /// The TLS client configuration or a channel could not be built.
    #[error(transparent)]
    Tls(#[from] rampart_agent::daemon::tls::TlsError),
    /// The store refused a write while seeding.
    #[error("store: {0}")]
    Store(#[from] rampart_collector::store::StoreError),
    /// Local I/O failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
