//! Webhook URLs: their shape, where they may point (never loopback unless the
//! collector's config allows it, never link-local or cloud metadata, unspecified,
//! multicast or broadcast addresses) and how they are shown (redacted).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::SettingsError;

/// An absolute http or https URL with a host, no credentials and no fragment.
pub(super) fn check_webhook_url(url: &str) -> Result<(), &'static str> {
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
