//! Batching and evidence bounds; the reconnect loop under paused time.

use super::link::batches;
use super::wire::fit_evidence;
use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
use rampart_proto::prost::Message;
use rampart_proto::v1::{ResultBatch, RuleResult};

#[test]
fn batches_close_at_the_count_or_the_bytes_and_keep_every_result_in_order() {
    let result = |i: usize, evidence: usize| RuleResult {
        rule_id: format!("1.{i}"),
        status: 1,
        evidence: fit_evidence(
            &(0..evidence)
                .map(|j| format!("{i}/{j}: {}", "x".repeat(100)))
                .collect::<Vec<_>>(),
        ),
    };
    // 310 small results: batches of the count.
    let small: Vec<RuleResult> = (0..310).map(|i| result(i, 1)).collect();
    let b = batches(small.clone().into_iter(), 100, 1 << 20);
    assert_eq!(
        b.iter().map(Vec::len).collect::<Vec<_>>(),
        [100, 100, 100, 10]
    );
    assert_eq!(b.concat(), small);
    // 300 results whose evidence is at the bound: each batch, as sent, stays
    // within the bytes, so within the collector's message limit.
    let big: Vec<RuleResult> = (0..300).map(|i| result(i, 1000)).collect();
    let limit = 1 << 20;
    let b = batches(big.clone().into_iter(), 500, limit);
    assert!(b.len() >= 300 * 60_000 / limit, "{} batches", b.len());
    for batch in &b {
        let msg = ResultBatch {
            scan_id: "sc-1".into(),
            batch_seq: 1,
            results: batch.clone(),
        };
        let results_bytes = msg.encoded_len()
            - ResultBatch {
                results: vec![],
                ..msg.clone()
            }
            .encoded_len();
        assert!(results_bytes <= limit, "{results_bytes}");
    }
    assert_eq!(b.concat(), big);
    // A count of 0 still makes progress, one result a batch.
    assert_eq!(batches(small.into_iter().take(3), 0, limit).len(), 3);
}

fn within(e: &[String]) -> bool {
    e.len() <= EVIDENCE_LINES
        && e.iter().all(|l| l.len() <= EVIDENCE_LINE_BYTES)
        && e.iter().map(String::len).sum::<usize>() <= EVIDENCE_BYTES
}

#[test]
fn evidence_is_trimmed_to_the_protocol_bounds() {
    let small = vec!["a".to_string(), "b".to_string()];
    assert_eq!(fit_evidence(&small), small, "untouched when it fits");
    for e in [
        vec!["é".repeat(5000)],
        vec!["x".repeat(4000); 40],
        vec!["y".to_string(); 5000],
    ] {
        let f = fit_evidence(&e);
        assert!(within(&f), "{} lines", f.len());
        assert!(!within(&e));
    }
    let f = fit_evidence(&vec!["y".to_string(); 5000]);
    assert!(f.last().unwrap().contains("more line(s)"), "{:?}", f.last());
}

/// A configuration whose collector never answers (nothing listens on port 1) and
/// whose state directory holds no identity: every session fails at once and the
/// daemon waits in its backoff.
fn unreachable_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        "collector = \"https://127.0.0.1:1\"\nca_fingerprint = \"{}\"\nstate_dir = \"{}\"\nroot = \"/\"\n",
        "ab".repeat(32),
        dir.join("state").display()
    );
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Ten minutes of virtual time: far past the longest backoff (60 s).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

#[tokio::test(start_paused = true)]
async fn stop_ends_the_reconnect_loop() {
    let d = tempfile::tempdir().unwrap();
    let config = unreachable_config(d.path());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let daemon = tokio::spawn(async move { super::run_until(&config, rx).await });
    // Several failed sessions and backoffs pass first.
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    assert!(!daemon.is_finished(), "the daemon keeps retrying");
    tx.send(super::Control::Stop).await.unwrap();
    let ended = tokio::time::timeout(PATIENCE, daemon).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the daemon stops cleanly: {ended:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_the_daemon_running_and_a_closed_control_stops_it() {
    let d = tempfile::tempdir().unwrap();
    let config = unreachable_config(d.path());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let daemon = tokio::spawn(async move { super::run_until(&config, rx).await });
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    tx.send(super::Control::Reload).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
    assert!(!daemon.is_finished(), "a reload is not a stop");
    drop(tx);
    let ended = tokio::time::timeout(PATIENCE, daemon).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the daemon stops when nothing can tell it anything any more: {ended:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_configuration_broken_while_retrying_ends_the_daemon_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let config = unreachable_config(d.path());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let path = config.clone();
    let daemon = tokio::spawn(async move { super::run_until(&path, rx).await });
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("https://", "http://")).unwrap();
    tx.send(super::Control::Reload).await.unwrap();
    let ended = tokio::time::timeout(PATIENCE, daemon)
        .await
        .unwrap()
        .unwrap();
    let e = ended.unwrap_err().to_string();
    assert!(e.contains("must start with https://"), "{e}");
}

#[test]
fn a_request_for_a_profile_the_agent_does_not_know_is_a_failed_scan_naming_it() {
    let e = "level3-server"
        .parse::<crate::model::Profile>()
        .unwrap_err();
    let s = super::refused("sc-1".into(), &e);
    assert_eq!(s.scan_id, "sc-1");
    assert_eq!(s.profile, None);
    assert!(s.results.is_empty());
    let why = s.failure.unwrap();
    assert!(
        why.starts_with("unknown profile `level3-server`; expected level1-server"),
        "{why}"
    );
}
