//! auditd.conf as auditd reads it: `name = value [option]` lines, with notes on the
//! lines auditd would reject.

use std::sync::Arc;

use crate::facts::{Fact, FactError, Facts};

pub const AUDITD_CONF: &str = "/etc/audit/auditd.conf";

/// One `key = value [option]` of auditd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfLine {
    pub key: String,
    pub value: String,
    pub source: String,
    pub text: String,
}

/// auditd.conf's lines, and the files read.
pub type AuditdConf = (Vec<ConfLine>, Vec<String>);

/// auditd.conf as auditd reads it (`None` when missing), with notes on lines it
/// would reject.
pub fn auditd_conf(facts: &Facts) -> Result<Arc<Option<AuditdConf>>, FactError> {
    facts.get::<AuditdConfFact>()
}

/// auditd.conf as auditd reads it (`None` when missing), as a fact.
pub struct AuditdConfFact;

impl Fact for AuditdConfFact {
    type Value = Option<AuditdConf>;
    fn read(facts: &Facts) -> Result<Option<AuditdConf>, FactError> {
        let Some(text) = facts.read(AUDITD_CONF)? else {
            return Ok(None);
        };
        Ok(Some(parse_auditd_conf(&text)))
    }
}

/// auditd splits each line on blanks and wants exactly `name = value [option]`.
pub fn parse_auditd_conf(text: &str) -> (Vec<ConfLine>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let toks: Vec<&str> = raw.split_whitespace().collect();
        if toks.is_empty() || toks[0].starts_with('#') {
            continue;
        }
        let source = format!("{AUDITD_CONF}:{}", n + 1);
        if toks.len() < 3 || toks[1] != "=" || toks.len() > 4 {
            notes.push(format!(
                "{source}: `{}` is not `name = value`; auditd rejects it",
                raw.trim()
            ));
            continue;
        }
        out.push(ConfLine {
            key: toks[0].to_ascii_lowercase(),
            value: toks[2].to_string(),
            source,
            text: raw.trim().to_string(),
        });
    }
    (out, notes)
}
