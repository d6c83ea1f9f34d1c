//! REST latency: closed-loop workers send GETs over kept-alive connections and the
//! latency of each answer is recorded, per path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::Rest;
use crate::scan::Rng;
use crate::seed::instance_id;
use crate::stats::{ms, percentile, rss_kib};
use crate::{Error, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct RestConfig {
    pub rest: String,
    pub admin_token: String,
    pub fingerprint: Option<String>,
    /// Paths to GET; `{instance}` becomes the instance ID of a random seeded agent.
    pub paths: Vec<String>,
    /// Requests per path.
    pub requests: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seeded agents, for `{instance}`.
    pub agents: usize,
    pub collector_pid: Option<u32>,
}

/// `path` with `{instance}` replaced for request number `n`.
pub fn expand(path: &str, agents: usize, n: u64) -> String {
    if !path.contains("{instance}") {
        return path.to_string();
    }
    let i = Rng::new(n).below(agents.max(1) as u64) as usize;
    path.replace("{instance}", &instance_id(i))
}

/// The value of the first `name="NAME" value="..."` in a page.
fn input_value(html: &str, name: &str) -> Option<String> {
    let key = format!("name=\"{name}\" value=\"");
    let at = html.find(&key)? + key.len();
    Some(html[at..at + html[at..].find('"')?].to_string())
}

/// The `name=value` of a `Set-Cookie` for `name`.
fn cookie_of(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        let pair = c.split(';').next()?.trim();
        pair.starts_with(&format!("{name}="))
            .then(|| pair.to_string())
    })
}

/// Signs in to the console through its form, as a new admin with a random password,
/// so that `/ui/` paths are measured as a browser gets them.
async fn console_sign_in(rest: &Rest) -> Result<()> {
    let fail = |reason: String| Error::Rest {
        what: "console sign-in".into(),
        reason,
    };
    let hex = |n: u64| format!("{:016x}", Rng::new(n).next_u64());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let name = format!("loadgen-console-{}", hex(seed));
    let password = format!("{}{}", hex(seed ^ 0x5eed), hex(seed.rotate_left(17)));
    rest.json(
        "POST",
        "/api/v1/users",
        Some(&json!({"name": name, "role": "admin", "password": password})),
    )
    .await?;
    let (_, cookies, body) = rest.request("GET", "/ui/login", &[], String::new()).await?;
    let login = cookie_of(&cookies, "__Host-rampart_login")
        .ok_or_else(|| fail("the sign-in form set no cookie".into()))?;
    let csrf = input_value(&String::from_utf8_lossy(&body), "csrf")
        .ok_or_else(|| fail("the sign-in form has no csrf field".into()))?;
    // Names and passwords here are letters, digits and `-`: nothing to encode.
    let form = format!("csrf={csrf}&next=%2Fui%2F&name={name}&password={password}");
    let (status, cookies, body) = rest
        .request(
            "POST",
            "/ui/login",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "same-origin"),
                ("cookie", &login),
            ],
            form,
        )
        .await?;
    let session = cookie_of(&cookies, "__Host-rampart_session").ok_or_else(|| {
        fail(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .collect::<String>()
        ))
    })?;
    rest.set_cookie(Some(session));
    Ok(())
}

/// The bytes of a console page with its stylesheet and scripts: what a first visit
/// downloads (the page itself is never compressed; assets are, as a browser gets them).
async fn page_weight(rest: &Rest, html: &str) -> Result<usize> {
    let mut total = html.len();
    for quote in html.split("\"/ui/assets/").skip(1) {
        let Some(end) = quote.find('"') else { continue };
        // As a browser asks for it: compressed where the collector offers that.
        let (_, _, body) = rest
            .request(
                "GET",
                &format!("/ui/assets/{}", &quote[..end]),
                &[("accept-encoding", "gzip, deflate, br, zstd")],
                String::new(),
            )
            .await?;
        total += body.len();
    }
    Ok(total)
}

async fn measure(rest: Arc<Rest>, cfg: &RestConfig, path: &str) -> Result<Value> {
    // One call first: it must work, and it warms the connection.
    let (status, body) = rest.raw("GET", &expand(path, cfg.agents, 0), None).await?;
    if !(200..300).contains(&status) {
        return Err(Error::Rest {
            what: format!("GET {path}"),
            reason: format!("status {status}: {}", String::from_utf8_lossy(&body)),
        });
    }
    let weight = if path.starts_with("/ui/") {
        Some(page_weight(&rest, &String::from_utf8_lossy(&body)).await?)
    } else {
        None
    };
    let per = cfg.requests.div_ceil(cfg.concurrency.max(1));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for w in 0..cfg.concurrency.max(1) {
        let (rest, path, agents) = (rest.clone(), path.to_string(), cfg.agents);
        let n = per.min(cfg.requests.saturating_sub(w * per));
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut errors = 0usize;
            for k in 0..n {
                let p = expand(&path, agents, (w * per + k + 1) as u64);
                let t = Instant::now();
                match rest.raw("GET", &p, None).await {
                    Ok((s, _)) if (200..300).contains(&s) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut lat: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await.map_err(|e| Error::Config(e.to_string()))?;
        lat.extend(l);
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "path": path,
        "requests": lat.len() + errors,
        "errors": errors,
        "p50_ms": ms(percentile(&mut lat, 50.0)),
        "p99_ms": ms(percentile(&mut lat, 99.0)),
        "max_ms": ms(percentile(&mut lat, 100.0)),
        "requests_per_second": if secs > 0.0 { ((lat.len() as f64 / secs) * 10.0).round() / 10.0 } else { 0.0 },
        "response_bytes": body.len(),
        "page_weight_bytes": weight,
    }))
}

/// Measures every path in turn; the JSON report.
pub async fn run(cfg: RestConfig) -> Result<Value> {
    let rest = Rest::new(&cfg.rest, &cfg.admin_token, cfg.fingerprint.as_deref())?;
    if cfg.paths.iter().any(|p| p.starts_with("/ui/")) {
        console_sign_in(&rest).await?;
    }
    // `{scan}` and `{agent}`: the newest completed scan and its agent.
    let (mut scan, mut agent) = (String::new(), String::new());
    if cfg
        .paths
        .iter()
        .any(|p| p.contains("{scan}") || p.contains("{agent}"))
    {
        let v = rest
            .json("GET", "/api/v1/scans?status=completed&per_page=1", None)
            .await?;
        scan = v["scans"][0]["id"].as_str().unwrap_or_default().to_string();
        agent = v["scans"][0]["agent_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let mut out = Vec::new();
    for p in &cfg.paths {
        let p = &p.replace("{scan}", &scan).replace("{agent}", &agent);
        let v = measure(rest.clone(), &cfg, p).await?;
        eprintln!("rest: {v}");
        out.push(v);
    }
    Ok(json!({
        "mode": "rest",
        "concurrency": cfg.concurrency,
        "paths": out,
        "collector_rss_kib": cfg.collector_pid.and_then(rss_kib),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_placeholders_name_seeded_agents() {
        assert_eq!(expand("/api/v1/overview", 10, 3), "/api/v1/overview");
        let p = expand("/api/v1/handover/{instance}", 10, 3);
        let id = p.strip_prefix("/api/v1/handover/").unwrap();
        assert!((0..10).any(|i| instance_id(i) == id), "{p}");
        assert_eq!(
            expand("/h/{instance}", 1, 99),
            format!("/h/{}", instance_id(0))
        );
    }
}
