//! Bounds on everything an agent, or anyone on the network, sends: one place, one
//! validation function per message kind, applied before anything is logged, stored
//! or parsed further. A value over its bound is a clear error to that caller alone
//! (gRPC `INVALID_ARGUMENT` or `RESOURCE_EXHAUSTED` naming the field and the bound).
//!
//! The tunable rates live in [`Limits`] (`[limits]` in the collector's config); the
//! byte and count bounds are constants: they describe the protocol, not a deployment.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Largest Enroll request: a token, a CSR, a host name, labels and a signed
/// instance identity document (12 KiB, its signature 2 KiB) fit in 40 KiB.
pub const ENROLL_MESSAGE_BYTES: usize = 40 * 1024;
/// Largest enrollment token.
pub const TOKEN_BYTES: usize = 128;
/// Largest certificate signing request (DER).
pub const CSR_BYTES: usize = 8 * 1024;
/// Largest host name (DNS allows 253).
pub const HOSTNAME_BYTES: usize = 253;
/// Largest cloud instance ID.
pub const INSTANCE_ID_BYTES: usize = 128;
/// Largest provider, region, OS name, agent and content version string.
pub const SHORT_FIELD_BYTES: usize = 128;
/// Most IP addresses in a hello, and the longest one.
pub const IP_ADDRESSES: usize = 32;
pub const IP_ADDRESS_BYTES: usize = 64;
/// Most labels, the longest key and the longest value.
pub const LABELS: usize = 32;
pub const LABEL_KEY_BYTES: usize = 64;
pub const LABEL_VALUE_BYTES: usize = 256;
/// Longest scan and rule IDs.
pub const SCAN_ID_BYTES: usize = 64;
pub const RULE_ID_BYTES: usize = 32;
/// Most results in one batch.
pub use rampart_proto::bounds::RESULTS_PER_BATCH;
/// Most evidence lines of one result, the longest line, and all lines together
/// (the agent trims to these before sending).
pub use rampart_proto::bounds::{EVIDENCE_BYTES, EVIDENCE_LINES, EVIDENCE_LINE_BYTES};
/// Longest failure reason kept from an agent, in characters.
pub const REASON_CHARS: usize = 500;
/// How much of a refused value is ever echoed into a log line or an error.
pub const ECHO_BYTES: usize = 64;

/// Tunable rates (`[limits]` in the collector's config).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Enrollment attempts per minute from one source address.
    pub enroll_per_source_per_minute: u32,
    /// Enrollment attempts per second from everyone together.
    pub enroll_per_second: u32,
    /// Certificate renewals of one agent: at most one per this many seconds.
    pub renew_interval_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            enroll_per_source_per_minute: 30,
            enroll_per_second: 50,
            renew_interval_secs: 600,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            (
                "enroll_per_source_per_minute",
                self.enroll_per_source_per_minute,
            ),
            ("enroll_per_second", self.enroll_per_second),
        ] {
            if v == 0 {
                return Err(format!("limits.{name} must be at least 1"));
            }
        }
        Ok(())
    }
}

/// A bound that was exceeded, in words.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Exceeded(pub String);

/// At most [`ECHO_BYTES`] of an untrusted string, control characters escaped, for
/// log lines and error messages.
pub fn echo(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= ECHO_BYTES {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn field(name: &str, v: &str, max: usize) -> Result<(), Exceeded> {
    if v.len() > max {
        return Err(Exceeded(format!(
            "{name} is {} bytes; at most {max} are accepted",
            v.len()
        )));
    }
    Ok(())
}

fn labels(l: &BTreeMap<String, String>) -> Result<(), Exceeded> {
    if l.len() > LABELS {
        return Err(Exceeded(format!(
            "{} labels; at most {LABELS} are accepted",
            l.len()
        )));
    }
    for (k, v) in l {
        field("a label key", k, LABEL_KEY_BYTES)?;
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        {
            return Err(Exceeded(format!(
                "label key `{}` must be letters, digits, `.`, `_`, `-` or `/`",
                echo(k)
            )));
        }
        field(&format!("label {}", echo(k)), v, LABEL_VALUE_BYTES)?;
        if v.chars().any(char::is_control) {
            return Err(Exceeded(format!(
                "label {} holds control characters",
                echo(k)
            )));
        }
    }
    Ok(())
}

/// What an Enroll request claims, before any of it is used.
pub struct EnrollClaims<'a> {
    pub token: &'a str,
    pub csr_der: &'a [u8],
    pub hostname: &'a str,
    pub instance_id: &'a str,
    pub provider: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// The provider's signed instance identity document, when the agent sent one.
    pub identity_document: Option<crate::identity::Document<'a>>,
}

impl<'a> EnrollClaims<'a> {
    /// The claims of an Enroll request as it came off the wire, with its labels as
    /// [`crate::app::labels_of`] makes them.
    pub fn of_request(
        r: &'a rampart_proto::v1::EnrollRequest,
        labels: &'a BTreeMap<String, String>,
    ) -> Self {
        EnrollClaims {
            token: &r.token,
            csr_der: &r.csr_der,
            hostname: &r.hostname,
            instance_id: &r.instance_id,
            provider: &r.provider,
            labels,
            identity_document: r
                .identity_document
                .as_ref()
                .map(|d| crate::identity::Document {
                    provider: &d.provider,
                    document: &d.document,
                    signature: &d.signature,
                }),
        }
    }
}

pub fn enroll(e: &EnrollClaims<'_>) -> Result<(), Exceeded> {
    if let Some(d) = &e.identity_document {
        use crate::identity::{DOCUMENT_BYTES, SIGNATURE_BYTES};
        field(
            "the identity document's provider",
            d.provider,
            SHORT_FIELD_BYTES,
        )?;
        for (name, len, max) in [
            ("the identity document", d.document.len(), DOCUMENT_BYTES),
            (
                "the identity document's signature",
                d.signature.len(),
                SIGNATURE_BYTES,
            ),
        ] {
            if len > max {
                return Err(Exceeded(format!(
                    "{name} is {len} bytes; at most {max} are accepted"
                )));
            }
        }
    }
    field("the token", e.token, TOKEN_BYTES)?;
    if e.csr_der.len() > CSR_BYTES {
        return Err(Exceeded(format!(
            "the CSR is {} bytes; at most {CSR_BYTES} are accepted",
            e.csr_der.len()
        )));
    }
    field("the host name", e.hostname, HOSTNAME_BYTES)?;
    field("the instance ID", e.instance_id, INSTANCE_ID_BYTES)?;
    field("the provider", e.provider, SHORT_FIELD_BYTES)?;
    for (name, v) in [
        ("the host name", e.hostname),
        ("the instance ID", e.instance_id),
        ("the provider", e.provider),
    ] {
        if v.chars().any(char::is_control) {
            return Err(Exceeded(format!("{name} holds control characters")));
        }
    }
    labels(e.labels)
}

/// What a hello claims.
pub struct HelloClaims<'a> {
    pub hostname: &'a str,
    pub ip_addresses: &'a [String],
    pub provider: &'a str,
    pub instance_id: &'a str,
    pub region: &'a str,
    pub os: &'a str,
    pub agent_version: &'a str,
    pub content_version: &'a str,
    pub labels: &'a BTreeMap<String, String>,
}

impl<'a> HelloClaims<'a> {
    /// The claims of a hello as it came off the wire, with its labels as
    /// [`crate::app::labels_of`] makes them.
    pub fn of_hello(h: &'a rampart_proto::v1::Hello, labels: &'a BTreeMap<String, String>) -> Self {
        HelloClaims {
            hostname: &h.hostname,
            ip_addresses: &h.ip_addresses,
            provider: &h.provider,
            instance_id: &h.instance_id,
            region: &h.region,
            os: &h.os,
            agent_version: &h.agent_version,
            content_version: &h.content_version,
            labels,
        }
    }
}

pub fn hello(h: &HelloClaims<'_>) -> Result<(), Exceeded> {
    field("hostname", h.hostname, HOSTNAME_BYTES)?;
    field("instance_id", h.instance_id, INSTANCE_ID_BYTES)?;
    for (name, v) in [
        ("provider", h.provider),
        ("region", h.region),
        ("os", h.os),
        ("agent_version", h.agent_version),
        ("content_version", h.content_version),
    ] {
        field(name, v, SHORT_FIELD_BYTES)?;
    }
    if h.ip_addresses.len() > IP_ADDRESSES {
        return Err(Exceeded(format!(
            "{} IP addresses; at most {IP_ADDRESSES} are accepted",
            h.ip_addresses.len()
        )));
    }
    for ip in h.ip_addresses {
        field("an IP address", ip, IP_ADDRESS_BYTES)?;
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Exceeded(format!(
                "hello: `{}` is not an IP address",
                echo(ip)
            )));
        }
    }
    // Shown in the console, lists and CSV exports: no control characters, as at
    // enrollment.
    for (name, v) in [
        ("the host name", h.hostname),
        ("the instance ID", h.instance_id),
        ("the provider", h.provider),
        ("the region", h.region),
        ("the OS", h.os),
        ("the agent version", h.agent_version),
        ("the content version", h.content_version),
    ] {
        if v.chars().any(char::is_control) {
            return Err(Exceeded(format!("hello: {name} holds control characters")));
        }
    }
    labels(h.labels)
}

/// One result as it arrives.
pub fn result(rule_id: &str, evidence: &[String]) -> Result<(), Exceeded> {
    if rule_id.is_empty() {
        return Err(Exceeded("a result has no rule ID".into()));
    }
    field("a rule ID", rule_id, RULE_ID_BYTES)?;
    if evidence.len() > EVIDENCE_LINES {
        return Err(Exceeded(format!(
            "result {} has {} evidence lines; at most {EVIDENCE_LINES} are accepted",
            echo(rule_id),
            evidence.len()
        )));
    }
    let mut total = 0;
    for line in evidence {
        if line.len() > EVIDENCE_LINE_BYTES {
            return Err(Exceeded(format!(
                "result {} has an evidence line of {} bytes; at most {EVIDENCE_LINE_BYTES} are accepted",
                echo(rule_id),
                line.len()
            )));
        }
        total += line.len();
    }
    if total > EVIDENCE_BYTES {
        return Err(Exceeded(format!(
            "result {} has {total} bytes of evidence; at most {EVIDENCE_BYTES} are accepted",
            echo(rule_id)
        )));
    }
    Ok(())
}

/// A scan ID as it arrives from an agent.
pub fn scan_id(id: &str) -> Result<(), Exceeded> {
    field("the scan ID", id, SCAN_ID_BYTES)
}

/// Token buckets by key: `rate` tokens per `per`, bursts up to `burst`. Keys idle
/// for a while are forgotten so the table stays small.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(count: u32, per: Duration, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(count) / per.as_secs_f64(),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when none is left.
    pub fn allow(&self, key: &str) -> bool {
        self.allow_at(key, 1, Instant::now())
    }

    /// Takes one token for `key` from this collector's share of a rate meant for
    /// `collectors` collectors together: the rate and the burst divided among them
    /// (a burst of at least one), so that all of them admit no more than one would.
    pub fn allow_share(&self, key: &str, collectors: usize) -> bool {
        self.allow_at(key, collectors, Instant::now())
    }

    fn allow_at(&self, key: &str, collectors: usize, now: Instant) -> bool {
        let n = collectors.max(1) as f64;
        let (rate, burst) = (self.rate / n, (self.burst / n).max(1.0));
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 100_000 {
            b.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_carry_no_control_characters_and_real_addresses() {
        let labels = BTreeMap::new();
        let ok_ips = ["10.0.0.1".to_string(), "2001:db8::1".to_string()];
        let h = |hostname: &'static str, ips: &'static [String]| HelloClaims {
            hostname,
            ip_addresses: ips,
            provider: "aws",
            instance_id: "i-1",
            region: "",
            os: "Debian 12",
            agent_version: "0.1.0",
            content_version: "debian-12@1",
            labels: &labels,
        };
        let ips: &'static [String] = Box::leak(Box::new(ok_ips));
        assert!(hello(&h("web-1", ips)).is_ok());
        let e = hello(&h("evil\r\nSet-Cookie: x=1\x1b[31m", ips)).unwrap_err();
        assert!(
            e.0.contains("host name holds control characters"),
            "{}",
            e.0
        );
        let bad: &'static [String] = Box::leak(Box::new(["=1+1".to_string()]));
        let e = hello(&h("web-1", bad)).unwrap_err();
        assert!(e.0.contains("is not an IP address"), "{}", e.0);
    }

    #[test]
    fn echo_cuts_and_escapes() {
        assert_eq!(echo("a\nb"), "a\\nb");
        let long = "x".repeat(10_000);
        assert!(echo(&long).len() < ECHO_BYTES + 8);
    }

    #[test]
    fn bounds_name_the_field() {
        let l = BTreeMap::new();
        let big = "h".repeat(300);
        let e = enroll(&EnrollClaims {
            token: "t",
            csr_der: &[],
            hostname: &big,
            instance_id: "",
            provider: "",
            labels: &l,
            identity_document: None,
        })
        .unwrap_err();
        assert!(e.0.contains("host name is 300 bytes"), "{e}");
        let mut l = BTreeMap::new();
        l.insert("a b".to_string(), "v".to_string());
        let e = labels(&l).unwrap_err();
        assert!(e.0.contains("label key `a b`"), "{e}");
        let e = result("1.1", &["x".repeat(5000)]).unwrap_err();
        assert!(e.0.contains("evidence line of 5000 bytes"), "{e}");
        let e = result("1.1", &vec!["x".repeat(4000); 20]).unwrap_err();
        assert!(e.0.contains("80000 bytes of evidence"), "{e}");
        assert!(result("", &[]).is_err());
        assert!(result("1.1.1", &["ok".into()]).is_ok());
    }

    #[test]
    fn rate_limiter_refills() {
        let r = RateLimiter::new(2, Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert!(r.allow_at("a", 1, t0));
        assert!(r.allow_at("a", 1, t0));
        assert!(!r.allow_at("a", 1, t0), "the burst is spent");
        assert!(r.allow_at("b", 1, t0), "keys are apart");
        assert!(r.allow_at("a", 1, t0 + Duration::from_millis(600)));
        assert!(!r.allow_at("a", 1, t0 + Duration::from_millis(600)));
    }

    #[test]
    fn collectors_sharing_a_rate_admit_no_more_than_one_would() {
        // 30 a minute from one source, 3 collectors: each admits 10 at once and one
        // every 6 s after; together, the 30 of one collector alone.
        let per_source = || RateLimiter::new(30, Duration::from_secs(60), 30);
        let t0 = Instant::now();
        let three = [per_source(), per_source(), per_source()];
        let admitted: usize = three
            .iter()
            .map(|r| (0..100).filter(|_| r.allow_at("10.0.0.9", 3, t0)).count())
            .sum();
        assert_eq!(admitted, 30);
        let r = &three[0];
        assert!(!r.allow_at("10.0.0.9", 3, t0 + Duration::from_secs(5)));
        assert!(r.allow_at("10.0.0.9", 3, t0 + Duration::from_secs(7)));
        // Alone again, a collector's bucket refills to the whole burst.
        let alone = (0..100)
            .filter(|_| r.allow_at("10.0.0.9", 1, t0 + Duration::from_secs(600)))
            .count();
        assert_eq!(alone, 30);
        // More collectors than the burst: each still admits one.
        let tiny = RateLimiter::new(2, Duration::from_secs(1), 2);
        assert!(tiny.allow_at("", 5, t0));
        assert!(!tiny.allow_at("", 5, t0));
    }
}
