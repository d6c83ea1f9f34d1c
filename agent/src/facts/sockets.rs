//! The sockets listening on the running system, read natively from
//! `/proc/net/{tcp,tcp6,udp,udp6}` once per scan.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::facts::{Fact, FactError, Facts};

/// Transport protocol of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A socket waiting for traffic: a TCP socket in LISTEN state, or an unconnected
/// UDP socket (what `ss -lu` lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub proto: Proto,
    pub addr: IpAddr,
    pub port: u16,
    /// The /proc/net file it was read from.
    pub source: &'static str,
}

impl Listener {
    /// Bound to a loopback address (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104).
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.addr)
    }

    /// An IPv6 socket bound to `::`, which also accepts IPv4 unless IPV6_V6ONLY is set.
    pub fn is_v6_wildcard(&self) -> bool {
        matches!(self.addr, IpAddr::V6(a) if a.is_unspecified())
    }

    /// `tcp 0.0.0.0:25 (/proc/net/tcp)`.
    pub fn describe(&self) -> String {
        let addr = match self.addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        format!(
            "{} {addr}:{} ({})",
            self.proto.as_str(),
            self.port,
            self.source
        )
    }
}

/// Whether an address is a loopback address, including IPv4-mapped loopback.
pub fn is_loopback(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

const SOCKET_TABLES: [(&str, Proto, bool); 4] = [
    ("/proc/net/tcp", Proto::Tcp, false),
    ("/proc/net/tcp6", Proto::Tcp, true),
    ("/proc/net/udp", Proto::Udp, false),
    ("/proc/net/udp6", Proto::Udp, true),
];

/// Every listening socket of the running system, read once per scan. An offline root
/// gives [`FactError::RuntimeOnly`]; a missing table (no IPv6) is simply empty.
pub fn listeners(facts: &Facts) -> Result<Arc<Vec<Listener>>, FactError> {
    facts.get::<Listeners>()
}

/// Every listening socket of the running system, as a fact.
pub struct Listeners;

impl Fact for Listeners {
    type Value = Vec<Listener>;
    fn read(facts: &Facts) -> Result<Vec<Listener>, FactError> {
        let mut out = Vec::new();
        for (path, proto, v6) in SOCKET_TABLES {
            if let Some(text) = facts.read_runtime(path)? {
                out.extend(parse_proc_net(&text, proto, v6, path));
            }
        }
        out.sort_by_key(|a| (a.port, a.proto, a.addr));
        out.dedup();
        Ok(out)
    }
}

/// Parses one /proc/net socket table. Lines that do not parse are skipped.
pub fn parse_proc_net(text: &str, proto: Proto, v6: bool, source: &'static str) -> Vec<Listener> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let Some((addr, port)) = parse_endpoint(f[1], v6) else {
            continue;
        };
        let Some((_, rem_port)) = parse_endpoint(f[2], v6) else {
            continue;
        };
        let listening = match proto {
            // TCP_LISTEN
            Proto::Tcp => f[3].eq_ignore_ascii_case("0A"),
            // TCP_CLOSE with no peer: an unconnected datagram socket.
            Proto::Udp => f[3] == "07" && rem_port == 0,
        };
        if listening {
            out.push(Listener {
                proto,
                addr,
                port,
                source,
            });
        }
    }
    out
}

/// `0100007F:0019` → 127.0.0.1:25. The address words are printed in host byte order.
fn parse_endpoint(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    let addr = if v6 {
        if a.len() != 32 || !a.is_ascii() {
            return None;
        }
        let mut b = [0u8; 16];
        for i in 0..4 {
            b[i * 4..i * 4 + 4].copy_from_slice(&word(&a[i * 8..i * 8 + 8])?);
        }
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        if a.len() != 8 {
            return None;
        }
        IpAddr::V4(Ipv4Addr::from(word(a)?))
    };
    Some((addr, port))
}
