//! `pam.*` checks: PAM service stacks in /etc/pam.d (with `@include`, `include` and
//! `substack` expanded, see [`stack`]), module arguments, and the settings that
//! pam_faillock, pam_pwquality and pam_pwhistory take from their configuration files
//! (see [`options`]); pam_faillock's lockout on the paths libpam takes through the
//! stack (see [`lockout`]). Also the `su` restriction with pam_wheel, and the authselect
//! profile that generates the stacks on RHEL and Amazon Linux (see [`authselect`]).

pub mod authselect;
pub mod hash;
pub mod history;
pub mod inspect;
pub mod lockout;
pub mod options;
pub mod quality;

use serde::Deserialize;

use self::options::{describe, resolve, Module, PwhistoryConf};
use crate::facts::accounts::accounts;
use crate::facts::pam::path::lockout::Password;
use crate::facts::pam::{stack, PamLine, Stack};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The `pam.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// The expanded stack of `service` calls `module` for `type` on at least one line
    /// that carries every argument in `args` (`name` or `name=…`).
    #[serde(rename = "pam.module")]
    Module {
        service: String,
        module: String,
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        args: Vec<String>,
    },
    /// No line calling `module` in the expanded stacks of `services` carries any of
    /// `args` (`name` or `name=…`).
    #[serde(rename = "pam.arg_absent")]
    ArgAbsent {
        services: Vec<String>,
        module: String,
        args: Vec<String>,
    },
    /// Every line calling `module` for `type` in `service` carries one of `any_of`;
    /// there must be at least one such line.
    #[serde(rename = "pam.arg_present")]
    ArgPresent {
        service: String,
        module: String,
        #[serde(rename = "type")]
        kind: String,
        any_of: Vec<String>,
    },
    /// On every line calling `module` (pam_faillock.so, pam_pwquality.so or
    /// pam_pwhistory.so) for `type` in `service`, the module's effective `option`
    /// (configuration file, then arguments, else the module default) is within
    /// `min`..=`max` or one of `also_allow`, and not 0 with `nonzero`; with
    /// `present`, the option must be set explicitly (for flags: turned on). There
    /// must be at least one such line. For pam_pwquality the stack must also refuse,
    /// on every path libpam takes, what pam_pwquality refuses (see [`quality`]).
    #[serde(rename = "pam.option")]
    Option {
        service: String,
        module: String,
        #[serde(rename = "type")]
        kind: String,
        option: String,
        min: Option<i64>,
        max: Option<i64>,
        #[serde(default)]
        also_allow: Vec<i64>,
        #[serde(default)]
        present: bool,
        /// The value must not be 0 (the module's "off"; any other number, negative
        /// too, turns the check on).
        #[serde(default)]
        nonzero: bool,
        /// Which package release makes pam_pwhistory read /etc/security/pwhistory.conf
        /// (libpam-modules 1.5.3 when omitted).
        #[serde(default)]
        pwhistory_conf: PwhistoryConf,
    },
    /// Every pam_unix.so password line of `service` hashes new passwords with one of
    /// `allowed` (pam_unix's names: `yescrypt`, `sha512`, …): the last algorithm
    /// argument on the line, else login.defs' ENCRYPT_METHOD, else DES (see
    /// [`hash`]). There must be at least one such line.
    #[serde(rename = "pam.unix_hash")]
    UnixHash {
        service: String,
        allowed: Vec<String>,
    },
    /// libpam's walk of `service`'s auth stack, with pam_faillock's tally, locks an
    /// account (with `root`, root's) after at most `max_failures` wrong passwords
    /// (any number when omitted) and then refuses its right password; only the lines
    /// a path reaches count (see [`lockout`]).
    #[serde(rename = "pam.faillock_locks")]
    FaillockLocks {
        service: String,
        #[serde(default)]
        max_failures: Option<u64>,
        #[serde(default)]
        root: bool,
    },
    /// `service`'s account stack runs pam_faillock on every path that lets an
    /// account in.
    #[serde(rename = "pam.faillock_account")]
    FaillockAccount { service: String },
    /// libpam's walk of `service`'s auth stack refuses, on every path, a password
    /// pam_unix rejects (see [`lockout`]).
    #[serde(rename = "pam.refuses_rejected_password")]
    RefusesRejectedPassword { service: String },
    /// libpam's walk of `service`'s auth stack refuses, on every path, an empty
    /// password: a pam_unix line with `nullok` lets one in only where a path reaches
    /// it (see [`lockout`]).
    #[serde(rename = "pam.refuses_empty_password")]
    RefusesEmptyPassword { service: String },
    /// libpam's walk of a password change through `service` refuses a password
    /// pam_pwhistory's history holds, in a change made by root with `root`: no path
    /// lets pam_unix write it (see [`history`]).
    #[serde(rename = "pam.pwhistory_refuses_reuse")]
    PwhistoryRefusesReuse {
        service: String,
        #[serde(default)]
        root: bool,
        /// As for `pam.option`.
        #[serde(default)]
        pwhistory_conf: PwhistoryConf,
    },
    /// /etc/pam.d/su requires pam_wheel with `use_uid` (and without `deny`) for auth,
    /// and the group it names (`group=`, else wheel, else the GID 0 group) has no
    /// members and is nobody's primary group.
    #[serde(rename = "pam.su_wheel")]
    SuWheel,
    /// authselect has a custom profile selected (`custom/NAME` in
    /// /etc/authselect/authselect.conf), and each of its templates `files`
    /// (e.g. system-auth, password-auth) calls every module of `modules`.
    #[serde(rename = "pam.authselect_profile")]
    AuthselectProfile {
        files: Vec<String>,
        modules: Vec<String>,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        Ok(match self {
            Check::Module {
                service,
                module,
                kind,
                args,
            } => {
                let st = stack(facts, service)?;
                let lines = st.module_lines(module, Some(kind));
                let hit = lines
                    .iter()
                    .find(|l| args.iter().all(|a| l.arg(a).is_some()));
                let want = if args.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", args.join(" "))
                };
                let mut out = match hit {
                    Some(l) => Outcome::pass(describe_line(l)),
                    None => {
                        let mut ev = vec![format!(
                            "no {kind} line calls {module}{want} in {}",
                            where_(&st)
                        )];
                        ev.extend(lines.iter().map(|l| describe_line(l)));
                        Outcome::new(Status::Fail, ev)
                    }
                };
                out.evidence.extend(st.notes.iter().cloned());
                out
            }
            Check::ArgAbsent {
                services,
                module,
                args,
            } => {
                let mut failures = Vec::new();
                let mut found = Vec::new();
                for s in services {
                    let st = stack(facts, s)?;
                    let lines = st.module_lines(module, None);
                    if lines.is_empty() {
                        found.push(format!("no line calls {module} in {}", where_(&st)));
                    }
                    for l in lines {
                        let bad: Vec<&str> = args.iter().filter_map(|a| l.arg(a)).collect();
                        if bad.is_empty() {
                            found.push(describe_line(l));
                        } else {
                            failures.push(format!("{}: has {}", describe_line(l), bad.join(" ")));
                        }
                    }
                }
                Outcome::from_findings(failures, found)
            }
            Check::ArgPresent {
                service,
                module,
                kind,
                any_of,
            } => {
                let st = stack(facts, service)?;
                let lines = st.module_lines(module, Some(kind));
                if lines.is_empty() {
                    return Ok(none_found(
                        &st,
                        format!("no {kind} line calls {module} in {}", where_(&st)),
                    ));
                }
                let mut failures = Vec::new();
                let mut found = Vec::new();
                for l in lines {
                    if any_of.iter().any(|a| l.arg(a).is_some()) {
                        found.push(describe_line(l));
                    } else {
                        failures.push(format!(
                            "{}: lacks {}",
                            describe_line(l),
                            any_of.join(" or ")
                        ));
                    }
                }
                Outcome::from_findings(failures, found)
            }
            Check::Option {
                service,
                module,
                kind,
                option,
                min,
                max,
                also_allow,
                present,
                nonzero,
                pwhistory_conf,
            } => {
                let Some(m) = Module::from_name(module) else {
                    return Ok(Outcome::error(format!(
                        "pam.option does not know the settings of {module}"
                    )));
                };
                let st = stack(facts, service)?;
                let lines = st.module_lines(module, Some(kind));
                if lines.is_empty() {
                    return Ok(none_found(
                        &st,
                        format!(
                            "no {kind} line calls {module} in {}, so {option} is not enforced",
                            where_(&st)
                        ),
                    ));
                }
                let mut failures = Vec::new();
                let mut found = Vec::new();
                let mut notes = Vec::new();
                for l in lines {
                    let (r, n) = resolve(facts, m, l, option, pwhistory_conf)?;
                    for x in n {
                        if !notes.contains(&x) {
                            notes.push(x);
                        }
                    }
                    let text = format!("{}: {}", describe_line(l), describe(m, option, &r));
                    let mut why = Vec::new();
                    if *present && !r.explicit {
                        why.push(format!("{option} must be set"));
                    }
                    if *nonzero && r.value == Some(0) {
                        why.push(format!("0 turns {option} off"));
                    }
                    if min.is_some() || max.is_some() {
                        match r.value {
                            Some(v) if also_allow.contains(&v) => {}
                            Some(v) => {
                                if min.is_some_and(|lo| v < lo) {
                                    why.push(format!("{v} is below {}", min.unwrap_or_default()));
                                }
                                if max.is_some_and(|hi| v > hi) {
                                    why.push(format!("{v} is above {}", max.unwrap_or_default()));
                                }
                            }
                            None => why.push(format!("{option} has no value")),
                        }
                    }
                    if why.is_empty() {
                        found.push(text);
                    } else {
                        failures.push(format!("{text}: {}", why.join("; ")));
                    }
                }
                if m == Module::Pwquality {
                    let root = option == "enforce_for_root";
                    if let Some(why) = quality::unenforced(facts, &st, root, &mut notes)? {
                        failures.push(why);
                    }
                }
                let mut out = Outcome::from_findings(failures, found);
                out.evidence.extend(notes);
                out
            }
            Check::UnixHash { service, allowed } => {
                let st = stack(facts, service)?;
                let lines = st.module_lines("pam_unix.so", Some("password"));
                if lines.is_empty() {
                    return Ok(none_found(
                        &st,
                        format!("no password line calls pam_unix.so in {}", where_(&st)),
                    ));
                }
                let mut failures = Vec::new();
                let mut found = Vec::new();
                for l in lines {
                    let (alg, why) = hash::algorithm(facts, l)?;
                    let text = format!("{}: hashes with {alg} ({why})", describe_line(l));
                    if allowed.contains(&alg) {
                        found.push(text);
                    } else {
                        failures.push(format!("{text}, not {}", allowed.join(" or ")));
                    }
                }
                Outcome::from_findings(failures, found)
            }
            Check::FaillockLocks {
                service,
                max_failures,
                root,
            } => lockout::locks(facts, service, *max_failures, *root)?,
            Check::FaillockAccount { service } => lockout::account(facts, service)?,
            Check::RefusesRejectedPassword { service } => {
                lockout::refuses(facts, service, Password::Wrong)?
            }
            Check::RefusesEmptyPassword { service } => {
                lockout::refuses(facts, service, Password::Empty)?
            }
            Check::PwhistoryRefusesReuse {
                service,
                root,
                pwhistory_conf,
            } => history::reuse(facts, service, *root, pwhistory_conf)?,
            Check::SuWheel => su_wheel(facts)?,
            Check::AuthselectProfile { files, modules } => {
                authselect::profile(facts, files, modules)?
            }
        })
    }
}

fn where_(st: &Stack) -> String {
    if st.exists {
        format!("{} (with its includes)", st.path())
    } else {
        format!("{} (the file does not exist)", st.path())
    }
}

/// A failure saying no line calls the module (`what`), with the stack's notes.
fn none_found(st: &Stack, what: String) -> Outcome {
    let mut ev = vec![what];
    ev.extend(st.notes.iter().cloned());
    Outcome::new(Status::Fail, ev)
}

fn describe_line(l: &PamLine) -> String {
    match &l.via {
        Some(v) => format!("{} ({v})", l.describe()),
        None => l.describe(),
    }
}

fn su_wheel(facts: &Facts) -> Result<Outcome, FactError> {
    let st = stack(facts, "su")?;
    let lines = st.module_lines("pam_wheel.so", Some("auth"));
    let usable: Vec<&&PamLine> = lines
        .iter()
        .filter(|l| {
            let c = l.control.to_ascii_lowercase();
            (c == "required" || c == "requisite")
                && l.arg("use_uid").is_some()
                && l.arg("deny").is_none()
        })
        .collect();
    let Some(line) = usable.first() else {
        let mut ev = vec![format!(
            "no auth line in {} requires pam_wheel.so with use_uid (and without deny)",
            where_(&st)
        )];
        ev.extend(lines.iter().map(|l| describe_line(l)));
        ev.extend(st.notes.iter().cloned());
        return Ok(Outcome::new(Status::Fail, ev));
    };
    let acc = accounts(facts)?;
    let mut ev = vec![describe_line(line)];
    let group = match line
        .arg("group")
        .and_then(|a| a.split_once('='))
        .map(|(_, g)| g.to_string())
    {
        Some(g) => acc.group(&g),
        None => {
            ev.push(
                "no group= argument: pam_wheel uses the group wheel, else the GID 0 group".into(),
            );
            acc.group("wheel").or_else(|| acc.group_by_gid(0))
        }
    };
    let Some(group) = group else {
        let name = line.arg("group").unwrap_or("wheel");
        ev.insert(
            0,
            format!(
                "the group of {name} does not exist in /etc/group, so pam_wheel denies everyone"
            ),
        );
        // A missing group makes pam_wheel refuse su for all users: the intent is met.
        return Ok(Outcome::new(Status::Pass, ev));
    };
    // root passes pam_rootok before pam_wheel is reached, so root itself does not count.
    let is_root = |name: &str| acc.user(name).is_some_and(|u| u.uid == 0);
    let primary: Vec<&str> = acc
        .users
        .iter()
        .filter(|u| u.gid == group.gid && u.uid != 0)
        .map(|u| u.name.as_str())
        .collect();
    let members: Vec<&str> = group
        .members
        .iter()
        .map(String::as_str)
        .filter(|m| !is_root(m))
        .collect();
    let mut failures = Vec::new();
    if !members.is_empty() {
        failures.push(format!(
            "/etc/group:{}: group {} has members {}",
            group.line,
            group.name,
            members.join(",")
        ));
    }
    if !primary.is_empty() {
        failures.push(format!(
            "group {} is the primary group of {}",
            group.name,
            primary.join(", ")
        ));
    }
    if failures.is_empty() {
        ev.push(format!(
            "/etc/group:{}: group {} has no members",
            group.line, group.name
        ));
        Ok(Outcome::new(Status::Pass, ev))
    } else {
        failures.extend(ev);
        Ok(Outcome::new(Status::Fail, failures))
    }
}
