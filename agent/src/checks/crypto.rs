//! `crypto.*` checks: the system-wide cryptographic policy of RHEL-family systems
//! (crypto-policies), as configured, as last applied, and as generated for SSH.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::facts::crypto_policies::{
    applied, configured, current_pol, parse_ssh_backend, PolicyName, BACKEND_LIBSSH, BACKEND_SSH,
    BACKEND_SSHD, CONFIG, CURRENT_POL, STATE_CURRENT,
};
use crate::facts::packages::packages;
use crate::facts::{fnmatch, strip_comment, FactError, Facts};
use crate::model::Outcome;

/// Where sshd.service reads its environment (RHEL's CRYPTO_POLICY override).
const SYSCONFIG_SSHD: &str = "/etc/sysconfig/sshd";
/// sshd options that replace what the policy's back-end sets.
const SSHD_POLICY_OPTIONS: &[&str] = &[
    "ciphers",
    "macs",
    "kexalgorithms",
    "gssapikexalgorithms",
    "hostkeyalgorithms",
    "pubkeyacceptedalgorithms",
    "pubkeyacceptedkeytypes",
    "casignaturealgorithms",
];

/// The `crypto.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// The configured policy (/etc/crypto-policies/config) is not one of
    /// `forbidden` (base policy names, any case), and it is the one last applied
    /// (/etc/crypto-policies/state/current).
    #[serde(rename = "crypto.policy")]
    Policy { forbidden: Vec<String> },
    /// The resolved policy last applied (state/CURRENT.pol): no value of a
    /// `forbidden` key, baseline or scoped (`key@scope`), matches one of its
    /// patterns (fnmatch, any case); each `equals` key's baseline value is as given.
    #[serde(rename = "crypto.resolved")]
    Resolved {
        #[serde(default)]
        forbidden: BTreeMap<String, Vec<String>>,
        #[serde(default)]
        equals: BTreeMap<String, String>,
    },
    /// The SSH configuration the policy generated (back-ends opensshserver.config,
    /// openssh.config and libssh.config, those present) lists under `keyword` no
    /// algorithm matching `forbidden` (fnmatch, any case).
    #[serde(rename = "crypto.ssh_backend")]
    SshBackend {
        keyword: String,
        forbidden: Vec<String>,
    },
    /// sshd takes its algorithms from the policy: /etc/sysconfig/sshd sets no
    /// CRYPTO_POLICY and passes no algorithm options, and sshd's configuration
    /// includes the policy's opensshserver.config back-end.
    #[serde(rename = "crypto.sshd_uses_policy")]
    SshdUsesPolicy {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::Policy { forbidden } => policy(facts, forbidden),
            Check::Resolved { forbidden, equals } => resolved(facts, forbidden, equals),
            Check::SshBackend { keyword, forbidden } => ssh_backend(facts, keyword, forbidden),
            Check::SshdUsesPolicy {} => sshd_uses_policy(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

/// The configured policy, with failures and evidence about whether it is applied.
struct PolicyState {
    configured: Option<PolicyName>,
    failures: Vec<String>,
    found: Vec<String>,
}

/// The configured policy and whether it is the one last applied.
fn policy_state(facts: &Facts) -> Result<PolicyState, FactError> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    let conf = configured(facts)?;
    match &conf {
        Some(p) => found.push(format!("{}: policy {}", p.source, p.full)),
        None => failures.push(format!(
            "{CONFIG} does not exist or names no policy: the system-wide crypto policy cannot be confirmed"
        )),
    }
    match (applied(facts)?, &conf) {
        (Some(a), Some(c)) if a.full.eq_ignore_ascii_case(&c.full) => {
            found.push(format!("{}: {} is applied", a.source, a.full))
        }
        (Some(a), Some(c)) => failures.push(format!(
            "{}: {} is applied, not the configured {} (run update-crypto-policies)",
            a.source, a.full, c.full
        )),
        (None, _) => failures.push(format!(
            "{STATE_CURRENT} does not exist: update-crypto-policies has not applied a policy"
        )),
        _ => {}
    }
    Ok(PolicyState {
        configured: conf,
        failures,
        found,
    })
}

fn policy(facts: &Facts, forbidden: &[String]) -> Result<Outcome, FactError> {
    let PolicyState {
        configured: conf,
        mut failures,
        found,
    } = policy_state(facts)?;
    if let Some(c) = conf {
        if forbidden.iter().any(|f| f.eq_ignore_ascii_case(&c.base)) {
            failures.insert(
                0,
                format!("{}: the base policy {} is not allowed", c.source, c.base),
            );
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

fn resolved(
    facts: &Facts,
    forbidden: &BTreeMap<String, Vec<String>>,
    equals: &BTreeMap<String, String>,
) -> Result<Outcome, FactError> {
    let PolicyState {
        mut failures,
        mut found,
        ..
    } = policy_state(facts)?;
    let Some(lines) = current_pol(facts)? else {
        failures.insert(
            0,
            format!("{CURRENT_POL} does not exist: the applied policy cannot be read"),
        );
        return Ok(Outcome::from_findings(failures, found));
    };
    for (key, pats) in forbidden {
        let key = key.to_ascii_lowercase();
        let mut seen = 0;
        for l in lines.iter().filter(|l| l.key == key) {
            seen += 1;
            let bad: Vec<&str> = l
                .values
                .iter()
                .filter(|v| {
                    let v = v.to_ascii_lowercase();
                    pats.iter()
                        .any(|p| fnmatch(&p.to_ascii_lowercase(), v.trim_end_matches('+')))
                })
                .map(String::as_str)
                .collect();
            let name = match &l.scope {
                Some(s) => format!("{key}@{s}"),
                None => key.clone(),
            };
            if !bad.is_empty() {
                failures.push(format!("{}: {name} allows {}", l.source, bad.join(" ")));
            }
        }
        if seen == 0 {
            failures.push(format!(
                "{CURRENT_POL} has no {key} line: what the policy allows cannot be confirmed"
            ));
        } else {
            found.push(format!(
                "{CURRENT_POL}: {seen} {key} line(s) checked for {}",
                pats.join(" ")
            ));
        }
    }
    for (key, want) in equals {
        let key = key.to_ascii_lowercase();
        match lines
            .iter()
            .rev()
            .find(|l| l.key == key && l.scope.is_none())
        {
            Some(l) if l.values.join(" ") == *want => {
                found.push(format!("{}: {key} = {want}", l.source))
            }
            Some(l) => failures.push(format!(
                "{}: {key} = {} (required: {want})",
                l.source,
                l.values.join(" ")
            )),
            None => failures.push(format!(
                "{CURRENT_POL} does not set {key} (required: {want})"
            )),
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

fn ssh_backend(facts: &Facts, keyword: &str, forbidden: &[String]) -> Result<Outcome, FactError> {
    let PolicyState {
        mut failures,
        mut found,
        ..
    } = policy_state(facts)?;
    let mut present = 0;
    for path in [BACKEND_SSHD, BACKEND_SSH, BACKEND_LIBSSH] {
        let Some(text) = facts.read(path)? else {
            continue;
        };
        present += 1;
        let lines = parse_ssh_backend(&text, path);
        let Some(l) = lines
            .iter()
            .find(|l| l.keyword.eq_ignore_ascii_case(keyword))
        else {
            failures.push(format!(
                "{path} sets no {keyword}: the library's built-in list applies, unrestricted by the policy"
            ));
            continue;
        };
        let bad: Vec<&str> = l
            .names
            .iter()
            .filter(|n| {
                let n = n.to_ascii_lowercase();
                forbidden
                    .iter()
                    .any(|p| fnmatch(&p.to_ascii_lowercase(), &n))
            })
            .map(String::as_str)
            .collect();
        if bad.is_empty() {
            found.push(format!(
                "{}: {keyword} has none of {}",
                l.source,
                forbidden.join(" ")
            ));
        } else {
            failures.push(format!("{}: {keyword} allows {}", l.source, bad.join(",")));
        }
    }
    if present == 0 {
        failures.insert(
            0,
            format!(
                "none of {BACKEND_SSHD}, {BACKEND_SSH}, {BACKEND_LIBSSH} exists: the policy has generated no SSH configuration"
            ),
        );
    }
    Ok(Outcome::from_findings(failures, found))
}

/// `Include` lines of sshd's main file and drop-ins that name `target`.
fn includes_backend(facts: &Facts, target: &str) -> Result<Option<String>, FactError> {
    let mut files = vec!["/etc/ssh/sshd_config".to_string()];
    files.extend(facts.dir_files("/etc/ssh/sshd_config.d", ".conf")?);
    for f in files {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let mut words = strip_comment(raw).split_whitespace();
            if words
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("include"))
                && words.any(|w| w.trim_matches('"') == target)
            {
                return Ok(Some(format!("{f}:{}: Include {target}", n + 1)));
            }
        }
    }
    Ok(None)
}

fn sshd_uses_policy(facts: &Facts) -> Result<Outcome, FactError> {
    let pk = packages(facts)?;
    if !pk.is_installed("openssh-server") {
        return Ok(Outcome::not_applicable(pk.describe("openssh-server")));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match facts.read(SYSCONFIG_SSHD)? {
        None => found.push(format!("{SYSCONFIG_SSHD} does not exist")),
        Some(text) => {
            let mut clean = true;
            for (n, raw) in text.lines().enumerate() {
                let line = strip_comment(raw);
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                let k = k.trim().trim_start_matches("export ").trim();
                let src = format!("{SYSCONFIG_SSHD}:{}", n + 1);
                if k == "CRYPTO_POLICY" {
                    clean = false;
                    failures.push(format!(
                        "{src}: CRYPTO_POLICY is set, overriding the system policy"
                    ));
                } else if k == "OPTIONS" {
                    let v = v.to_ascii_lowercase();
                    for o in SSHD_POLICY_OPTIONS {
                        if v.contains(&format!("-o{o}")) || v.contains(&format!("-o {o}")) {
                            clean = false;
                            failures.push(format!(
                                "{src}: OPTIONS sets {o}, overriding the system policy"
                            ));
                        }
                    }
                }
            }
            if clean {
                found.push(format!(
                    "{SYSCONFIG_SSHD}: no CRYPTO_POLICY and no algorithm options"
                ));
            }
        }
    }
    match includes_backend(facts, BACKEND_SSHD)? {
        Some(line) => found.push(line),
        None => failures.push(format!(
            "neither /etc/ssh/sshd_config nor /etc/ssh/sshd_config.d/*.conf includes {BACKEND_SSHD}: sshd does not read the system policy"
        )),
    }
    Ok(Outcome::from_findings(failures, found))
}
