//! Real collectors and agents as child processes, talking over loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::binary;

/// Polls `f` every 100 ms until it returns `Some`, or panics after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`wait_for`], and on a timeout the panic also carries `context()` (the logs of
/// the processes involved), so a failure in CI says what they were doing.
pub fn wait_for_or<T>(
    what: &str,
    secs: u64,
    f: impl FnMut() -> Option<T>,
    context: impl FnOnce() -> String,
) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_for(what, secs, f))) {
        Ok(v) => v,
        Err(_) => panic!("timed out after {secs} s waiting for {what}\n{}", context()),
    }
}

/// A free loopback port (bound and released), for programs that cannot bind port 0
/// and say which port they got; another process may take it before they bind it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client: (status, JSON body or Null).
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    if let Some(a) = auth.as_deref() {
        headers.push(("Authorization", a));
    }
    // The body stays bytes until parsed: a binary answer (a backup) is Null.
    let r = http_request(method, addr, path, &headers, body.as_bytes());
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// What `rampart-collector serve` prints before it serves: the first admin's token
/// (on the start that created it) and the ready line's fields (read as the README
/// documents them, not through the collector's own type).
pub struct Startup {
    pub admin: Option<String>,
    pub ready: Ready,
}

/// The ready line: `ready {"grpc": …, "rest": …, "rest_scheme": …, "ca_fingerprint": …, "version": …}`.
pub struct Ready {
    pub grpc: String,
    pub rest: String,
    pub rest_scheme: String,
    pub ca_fingerprint: String,
}

impl Ready {
    fn parse(line: &str) -> Option<Ready> {
        let v: Value = serde_json::from_str(line.trim_end().strip_prefix("ready ")?).ok()?;
        let field = |k: &str| v.get(k)?.as_str().map(String::from);
        Some(Ready {
            grpc: field("grpc")?,
            rest: field("rest")?,
            rest_scheme: field("rest_scheme")?,
            ca_fingerprint: field("ca_fingerprint")?,
        })
    }
}

/// Reads a starting collector's standard output up to its ready line; None when it
/// ends first (the collector exited).
pub fn read_startup(out: &mut impl BufRead) -> Option<Startup> {
    let mut admin = None;
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(t) = line.trim_end().strip_prefix("admin token (shown once): ") {
            admin = Some(t.to_string());
        } else if let Some(ready) = Ready::parse(&line) {
            return Some(Startup { admin, ready });
        }
    }
}

/// A raw HTTP response: status, headers (names lower-cased), body bytes.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A GET (or other body-less request) returning the raw response, for non-JSON
/// bodies such as reports.
pub fn http_raw(method: &str, addr: &str, path: &str, token: Option<&str>) -> RawResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    http_request(method, addr, path, &headers, b"")
}

/// Any request with its own headers and body, returning the raw response.
pub fn http_request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = raw.get(split + 4..).unwrap_or(&[]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        let mut r = rest;
        while let Some(eol) = r.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&r[..eol]);
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let start = eol + 2;
            let end = (start + n).min(r.len());
            out.extend_from_slice(&r[start..end]);
            r = r.get(end + 2..).unwrap_or(&[]);
        }
        out
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

/// An HTTPS request through curl, trusting only `cacert`: (status, JSON body or
/// Null). Panics when curl cannot complete the request (TLS failures included).
pub fn https(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
    cacert: &Path,
) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "30",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ])
    .arg("--cacert")
    .arg(cacert);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        c.args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(b.to_string());
    }
    let out = c
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {method} https://{addr}{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (payload, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(payload).unwrap_or(Value::Null),
    )
}

/// A running `rampart-collector serve`.
pub struct Collector {
    child: Child,
    pub data: PathBuf,
    pub grpc: String,
    pub rest: String,
    pub admin: String,
    pub fingerprint: String,
    /// With `rest_tls`: the CA certificate fetched from `/ca.pem` (after checking
    /// its fingerprint), which the API calls trust.
    pub rest_ca: Option<PathBuf>,
}

impl Collector {
    /// Starts a collector on `data`; `admin` is needed when the data directory
    /// already exists (the token is shown only on first start).
    pub fn start(data: &Path, ports: Option<(u16, u16)>, admin: Option<&str>) -> Collector {
        Collector::start_with(data, ports, admin, None)
    }

    /// Like `start`, with a configuration file of `config` (TOML) when given.
    pub fn start_with(
        data: &Path,
        ports: Option<(u16, u16)>,
        admin: Option<&str>,
        config: Option<&str>,
    ) -> Collector {
        Collector::start_with_env(data, ports, admin, config, &[])
    }

    /// Like `start_with`, with more environment variables for the collector.
    pub fn start_with_env(
        data: &Path,
        ports: Option<(u16, u16)>,
        admin: Option<&str>,
        config: Option<&str>,
        envs: &[(&str, &str)],
    ) -> Collector {
        // Without ports the kernel picks them (port 0) and the ready line says which:
        // no other process can take them between a choice and the bind.
        let (g, r) = ports.unwrap_or((0, 0));
        let mut args = vec![
            "serve".to_string(),
            "--data".into(),
            data.display().to_string(),
        ];
        args.extend(["--grpc-listen".into(), format!("127.0.0.1:{g}")]);
        args.extend(["--rest-listen".into(), format!("127.0.0.1:{r}")]);
        if let Some(text) = config {
            let path = data.with_extension("toml");
            std::fs::write(&path, text).unwrap();
            args.extend(["--config".into(), path.display().to_string()]);
        }
        let child = Command::new(binary("rampart-collector"))
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RAMPART_COLLECTOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.with_extension("log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("spawn rampart-collector");
        Collector::attach(child, data, admin, None)
    }

    /// Takes over a starting `rampart-collector serve` — or anything running one with
    /// its standard output piped, such as `podman run` — and reads what it prints
    /// first: the admin token on a first start (else `admin` is needed), the CA
    /// fingerprint, its listeners. `reach` replaces the (gRPC, REST) addresses it
    /// reports with the ones to connect to (a container's published ports). With
    /// `rest_tls`, `/ca.pem` is fetched and checked against the fingerprint. `data`
    /// names the log (`data.log`, where the child's standard error should go) and
    /// the fetched CA certificate (`data.ca.pem`).
    pub fn attach(
        mut child: Child,
        data: &Path,
        admin: Option<&str>,
        reach: Option<(String, String)>,
    ) -> Collector {
        let started = read_startup(&mut BufReader::new(child.stdout.take().unwrap()))
            .unwrap_or_else(|| {
                panic!(
                    "collector exited early; see {}",
                    data.with_extension("log").display()
                )
            });
        let tls = started.ready.rest_scheme == "https";
        let (mut grpc, mut rest) = (started.ready.grpc, started.ready.rest);
        if let Some((g, r)) = reach {
            (grpc, rest) = (g, r);
        }
        let mut c = Collector {
            child,
            data: data.to_path_buf(),
            grpc,
            rest,
            admin: started
                .admin
                .or(admin.map(String::from))
                .expect("an admin token: printed on a first start, else given"),
            fingerprint: started.ready.ca_fingerprint,
            rest_ca: None,
        };
        if tls {
            let pem = c.fetch_ca_pem();
            assert_eq!(pem_fingerprint(&pem), c.fingerprint, "/ca.pem");
            let path = data.with_extension("ca.pem");
            std::fs::write(&path, pem).unwrap();
            c.rest_ca = Some(path);
        }
        c
    }

    /// Waits up to `secs` for the process to exit by itself (after a stop asked
    /// elsewhere) and returns how it exited.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        wait_for("the collector to exit", secs, || {
            self.child.try_wait().expect("wait for the collector")
        })
    }

    /// `GET /ca.pem` without verifying the server (as a bootstrap does, before
    /// it checks the fingerprint).
    pub fn fetch_ca_pem(&self) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "--insecure"])
            .arg(format!("https://{}/ca.pem", self.rest))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "GET /ca.pem: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("PEM is text")
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.grpc)
    }

    pub fn ports(&self) -> (u16, u16) {
        let p = |a: &str| a.rsplit(':').next().unwrap().parse().unwrap();
        (p(&self.grpc), p(&self.rest))
    }

    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        match &self.rest_ca {
            Some(ca) => https(method, &self.rest, path, token, body.as_ref(), ca),
            None => http(method, &self.rest, path, token, body.as_ref()),
        }
    }

    /// An API call as admin that must succeed.
    pub fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.api(method, path, Some(&self.admin), body);
        assert!((200..300).contains(&code), "{method} {path}: {code} {v}");
        v
    }

    /// Every enrolled agent, in ID order, following the API's pages.
    pub fn agents(&self) -> Value {
        let mut all = Vec::new();
        let mut path = "/api/v1/agents".to_string();
        loop {
            let page = self.admin("GET", &path, None);
            all.extend(page["agents"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = format!("/api/v1/agents?after={next}"),
                None => return Value::Array(all),
            }
        }
    }

    /// Every scan of `agent`, newest first, as the API lists them.
    pub fn scans_of(&self, agent: &str) -> Vec<Value> {
        self.admin("GET", &format!("/api/v1/scans?agent_id={agent}"), None)["scans"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Waits up to `secs` for a completed scan of `agent` and returns it.
    pub fn completed_scan(&self, agent: &str, secs: u64) -> Value {
        wait_for("a completed scan", secs, || {
            self.scans_of(agent)
                .into_iter()
                .find(|s| s["status"] == "completed")
        })
    }

    /// The collector's SSH public key for targets' `authorized_keys` (`GET /api/v1/ssh`).
    pub fn ssh_public_key(&self) -> String {
        let v = self.admin("GET", "/api/v1/ssh", None);
        v["public_key"]
            .as_str()
            .unwrap_or_else(|| panic!("GET /api/v1/ssh: {v}"))
            .to_string()
    }

    pub fn enrollment_token(&self, project: &str, uses: u32, ttl: i64) -> String {
        let v = self.admin(
            "POST",
            "/api/v1/enrollment-tokens",
            Some(serde_json::json!({"project": project, "max_uses": uses, "ttl_seconds": ttl})),
        );
        v["token"].as_str().unwrap().to_string()
    }

    pub fn user(&self, name: &str, role: &str) -> String {
        let v = self.admin(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"name": name, "role": role})),
        );
        v["token"].as_str().unwrap().to_string()
    }

    /// A user with a console password; their API token.
    pub fn console_user(&self, name: &str, role: &str, password: &str) -> String {
        let v = self.admin(
            "POST",
            "/api/v1/users",
            Some(serde_json::json!({"name": name, "role": role, "password": password})),
        );
        v["token"].as_str().unwrap().to_string()
    }

    pub fn set_settings(&self, f: impl FnOnce(&mut Value)) {
        let mut s = self.admin("GET", "/api/v1/settings", None);
        f(&mut s);
        self.admin("PUT", "/api/v1/settings", Some(s));
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The SHA-256 of a PEM certificate's DER, as `openssl` computes it (lowercase
/// hex, the format `rampart-agent enroll --ca-fingerprint` takes).
pub fn pem_fingerprint(pem: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-outform", "DER"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let der = child.wait_with_output().unwrap();
    assert!(der.status.success(), "openssl could not read the PEM");
    let mut sum = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    sum.stdin.take().unwrap().write_all(&der.stdout).unwrap();
    let out = sum.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// An agent's files: config and state directory.
pub struct Agent {
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Agent {
    pub fn new(dir: &Path) -> Agent {
        std::fs::create_dir_all(dir).unwrap();
        Agent {
            dir: dir.to_path_buf(),
            child: None,
        }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }
    /// Runs `enroll`; returns (exit success, stdout+stderr).
    pub fn enroll(
        &self,
        url: &str,
        token: &str,
        fingerprint: &str,
        root: &Path,
        labels: &[&str],
    ) -> (bool, String) {
        self.enroll_with(url, token, fingerprint, root, labels, &[])
    }

    /// `enroll` with more flags (`--metadata-url`, `--identity-root`, …).
    pub fn enroll_with(
        &self,
        url: &str,
        token: &str,
        fingerprint: &str,
        root: &Path,
        labels: &[&str],
        extra: &[&str],
    ) -> (bool, String) {
        let mut args = vec![
            "enroll".to_string(),
            "--collector".into(),
            url.into(),
            "--token".into(),
            token.into(),
            "--ca-fingerprint".into(),
            fingerprint.into(),
            "--config".into(),
            self.config().display().to_string(),
            "--state-dir".into(),
            self.dir.join("state").display().to_string(),
            "--root".into(),
            root.display().to_string(),
        ];
        for l in labels {
            args.push("--label".into());
            args.push(l.to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let out = Command::new(binary("rampart-agent"))
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }
    pub fn agent_id(&self) -> String {
        let v: Value =
            serde_json::from_slice(&std::fs::read(self.dir.join("state/agent.json")).unwrap())
                .unwrap();
        v["agent_id"].as_str().unwrap().to_string()
    }
    /// Starts `run`, logging to `agent.log`.
    pub fn run(&mut self, envs: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let mut c = Command::new(binary("rampart-agent"));
        c.args(["run", "--config", self.config().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (k, v) in envs {
            c.env(k, v);
        }
        self.child = Some(c.spawn().unwrap());
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
    /// SIGTERM and wait: the daemon must stop cleanly.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
