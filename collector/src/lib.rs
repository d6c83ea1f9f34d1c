//! `rampart-collector`: receives scans from agents, scores them, enforces the
//! organisation's policy and gates VM handover. This crate so far holds the pure
//! policy core (settings, score, enforcement, schedule); transport, storage and the
//! REST API arrive with the collector issue.

pub mod app;
pub mod auth;
pub mod ca;
pub mod catalog;
pub mod config;
pub mod datadir;
pub mod downloads;
pub mod grpc;
pub mod identity;
pub mod limits;
pub mod net;
pub mod policy;
pub mod report;
pub mod rest;
pub mod schedule;
pub mod server;
pub mod store;
pub mod tls;
pub mod webhook;
