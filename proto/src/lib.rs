//! Rampart's wire contract between agent and collector (`rampart.v1`).
//!
//! Only this crate knows protobuf: the agent and the collector convert these types
//! to their own domain types by hand at their edges; the enums of the shared
//! vocabulary (`rampart_report`) convert with `From`/`TryFrom` ([`domain`]).

#![allow(missing_docs, clippy::all)]

/// The protocol package this crate implements.
pub const PROTOCOL_PACKAGE: &str = "rampart.v1";

pub mod codec;
pub mod domain;

/// Generated messages and service stubs of `rampart.v1` (their codec: [`codec::LeanCodec`]).
pub mod v1 {
    tonic::include_proto!("rampart.v1");
}

/// The message library, for sizes (`encoded_len`) on either side.
pub use prost;

/// Bounds of the protocol that both sides must know: the collector refuses a result
/// over them, so the agent trims its evidence to fit before sending.
pub mod bounds {
    /// Most evidence lines of one result.
    pub const EVIDENCE_LINES: usize = 1000;
    /// Longest evidence line, in bytes.
    pub const EVIDENCE_LINE_BYTES: usize = 4096;
    /// All evidence lines of one result together, in bytes.
    pub const EVIDENCE_BYTES: usize = 64 * 1024;
    /// Most results in one batch.
    pub const RESULTS_PER_BATCH: usize = 2000;
    /// The agent closes a batch before its results pass this many bytes (encoded),
    /// so that a batch fits the collector's message limit (`max_message_bytes`, at
    /// least twice this) whatever the evidence.
    pub const BATCH_BYTES: usize = 1024 * 1024;
}
