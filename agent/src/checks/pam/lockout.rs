//! `pam.faillock_locks` and `pam.faillock_account`: pam_faillock judged on the paths
//! libpam takes through a stack ([`crate::facts::pam::path::lockout`]), each
//! pam_faillock line with its settings resolved as the module reads them
//! ([`super::options`]). A line that no path reaches decides nothing, whatever it
//! says.

use super::options::{describe, resolve, Module, PwhistoryConf};
use crate::facts::pam::path::lockout::{
    account_runs_faillock, lockout, refuses as walk_refuses, Faillock, Lockout, Password,
};
use crate::facts::pam::{stack, PamLine, Stack};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The settings of every line of `st` that calls `so` (`module`'s shared object), by
/// line index, built by `read` from the line's options resolved as the module reads
/// them (0 when unset); other lines get the default. The notes of every resolution
/// follow, each once.
pub(super) fn per_line<T: Default>(
    facts: &Facts,
    st: &Stack,
    (module, so): (Module, &str),
    conf: &PwhistoryConf,
    read: impl Fn(&mut dyn FnMut(&str) -> Result<i64, FactError>) -> Result<T, FactError>,
) -> Result<(Vec<T>, Vec<String>), FactError> {
    let mut out = Vec::with_capacity(st.lines.len());
    let mut notes: Vec<String> = Vec::new();
    for l in &st.lines {
        if !l.is(so) {
            out.push(T::default());
            continue;
        }
        let mut value = |o: &str| option(facts, module, l, o, conf, &mut notes);
        out.push(read(&mut value)?);
    }
    Ok((out, notes))
}

fn option(
    facts: &Facts,
    module: Module,
    l: &PamLine,
    o: &str,
    conf: &PwhistoryConf,
    notes: &mut Vec<String>,
) -> Result<i64, FactError> {
    let (r, n) = resolve(facts, module, l, o, conf)?;
    for x in n {
        if !notes.contains(&x) {
            notes.push(x);
        }
    }
    Ok(r.value.unwrap_or(0))
}

/// The settings of every pam_faillock line of `st`, by line index (the default for
/// other lines: they lock nothing).
fn settings(facts: &Facts, st: &Stack) -> Result<(Vec<Faillock>, Vec<String>), FactError> {
    let faillock = (Module::Faillock, "pam_faillock.so");
    per_line(facts, st, faillock, &PwhistoryConf::default(), |value| {
        Ok(Faillock {
            deny: u64::try_from(value("deny")?).unwrap_or(0),
            even_deny_root: value("even_deny_root")? != 0,
            fail_interval: value("fail_interval")?,
        })
    })
}

pub(super) fn where_(st: &Stack) -> String {
    if st.exists {
        st.path()
    } else {
        format!("{} (the file does not exist)", st.path())
    }
}

/// An account (root with `root`) is locked by `service`'s auth stack after at most
/// `max_failures` wrong passwords (any number when `None`).
pub fn locks(
    facts: &Facts,
    service: &str,
    max_failures: Option<u64>,
    root: bool,
) -> Result<Outcome, FactError> {
    let st = stack(facts, service)?;
    let (set, notes) = settings(facts, &st)?;
    let of = |i: usize| set.get(i).copied().unwrap_or_default();
    let who = if root { "root" } else { "an account" };
    let at = where_(&st);
    if st.module_lines("pam_faillock.so", Some("auth")).is_empty() {
        let mut ev = vec![format!(
            "no auth line calls pam_faillock.so in {at}, so libpam never locks {who}"
        )];
        ev.extend(st.notes.iter().cloned());
        return Ok(Outcome::new(Status::Fail, ev));
    }
    let mut out = match lockout(&st, root, &of) {
        Lockout::Locks {
            failures,
            wrong,
            refused,
            refuses,
            assuming,
        } => {
            let mut ev = vec![
                format!("{at}: libpam locks {who} after {failures} failed password(s){assuming}"),
                format!("a wrong password: {wrong}"),
                format!("the right password once locked: {refused}"),
            ];
            if let Some(l) = refuses.and_then(|i| st.lines.get(i)) {
                let (r, _) = resolve(facts, Module::Faillock, l, "deny", &PwhistoryConf::default())?;
                ev.push(format!(
                    "{} refuses first: {}",
                    l.source,
                    describe(Module::Faillock, "deny", &r)
                ));
            }
            match max_failures {
                Some(m) if failures > m => {
                    ev[0] = format!("{}, more than {m}", ev[0]);
                    Outcome::new(Status::Fail, ev)
                }
                _ => Outcome::new(Status::Pass, ev),
            }
        }
        Lockout::Never {
            why,
            walk,
            assuming,
        } => Outcome::new(
            Status::Fail,
            vec![
                format!("{at}: libpam never locks {who}: {why}{assuming}"),
                walk,
            ],
        ),
        Lockout::Refused { walk, assuming } => Outcome::new(
            Status::Fail,
            vec![
                format!(
                    "{at}: the right password is refused even with no failure{assuming}, so no lockout can be seen"
                ),
                walk,
            ],
        ),
        Lockout::Unknown(why) => Outcome::new(Status::Fail, vec![format!("{at}: {why}")]),
    };
    out.evidence.extend(notes);
    out.evidence.extend(st.notes.iter().cloned());
    Ok(out)
}

/// `service`'s account stack runs pam_faillock whenever it lets an account in.
pub fn account(facts: &Facts, service: &str) -> Result<Outcome, FactError> {
    let st = stack(facts, service)?;
    let at = where_(&st);
    if st
        .module_lines("pam_faillock.so", Some("account"))
        .is_empty()
    {
        let mut ev = vec![format!("no account line calls pam_faillock.so in {at}")];
        ev.extend(st.notes.iter().cloned());
        return Ok(Outcome::new(Status::Fail, ev));
    }
    Ok(judged(
        account_runs_faillock(&st),
        format!("{at}: pam_faillock runs whenever the account stack lets an account in"),
        |why| format!("{at}: {why}"),
        &st,
    ))
}

/// `service`'s auth stack refuses `pw` on every path libpam takes: a wrong password
/// (one pam_unix rejects) or an empty one (pam_unix's `nullok` counts where a path
/// reaches it).
pub fn refuses(facts: &Facts, service: &str, pw: Password) -> Result<Outcome, FactError> {
    let st = stack(facts, service)?;
    let (set, _) = settings(facts, &st)?;
    let of = |i: usize| set.get(i).copied().unwrap_or_default();
    let at = where_(&st);
    let (what, also) = match pw {
        Password::Empty => ("an empty password", ""),
        Password::Wrong => ("a password pam_unix rejects", ", an empty one too"),
        Password::Right => ("the account's own password", ""),
    };
    Ok(judged(
        walk_refuses(&st, &of, pw),
        format!("{at}: every path refuses {what}"),
        |why| format!("{at}: {why}{also}"),
        &st,
    ))
}

/// A walk's verdict as an outcome: `Ok(walk)` passes with `met` and the walk,
/// `Err((why, walk))` fails with `failed(why)` and the walk; the stack's notes follow.
pub(super) fn judged(
    verdict: Result<String, (String, String)>,
    met: String,
    failed: impl FnOnce(&str) -> String,
    st: &Stack,
) -> Outcome {
    let mut out = match verdict {
        Ok(walk) => Outcome::new(Status::Pass, vec![met, walk]),
        Err((why, walk)) => {
            let mut ev = vec![failed(&why)];
            if !walk.is_empty() {
                ev.push(walk);
            }
            Outcome::new(Status::Fail, ev)
        }
    };
    out.evidence.extend(st.notes.iter().cloned());
    out
}
