//! pam_faillock's lockout as libpam runs it: wrong passwords one after another
//! through an auth stack's walk (see [`super::walk`]), and the right password after
//! each, until the right one is refused.
//!
//! pam_faillock (Linux-PAM 1.5) acts by its last `preauth`, `authfail` or `authsucc`
//! argument (none: `preauth`). Every mode first reads the tally: when it holds at
//! least `deny` failures (`deny` 0: never; within `fail_interval`, so 0 counts none)
//! the account is locked and the line returns PAM_AUTH_ERR. Root is never locked by
//! a line without `even_deny_root`. Otherwise `preauth` returns success, `authfail`
//! records a failure and returns PAM_IGNORE, `authsucc` clears the tally and
//! returns success. So the lock is decided by whichever lines a path reaches: the
//! failure counts only where an `authfail` line runs after the password check
//! fails, and the right password is refused only where a line that reads the tally
//! runs and its control makes the stack fail.
//!
//! pam_unix returns success for the right password and PAM_AUTH_ERR for a wrong one;
//! for an empty one (an account whose password is empty) success on a line with
//! `nullok`, else PAM_AUTH_ERR. pam_permit returns success and pam_deny PAM_AUTH_ERR. Any other module may return
//! success, PAM_AUTH_ERR or PAM_IGNORE: every combination is walked (at most
//! [`MAX_UNKNOWN`] such lines) and the worst counts. Times are not modelled: a lock
//! is taken to last while the failures are being made.

use std::collections::HashSet;

use super::unmodelled::{assignments, assuming, too_many, unmodelled};
use super::{describe, walk, Step, Walk, AUTH_ERR, IGNORE, SUCCESS};
use crate::facts::pam::{Call, Handler, PamLine, Stack};

pub use super::unmodelled::MAX_UNKNOWN;

/// The settings of one pam_faillock line that decide a lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faillock {
    /// Failures that lock (0: never).
    pub deny: u64,
    pub even_deny_root: bool,
    /// Seconds within which failures count (0: none count).
    pub fail_interval: i64,
}

/// What pam_faillock does on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Preauth,
    Authfail,
    Authsucc,
}

fn mode(l: &PamLine) -> Mode {
    let mut m = Mode::Preauth;
    for a in &l.args {
        match a.as_str() {
            "preauth" => m = Mode::Preauth,
            "authfail" => m = Mode::Authfail,
            "authsucc" => m = Mode::Authsucc,
            _ => {}
        }
    }
    m
}

/// How an account fares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lockout {
    /// Locked after `failures` wrong passwords: the right password is refused then.
    Locks {
        failures: u64,
        /// The walk of a wrong password, and of the right one once locked.
        wrong: String,
        refused: String,
        /// The pam_faillock line (index in [`Stack::lines`]) whose reading of the
        /// tally refused the right password first.
        refuses: Option<usize>,
        assuming: String,
    },
    /// Never locked.
    Never {
        why: String,
        walk: String,
        assuming: String,
    },
    /// The right password is refused even with no failure: the lock cannot show.
    Refused { walk: String, assuming: String },
    /// Too many lines whose module results are not modelled.
    Unknown(String),
}

/// The password an attempt gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    /// The account's own.
    Right,
    /// Another one.
    Wrong,
    /// None, for an account whose password is empty: pam_unix lets it in on a line
    /// that carries `nullok` (any argument pam_unix reads as it: it compares an
    /// argument's start with its option names; Debian's `nullok_secure` included).
    Empty,
}

/// The modelled result of a module, or `None` when it is not modelled.
fn known(l: &PamLine, pw: Password) -> Option<u8> {
    match l.module_name() {
        "pam_unix.so" => Some(match pw {
            Password::Right => SUCCESS,
            Password::Wrong => AUTH_ERR,
            Password::Empty if l.args.iter().any(|a| a.starts_with("nullok")) => SUCCESS,
            Password::Empty => AUTH_ERR,
        }),
        "pam_permit.so" => Some(SUCCESS),
        "pam_deny.so" => Some(AUTH_ERR),
        _ => None,
    }
}

/// The places in `chain` (a chain of `st`) of the lines that call modules whose
/// results are not modelled here.
fn unknowns(st: &Stack, chain: &[&Handler]) -> Vec<usize> {
    unmodelled(st, chain, |l| {
        l.is("pam_faillock.so") || known(l, Password::Right).is_some()
    })
}

/// One walk of the auth chain for the password `pw` with `count` failures in the
/// tally; returns the walk and the tally after it.
fn attempt(
    st: &Stack,
    chain: &[&Handler],
    settings: &dyn Fn(usize) -> Faillock,
    unknown: &[(usize, u8)],
    root: bool,
    pw: Password,
    count: u64,
) -> (Walk, u64, bool) {
    let mut tally = count;
    let mut cleared = false;
    let w = walk(chain, |i| {
        if let Some((_, r)) = unknown.iter().find(|(j, _)| *j == i) {
            return *r;
        }
        let Call::Module(li) = chain[i].call else {
            return AUTH_ERR;
        };
        let l = &st.lines[li];
        if !l.is("pam_faillock.so") {
            return known(l, pw).unwrap_or(AUTH_ERR);
        }
        let f = settings(li);
        let locked =
            f.deny > 0 && tally >= f.deny && f.fail_interval > 0 && (!root || f.even_deny_root);
        if locked {
            return AUTH_ERR;
        }
        match mode(l) {
            Mode::Preauth => SUCCESS,
            Mode::Authfail => {
                tally += 1;
                IGNORE
            }
            Mode::Authsucc => {
                tally = 0;
                cleared = true;
                SUCCESS
            }
        }
    });
    (w, tally, cleared)
}

/// The lockout of an account (root or not) through `st`'s auth stack, with the
/// settings of each pam_faillock line from `settings`, by the line's index in `st`.
pub fn lockout(st: &Stack, root: bool, settings: &dyn Fn(usize) -> Faillock) -> Lockout {
    let chain = st.chain("auth");
    let idx = unknowns(st, &chain);
    if idx.len() > MAX_UNKNOWN {
        return Lockout::Unknown(too_many("auth", idx.len()));
    }
    let mut thresholds: Vec<u64> = chain
        .iter()
        .filter_map(|h| match h.call {
            Call::Module(i) if st.lines[i].is("pam_faillock.so") => Some(settings(i).deny),
            _ => None,
        })
        .filter(|d| *d > 0)
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    let mut worst: Option<Lockout> = None;
    let mut refused: Option<Lockout> = None;
    for a in assignments(&idx) {
        let with = assuming(st, &chain, &a);
        let v = one(st, &chain, settings, &a, root, &thresholds, with);
        match &v {
            Lockout::Never { .. } => return v,
            Lockout::Refused { .. } => {
                refused.get_or_insert(v);
            }
            Lockout::Locks { failures, .. } => {
                let worse = match &worst {
                    Some(Lockout::Locks { failures: w, .. }) => failures > w,
                    _ => true,
                };
                if worse {
                    worst = Some(v);
                }
            }
            Lockout::Unknown(_) => return v,
        }
    }
    worst
        .or(refused)
        .unwrap_or_else(|| Lockout::Unknown("no walk".into()))
}

fn one(
    st: &Stack,
    chain: &[&Handler],
    settings: &dyn Fn(usize) -> Faillock,
    a: &[(usize, u8)],
    root: bool,
    thresholds: &[u64],
    assuming: String,
) -> Lockout {
    let margin = chain.len() as u64 + 1;
    let top = thresholds.last().copied().unwrap_or(0);
    let mut n = 0u64;
    let mut failures = 0u64;
    let mut seen = HashSet::new();
    let mut last_wrong = String::new();
    loop {
        let (right, _, _) = attempt(st, chain, settings, a, root, Password::Right, n);
        if !right.succeeded() {
            let refused = describe(&right, chain, &st.lines);
            if failures == 0 {
                return Lockout::Refused {
                    walk: refused,
                    assuming,
                };
            }
            let refuses =
                right
                    .steps
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| match (s, &chain[i].call) {
                        (Step::Ran(AUTH_ERR, _), Call::Module(l))
                            if st.lines[*l].is("pam_faillock.so") =>
                        {
                            Some(*l)
                        }
                        _ => None,
                    });
            return Lockout::Locks {
                failures,
                wrong: last_wrong,
                refused,
                refuses,
                assuming,
            };
        }
        let (wrong, after, cleared) = attempt(st, chain, settings, a, root, Password::Wrong, n);
        last_wrong = describe(&wrong, chain, &st.lines);
        if wrong.succeeded() {
            return Lockout::Never {
                why: "a wrong password authenticates".into(),
                walk: last_wrong,
                assuming,
            };
        }
        if after <= n || !seen.insert(n) {
            let why = if cleared {
                "a wrong password clears the tally (authsucc runs after the failure)"
            } else {
                "a wrong password adds no failure to the tally (no authfail line runs after the failure)"
            };
            return Lockout::Never {
                why: why.into(),
                walk: last_wrong,
                assuming,
            };
        }
        if n > top + margin {
            let walk = describe(&right, chain, &st.lines);
            return Lockout::Never {
                why: format!(
                    "after {failures} failures the right password still authenticates (no line that reads the tally refuses it)"
                ),
                walk,
                assuming,
            };
        }
        // Every attempt that starts at least `margin` below the next threshold does
        // what this one did: skip over them.
        let step = after - n;
        let next = thresholds
            .iter()
            .copied()
            .find(|t| *t > n)
            .unwrap_or(top + margin + 1);
        let k = next.saturating_sub(margin).saturating_sub(n) / step;
        failures += 1 + k;
        n += (1 + k) * step;
    }
}

/// Whether the account stack `st` runs a pam_faillock line whenever it lets an
/// account in: `Ok(walk)` or `Err(why, walk)`.
pub fn account_runs_faillock(st: &Stack) -> Result<String, (String, String)> {
    let chain = st.chain("account");
    let idx = unknowns(st, &chain);
    if idx.len() > MAX_UNKNOWN {
        return Err((too_many("account", idx.len()), String::new()));
    }
    let faillock: Vec<usize> = chain
        .iter()
        .enumerate()
        .filter(|(_, h)| matches!(h.call, Call::Module(i) if st.lines[i].is("pam_faillock.so")))
        .map(|(i, _)| i)
        .collect();
    let mut ok = None;
    for a in assignments(&idx) {
        let w = walk(&chain, |i| {
            if let Some((_, r)) = a.iter().find(|(j, _)| *j == i) {
                return *r;
            }
            match chain[i].call {
                Call::Module(li) if st.lines[li].is("pam_faillock.so") => SUCCESS,
                Call::Module(li) => known(&st.lines[li], Password::Right).unwrap_or(AUTH_ERR),
                _ => AUTH_ERR,
            }
        });
        if !w.succeeded() {
            continue;
        }
        let text = format!(
            "{}{}",
            describe(&w, &chain, &st.lines),
            assuming(st, &chain, &a)
        );
        if !faillock.iter().any(|i| w.ran(*i)) {
            return Err((
                "the account stack lets the account in without running pam_faillock".into(),
                text,
            ));
        }
        ok.get_or_insert(text);
    }
    ok.ok_or_else(|| ("the account stack lets no account in".into(), String::new()))
}

/// Whether `st`'s auth stack refuses `pw` on every path, pam_faillock's tally being
/// empty: `Ok(walk)`, or `Err((why, walk))` for a path that lets it through. A wrong
/// password is one pam_unix rejects; an empty one (for an account whose password is
/// empty) gets in through a pam_unix line with `nullok` where a path reaches it, and
/// such a line that no path reaches decides nothing.
pub fn refuses(
    st: &Stack,
    settings: &dyn Fn(usize) -> Faillock,
    pw: Password,
) -> Result<String, (String, String)> {
    let chain = st.chain("auth");
    let idx = unknowns(st, &chain);
    if idx.len() > MAX_UNKNOWN {
        return Err((too_many("auth", idx.len()), String::new()));
    }
    let mut first = None;
    for a in assignments(&idx) {
        let (w, _, _) = attempt(st, &chain, settings, &a, false, pw, 0);
        let text = format!(
            "{}{}",
            describe(&w, &chain, &st.lines),
            assuming(st, &chain, &a)
        );
        if w.succeeded() {
            let why = match pw {
                Password::Empty => "an empty password authenticates",
                _ => "a password pam_unix rejects authenticates",
            };
            return Err((why.into(), text));
        }
        first.get_or_insert(text);
    }
    Ok(first.unwrap_or_default())
}
