//! `rampart-collector healthcheck`: the collector's own liveness probe, for a container
//! built from scratch (no shell, no curl) and for anything else that runs a command to
//! ask. It sends `GET /healthz` to the REST listener of the collector on this host —
//! over HTTPS trusting only the collector's CA when `rest_tls` is on — and succeeds
//! only on a `200` answer. Every step is bounded by [`TIMEOUT`].

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};

use crate::config::Config;

/// How long connecting, and then each read or write, may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer read before its status line must have ended.
const MAX_HEAD: usize = 8 * 1024;

/// Why the collector was found unhealthy (or could not be asked).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The collector's CA certificate, which the REST listener's certificate is
    /// checked against, could not be read.
    #[error("cannot read the collector's CA certificate {path}: {source}")]
    Ca {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The CA certificate file holds no certificate, or no server name is configured.
    #[error("cannot set up TLS to the REST listener: {0}")]
    Tls(String),
    /// The CA certificate file holds something that is not a PEM certificate.
    #[error("cannot set up TLS to the REST listener: {path}: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the CA certificate.
    #[error("cannot set up TLS to the REST listener: {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    /// rustls refused the protocol versions.
    #[error("cannot set up TLS to the REST listener: {0}")]
    Rustls(#[source] rustls::Error),
    /// The first configured server name is not a valid DNS name or address.
    #[error("cannot set up TLS to the REST listener: server name `{name}`: {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// Connecting, the TLS handshake, sending or reading failed or timed out.
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    /// The listener answered, but not with `200`.
    #[error("{url} answered `{status_line}`")]
    Status { url: String, status_line: String },
}

/// What to ask: the address and, with `rest_tls`, how to check the listener.
pub struct Probe {
    addr: SocketAddr,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// The address to connect to for a listener bound to `listen`: a wildcard address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn connect_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

impl Probe {
    /// The probe of a collector running with `config`: its `rest_listen`, and with
    /// `rest_tls` its CA certificate (`<data_dir>/ca/ca.crt`) as the only root and its
    /// first server name as the name checked.
    pub fn for_config(config: &Config) -> Result<Probe, HealthError> {
        let addr = connect_addr(config.rest_listen);
        if !config.rest_tls {
            return Ok(Probe { addr, tls: None });
        }
        let path = crate::ca::cert_path(&config.data_dir);
        let pem = std::fs::read(&path).map_err(|source| HealthError::Ca {
            path: path.clone(),
            source,
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|source| HealthError::Pem {
                path: path.clone(),
                source,
            })?;
            roots.add(cert).map_err(|source| HealthError::Root {
                path: path.clone(),
                source,
            })?;
        }
        if roots.is_empty() {
            return Err(HealthError::Tls(format!(
                "{}: no certificate",
                path.display()
            )));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(HealthError::Rustls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let first = config
            .server_names
            .first()
            .ok_or_else(|| HealthError::Tls("no server_names".into()))?;
        let name =
            ServerName::try_from(first.clone()).map_err(|source| HealthError::ServerName {
                name: first.clone(),
                source,
            })?;
        Ok(Probe {
            addr,
            tls: Some((Arc::new(tls), name)),
        })
    }

    /// The URL asked, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/healthz", self.addr)
    }

    /// Asks once: `Ok` when `/healthz` answers `200`.
    pub fn check(&self) -> Result<(), HealthError> {
        let io = |source| HealthError::Io {
            url: self.url(),
            source,
        };
        let tcp = TcpStream::connect_timeout(&self.addr, TIMEOUT).map_err(io)?;
        tcp.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        tcp.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let status_line = match &self.tls {
            None => status_line(tcp),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(HealthError::Rustls)?;
                status_line(rustls::StreamOwned::new(conn, tcp))
            }
        }
        .map_err(io)?;
        if is_ok(&status_line) {
            Ok(())
        } else {
            Err(HealthError::Status {
                url: self.url(),
                status_line,
            })
        }
    }
}

/// Sends the request and reads the answer's status line.
fn status_line(mut s: impl Read + Write) -> std::io::Result<String> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    s.flush()?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(2).position(|w| w == b"\r\n") {
            return Ok(String::from_utf8_lossy(&head[..end]).into_owned());
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("no status line in the answer"));
        }
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Whether an HTTP status line says `200`.
fn is_ok(status_line: &str) -> bool {
    let mut parts = status_line.split_whitespace();
    parts.next().is_some_and(|v| v.starts_with("HTTP/")) && parts.next() == Some("200")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn wildcard_listeners_are_asked_on_loopback() {
        for (listen, want) in [
            ("0.0.0.0:8080", "127.0.0.1:8080"),
            ("[::]:8080", "[::1]:8080"),
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("192.0.2.7:8080", "192.0.2.7:8080"),
        ] {
            assert_eq!(
                connect_addr(listen.parse().unwrap()),
                want.parse().unwrap(),
                "{listen}"
            );
        }
    }

    #[test]
    fn only_200_is_healthy() {
        for (line, ok) in [
            ("HTTP/1.1 200 OK", true),
            ("HTTP/1.0 200", true),
            ("HTTP/1.1 503 Service Unavailable", false),
            ("HTTP/1.1 2000 OK", false),
            ("SSH-2.0-OpenSSH_9.2 200", false),
            ("", false),
        ] {
            assert_eq!(is_ok(line), ok, "{line:?}");
        }
    }

    /// A plain listener answering one connection with `answer`, then closing.
    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 512];
            let _ = s.read(&mut req);
            let _ = s.write_all(answer);
        });
        addr
    }

    fn probe(addr: SocketAddr) -> Result<(), HealthError> {
        let config = Config {
            rest_listen: addr,
            ..Config::default()
        };
        Probe::for_config(&config).unwrap().check()
    }

    #[test]
    fn asks_healthz_and_judges_the_answer() {
        probe(serve_once(
            b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n",
        ))
        .unwrap();
        let e = probe(serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")).unwrap_err();
        assert!(
            matches!(&e, HealthError::Status { status_line, .. } if status_line.contains("503")),
            "{e}"
        );
        let e = probe(serve_once(b"")).unwrap_err();
        assert!(matches!(e, HealthError::Io { .. }), "{e}");
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = probe(port).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("http://{port}/healthz: ")),
            "{e}"
        );
    }

    #[test]
    fn tls_needs_the_collectors_ca() {
        let d = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: d.path().to_path_buf(),
            rest_tls: true,
            ..Config::default()
        };
        let e = Probe::for_config(&config).err().expect("no CA yet");
        assert!(e.to_string().contains("ca.crt"), "{e}");
        crate::ca::Ca::open_or_create(&d.path().join("ca")).unwrap();
        let p = Probe::for_config(&config).unwrap();
        assert_eq!(p.url(), "https://127.0.0.1:8080/healthz");
    }
}
