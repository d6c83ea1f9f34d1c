//! The agent's domain vocabulary: check outcomes, and the statuses, severities and
//! profiles it shares with the collector and the reports (`rampart_report`).

pub use rampart_report::{Profile, Role, Severity, SeverityCounts, Status, UnknownProfile};

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
