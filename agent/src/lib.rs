//! `rampart-agent`: evaluates CIS benchmarks natively on a Linux host or on a root
//! filesystem, read-only. See ARCHITECTURE.md for the map.

pub mod checks;
pub mod cli;
pub mod content;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod facts;
pub mod inspect;
pub mod model;
pub mod report;
