//! One connection to the collector, and the reconnect loop around it.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_proto::bounds::BATCH_BYTES;
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, CollectorMessage, Hello, RenewRequest,
    ResultBatch, RuleCatalog, RuleInfo, RuleResult, RuleStatus, ScanFailed, ScanFinished,
    ScanStarted, Severity,
};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::config::AgentConfig;
use super::spool::{Spool, SpooledResult, SpooledScan};
use super::{identity, new_key_and_csr, pinned_ca, tls, AgentState, DaemonError, Identity};
use crate::content;
use crate::engine;
use crate::facts::Facts;
use crate::model::{Profile, Severity as Sev, Status};

/// Maps a gRPC status to a daemon error that names the cause.
pub fn status_error(s: tonic::Status) -> DaemonError {
    use tonic::Code::*;
    match s.code() {
        PermissionDenied | Unauthenticated | InvalidArgument | NotFound => {
            DaemonError::Refused(s.message().to_string())
        }
        _ => {
            let mut msg = s.message().to_string();
            let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&s);
            while let Some(e) = src {
                msg.push_str(": ");
                msg.push_str(&e.to_string());
                src = e.source();
            }
            DaemonError::Unreachable(msg)
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a session ended without an error.
enum End {
    Stop,
    Reload,
}

struct Signals {
    term: Signal,
    hup: Signal,
    int: Signal,
}

/// Runs the daemon until SIGTERM/SIGINT. SIGHUP reloads the configuration.
pub async fn run(config_path: &Path) -> Result<(), DaemonError> {
    let sig = |k| {
        signal(k).map_err(|e| DaemonError::Config(format!("cannot install signal handler: {e}")))
    };
    let mut signals = Signals {
        term: sig(SignalKind::terminate())?,
        hup: sig(SignalKind::hangup())?,
        int: sig(SignalKind::interrupt())?,
    };
    let mut backoff = Backoff::new();
    loop {
        let cfg = AgentConfig::load(config_path).map_err(|e| DaemonError::Config(e.to_string()))?;
        let spool = Spool::open(&cfg.state_dir.join("spool"), cfg.spool_max_scans)
            .map_err(|e| DaemonError::Config(e.to_string()))?;
        let started = std::time::Instant::now();
        match session(&cfg, &spool, &mut signals).await {
            Ok(End::Stop) => {
                tracing::info!("stopping");
                return Ok(());
            }
            Ok(End::Reload) => {
                tracing::info!(config = %config_path.display(), "reloading configuration");
                backoff.reset();
                continue;
            }
            Err(e) => {
                let e = explain(&cfg, e).await;
                if started.elapsed() > Duration::from_secs(60) {
                    backoff.reset();
                }
                let wait = backoff.next();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "collector session ended");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = signals.term.recv() => return Ok(()),
                    _ = signals.int.recv() => return Ok(()),
                    _ = signals.hup.recv() => backoff.reset(),
                }
            }
        }
    }
}

/// Adds what the TLS layer said to a connection failure, when it said something.
async fn explain(cfg: &AgentConfig, e: DaemonError) -> DaemonError {
    let DaemonError::Unreachable(msg) = &e else {
        return e;
    };
    let Ok(id) = Identity::load(&cfg.state_dir) else {
        return e;
    };
    let Ok(tls_cfg) =
        tls::client_config(&cfg.ca_fingerprint, Some((vec![id.cert_der], id.key_der)))
    else {
        return e;
    };
    match tls::diagnose(&cfg.collector, tls_cfg).await {
        Some(why) => DaemonError::Unreachable(format!("{msg} ({why})")),
        None => e,
    }
}

/// Exponential backoff from 1 s to 60 s with ±25 % jitter.
struct Backoff {
    attempt: u32,
    seed: u64,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            attempt: 0,
            seed: now_ms() as u64 ^ (std::process::id() as u64) << 32,
        }
    }
    fn reset(&mut self) {
        self.attempt = 0;
    }
    fn next(&mut self) -> Duration {
        let base = 1000u64.saturating_mul(1 << self.attempt.min(6)).min(60_000);
        self.attempt += 1;
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = (self.seed % 500) as i64 - 250; // per mille
        Duration::from_millis((base as i64 + base as i64 * jitter / 1000).max(100) as u64)
    }
}

struct Link {
    tx: mpsc::Sender<AgentMessage>,
    inbound: Streaming<CollectorMessage>,
    /// Scan requests that arrived while something else was going on.
    queue: VecDeque<(String, String, Vec<String>)>,
    cancelled: BTreeSet<String>,
    /// A renewed identity waiting to be saved.
    renewal: Option<(Vec<u8>, Vec<u8>, i64)>,
    pending_key: Option<Vec<u8>>,
}

fn send_err() -> DaemonError {
    DaemonError::Unreachable("the stream to the collector closed".into())
}

impl Link {
    async fn send(&self, body: agent_message::Body) -> Result<(), DaemonError> {
        self.tx
            .send(AgentMessage { body: Some(body) })
            .await
            .map_err(|_| send_err())
    }

    async fn next(&mut self) -> Result<collector_message::Body, DaemonError> {
        loop {
            let m = self
                .inbound
                .message()
                .await
                .map_err(status_error)?
                .ok_or_else(send_err)?;
            if let Some(b) = m.body {
                return Ok(b);
            }
        }
    }

    /// Handles a message that is not the one being waited for.
    fn side(&mut self, b: collector_message::Body) {
        match b {
            collector_message::Body::ScanRequest(r) => {
                self.queue.push_back((r.scan_id, r.profile, r.exempt_rules))
            }
            collector_message::Body::Cancel(c) => {
                self.queue.retain(|q| q.0 != c.scan_id);
                self.cancelled.insert(c.scan_id);
            }
            collector_message::Body::Renew(r) if !r.refused.is_empty() => {
                // Not now (e.g. renewed a moment ago): the current certificate stays
                // and the next check tries again.
                self.pending_key = None;
                tracing::warn!(reason = %r.refused, "certificate renewal refused");
            }
            collector_message::Body::Renew(r) => {
                if let Some(key) = self.pending_key.take() {
                    self.renewal = Some((r.certificate_der, key, r.not_after_unix));
                }
            }
            collector_message::Body::Settings(s) => {
                tracing::info!(profile = %s.profile, scanning_enabled = s.scanning_enabled, "settings received");
            }
            _ => {}
        }
    }

    async fn wait_ack(
        &mut self,
        scan_id: &str,
        seq: u64,
        finished: bool,
    ) -> Result<(), DaemonError> {
        loop {
            match tokio::time::timeout(Duration::from_secs(60), self.next()).await {
                Err(_) => {
                    return Err(DaemonError::Unreachable(format!(
                        "no acknowledgement for scan {scan_id} within 60 s"
                    )))
                }
                Ok(r) => match r? {
                    collector_message::Body::Ack(a)
                        if a.scan_id == scan_id && a.batch_seq == seq && a.finished == finished =>
                    {
                        return Ok(())
                    }
                    other => self.side(other),
                },
            }
        }
    }

    /// Sends one spooled scan and waits until every part is acknowledged.
    async fn send_scan(&mut self, s: &SpooledScan, batch: usize) -> Result<(), DaemonError> {
        if let Some(reason) = &s.failure {
            self.send(agent_message::Body::ScanFailed(ScanFailed {
                scan_id: s.scan_id.clone(),
                reason: reason.clone(),
            }))
            .await?;
            return self.wait_ack(&s.scan_id, 0, true).await;
        }
        self.send(agent_message::Body::ScanStarted(ScanStarted {
            scan_id: s.scan_id.clone(),
            benchmark_id: s.benchmark_id.clone(),
            profile: s.profile.clone(),
            content_version: s.content_version.clone(),
            started_at_unix_ms: s.started_at_ms,
            rule_count: s.results.len() as u32,
        }))
        .await?;
        let delay = std::env::var("RAMPART_AGENT_BATCH_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64);
        let wire = s.results.iter().map(|r| RuleResult {
            rule_id: r.id.clone(),
            status: wire_status(&r.status) as i32,
            evidence: fit_evidence(&r.evidence),
        });
        for (i, results) in batches(wire, batch, BATCH_BYTES).into_iter().enumerate() {
            let seq = i as u64 + 1;
            self.send(agent_message::Body::Results(ResultBatch {
                scan_id: s.scan_id.clone(),
                batch_seq: seq,
                results,
            }))
            .await?;
            self.wait_ack(&s.scan_id, seq, false).await?;
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        self.send(agent_message::Body::ScanFinished(ScanFinished {
            scan_id: s.scan_id.clone(),
            finished_at_unix_ms: s.finished_at_ms,
            result_count: s.results.len() as u32,
            duration_ms: s.duration_ms,
        }))
        .await?;
        self.wait_ack(&s.scan_id, 0, true).await
    }
}

/// Results cut into batches of at most `count` results and, but for a single result
/// larger on its own, `bytes` encoded bytes, in order.
fn batches(
    results: impl Iterator<Item = RuleResult>,
    count: usize,
    bytes: usize,
) -> Vec<Vec<RuleResult>> {
    use rampart_proto::prost::{self, Message};
    let mut out: Vec<Vec<RuleResult>> = Vec::new();
    let mut size = 0;
    for r in results {
        // The result's bytes inside the batch: its tag, its length, its body.
        let len = r.encoded_len();
        let len = len + prost::length_delimiter_len(len) + 1;
        match out.last_mut() {
            Some(b) if b.len() < count.max(1) && size + len <= bytes => {
                size += len;
                b.push(r);
            }
            _ => {
                size = len;
                out.push(vec![r]);
            }
        }
    }
    out
}

fn wire_status(s: &str) -> RuleStatus {
    match Status::parse(s) {
        Some(Status::Pass) => RuleStatus::Pass,
        Some(Status::Fail) => RuleStatus::Fail,
        Some(Status::Error) => RuleStatus::Error,
        Some(Status::NotApplicable) => RuleStatus::NotApplicable,
        Some(Status::NotChecked) => RuleStatus::NotChecked,
        Some(Status::Exempted) => RuleStatus::Exempted,
        None => RuleStatus::Unspecified,
    }
}

fn wire_severity(s: Sev) -> Severity {
    match s {
        Sev::Low => Severity::Low,
        Sev::Medium => Severity::Medium,
        Sev::High => Severity::High,
        Sev::Critical => Severity::Critical,
    }
}

/// Evidence trimmed to the protocol's bounds (lines cut at a character boundary,
/// the rest summarised in a last line), so the collector never refuses a scan for
/// its size.
pub fn fit_evidence(evidence: &[String]) -> Vec<String> {
    use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
    const NOTE: usize = 64;
    let mut out = Vec::new();
    let mut total = 0;
    for (i, line) in evidence.iter().enumerate() {
        let mut l = line.clone();
        if l.len() > EVIDENCE_LINE_BYTES {
            let mut cut = EVIDENCE_LINE_BYTES - NOTE;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
            l.push_str(" … (line cut)");
        }
        if out.len() + 1 >= EVIDENCE_LINES || total + l.len() + NOTE > EVIDENCE_BYTES {
            out.push(format!("… and {} more line(s)", evidence.len() - i));
            return out;
        }
        total += l.len();
        out.push(l);
    }
    out
}

/// The benchmark this agent scans with, and its content version.
fn benchmark_of(root: &Path) -> Result<(&'static content::Benchmark, String), String> {
    let (root, live) = engine::open_root(root).map_err(|e| e.to_string())?;
    let facts = Facts::new(&root, live);
    let b = engine::choose_benchmark(&facts, None).map_err(|e| e.to_string())?;
    Ok((b, content::content_version(&b.id)))
}

fn catalog(b: &content::Benchmark, version: &str) -> RuleCatalog {
    RuleCatalog {
        content_version: version.to_string(),
        benchmark_id: b.id.clone(),
        benchmark_title: b.title.clone(),
        benchmark_version: b.version.clone(),
        rules: b
            .rules
            .iter()
            .map(|r| RuleInfo {
                id: r.id.clone(),
                title: r.title.clone(),
                section: r.section.clone(),
                description: r.description.clone(),
                remediation: r.remediation.clone(),
                severity: wire_severity(r.severity) as i32,
                level: r.level as u32,
                automated: r.automated,
                rule_slug: r.slug.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Runs a scan the collector asked for. Only the profile and exemptions come from
/// the request; both are validated against the compiled-in content. Once `cancel`
/// is set the scan stops early and its result means nothing.
fn do_scan(
    root: PathBuf,
    scan_id: String,
    profile: String,
    exempt: Vec<String>,
    cancel: Arc<AtomicBool>,
) -> SpooledScan {
    let started = now_ms();
    let mut out = SpooledScan {
        scan_id,
        benchmark_id: String::new(),
        profile: profile.clone(),
        content_version: String::new(),
        started_at_ms: started,
        finished_at_ms: started,
        duration_ms: 0,
        failure: None,
        results: vec![],
    };
    let Some(p) = Profile::parse(&profile) else {
        out.failure = Some(format!("unknown profile `{profile}`"));
        return out;
    };
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
            status: r.status.as_str().into(),
            evidence: r.evidence.clone(),
        })
        .collect();
    out
}

async fn session(
    cfg: &AgentConfig,
    spool: &Spool,
    signals: &mut Signals,
) -> Result<End, DaemonError> {
    let id = Identity::load(&cfg.state_dir)?;
    let tls_cfg = tls::client_config(
        &cfg.ca_fingerprint,
        Some((vec![id.cert_der.clone()], id.key_der.clone())),
    )
    .map_err(DaemonError::Config)?;
    let channel = tls::channel(&cfg.collector, tls_cfg).map_err(DaemonError::Config)?;
    let mut client = AgentChannelClient::new(channel).max_decoding_message_size(16 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(64);
    let (bench, version) = benchmark_of(&cfg.root).map_err(DaemonError::Config)?;
    let facts = Facts::new(Path::new("/"), true);
    let who = identity::detect(&facts);
    tx.send(AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            agent_id: id.state.agent_id.clone(),
            hostname: who.hostname,
            ip_addresses: who.ip_addresses,
            provider: who.provider,
            instance_id: who.instance_id,
            region: who.region,
            os: who.os,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            content_version: version.clone(),
            labels: cfg.labels.clone().into_iter().collect(),
            spooled_scans: spool.list().map(|l| l.len() as u32).unwrap_or(0),
        })),
    })
    .await
    .map_err(|_| send_err())?;
    let inbound = client
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut link = Link {
        tx,
        inbound,
        queue: VecDeque::new(),
        cancelled: BTreeSet::new(),
        renewal: None,
        pending_key: None,
    };
    // The collector answers hello with CatalogWanted (if needed), then settings.
    loop {
        let b = tokio::time::timeout(Duration::from_secs(30), link.next())
            .await
            .map_err(|_| {
                DaemonError::Unreachable("no settings from the collector within 30 s".into())
            })??;
        match b {
            collector_message::Body::CatalogWanted(_) => {
                link.send(agent_message::Body::Catalog(catalog(bench, &version)))
                    .await?
            }
            collector_message::Body::Settings(_) => {
                link.side(b);
                break;
            }
            other => link.side(other),
        }
    }
    tracing::info!(agent_id = %id.state.agent_id, collector = %cfg.collector, "connected");
    maybe_renew(&mut link, &id.state, cfg.renew_before_secs).await?;
    for s in spool
        .list()
        .map_err(|e| DaemonError::Config(e.to_string()))?
    {
        link.send_scan(&s, cfg.batch_size).await?;
        spool
            .remove(&s.scan_id)
            .map_err(|e| DaemonError::Config(e.to_string()))?;
        tracing::info!(scan_id = %s.scan_id, "spooled scan delivered");
    }
    let hour = Duration::from_secs(3600);
    let mut renew_tick = tokio::time::interval_at(tokio::time::Instant::now() + hour, hour);
    loop {
        while let Some((scan_id, profile, exempt)) = link.queue.pop_front() {
            if link.cancelled.contains(&scan_id) {
                continue;
            }
            tracing::info!(%scan_id, %profile, "scan requested");
            let request = (scan_id, profile, exempt);
            let (scan, lost) = run_scan(&mut link, &cfg.root, bench, &version, request).await?;
            let Some(scan) = scan else {
                if let Some(e) = lost {
                    return Err(e);
                }
                continue;
            };
            if let Err(e) = spool.put(&scan) {
                tracing::error!(error = %e, scan_id = %scan.scan_id, "scan not spooled");
            }
            if let Some(e) = lost {
                return Err(e);
            }
            link.send_scan(&scan, cfg.batch_size).await?;
            let _ = spool.remove(&scan.scan_id);
            tracing::info!(scan_id = %scan.scan_id, results = scan.results.len(), "scan delivered");
        }
        save_renewal(&mut link, cfg)?;
        tokio::select! {
            b = link.next() => { let b = b?; link.side(b); }
            _ = renew_tick.tick() => {
                let state = Identity::load(&cfg.state_dir)?.state;
                maybe_renew(&mut link, &state, cfg.renew_before_secs).await?;
            }
            _ = signals.term.recv() => return Ok(End::Stop),
            _ = signals.int.recv() => return Ok(End::Stop),
            _ = signals.hup.recv() => return Ok(End::Reload),
        }
    }
}

/// While a scan runs, the agent says so again this often: the collector counts it as
/// progress (a long filesystem walk is not a stalled scan).
const SCAN_PROGRESS_EVERY: Duration = Duration::from_secs(15);

/// Runs a requested scan while still listening to the collector: a cancel for this
/// scan stops the work (between rules and inside the filesystem walk) and nothing is
/// sent for it. Returns the scan unless it was cancelled, and the error that ended
/// the stream meanwhile, if any (the scan is finished first so it can be spooled).
async fn run_scan(
    link: &mut Link,
    root: &Path,
    bench: &content::Benchmark,
    version: &str,
    (scan_id, profile, exempt): (String, String, Vec<String>),
) -> Result<(Option<SpooledScan>, Option<DaemonError>), DaemonError> {
    let rule_count = Profile::parse(&profile).map_or(0, |p| {
        bench.rules.iter().filter(|r| r.in_profile(p)).count() as u32
    });
    let started = ScanStarted {
        scan_id: scan_id.clone(),
        benchmark_id: bench.id.clone(),
        profile: profile.clone(),
        content_version: version.to_string(),
        started_at_unix_ms: now_ms(),
        rule_count,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let mut lost = link
        .send(agent_message::Body::ScanStarted(started.clone()))
        .await
        .err();
    let t0 = std::time::Instant::now();
    let mut task = tokio::task::spawn_blocking({
        let (root, id, cancel) = (root.to_path_buf(), scan_id.clone(), cancel.clone());
        move || do_scan(root, id, profile, exempt, cancel)
    });
    let mut progress = tokio::time::interval_at(
        tokio::time::Instant::now() + SCAN_PROGRESS_EVERY,
        SCAN_PROGRESS_EVERY,
    );
    loop {
        tokio::select! {
            done = &mut task => {
                let scan = done.map_err(|e| DaemonError::Config(format!("scan task failed: {e}")))?;
                if cancel.load(Ordering::SeqCst) {
                    tracing::info!(%scan_id, elapsed_ms = t0.elapsed().as_millis() as u64, "scan cancelled; nothing is sent");
                    return Ok((None, lost));
                }
                return Ok((Some(scan), lost));
            }
            b = link.next(), if lost.is_none() => match b {
                Ok(collector_message::Body::Cancel(c)) if c.scan_id == scan_id => {
                    tracing::info!(%scan_id, "cancelling the running scan");
                    cancel.store(true, Ordering::SeqCst);
                    link.cancelled.insert(c.scan_id);
                }
                Ok(other) => link.side(other),
                Err(e) => lost = Some(e),
            },
            _ = progress.tick(), if lost.is_none() => {
                lost = link.send(agent_message::Body::ScanStarted(started.clone())).await.err();
            }
        }
    }
}

/// Asks for a new certificate when less than a third of its lifetime is left (or
/// less than `before` seconds, when configured).
async fn maybe_renew(
    link: &mut Link,
    state: &AgentState,
    before: Option<i64>,
) -> Result<(), DaemonError> {
    let left = state.cert_not_after_unix - now_ms() / 1000;
    let lifetime = if state.cert_received_unix > 0 {
        state.cert_not_after_unix - state.cert_received_unix
    } else {
        30 * 86400
    };
    if left > before.unwrap_or(lifetime / 3) || link.pending_key.is_some() {
        return Ok(());
    }
    let (key, csr) = new_key_and_csr(&state.agent_id)?;
    link.pending_key = Some(key);
    tracing::info!(seconds_left = left, "renewing the client certificate");
    link.send(agent_message::Body::Renew(RenewRequest { csr_der: csr }))
        .await
}

/// Saves a renewed certificate with its new key, once it has passed
/// [`tls::check_agent_certificate`] against the pinned CA; a certificate that fails
/// is logged and dropped, and the current identity stays (renewal is asked again
/// at the next hourly check).
fn save_renewal(link: &mut Link, cfg: &AgentConfig) -> Result<(), DaemonError> {
    if let Some((cert, key, not_after)) = link.renewal.take() {
        let mut id = Identity::load(&cfg.state_dir)?;
        let checked = pinned_ca(&cfg.state_dir, &cfg.ca_fingerprint)
            .map_err(|e| e.to_string())
            .and_then(|ca| {
                tls::check_agent_certificate(
                    &cert,
                    &key,
                    &ca,
                    &id.state.agent_id,
                    rustls::pki_types::UnixTime::now(),
                )
            });
        if let Err(why) = checked {
            tracing::error!(reason = %why, "renewed client certificate refused; keeping the current one");
            return Ok(());
        }
        id.cert_der = cert;
        id.key_der = key;
        id.state.cert_not_after_unix = not_after;
        id.state.cert_received_unix = now_ms() / 1000;
        id.save(&cfg.state_dir)?;
        tracing::info!(not_after_unix = not_after, "client certificate renewed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{batches, fit_evidence};
    use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
    use rampart_proto::prost::Message;
    use rampart_proto::v1::{ResultBatch, RuleResult};

    #[test]
    fn batches_close_at_the_count_or_the_bytes_and_keep_every_result_in_order() {
        let result = |i: usize, evidence: usize| RuleResult {
            rule_id: format!("1.{i}"),
            status: 1,
            evidence: fit_evidence(
                &(0..evidence)
                    .map(|j| format!("{i}/{j}: {}", "x".repeat(100)))
                    .collect::<Vec<_>>(),
            ),
        };
        // 310 small results: batches of the count.
        let small: Vec<RuleResult> = (0..310).map(|i| result(i, 1)).collect();
        let b = batches(small.clone().into_iter(), 100, 1 << 20);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 100, 10]
        );
        assert_eq!(b.concat(), small);
        // 300 results whose evidence is at the bound: each batch, as sent, stays
        // within the bytes, so within the collector's message limit.
        let big: Vec<RuleResult> = (0..300).map(|i| result(i, 1000)).collect();
        let limit = 1 << 20;
        let b = batches(big.clone().into_iter(), 500, limit);
        assert!(b.len() >= 300 * 60_000 / limit, "{} batches", b.len());
        for batch in &b {
            let msg = ResultBatch {
                scan_id: "sc-1".into(),
                batch_seq: 1,
                results: batch.clone(),
            };
            let results_bytes = msg.encoded_len()
                - ResultBatch {
                    results: vec![],
                    ..msg.clone()
                }
                .encoded_len();
            assert!(results_bytes <= limit, "{results_bytes}");
        }
        assert_eq!(b.concat(), big);
        // A count of 0 still makes progress, one result a batch.
        assert_eq!(batches(small.into_iter().take(3), 0, limit).len(), 3);
    }

    fn within(e: &[String]) -> bool {
        e.len() <= EVIDENCE_LINES
            && e.iter().all(|l| l.len() <= EVIDENCE_LINE_BYTES)
            && e.iter().map(String::len).sum::<usize>() <= EVIDENCE_BYTES
    }

    #[test]
    fn evidence_is_trimmed_to_the_protocol_bounds() {
        let small = vec!["a".to_string(), "b".to_string()];
        assert_eq!(fit_evidence(&small), small, "untouched when it fits");
        for e in [
            vec!["é".repeat(5000)],
            vec!["x".repeat(4000); 40],
            vec!["y".to_string(); 5000],
        ] {
            let f = fit_evidence(&e);
            assert!(within(&f), "{} lines", f.len());
            assert!(!within(&e));
        }
        let f = fit_evidence(&vec!["y".to_string(); 5000]);
        assert!(f.last().unwrap().contains("more line(s)"), "{:?}", f.last());
    }
}
