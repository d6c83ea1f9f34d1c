//! Batching and evidence bounds.

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
