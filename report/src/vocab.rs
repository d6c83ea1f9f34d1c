//! The vocabulary the agent, the collector and the reports share, defined once: a
//! rule's [`Status`] and [`Severity`], failures counted per severity
//! ([`SeverityCounts`]), the CIS [`Profile`]s and their [`Role`]s, the [`score`]
//! formula and the one order of rule IDs ([`cmp_rule_ids`]).
//!
//! The names (`as_str`) are the JSON, stored and wire forms. `Status` and `Severity`
//! (de)serialise as their names and `SeverityCounts` as its array, so records written
//! before these types existed read unchanged.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A rule's result in a scan. Its names ([`Status::as_str`]) are the JSON and stored
/// form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The recommendation is met.
    Pass,
    /// The recommendation is not met.
    Fail,
    /// The rule could not be evaluated; the evidence says why.
    Error,
    /// The recommendation does not apply to this host; the evidence says why.
    NotApplicable,
    /// A manual recommendation: listed, never passed, not scored.
    NotChecked,
    /// Skipped because the operator exempted it.
    Exempted,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// Every status, in report order: failures first, then errors, passes, the rest.
    pub const ALL: [Status; 6] = [
        Status::Fail,
        Status::Error,
        Status::Pass,
        Status::NotChecked,
        Status::NotApplicable,
        Status::Exempted,
    ];

    /// The name used in JSON, in stored records and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::NotApplicable => "not_applicable",
            Status::NotChecked => "not_checked",
            Status::Exempted => "exempted",
        }
    }

    /// Parses the name of a status.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the status counts in the score (pass, fail, error).
    pub fn is_scored(self) -> bool {
        matches!(self, Status::Pass | Status::Fail | Status::Error)
    }

    /// The XCCDF 1.2 result: exempted rules were deselected by the operator.
    pub fn xccdf(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::NotApplicable => "notapplicable",
            Status::NotChecked => "notchecked",
            Status::Exempted => "notselected",
        }
    }

    /// Failures first, then errors, passes, and the rest.
    pub fn rank(self) -> u8 {
        Status::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default() as u8
    }
}

/// How much a failure of a rule matters. Ordered most severe first, as reports list
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Severity {
    /// Every severity, most severe first: the order of [`SeverityCounts`].
    pub const ALL: [Severity; 4] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];

    /// The name used in content, JSON, stored records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// Parses the name of a severity.
    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Failed rules counted per severity. Stored (and serialised) as an array in
/// [`Severity::ALL`] order, `[critical, high, medium, low]`, the form scan records
/// have always had; read it through [`SeverityCounts::get`] or
/// [`SeverityCounts::iter`], never by position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeverityCounts([u32; 4]);

impl SeverityCounts {
    /// The count of `s`.
    pub fn get(&self, s: Severity) -> u32 {
        self.0[s.index()]
    }

    /// Sets the count of `s`.
    pub fn set(&mut self, s: Severity, n: u32) {
        self.0[s.index()] = n;
    }

    /// Counts one more failure of severity `s`.
    pub fn add(&mut self, s: Severity) {
        self.0[s.index()] = self.0[s.index()].saturating_add(1);
    }

    /// Every severity with its count, most severe first.
    pub fn iter(&self) -> impl Iterator<Item = (Severity, u32)> + '_ {
        Severity::ALL.into_iter().map(|s| (s, self.get(s)))
    }

    /// All counts together.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
}

impl FromIterator<Severity> for SeverityCounts {
    fn from_iter<I: IntoIterator<Item = Severity>>(iter: I) -> SeverityCounts {
        let mut c = SeverityCounts::default();
        for s in iter {
            c.add(s);
        }
        c
    }
}

impl FromIterator<(Severity, u32)> for SeverityCounts {
    fn from_iter<I: IntoIterator<Item = (Severity, u32)>>(iter: I) -> SeverityCounts {
        let mut c = SeverityCounts::default();
        for (s, n) in iter {
            c.set(s, n);
        }
        c
    }
}

/// [`SeverityCounts`] by name, `{"critical": …, "high": …, "medium": …, "low": …}`:
/// the one form the JSON scan document and the REST API show failures per severity
/// in (the stored form stays the array).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::ToSchema),
    schema(as = SeverityDto, description = "Failed rules by severity.")
)]
pub struct SeverityCountsByName {
    pub critical: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
}

impl From<SeverityCounts> for SeverityCountsByName {
    fn from(c: SeverityCounts) -> Self {
        SeverityCountsByName {
            critical: c.get(Severity::Critical),
            high: c.get(Severity::High),
            medium: c.get(Severity::Medium),
            low: c.get(Severity::Low),
        }
    }
}

impl From<SeverityCountsByName> for SeverityCounts {
    fn from(c: SeverityCountsByName) -> Self {
        [
            (Severity::Critical, c.critical),
            (Severity::High, c.high),
            (Severity::Medium, c.medium),
            (Severity::Low, c.low),
        ]
        .into_iter()
        .collect()
    }
}

/// The machine role a profile is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Server,
    Workstation,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Workstation => "workstation",
        }
    }
}

/// A CIS profile: a machine role and a level. Level 2 includes level 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Profile {
    pub role: Role,
    pub level: u8,
}

impl Profile {
    /// Every profile, in display order.
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

    /// The names of every profile, in display order.
    pub const NAMES: [&'static str; 4] = [
        "level1-server",
        "level2-server",
        "level1-workstation",
        "level2-workstation",
    ];

    /// Parses `level1-server`, `level2-workstation`, …
    pub fn parse(s: &str) -> Option<Profile> {
        Profile::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The profile's name, e.g. `level1-server`: its form everywhere outside Rust.
    pub fn name(self) -> &'static str {
        match (self.role, self.level) {
            (Role::Server, 1) => Profile::NAMES[0],
            (Role::Server, _) => Profile::NAMES[1],
            (Role::Workstation, 1) => Profile::NAMES[2],
            (Role::Workstation, _) => Profile::NAMES[3],
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// SPEC §4's default setting, `level1-server`.
impl Default for Profile {
    fn default() -> Profile {
        Profile::ALL[0]
    }
}

/// A name that is not one of [`Profile::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProfile(pub String);

impl fmt::Display for UnknownProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown profile `{}`; expected {}",
            self.0,
            Profile::NAMES.join(", ")
        )
    }
}

impl std::error::Error for UnknownProfile {}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Profile, UnknownProfile> {
        Profile::parse(s).ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

/// A profile is stored and sent as its name, the form records had when it was a string.
impl Serialize for Profile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Profile, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The score of a scan: passed ÷ (passed + failed + error) × 100, rounded to one
/// decimal; `None` when no rule was scored. The one formula the agent's summary,
/// the collector's policy and the reports use.
pub fn score(passed: u32, failed: u32, error: u32) -> Option<f64> {
    let scored = passed + failed + error;
    (scored > 0).then(|| (passed as f64 * 1000.0 / scored as f64).round() / 10.0)
}

/// The one order of rule IDs: CIS IDs numerically, component by component (`1.2.10`
/// after `1.2.9`, `1.10` after `1.9`); a part that is not a number compares as text.
pub fn cmp_rule_ids(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let o = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => p.cmp(q),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip_and_map_to_xccdf() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
        assert_eq!(Status::parse("passed"), None);
        let err = serde_json::from_str::<Status>("\"passed\"").unwrap_err();
        assert!(err.to_string().contains("passed"), "{err}");
        let table = [
            (Status::Pass, "pass"),
            (Status::Fail, "fail"),
            (Status::Error, "error"),
            (Status::NotApplicable, "notapplicable"),
            (Status::NotChecked, "notchecked"),
            (Status::Exempted, "notselected"),
        ];
        for (s, x) in table {
            assert_eq!(s.xccdf(), x, "{s:?}");
        }
    }

    #[test]
    fn severity_names_round_trip_most_severe_first() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Severity>(&json).unwrap(), s);
        }
        assert_eq!(Severity::parse("Critical"), None);
        assert!(Severity::Critical < Severity::Low);
        let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["critical", "high", "medium", "low"]);
    }

    #[test]
    fn severity_counts_keep_the_stored_array_form() {
        let c: SeverityCounts = [Severity::Critical, Severity::Low, Severity::Low]
            .into_iter()
            .collect();
        assert_eq!(c.get(Severity::Critical), 1);
        assert_eq!(c.get(Severity::High), 0);
        assert_eq!(c.get(Severity::Low), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(serde_json::to_string(&c).unwrap(), "[1,0,0,2]");
        let back: SeverityCounts = serde_json::from_str("[1,0,0,2]").unwrap();
        assert_eq!(back, c);
        let pairs: Vec<(Severity, u32)> = c.iter().collect();
        assert_eq!(pairs[3], (Severity::Low, 2));
        assert_eq!(pairs.into_iter().collect::<SeverityCounts>(), c);
        let named = SeverityCountsByName::from(c);
        assert_eq!(
            serde_json::to_string(&named).unwrap(),
            r#"{"critical":1,"high":0,"medium":0,"low":2}"#
        );
        assert_eq!(SeverityCounts::from(named), c);
    }

    #[test]
    fn profile_names_round_trip() {
        for p in Profile::ALL {
            assert_eq!(Profile::parse(p.name()), Some(p));
        }
        let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, Profile::NAMES);
        assert_eq!(Profile::parse("level3-server"), None);
        for p in Profile::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
        }
        let err = serde_json::from_str::<Profile>("\"level3-server\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown profile `level3-server`"),
            "{err}"
        );
        assert!(serde_json::from_str::<Profile>("2").is_err());
    }

    #[test]
    fn the_score_counts_pass_fail_and_error_only() {
        assert_eq!(score(0, 0, 0), None);
        assert_eq!(score(2, 1, 0), Some(66.7));
        assert_eq!(score(1, 1, 1), Some(33.3));
        assert_eq!(score(98, 68, 0), Some(59.0));
        assert_eq!(score(5, 0, 0), Some(100.0));
    }

    #[test]
    fn rule_ids_sort_numerically() {
        let mut ids = vec!["1.2.10", "1.10", "1.2.9", "1.2", "a", "1.2.9.1", "1.9"];
        ids.sort_by(|a, b| cmp_rule_ids(a, b));
        assert_eq!(
            ids,
            ["1.2", "1.2.9", "1.2.9.1", "1.2.10", "1.9", "1.10", "a"]
        );
    }
}
