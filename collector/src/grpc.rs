//! The agents' gRPC services: enrollment and the per-agent stream. Protobuf types
//! are converted to the domain here, at the edge; junk is answered with
//! INVALID_ARGUMENT and the stream is closed, without affecting other agents.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_proto::v1::agent_channel_server::AgentChannel;
use rampart_proto::v1::enrollment_server::Enrollment;
use rampart_proto::v1::{
    agent_message, collector_message, Ack, AgentMessage, AgentSettings, CancelScan, CatalogWanted,
    CollectorMessage, EnrollRequest, EnrollResponse, RenewResponse, RuleStatus, ScanRequest,
    Severity,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::app::{App, AppError, Catalog, CatalogRule, Command};
use crate::store::ResultRecord;

fn status_of(e: AppError) -> Status {
    match e {
        AppError::Refused(m) => Status::permission_denied(m),
        AppError::Invalid(m) => Status::invalid_argument(m),
        AppError::Conflict(m) => Status::failed_precondition(m),
        AppError::NotFound(m) => Status::not_found(format!("{m} not found")),
        AppError::Ca(e) => Status::invalid_argument(e.to_string()),
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
        let peer = req
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        let r = req.into_inner();
        let labels: BTreeMap<String, String> = r.labels.into_iter().collect();
        let app = self.app.clone();
        let enrolled = tokio::task::spawn_blocking(move || {
            app.enroll(&r.token, &r.csr_der, &r.hostname, labels, &peer)
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
            profile,
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
            profile,
            exempt_rules,
        }),
        Command::Cancel { scan_id } => collector_message::Body::Cancel(CancelScan { scan_id }),
    };
    CollectorMessage { body: Some(body) }
}

fn msg(body: collector_message::Body) -> CollectorMessage {
    CollectorMessage { body: Some(body) }
}

fn status_name(s: i32) -> Result<&'static str, Status> {
    Ok(match RuleStatus::try_from(s) {
        Ok(RuleStatus::Pass) => "pass",
        Ok(RuleStatus::Fail) => "fail",
        Ok(RuleStatus::Error) => "error",
        Ok(RuleStatus::NotApplicable) => "not_applicable",
        Ok(RuleStatus::NotChecked) => "not_checked",
        Ok(RuleStatus::Exempted) => "exempted",
        _ => {
            return Err(Status::invalid_argument(format!(
                "rule status {s} is not valid"
            )))
        }
    })
}

fn severity_name(s: i32) -> &'static str {
    match Severity::try_from(s) {
        Ok(Severity::Critical) => "critical",
        Ok(Severity::High) => "high",
        Ok(Severity::Low) => "low",
        _ => "medium",
    }
}

type Out = mpsc::Sender<Result<CollectorMessage, Status>>;

struct Session {
    app: Arc<App>,
    agent_id: String,
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
        match body {
            agent_message::Body::Hello(h) => {
                if h.agent_id != self.agent_id {
                    return Err(Status::invalid_argument(format!(
                        "hello names agent {} but the certificate is {}",
                        h.agent_id, self.agent_id
                    )));
                }
                if h.hostname.len() > 255 || h.ip_addresses.len() > 64 || h.labels.len() > 32 {
                    return Err(Status::invalid_argument("hello exceeds its size limits"));
                }
                self.content_version = h.content_version.clone();
                app.touch(&self.agent_id, |a| {
                    a.hostname = h.hostname.clone();
                    a.ip_addresses = h.ip_addresses.clone();
                    a.provider = h.provider.clone();
                    a.instance_id = h.instance_id.clone();
                    a.os = h.os.clone();
                    for (k, v) in &h.labels {
                        a.labels.insert(k.clone(), v.clone());
                    }
                })
                .map_err(status_of)?;
                let mut out = Vec::new();
                if !app.has_catalog(&h.content_version).map_err(status_of)? {
                    out.push(msg(collector_message::Body::CatalogWanted(CatalogWanted {
                        content_version: h.content_version,
                    })));
                }
                out.push(command_message(app.settings_command(&self.agent_id)));
                out.extend(
                    app.pending_commands(&self.agent_id)
                        .map_err(status_of)?
                        .into_iter()
                        .map(command_message),
                );
                Ok(out)
            }
            agent_message::Body::Catalog(c) => {
                if c.rules.len() > 5000 {
                    return Err(Status::invalid_argument("catalog has too many rules"));
                }
                let rules = c
                    .rules
                    .into_iter()
                    .map(|r| {
                        (
                            r.id,
                            CatalogRule {
                                title: r.title,
                                section: r.section,
                                description: r.description,
                                remediation: r.remediation,
                                severity: severity_name(r.severity).into(),
                                level: r.level,
                                automated: r.automated,
                            },
                        )
                    })
                    .collect();
                app.put_catalog(Catalog {
                    content_version: c.content_version,
                    benchmark_id: c.benchmark_id,
                    benchmark_title: c.benchmark_title,
                    benchmark_version: c.benchmark_version,
                    rules,
                })
                .map_err(status_of)?;
                Ok(vec![])
            }
            agent_message::Body::ScanStarted(s) => {
                app.scan_started(&self.agent_id, &s.scan_id)
                    .map_err(status_of)?;
                Ok(vec![])
            }
            agent_message::Body::Results(b) => {
                let results = b
                    .results
                    .into_iter()
                    .map(|r| {
                        Ok(ResultRecord {
                            rule_id: r.rule_id,
                            status: status_name(r.status)?.into(),
                            evidence: r.evidence,
                        })
                    })
                    .collect::<Result<Vec<_>, Status>>()?;
                app.record_results(&self.agent_id, &b.scan_id, &results)
                    .map_err(status_of)?;
                Ok(vec![msg(collector_message::Body::Ack(Ack {
                    scan_id: b.scan_id,
                    batch_seq: b.batch_seq,
                    finished: false,
                }))])
            }
            agent_message::Body::ScanFinished(f) => {
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
                app.scan_failed(&self.agent_id, &f.scan_id, &f.reason)
                    .map_err(status_of)?;
                Ok(vec![msg(collector_message::Body::Ack(Ack {
                    scan_id: f.scan_id,
                    batch_seq: 0,
                    finished: true,
                }))])
            }
            agent_message::Body::Renew(r) => {
                let (der, not_after_ms) =
                    app.renew(&self.agent_id, &r.csr_der).map_err(status_of)?;
                Ok(vec![msg(collector_message::Body::Renew(RenewResponse {
                    certificate_der: der,
                    not_after_unix: not_after_ms / 1000,
                }))])
            }
        }
    }
}

async fn run_session(
    app: Arc<App>,
    agent_id: String,
    mut inbound: Streaming<AgentMessage>,
    out: Out,
) {
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(64);
    let mut session = Session {
        app: app.clone(),
        agent_id: agent_id.clone(),
        content_version: String::new(),
    };
    let max_rate = app.config.max_messages_per_sec;
    let mut window = Instant::now();
    let mut count = 0u32;
    let mut first = true;
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
                        if e.code() != tonic::Code::Cancelled {
                            app.metrics.streams_rejected_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let _ = out.send(Err(Status::invalid_argument(format!("unreadable message: {}", e.message())))).await;
                        }
                        break;
                    }
                };
                if window.elapsed() > Duration::from_secs(1) {
                    window = Instant::now();
                    count = 0;
                }
                count += 1;
                if count > max_rate {
                    let _ = out.send(Err(Status::resource_exhausted(format!("more than {max_rate} messages per second")))).await;
                    break;
                }
                let app2 = app.clone();
                let was_first = first;
                first = false;
                // Storage syncs to disk: keep it off the async workers.
                let (s, r) = tokio::task::spawn_blocking(move || { let r = session.handle(m, was_first); (session, r) })
                    .await
                    .unwrap_or_else(|_| (Session { app: app2, agent_id: agent_id.clone(), content_version: String::new() }, Err(Status::internal("handler failed"))));
                session = s;
                match r {
                    Ok(replies) => {
                        if was_first {
                            app.attach(&agent_id, cmd_tx.clone());
                        }
                        for reply in replies {
                            if out.send(Ok(reply)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(status) => {
                        app.metrics.streams_rejected_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(%agent_id, code = ?status.code(), message = status.message(), "agent stream rejected");
                        let _ = out.send(Err(status)).await;
                        break;
                    }
                }
            }
            Some(cmd) = cmd_rx.recv() => {
                if out.send(Ok(command_message(cmd))).await.is_err() {
                    break;
                }
            }
        }
    }
    app.detach(&agent_id, &cmd_tx);
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
        let agent = self
            .app
            .agent(&agent_id)
            .map_err(|_| Status::unauthenticated(format!("agent {agent_id} is not enrolled")))?;
        if agent.revoked {
            return Err(Status::permission_denied(format!(
                "agent {agent_id} is revoked"
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run_session(
            self.app.clone(),
            agent_id,
            req.into_inner(),
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
