//! Rampart's wire contract between agent and collector (`rampart.v1`).
//!
//! Only this crate knows protobuf: the agent and the collector convert these types
//! to their own domain types by hand at their edges.

#![allow(missing_docs, clippy::all)]

/// The protocol package this crate implements.
pub const PROTOCOL_PACKAGE: &str = "rampart.v1";

/// Generated messages and service stubs of `rampart.v1`.
pub mod v1 {
    tonic::include_proto!("rampart.v1");
}
