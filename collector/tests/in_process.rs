//! The in-process harness: a collector built from a configuration and served on two
//! `127.0.0.1:0` listeners inside the test, and the agent's own enrollment and
//! daemon loop (`rampart_agent::daemon`) talking to it over real mutual TLS and
//! gRPC on loopback — no processes, no ports chosen ahead of the bind. A scan runs
//! on a tiny Debian 12 root written by the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rampart_agent::daemon::session::{run_until, Control};
use rampart_agent::daemon::{enroll, EnrollArgs};
use rampart_collector::app::App;
use rampart_collector::config::Config;
use rampart_collector::server;
use rampart_collector::store::ScanStatus;

/// A running collector: its app, its agents' address and the order that stops it.
struct InProcess {
    app: Arc<App>,
    grpc: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl InProcess {
    async fn start(data: &Path) -> InProcess {
        let config = Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        };
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rest = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let c = tokio::task::spawn_blocking(move || server::build(config))
            .await
            .unwrap()
            .expect("the collector builds from its configuration");
        let app = c.app.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            server::run(c, grpc, rest, async {
                let _ = stopped.await;
            })
            .await
            .expect("the collector serves until told to stop");
        });
        InProcess {
            app,
            grpc: addr,
            stop: Some(stop),
            served,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.served)
            .await
            .expect("the collector stops when told")
            .unwrap();
    }
}

/// The smallest root the agent takes for Debian 12: its os-release.
fn debian_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(
        dir.join("etc/os-release"),
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
    )
    .unwrap();
}

/// Polls `f` every 50 ms until it gives a value or `secs` pass.
async fn eventually<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_scans_and_is_scored_by_a_collector_in_the_same_process() {
    let d = tempfile::tempdir().unwrap();
    let collector = InProcess::start(&d.path().join("collector")).await;
    let app = collector.app.clone();
    let token = app.create_token_unchecked(None, 60_000, 1).unwrap();

    let (root, agent_dir) = (d.path().join("root"), d.path().join("agent"));
    debian_root(&root);
    std::fs::create_dir_all(&agent_dir).unwrap();
    let config_path = agent_dir.join("agent.toml");
    let agent_id = enroll(EnrollArgs {
        collector: format!("https://{}", collector.grpc),
        token,
        ca_fingerprint: app.ca.fingerprint(),
        labels: BTreeMap::from([("team".to_string(), "infra".to_string())]),
        config_path: config_path.clone(),
        state_dir: agent_dir.join("state"),
        root: root.clone(),
        // Nothing answers there: no provider's identity document is fetched.
        metadata_url: Some("http://127.0.0.1:1".into()),
        identity_root: root.clone(),
    })
    .await
    .expect("the agent enrolls with the token");
    let stored = app
        .store
        .agent(&agent_id)
        .unwrap()
        .expect("the agent is stored");
    assert_eq!(stored.labels.get("team").map(String::as_str), Some("infra"));

    let (control, orders) = tokio::sync::mpsc::channel(4);
    let daemon = tokio::spawn(async move { run_until(&config_path, orders).await });
    // The scan request waits in the store until the agent's stream says hello.
    let scan = tokio::task::spawn_blocking({
        let (app, id) = (app.clone(), agent_id.clone());
        move || app.create_scan(&id, "manual", "test").unwrap().unwrap()
    })
    .await
    .unwrap();
    let done = eventually("the scan to finish", 120, || {
        let s = app.store.scan(&scan.id).unwrap().unwrap();
        s.status.is_final().then_some(s)
    })
    .await;
    assert_eq!(
        done.status,
        ScanStatus::Completed,
        "{:?}",
        done.failure_reason
    );
    let results = app.store.results(&scan.id).unwrap();
    let catalog = app
        .catalog(done.content_version.as_deref().unwrap())
        .unwrap()
        .expect("the collector knows the agent's content");
    assert_eq!(
        results.len(),
        catalog.profile_rules(done.profile).len(),
        "one result per rule of the profile"
    );
    // A root with nothing but os-release meets few recommendations: the score is
    // the agent's judgement of that root, not a constant.
    assert!(done.failed > 0, "{} failed", done.failed);
    assert_eq!(
        done.score,
        rampart_report::score(done.passed, done.failed, done.error),
        "the score follows the counts"
    );

    control.send(Control::Stop).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), daemon)
        .await
        .expect("the agent stops when told")
        .unwrap()
        .expect("the agent stops cleanly");
    collector.stop().await;
}
