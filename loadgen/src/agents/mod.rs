//! Simulated agents: enrollment with real CSRs, one real mutual-TLS stream each,
//! scans asked for through the REST API and answered in full, as the agent's
//! session does (ScanStarted, result batches each waiting for its durable Ack,
//! ScanFinished waiting for its Ack).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_agent::daemon::tls;
use rampart_proto::v1::collector_message;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::http::Rest;
use crate::scan::{self, Recorded, Rng};
use crate::stats::cpu_ms;
use crate::stats::{ms, percentile, rss_kib};
use crate::{Error, Result};

mod link;
use link::{answer, enroll, grpc_err, open, random_id, reconnect, Identity, Link};

/// What an ingest or idle-connection run does.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The gRPC URL, `https://host:port`.
    pub collector: String,
    /// The REST base URL.
    pub rest: String,
    pub admin_token: String,
    /// The collector CA's SHA-256; asked of the REST API when absent (plain HTTP).
    pub fingerprint: Option<String>,
    pub agents: usize,
    pub scans_per_agent: u32,
    /// Results per scan wanted: switches the collector's profile to the server
    /// profile with at least that many rules.
    pub results: Option<usize>,
    /// Results per ResultBatch (the agent's default is 100).
    pub batch: usize,
    /// Hold idle streams for `duration` instead of scanning.
    pub connect_only: bool,
    /// With `connect_only`: reconnect, as the agent does, when a stream ends (a
    /// collector restart), and report how long the fleet took to come back.
    pub reconnect: bool,
    /// Idle time with `connect_only`; otherwise a cap on the ingest phase.
    pub duration: Option<Duration>,
    /// The collector's process, for its RSS.
    pub collector_pid: Option<u32>,
    /// The project of the enrollment token.
    pub project: String,
    /// Up to this many milliseconds of random delay before a scan starts.
    pub jitter_ms: u64,
    /// Enrollments in flight at once.
    pub enroll_concurrency: usize,
    /// Scans per second offered by the whole fleet; `None`: as fast as acknowledged.
    pub rate: Option<f64>,
    /// The rampart-agent binary that records a real scan, when one is recorded.
    pub agent_binary: Option<std::path::PathBuf>,
}

/// What every agent task shares.
struct Ctx {
    cfg: IngestConfig,
    fingerprint: String,
    rest: Arc<Rest>,
    recorded: Option<Recorded>,
    run_id: String,
    enrolled: AtomicUsize,
    connected: AtomicUsize,
    /// Agents whose stream ended after they had connected.
    dropped: AtomicUsize,
    /// With `reconnect`: agents disconnected now, reconnections made, and when the
    /// first stream dropped and the last came back.
    dropped_now: AtomicUsize,
    reconnects: AtomicUsize,
    first_drop: Mutex<Option<Instant>>,
    last_reconnect: Mutex<Option<Instant>>,
    failed: AtomicUsize,
    completed: AtomicU64,
    acks: Mutex<Vec<Duration>>,
    errors: Mutex<Vec<String>>,
    last_completion: Mutex<Option<Instant>>,
}

impl Ctx {
    fn fail(&self, e: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errs.len() < 5 {
            errs.push(e.to_string());
        }
    }
}

/// One agent after enrollment: connect, wait for the start, then scan (or idle)
/// until done or stopped.
async fn life(
    ctx: Arc<Ctx>,
    id: Identity,
    mut start: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let link = open(&ctx, &id).await?;
    ctx.connected.fetch_add(1, Ordering::Relaxed);
    let r = connected(&ctx, &id, link, &mut start, &mut stop).await;
    if r.is_err() {
        ctx.dropped.fetch_add(1, Ordering::Relaxed);
    }
    r
}

async fn connected(
    ctx: &Ctx,
    id: &Identity,
    mut link: Link,
    start: &mut watch::Receiver<bool>,
    stop: &mut watch::Receiver<bool>,
) -> Result<()> {
    // Wait for the start while reading the stream (scan requests are queued).
    while !*start.borrow() {
        tokio::select! {
            r = start.changed() => { if r.is_err() { return Ok(()); } }
            m = link.inbound.message() => match m {
                Ok(Some(m)) => { if let Some(collector_message::Body::ScanRequest(r)) = m.body { link.queue.push_back(r); } }
                Ok(None) => return Err(grpc_err("stream", "closed by the collector")),
                Err(s) => return Err(grpc_err("stream", format!("{:?}: {}", s.code(), s.message()))),
            },
        }
    }
    if ctx.cfg.connect_only {
        loop {
            let ended = tokio::select! {
                _ = stop.changed() => return Ok(()),
                m = link.inbound.message() => match m {
                    Ok(Some(_)) => continue,
                    Ok(None) => grpc_err("stream", "closed by the collector"),
                    Err(s) => grpc_err("stream", format!("{:?}: {}", s.code(), s.message())),
                },
            };
            if !ctx.cfg.reconnect {
                return Err(ended);
            }
            link = reconnect(ctx, id, stop).await?;
        }
    }
    let mut rng = Rng::new(id.index as u64 + 1);
    let mut done: HashSet<String> = HashSet::new();
    let mut asked = false;
    // With a rate: this agent's scans start one interval apart, from a phase of its
    // own within the first interval, so that the fleet's starts spread evenly. Every
    // scan waits for its slot, the provision scan queued at enrollment included; a
    // scan requested in a slot is answered without waiting for another.
    let interval = ctx
        .cfg
        .rate
        .map(|r| Duration::from_secs_f64(ctx.cfg.agents as f64 / r));
    let mut next_start = interval.map(|i| {
        let phase = (rng.next_u64() % 1_000_000) as f64 / 1_000_000.0;
        tokio::time::Instant::now() + i.mul_f64(phase)
    });
    let mut in_slot = false;
    while (done.len() as u32) < ctx.cfg.scans_per_agent && !*stop.borrow() {
        // A scan is about to start: one queued, or one about to be asked for.
        let starting = !asked || link.queue.iter().any(|r| !done.contains(&r.scan_id));
        if starting && !in_slot {
            if let (Some(at), Some(i)) = (next_start.as_mut(), interval) {
                tokio::select! {
                    _ = tokio::time::sleep_until(*at) => {}
                    r = stop.changed() => { if r.is_err() { return Ok(()); } continue; }
                }
                *at += i;
            }
            in_slot = true;
        }
        match link.queue.pop_front() {
            Some(req) if done.contains(&req.scan_id) => continue,
            Some(req) => {
                answer(ctx, &mut link, &req, &mut rng).await?;
                done.insert(req.scan_id);
                asked = false;
                in_slot = false;
            }
            None if !asked => {
                let v = ctx
                    .rest
                    .json(
                        "POST",
                        "/api/v1/scans",
                        Some(&json!({"agent_id": id.agent_id})),
                    )
                    .await?;
                if v.as_array().is_none_or(|a| a.is_empty()) {
                    return Err(Error::Rest {
                        what: "POST /api/v1/scans".into(),
                        reason:
                            "the collector created no scan (scanning disabled or project exempt?)"
                                .into(),
                    });
                }
                asked = true;
            }
            None => {
                tokio::select! {
                    r = link.next() => { r?; }
                    _ = stop.changed() => {}
                }
            }
        }
    }
    Ok(())
}

/// Runs ingest (or idle connections) and returns the JSON report.
pub async fn run(cfg: IngestConfig, recorded: Option<Recorded>) -> Result<Value> {
    let rest = Rest::new(&cfg.rest, &cfg.admin_token, cfg.fingerprint.as_deref())?;
    let fingerprint = match &cfg.fingerprint {
        Some(f) => f.clone(),
        None => rest.json("GET", "/api/v1/ca", None).await?["fingerprint"]
            .as_str()
            .ok_or_else(|| Error::Config("GET /api/v1/ca: no fingerprint".into()))?
            .to_string(),
    };
    let profile = match cfg.results {
        Some(n) if !cfg.connect_only => {
            let want = scan::profile_for_results(n);
            let mut s = rest.json("GET", "/api/v1/settings", None).await?;
            if s["profile"] != want {
                s["profile"] = json!(want);
                rest.json("PUT", "/api/v1/settings", Some(&s)).await?;
            }
            want.to_string()
        }
        _ => rest.json("GET", "/api/v1/settings", None).await?["profile"]
            .as_str()
            .unwrap_or("level1-server")
            .to_string(),
    };
    let token = rest
        .json(
            "POST",
            "/api/v1/enrollment-tokens",
            Some(&json!({"project": cfg.project, "max_uses": cfg.agents.max(1), "ttl_seconds": 86_400})),
        )
        .await?["token"]
        .as_str()
        .ok_or_else(|| Error::Config("POST /api/v1/enrollment-tokens: no token".into()))?
        .to_string();
    let ctx = Arc::new(Ctx {
        fingerprint: fingerprint.clone(),
        rest,
        recorded,
        run_id: random_id(),
        enrolled: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        dropped: AtomicUsize::new(0),
        dropped_now: AtomicUsize::new(0),
        reconnects: AtomicUsize::new(0),
        first_drop: Mutex::new(None),
        last_reconnect: Mutex::new(None),
        failed: AtomicUsize::new(0),
        completed: AtomicU64::new(0),
        acks: Mutex::new(Vec::new()),
        errors: Mutex::new(Vec::new()),
        last_completion: Mutex::new(None),
        cfg: cfg.clone(),
    });
    let enroll_channel = tls::channel(&cfg.collector, tls::client_config(&fingerprint, None)?)?;
    let (connect_tx, connect_rx) = watch::channel(false);
    let (start_tx, start_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(cfg.enroll_concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.agents);
    for index in 0..cfg.agents {
        let (ctx, ch, token, gate) = (
            ctx.clone(),
            enroll_channel.clone(),
            token.clone(),
            gate.clone(),
        );
        let (start, stop) = (start_rx.clone(), stop_rx.clone());
        let mut connect = connect_rx.clone();
        tasks.push(tokio::spawn(async move {
            let id = {
                let _permit = gate.acquire().await;
                match enroll(&ctx, ch, &token, index).await {
                    Ok(id) => id,
                    Err(e) => return ctx.fail(&e),
                }
            };
            ctx.enrolled.fetch_add(1, Ordering::Relaxed);
            // Every agent enrolls before any connects: the collector's memory is
            // measured between the two.
            if connect.wait_for(|go| *go).await.is_err() {
                return;
            }
            if let Err(e) = life(ctx.clone(), id, start, stop).await {
                ctx.fail(&e);
            }
        }));
    }
    // Phase 1: every agent enrolled (or failed), then connected (or failed).
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut rss_before = None;
    for k in 0u64.. {
        tick.tick().await;
        let (e, c, f) = (
            ctx.enrolled.load(Ordering::Relaxed),
            ctx.connected.load(Ordering::Relaxed),
            ctx.failed.load(Ordering::Relaxed),
        );
        if k % 8 == 0 {
            eprintln!(
                "[{:>6.1}s] enrolled {e}/{n}, connected {c}/{n}, failed {f}",
                t0.elapsed().as_secs_f64(),
                n = cfg.agents
            );
        }
        if !*connect_tx.borrow() && e + f >= cfg.agents {
            rss_before = cfg.collector_pid.and_then(rss_kib);
            let _ = connect_tx.send(true);
        }
        if c + f >= cfg.agents {
            break;
        }
    }
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let connect_seconds = t0.elapsed().as_secs_f64();
    let connected = ctx.connected.load(Ordering::Relaxed);
    let start = Instant::now();
    let cpu_before = cfg.collector_pid.and_then(cpu_ms);
    let own_cpu_before = cpu_ms(std::process::id());
    let _ = start_tx.send(true);
    if cfg.connect_only {
        let hold = cfg.duration.unwrap_or(Duration::from_secs(10));
        while start.elapsed() < hold {
            tick.tick().await;
            eprintln!(
                "[{:>6.1}s] holding {} idle streams ({} lost, {} reconnecting, {} reconnections), collector RSS {:?} KiB",
                t0.elapsed().as_secs_f64(),
                connected
                    - ctx.dropped.load(Ordering::Relaxed)
                    - ctx.dropped_now.load(Ordering::Relaxed),
                ctx.dropped.load(Ordering::Relaxed),
                ctx.dropped_now.load(Ordering::Relaxed),
                ctx.reconnects.load(Ordering::Relaxed),
                cfg.collector_pid.and_then(rss_kib)
            );
        }
        let rss = cfg.collector_pid.and_then(rss_kib);
        let still = connected
            .saturating_sub(ctx.dropped.load(Ordering::Relaxed))
            .saturating_sub(ctx.dropped_now.load(Ordering::Relaxed));
        let first_drop = *ctx.first_drop.lock().unwrap_or_else(|p| p.into_inner());
        let last_back = *ctx.last_reconnect.lock().unwrap_or_else(|p| p.into_inner());
        let reconnect_seconds = match (first_drop, last_back) {
            (Some(a), Some(b)) => Some(round3(b.saturating_duration_since(a).as_secs_f64())),
            _ => None,
        };
        let _ = stop_tx.send(true);
        for t in tasks {
            let _ = t.await;
        }
        let per_agent = match (rss, rss_before) {
            (Some(a), Some(b)) if still > 0 => Some((a.saturating_sub(b)) as f64 / still as f64),
            _ => None,
        };
        return Ok(json!({
            "mode": "connect-only",
            "agents": cfg.agents,
            "connected": still,
            "failed_agents": ctx.failed.load(Ordering::Relaxed),
            "connect_seconds": round3(connect_seconds),
            "seconds": round3(start.elapsed().as_secs_f64()),
            "collector_rss_before_connect_kib": rss_before,
            "collector_rss_kib": rss,
            "rss_per_agent_kib": per_agent.map(round3),
            "agents_per_gib": rss.filter(|r| *r > 0).map(|r| round3(still as f64 * 1_048_576.0 / r as f64)),
            "reconnects": ctx.reconnects.load(Ordering::Relaxed),
            "still_disconnected": ctx.dropped_now.load(Ordering::Relaxed),
            "reconnect_seconds": reconnect_seconds,
            "agents_per_gib_marginal": per_agent.filter(|p| *p > 0.0).map(|p| round3(1_048_576.0 / p)),
            "errors": ctx.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }));
    }
    // Phase 2: scans.
    let mut all = futures_join(tasks);
    let mut last = (0u64, Instant::now());
    loop {
        tokio::select! {
            _ = &mut all => break,
            _ = tick.tick() => {
                let done = ctx.completed.load(Ordering::Relaxed);
                let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
                last = (done, Instant::now());
                eprintln!(
                    "[{:>6.1}s] scans completed {done}/{}, {rate:.1}/s now, failed agents {}",
                    t0.elapsed().as_secs_f64(),
                    cfg.scans_per_agent as usize * connected,
                    ctx.failed.load(Ordering::Relaxed)
                );
                if cfg.duration.is_some_and(|d| start.elapsed() >= d) {
                    let _ = stop_tx.send(true);
                }
            }
        }
    }
    let end = ctx
        .last_completion
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(Instant::now);
    let seconds = end.saturating_duration_since(start).as_secs_f64();
    let completed = ctx.completed.load(Ordering::Relaxed);
    let mut acks = std::mem::take(&mut *ctx.acks.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(json!({
        "mode": "ingest",
        "agents": cfg.agents,
        "connected": connected,
        "failed_agents": ctx.failed.load(Ordering::Relaxed),
        "profile": profile,
        "results_per_scan": scan::rule_count(&profile),
        "batch": cfg.batch,
        "offered_scans_per_second": cfg.rate,
        "recorded_rules": ctx.recorded.as_ref().map(|r| r.0.len()),
        "connect_seconds": round3(connect_seconds),
        "scans_completed": completed,
        "seconds": round3(seconds),
        "scans_per_second": if seconds > 0.0 { round3(completed as f64 / seconds) } else { 0.0 },
        "acks": acks.len(),
        "ack_p50_ms": ms(percentile(&mut acks, 50.0)),
        "ack_p99_ms": ms(percentile(&mut acks, 99.0)),
        "ack_max_ms": ms(percentile(&mut acks, 100.0)),
        "collector_rss_kib": cfg.collector_pid.and_then(rss_kib),
        // The collector's CPU time (user + system) per completed scan: a figure that
        // holds when the load generator shares the machine.
        "collector_cpu_ms_per_scan": match (cpu_before, cfg.collector_pid.and_then(cpu_ms)) {
            (Some(a), Some(b)) if completed > 0 => Some(round3((b - a) as f64 / completed as f64)),
            _ => None,
        },
        // The load generator's own: on a machine it shares with the collector, the
        // scans per second both allow together.
        "loadgen_cpu_ms_per_scan": match (own_cpu_before, cpu_ms(std::process::id())) {
            (Some(a), Some(b)) if completed > 0 => Some(round3((b - a) as f64 / completed as f64)),
            _ => None,
        },
        "errors": ctx.errors.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    }))
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// A future that resolves when every task has ended.
fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        for t in tasks {
            let _ = t.await;
        }
    })
}
