//! pam_limits' core-file size limit (`sysctl.core_limit`).

use serde::Serialize;

use crate::facts::{strip_comment, FactError, Facts};
use crate::model::Outcome;

/// What `rampart-agent facts limits` prints.
#[derive(Debug, Serialize)]
pub struct LimitsFacts {
    /// The `sysctl.core_limit` verdict and its evidence.
    pub verdict: String,
    pub evidence: Vec<String>,
}

/// The facts of the core limit (`users`: not yet described one by one).
pub fn facts(facts: &Facts, _users: &[String]) -> Result<LimitsFacts, FactError> {
    let o = core_limit(facts)?;
    Ok(LimitsFacts {
        verdict: o.status.as_str().to_string(),
        evidence: o.evidence,
    })
}

/// A pam_limits line that sets the hard core limit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CoreLine {
    domain: String,
    value: String,
    source: String,
}

pub fn core_limit(facts: &Facts) -> Result<Outcome, FactError> {
    let mut files = vec!["/etc/security/limits.conf".to_string()];
    files.extend(facts.dir_files("/etc/security/limits.d", ".conf")?);
    let mut lines = Vec::new();
    for path in &files {
        let Some(text) = facts.read(path)? else {
            continue;
        };
        lines.extend(parse_core_lines(&text, path));
    }
    let wildcard = lines.iter().rev().find(|l| l.domain == "*");
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match wildcard {
        Some(l) if is_zero(&l.value) => {
            found.push(format!("{}: * hard core {}", l.source, l.value))
        }
        Some(l) => failures.push(format!(
            "{}: * hard core {} (expected 0)",
            l.source, l.value
        )),
        None => failures.push(format!(
            "no `* hard core 0` entry in {} or /etc/security/limits.d/*.conf",
            files[0]
        )),
    }
    for l in lines
        .iter()
        .filter(|l| l.domain != "*" && !is_zero(&l.value))
    {
        failures.push(format!(
            "{}: {} hard core {} raises the limit for {}",
            l.source, l.domain, l.value, l.domain
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

fn is_zero(v: &str) -> bool {
    v.parse::<u64>() == Ok(0)
}

fn parse_core_lines(text: &str, path: &str) -> Vec<CoreLine> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let f: Vec<&str> = strip_comment(raw).split_whitespace().collect();
        if f.len() != 4 {
            continue;
        }
        if f[2].eq_ignore_ascii_case("core") && (f[1] == "hard" || f[1] == "-") {
            out.push(CoreLine {
                domain: f[0].to_string(),
                value: f[3].to_string(),
                source: format!("{path}:{}", n + 1),
            });
        }
    }
    out
}
