//! The wire's enums and the vocabulary the agent and the collector share
//! (`rampart_report`): `From` the domain to the wire, `TryFrom` the wire to the
//! domain. An unspecified or unknown number is refused with an error naming it,
//! never read as a default.

use std::fmt;

use rampart_report::{Severity, Status};

use crate::v1;

/// A wire enum's number that names no value of the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue {
    /// What the number was meant to be, e.g. `rule status`.
    pub what: &'static str,
    /// The number received.
    pub value: i32,
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let note = if self.value == 0 {
            " (unspecified)"
        } else {
            ""
        };
        write!(f, "{} {}{note} is not a known value", self.what, self.value)
    }
}

impl std::error::Error for UnknownValue {}

impl From<Status> for v1::RuleStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pass => v1::RuleStatus::Pass,
            Status::Fail => v1::RuleStatus::Fail,
            Status::Error => v1::RuleStatus::Error,
            Status::NotApplicable => v1::RuleStatus::NotApplicable,
            Status::NotChecked => v1::RuleStatus::NotChecked,
            Status::Exempted => v1::RuleStatus::Exempted,
        }
    }
}

impl TryFrom<v1::RuleStatus> for Status {
    type Error = UnknownValue;

    fn try_from(s: v1::RuleStatus) -> Result<Self, UnknownValue> {
        Ok(match s {
            v1::RuleStatus::Pass => Status::Pass,
            v1::RuleStatus::Fail => Status::Fail,
            v1::RuleStatus::Error => Status::Error,
            v1::RuleStatus::NotApplicable => Status::NotApplicable,
            v1::RuleStatus::NotChecked => Status::NotChecked,
            v1::RuleStatus::Exempted => Status::Exempted,
            v1::RuleStatus::Unspecified => {
                return Err(UnknownValue {
                    what: RULE_STATUS,
                    value: s as i32,
                })
            }
        })
    }
}

impl From<Severity> for v1::Severity {
    fn from(s: Severity) -> Self {
        match s {
            Severity::Critical => v1::Severity::Critical,
            Severity::High => v1::Severity::High,
            Severity::Medium => v1::Severity::Medium,
            Severity::Low => v1::Severity::Low,
        }
    }
}

impl TryFrom<v1::Severity> for Severity {
    type Error = UnknownValue;

    fn try_from(s: v1::Severity) -> Result<Self, UnknownValue> {
        Ok(match s {
            v1::Severity::Critical => Severity::Critical,
            v1::Severity::High => Severity::High,
            v1::Severity::Medium => Severity::Medium,
            v1::Severity::Low => Severity::Low,
            v1::Severity::Unspecified => {
                return Err(UnknownValue {
                    what: SEVERITY,
                    value: s as i32,
                })
            }
        })
    }
}

const RULE_STATUS: &str = "rule status";
const SEVERITY: &str = "severity";

/// A message's `RuleStatus` field (its number, as prost keeps it) as a [`Status`].
pub fn rule_status(value: i32) -> Result<Status, UnknownValue> {
    let unknown = UnknownValue {
        what: RULE_STATUS,
        value,
    };
    v1::RuleStatus::try_from(value)
        .map_err(|_| unknown)
        .and_then(Status::try_from)
}

/// A message's `Severity` field (its number) as a [`Severity`].
pub fn severity(value: i32) -> Result<Severity, UnknownValue> {
    let unknown = UnknownValue {
        what: SEVERITY,
        value,
    };
    v1::Severity::try_from(value)
        .map_err(|_| unknown)
        .and_then(Severity::try_from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_and_severity_round_trips_through_the_wire() {
        for s in Status::ALL {
            assert_eq!(rule_status(v1::RuleStatus::from(s) as i32), Ok(s));
        }
        for s in Severity::ALL {
            assert_eq!(severity(v1::Severity::from(s) as i32), Ok(s));
        }
    }

    #[test]
    fn unknown_and_unspecified_numbers_are_named() {
        for (n, text) in [
            (0, "rule status 0 (unspecified) is not a known value"),
            (7, "rule status 7 is not a known value"),
            (-1, "rule status -1 is not a known value"),
            (i32::MAX, "rule status 2147483647 is not a known value"),
        ] {
            assert_eq!(rule_status(n).unwrap_err().to_string(), text);
        }
        assert_eq!(
            severity(99).unwrap_err().to_string(),
            "severity 99 is not a known value"
        );
        assert!(severity(0).is_err());
    }
}
