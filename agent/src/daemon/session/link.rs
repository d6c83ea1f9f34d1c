//! The stream to the collector: sending, receiving while waiting for an
//! acknowledgement, and a finished scan sent in batches.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use rampart_proto::bounds::BATCH_BYTES;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, CollectorMessage, ResultBatch, RuleResult,
    RuleStatus, ScanFailed, ScanFinished, ScanStarted,
};
use tokio::sync::mpsc;
use tonic::Streaming;

use super::super::spool::SpooledScan;
use super::super::DaemonError;
use super::status_error;
use super::wire::fit_evidence;

pub(super) struct Link {
    pub(super) tx: mpsc::Sender<AgentMessage>,
    pub(super) inbound: Streaming<CollectorMessage>,
    /// Scan requests that arrived while something else was going on.
    pub(super) queue: VecDeque<(String, String, Vec<String>)>,
    pub(super) cancelled: BTreeSet<String>,
    /// A renewed identity waiting to be saved.
    pub(super) renewal: Option<(Vec<u8>, Vec<u8>, i64)>,
    pub(super) pending_key: Option<Vec<u8>>,
}

pub(super) fn send_err() -> DaemonError {
    DaemonError::Unreachable("the stream to the collector closed".into())
}

impl Link {
    pub(super) async fn send(&self, body: agent_message::Body) -> Result<(), DaemonError> {
        self.tx
            .send(AgentMessage { body: Some(body) })
            .await
            .map_err(|_| send_err())
    }

    pub(super) async fn next(&mut self) -> Result<collector_message::Body, DaemonError> {
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
    pub(super) fn side(&mut self, b: collector_message::Body) {
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

    pub(super) async fn wait_ack(
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
    pub(super) async fn send_scan(
        &mut self,
        s: &SpooledScan,
        batch: usize,
    ) -> Result<(), DaemonError> {
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
            // Always known here: a scan of an unknown profile is a failure, sent above.
            profile: s.profile.map(|p| p.name().to_string()).unwrap_or_default(),
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
            status: RuleStatus::from(r.status) as i32,
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
pub(super) fn batches(
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
