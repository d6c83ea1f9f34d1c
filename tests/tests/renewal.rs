//! Renewing an agent's certificate revokes the one it replaces (issue 10 #18): once
//! the real agent daemon has renewed and used its new certificate, its old certificate
//! and key are refused at the TLS handshake, also after the collector restarts, while
//! the new one is accepted. Until the agent is seen with the new one, the one it
//! renewed with stays accepted: the renewal's answer may never have reached it.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rampart_agent::daemon::{tls, Identity};
use rampart_proto::v1::agent_channel_client::AgentChannelClient;
use rampart_proto::v1::{agent_message, collector_message, AgentMessage, Hello, RenewRequest};
use rampart_tests::cluster::{wait_for, wait_for_or, Agent, Collector};
use tokio_stream::wrappers::ReceiverStream;

fn root(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// Opens a stream with `id`'s certificate and key and says hello: `Ok` once the
/// collector answers, else the error (a refused handshake, a status).
async fn hello_with(c: &Collector, id: &Identity) -> Result<(), String> {
    let cfg = tls::client_config(
        &c.fingerprint,
        Some((vec![id.cert_der.clone()], id.key_der.clone())),
    )
    .map_err(|e| e.to_string())?;
    let ch = tls::channel(&c.url(), cfg).map_err(|e| e.to_string())?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            agent_id: id.state.agent_id.clone(),
            hostname: "renewal".into(),
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let exchange = async {
        let mut inbound = AgentChannelClient::new(ch)
            .connect(ReceiverStream::new(rx))
            .await
            .map_err(|s| format!("{s:?}"))?
            .into_inner();
        match inbound.message().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err("stream closed without an answer".to_string()),
            Err(s) => Err(format!("{s:?}")),
        }
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
}

/// What the TLS layer says to `id`'s certificate (the server's alert), if anything.
async fn tls_refusal(c: &Collector, id: &Identity) -> String {
    let cfg = tls::client_config(
        &c.fingerprint,
        Some((vec![id.cert_der.clone()], id.key_der.clone())),
    )
    .unwrap();
    tls::diagnose(&c.url(), cfg)
        .await
        .unwrap_or_else(|| "no TLS refusal".into())
}

#[test]
fn a_renewed_agents_old_certificate_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let data = t.path().join("collector");
    let mut c = Collector::start(&data, None, None);
    let mut a = Agent::new(&t.path().join("agent"));
    let tok = c.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    let state = a.dir.join("state");
    let old = Identity::load(&state).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The enrolled certificate works before the renewal.
    rt.block_on(hello_with(&c, &old))
        .expect("the enrolled certificate is accepted");

    // The daemon renews at once when told to renew with ten years left.
    let mut cfg = fs::read_to_string(a.config()).unwrap();
    cfg = cfg
        .lines()
        .filter(|l| !l.starts_with("renew_before_secs"))
        .map(|l| format!("{l}\n"))
        .collect();
    // Top-level keys must come before any table.
    let cfg = format!("renew_before_secs = 315360000\n{cfg}");
    fs::write(a.config(), cfg).unwrap();
    a.run(&[]);
    let new = wait_for_or(
        "the agent to save a renewed certificate",
        60,
        || {
            let id = Identity::load(&state).ok()?;
            (id.cert_der != old.cert_der).then_some(id)
        },
        || format!("agent log:\n{}\ncollector log:\n{}", a.log(), c.log()),
    );
    // The daemon connects again with its new certificate, and the collector then
    // refuses the old one.
    wait_for_or(
        "the collector to refuse the replaced certificate",
        30,
        || rt.block_on(hello_with(&c, &old)).err(),
        || format!("agent log:\n{}\ncollector log:\n{}", a.log(), c.log()),
    );
    a.stop();
    assert!(
        a.log().contains("client certificate renewed")
            && a.log()
                .contains("connecting again with the renewed certificate"),
        "{}",
        a.log()
    );
    let refused = rt.block_on(tls_refusal(&c, &old));
    rt.block_on(hello_with(&c, &new))
        .expect("the renewed certificate is accepted");

    // The old serial is on the CRL for good: a restart does not forget it.
    let (ports, admin) = (c.ports(), c.admin.clone());
    c.kill9();
    let c = Collector::start(&data, Some(ports), Some(&admin));
    rt.block_on(hello_with(&c, &old))
        .expect_err("the replaced certificate must stay refused after a restart");
    let after_restart = rt.block_on(tls_refusal(&c, &old));
    rt.block_on(hello_with(&c, &new))
        .expect("the renewed certificate is accepted after a restart");
    // The collector says why, in the TLS alert the client sees.
    for e in [&refused, &after_restart] {
        assert!(e.to_lowercase().contains("revoked"), "{e}");
    }
}

#[test]
fn a_certificate_renewed_through_one_collector_is_refused_by_the_others() {
    // Two collectors on one PostgreSQL database: the agent renews through B and
    // connects through B with its new certificate; A, which saw neither, refuses the
    // replaced certificate too.
    let pg = rampart_tests::pg::Postgres::start();
    pg.create_database("rampart");
    let config = pg.collector_config("rampart");
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let (a_col, b_col) = rampart_tests::pg::two_collectors(t.path(), &config);
    let mut a = Agent::new(&t.path().join("agent"));
    let tok = a_col.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&b_col.url(), &tok, &b_col.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    let state = a.dir.join("state");
    let old = Identity::load(&state).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(hello_with(&a_col, &old))
        .expect("A accepts the enrolled certificate");
    let cfg = fs::read_to_string(a.config()).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("renew_before_secs"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(a.config(), format!("renew_before_secs = 315360000\n{cfg}")).unwrap();
    a.run(&[]);
    let new = wait_for_or(
        "the agent to renew through B",
        60,
        || {
            let id = Identity::load(&state).ok()?;
            (id.cert_der != old.cert_der).then_some(id)
        },
        || format!("agent log:\n{}\nB's log:\n{}", a.log(), b_col.log()),
    );
    a.stop();
    // The agent comes back through B with its new certificate: from then on the old
    // one is refused everywhere.
    rt.block_on(hello_with(&b_col, &new))
        .expect("B accepts the renewed certificate");
    wait_for("A to refuse the replaced certificate", 20, || {
        rt.block_on(hello_with(&a_col, &old)).err()
    });
    assert!(
        rt.block_on(tls_refusal(&a_col, &old))
            .to_lowercase()
            .contains("revoked"),
        "A says why"
    );
    rt.block_on(hello_with(&a_col, &new))
        .expect("A accepts the renewed certificate");
}

/// Sends hello and a renewal request with `id`'s certificate, then drops the stream
/// once the new certificate has come, as an agent that dies before saving it: the
/// answer is lost. The new certificate's DER.
async fn renew_and_drop(c: &Collector, id: &Identity) -> Vec<u8> {
    let cfg = tls::client_config(
        &c.fingerprint,
        Some((vec![id.cert_der.clone()], id.key_der.clone())),
    )
    .unwrap();
    let ch = tls::channel(&c.url(), cfg).unwrap();
    let (_, csr_der) = rampart_agent::daemon::new_key_and_csr(&id.state.agent_id).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    for body in [
        agent_message::Body::Hello(Hello {
            agent_id: id.state.agent_id.clone(),
            hostname: "renewal".into(),
            ..Default::default()
        }),
        agent_message::Body::Renew(RenewRequest { csr_der }),
    ] {
        tx.send(AgentMessage { body: Some(body) }).await.unwrap();
    }
    let mut inbound = AgentChannelClient::new(ch)
        .connect(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let wait = async {
        loop {
            let m = inbound.message().await.unwrap().expect("an answer");
            if let Some(collector_message::Body::Renew(r)) = m.body {
                assert!(r.refused.is_empty(), "renewal refused: {}", r.refused);
                return r.certificate_der;
            }
        }
    };
    let der = tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("a renewal answer within 20 s");
    drop(tx);
    der
}

#[test]
fn a_renewal_whose_answer_is_lost_leaves_the_agent_its_certificate() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    root(&r);
    let c = Collector::start(&t.path().join("collector"), None, None);
    let a = Agent::new(&t.path().join("agent"));
    let tok = c.enrollment_token("web", 1, 3600);
    let (ok, out) = a.enroll(&c.url(), &tok, &c.fingerprint, &r, &[]);
    assert!(ok, "{out}");
    let id = Identity::load(&a.dir.join("state")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lost = rt.block_on(renew_and_drop(&c, &id));
    assert_ne!(lost, id.cert_der);
    // Before, the renewal put this certificate on the CRL at once: the agent, which
    // never kept the new one, was locked out for good.
    rt.block_on(hello_with(&c, &id))
        .expect("the certificate the agent renewed with is still accepted");
    let refusal = rt.block_on(tls_refusal(&c, &id));
    assert_eq!(refusal, "no TLS refusal");
}
