//! One simulated agent's identity and stream: enrollment with a real CSR, the
//! mutual-TLS stream, a scan answered in full, and reconnection with the agent's
//! backoff.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rampart_agent::daemon::{new_key_and_csr, tls};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, EnrollRequest, Hello, ResultBatch,
    ScanFinished, ScanRequest, ScanStarted,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::Ctx;
use crate::scan::{self, Rng};
use crate::{now_ms, Error, Result};

/// An enrolled simulated agent.
pub(super) struct Identity {
    pub(super) index: usize,
    pub(super) agent_id: String,
    pub(super) cert: Vec<u8>,
    pub(super) key: Vec<u8>,
}

pub(super) fn grpc_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Grpc {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    hex(&b)
}

impl Ctx {
    pub(super) fn instance_id(&self, index: usize) -> String {
        format!("lg-{}-{index:06}", self.run_id)
    }
}

/// Enrolls one agent; retries while the collector's enrollment rate is exceeded
/// or the connection fails.
pub(super) async fn enroll(
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
pub(super) struct Link {
    pub(super) tx: mpsc::Sender<AgentMessage>,
    pub(super) inbound: tonic::Streaming<rampart_proto::v1::CollectorMessage>,
    pub(super) queue: VecDeque<ScanRequest>,
}

const WAIT: Duration = Duration::from_secs(60);

impl Link {
    pub(super) async fn send(&self, b: agent_message::Body) -> Result<()> {
        self.tx
            .send(AgentMessage { body: Some(b) })
            .await
            .map_err(|_| grpc_err("stream", "closed"))
    }

    /// The next message with a body; scan requests are queued on the way.
    pub(super) async fn next(&mut self) -> Result<collector_message::Body> {
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

    pub(super) async fn wait_ack(&mut self, scan_id: &str, seq: u64, finished: bool) -> Result<()> {
        loop {
            if let collector_message::Body::Ack(a) = self.next().await? {
                if a.scan_id == scan_id && a.batch_seq == seq && a.finished == finished {
                    return Ok(());
                }
            }
        }
    }
}

pub(super) async fn open(ctx: &Ctx, id: &Identity) -> Result<Link> {
    let cfg = tls::client_config(
        &ctx.fingerprint,
        Some((vec![id.cert.clone()], id.key.clone())),
    )?;
    let channel = tls::channel(&ctx.cfg.collector, cfg)?;
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
pub(super) async fn answer(
    ctx: &Ctx,
    link: &mut Link,
    req: &ScanRequest,
    rng: &mut Rng,
) -> Result<()> {
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
    let mut rest = results.into_iter();
    for seq in 1.. {
        let chunk: Vec<_> = rest.by_ref().take(ctx.cfg.batch.max(1)).collect();
        if chunk.is_empty() {
            break;
        }
        link.send(agent_message::Body::Results(ResultBatch {
            scan_id: req.scan_id.clone(),
            batch_seq: seq,
            results: chunk,
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
pub(super) fn backoff(attempt: u32, rng: &mut Rng) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(6)).min(60_000);
    let jitter = rng.below(500) as i64 - 250; // per mille
    Duration::from_millis((base as i64 + base as i64 * jitter / 1000).max(100) as u64)
}

/// After the stream ended (a collector restart): reconnects as the agent does,
/// recording when the first stream dropped and when the last one came back.
pub(super) async fn reconnect(
    ctx: &Ctx,
    id: &Identity,
    stop: &mut watch::Receiver<bool>,
) -> Result<Link> {
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
