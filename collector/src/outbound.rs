//! Connections the collector opens itself — webhook deliveries and scans over SSH —
//! to a host someone else named. The host is resolved once, the addresses the
//! collector may not reach are dropped ([`crate::policy::ip_refusal`]: its own host
//! unless allowed, link-local and cloud metadata, unspecified, multicast), and only
//! an address that was checked is connected to, so a name re-pointed between the
//! check and the connection (DNS rebinding) cannot reach them.

use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;

/// Who connects, for the words of a refusal.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Webhook,
    SshScan,
}

impl Purpose {
    fn noun(self) -> &'static str {
        match self {
            Purpose::Webhook => "webhooks",
            Purpose::SshScan => "SSH scans",
        }
    }

    fn loopback_setting(self) -> &'static str {
        match self {
            Purpose::Webhook => "webhook_allow_loopback",
            Purpose::SshScan => "ssh_allow_loopback",
        }
    }
}

/// Why `ip` (of kind `kind`, from `ip_refusal`) may not be reached, in words, with
/// the way out when there is one.
pub fn refusal_words(ip: IpAddr, kind: &str, purpose: Purpose) -> String {
    let hint = if kind == "loopback" {
        format!(
            " (set {} = true in the collector's config to allow this host)",
            purpose.loopback_setting()
        )
    } else {
        String::new()
    };
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!(
        "points at {ip}, {article} {kind} address, which {} may not reach{hint}",
        purpose.noun()
    )
}

/// The addresses of `host` that may be reached; an error naming the first refused
/// address when none is left.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_loopback: bool,
    purpose: Purpose,
) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
        .into_iter()
        .partition(|a| crate::policy::ip_refusal(a.ip(), allow_loopback).is_none());
    if !allowed.is_empty() {
        return Ok(allowed);
    }
    match refused.first() {
        Some(a) => {
            let kind = crate::policy::ip_refusal(a.ip(), allow_loopback).unwrap_or("refused");
            Err(format!(
                "refused: {host} {}",
                refusal_words(a.ip(), kind, purpose)
            ))
        }
        None => Err(format!("cannot resolve {host}: no addresses")),
    }
}

/// Connects to the first of `addrs` that answers.
pub async fn connect(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn metadata_link_local_and_this_host_are_refused_private_networks_are_not() {
        let e = resolve("169.254.169.254", 22, true, Purpose::SshScan)
            .await
            .unwrap_err();
        assert!(
            e.contains("link-local address, which SSH scans may not reach"),
            "{e}"
        );
        let e = resolve("fd00:ec2::254", 22, true, Purpose::SshScan)
            .await
            .unwrap_err();
        assert!(e.contains("cloud metadata"), "{e}");
        let e = resolve("127.0.0.1", 22, false, Purpose::SshScan)
            .await
            .unwrap_err();
        assert!(e.contains("set ssh_allow_loopback = true"), "{e}");
        let e = resolve("0.0.0.0", 22, true, Purpose::Webhook)
            .await
            .unwrap_err();
        assert!(e.contains("which webhooks may not reach"), "{e}");
        assert_eq!(
            resolve("127.0.0.1", 22, true, Purpose::SshScan).await,
            Ok(vec!["127.0.0.1:22".parse().unwrap()])
        );
        assert_eq!(
            resolve("10.1.2.3", 22, false, Purpose::SshScan).await,
            Ok(vec!["10.1.2.3:22".parse().unwrap()])
        );
    }
}
