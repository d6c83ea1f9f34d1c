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

async fn measure(rest: Arc<Rest>, cfg: &RestConfig, path: &str) -> Result<Value> {
    // One call first: it must work, and it warms the connection.
    let (status, body) = rest.raw("GET", &expand(path, cfg.agents, 0), None).await?;
    if !(200..300).contains(&status) {
        return Err(Error::Rest {
            what: format!("GET {path}"),
            reason: format!("status {status}: {}", String::from_utf8_lossy(&body)),
        });
    }
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
    }))
}

/// Measures every path in turn; the JSON report.
pub async fn run(cfg: RestConfig) -> Result<Value> {
    let rest = Rest::new(&cfg.rest, &cfg.admin_token, cfg.fingerprint.as_deref())?;
    let mut out = Vec::new();
    for p in &cfg.paths {
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
