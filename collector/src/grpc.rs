//! The agents' gRPC services: enrollment and the per-agent stream. Protobuf types
//! are converted to the domain here, at the edge; junk is answered with
//! INVALID_ARGUMENT and the stream is closed, without affecting other agents.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rampart_proto::v1::agent_channel_server::AgentChannel;
use rampart_proto::v1::enrollment_server::Enrollment;
use rampart_proto::v1::{
    agent_message, collector_message, Ack, AgentMessage, AgentSettings, CancelScan,
    CollectorMessage, EnrollRequest, EnrollResponse, RenewResponse, ScanRequest,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::app::{labels_of, App, AppError, Command, HelloInfo, StreamEnd};
use crate::limits::{self, echo, EnrollClaims, HelloClaims};
use crate::metrics::Limit;
use crate::store::ResultRecord;

fn status_of(e: AppError) -> Status {
    match e {
        AppError::Refused(m) => Status::permission_denied(m),
        AppError::Invalid(m) => Status::invalid_argument(m),
        AppError::Rejected(e) => Status::invalid_argument(e.to_string()),
        AppError::Conflict(m) => Status::failed_precondition(m),
        AppError::NotFound(m) => Status::not_found(format!("{m} not found")),
        AppError::Ca(e) => Status::invalid_argument(e.to_string()),
        AppError::Limited(m) => Status::resource_exhausted(m),
        AppError::Unavailable(m) => Status::unavailable(m),
        AppError::Store(e) => {
            tracing::error!(error = %e, "store failure");
            Status::unavailable("the collector cannot store data right now")
        }
    }
}

/// `Enrollment`: the only call allowed without a client certificate.
pub struct EnrollmentService {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn enroll(
        &self,
        req: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        // The source address, without the port: rate limits are per source.
        let peer = req
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mut r = req.into_inner();
        let labels = labels_of(std::mem::take(&mut r.labels));
        let app = self.app.clone();
        let enrolled = tokio::task::spawn_blocking(move || {
            let claims = EnrollClaims::of_request(&r, &labels);
            app.enroll(&claims, &peer)
        })
        .await
        .map_err(|_| Status::internal("enrollment task failed"))?
        .map_err(status_of)?;
        Ok(Response::new(EnrollResponse {
            agent_id: enrolled.agent_id,
            certificate_der: enrolled.cert_der,
            ca_certificate_der: self.app.ca.cert_der().to_vec(),
            not_after_unix: enrolled.not_after_ms / 1000,
        }))
    }
}

/// `AgentChannel`: one long-lived stream per enrolled agent.
pub struct ChannelService {
    pub app: Arc<App>,
}

/// The agent ID in a client certificate's URI SAN.
pub fn agent_id_of(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(u) => {
            u.strip_prefix("urn:rampart:agent:").map(String::from)
        }
        _ => None,
    })
}

fn command_message(c: Command) -> CollectorMessage {
    let body = match c {
        Command::Settings {
            scanning_enabled,
            profile,
            exempt_rules,
            schedule_cron,
            schedule_offset_s,
        } => collector_message::Body::Settings(AgentSettings {
            scanning_enabled,
            profile: profile.name().into(),
            exempt_rules,
            schedule_cron,
            schedule_offset_s,
        }),
        Command::Scan {
            scan_id,
            profile,
            exempt_rules,
        } => collector_message::Body::ScanRequest(ScanRequest {
            scan_id,
            profile: profile.name().into(),
            exempt_rules,
        }),
        Command::Cancel { scan_id } => collector_message::Body::Cancel(CancelScan { scan_id }),
    };
    CollectorMessage { body: Some(body) }
}

fn msg(body: collector_message::Body) -> CollectorMessage {
    CollectorMessage { body: Some(body) }
}

/// The wire's rule status in the shared vocabulary; an unspecified or unknown number
/// is refused, naming it.
fn rule_status(s: i32) -> Result<rampart_report::Status, Status> {
    rampart_proto::domain::rule_status(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A stream's outbound queue. Items are boxed: a channel allocates its slots 32 at a
/// time when made, and an unboxed item (a message or a status) is about 200 bytes,
/// which every connected agent, idle or not, would hold for its stream's life.
struct Out(mpsc::Sender<Box<Result<CollectorMessage, Status>>>);

impl Out {
    async fn send(
        &self,
        m: Result<CollectorMessage, Status>,
    ) -> Result<(), mpsc::error::SendError<Box<Result<CollectorMessage, Status>>>> {
        self.0.send(Box::new(m)).await
    }
}

/// The scan a message is about, for its tracing span ("" for none).
fn scan_of(m: &AgentMessage) -> &str {
    match &m.body {
        Some(agent_message::Body::ScanStarted(s)) => &s.scan_id,
        Some(agent_message::Body::Results(b)) => &b.scan_id,
        Some(agent_message::Body::ScanFinished(f)) => &f.scan_id,
        Some(agent_message::Body::ScanFailed(f)) => &f.scan_id,
        _ => "",
    }
}

struct Session {
    app: Arc<App>,
    agent_id: String,
    /// The serial (hex) of the client certificate the stream came with.
    cert_serial: String,
    content_version: String,
}

impl Session {
    /// Handles one message; returns replies, or a status that ends the stream.
    fn handle(&mut self, m: AgentMessage, first: bool) -> Result<Vec<CollectorMessage>, Status> {
        let app = &self.app;
        let body = m
            .body
            .ok_or_else(|| Status::invalid_argument("empty message"))?;
        if first && !matches!(body, agent_message::Body::Hello(_)) {
            return Err(Status::invalid_argument("the first message must be hello"));
        }
        // Every message: a revoked agent is refused, whatever its stream.
        app.ensure_live(&self.agent_id).map_err(status_of)?;
        match body {
            agent_message::Body::Hello(h) => {
                if !first {
                    return Err(Status::invalid_argument(
                        "hello may be sent once, as the first message of a stream",
                    ));
                }
                if h.agent_id != self.agent_id {
                    return Err(Status::invalid_argument(format!(
                        "hello names agent {} but the certificate is {}",
                        echo(&h.agent_id),
                        self.agent_id
                    )));
                }
                let labels = labels_of(h.labels.clone());
                limits::hello(&HelloClaims::of_hello(&h, &labels))
                    .map_err(|e| Status::invalid_argument(format!("hello: {e}")))?;
                self.content_version = h.content_version.clone();
                app.hello(
                    &self.agent_id,
                    &HelloInfo {
                        hostname: h.hostname,
                        ip_addresses: h.ip_addresses,
                        os: h.os,
                        instance_id: h.instance_id,
                    },
                )
                .map_err(status_of)?;
                // Rule metadata is the collector's own: no catalog is ever asked for.
                let mut out = vec![command_message(app.settings_command(&self.agent_id))];
                out.extend(
                    app.pending_commands(&self.agent_id)
                        .map_err(status_of)?
                        .into_iter()
                        .map(command_message),
                );
                Ok(out)
            }
            // Rule metadata from an agent is never used (see `catalog`): ignored, so
            // that an agent of an older build that still sends one is not cut off.
            agent_message::Body::Catalog(_) => Ok(vec![]),
            agent_message::Body::ScanStarted(s) => {
                limits::scan_id(&s.scan_id).map_err(|e| Status::invalid_argument(e.0))?;
                app.scan_started(&self.agent_id, &s.scan_id)
                    .map_err(status_of)?;
                Ok(vec![])
            }
            agent_message::Body::Results(b) => {
                limits::scan_id(&b.scan_id).map_err(|e| Status::invalid_argument(e.0))?;
                if b.results.len() > limits::RESULTS_PER_BATCH {
                    app.metrics.refused(Limit::AgentMessageSize);
                    return Err(Status::invalid_argument(format!(
                        "a batch of {} results; at most {} are accepted",
                        b.results.len(),
                        limits::RESULTS_PER_BATCH
                    )));
                }
                let results = b
                    .results
                    .into_iter()
                    .map(|r| {
                        Ok(ResultRecord {
                            rule_id: r.rule_id,
                            status: rule_status(r.status)?,
                            evidence: r.evidence,
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()?;
                app.record_results(&self.agent_id, &b.scan_id, &self.content_version, &results)
                    .map_err(status_of)?;
                Ok(vec![msg(collector_message::Body::Ack(Ack {
                    scan_id: b.scan_id,
                    batch_seq: b.batch_seq,
                    finished: false,
                }))])
            }
            agent_message::Body::ScanFinished(f) => {
                limits::scan_id(&f.scan_id).map_err(|e| Status::invalid_argument(e.0))?;
                let s = app
                    .scan_finished(
                        &self.agent_id,
                        &f.scan_id,
                        f.result_count,
                        &self.content_version,
                    )
                    .map_err(status_of)?;
                tracing::info!(agent_id = %self.agent_id, scan_id = %s.id, status = ?s.status, score = ?s.score, blocked = s.blocked, "scan finished");
                Ok(vec![msg(collector_message::Body::Ack(Ack {
                    scan_id: f.scan_id,
                    batch_seq: 0,
                    finished: true,
                }))])
            }
            agent_message::Body::ScanFailed(f) => {
                limits::scan_id(&f.scan_id).map_err(|e| Status::invalid_argument(e.0))?;
                app.scan_failed(&self.agent_id, &f.scan_id, &f.reason)
                    .map_err(status_of)?;
                Ok(vec![msg(collector_message::Body::Ack(Ack {
                    scan_id: f.scan_id,
                    batch_seq: 0,
                    finished: true,
                }))])
            }
            agent_message::Body::Renew(r) => {
                match app.renew(&self.agent_id, &r.csr_der, &self.cert_serial) {
                    Ok((der, not_after_ms)) => {
                        Ok(vec![msg(collector_message::Body::Renew(RenewResponse {
                            certificate_der: der,
                            not_after_unix: not_after_ms / 1000,
                            refused: String::new(),
                        }))])
                    }
                    // Over the renewal rate: said on the stream, which goes on.
                    Err(AppError::Limited(why)) => {
                        app.metrics.refused(Limit::RenewalRate);
                        Ok(vec![msg(collector_message::Body::Renew(RenewResponse {
                            certificate_der: vec![],
                            not_after_unix: 0,
                            refused: why,
                        }))])
                    }
                    Err(e) => Err(status_of(e)),
                }
            }
        }
    }
}

async fn run_session(
    app: Arc<App>,
    agent_id: String,
    cert_serial: String,
    mut inbound: Streaming<AgentMessage>,
    out: Out,
) {
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Box<Command>>(64);
    let end = Arc::new(StreamEnd::default());
    let resync = Arc::new(AtomicBool::new(false));
    let mut session = Session {
        app: app.clone(),
        agent_id: agent_id.clone(),
        cert_serial,
        content_version: String::new(),
    };
    let max_rate = app.config.max_messages_per_sec;
    let mut first = true;
    // When this stream was recorded as this collector's (see App::record_stream).
    let mut recorded: Option<i64> = None;
    loop {
        tokio::select! {
            m = inbound.message() => {
                let m = match m {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        // A message that cannot be decoded (too large, not protobuf) is
                        // junk: say so; a cancelled stream is the agent going away.
                        tracing::info!(%agent_id, error = %e, "agent stream ended");
                        if e.code() == tonic::Code::OutOfRange {
                            app.metrics.refused(Limit::AgentMessageSize);
                        }
                        if e.code() != tonic::Code::Cancelled {
                            app.metrics.streams_rejected.inc();
                            let _ = out.send(Err(Status::invalid_argument(format!("unreadable message: {}", e.message())))).await;
                        }
                        break;
                    }
                };
                // The budget is the agent's, over all its streams.
                if !app.allow_message(&agent_id) {
                    app.metrics.refused(Limit::AgentMessageRate);
                    let _ = out.send(Err(Status::resource_exhausted(format!("agent {agent_id} sent more than {max_rate} messages per second")))).await;
                    break;
                }
                let was_first = first;
                first = false;
                // A result batch's acknowledgement is timed from its arrival.
                let batch = matches!(m.body, Some(agent_message::Body::Results(_)))
                    .then(std::time::Instant::now);
                let span = tracing::info_span!("agent_message", scan_id = %echo(scan_of(&m)));
                // Storage syncs to disk: on the ingest pool, whose rounds share a sync;
                // the replies come once the message's writes are durable.
                let (s, r) = match app.ingest(move || { let r = span.in_scope(|| session.handle(m, was_first)); (session, r) }).await {
                    Ok(x) => x,
                    Err(crate::ingest::Failed::Sync(e)) => {
                        tracing::error!(%agent_id, error = %e, "the store cannot sync: nothing acknowledged");
                        let _ = out.send(Err(Status::unavailable("the collector cannot store data right now"))).await;
                        break;
                    }
                    Err(crate::ingest::Failed::Lost) => {
                        let _ = out.send(Err(Status::internal("handler failed"))).await;
                        break;
                    }
                };
                session = s;
                match r {
                    Ok(replies) => {
                        if was_first {
                            let since = match app.attach(&agent_id, cmd_tx.clone(), end.clone(), resync.clone()) {
                                Ok(since) => since,
                                Err(e) => {
                                    let _ = out.send(Err(status_of(e))).await;
                                    break;
                                }
                            };
                            let (a, id) = (app.clone(), agent_id.clone());
                            recorded = tokio::task::spawn_blocking(move || a.record_stream(&id, since)).await.ok().map(|()| since);
                        }
                        for reply in replies {
                            if out.send(Ok(reply)).await.is_err() {
                                break;
                            }
                        }
                        if let Some(t) = batch {
                            app.metrics.batch_acknowledged(t.elapsed());
                        }
                    }
                    Err(status) => {
                        app.metrics.streams_rejected.inc();
                        tracing::warn!(%agent_id, code = ?status.code(), message = status.message(), "agent stream rejected");
                        let _ = out.send(Err(status)).await;
                        break;
                    }
                }
            }
            Some(cmd) = cmd_rx.recv() => {
                if out.send(Ok(command_message(*cmd))).await.is_err() {
                    break;
                }
            }
            _ = end.notify.notified() => {
                let why = end.reason().unwrap_or_else(|| "the stream was ended".into());
                tracing::info!(%agent_id, reason = %why, "agent stream ended by the collector");
                let _ = out.send(Err(Status::permission_denied(why))).await;
                break;
            }
        }
        // Commands that did not fit in the queue: the pending scans are re-read.
        if resync.swap(false, Ordering::SeqCst) {
            let (app2, id2) = (app.clone(), agent_id.clone());
            if let Ok(Ok(cmds)) =
                tokio::task::spawn_blocking(move || app2.pending_commands(&id2)).await
            {
                for c in cmds {
                    if out.send(Ok(command_message(c))).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    app.detach(&agent_id, &cmd_tx);
    if let Some(since) = recorded {
        let _ = tokio::task::spawn_blocking(move || app.record_stream_end(&agent_id, since)).await;
    }
}

#[tonic::async_trait]
impl AgentChannel for ChannelService {
    type ConnectStream = Pin<Box<dyn Stream<Item = Result<CollectorMessage, Status>> + Send>>;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let certs = req
            .peer_certs()
            .ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let agent_id = certs
            .first()
            .and_then(|c| agent_id_of(c))
            .ok_or_else(|| Status::unauthenticated("the client certificate names no agent"))?;
        let cert_serial = certs
            .first()
            .and_then(|c| crate::ca::serial_of(c))
            .unwrap_or_default();
        let (app, id) = (self.app.clone(), agent_id.clone());
        let agent = tokio::task::spawn_blocking(move || app.agent(&id))
            .await
            .map_err(|_| Status::internal("lookup failed"))?
            .map_err(|_| Status::unauthenticated(format!("agent {agent_id} is not enrolled")))?;
        if agent.revoked || self.app.is_revoked(&agent_id) {
            return Err(Status::permission_denied(format!(
                "agent {agent_id} is revoked"
            )));
        }
        // The agent has its renewed certificate: the ones it replaced are refused.
        if agent.replaced_certs.iter().any(|c| !c.refused) {
            let (app, serial) = (self.app.clone(), cert_serial.clone());
            let seen = tokio::task::spawn_blocking(move || app.seen_with(&agent, &serial)).await;
            if let Ok(Err(e)) = seen {
                tracing::error!(%agent_id, error = %e, "cannot refuse the certificates a renewal replaced");
            }
        }
        let (tx, rx) = mpsc::channel::<Box<Result<CollectorMessage, Status>>>(64);
        let span = tracing::info_span!("agent_session", agent_id = %agent_id);
        tokio::spawn(
            run_session(
                self.app.clone(),
                agent_id,
                cert_serial,
                req.into_inner(),
                Out(tx),
            )
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(|m| *m))))
    }
}

#[cfg(test)]
mod tests;
