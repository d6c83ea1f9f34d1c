//! `sysctl.core_limit`: every account gets a hard core-file size limit of 0 from
//! pam_limits. The limit of each account is computed by [`crate::facts::limits`], as
//! Debian's libpam 1.5 computes it when a session opens; this module judges it for
//! every account of /etc/passwd and for accounts this system does not list (a
//! directory account), and answers `rampart-agent facts limits`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::facts::accounts::{accounts, Accounts, User};
use crate::facts::limits::{
    evaluate, pam_limits, value_of, Config, CoreLimit, Line, Range, Who, CONF, DIR,
};
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// The uid and gid of the account that stands for those not listed locally.
const OTHER_ID: u32 = u32::MAX - 1;

/// root, as the account named on `line` of /etc/passwd.
fn root_user(line: usize) -> User {
    User {
        name: "root".into(),
        password: String::new(),
        uid: 0,
        gid: 0,
        home: "/root".into(),
        shell: "/bin/sh".into(),
        line,
    }
}

/// The accounts judged: /etc/passwd's (the first entry of a name), or root alone
/// when the account databases cannot be read.
fn local_accounts(facts: &Facts) -> (Accounts, Option<String>) {
    match accounts(facts).as_ref() {
        Ok(a) => ((**a).clone(), None),
        Err(e) => {
            let mut a = Accounts::default();
            a.users.push(root_user(0));
            (a, Some(format!("{e}: only root judged by name")))
        }
    }
}

/// Lines that could reach an account this root does not list (a directory user):
/// a name or group it does not have, or a uid or gid range wider than its own ids,
/// when the line could leave such an account without a hard limit of 0.
fn unlisted_risks(config: &Config, acc: &Accounts, star_by_dash: bool) -> Vec<String> {
    let mut out = Vec::new();
    for line in &config.lines {
        let (domain, range, source) = match line {
            Line::Core {
                domain,
                range,
                source,
                ..
            }
            | Line::NoLimits {
                domain,
                range,
                source,
            } => (domain.as_str(), *range, source),
        };
        let risky = match line {
            Line::NoLimits { .. } => true,
            Line::Core { kind, value, .. } => match (kind.as_str(), value_of(value)) {
                (_, None) => false,
                ("hard" | "-", Some(v)) => v != 0,
                // A soft entry that outranks `*` keeps a later `* -` from setting hard.
                ("soft", Some(_)) => star_by_dash,
                _ => false,
            },
        };
        // `*` is judged on its own; `%` limits logins only, and a `%` or `*` `-`
        // line without a range applies to no one.
        let inert = domain == "*"
            || (domain.starts_with('%')
                && (range == Range::None || matches!(line, Line::Core { .. })));
        if !risky || inert {
            continue;
        }
        let group = domain.strip_prefix('@');
        let unlisted = match (group, range) {
            // A group this system does not have, or one listing accounts it does not.
            (Some(g), Range::None) => acc
                .group(g)
                .is_none_or(|g| g.members.iter().any(|m| acc.user(m).is_none())),
            (None, Range::None) => acc.user(domain).is_none(),
            (Some(_), Range::One(id)) => acc.group_by_gid(id).is_none(),
            (None, Range::One(id)) => acc.user_by_uid(id).is_none(),
            (g, Range::Min(min)) => covers_unlisted(acc, g.is_some(), min, u32::MAX),
            (g, Range::MinMax(min, max)) => covers_unlisted(acc, g.is_some(), min, max),
        };
        if unlisted {
            out.push(format!(
                "{source}: {domain} could raise the core limit of an account this system does not list (a directory account)"
            ));
        }
    }
    out
}

/// Whether `min..=max` holds an id that no local user (or group) has.
fn covers_unlisted(acc: &Accounts, group: bool, min: u32, max: u32) -> bool {
    if min > max {
        return false;
    }
    let mut ids: Vec<u32> = if group {
        acc.groups.iter().map(|g| g.gid).collect()
    } else {
        acc.users.iter().map(|u| u.uid).collect()
    };
    ids.retain(|&i| i >= min && i <= max);
    ids.sort_unstable();
    ids.dedup();
    (ids.len() as u64) < u64::from(max - min) + 1
}

/// What the check and `rampart-agent facts limits` both rest on.
struct Judged {
    config: Arc<Config>,
    accounts: Accounts,
    note: Option<String>,
}

fn judged(facts: &Facts) -> Result<Judged, FactError> {
    let (accounts, note) = local_accounts(facts);
    Ok(Judged {
        config: pam_limits(facts)?,
        accounts,
        note,
    })
}

impl Judged {
    fn limit_of(&self, u: &User) -> CoreLimit {
        evaluate(
            &self.config,
            &Who {
                name: &u.name,
                uid: u.uid,
                gid: u.gid,
                acc: &self.accounts,
            },
        )
    }

    /// The accounts, one per name (getpwnam finds the first).
    fn users(&self) -> Vec<&User> {
        let mut seen = std::collections::HashSet::new();
        self.accounts
            .users
            .iter()
            .filter(|u| seen.insert(u.name.as_str()))
            .collect()
    }

    /// The lines that could reach an account this system does not list.
    fn unlisted(&self) -> Vec<String> {
        let star_by_dash =
            self.config.lines.iter().any(
                |l| matches!(l, Line::Core { domain, kind, .. } if domain == "*" && kind == "-"),
            );
        unlisted_risks(&self.config, &self.accounts, star_by_dash)
    }

    fn outcome(&self) -> Outcome {
        // Accounts grouped by what leaves them without a hard limit of 0.
        let mut bad: Vec<(String, Vec<String>)> = Vec::new();
        let mut zero: Vec<&str> = Vec::new();
        let mut judge = |name: &str, l: CoreLimit| {
            let why = match l.hard {
                Some(0) => {
                    return true;
                }
                Some(_) => l.how,
                None => format!("{}: the hard core limit stays unlimited", l.how),
            };
            match bad.iter_mut().find(|(w, _)| *w == why) {
                Some((_, names)) => names.push(name.to_string()),
                None => bad.push((why, vec![name.to_string()])),
            }
            false
        };
        for u in self.users() {
            if judge(&u.name, self.limit_of(u)) {
                zero.push(&u.name);
            }
        }
        // An account listed nowhere (a directory user): no name or group of any
        // line, a uid and primary group above every local one.
        let other = Who {
            name: "",
            uid: OTHER_ID,
            gid: OTHER_ID,
            acc: &self.accounts,
        };
        let mut o = evaluate(&self.config, &other);
        if o.hard.is_none() && self.config.refused.is_none() {
            o.how = format!("no `* hard core 0` entry in {CONF} or {DIR}/*.conf");
        }
        let other_how = o.how.clone();
        let other_ok = judge("accounts not listed in /etc/passwd", o);
        let mut failures: Vec<String> = bad
            .into_iter()
            .map(|(why, names)| format!("{why} for {}", names.join(", ")))
            .collect();
        failures.extend(self.unlisted());
        let mut found = Vec::new();
        if !zero.is_empty() {
            found.push(format!("hard core 0 for {}", zero.join(", ")));
        }
        if other_ok {
            found.push(format!(
                "{other_how}: hard core 0 for accounts not listed in /etc/passwd"
            ));
        }
        found.extend(self.note.clone());
        Outcome::from_findings(failures, found)
    }
}

/// `sysctl.core_limit`: every account gets a hard core limit of 0 from pam_limits.
pub fn core_limit(facts: &Facts) -> Result<Outcome, FactError> {
    Ok(judged(facts)?.outcome())
}

/// What `rampart-agent facts limits` prints.
#[derive(Debug, Serialize)]
pub struct LimitsFacts {
    /// The files pam_limits reads, in order.
    pub files: Vec<String>,
    /// Per account asked for (default: every account): its core limit in bytes
    /// (`18446744073709551615`: unlimited; `null`: left at the session's start).
    pub users: BTreeMap<String, CoreLimit>,
    /// Lines that could raise the limit of an account not listed in /etc/passwd
    /// (a name, group or id range this system does not have): failures too.
    pub unlisted: Vec<String>,
    /// The `sysctl.core_limit` verdict and its evidence.
    pub verdict: String,
    pub evidence: Vec<String>,
}

/// The core-limit facts of a root for `names` (empty: every account).
pub fn facts(facts: &Facts, names: &[String]) -> Result<LimitsFacts, FactError> {
    let j = judged(facts)?;
    let mut users = BTreeMap::new();
    for u in j.users() {
        if names.is_empty() || names.contains(&u.name) {
            users.insert(u.name.clone(), j.limit_of(u));
        }
    }
    let o = j.outcome();
    Ok(LimitsFacts {
        files: j.config.files.clone(),
        users,
        unlisted: j.unlisted(),
        verdict: o.status.as_str().to_string(),
        evidence: o.evidence,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::NASTY_INPUTS as NASTY;
    use crate::facts::limits::parse;

    /// Hostile lines reaching accounts a system does not list: the judgement of
    /// unlisted accounts never panics, whatever the ranges (`5:1`, `:0`, `0:`).
    #[test]
    fn unlisted_risks_survive_garbage() {
        let mut acc = Accounts::default();
        acc.users.push(root_user(1));
        for x in NASTY
            .iter()
            .chain(&["5:1", ":0", "0:", "@4294967295:", "@:0", "1:4294967295"])
        {
            for y in NASTY {
                let mut config = Config::default();
                let text = format!("{x} hard core {y}\n{x} -\n{x} soft core 1\n@{x} - core {y}\n");
                parse(&text, "/l", &mut config.lines);
                for star in [false, true] {
                    let _ = unlisted_risks(&config, &acc, star);
                }
            }
        }
    }
}
