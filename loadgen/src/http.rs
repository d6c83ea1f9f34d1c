//! A small HTTP/1.1 client for the collector's REST API, plain or over TLS pinned to
//! the collector's CA, that keeps connections alive between calls (a latency figure
//! should not be a TCP and TLS handshake figure).

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::{Error, Result};

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One REST endpoint (`http://host:port` or `https://host:port`) and a bearer token.
pub struct Rest {
    hostport: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    token: String,
    /// The console's session cookie, sent with every `/ui/` request once signed in.
    cookie: Mutex<Option<String>>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// `(scheme is https, host:port)` of a REST base URL.
pub fn parse_base(url: &str) -> Result<(bool, String)> {
    let url = url.trim_end_matches('/');
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(Error::Config(format!(
            "REST URL `{url}` must start with http:// or https://"
        )));
    };
    if rest.is_empty() || rest.contains('/') || !rest.contains(':') {
        return Err(Error::Config(format!(
            "REST URL `{url}` must be scheme://host:port"
        )));
    }
    Ok((tls, rest.to_string()))
}

fn rest_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Rest {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

impl Rest {
    /// A client of `url`; an `https` URL needs the CA `fingerprint` to pin.
    pub fn new(url: &str, token: &str, fingerprint: Option<&str>) -> Result<Arc<Rest>> {
        let (https, hostport) = parse_base(url)?;
        let tls = if https {
            let pin = fingerprint
                .ok_or_else(|| Error::Config("an https REST URL needs --ca-fingerprint".into()))?;
            let mut cfg = rampart_agent::daemon::tls::client_config(pin, None)?;
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            let host = hostport
                .rsplit_once(':')
                .map_or(hostport.as_str(), |(h, _)| h)
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = ServerName::try_from(host)
                .map_err(|e| Error::Config(format!("REST host in {url}: {e}")))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(Arc::new(Rest {
            hostport,
            tls,
            token: token.to_string(),
            cookie: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        }))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(&self.hostport)
            .await
            .map_err(|e| rest_err(&format!("connect {}", self.hostport), e))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &self.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| rest_err("TLS handshake", e))?,
            ),
            None => Box::new(tcp),
        };
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| rest_err("HTTP handshake", e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match idle {
                Some(s) if !s.is_closed() => return Ok(s),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    /// One request; the status and the body's bytes.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Bytes)> {
        let payload = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let (status, _, bytes) = self.request(method, path, headers, payload).await?;
        Ok((status, bytes))
    }

    /// Sets the console session cookie (`name=value`) sent with `/ui/` requests.
    pub fn set_cookie(&self, cookie: Option<String>) {
        *self.cookie.lock().unwrap_or_else(|p| p.into_inner()) = cookie;
    }

    /// One request with extra headers; the status, the `Set-Cookie` values and the
    /// body's bytes. `/ui/` requests carry the session cookie, if one is set.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload: String,
    ) -> Result<(u16, Vec<String>, Bytes)> {
        let what = format!("{method} {path}");
        let mut send = self.sender().await?;
        send.ready().await.map_err(|e| rest_err(&what, e))?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.hostport)
            .header("authorization", format!("Bearer {}", self.token));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let cookie = self
            .cookie
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let (true, Some(c)) = (path.starts_with("/ui/"), cookie) {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            {
                req = req.header("cookie", c);
            }
        }
        let req = req
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| rest_err(&what, e))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| rest_err(&what, e))?;
        let status = resp.status().as_u16();
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(String::from)
            .collect();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| rest_err(&what, e))?
            .to_bytes();
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(send);
        Ok((status, set_cookies, bytes))
    }

    /// A JSON call that must answer 2xx.
    pub async fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, bytes) = self.raw(method, path, body).await?;
        if !(200..300).contains(&status) {
            return Err(rest_err(
                &format!("{method} {path}"),
                format!("status {status}: {}", String::from_utf8_lossy(&bytes)),
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| rest_err(&format!("{method} {path}"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            parse_base("http://127.0.0.1:8080/").unwrap(),
            (false, "127.0.0.1:8080".to_string())
        );
        assert_eq!(
            parse_base("https://[::1]:9").unwrap(),
            (true, "[::1]:9".to_string())
        );
        for bad in ["127.0.0.1:8080", "ftp://x:1", "http://x", "http://x:1/api"] {
            assert!(parse_base(bad).is_err(), "{bad}");
        }
    }
}
