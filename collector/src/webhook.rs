//! Warn-mode alerts to a webhook (SPEC §4 enforcement). When a scan completes in
//! warn mode and the policy would have blocked it, a delivery is queued in the store
//! together with the scan (`app::alerts`), so an acknowledged alert survives a crash.
//! This module is the sender: a task that
//! posts each delivery's exact JSON body with an HMAC-SHA256 signature, retries with
//! exponential backoff up to `webhook_max_attempts`, and records every attempt.
//!
//! Headers: `X-Rampart-Timestamp` (Unix seconds of the attempt),
//! `X-Rampart-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` (the
//! timestamp header's exact digits, a dot, then the body's bytes: a receiver that
//! checks the signature and refuses timestamps older than a few minutes cannot be
//! fed a replayed alert), `X-Rampart-Delivery` (the delivery ID, the same on every
//! retry: receivers deduplicate on it), `X-Rampart-Event`.
//!
//! A delivery goes to the URL configured when it was queued; it is signed with the
//! secret configured when it is sent. Delivery is at least once: an attempt in
//! flight when the collector dies is made again after the restart.
//!
//! Each attempt resolves the URL's host once and connects only to an address it
//! may reach ([`crate::outbound`]; loopback only with `webhook_allow_loopback`). A host left with no address is a failed attempt
//! that says why. The URL itself never reaches the log: it may carry a credential.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};

use crate::outbound::{self, Purpose};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::app::App;
use crate::metrics::WebhookOutcome;
use crate::store::{AttemptRecord, DeliveryRecord, DeliveryState};

/// Each attempt (connect, TLS, request, answer) must finish within this.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF_MS: u64 = 3_600_000;

/// `sha256=<hex>`: HMAC-SHA256 under `secret` of the timestamp's decimal digits,
/// a `.`, and `body`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{timestamp}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The wait after failed attempt `n` (from 1): `base`, then doubled, capped.
pub fn backoff_ms(base_ms: u64, n: u32) -> u64 {
    let factor = 1u64 << n.saturating_sub(1).min(30);
    base_ms.saturating_mul(factor).min(MAX_BACKOFF_MS)
}

/// Sends due deliveries until `stop` fires. Pending deliveries from before a
/// restart are picked up at once.
pub async fn run(app: Arc<App>, mut stop: tokio::sync::broadcast::Receiver<()>) {
    loop {
        // Deliveries go out from the collector holding the lease (see app::cluster).
        if !app.is_leader() {
            tokio::select! {
                _ = app.clock.sleep(Duration::from_secs(5)) => {}
                _ = app.webhook_wake.notified() => {}
                _ = stop.recv() => return,
            }
            continue;
        }
        let next = match tokio::task::spawn_blocking({
            let app = app.clone();
            move || app.store.pending_deliveries()
        })
        .await
        {
            Ok(Ok(pending)) => send_due(&app, pending).await,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read webhook deliveries");
                Some(app.clock.now_ms() + 5_000)
            }
            Err(_) => Some(app.clock.now_ms() + 5_000),
        };
        let wait = next.map_or(Duration::from_secs(3600), |t| {
            Duration::from_millis((t - app.clock.now_ms()).max(0) as u64)
        });
        tokio::select! {
            _ = app.clock.sleep(wait) => {}
            _ = app.webhook_wake.notified() => {}
            _ = stop.recv() => return,
        }
    }
}

/// Attempts every due delivery; returns when the next one is due.
async fn send_due(app: &Arc<App>, pending: Vec<DeliveryRecord>) -> Option<i64> {
    let mut next: Option<i64> = None;
    for mut d in pending {
        let due = d.next_attempt_ms.unwrap_or(0);
        if due > app.clock.now_ms() {
            next = Some(next.map_or(due, |n| n.min(due)));
            continue;
        }
        let secret = app.settings().webhook_secret.map(|k| k.0);
        let at_ms = app.clock.now_ms();
        let outcome = match &secret {
            Some(k) => {
                let allow_loopback = app.config.webhook_allow_loopback;
                attempt(&d, k.as_bytes(), at_ms, allow_loopback).await
            }
            None => Err("not sent: no webhook_secret is set to sign it".into()),
        };
        d.attempts += 1;
        let (http_status, error) = match outcome {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("HTTP {code}"))),
            Err(e) => (None, Some(e)),
        };
        let outcome = if error.is_none() {
            d.state = DeliveryState::Delivered;
            d.next_attempt_ms = None;
            WebhookOutcome::Delivered
        } else if d.attempts >= app.config.webhook_max_attempts {
            d.state = DeliveryState::Failed;
            d.next_attempt_ms = None;
            WebhookOutcome::Failed
        } else {
            let wait = backoff_ms(app.config.webhook_backoff_ms, d.attempts) as i64;
            d.next_attempt_ms = Some(app.clock.now_ms() + wait);
            WebhookOutcome::Retry
        };
        app.metrics.webhook_attempt(outcome);
        tracing::info!(
            delivery_id = %d.id,
            scan_id = %d.scan_id,
            attempt = d.attempts,
            http_status,
            error = error.as_deref().unwrap_or(""),
            state = ?d.state,
            "webhook attempt"
        );
        let rec = AttemptRecord {
            delivery_id: d.id.clone(),
            scan_id: d.scan_id.clone(),
            attempt: d.attempts,
            at_ms,
            http_status,
            error,
            state: d.state,
            next_attempt_ms: d.next_attempt_ms,
        };
        let app2 = app.clone();
        let d2 = d.clone();
        let saved = tokio::task::spawn_blocking(move || {
            app2.store.append_attempt(&rec)?;
            app2.store.put_delivery(&d2)?;
            app2.sync_store()
        })
        .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::error!(delivery_id = %d.id, "cannot record a webhook attempt");
        }
        if let Some(t) = d.next_attempt_ms {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    }
    next
}

/// One POST of the delivery's body; the HTTP status, or why there was none.
async fn attempt(
    d: &DeliveryRecord,
    secret: &[u8],
    at_ms: i64,
    allow_loopback: bool,
) -> std::result::Result<u16, String> {
    match tokio::time::timeout(ATTEMPT_TIMEOUT, post(d, secret, at_ms, allow_loopback)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

async fn post(
    d: &DeliveryRecord,
    secret: &[u8],
    at_ms: i64,
    allow_loopback: bool,
) -> std::result::Result<u16, String> {
    let uri: hyper::Uri = d.url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs = outbound::resolve(&bare_host, port, allow_loopback, Purpose::Webhook).await?;
    let tcp = outbound::connect(&addrs)
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let timestamp = at_ms / 1000;
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("rampart-collector/", env!("CARGO_PKG_VERSION")),
        )
        .header("x-rampart-event", crate::app::alerts::EVENT)
        .header("x-rampart-delivery", d.id.as_str())
        .header("x-rampart-timestamp", timestamp.to_string())
        .header(
            "x-rampart-signature",
            signature(secret, timestamp, d.body.as_bytes()),
        )
        .body(Full::new(Bytes::from(d.body.clone())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    if https {
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|e| format!("bad host name {host}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(client_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        send(TokioIo::new(tls), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
}

async fn send<I>(io: I, req: hyper::Request<Full<Bytes>>) -> std::result::Result<u16, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"));
    let out = match res {
        Ok(r) => {
            let code = r.status().as_u16();
            // Drain a bounded amount of the answer so the exchange completes.
            let _ = tokio::time::timeout(Duration::from_secs(2), r.into_body().collect()).await;
            Ok(code)
        }
        Err(e) => Err(e),
    };
    driver.abort();
    out
}

/// rustls with the system's trusted roots (read once).
fn client_config() -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no trusted root certificates found on this system".into());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(cfg))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex_of_timestamp_dot_body() {
        // RFC 4231 test case 2's key and text after "1234.", checked with openssl.
        assert_eq!(
            signature(b"Jefe", 1234, b"what do ya want for nothing?"),
            "sha256=154f07c6e9ad786e2586347b51e84859e53243b0f97c8e62de76b4eccb597f00"
        );
        assert_ne!(signature(b"k", 1, b"x"), signature(b"k", 2, b"x"));
    }

    fn delivery(url: &str) -> DeliveryRecord {
        DeliveryRecord {
            id: "wh-1".into(),
            scan_id: "sc-1".into(),
            url: url.into(),
            body: "{}".into(),
            created_at_ms: 0,
            attempts: 0,
            state: DeliveryState::Pending,
            next_attempt_ms: None,
        }
    }

    #[tokio::test]
    async fn failed_attempts_say_why() {
        // Nothing listens: a connection error naming the address.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = attempt(
            &delivery(&format!("http://127.0.0.1:{port}/")),
            b"k",
            0,
            true,
        )
        .await
        .unwrap_err();
        assert!(
            e.contains(&format!("cannot connect to 127.0.0.1:{port}")),
            "{e}"
        );
        // https to something that is not TLS: the TLS layer's words (or, on a host
        // without a trust store, that there is none).
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
            }
        });
        let e = attempt(&delivery(&format!("https://{addr}/")), b"k", 0, true)
            .await
            .unwrap_err();
        assert!(
            e.starts_with("TLS with") || e.contains("trusted root"),
            "{e}"
        );
        // Without the loopback opt-in, neither a literal loopback address nor a
        // name that resolves to one is contacted.
        for url in [
            format!("http://{addr}/"),
            format!("http://localhost:{}/", addr.port()),
        ] {
            let e = attempt(&delivery(&url), b"k", 0, false).await.unwrap_err();
            assert!(
                e.starts_with("refused: ") && e.contains("a loopback address"),
                "{e}"
            );
        }
    }

    /// A receiver that answers 503 to its first `failures` requests and 204 after,
    /// noting the clock's time of each.
    async fn flaky_receiver(
        clock: crate::clock::Clock,
        failures: usize,
    ) -> (String, Arc<std::sync::Mutex<Vec<i64>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let noted = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                // The whole request: its headers, then the body they announce.
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                let body_at = loop {
                    let n = s.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the request ended early");
                    req.extend_from_slice(&buf[..n]);
                    if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&req[..body_at]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while req.len() < body_at + len {
                    let n = s.read(&mut buf).await.unwrap();
                    req.extend_from_slice(&buf[..n]);
                }
                let n = {
                    let mut v = noted.lock().unwrap();
                    v.push(clock.now_ms());
                    v.len()
                };
                let status = if n <= failures {
                    "503 Service Unavailable"
                } else {
                    "204 No Content"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_failing_receiver_is_retried_with_the_backoff_until_it_takes_the_alert() {
        use crate::clock::Clock;
        let d = tempfile::tempdir().unwrap();
        let t0 = 1_796_637_600_000; // 2026-12-07 10:00 UTC
        let clock = Clock::manual(t0);
        let config = crate::config::Config {
            webhook_allow_loopback: true,
            webhook_backoff_ms: 1_000,
            webhook_max_attempts: 6,
            ..Default::default()
        };
        let app = Arc::new(crate::app::tests::app_on(d.path(), clock.clone(), config));
        let (url, seen) = flaky_receiver(clock.clone(), 3).await;
        let mut s = app.settings();
        s.webhook_url = url.clone();
        s.webhook_secret = Some(crate::policy::WebhookSecret("0123456789abcdef".into()));
        app.update_settings(s, "admin").unwrap();
        app.store.put_delivery(&delivery(&url)).unwrap();
        assert!(app.take_lead());
        let (stop, rx) = tokio::sync::broadcast::channel(1);
        let sender = tokio::spawn(run(app.clone(), rx));
        // The clock moves by a tenth of a second, each step once the sender sleeps
        // again: every attempt is seen at the first step at or after its time.
        assert!(clock.settle(1).await);
        for _ in 0..100 {
            clock.advance(Duration::from_millis(100));
            assert!(clock.settle(1).await, "the sender sleeps again");
        }
        let _ = stop.send(());
        sender.await.unwrap();
        // Right away, then 1 s, 2 s and 4 s after each failure; delivered at the
        // fourth, nothing after.
        let want = [t0, t0 + 1_000, t0 + 3_000, t0 + 7_000];
        assert_eq!(*seen.lock().unwrap(), want);
        let (attempts, _) = app.store.attempts(0, 100).unwrap();
        let mut got: Vec<_> = attempts
            .iter()
            .map(|a| (a.attempt, a.at_ms, a.http_status, a.next_attempt_ms))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                (1, want[0], Some(503), Some(want[1])),
                (2, want[1], Some(503), Some(want[2])),
                (3, want[2], Some(503), Some(want[3])),
                (4, want[3], Some(204), None),
            ]
        );
        let d = &app.store.deliveries().unwrap()[0];
        assert_eq!((d.attempts, d.state), (4, DeliveryState::Delivered));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let got: Vec<u64> = (1..=5).map(|n| backoff_ms(1000, n)).collect();
        assert_eq!(got, [1000, 2000, 4000, 8000, 16000]);
        assert_eq!(backoff_ms(1_000_000, 10), MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(10, 1000), MAX_BACKOFF_MS);
    }
}
