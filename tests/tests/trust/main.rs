//! The collector's trust boundary, attacked the way the security review did: by
//! anyone on the network (Enroll) and by the owner of one enrolled VM, who holds its
//! agent key and can send any message on its stream. Each test drives a real
//! collector over real mutual TLS with hand-made messages and sees the attack
//! refused, with a clear status, while the collector keeps serving.

mod enrollment;
mod messages;

use std::path::Path;
use std::time::Duration;

use rampart_agent::daemon::{new_key_and_csr, tls};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, CollectorMessage, EnrollRequest, Hello,
    RenewRequest, ResultBatch, RuleCatalog, RuleInfo, RuleResult, ScanFailed, ScanFinished,
    ScanStarted,
};
use rampart_tests::cluster::{wait_for, Agent, Collector};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// What a hand-made Enroll sends.
#[derive(Clone, Default)]
struct Claims {
    token: String,
    hostname: String,
    instance_id: String,
    labels: Vec<(String, String)>,
}

/// An agent identity obtained with a hand-made Enroll.
struct Raw {
    id: String,
    cert: Vec<u8>,
    key: Vec<u8>,
}

async fn enroll_with(
    c: &Collector,
    claims: &Claims,
    key_csr: Option<(Vec<u8>, Vec<u8>)>,
    csr_override: Option<Vec<u8>>,
) -> Result<Raw, tonic::Status> {
    let (key, csr) = key_csr.unwrap_or_else(|| new_key_and_csr("raw").unwrap());
    let cfg = tls::client_config(&c.fingerprint, None).unwrap();
    let ch = tls::channel(&c.url(), cfg).unwrap();
    let r = EnrollmentClient::new(ch)
        .enroll(EnrollRequest {
            token: claims.token.clone(),
            csr_der: csr_override.unwrap_or(csr),
            hostname: claims.hostname.clone(),
            labels: claims.labels.iter().cloned().collect(),
            instance_id: claims.instance_id.clone(),
            provider: "aws".into(),
            identity_document: None,
        })
        .await?
        .into_inner();
    Ok(Raw {
        id: r.agent_id,
        cert: r.certificate_der,
        key,
    })
}

/// A hand-made Enroll with a fresh key: token, host name and instance ID only.
fn enroll(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    token: &str,
    host: &str,
    instance: &str,
) -> Result<Raw, tonic::Status> {
    rt.block_on(enroll_with(c, &claims(token, host, instance), None, None))
}

fn claims(token: &str, host: &str, instance: &str) -> Claims {
    Claims {
        token: token.into(),
        hostname: host.into(),
        instance_id: instance.into(),
        labels: vec![],
    }
}

/// One agent stream opened by hand.
struct Stream {
    tx: mpsc::Sender<AgentMessage>,
    rx: tonic::Streaming<CollectorMessage>,
}

fn msg(b: agent_message::Body) -> AgentMessage {
    AgentMessage { body: Some(b) }
}

fn hello(raw: &Raw, instance: &str, labels: &[(&str, &str)]) -> AgentMessage {
    msg(agent_message::Body::Hello(Hello {
        agent_id: raw.id.clone(),
        hostname: "raw-host".into(),
        instance_id: instance.into(),
        content_version: rampart_agent::content::content_version("debian-12"),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }))
}

impl Stream {
    async fn open(c: &Collector, raw: &Raw, first: AgentMessage) -> Result<Stream, tonic::Status> {
        let cfg = tls::client_config(
            &c.fingerprint,
            Some((vec![raw.cert.clone()], raw.key.clone())),
        )
        .unwrap();
        let ch = tls::channel(&c.url(), cfg).unwrap();
        let (tx, rx) = mpsc::channel(1024);
        tx.send(first).await.unwrap();
        let rx = AgentChannelClient::new(ch)
            .connect(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Stream { tx, rx })
    }

    async fn send(&self, m: AgentMessage) {
        let _ = self.tx.send(m).await;
    }

    /// The next message, or the status that ended the stream; `None` on a timeout.
    async fn next(&mut self, secs: u64) -> Option<Result<CollectorMessage, tonic::Status>> {
        match tokio::time::timeout(Duration::from_secs(secs), self.rx.message()).await {
            Err(_) => None,
            Ok(Ok(Some(m))) => Some(Ok(m)),
            Ok(Ok(None)) => Some(Err(tonic::Status::ok("closed without a status"))),
            Ok(Err(s)) => Some(Err(s)),
        }
    }

    /// Reads until the stream ends; its status.
    async fn status(&mut self, secs: u64) -> tonic::Status {
        loop {
            match self.next(secs).await {
                None => return tonic::Status::deadline_exceeded("the stream stayed open"),
                Some(Ok(_)) => continue,
                Some(Err(s)) => return s,
            }
        }
    }

    /// Reads messages for `secs` (or until the stream ends).
    async fn drain(&mut self, secs: u64) -> Vec<collector_message::Body> {
        let mut out = vec![];
        while let Some(Ok(m)) = self.next(secs).await {
            out.extend(m.body);
        }
        out
    }
}

fn audit_total(c: &Collector) -> u64 {
    c.admin("GET", "/api/v1/audit?per_page=1", None)["total"]
        .as_u64()
        .unwrap()
}

fn metrics(c: &Collector) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://{}/metrics", c.rest)])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An automated level-1 server rule of Debian 12 and its metadata.
fn some_rule() -> &'static rampart_agent::content::Rule {
    let b = rampart_agent::content::benchmark("debian-12")
        .unwrap()
        .unwrap();
    let p = rampart_agent::model::Profile::parse("level1-server").unwrap();
    b.rules
        .iter()
        .find(|r| r.automated && r.in_profile(p) && r.severity.as_str() == "low")
        .or_else(|| b.rules.iter().find(|r| r.automated && r.in_profile(p)))
        .unwrap()
}
