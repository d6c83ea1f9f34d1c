//! Settings, score, enforcement and the handover decision (SPEC §4) as pure
//! functions, and the rules for webhook URLs: their shape, where they may point (never
//! loopback unless the collector's config allows it, never link-local or cloud
//! metadata, unspecified, multicast or broadcast addresses) and how they are shown in
//! logs and the audit log (redacted: a webhook URL often carries a credential in its
//! path).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::store::{ScanRecord, ScanStatus};

/// How results are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Record only; never block.
    #[default]
    Audit,
    /// Record, and alert where block mode would have blocked.
    Warn,
    /// Block handover of a VM whose completed scan breaks the policy.
    Block,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "audit" => Mode::Audit,
            "warn" => Mode::Warn,
            "block" => Mode::Block,
            _ => return None,
        })
    }
}

/// Organisation settings (admin only), with SPEC §4's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub scanning_enabled: bool,
    pub mode: Mode,
    pub profile: String,
    /// 0–100.
    pub min_score: f64,
    pub block_on_critical: bool,
    pub block_on_high: bool,
    pub scan_on_provision: bool,
    pub schedule_enabled: bool,
    /// Standard 5-field crontab expression.
    pub schedule_cron: String,
    pub ssh_user: String,
    pub exempt_rules: BTreeSet<String>,
    pub exempt_projects: BTreeSet<String>,
    /// Where warn-mode alerts are delivered (http or https); empty: nowhere.
    pub webhook_url: String,
    /// The key that signs deliveries (HMAC-SHA256).
    pub webhook_secret: Option<WebhookSecret>,
}

/// A webhook signing key. It is kept in clear (it must sign), so it is never shown:
/// `Debug` prints a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            scanning_enabled: true,
            mode: Mode::Audit,
            profile: "level1-server".into(),
            min_score: 70.0,
            block_on_critical: true,
            block_on_high: false,
            scan_on_provision: true,
            schedule_enabled: false,
            schedule_cron: "0 3 * * *".into(),
            ssh_user: "ubuntu".into(),
            exempt_rules: BTreeSet::new(),
            exempt_projects: BTreeSet::new(),
            webhook_url: String::new(),
            webhook_secret: None,
        }
    }
}

/// Why settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("minimum score {0} is not between 0 and 100")]
    MinScore(String),
    #[error("unknown profile `{0}`; expected level1-server, level2-server, level1-workstation or level2-workstation")]
    Profile(String),
    #[error("schedule `{0}` is not a 5-field crontab expression: {1}")]
    Cron(String, String),
    /// The URL (shown redacted) is malformed.
    #[error("webhook_url `{0}` {1}")]
    WebhookUrl(String, &'static str),
    /// The URL (shown redacted) names an address webhooks may not reach.
    #[error("webhook_url `{url}` {why}")]
    WebhookDestination { url: String, why: String },
    #[error("webhook_secret must be 16 to 512 bytes")]
    WebhookSecret,
}

impl Settings {
    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(0.0..=100.0).contains(&self.min_score) || self.min_score.is_nan() {
            return Err(SettingsError::MinScore(self.min_score.to_string()));
        }
        if ![
            "level1-server",
            "level2-server",
            "level1-workstation",
            "level2-workstation",
        ]
        .contains(&self.profile.as_str())
        {
            return Err(SettingsError::Profile(self.profile.clone()));
        }
        crate::schedule::parse(&self.schedule_cron)
            .map_err(|e| SettingsError::Cron(self.schedule_cron.clone(), e))?;
        if !self.webhook_url.is_empty() {
            check_webhook_url(&self.webhook_url)
                .map_err(|why| SettingsError::WebhookUrl(redact_url(&self.webhook_url), why))?;
        }
        // An empty secret in a request means "remove it".
        if let Some(WebhookSecret(k)) = &self.webhook_secret {
            if !k.is_empty() && !(16..=512).contains(&k.len()) {
                return Err(SettingsError::WebhookSecret);
            }
        }
        Ok(())
    }
}

/// An absolute http or https URL with a host, no credentials and no fragment.
fn check_webhook_url(url: &str) -> Result<(), &'static str> {
    if url.len() > 2048 {
        return Err("is longer than 2048 characters");
    }
    if url.contains('#') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain a fragment, spaces or control characters");
    }
    let uri: hyper::Uri = url.parse().map_err(|_| "is not a URL")?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("must start with http:// or https://");
    }
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not carry credentials (user:password@)");
    }
    if authority.host().is_empty() {
        return Err("has no host");
    }
    Ok(())
}

/// Refuses a webhook URL whose host is a literal IP address webhooks may not reach
/// (see [`ip_refusal`]). Host names are checked at delivery time, after they are
/// resolved, so that a name cannot be pointed at such an address later.
pub fn check_webhook_destination(url: &str, allow_loopback: bool) -> Result<(), SettingsError> {
    let Some(ip) = url
        .parse::<hyper::Uri>()
        .ok()
        .and_then(|u| u.host().map(String::from))
        .and_then(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        })
    else {
        return Ok(());
    };
    match ip_refusal(ip, allow_loopback) {
        None => Ok(()),
        Some(kind) => Err(SettingsError::WebhookDestination {
            url: redact_url(url),
            why: crate::outbound::refusal_words(ip, kind, crate::outbound::Purpose::Webhook),
        }),
    }
}

/// What kind of address `ip` is, when webhooks may not be delivered to it: the
/// collector's own host (`loopback`, unless `allow_loopback`), link-local addresses
/// and cloud metadata services (`link-local`, `cloud metadata`), and addresses that
/// are not one host (`unspecified`, `multicast`, `broadcast`). Private networks are
/// allowed: receivers often live there.
pub fn ip_refusal(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    let kind = match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => v6_kind(v6),
    }?;
    (!(kind == "loopback" && allow_loopback)).then_some(kind)
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_link_local() {
        // 169.254.0.0/16, with 169.254.169.254 (AWS, GCP, Azure, OpenStack metadata).
        "link-local"
    } else if ip == ALIBABA_METADATA {
        "cloud metadata"
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8: "this host on this network".
        "unspecified"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_broadcast() {
        "broadcast"
    } else {
        return None;
    })
}

fn v6_kind(ip: Ipv6Addr) -> Option<&'static str> {
    // fd00:ec2::254: the AWS metadata service over IPv6.
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if first & 0xffc0 == 0xfe80 {
        "link-local"
    } else if ip == AWS_METADATA {
        "cloud metadata"
    } else if ip.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

/// A webhook URL as it may be shown in logs, errors and the audit log: scheme, host
/// and port, with the path and query (where services put their tokens) replaced by
/// `…` and the first 8 hex digits of the whole URL's SHA-256, so that a change is
/// still visible. User information is never shown.
pub fn redact_url(url: &str) -> String {
    if url.is_empty() {
        return String::new();
    }
    let tag: String = ring::digest::digest(&ring::digest::SHA256, url.as_bytes())
        .as_ref()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        return format!("(unreadable URL, sha256 {tag}…)");
    };
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return format!("(unreadable URL, sha256 {tag}…)");
    };
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    let scheme: String = scheme.chars().take(10).collect();
    let host: String = host.chars().take(255).collect();
    match uri.path_and_query().map(|p| p.as_str()) {
        None | Some("" | "/") => format!("{scheme}://{host}{port}/"),
        Some(_) => format!("{scheme}://{host}{port}/…(sha256 {tag})"),
    }
}

/// Counts of one scan, as the agent reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub error: u32,
    pub not_applicable: u32,
    pub failed_critical: u32,
    pub failed_high: u32,
}

/// The scan's score ([`rampart_report::score`]).
pub fn score(c: &Counts) -> Option<f64> {
    rampart_report::score(c.passed, c.failed, c.error)
}

/// What enforcement decided for a completed scan.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Handover is blocked (block mode only).
    pub blocked: bool,
    /// An alert is due (warn mode, where block mode would have blocked).
    pub alert: bool,
    /// Every reason the policy was broken, in words.
    pub reasons: Vec<String>,
}

/// Applies the policy to a completed scan of a VM in `project`.
pub fn enforce(s: &Settings, c: &Counts, project: Option<&str>) -> Verdict {
    if project.is_some_and(|p| s.exempt_projects.contains(p)) {
        return Verdict::default();
    }
    let mut reasons = Vec::new();
    if s.block_on_critical && c.failed_critical > 0 {
        reasons.push(format!(
            "{} critical CIS check(s) failed",
            c.failed_critical
        ));
    }
    if s.block_on_high && c.failed_high > 0 {
        reasons.push(format!("{} high CIS check(s) failed", c.failed_high));
    }
    match score(c) {
        Some(sc) if sc < s.min_score => reasons.push(format!(
            "score {sc:.1}% is below the minimum of {}%",
            trim(s.min_score)
        )),
        None if s.min_score > 0.0 => reasons.push("no rule could be scored".into()),
        _ => {}
    }
    let broken = !reasons.is_empty();
    Verdict {
        blocked: broken && s.mode == Mode::Block,
        alert: broken && s.mode == Mode::Warn,
        reasons,
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// What the handover gate decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub allowed: bool,
    /// `allowed`, `released`, `exempt`, `pending`, `blocked`, `failed`.
    pub state: &'static str,
    pub reasons: Vec<String>,
    /// The decision rests on the agent's newest scan (its ID is shown).
    pub on_scan: bool,
}

/// The handover decision for an agent of `project` whose newest scan is `latest`.
pub fn handover(s: &Settings, project: Option<&str>, latest: Option<&ScanRecord>) -> Handover {
    let answer = |allowed, state, reasons: Vec<String>, on_scan| Handover {
        allowed,
        state,
        reasons,
        on_scan,
    };
    if let Some(p) = project.filter(|p| s.exempt_projects.contains(*p)) {
        return answer(
            true,
            "exempt",
            vec![format!("project {p} is exempt from scanning")],
            false,
        );
    }
    if !s.scanning_enabled {
        return answer(
            true,
            "allowed",
            vec!["CIS scanning is disabled".into()],
            false,
        );
    }
    let Some(scan) = latest else {
        return answer(
            false,
            "pending",
            vec!["no scan has been made yet".into()],
            false,
        );
    };
    match scan.status {
        ScanStatus::Pending => answer(
            false,
            "pending",
            vec![format!("scan {} is pending", scan.id)],
            true,
        ),
        ScanStatus::Running => answer(
            false,
            "pending",
            vec![format!("scan {} is running", scan.id)],
            true,
        ),
        ScanStatus::Failed => answer(
            false,
            "failed",
            vec![format!(
                "scan {} failed: {}",
                scan.id,
                scan.failure_reason.clone().unwrap_or_default()
            )],
            true,
        ),
        ScanStatus::Cancelled => answer(
            false,
            "pending",
            vec![format!("scan {} was cancelled; no completed scan", scan.id)],
            true,
        ),
        ScanStatus::Completed => match (&scan.released_by, scan.blocked) {
            (Some(by), true) => answer(
                true,
                "released",
                vec![format!(
                    "released by {by} despite: {}",
                    scan.block_reasons.join("; ")
                )],
                true,
            ),
            (None, true) => answer(false, "blocked", scan.block_reasons.clone(), true),
            (_, false) => answer(true, "allowed", vec![], true),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(passed: u32, failed: u32, error: u32, crit: u32, high: u32) -> Counts {
        Counts {
            passed,
            failed,
            error,
            not_applicable: 5,
            failed_critical: crit,
            failed_high: high,
        }
    }

    #[test]
    fn the_handover_decision_table() {
        let on = Settings {
            exempt_projects: ["lab".to_string()].into_iter().collect(),
            ..Settings::default()
        };
        let off = Settings {
            scanning_enabled: false,
            ..on.clone()
        };
        let scan = |status: ScanStatus, blocked: bool, released: bool| {
            let mut s = ScanRecord::pending("sc-1".into(), "ag", None, "manual", "p", 0);
            s.status = status;
            s.blocked = blocked;
            s.block_reasons = if blocked {
                vec!["low score".into()]
            } else {
                vec![]
            };
            s.released_by = released.then(|| "ann".to_string());
            s.failure_reason = Some("disk full".into());
            s
        };
        use ScanStatus::*;
        // Settings, project, newest scan; allowed, state, reasons, rests on the scan.
        type Case<'a> = (
            &'a Settings,
            Option<&'a str>,
            Option<ScanRecord>,
            bool,
            &'a str,
            &'a str,
            bool,
        );
        let cases: Vec<Case> = vec![
            (
                &on,
                Some("lab"),
                Some(scan(Completed, true, false)),
                true,
                "exempt",
                "project lab is exempt from scanning",
                false,
            ),
            (
                &off,
                Some("web"),
                Some(scan(Completed, true, false)),
                true,
                "allowed",
                "CIS scanning is disabled",
                false,
            ),
            (
                &on,
                None,
                None,
                false,
                "pending",
                "no scan has been made yet",
                false,
            ),
            (
                &on,
                None,
                Some(scan(Pending, false, false)),
                false,
                "pending",
                "scan sc-1 is pending",
                true,
            ),
            (
                &on,
                None,
                Some(scan(Running, false, false)),
                false,
                "pending",
                "scan sc-1 is running",
                true,
            ),
            (
                &on,
                None,
                Some(scan(Failed, false, false)),
                false,
                "failed",
                "scan sc-1 failed: disk full",
                true,
            ),
            (
                &on,
                None,
                Some(scan(Cancelled, false, false)),
                false,
                "pending",
                "scan sc-1 was cancelled; no completed scan",
                true,
            ),
            (
                &on,
                Some("web"),
                Some(scan(Completed, false, false)),
                true,
                "allowed",
                "",
                true,
            ),
            (
                &on,
                None,
                Some(scan(Completed, true, false)),
                false,
                "blocked",
                "low score",
                true,
            ),
            (
                &on,
                None,
                Some(scan(Completed, true, true)),
                true,
                "released",
                "released by ann despite: low score",
                true,
            ),
        ];
        for (s, project, latest, allowed, state, reasons, on_scan) in cases {
            let h = handover(s, project, latest.as_ref());
            assert_eq!(
                (h.allowed, h.state, h.reasons.join("; "), h.on_scan),
                (allowed, state, reasons.to_string(), on_scan),
                "{project:?} {latest:?}"
            );
        }
    }

    #[test]
    fn webhook_settings_are_checked() {
        let with = |url: &str, secret: Option<&str>| Settings {
            webhook_url: url.into(),
            webhook_secret: secret.map(|k| WebhookSecret(k.into())),
            ..Settings::default()
        };
        for ok in [
            with("", None),
            with(
                "https://hooks.example/rampart?x=1",
                Some("0123456789abcdef"),
            ),
            with("http://127.0.0.1:9000/hook", Some("")),
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
        }
        for (bad, want) in [
            (with("ftp://x/", None), "http:// or https://"),
            (with("hooks.example/x", None), "not a URL"),
            (with("https://u:p@hooks.example/", None), "credentials"),
            (with("https://hooks.example/#x", None), "fragment"),
            (with("http://", None), "not a URL"),
            (with("https://h.example/", Some("short")), "16 to 512"),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert!(
            !format!("{:?}", with("", Some("0123456789abcdef"))).contains("0123456789abcdef"),
            "Debug never shows the secret"
        );
    }

    #[test]
    fn webhook_destinations_table() {
        for (url, allow_loopback, want) in [
            ("https://hooks.example/x", false, None),
            ("http://10.1.2.3:8080/x", false, None),
            ("http://192.168.1.5/x", false, None),
            ("http://127.0.0.1:9000/x", false, Some("loopback")),
            ("http://127.0.0.1:9000/x", true, None),
            ("http://127.9.9.9/x", false, Some("loopback")),
            ("http://[::1]:80/x", false, Some("loopback")),
            ("http://[::1]:80/x", true, None),
            ("http://[::ffff:127.0.0.1]/x", false, Some("loopback")),
            (
                "http://169.254.169.254/latest/meta-data/",
                false,
                Some("link-local"),
            ),
            (
                "http://169.254.169.254/latest/meta-data/",
                true,
                Some("link-local"),
            ),
            ("http://[fe80::1]/x", true, Some("link-local")),
            ("http://[fd00:ec2::254]/x", false, Some("cloud metadata")),
            ("http://100.100.100.200/x", false, Some("cloud metadata")),
            ("http://0.0.0.0:80/x", true, Some("unspecified")),
            ("http://[::]/x", false, Some("unspecified")),
            ("http://224.0.0.1/x", false, Some("multicast")),
            ("http://[ff02::1]/x", false, Some("multicast")),
            ("http://255.255.255.255/x", false, Some("broadcast")),
            // Names are checked when resolved, at delivery time.
            ("http://localhost:9000/x", false, None),
        ] {
            let got = check_webhook_destination(url, allow_loopback);
            match want {
                None => assert_eq!(got, Ok(()), "{url}"),
                Some(kind) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(&format!(" {kind} address")), "{url}: {e}");
                    assert!(!e.contains("/x") && !e.contains("meta-data"), "{e}");
                    assert_eq!(
                        e.contains("webhook_allow_loopback = true"),
                        kind == "loopback",
                        "{e}"
                    );
                }
            }
        }
    }

    #[test]
    fn webhook_urls_are_redacted() {
        let slack = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX";
        let r = redact_url(slack);
        assert!(r.starts_with("https://hooks.slack.com/…(sha256 "), "{r}");
        assert!(!r.contains("services") && !r.contains("secret"), "{r}");
        assert_ne!(
            r,
            redact_url("https://hooks.slack.com/services/T000/B000/other")
        );
        assert_eq!(r, redact_url(slack));
        assert_eq!(
            redact_url("http://[::1]:8080/hook?token=abc")
                .split('…')
                .next(),
            Some("http://[::1]:8080/")
        );
        assert!(!redact_url("http://h.example/?token=abc").contains("abc"));
        assert_eq!(redact_url("https://h.example"), "https://h.example/");
        assert_eq!(redact_url(""), "");
        let odd = redact_url("not a url with a secret");
        assert!(
            odd.starts_with("(unreadable URL") && !odd.contains("secret"),
            "{odd}"
        );
        // Errors about a URL show it redacted.
        let bad = Settings {
            webhook_url: "ftp://x.example/secret-token".into(),
            ..Settings::default()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("ftp://x.example/…") && !e.contains("secret-token"),
            "{e}"
        );
    }

    #[test]
    fn score_table() {
        for (c, want) in [
            (counts(7, 3, 0, 0, 0), Some(70.0)),
            (counts(2, 1, 0, 0, 0), Some(66.7)),
            (counts(1, 0, 1, 0, 0), Some(50.0)),
            (counts(0, 0, 0, 0, 0), None),
            (counts(10, 0, 0, 0, 0), Some(100.0)),
        ] {
            assert_eq!(score(&c), want, "{c:?}");
        }
    }

    #[test]
    fn enforcement_table() {
        let block = Settings {
            mode: Mode::Block,
            ..Settings::default()
        };
        let block_high = Settings {
            block_on_high: true,
            ..block.clone()
        };
        let no_crit = Settings {
            block_on_critical: false,
            ..block.clone()
        };
        let warn = Settings {
            mode: Mode::Warn,
            ..Settings::default()
        };
        let audit = Settings::default();
        let mut exempt = block.clone();
        exempt.exempt_projects.insert("lab".into());
        // name, settings, counts, project, blocked, alert, reasons
        type Case<'a> = (
            &'a str,
            &'a Settings,
            Counts,
            Option<&'a str>,
            bool,
            bool,
            Vec<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "clean pass",
                &block,
                counts(9, 1, 0, 0, 0),
                None,
                false,
                false,
                vec![],
            ),
            (
                "critical blocks",
                &block,
                counts(97, 3, 0, 3, 0),
                None,
                true,
                false,
                vec!["3 critical CIS check(s) failed"],
            ),
            (
                "critical off",
                &no_crit,
                counts(97, 3, 0, 3, 0),
                None,
                false,
                false,
                vec![],
            ),
            (
                "high off by default",
                &block,
                counts(97, 3, 0, 0, 2),
                None,
                false,
                false,
                vec![],
            ),
            (
                "high on",
                &block_high,
                counts(97, 3, 0, 0, 2),
                None,
                true,
                false,
                vec!["2 high CIS check(s) failed"],
            ),
            (
                "low score",
                &block,
                counts(642, 358, 0, 0, 0),
                None,
                true,
                false,
                vec!["score 64.2% is below the minimum of 70%"],
            ),
            (
                "all reasons",
                &block_high,
                counts(5, 5, 0, 1, 1),
                None,
                true,
                false,
                vec![
                    "1 critical CIS check(s) failed",
                    "1 high CIS check(s) failed",
                    "score 50.0% is below the minimum of 70%",
                ],
            ),
            (
                "exactly the minimum passes",
                &block,
                counts(7, 3, 0, 0, 0),
                None,
                false,
                false,
                vec![],
            ),
            (
                "errors count against the score",
                &block,
                counts(6, 0, 4, 0, 0),
                None,
                true,
                false,
                vec!["score 60.0% is below the minimum of 70%"],
            ),
            (
                "warn alerts, never blocks",
                &warn,
                counts(1, 1, 0, 1, 0),
                None,
                false,
                true,
                vec![
                    "1 critical CIS check(s) failed",
                    "score 50.0% is below the minimum of 70%",
                ],
            ),
            (
                "audit records only",
                &audit,
                counts(1, 1, 0, 1, 0),
                None,
                false,
                false,
                vec![
                    "1 critical CIS check(s) failed",
                    "score 50.0% is below the minimum of 70%",
                ],
            ),
            (
                "exempt project",
                &exempt,
                counts(1, 1, 0, 1, 0),
                Some("lab"),
                false,
                false,
                vec![],
            ),
            (
                "other project",
                &exempt,
                counts(1, 1, 0, 1, 0),
                Some("prod"),
                true,
                false,
                vec![
                    "1 critical CIS check(s) failed",
                    "score 50.0% is below the minimum of 70%",
                ],
            ),
        ];
        for (name, s, c, project, blocked, alert, reasons) in cases {
            let v = enforce(s, &c, project);
            assert_eq!((v.blocked, v.alert), (blocked, alert), "{name}");
            assert_eq!(v.reasons, reasons, "{name}");
        }
    }

    #[test]
    fn settings_validation() {
        assert_eq!(Settings::default().validate(), Ok(()));
        assert!(matches!(
            Settings {
                min_score: 101.0,
                ..Settings::default()
            }
            .validate(),
            Err(SettingsError::MinScore(_))
        ));
        assert!(matches!(
            Settings {
                profile: "level3".into(),
                ..Settings::default()
            }
            .validate(),
            Err(SettingsError::Profile(_))
        ));
        assert!(matches!(
            Settings {
                schedule_cron: "0 0 3 * * *".into(),
                ..Settings::default()
            }
            .validate(),
            Err(SettingsError::Cron(..))
        ));
    }
}
