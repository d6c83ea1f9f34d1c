//! The catalogue of typed checks. Benchmark content names a check by `kind`
//! (`family.name`, e.g. `file.perms`) with typed parameters; each family lives in
//! its own module with an `enum Check` (serde-tagged by `kind`) and an `eval`.
//!
//! Checks only read [`Facts`]; they never run programs and never change the host.

pub mod audit;
pub mod boot;
pub mod common;
pub mod crypto;
pub mod dnf;
pub mod file;
pub mod firewall;
pub mod kmod;
pub mod logging;
pub mod mount;
pub mod net;
pub mod pam;
pub mod pkg;
pub mod selinux;
pub mod shell;
pub mod sshd;
pub mod sysctl;
pub mod time;
pub mod users;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::facts::Facts;
use crate::model::{Outcome, Status};

/// A typed check, as written in the content files.
#[derive(Debug, Clone)]
pub enum Check {
    /// Every part must hold (`kind = "all"`, `checks = [...]`).
    All(Vec<Check>),
    /// At least one part must hold (`kind = "any"`, `checks = [...]`).
    Any(Vec<Check>),
    Audit(audit::Check),
    Boot(boot::Check),
    Crypto(crypto::Check),
    Dnf(dnf::Check),
    File(file::Check),
    Firewall(firewall::Check),
    Kmod(kmod::Check),
    Logging(logging::Check),
    Mount(mount::Check),
    Net(net::Check),
    Pam(pam::Check),
    Pkg(pkg::Check),
    Selinux(selinux::Check),
    Shell(shell::Check),
    Sshd(sshd::Check),
    Sysctl(sysctl::Check),
    Time(time::Check),
    Users(users::Check),
}

impl Check {
    /// Evaluates the check against the facts of one scan.
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self {
            Check::All(parts) => Outcome::all(parts.iter().map(|c| c.eval(facts)).collect()),
            Check::Any(parts) => any(parts.iter().map(|c| c.eval(facts)).collect()),
            Check::Audit(c) => c.eval(facts),
            Check::Boot(c) => c.eval(facts),
            Check::Crypto(c) => c.eval(facts),
            Check::Dnf(c) => c.eval(facts),
            Check::File(c) => c.eval(facts),
            Check::Firewall(c) => c.eval(facts),
            Check::Kmod(c) => c.eval(facts),
            Check::Logging(c) => c.eval(facts),
            Check::Mount(c) => c.eval(facts),
            Check::Net(c) => c.eval(facts),
            Check::Pam(c) => c.eval(facts),
            Check::Pkg(c) => c.eval(facts),
            Check::Selinux(c) => c.eval(facts),
            Check::Shell(c) => c.eval(facts),
            Check::Sshd(c) => c.eval(facts),
            Check::Sysctl(c) => c.eval(facts),
            Check::Time(c) => c.eval(facts),
            Check::Users(c) => c.eval(facts),
        }
    }
}

fn any(parts: Vec<Outcome>) -> Outcome {
    let status = if parts.iter().any(|p| p.status == Status::Pass) {
        Status::Pass
    } else if parts.iter().any(|p| p.status == Status::Error) {
        Status::Error
    } else if parts.iter().any(|p| p.status == Status::Fail) {
        Status::Fail
    } else {
        Status::NotApplicable
    };
    Outcome::new(status, parts.into_iter().flat_map(|p| p.evidence).collect())
}

impl<'de> Deserialize<'de> for Check {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or_else(|| D::Error::custom("a check needs a `kind`"))?
            .to_string();
        let family = kind.split('.').next().unwrap_or_default();
        let e =
            |err: toml::de::Error| D::Error::custom(format!("check `{kind}`: {}", err.message()));
        Ok(match family {
            "all" | "any" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Group {
                    #[allow(dead_code)]
                    kind: String,
                    checks: Vec<Check>,
                }
                let g = Group::deserialize(value).map_err(e)?;
                if g.checks.is_empty() {
                    return Err(D::Error::custom(format!("check `{kind}` has no parts")));
                }
                if family == "all" {
                    Check::All(g.checks)
                } else {
                    Check::Any(g.checks)
                }
            }
            "audit" => Check::Audit(audit::Check::deserialize(value).map_err(e)?),
            "boot" => Check::Boot(boot::Check::deserialize(value).map_err(e)?),
            "crypto" => Check::Crypto(crypto::Check::deserialize(value).map_err(e)?),
            "dnf" => Check::Dnf(dnf::Check::deserialize(value).map_err(e)?),
            "file" => Check::File(file::Check::deserialize(value).map_err(e)?),
            "firewall" => Check::Firewall(firewall::Check::deserialize(value).map_err(e)?),
            "kmod" => Check::Kmod(kmod::Check::deserialize(value).map_err(e)?),
            "logging" => Check::Logging(logging::Check::deserialize(value).map_err(e)?),
            "mount" => Check::Mount(mount::Check::deserialize(value).map_err(e)?),
            "net" => Check::Net(net::Check::deserialize(value).map_err(e)?),
            "pam" => Check::Pam(pam::Check::deserialize(value).map_err(e)?),
            "pkg" => Check::Pkg(pkg::Check::deserialize(value).map_err(e)?),
            "selinux" => Check::Selinux(selinux::Check::deserialize(value).map_err(e)?),
            "shell" => Check::Shell(shell::Check::deserialize(value).map_err(e)?),
            "sshd" => Check::Sshd(sshd::Check::deserialize(value).map_err(e)?),
            "sysctl" => Check::Sysctl(sysctl::Check::deserialize(value).map_err(e)?),
            "time" => Check::Time(time::Check::deserialize(value).map_err(e)?),
            "users" => Check::Users(users::Check::deserialize(value).map_err(e)?),
            other => {
                return Err(D::Error::custom(format!(
                    "unknown check family `{other}` in kind `{kind}`"
                )))
            }
        })
    }
}

/// Hostile configuration fragments that every parser's tests feed it (in pairs and
/// joined): no parser may panic or loop on them.
#[cfg(test)]
pub(crate) const NASTY_INPUTS: &[&str] = &[
    "",
    " ",
    "\t\t",
    "#",
    "\\",
    "\\\\\n",
    "\"",
    "'",
    "\"unterminated",
    "'unterminated",
    "${",
    "${}",
    "$(",
    "$((",
    "`",
    "[",
    "[[]]",
    "]",
    "=",
    "==",
    "a=b=c",
    "PATH=${PATH",
    "é\u{0}ü=\u{1}",
    "if",
    "fi",
    "else",
    "elif",
    "then fi else",
    "umask",
    "umask -S",
    "Defaults",
    "Defaults:",
    "@include",
    "#include",
    "Match",
    "Include",
    "a\\\n\\\n",
    "x\u{feff}y",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ${𝔘} $𝔘 \"𝔘\"",
    "9999999999999999999999999999",
    "-",
    "--",
    "+",
    "^",
    "!",
];

/// A temporary root holding `files` (path, text) and `links` (path, target), for the
/// check modules' unit tests.
#[cfg(test)]
pub(crate) fn test_tree(files: &[(&str, &str)], links: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (p, text) in files {
        let h = t.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(h.parent().unwrap()).unwrap();
        std::fs::write(h, text).unwrap();
    }
    for (p, target) in links {
        let h = t.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(h.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, h).unwrap();
    }
    t
}
