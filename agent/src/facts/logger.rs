//! Which logger a host uses: rsyslog when `rsyslog.service` is enabled (or, live,
//! running), otherwise journald. Decided once per scan; the `logging.*` checks take
//! the half of the recommendations that applies from it.

use std::sync::Arc;

use serde::Deserialize;

use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::{Fact, FactError, Facts};

/// The two loggers a CIS Debian or Ubuntu host can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Logger {
    Journald,
    Rsyslog,
}

impl Logger {
    /// The logger's name in evidence.
    pub fn name(self) -> &'static str {
        match self {
            Logger::Journald => "journald",
            Logger::Rsyslog => "rsyslog",
        }
    }
}

/// The logger in use and why.
#[derive(Debug, Clone)]
pub struct LoggerChoice {
    pub logger: Logger,
    pub evidence: Vec<String>,
}

/// Decides once per scan which logger is in use.
pub fn logger(facts: &Facts) -> Result<Arc<LoggerChoice>, FactError> {
    facts.get::<LoggerChoice>()
}

impl Fact for LoggerChoice {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let u = unit(facts, "rsyslog.service")?;
        let mut evidence = vec![u.describe()];
        if let Ok(pk) = packages(facts).as_ref() {
            evidence.push(pk.describe("rsyslog"));
        }
        // A `.wants` link to a unit not found (package removed, not purged) does not count.
        let on = u.in_use();
        let logger = if on {
            Logger::Rsyslog
        } else {
            Logger::Journald
        };
        Ok(LoggerChoice { logger, evidence })
    }
}
