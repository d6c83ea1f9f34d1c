//! Simulated agents: enrollment with real CSRs, one real mutual-TLS stream each,
//! scans asked for through the REST API and answered in full, as the agent's
//! session does (ScanStarted, result batches each waiting for its durable Ack,
//! ScanFinished waiting for its Ack).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_agent::daemon::{new_key_and_csr, tls};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, EnrollRequest, Hello, ResultBatch,
    ScanFinished, ScanRequest, ScanStarted,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;

use crate::http::Rest;
use crate::scan::{self, Recorded, Rng};
use crate::stats::cpu_ms;
use crate::stats::{ms, percentile, rss_kib};
use crate::{now_ms, Error, Result};

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

/// An enrolled simulated agent.
struct Identity {
    index: usize,
    agent_id: String,
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn grpc_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Grpc {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex(&b)
}

impl Ctx {
    fn instance_id(&self, index: usize) -> String {
        format!("lg-{}-{index:06}", self.run_id)
    }
}

/// Enrolls one agent; retries while the collector's enrollment rate is exceeded
/// or the connection fails.
async fn enroll(
    ctx: &Ctx,
    channel: tonic::transport::Channel,
    token: &str,
    index: usize,
) -> Result<Identity> {
    let (key, csr) = tokio::task::spawn_blocking(move || new_key_and_csr("rampart-loadgen"))
        .await
        .map_err(|e| grpc_err("key generation", e))?
        .map_err(|e| Error::Config(e.to_string()))?;
    let mut client = EnrollmentClient::new(channel);
    let mut wait = Duration::from_millis(200);
    for _ in 0..40 {
        let req = EnrollRequest {
            token: token.to_string(),
            csr_der: csr.clone(),
            hostname: format!("lg-{}-{index}", ctx.run_id),
            labels: Default::default(),
            instance_id: ctx.instance_id(index),
            provider: "aws".into(),
            identity_document: None,
        };
        match client.enroll(req).await {
            Ok(r) => {
                let r = r.into_inner();
                return Ok(Identity {
                    index,
                    agent_id: r.agent_id,
                    cert: r.certificate_der,
                    key,
                });
            }
            // Over the enrollment rate, or the shared enrollment connection closed
            // under the request (the collector ends a connection without a client
            // certificate after `grpc_unauthenticated_secs`): the agent retries both.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::ResourceExhausted
                        | tonic::Code::Unavailable
                        | tonic::Code::Cancelled
                ) || s.message().contains("transport error") =>
            {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(s) => return Err(grpc_err("enroll", s.message())),
        }
    }
    Err(grpc_err(
        "enroll",
        "still refused or cut off after 40 attempts",
    ))
}

/// One agent's stream.
struct Link {
    tx: mpsc::Sender<AgentMessage>,
    inbound: tonic::Streaming<rampart_proto::v1::CollectorMessage>,
    queue: VecDeque<ScanRequest>,
}

const WAIT: Duration = Duration::from_secs(60);

impl Link {
    async fn send(&self, b: agent_message::Body) -> Result<()> {
        self.tx
            .send(AgentMessage { body: Some(b) })
            .await
            .map_err(|_| grpc_err("stream", "closed"))
    }

    /// The next message with a body; scan requests are queued on the way.
    async fn next(&mut self) -> Result<collector_message::Body> {
        loop {
            let m = tokio::time::timeout(WAIT, self.inbound.message())
                .await
                .map_err(|_| grpc_err("stream", "nothing from the collector for 60 s"))?
                .map_err(|s| grpc_err("stream", format!("{:?}: {}", s.code(), s.message())))?
                .ok_or_else(|| grpc_err("stream", "closed by the collector"))?;
            match m.body {
                Some(collector_message::Body::ScanRequest(r)) => {
                    self.queue.push_back(r.clone());
                    return Ok(collector_message::Body::ScanRequest(r));
                }
                Some(b) => return Ok(b),
                None => continue,
            }
        }
    }

    async fn wait_ack(&mut self, scan_id: &str, seq: u64, finished: bool) -> Result<()> {
        loop {
            if let collector_message::Body::Ack(a) = self.next().await? {
                if a.scan_id == scan_id && a.batch_seq == seq && a.finished == finished {
                    return Ok(());
                }
            }
        }
    }
}

async fn open(ctx: &Ctx, id: &Identity) -> Result<Link> {
    let cfg = tls::client_config(
        &ctx.fingerprint,
        Some((vec![id.cert.clone()], id.key.clone())),
    )
    .map_err(Error::Config)?;
    let channel = tls::channel(&ctx.cfg.collector, cfg).map_err(Error::Config)?;
    let (tx, rx) = mpsc::channel(16);
    tx.send(AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            agent_id: id.agent_id.clone(),
            hostname: format!("lg-{}-{}", ctx.run_id, id.index),
            ip_addresses: vec![format!(
                "10.{}.{}.{}",
                (id.index >> 16) & 255,
                (id.index >> 8) & 255,
                id.index & 255
            )],
            provider: "aws".into(),
            instance_id: ctx.instance_id(id.index),
            region: "eu-west-1".into(),
            os: "Debian GNU/Linux 12 (bookworm)".into(),
            agent_version: concat!("loadgen-", env!("CARGO_PKG_VERSION")).into(),
            content_version: scan::content_version(),
            labels: Default::default(),
            spooled_scans: 0,
        })),
    })
    .await
    .map_err(|_| grpc_err("stream", "closed"))?;
    let inbound = AgentChannelClient::new(channel)
        .max_decoding_message_size(16 * 1024 * 1024)
        .connect(ReceiverStream::new(rx))
        .await
        .map_err(|s| grpc_err("connect", format!("{:?}: {}", s.code(), s.message())))?
        .into_inner();
    let mut link = Link {
        tx,
        inbound,
        queue: VecDeque::new(),
    };
    // The collector answers hello with settings (and any pending scan requests).
    while !matches!(link.next().await?, collector_message::Body::Settings(_)) {}
    Ok(link)
}

/// Answers one scan request in full; the time of each acknowledgement is recorded.
async fn answer(ctx: &Ctx, link: &mut Link, req: &ScanRequest, rng: &mut Rng) -> Result<()> {
    if ctx.cfg.jitter_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rng.below(ctx.cfg.jitter_ms + 1))).await;
    }
    let started = now_ms();
    let results = scan::results(&req.profile, &req.exempt_rules, ctx.recorded.as_ref(), rng)?;
    let count = results.len() as u32;
    link.send(agent_message::Body::ScanStarted(ScanStarted {
        scan_id: req.scan_id.clone(),
        benchmark_id: scan::BENCHMARK.into(),
        profile: req.profile.clone(),
        content_version: scan::content_version(),
        started_at_unix_ms: started,
        rule_count: count,
    }))
    .await?;
    let mut acks = Vec::new();
    for (i, chunk) in results.chunks(ctx.cfg.batch.max(1)).enumerate() {
        let seq = i as u64 + 1;
        link.send(agent_message::Body::Results(ResultBatch {
            scan_id: req.scan_id.clone(),
            batch_seq: seq,
            results: chunk.to_vec(),
        }))
        .await?;
        let t = Instant::now();
        link.wait_ack(&req.scan_id, seq, false).await?;
        acks.push(t.elapsed());
    }
    link.send(agent_message::Body::ScanFinished(ScanFinished {
        scan_id: req.scan_id.clone(),
        finished_at_unix_ms: now_ms(),
        result_count: count,
        duration_ms: (now_ms() - started).max(0) as u64,
    }))
    .await?;
    let t = Instant::now();
    link.wait_ack(&req.scan_id, 0, true).await?;
    acks.push(t.elapsed());
    ctx.acks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(acks);
    ctx.completed.fetch_add(1, Ordering::Relaxed);
    *ctx.last_completion
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    Ok(())
}

/// The agent's backoff: 1 s doubling to 60 s, ±25 % jitter.
fn backoff(attempt: u32, rng: &mut Rng) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(6)).min(60_000);
    let jitter = rng.below(500) as i64 - 250; // per mille
    Duration::from_millis((base as i64 + base as i64 * jitter / 1000).max(100) as u64)
}

/// After the stream ended (a collector restart): reconnects as the agent does,
/// recording when the first stream dropped and when the last one came back.
async fn reconnect(ctx: &Ctx, id: &Identity, stop: &mut watch::Receiver<bool>) -> Result<Link> {
    ctx.dropped_now.fetch_add(1, Ordering::Relaxed);
    ctx.first_drop
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_with(Instant::now);
    let mut rng = Rng::new(id.index as u64 ^ now_ms() as u64);
    for attempt in 0.. {
        tokio::select! {
            _ = tokio::time::sleep(backoff(attempt, &mut rng)) => {}
            _ = stop.changed() => return Err(grpc_err("reconnect", "stopped before reconnecting")),
        }
        if let Ok(link) = open(ctx, id).await {
            ctx.dropped_now.fetch_sub(1, Ordering::Relaxed);
            ctx.reconnects.fetch_add(1, Ordering::Relaxed);
            *ctx.last_reconnect.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            return Ok(link);
        }
    }
    Err(grpc_err("reconnect", "gave up"))
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
    let enroll_channel = tls::channel(
        &cfg.collector,
        tls::client_config(&fingerprint, None).map_err(Error::Config)?,
    )
    .map_err(Error::Config)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_the_agents() {
        let mut rng = Rng::new(3);
        for (attempt, base) in [
            (0u32, 1000u64),
            (1, 2000),
            (5, 32_000),
            (6, 60_000),
            (20, 60_000),
        ] {
            for _ in 0..50 {
                let d = backoff(attempt, &mut rng).as_millis() as u64;
                assert!(
                    d >= base * 3 / 4 && d <= base * 5 / 4,
                    "attempt {attempt}: {d} ms"
                );
            }
        }
    }
}
