//! One connection to the collector, and the reconnect loop around it.

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, Hello, RenewRequest, ScanStarted,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::config::AgentConfig;
use super::spool::{Spool, SpooledScan};
use super::{identity, new_key_and_csr, pinned_ca, tls, AgentState, DaemonError, Identity};
use crate::content;
use crate::facts::Facts;
use crate::model::Profile;

mod link;
mod scan;
mod wire;

use link::{send_err, Link};
use scan::{benchmark_of, do_scan, refused};
use wire::catalog;
pub use wire::fit_evidence;

/// Maps a gRPC status to a daemon error that names the cause.
pub fn status_error(s: tonic::Status) -> DaemonError {
    use tonic::Code;
    match s.code() {
        Code::PermissionDenied | Code::Unauthenticated | Code::InvalidArgument | Code::NotFound => {
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
    /// A renewed certificate was saved: connect again with it (the collector refuses
    /// the replaced one only once it has seen the new one).
    Renewed,
}

/// What the daemon is told from outside while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Finish what is being sent and stop (SIGTERM, SIGINT).
    Stop,
    /// Read the configuration again and reconnect (SIGHUP).
    Reload,
}

/// Runs the daemon until SIGTERM/SIGINT. SIGHUP reloads the configuration.
pub async fn run(config_path: &Path) -> Result<(), DaemonError> {
    run_until(config_path, signals()?).await
}

/// SIGTERM and SIGINT as [`Control::Stop`], SIGHUP as [`Control::Reload`].
fn signals() -> Result<mpsc::Receiver<Control>, DaemonError> {
    let sig = |k| {
        signal(k).map_err(|source| DaemonError::Io {
            what: "cannot install signal handler".into(),
            source,
        })
    };
    let (mut term, mut int, mut hup) = (
        sig(SignalKind::terminate())?,
        sig(SignalKind::interrupt())?,
        sig(SignalKind::hangup())?,
    );
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            if tx.send(c).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

/// Runs the daemon until `control` says stop (or is closed): the reconnect loop
/// around [`session`], with the configuration read again on [`Control::Reload`].
pub async fn run_until(
    config_path: &Path,
    mut control: mpsc::Receiver<Control>,
) -> Result<(), DaemonError> {
    let mut backoff = Backoff::new();
    loop {
        let cfg = AgentConfig::load(config_path)?;
        let spool = Spool::open(&cfg.state_dir.join("spool"), cfg.spool_max_scans)?;
        let started = std::time::Instant::now();
        match session(&cfg, &spool, &mut control).await {
            Ok(End::Stop) => {
                tracing::info!("stopping");
                return Ok(());
            }
            Ok(End::Reload) => {
                tracing::info!(config = %config_path.display(), "reloading configuration");
                backoff.reset();
                continue;
            }
            Ok(End::Renewed) => {
                tracing::info!("connecting again with the renewed certificate");
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
                    c = control.recv() => match c {
                        Some(Control::Reload) => backoff.reset(),
                        Some(Control::Stop) | None => {
                            tracing::info!("stopping");
                            return Ok(());
                        }
                    },
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

async fn session(
    cfg: &AgentConfig,
    spool: &Spool,
    control: &mut mpsc::Receiver<Control>,
) -> Result<End, DaemonError> {
    let id = Identity::load(&cfg.state_dir)?;
    let tls_cfg = tls::client_config(
        &cfg.ca_fingerprint,
        Some((vec![id.cert_der.clone()], id.key_der.clone())),
    )?;
    let channel = tls::channel(&cfg.collector, tls_cfg)?;
    let mut client = AgentChannelClient::new(channel).max_decoding_message_size(16 * 1024 * 1024);
    let (tx, rx) = mpsc::channel(64);
    let (bench, version) = benchmark_of(&cfg.root).map_err(|e| DaemonError::Root(Box::new(e)))?;
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
    for s in spool.list()? {
        link.send_scan(&s, cfg.batch_size).await?;
        spool.remove(&s.scan_id)?;
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
        if save_renewal(&mut link, cfg)? {
            return Ok(End::Renewed);
        }
        tokio::select! {
            b = link.next() => { let b = b?; link.side(b); }
            _ = renew_tick.tick() => {
                let state = Identity::load(&cfg.state_dir)?.state;
                maybe_renew(&mut link, &state, cfg.renew_before_secs).await?;
            }
            c = control.recv() => return Ok(match c {
                Some(Control::Reload) => End::Reload,
                Some(Control::Stop) | None => End::Stop,
            }),
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
    // The request's profile is parsed here, where it arrives: a name this agent does
    // not know is a scan that never started, reported failed with the reason.
    let profile = match profile.parse::<Profile>() {
        Ok(p) => p,
        Err(e) => return Ok((Some(refused(scan_id, &e)), None)),
    };
    let rule_count = bench.rules.iter().filter(|r| r.in_profile(profile)).count() as u32;
    let started = ScanStarted {
        scan_id: scan_id.clone(),
        benchmark_id: bench.id.clone(),
        profile: profile.name().into(),
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
                let scan = done.map_err(DaemonError::ScanTask)?;
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
/// at the next hourly check). Whether a certificate was saved.
fn save_renewal(link: &mut Link, cfg: &AgentConfig) -> Result<bool, DaemonError> {
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
            return Ok(false);
        }
        id.cert_der = cert;
        id.key_der = key;
        id.state.cert_not_after_unix = not_after;
        id.state.cert_received_unix = now_ms() / 1000;
        id.save(&cfg.state_dir)?;
        tracing::info!(not_after_unix = not_after, "client certificate renewed");
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
