//! Rampart's wire contract between agent and collector (`rampart.v1`).
//!
//! Only this crate knows protobuf. The generated types arrive with the collector
//! issue; until then the crate only reserves its place in the workspace.

/// The protocol package this crate implements.
pub const PROTOCOL_PACKAGE: &str = "rampart.v1";
