//! Scans run for the collector, on the blocking pool.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::super::spool::{SpooledResult, SpooledScan};
use super::now_ms;
use crate::content;
use crate::engine;
use crate::error::AgentError;
use crate::facts::Facts;
use crate::model::{Profile, UnknownProfile};

/// The benchmark this agent scans with, and its content version.
pub(super) fn benchmark_of(
    root: &Path,
) -> Result<(&'static content::Benchmark, String), AgentError> {
    let (root, live) = engine::open_root(root)?;
    let facts = Facts::new(&root, live);
    let b = engine::choose_benchmark(&facts, None)?;
    Ok((b, content::content_version(&b.id)))
}

/// A scan begun now: nothing found, nothing failed yet.
fn begun(scan_id: String, profile: Option<Profile>) -> SpooledScan {
    let now = now_ms();
    SpooledScan {
        scan_id,
        benchmark_id: String::new(),
        profile,
        content_version: String::new(),
        started_at_ms: now,
        finished_at_ms: now,
        duration_ms: 0,
        failure: None,
        results: vec![],
    }
}

/// A request naming a profile this agent does not know: a failed scan that says so.
pub(super) fn refused(scan_id: String, e: &UnknownProfile) -> SpooledScan {
    let mut out = begun(scan_id, None);
    out.failure = Some(e.to_string());
    out
}

/// Runs a scan the collector asked for. Only the profile (parsed where the request
/// arrived) and exemptions come from the request; exemptions are checked against the
/// compiled-in content. Once `cancel` is set the scan stops early and its result
/// means nothing.
pub(super) fn do_scan(
    root: PathBuf,
    scan_id: String,
    p: Profile,
    exempt: Vec<String>,
    cancel: Arc<AtomicBool>,
) -> SpooledScan {
    let mut out = begun(scan_id, Some(p));
    let (root, live) = match engine::open_root(&root) {
        Ok(r) => r,
        Err(e) => {
            out.failure = Some(e.to_string());
            return out;
        }
    };
    let facts = Facts::with_cancel(&root, live, cancel);
    let b = match engine::choose_benchmark(&facts, None) {
        Ok(b) => b,
        Err(e) => {
            out.failure = Some(e.to_string());
            return out;
        }
    };
    let known: BTreeSet<String> = exempt
        .into_iter()
        .filter(|id| b.rules.iter().any(|r| &r.id == id))
        .collect();
    let report = engine::scan_with(&facts, b, p, &known);
    out.benchmark_id = b.id.clone();
    out.content_version = content::content_version(&b.id);
    out.finished_at_ms = now_ms();
    out.duration_ms = report.duration_ms;
    out.results = report
        .results
        .iter()
        .map(|r| SpooledResult {
            id: r.rule.id.clone(),
            status: r.status,
            evidence: r.evidence.clone(),
        })
        .collect();
    out
}
