//! `rampart-collector backup`: from the store itself when the collector is
//! stopped, through `GET /api/v1/admin/backup` of the running collector otherwise
//! (it holds the store's lock); the file is checked before it takes its name.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{io_at, take, verify, BackupError, Manifest, Restored, Result};
use crate::store::sled_store::SledStore;
use crate::store::Store;

/// How `rampart-collector backup` reaches a running collector.
#[derive(Debug, Default, Clone)]
pub struct Remote {
    /// The REST API's base URL; from the config's `rest_listen` and `rest_tls` when
    /// none is given.
    pub url: Option<String>,
    /// An admin's API token.
    pub token: Option<String>,
}

/// The REST API's base URL as the config says it listens (an unspecified address
/// reached on loopback).
pub fn rest_url(cfg: &crate::config::Config) -> String {
    let mut addr = cfg.rest_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let scheme = if cfg.rest_tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// A file created for the backup (mode 0600), renamed to its name once complete and
/// checked, removed if not.
struct Partial {
    path: PathBuf,
    keep: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// What `backup` did.
#[derive(Debug)]
pub struct Taken {
    pub manifest: Manifest,
    pub bytes: u64,
    /// Through the running collector's API, or from the store directly.
    pub remote: bool,
    pub seconds: f64,
}

/// `rampart-collector backup`: a backup of the collector of `cfg` into `to` (a new
/// file, mode 0600): from the store itself when the collector is stopped, through its
/// API while it runs (it holds the store's lock).
pub async fn backup_command(
    cfg: &crate::config::Config,
    to: &Path,
    remote: &Remote,
) -> Result<Taken> {
    let start = Instant::now();
    if let Some(url) = &cfg.store {
        let kind = url.split(':').next().unwrap_or("external");
        return Err(BackupError::Unsupported(format!(
            "this collector's store is {kind} (PostgreSQL): back it up with pg_dump (docs/postgres.md), \
             and copy {} and {} beside it",
            cfg.data_dir.join("ca").display(),
            cfg.data_dir.join("ssh").display()
        )));
    }
    let db = cfg.data_dir.join("db");
    if !db.is_dir() {
        return Err(BackupError::Unsupported(format!(
            "no collector database at {}",
            db.display()
        )));
    }
    if to.exists() {
        return Err(BackupError::Unsupported(format!(
            "{} exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let partial_path = to.with_file_name(name);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial_path)
        .map_err(io_at(&partial_path))?;
    let mut partial = Partial {
        path: partial_path.clone(),
        keep: false,
    };
    let (store, remote_used) = match SledStore::open_if_unlocked(&db)? {
        Some(store) => (Some(store), false),
        None => (None, true),
    };
    let bytes = match store {
        Some(store) => {
            let out = io::BufWriter::with_capacity(1 << 20, &file);
            let (_, bytes) = take(&store, &cfg.data_dir, "cli", out)?;
            store.sync()?;
            bytes
        }
        None => {
            let url = remote.url.clone().unwrap_or_else(|| rest_url(cfg));
            let token = remote.token.clone().ok_or_else(|| {
                BackupError::Unsupported(format!(
                    "the collector is running (its database {} is locked): the backup is asked of it \
                     through its API, which needs an admin token (--token-file FILE or RAMPART_ADMIN_TOKEN)",
                    db.display()
                ))
            })?;
            let ca = cfg.data_dir.join("ca").join("ca.crt");
            let ca_pem = fs::read(&ca).map_err(io_at(&ca))?;
            fetch(&url, &token, &ca_pem, &file).await?
        }
    };
    file.sync_all().map_err(io_at(&partial_path))?;
    let reread = fs::File::open(&partial_path).map_err(io_at(&partial_path))?;
    let manifest = verify(io::BufReader::with_capacity(1 << 20, reread))?;
    fs::rename(&partial_path, to).map_err(io_at(to))?;
    partial.keep = true;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(Taken {
        manifest,
        bytes,
        remote: remote_used,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Time allowed to connect, and between two pieces of the answer.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(300);

/// `GET /api/v1/admin/backup` of the collector at `url` into `out`; HTTPS trusts
/// only the collector's own CA. Returns the bytes written.
async fn fetch(url: &str, token: &str, ca_pem: &[u8], out: &fs::File) -> Result<u64> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;

    let remote = |m: String| BackupError::Remote(m);
    let uri: hyper::Uri = format!("{}/api/v1/admin/backup", url.trim_end_matches('/'))
        .parse()
        .map_err(|e| remote(format!("{url} is not a URL: {e}")))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(remote(format!(
                "{url}: the URL must be http:// or https://"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| remote(format!("{url} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::time::timeout(
        REMOTE_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| remote(format!("connecting to {host}:{port} timed out")))?
    .map_err(|e| {
        remote(format!(
            "cannot connect to the collector at {host}:{port}: {e}"
        ))
    })?;
    let req = hyper::Request::get(uri.path())
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.clone(), |a| a.to_string()),
        )
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(
            hyper::header::USER_AGENT,
            concat!("rampart-collector/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| remote(format!("cannot build the request: {e}")))?;
    let response = if https {
        let tls = tls_to_collector(ca_pem)?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| remote(format!("{host} is not a server name: {e}")))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| remote(format!("TLS with the collector at {host}:{port}: {e}")))?;
        send(TokioIo::new(stream), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    let status = response.status();
    let mut body = response.into_body();
    if status != hyper::StatusCode::OK {
        let text = tokio::time::timeout(Duration::from_secs(10), async {
            let mut got = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(d) = frame.data_ref() {
                    got.extend_from_slice(d);
                    if got.len() > 64 << 10 {
                        break;
                    }
                }
            }
            got
        })
        .await
        .unwrap_or_default();
        let said = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&text).into_owned());
        return Err(remote(format!(
            "the collector refused the backup ({status}): {said}"
        )));
    }
    let mut w = io::BufWriter::with_capacity(1 << 20, out);
    let mut bytes = 0u64;
    loop {
        let frame = tokio::time::timeout(REMOTE_TIMEOUT, body.frame())
            .await
            .map_err(|_| remote("the collector sent nothing for 300 s".into()))?;
        match frame {
            None => break,
            Some(Err(e)) => {
                return Err(remote(format!(
                    "the collector's answer broke off after {bytes} bytes: {e}"
                )))
            }
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    w.write_all(d).map_err(BackupError::Write)?;
                    bytes += d.len() as u64;
                }
            }
        }
    }
    w.flush().map_err(BackupError::Write)?;
    Ok(bytes)
}

async fn send<I>(
    io: I,
    req: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| BackupError::Remote(format!("HTTP with the collector: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(REMOTE_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| BackupError::Remote("the collector did not answer within 300 s".into()))?
        .map_err(|e| BackupError::Remote(format!("the request to the collector failed: {e}")))
}

/// A TLS client that trusts exactly the collector's CA.
fn tls_to_collector(ca_pem: &[u8]) -> Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: String| BackupError::Remote(format!("the collector's CA certificate: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)))
}

/// What `backup` prints.
pub fn describe_taken(t: &Taken, to: &Path) -> String {
    let m = &t.manifest;
    format!(
        "backup written to {} ({} bytes, mode 0600: it holds the CA's private key) in {:.1} s, {}\n\
         {} agents, {} scans, {} result records, {} audit entries (head seq {}, {}), {} files\n\
         writes were held {:.3} ms for the cut",
        to.display(),
        t.bytes,
        t.seconds,
        if t.remote {
            "through the running collector's API"
        } else {
            "from the stopped collector's store"
        },
        m.counts.agents,
        m.counts.scans,
        m.counts.results,
        m.counts.audit,
        m.audit_head_seq,
        m.audit_head_hash,
        m.counts.files,
        m.cut_pause_us as f64 / 1000.0,
    )
}

/// What `restore` prints.
pub fn describe_restored(r: &Restored, data: &Path) -> String {
    let m = &r.manifest;
    format!(
        "restored into {} in {:.1} s ({:.1} s to write it, {:.1} s to rebuild the indexes and check it): {} agents, {} scans, {} result records, {} audit entries \
         (chain intact, head {}), {} files; taken by {} with collector {}\n\
         start it with: rampart-collector serve --data {}",
        data.display(),
        r.seconds,
        r.load_seconds,
        r.check_seconds,
        m.counts.agents,
        m.counts.scans,
        m.counts.results,
        m.counts.audit,
        m.audit_head_hash,
        m.counts.files,
        m.created_by,
        m.collector_version,
        data.display(),
    )
}
