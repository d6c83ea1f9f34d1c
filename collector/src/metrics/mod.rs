//! The collector's metrics, for `/metrics` (Prometheus and OpenMetrics scrapers):
//! one registry of the `prometheus-client` library, every metric with its help text,
//! base units in its name and label values from fixed sets (a route template, never
//! a path; a status class, never a code), so that no input can grow a label set.
//!
//! Counters and histograms are kept as things happen; gauges that are the state of
//! the store or of the certificates are set from it at each scrape ([`Scrape`]), and
//! those that cost a walk (agents whose certificate expires soon, bytes on disk) are
//! refreshed by the background tick ([`Metrics::set_fleet`]). Process figures are read
//! from `/proc/self` at each scrape.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

mod process;

use crate::app::Refusal;
use crate::store::{ScanRecord, ScanStatus};

/// One fixed label.
type L1 = [(&'static str, &'static str); 1];
/// Two fixed labels.
type L2 = [(&'static str, &'static str); 2];
/// A REST request's route template, method and status class.
type HttpLabels = [(&'static str, String); 3];
type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds from 0.5 ms to about 8 s, doubling: the span of a REST answer or a batch
/// acknowledgement, from a cached read to a store under strain.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

/// Seconds from 50 µs to about 3 s, doubling: a store write or an fsync.
fn store_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// What a limit refused (`rampart_limit_refusals_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An agent sent more messages per second than allowed; its stream ended.
    AgentMessageRate,
    /// An agent asked for certificate renewals too often.
    RenewalRate,
    /// An agent's message or batch was over a size bound; its stream ended.
    AgentMessageSize,
    /// A REST request's body was over the size bound (413).
    RestBodySize,
    /// A connection to the agents' port was refused: a connection cap.
    GrpcConnections,
    /// A connection to the REST port was refused: a connection cap.
    RestConnections,
    /// A download was refused: every slot was taken.
    Downloads,
    /// Console sign-ins refused for going over their rate.
    SigninRate,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::AgentMessageRate,
        Limit::RenewalRate,
        Limit::AgentMessageSize,
        Limit::RestBodySize,
        Limit::GrpcConnections,
        Limit::RestConnections,
        Limit::Downloads,
        Limit::SigninRate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::AgentMessageRate => "agent_message_rate",
            Limit::RenewalRate => "renewal_rate",
            Limit::AgentMessageSize => "agent_message_size",
            Limit::RestBodySize => "rest_body_size",
            Limit::GrpcConnections => "grpc_connections",
            Limit::RestConnections => "rest_connections",
            Limit::Downloads => "downloads",
            Limit::SigninRate => "signin_rate",
        }
    }
}

/// How a webhook delivery attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOutcome {
    Delivered,
    /// Refused or unreachable; it will be tried again.
    Retry,
    /// Refused or unreachable for the last allowed time: given up.
    Failed,
}

/// The values read at a scrape from the app and the listeners.
pub struct Scrape {
    pub agents_connected: usize,
    /// Scans in each status, where the store counts them without a walk.
    pub scans_by_status: Vec<(ScanStatus, usize)>,
    pub vms_blocked: Option<usize>,
    pub server_cert_not_after_unix: i64,
    pub ca_not_after_unix: Option<i64>,
    /// The data directory's filesystem: bytes free to the collector, and its size.
    pub data_fs: Option<(u64, u64)>,
}

/// The metrics. Counters are shared handles: the listeners (`net`, `downloads`) hold
/// clones of theirs.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub enrollments_accepted: Counter,
    enrollment_refusals: Family<L1, Counter>,
    pub results: Counter,
    pub results_pruned_scans: Counter,
    pub streams_rejected: Counter,
    pub console_signin_failures: Counter,
    limit_refusals: Family<L1, Counter>,
    scans_created: Family<L1, Counter>,
    scans_ended: Family<L2, Counter>,
    handovers_blocked: Counter,
    handovers_released: Counter,
    webhook_attempts: Family<L1, Counter>,
    http: HistogramFamily<HttpLabels>,
    batch_ack: Histogram,
    store_write: Histogram,
    store_sync: Histogram,
    agents_connected: Gauge,
    scans: Family<L1, Gauge>,
    vms_blocked: Gauge,
    server_cert_expiry: Gauge,
    ca_expiry: Gauge,
    /// Refreshed by the background tick; -1 until the first refresh.
    agent_certs_expiring: Gauge,
    store_bytes: Gauge,
    data_fs_free: Gauge,
    data_fs_size: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Days before its end at which an agent's certificate counts as expiring.
pub const EXPIRING_DAYS: i64 = 7;

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let mut m = Metrics {
            registry: Mutex::new(Registry::default()),
            enrollments_accepted: Counter::default(),
            enrollment_refusals: Family::default(),
            results: Counter::default(),
            results_pruned_scans: Counter::default(),
            streams_rejected: Counter::default(),
            console_signin_failures: Counter::default(),
            limit_refusals: Family::default(),
            scans_created: Family::default(),
            scans_ended: Family::default(),
            handovers_blocked: Counter::default(),
            handovers_released: Counter::default(),
            webhook_attempts: Family::default(),
            http: Family::new_with_constructor(latency),
            batch_ack: latency(),
            store_write: store_latency(),
            store_sync: store_latency(),
            agents_connected: Gauge::default(),
            scans: Family::default(),
            vms_blocked: Gauge::default(),
            server_cert_expiry: Gauge::default(),
            ca_expiry: Gauge::default(),
            agent_certs_expiring: Gauge::default(),
            store_bytes: Gauge::default(),
            data_fs_free: Gauge::default(),
            data_fs_size: Gauge::default(),
        };
        m.agent_certs_expiring.set(-1);
        m.store_bytes.set(-1);
        // Every label value a family can take is there from the start (at 0), so
        // that rates and alerts see a series before its first event.
        for r in Refusal::ALL {
            let _ = m
                .enrollment_refusals
                .get_or_create(&[("reason", r.as_str())]);
        }
        for l in Limit::ALL {
            let _ = m.limit_refusals.get_or_create(&[("kind", l.as_str())]);
        }
        for t in TRIGGERS {
            let _ = m.scans_created.get_or_create(&[("trigger", t)]);
            for s in [
                ScanStatus::Completed,
                ScanStatus::Failed,
                ScanStatus::Cancelled,
            ] {
                let _ = m
                    .scans_ended
                    .get_or_create(&[("status", s.as_str()), ("trigger", t)]);
            }
        }
        for o in ["delivered", "retry", "failed"] {
            let _ = m.webhook_attempts.get_or_create(&[("outcome", o)]);
        }
        r.register(
            "rampart_enrollments_accepted",
            "Agents enrolled (certificates issued at enrollment)",
            m.enrollments_accepted.clone(),
        );
        r.register(
            "rampart_enrollment_refusals",
            "Enrollments refused, by reason",
            m.enrollment_refusals.clone(),
        );
        r.register(
            "rampart_results",
            "Per-rule results stored (acknowledged to agents)",
            m.results.clone(),
        );
        r.register(
            "rampart_results_pruned_scans",
            "Scans whose per-rule results the retention deleted",
            m.results_pruned_scans.clone(),
        );
        r.register(
            "rampart_streams_rejected",
            "Agent streams ended for an unreadable or refused message",
            m.streams_rejected.clone(),
        );
        r.register(
            "rampart_console_signin_failures",
            "Console sign-ins refused (wrong name or password, or over a bound)",
            m.console_signin_failures.clone(),
        );
        r.register(
            "rampart_limit_refusals",
            "Requests, messages and connections refused by a rate, size or connection limit, by kind",
            m.limit_refusals.clone(),
        );
        r.register(
            "rampart_scans_created",
            "Scans created, by trigger (manual, schedule, provision)",
            m.scans_created.clone(),
        );
        r.register(
            "rampart_scans_ended",
            "Scans that reached a final status, by status and trigger",
            m.scans_ended.clone(),
        );
        r.register(
            "rampart_handovers_blocked",
            "Scans whose handover the policy blocked",
            m.handovers_blocked.clone(),
        );
        r.register(
            "rampart_handovers_released",
            "Blocked scans an admin released",
            m.handovers_released.clone(),
        );
        r.register(
            "rampart_webhook_attempts",
            "Webhook delivery attempts, by outcome (delivered, retry, failed: given up)",
            m.webhook_attempts.clone(),
        );
        r.register_with_unit(
            "rampart_http_request_duration",
            "REST and console requests, from routing to the answer, by route template, method and status class",
            Unit::Seconds,
            m.http.clone(),
        );
        r.register_with_unit(
            "rampart_batch_ack_duration",
            "From a result batch's arrival to its acknowledgement (stored and synced to disk)",
            Unit::Seconds,
            m.batch_ack.clone(),
        );
        r.register_with_unit(
            "rampart_store_write_duration",
            "Writing a batch of results to the store, before the sync",
            Unit::Seconds,
            m.store_write.clone(),
        );
        r.register_with_unit(
            "rampart_store_sync_duration",
            "Making the store's writes durable (fsync, or a commit)",
            Unit::Seconds,
            m.store_sync.clone(),
        );
        r.register(
            "rampart_agents_connected",
            "Agents with a stream open to this collector",
            m.agents_connected.clone(),
        );
        r.register(
            "rampart_scans",
            "Stored scans by status (where the store counts them)",
            m.scans.clone(),
        );
        r.register(
            "rampart_vms_blocked",
            "Agents whose latest scan is blocked and not released",
            m.vms_blocked.clone(),
        );
        r.register_with_unit(
            "rampart_server_certificate_expiry",
            "When the server certificate new connections get expires (Unix time)",
            Unit::Seconds,
            m.server_cert_expiry.clone(),
        );
        r.register_with_unit(
            "rampart_ca_certificate_expiry",
            "When the CA certificate expires (Unix time)",
            Unit::Seconds,
            m.ca_expiry.clone(),
        );
        r.register(
            "rampart_agent_certificates_expiring",
            "Enrolled, unrevoked agents whose certificate expires within 7 days (-1 before the first count)",
            m.agent_certs_expiring.clone(),
        );
        r.register_with_unit(
            "rampart_store_size",
            "Bytes the store takes: the data directory's files, or the PostgreSQL database (-1 before the first count)",
            Unit::Bytes,
            m.store_bytes.clone(),
        );
        r.register_with_unit(
            "rampart_data_filesystem_free",
            "Bytes free to the collector on the data directory's filesystem",
            Unit::Bytes,
            m.data_fs_free.clone(),
        );
        r.register_with_unit(
            "rampart_data_filesystem_size",
            "Bytes of the data directory's filesystem",
            Unit::Bytes,
            m.data_fs_size.clone(),
        );
        r.register_collector(Box::new(process::Process));
        m.registry = Mutex::new(r);
        m
    }

    /// The counter of one limit; listeners keep a clone.
    pub fn limit(&self, kind: Limit) -> Counter {
        self.limit_refusals
            .get_or_create(&[("kind", kind.as_str())])
            .clone()
    }

    pub fn refused(&self, kind: Limit) {
        self.limit(kind).inc();
    }

    pub fn refusal(&self, why: Refusal) {
        self.enrollment_refusals
            .get_or_create(&[("reason", why.as_str())])
            .inc();
    }

    pub fn scan_created(&self, trigger: &str) {
        self.scans_created
            .get_or_create(&[("trigger", trigger_label(trigger))])
            .inc();
    }

    /// A scan reached a final status (counted once, where it changed).
    pub fn scan_ended(&self, s: &ScanRecord) {
        self.scans_ended
            .get_or_create(&[
                ("status", s.status.as_str()),
                ("trigger", trigger_label(&s.trigger)),
            ])
            .inc();
        if s.blocked {
            self.handovers_blocked.inc();
        }
    }

    pub fn released(&self) {
        self.handovers_released.inc();
    }

    pub fn webhook_attempt(&self, outcome: WebhookOutcome) {
        let o = match outcome {
            WebhookOutcome::Delivered => "delivered",
            WebhookOutcome::Retry => "retry",
            WebhookOutcome::Failed => "failed",
        };
        self.webhook_attempts.get_or_create(&[("outcome", o)]).inc();
    }

    /// One REST or console request: its route template (`None`: no route matched).
    pub fn http_request(&self, route: Option<&str>, method: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http
            .get_or_create(&[
                ("route", route.unwrap_or("unmatched").to_string()),
                ("method", method.to_string()),
                ("status_class", class.to_string()),
            ])
            .observe(took.as_secs_f64());
    }

    pub fn batch_acknowledged(&self, took: Duration) {
        self.batch_ack.observe(took.as_secs_f64());
    }

    pub fn store_written(&self, took: Duration) {
        self.store_write.observe(took.as_secs_f64());
    }

    pub fn store_synced(&self, took: Duration) {
        self.store_sync.observe(took.as_secs_f64());
    }

    /// `store_synced` for a thread that outlives a borrow (the ingest pool's).
    pub fn store_synced_fn(&self) -> impl Fn(Duration) + Send + Sync + 'static {
        let h = self.store_sync.clone();
        move |took| h.observe(took.as_secs_f64())
    }

    /// The figures that cost a walk, from the background tick.
    pub fn set_fleet(&self, agent_certs_expiring: Option<usize>, store_bytes: Option<u64>) {
        if let Some(n) = agent_certs_expiring {
            self.agent_certs_expiring.set(n as i64);
        }
        if let Some(b) = store_bytes {
            self.store_bytes.set(b.min(i64::MAX as u64) as i64);
        }
    }

    /// The text exposition (OpenMetrics), with the scrape's values set first.
    pub fn render(&self, s: &Scrape) -> String {
        self.agents_connected.set(s.agents_connected as i64);
        for (status, n) in &s.scans_by_status {
            self.scans
                .get_or_create(&[("status", status.as_str())])
                .set(*n as i64);
        }
        if let Some(n) = s.vms_blocked {
            self.vms_blocked.set(n as i64);
        }
        self.server_cert_expiry.set(s.server_cert_not_after_unix);
        if let Some(t) = s.ca_not_after_unix {
            self.ca_expiry.set(t);
        }
        if let Some((free, size)) = s.data_fs {
            self.data_fs_free.set(free.min(i64::MAX as u64) as i64);
            self.data_fs_size.set(size.min(i64::MAX as u64) as i64);
        }
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}

/// The triggers a scan is created with; anything else counts as `other`.
const TRIGGERS: [&str; 5] = ["manual", "schedule", "provision", "ssh", "other"];

fn trigger_label(t: &str) -> &'static str {
    TRIGGERS
        .iter()
        .copied()
        .find(|k| *k == t)
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    }

    fn scrape() -> Scrape {
        Scrape {
            agents_connected: 3,
            scans_by_status: vec![(ScanStatus::Running, 2)],
            vms_blocked: Some(1),
            server_cert_not_after_unix: 1_900_000_000,
            ca_not_after_unix: Some(2_000_000_000),
            data_fs: Some((5, 10)),
        }
    }

    #[test]
    fn every_metric_has_help_and_a_type_and_counters_end_in_total() {
        let m = Metrics::new();
        let text = m.render(&scrape());
        let mut helped = std::collections::HashSet::new();
        let mut typed = std::collections::HashMap::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_string());
            } else if let Some(rest) = l.strip_prefix("# TYPE ") {
                let mut p = rest.split(' ');
                typed.insert(p.next().unwrap().to_string(), p.next().unwrap().to_string());
            }
        }
        assert!(typed.len() > 25, "{text}");
        for (name, kind) in &typed {
            assert!(helped.contains(name), "{name} has no HELP");
            let has_sample = text.lines().any(|l| {
                !l.starts_with('#')
                    && (l.starts_with(&format!("{name}_total"))
                        || l.starts_with(&format!("{name}_bucket"))
                        || l.starts_with(&format!("{name} "))
                        || l.starts_with(&format!("{name}{{")))
            });
            assert!(has_sample, "{name} ({kind}) has no sample in {text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(sample(&text, "rampart_agents_connected"), Some(3.0));
        assert_eq!(
            sample(&text, "rampart_scans{status=\"running\"}"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "rampart_ca_certificate_expiry_seconds"),
            Some(2e9)
        );
        assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
        assert!(sample(&text, "process_open_fds").unwrap() >= 3.0);
    }

    #[test]
    fn label_values_come_from_fixed_sets() {
        let m = Metrics::new();
        m.http_request(None, "BREW", 418, Duration::from_millis(3));
        m.http_request(
            Some("/api/v1/scans/{id}"),
            "GET",
            200,
            Duration::from_millis(1),
        );
        m.scan_created("whatever-an-attacker-sends");
        let text = m.render(&scrape());
        assert!(text.contains(
            "rampart_http_request_duration_seconds_count{route=\"unmatched\",method=\"other\",status_class=\"4xx\"} 1"
        ), "{text}");
        assert!(text.contains(
            "rampart_http_request_duration_seconds_count{route=\"/api/v1/scans/{id}\",method=\"GET\",status_class=\"2xx\"} 1"
        ), "{text}");
        assert_eq!(
            sample(&text, "rampart_scans_created_total{trigger=\"other\"}"),
            Some(1.0)
        );
        assert!(!text.contains("whatever"));
    }

    #[test]
    fn a_listeners_clone_counts_in_the_registry() {
        let m = Metrics::new();
        let c = m.limit(Limit::RestConnections);
        c.inc();
        c.inc();
        let text = m.render(&scrape());
        assert_eq!(
            sample(
                &text,
                "rampart_limit_refusals_total{kind=\"rest_connections\"}"
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "rampart_limit_refusals_total{kind=\"downloads\"}"),
            Some(0.0)
        );
    }
}
