//! Connections, before any request is read: how many each port holds (in all, per
//! source address for the ones nobody has authenticated, per agent for the ones a
//! client certificate authenticated), how long a TLS
//! handshake may take, how long a REST client may take to send its request headers
//! (and sit idle between requests), and how long a connection to the agents' port
//! without a client certificate may live. Exceeding a bound closes (or, on plain
//! HTTP, answers 503 to) that connection only.
//!
//! [`grpc_incoming`] feeds tonic; [`serve_rest`] serves the REST router with hyper's
//! HTTP/1 server directly, because `axum::serve` cannot set a header timeout.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;

use crate::metrics::Limit;
use crate::tls::TlsState;

/// A TLS handshake that takes longer than this is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections refused or cut by the bounds here: the counters of `/metrics`
/// (`rampart_limit_refusals_total{kind="grpc_connections"|"rest_connections"}`).
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections to the agents' port closed at once: a cap was reached.
    pub grpc_refused: Counter,
    /// Connections to the REST port refused at once: a cap was reached.
    pub rest_refused: Counter,
}

impl ConnStats {
    /// Counting into the metrics' registry.
    pub fn of(m: &crate::metrics::Metrics) -> ConnStats {
        ConnStats {
            grpc_refused: m.limit(Limit::GrpcConnections),
            rest_refused: m.limit(Limit::RestConnections),
        }
    }
}

/// The key a source address is counted under: the address itself for IPv4, its
/// /64 for IPv6 (one host usually holds a whole /64).
pub(crate) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// What a connection is counted under besides the total.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Not authenticated (yet): its source address (see [`source_key`]).
    Source(IpAddr),
    /// Authenticated by a client certificate naming this agent.
    Agent(String),
}

type Counts = (usize, HashMap<Key, usize>);

/// Caps on open connections: in all, per source while not authenticated, and per
/// agent once authenticated.
#[derive(Debug)]
pub struct Gate {
    max_total: usize,
    max_per_source: usize,
    max_per_agent: usize,
    state: Mutex<Counts>,
}

impl Gate {
    pub fn new(max_total: usize, max_per_source: usize, max_per_agent: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_total,
            max_per_source,
            max_per_agent,
            state: Mutex::new((0, HashMap::new())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `source` unless a cap is reached; it counts until
    /// the slot is dropped.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let key = Key::Source(source_key(source));
        let mut st = self.lock();
        let from_source = st.1.get(&key).copied().unwrap_or(0);
        if st.0 >= self.max_total || from_source >= self.max_per_source {
            return None;
        }
        st.0 += 1;
        st.1.insert(key.clone(), from_source + 1);
        Some(Slot {
            gate: self.clone(),
            key: Some(key),
        })
    }

    fn release(st: &mut Counts, key: &Key) {
        if let Some(n) = st.1.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                st.1.remove(key);
            }
        }
    }

    /// (open connections, sources and agents counted), for tests.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.0, st.1.len())
    }
}

/// One admitted connection.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    key: Option<Key>,
}

impl Slot {
    /// The connection authenticated as `agent` (a client certificate): it no
    /// longer counts against its source but against that agent. False, and nothing
    /// changed, when the agent already has its most connections open.
    pub fn authenticated(&mut self, agent: &str) -> bool {
        let key = Key::Agent(agent.to_string());
        let mut st = self.gate.lock();
        let held = st.1.get(&key).copied().unwrap_or(0);
        if held >= self.gate.max_per_agent {
            return false;
        }
        if let Some(old) = self.key.take() {
            Gate::release(&mut st, &old);
        }
        st.1.insert(key.clone(), held + 1);
        self.key = Some(key);
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.gate.lock();
        st.0 -= 1;
        if let Some(key) = self.key.take() {
            Gate::release(&mut st, &key);
        }
    }
}

/// A connection that holds its [`Slot`] while open and, when given a deadline,
/// fails every read and write after it (so the server closes it).
pub struct Guarded<S> {
    inner: S,
    _slot: Slot,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, slot: Slot, lifetime: Option<Duration>) -> Guarded<S> {
        Guarded {
            inner,
            _slot: slot,
            deadline: lifetime.map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Ready with an error once the deadline passed (and wakes the task then).
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let d = self.deadline.as_mut()?;
        d.as_mut().poll(cx).is_ready().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "connection without a client certificate reached its lifetime",
            )
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Guarded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Bounds of the agents' port.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimits {
    pub max_connections: usize,
    pub max_unauthenticated_per_ip: usize,
    pub max_per_agent: usize,
    pub unauthenticated_lifetime: Duration,
}

/// Accepted, handshaken TLS connections for tonic's `serve_with_incoming`: within
/// the caps, and those without a client certificate with a bounded lifetime.
pub fn grpc_incoming(
    listener: TcpListener,
    tls: Arc<TlsState>,
    limits: GrpcLimits,
    stats: Arc<ConnStats>,
) -> impl Stream<Item = Result<Guarded<TlsStream<TcpStream>>, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let gate = Gate::new(
        limits.max_connections,
        limits.max_unauthenticated_per_ip,
        limits.max_per_agent,
    );
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let Some(mut slot) = gate.admit(peer.ip()) else {
                stats.grpc_refused.inc();
                tracing::debug!(%peer, "agents' port connection refused: at capacity");
                continue;
            };
            let acceptor = tls.acceptor();
            let (tx, stats) = (tx.clone(), stats.clone());
            tokio::spawn(async move {
                let Some(stream) = handshake(&acceptor, tcp, peer).await else {
                    return;
                };
                // The agent a (CA-verified) client certificate names, if any.
                let agent = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|c| crate::grpc::agent_id_of(c));
                let lifetime = match agent {
                    Some(agent) => {
                        if !slot.authenticated(&agent) {
                            stats.grpc_refused.inc();
                            tracing::debug!(%peer, agent_id = %agent, "agent connection refused: the agent has its most connections open");
                            return;
                        }
                        None
                    }
                    None => Some(limits.unauthenticated_lifetime),
                };
                let _ = tx.send(Ok(Guarded::new(stream, slot, lifetime))).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

/// A TLS handshake bounded by [`HANDSHAKE_TIMEOUT`]; failures are logged.
async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::warn!(%peer, error = %e, "tls handshake refused");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "tls handshake timed out");
            None
        }
    }
}

/// Bounds of the REST port.
#[derive(Debug, Clone, Copy)]
pub struct RestLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_per_ip: usize,
}

/// What a plain-HTTP client over a cap reads before the connection closes.
const BUSY: &str = "{\"error\":\"the collector has too many open connections; retry later\"}";

fn busy_response() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY}",
        BUSY.len()
    )
}

/// Serves `router` on `listener` (over TLS with `tls`) within `limits` until
/// `shutdown` resolves, then lets open connections finish their requests.
pub async fn serve_rest(
    listener: TcpListener,
    tls: Option<Arc<TlsState>>,
    router: axum::Router,
    limits: RestLimits,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()>,
) {
    // Nothing authenticates a connection on this port: no per-agent cap.
    let gate = Gate::new(limits.max_connections, limits.max_per_ip, 0);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = gate.admit(peer.ip()) else {
            stats.rest_refused.inc();
            tracing::debug!(%peer, "REST connection refused: at capacity");
            if tls.is_none() {
                // Best effort, never waits: a new socket's send buffer is empty. Then
                // the request is read (at most 4 KiB, 1 s) before closing, so that
                // unread request bytes do not turn the close into a reset that the
                // client sees before the answer.
                let _ = tcp.try_write(busy_response().as_bytes());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut tcp = tcp;
                    let _ = tcp.shutdown().await;
                    let mut buf = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
                });
            }
            continue;
        };
        let (http, router, watcher) = (http.clone(), router.clone(), graceful.watcher());
        match &tls {
            Some(tls) => {
                let acceptor = tls.rest_acceptor();
                tokio::spawn(async move {
                    if let Some(stream) = handshake(&acceptor, tcp, peer).await {
                        serve_connection(
                            Guarded::new(stream, slot, None),
                            peer,
                            http,
                            router,
                            watcher,
                        )
                        .await;
                    }
                });
            }
            None => {
                tokio::spawn(serve_connection(
                    Guarded::new(tcp, slot, None),
                    peer,
                    http,
                    router,
                    watcher,
                ));
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The address a REST request came from (its source key: IPv6 by /64), for the
/// handlers that bound something per client.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    http: hyper::server::conn::http1::Builder,
    router: axum::Router,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt;
    let client = ClientAddr(source_key(peer.ip()));
    let service = router.map_request(
        move |mut req: axum::extract::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(client);
            req
        },
    );
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "REST connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_per_source_and_per_agent() {
        let gate = Gate::new(3, 2, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut a1 = gate.admit(a).unwrap();
        let mut a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "per source");
        assert!(a2.authenticated("ag-1"));
        assert!(!a1.authenticated("ag-1"), "per agent");
        let a3 = gate.admit(a).unwrap();
        assert!(gate.admit(b).is_none(), "in all");
        drop(a1);
        let b1 = gate.admit(b).unwrap();
        drop((a2, a3, b1));
        assert_eq!(gate.counts(), (0, 0));
    }

    #[test]
    fn ipv6_sources_count_per_64() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(source_key(one), source_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(source_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
