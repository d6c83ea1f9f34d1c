//! The stream protocol as a table: for each story, the agent's messages in order and
//! what the collector answers to each — its replies, or the status that ends the
//! stream — then what the store holds afterwards. The session handler runs without
//! a network, on a sled store in a temporary directory.

use std::sync::Arc;

use rampart_proto::v1::{
    agent_message, collector_message, AgentMessage, CollectorMessage, Hello, RenewRequest,
    ResultBatch, RuleCatalog, RuleResult, RuleStatus, ScanFailed, ScanFinished, ScanStarted,
};
use tonic::Code;

use super::Session;
use rampart_report::Status;

use crate::app::tests::{agent, app_with, full_results};
use crate::app::App;
use crate::config::Config;
use crate::store::ScanStatus;

const CONTENT: &str = "debian-12@test";

/// What the collector answers to one message.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Replies of these kinds, in this order.
    Replies(&'static [Reply]),
    /// The stream ends with this code and a message containing the text.
    Ends(Code, &'static str),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply {
    Settings,
    ScanRequest,
    Ack { finished: bool },
    RenewRefused,
}

fn kind(m: &CollectorMessage) -> Reply {
    match &m.body {
        Some(collector_message::Body::Settings(_)) => Reply::Settings,
        Some(collector_message::Body::ScanRequest(_)) => Reply::ScanRequest,
        Some(collector_message::Body::Ack(a)) => Reply::Ack {
            finished: a.finished,
        },
        Some(collector_message::Body::Renew(r)) if !r.refused.is_empty() => Reply::RenewRefused,
        other => panic!("unexpected reply {other:?}"),
    }
}

/// The scans a story's messages talk about: the agent's own pending scan and one
/// of another agent's.
struct Ctx {
    app: Arc<App>,
    scan: String,
    other_scan: String,
}

impl Ctx {
    fn new(dir: &std::path::Path) -> Ctx {
        let app = Arc::new(app_with(dir, Config::default().results_retention_days));
        agent(&app, "ag-1", None, "i-1");
        agent(&app, "ag-2", None, "i-2");
        let scan = app
            .create_scan("ag-1", "manual", "test")
            .unwrap()
            .unwrap()
            .id;
        let other_scan = app
            .create_scan("ag-2", "manual", "test")
            .unwrap()
            .unwrap()
            .id;
        Ctx {
            app,
            scan,
            other_scan,
        }
    }

    /// One result per rule of the scan's profile, as an honest agent reports them
    /// (`app::tests::full_results`), each with a line of evidence.
    fn results(&self, scan: &str) -> Vec<RuleResult> {
        let s = self.app.store.scan(scan).unwrap().unwrap();
        full_results(&self.app, &s)
            .into_iter()
            .map(|r| RuleResult {
                status: match r.status {
                    Status::Pass => RuleStatus::Pass,
                    Status::NotChecked => RuleStatus::NotChecked,
                    other => unreachable!("an honest agent's results are never {other:?}"),
                } as i32,
                evidence: vec![format!("{} checked", r.rule_id)],
                rule_id: r.rule_id,
            })
            .collect()
    }

    fn scan_status(&self, scan: &str) -> (ScanStatus, Option<String>) {
        let s = self.app.store.scan(scan).unwrap().unwrap();
        (s.status, s.failure_reason)
    }
}

fn m(body: agent_message::Body) -> AgentMessage {
    AgentMessage { body: Some(body) }
}

fn hello(agent_id: &str, content: &str) -> AgentMessage {
    m(agent_message::Body::Hello(Hello {
        agent_id: agent_id.into(),
        hostname: "web-1".into(),
        ip_addresses: vec!["10.0.0.5".into()],
        provider: "aws".into(),
        instance_id: "i-1".into(),
        os: "Debian GNU/Linux 12".into(),
        agent_version: "0.1.0".into(),
        content_version: content.into(),
        ..Default::default()
    }))
}

fn started(scan: &str) -> AgentMessage {
    m(agent_message::Body::ScanStarted(ScanStarted {
        scan_id: scan.into(),
        ..Default::default()
    }))
}

fn batch(scan: &str, results: Vec<RuleResult>) -> AgentMessage {
    m(agent_message::Body::Results(ResultBatch {
        scan_id: scan.into(),
        batch_seq: 1,
        results,
    }))
}

fn finished(scan: &str, count: usize) -> AgentMessage {
    m(agent_message::Body::ScanFinished(ScanFinished {
        scan_id: scan.into(),
        result_count: count as u32,
        ..Default::default()
    }))
}

fn one_result(status: i32) -> Vec<RuleResult> {
    vec![RuleResult {
        rule_id: "1.1.1.1".into(),
        status,
        evidence: vec![],
    }]
}

const GREETED: Want = Want::Replies(&[Reply::Settings, Reply::ScanRequest]);
const NOTHING: Want = Want::Replies(&[]);
const ACK: Want = Want::Replies(&[Reply::Ack { finished: false }]);
const DONE: Want = Want::Replies(&[Reply::Ack { finished: true }]);

/// A story: its messages (made from the context) with the answer each must get, and
/// what the agent's scan must be afterwards (`None`: still pending, untouched).
struct Story {
    name: &'static str,
    steps: fn(&Ctx) -> Vec<(AgentMessage, Want)>,
    scan_after: Option<(ScanStatus, &'static str)>,
}

fn stories() -> Vec<Story> {
    vec![
        Story {
            name: "a message with no body",
            steps: |_| {
                vec![(
                    AgentMessage { body: None },
                    Want::Ends(Code::InvalidArgument, "empty message"),
                )]
            },
            scan_after: None,
        },
        Story {
            name: "results before hello",
            steps: |c| {
                vec![(
                    batch(&c.scan, c.results(&c.scan)),
                    Want::Ends(Code::InvalidArgument, "first message must be hello"),
                )]
            },
            scan_after: None,
        },
        Story {
            name: "hello naming another agent than the certificate",
            steps: |_| {
                vec![(
                    hello("ag-2", CONTENT),
                    Want::Ends(
                        Code::InvalidArgument,
                        "hello names agent ag-2 but the certificate is ag-1",
                    ),
                )]
            },
            scan_after: None,
        },
        Story {
            name: "hello with an address that is not one",
            steps: |_| {
                let mut h = hello("ag-1", CONTENT);
                if let Some(agent_message::Body::Hello(h)) = &mut h.body {
                    h.ip_addresses = vec!["10.0.0.5; rm -rf /".into()];
                }
                vec![(h, Want::Ends(Code::InvalidArgument, "is not an IP address"))]
            },
            scan_after: None,
        },
        Story {
            name: "hello twice",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        hello("ag-1", CONTENT),
                        Want::Ends(Code::InvalidArgument, "hello may be sent once"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a whole scan: started, one batch, finished",
            steps: |c| {
                let r = c.results(&c.scan);
                let n = r.len();
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (started(&c.scan), NOTHING),
                    (batch(&c.scan, r), ACK),
                    (finished(&c.scan, n), DONE),
                ]
            },
            scan_after: Some((ScanStatus::Completed, "")),
        },
        Story {
            name: "a batch resent after the scan finished is acknowledged and changes nothing",
            steps: |c| {
                let r = c.results(&c.scan);
                let n = r.len();
                let mut failing = r.clone();
                for x in &mut failing {
                    if x.status == RuleStatus::Pass as i32 {
                        x.status = RuleStatus::Fail as i32;
                    }
                }
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (batch(&c.scan, r), ACK),
                    (finished(&c.scan, n), DONE),
                    (batch(&c.scan, failing), ACK),
                    (finished(&c.scan, n), DONE),
                ]
            },
            scan_after: Some((ScanStatus::Completed, "")),
        },
        Story {
            name: "a finish that claims more results than arrived",
            steps: |c| {
                let r = c.results(&c.scan);
                let n = r.len();
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (batch(&c.scan, r), ACK),
                    (finished(&c.scan, n + 5), DONE),
                ]
            },
            scan_after: Some((ScanStatus::Failed, "results but")),
        },
        Story {
            name: "a finish with a rule of the profile missing",
            steps: |c| {
                let mut r = c.results(&c.scan);
                r.pop();
                let n = r.len();
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (batch(&c.scan, r), ACK),
                    (finished(&c.scan, n), DONE),
                ]
            },
            scan_after: Some((ScanStatus::Failed, "the scan covers")),
        },
        Story {
            name: "a rule status the protocol does not define",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        batch(&c.scan, one_result(99)),
                        Want::Ends(Code::InvalidArgument, "rule status 99 is not a known value"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a rule status left unspecified",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        batch(&c.scan, one_result(0)),
                        Want::Ends(
                            Code::InvalidArgument,
                            "rule status 0 (unspecified) is not a known value",
                        ),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a negative rule status",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        batch(&c.scan, one_result(-1)),
                        Want::Ends(Code::InvalidArgument, "rule status -1 is not a known value"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a batch over the bound",
            steps: |c| {
                let big = (0..=crate::limits::RESULTS_PER_BATCH)
                    .map(|i| RuleResult {
                        rule_id: format!("9.{i}"),
                        status: RuleStatus::Pass as i32,
                        evidence: vec![],
                    })
                    .collect();
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        batch(&c.scan, big),
                        Want::Ends(Code::InvalidArgument, "are accepted"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a scan ID over the bound",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        started(&"s".repeat(10_000)),
                        Want::Ends(Code::InvalidArgument, "the scan ID"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "results for another agent's scan",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        batch(&c.other_scan, c.results(&c.other_scan)),
                        Want::Ends(Code::InvalidArgument, "belongs to another agent"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "another agent's scan finished",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        finished(&c.other_scan, 0),
                        Want::Ends(Code::InvalidArgument, "belongs to another agent"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a scan nobody asked for",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        started("sc-made-up"),
                        Want::Ends(Code::InvalidArgument, "unknown scan sc-made-up"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name:
                "content this collector does not know fails the scan, and the batch is acknowledged",
            steps: |c| {
                vec![
                    (hello("ag-1", "nobody@1"), GREETED),
                    (batch(&c.scan, c.results(&c.scan)), ACK),
                ]
            },
            scan_after: Some((ScanStatus::Failed, "is no benchmark this collector knows")),
        },
        Story {
            name: "a rule status the rule cannot have fails the scan",
            steps: |c| {
                let mut r = c.results(&c.scan);
                let manual = r
                    .iter_mut()
                    .find(|x| x.status == RuleStatus::NotChecked as i32)
                    .expect("a manual rule");
                manual.status = RuleStatus::Pass as i32;
                vec![(hello("ag-1", CONTENT), GREETED), (batch(&c.scan, r), ACK)]
            },
            scan_after: Some((ScanStatus::Failed, "cannot have status pass")),
        },
        Story {
            name: "the agent reports its scan failed",
            steps: |c| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        m(agent_message::Body::ScanFailed(ScanFailed {
                            scan_id: c.scan.clone(),
                            reason: "disk gone".into(),
                        })),
                        DONE,
                    ),
                ]
            },
            scan_after: Some((ScanStatus::Failed, "the agent reported: disk gone")),
        },
        Story {
            name: "a rule catalog from an older agent is ignored",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        m(agent_message::Body::Catalog(RuleCatalog::default())),
                        NOTHING,
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a renewal request over the size bound",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        m(agent_message::Body::Renew(RenewRequest {
                            csr_der: vec![0x30; 1 << 20],
                        })),
                        Want::Ends(Code::InvalidArgument, "the CSR is 1048576 bytes"),
                    ),
                ]
            },
            scan_after: None,
        },
        Story {
            name: "a renewal whose request is not a CSR",
            steps: |_| {
                vec![
                    (hello("ag-1", CONTENT), GREETED),
                    (
                        m(agent_message::Body::Renew(RenewRequest {
                            csr_der: b"not a CSR".to_vec(),
                        })),
                        Want::Ends(Code::InvalidArgument, ""),
                    ),
                ]
            },
            scan_after: None,
        },
    ]
}

/// Runs a story's messages through one session; stops at the first status, as the
/// stream does.
fn run(story: &Story, c: &Ctx) -> Vec<Want> {
    let mut session = Session {
        app: c.app.clone(),
        agent_id: "ag-1".into(),
        cert_serial: "01".into(),
        content_version: String::new(),
    };
    let mut got = Vec::new();
    for (i, (msg, _)) in (story.steps)(c).into_iter().enumerate() {
        match session.handle(msg, i == 0) {
            Ok(replies) => got.push(Want::Replies(leak(replies.iter().map(kind).collect()))),
            Err(status) => {
                got.push(Want::Ends(
                    status.code(),
                    leak_str(status.message().to_string()),
                ));
                break;
            }
        }
    }
    got
}

fn leak(v: Vec<Reply>) -> &'static [Reply] {
    Box::leak(v.into_boxed_slice())
}

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn every_story_gets_the_answers_the_protocol_promises() {
    for story in stories() {
        let d = tempfile::tempdir().unwrap();
        let c = Ctx::new(d.path());
        let want: Vec<Want> = (story.steps)(&c).into_iter().map(|(_, w)| w).collect();
        let got = run(&story, &c);
        assert_eq!(got.len(), want.len(), "{}: answers {got:?}", story.name);
        for (g, w) in got.iter().zip(&want) {
            match (g, w) {
                (Want::Ends(gc, gm), Want::Ends(wc, wm)) => assert!(
                    gc == wc && gm.contains(wm),
                    "{}: ended with {gc:?} `{gm}`, want {wc:?} containing `{wm}`",
                    story.name
                ),
                _ => assert_eq!(g, w, "{}", story.name),
            }
        }
        let (status, reason) = c.scan_status(&c.scan);
        match story.scan_after {
            None => assert_eq!(status, ScanStatus::Pending, "{}: {reason:?}", story.name),
            Some((want, why)) => {
                assert_eq!(status, want, "{}: {reason:?}", story.name);
                assert!(
                    reason.as_deref().unwrap_or("").contains(why),
                    "{}: reason {reason:?}, want it to contain `{why}`",
                    story.name
                );
            }
        }
        // Another agent's scan is never touched by this agent's stream.
        assert_eq!(
            c.scan_status(&c.other_scan).0,
            ScanStatus::Pending,
            "{}",
            story.name
        );
    }
}

#[test]
fn a_revoked_agent_is_refused_on_its_next_message() {
    let d = tempfile::tempdir().unwrap();
    let c = Ctx::new(d.path());
    let app = c.app.clone();
    let mut session = Session {
        app: app.clone(),
        agent_id: "ag-1".into(),
        cert_serial: "01".into(),
        content_version: String::new(),
    };
    session.handle(hello("ag-1", CONTENT), true).unwrap();
    app.revoke_agent("ag-1", "admin").unwrap();
    let status = session.handle(started(&c.scan), false).unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("agent ag-1 is revoked"),
        "{}",
        status.message()
    );
    assert_eq!(c.scan_status(&c.scan).0, ScanStatus::Pending);
}
