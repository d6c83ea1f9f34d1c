//! `rampart-collector`: enrolls agents (mutual TLS, its own CA), receives their
//! scans over gRPC, scores them, enforces the organisation's policy, gates VM
//! handover, keeps everything in its store and serves the REST API and reports.
//! `server` wires the parts; ARCHITECTURE.md maps the modules.

pub mod app;
pub mod auth;
pub mod background;
pub mod backup;
pub mod ca;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod datadir;
pub mod downloads;
pub mod grpc;
pub mod healthcheck;
pub mod identity;
pub mod ingest;
pub mod limits;
pub mod metrics;
pub mod migrate;
pub mod net;
pub mod outbound;
pub mod policy;
pub mod report;
pub mod rest;
pub mod schedule;
pub mod server;
pub mod ssh;
pub mod store;
pub mod tls;
pub mod webhook;
