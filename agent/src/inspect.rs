//! `rampart-agent facts`: a debug command that prints, as JSON, what some check
//! families judge, read by the very readers and functions those checks use (never a
//! second reading). The differential tests (`tests/tests/differential.rs`) compare it
//! with the answers of the real programs run on the same root.
//!
//! The DTOs here derive `Serialize` on purpose: they are a debug boundary, whose
//! shape may change between releases.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::checks::sshd::config::sshd_config;
use crate::checks::sshd::keys::{host_keys, judged};
use crate::checks::sshd::keywords::{self, canonical, Assign, KEYWORDS};
use crate::checks::sshd::FileSet;
use crate::engine::open_root;
use crate::error::AgentError;
use crate::facts::sysctl::{
    applied_files, kernel_int, persisted, persisted_value, to_slash, Persisted,
};
use crate::facts::Facts;

/// The sysctl facts of a root: the files systemd-sysctl would read at boot, in order,
/// and the persisted value of each key asked for.
#[derive(Debug, Serialize)]
pub struct SysctlFacts {
    pub files: Vec<SysctlFile>,
    /// Per key as asked (dotted or slash form): its persisted value, or `null` when
    /// no applied file sets it.
    pub values: BTreeMap<String, Option<SysctlValue>>,
    /// Whether IP forwarding is on after boot, as ufw's routed-policy rule judges it.
    pub forwarding: Forwarding,
}

/// IP forwarding after boot.
#[derive(Debug, Serialize)]
pub struct Forwarding {
    pub on: bool,
    pub evidence: String,
}

/// One entry of the sysctl.d directories.
#[derive(Debug, Serialize)]
pub struct SysctlFile {
    pub listed: String,
    /// The file it really is; `null` when it applies nothing (masked, dangling).
    pub real: Option<String>,
}

/// A persisted sysctl value and where it comes from.
#[derive(Debug, Serialize)]
pub struct SysctlValue {
    /// As written after `=`, blanks trimmed (what systemd-sysctl writes).
    pub value: String,
    /// The integer the kernel takes from it, `null` when it refuses it.
    pub kernel: Option<i64>,
    pub source: String,
    /// The glob pattern that set it, if one did.
    pub glob: Option<String>,
}

/// The sshd facts of a root: the configuration as the sshd checks read it.
#[derive(Debug, Serialize)]
pub struct SshdFacts {
    /// Every configuration file read, in order.
    pub files: Vec<String>,
    /// The lines that make sshd refuse the configuration (empty when it accepts it).
    pub refused: Vec<String>,
    /// Per keyword of the rules (lower case): the value every connection gets and the
    /// values Match blocks set, as `sshd -T` would print them.
    pub keywords: BTreeMap<String, SshdKeyword>,
    /// The host keys sshd loads (`HostKey`, or the defaults).
    pub host_keys: Vec<String>,
    /// The private key files the private-key permission rule judges.
    pub private_keys: Vec<String>,
}

/// One keyword's effective value.
#[derive(Debug, Serialize)]
pub struct SshdKeyword {
    /// Single-valued keywords: the one value (the default when unset). Keywords whose
    /// values accumulate (`AllowUsers`): every value every connection gets.
    pub value: Vec<String>,
    /// The line that sets it, `null` for the compiled-in default.
    pub source: Option<String>,
    /// Values set inside Match blocks other than `Match all`, as the checks judge them.
    pub in_match: Vec<String>,
}

fn facts_of(root: &Path) -> Result<Facts, AgentError> {
    let (root, live) = open_root(root)?;
    Ok(Facts::new(&root, live))
}

/// The sysctl facts of `root` for `keys`.
pub fn sysctl(root: &Path, keys: &[String]) -> Result<SysctlFacts, AgentError> {
    let facts = facts_of(root)?;
    let files = applied_files(&facts)?
        .into_iter()
        .map(|f| SysctlFile {
            listed: f.listed,
            real: f.real,
        })
        .collect();
    let entries = persisted(&facts);
    let entries = entries.as_ref().as_ref().map_err(Clone::clone)?;
    let values = keys
        .iter()
        .map(|k| {
            let v = match persisted_value(entries, &to_slash(k)) {
                Persisted::Set {
                    value,
                    source,
                    glob,
                } => Some(SysctlValue {
                    kernel: kernel_int(&value),
                    value,
                    source,
                    glob,
                }),
                Persisted::Unset(_) => None,
            };
            (k.clone(), v)
        })
        .collect();
    let (on, evidence) = crate::checks::firewall::ip_forwarding(&facts)?;
    Ok(SysctlFacts {
        files,
        values,
        forwarding: Forwarding { on, evidence },
    })
}

/// The sshd facts of `root`.
pub fn sshd(root: &Path) -> Result<SshdFacts, AgentError> {
    let facts = facts_of(root)?;
    let cfg = sshd_config(&facts);
    let cfg = cfg.as_ref().as_ref().map_err(Clone::clone)?;
    let mut out = BTreeMap::new();
    for k in KEYWORDS {
        let in_match = cfg
            .in_match(k.name)
            .into_iter()
            .filter(|d| !d.match_all)
            .filter_map(|d| canonical(k.name, &d.args))
            .collect();
        let (value, source) = match k.assign {
            // The keys sshd loads: the configured ones or its defaults.
            Assign::Accumulate if k.name == "HostKey" => (
                host_keys(cfg),
                cfg.all_global(k.name).first().map(|d| d.source.clone()),
            ),
            // A `Match all` block's list replaces the global one for every connection.
            Assign::Accumulate => {
                let in_all: Vec<_> = cfg
                    .in_match(k.name)
                    .into_iter()
                    .filter(|d| d.match_all)
                    .collect();
                let ds = if in_all.is_empty() {
                    cfg.all_global(k.name)
                } else {
                    in_all
                };
                let source = ds.first().map(|d| d.source.clone());
                (ds.iter().flat_map(|d| d.args.clone()).collect(), source)
            }
            _ if k.name == "MaxStartups" => match keywords::max_startups(cfg) {
                Some((v, d)) => (vec![v], Some(d.source.clone())),
                None => (default_value(k.name), None),
            },
            _ => match keywords::effective(cfg, k.name) {
                Some(d) => (
                    canonical(k.name, &d.args).into_iter().collect(),
                    Some(d.source.clone()),
                ),
                None => (default_value(k.name), None),
            },
        };
        out.insert(
            k.name.to_ascii_lowercase(),
            SshdKeyword {
                value,
                source,
                in_match,
            },
        );
    }
    let private_keys = judged(&facts, cfg, FileSet::PrivateKeys)?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    Ok(SshdFacts {
        files: cfg.files.clone(),
        refused: keywords::refusals(cfg),
        keywords: out,
        host_keys: host_keys(cfg),
        private_keys,
    })
}

/// The compiled-in default of a keyword, as `sshd -T` prints it (none for the
/// keywords without one, such as `AllowUsers`).
fn default_value(name: &str) -> Vec<String> {
    crate::checks::sshd::default_of(name)
        .and_then(|d| canonical(name, &[d.to_string()]))
        .into_iter()
        .collect()
}
