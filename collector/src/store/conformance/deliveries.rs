//! Webhook deliveries and their attempts.

use super::*;

/// Only pending deliveries are listed; attempts newest first.
pub(super) fn deliveries<S: Store>(s: &S) {
    // Webhook deliveries: only pending ones are listed; attempts newest first.
    let delivery = |id: &str, state: DeliveryState| DeliveryRecord {
        id: id.into(),
        scan_id: "s000".into(),
        url: "http://127.0.0.1:9/hook".into(),
        body: "{}".into(),
        created_at_ms: 1,
        attempts: 0,
        state,
        next_attempt_ms: Some(1),
    };
    s.put_delivery(&delivery("wh-1", DeliveryState::Pending))
        .unwrap();
    s.put_delivery(&delivery("wh-2", DeliveryState::Pending))
        .unwrap();
    s.put_delivery(&delivery("wh-2", DeliveryState::Delivered))
        .unwrap();
    s.put_delivery(&delivery("wh-3", DeliveryState::Failed))
        .unwrap();
    let pending = s.pending_deliveries().unwrap();
    assert_eq!(
        pending.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["wh-1"]
    );
    for (at, n) in [(10, 1), (20, 2), (40, 3)] {
        s.append_attempt(&AttemptRecord {
            delivery_id: "wh-1".into(),
            scan_id: "s000".into(),
            attempt: n,
            at_ms: at,
            http_status: Some(500),
            error: None,
            state: DeliveryState::Pending,
            next_attempt_ms: Some(at * 2),
        })
        .unwrap();
    }
    let (page, total) = s.attempts(1, 5).unwrap();
    assert_eq!(
        (page.iter().map(|a| a.attempt).collect::<Vec<_>>(), total),
        (vec![2, 1], 3)
    );
}
