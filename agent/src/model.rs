//! The agent's domain vocabulary: statuses, severities, profiles and check outcomes.

use std::fmt;

/// The result of evaluating one rule: the vocabulary the agent shares with the
/// collector and the reports.
pub use rampart_report::Status;

/// How much a failure of a rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A CIS profile: a machine role and a level. Level 2 includes level 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    pub role: Role,
    pub level: u8,
}

/// The machine role a profile is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Server,
    Workstation,
}

impl Profile {
    pub const ALL: [Profile; 4] = [
        Profile {
            role: Role::Server,
            level: 1,
        },
        Profile {
            role: Role::Server,
            level: 2,
        },
        Profile {
            role: Role::Workstation,
            level: 1,
        },
        Profile {
            role: Role::Workstation,
            level: 2,
        },
    ];

    /// Parses `level1-server`, `level2-workstation`, …
    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == s)
    }

    pub fn name(self) -> &'static str {
        match (self.role, self.level) {
            (Role::Server, 1) => "level1-server",
            (Role::Server, _) => "level2-server",
            (Role::Workstation, 1) => "level1-workstation",
            (Role::Workstation, _) => "level2-workstation",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a check found: a status and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    /// What was read where, and the value found. Never empty for an evaluated check.
    pub evidence: Vec<String>,
}

impl Outcome {
    pub fn new(status: Status, evidence: Vec<String>) -> Outcome {
        Outcome { status, evidence }
    }
    pub fn pass(evidence: impl Into<String>) -> Outcome {
        Outcome::new(Status::Pass, vec![evidence.into()])
    }
    pub fn fail(evidence: impl Into<String>) -> Outcome {
        Outcome::new(Status::Fail, vec![evidence.into()])
    }
    pub fn error(evidence: impl Into<String>) -> Outcome {
        Outcome::new(Status::Error, vec![evidence.into()])
    }
    pub fn not_applicable(evidence: impl Into<String>) -> Outcome {
        Outcome::new(Status::NotApplicable, vec![evidence.into()])
    }

    /// Pass when `failures` is empty, else fail; `found` is evidence either way.
    pub fn from_findings(failures: Vec<String>, found: Vec<String>) -> Outcome {
        if failures.is_empty() {
            Outcome::new(Status::Pass, found)
        } else {
            let mut ev = failures;
            ev.extend(found);
            Outcome::new(Status::Fail, ev)
        }
    }

    /// Combines the outcomes of parts that must all hold: any fail fails, else any
    /// error errors, else all not-applicable is not applicable, else pass.
    pub fn all(parts: Vec<Outcome>) -> Outcome {
        let mut status = Status::NotApplicable;
        let rank = |s: Status| match s {
            Status::Fail => 4,
            Status::Error => 3,
            Status::Pass => 2,
            _ => 1,
        };
        let mut evidence = Vec::new();
        for p in parts {
            if rank(p.status) > rank(status) {
                status = p.status;
            }
            for e in p.evidence {
                if !evidence.contains(&e) {
                    evidence.push(e);
                }
            }
        }
        if status != Status::Pass && status != Status::Fail && status != Status::Error {
            status = Status::NotApplicable;
        }
        Outcome { status, evidence }
    }
}

impl From<crate::facts::FactError> for Outcome {
    fn from(e: crate::facts::FactError) -> Outcome {
        Outcome::error(e.to_string())
    }
}
