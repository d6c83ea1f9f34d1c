//! packages: the package database as the package manager itself reads it, in two
//! halves — `dpkg` (the Debian root's own dpkg-query and dpkg, on generated status
//! databases) and `rpm` (the host's rpm 4.18, Debian's, on sqlite databases it writes
//! itself from packages rpmbuild makes). The agent (`rampart-agent facts packages`)
//! must agree, per package name, on whether it is installed and at which version,
//! and on the verdicts of `pkg.installed`, `pkg.absent` and `pkg.min_version`.
//!
//! What "installed" means for a rule is decided by what the package manager says
//! about the package's files (the dpkg half's module doc gives dpkg's states):
//! - installed: its files are there and configured — `pkg.installed` passes,
//!   `pkg.absent` fails, `pkg.min_version` compares its version;
//! - present: its files are (partly) there, but the package manager does not call it
//!   installed (dpkg's `half-installed`, `unpacked`, `half-configured`, or any state
//!   with files flagged `reinst-required`) — `pkg.installed` and `pkg.absent` both
//!   fail, and so does `pkg.min_version`: a "not installed" rule must not pass while
//!   the program may still be on disk;
//! - absent: no files but perhaps configuration files (`config-files`,
//!   `not-installed`, or no record) — `pkg.absent` passes.
//!
//! A name installed more than once (dpkg: one instance per architecture; rpm:
//! installonly packages, multilib) is installed when any instance is. dpkg's
//! `pkg.min_version` passes only when every installed instance, and every present
//! one of another architecture, is at least the version (an older copy of a library
//! is still there); rpm's compares the newest instance, as rpm-based tools rank a
//! name (kernels).

pub mod dpkg;
mod dpkg_fields;
pub mod rpm;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Tally;

/// What the package manager says about one package name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Installed,
    Present,
    Absent,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Installed => "installed",
            State::Present => "present",
            State::Absent => "absent",
        }
    }
}

/// The oracle's answer for one name.
#[derive(Debug, Clone)]
pub struct Expected {
    pub state: State,
    /// The installed instances' versions: the agent's version must be one of them
    /// (as the agent writes versions, after `normalise`).
    pub versions: Vec<String>,
}

/// One `pkg.min_version` question and the oracle's verdict.
#[derive(Debug, Clone)]
pub struct Pair {
    pub package: String,
    pub version: String,
    pub pass: bool,
}

/// The arguments of `rampart-agent facts packages` for these names and pairs.
pub fn agent_args(names: &[String], pairs: &[Pair]) -> Vec<String> {
    let mut args = Vec::new();
    for n in names {
        args.push("--package".to_string());
        args.push(n.clone());
    }
    for p in pairs {
        args.push("--at-least".to_string());
        args.push(format!("{}={}", p.package, p.version));
    }
    args
}

/// What a verdict the agent printed is, `"?"` when missing.
fn status(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// Compares the agent's answer with the oracle's; records a difference (and counts a
/// false pass) when they disagree. `normalise` maps the agent's version to the
/// oracle's spelling.
pub fn compare(
    tally: &mut Tally,
    false_passes: &mut usize,
    desc: &str,
    agent: &serde_json::Value,
    expected: &BTreeMap<String, Expected>,
    pairs: &[Pair],
    normalise: &dyn Fn(&str) -> String,
) {
    let mut what = String::new();
    let mut wrong_pass = false;
    for (name, e) in expected {
        let a = &agent["packages"][name];
        let state = status(&a["state"]);
        let version = a["version"].as_str().map(normalise);
        if state != e.state.as_str() {
            let _ = writeln!(
                what,
                "  {name}: the package manager says {}, the agent {state} ({})",
                e.state.as_str(),
                a["evidence"]
            );
        } else if e.state == State::Installed
            && !version.as_ref().is_some_and(|v| e.versions.contains(v))
        {
            let _ = writeln!(
                what,
                "  {name}: installed at {:?}, the agent says {version:?}",
                e.versions
            );
        }
        for (check, want) in [
            ("installed_check", e.state == State::Installed),
            ("absent_check", e.state == State::Absent),
        ] {
            let got = status(&a[check]);
            if got != if want { "pass" } else { "fail" } {
                wrong_pass |= got == "pass";
                let _ = writeln!(
                    what,
                    "  {name}: {check} should {}, the agent says {got}",
                    if want { "pass" } else { "fail" }
                );
            }
        }
    }
    for (i, p) in pairs.iter().enumerate() {
        let got = status(&agent["at_least"][i]["status"]);
        if got != if p.pass { "pass" } else { "fail" } {
            wrong_pass |= got == "pass";
            let _ = writeln!(
                what,
                "  {} at least {}: the package manager says {}, the agent {got} ({})",
                p.package,
                p.version,
                if p.pass { "pass" } else { "fail" },
                agent["at_least"][i]["evidence"]
            );
        }
    }
    if !what.is_empty() {
        if wrong_pass {
            *false_passes += 1;
            what.insert_str(0, "  (a false pass)\n");
        }
        tally.differ(desc, &what);
    }
}

/// Characters a generated version is made of, by kind.
pub fn digits(rng: &mut super::Rng) -> String {
    let mut s = String::new();
    if rng.chance(10) {
        s.push('0');
    }
    let top = if rng.chance(80) { 20 } else { 100_000 };
    s += &rng.below(top).to_string();
    s
}

/// A few letters, lower or upper case.
pub fn letters(rng: &mut super::Rng) -> String {
    let pool = ["a", "b", "rc", "p", "git", "Z", "el", "deb", "beta", "A"];
    rng.pick(&pool).to_string()
}

/// Digits, then up to three pieces, each drawn from `marks`: a piece's `9` stands
/// for [`digits`], its `a` for [`letters`], any other character for itself (`.9`,
/// `~a`, `^a9`...). Each package manager's half lists the pieces its versions are
/// made of (a piece listed twice is drawn twice as often).
pub fn version_part(rng: &mut super::Rng, marks: &[&str]) -> String {
    let mut v = digits(rng);
    for _ in 0..rng.below(4) {
        for c in rng.pick(marks).chars() {
            match c {
                '9' => v += &digits(rng),
                'a' => v += &letters(rng),
                _ => v.push(c),
            }
        }
    }
    v
}
