//! How libpam walks a stack (Linux-PAM 1.5, `_pam_dispatch_aux`), so that a rule
//! can tell which lines run on a given path rather than judge every line whatever
//! the path.
//!
//! - A control is a table from a module's result to an action: `required`,
//!   `requisite`, `optional` and `sufficient` (any case) are fixed tables; the
//!   bracket form `[result=action ...]` sets the named results (`default` fills the
//!   rest), results it does not name being `bad`; a word libpam cannot read makes
//!   every result `bad`.
//! - The walk keeps an impression (undecided, positive, negative) and a status:
//!   `ok` and `done` make an undecided or still successful walk positive with the
//!   module's result; `bad` and `die` make it negative with the first failing
//!   result (PAM_PERM_DENIED for an ignored one); `ignore` changes nothing; `reset`
//!   forgets what the current (sub)stack decided; `done` (when positive) and `die`
//!   end the (sub)stack; a number `N` skips the next N lines of the same level, a
//!   substack counting as one, and a jump past the end fails the walk.
//! - A `substack` is walked as its own level: `done` and `die` inside it end only
//!   the substack, and the walk goes on after it with what it decided. `include`
//!   and Debian's `@include` put the lines in place, so a jump counts them one by one.
//! - A module that is not installed returns PAM_MODULE_UNKNOWN, a line libpam cannot
//!   use PAM_PERM_DENIED; what comes of it is the control's business.
//! - The walk succeeds only with a positive impression and PAM_SUCCESS.
//!
//! [`lockout`] runs pam_faillock's tally over such walks, [`history`] a password
//! change through pam_pwhistory.

pub mod history;
pub mod lockout;
mod unmodelled;

use crate::facts::pam::{Call, Handler};

/// PAM_SUCCESS.
pub const SUCCESS: u8 = 0;
/// PAM_PERM_DENIED: what libpam returns for a line it cannot use.
pub const PERM_DENIED: u8 = 6;
/// PAM_AUTH_ERR.
pub const AUTH_ERR: u8 = 7;
/// PAM_MAXTRIES.
pub const MAXTRIES: u8 = 11;
/// PAM_AUTHTOK_ERR.
pub const AUTHTOK_ERR: u8 = 20;
/// PAM_IGNORE.
pub const IGNORE: u8 = 25;
/// PAM_MODULE_UNKNOWN: what libpam takes from a module it could not load.
pub const MODULE_UNKNOWN: u8 = 28;

/// libpam's names of module results, by value (the names a bracketed control takes).
const RESULTS: [&str; 30] = [
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
];

/// The name of a module result (`success`, `auth_err`, …).
pub fn result_name(r: u8) -> &'static str {
    RESULTS.get(usize::from(r)).copied().unwrap_or("invalid")
}

/// What the walk does with one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Ignore,
    Ok,
    Done,
    Bad,
    Die,
    Reset,
    /// Skip this many following lines of the same level.
    Jump(u32),
}

impl Action {
    fn name(self) -> String {
        match self {
            Action::Ignore => "ignore".into(),
            Action::Ok => "ok".into(),
            Action::Done => "done".into(),
            Action::Bad => "bad".into(),
            Action::Die => "die".into(),
            Action::Reset => "reset".into(),
            Action::Jump(n) => format!("jump {n}"),
        }
    }
}

/// A control: the action for each result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control([Action; 30]);

impl Control {
    /// The control as libpam reads it (see the module documentation).
    pub fn parse(text: &str) -> Control {
        let fixed = |success: Action, rest: Action, ignore: Option<Action>| {
            let mut a = [rest; 30];
            a[usize::from(SUCCESS)] = success;
            a[12] = success; // new_authtok_reqd
            if let Some(i) = ignore {
                a[usize::from(IGNORE)] = i;
            }
            Control(a)
        };
        match text.to_ascii_lowercase().as_str() {
            "required" => return fixed(Action::Ok, Action::Bad, Some(Action::Ignore)),
            "requisite" => return fixed(Action::Ok, Action::Die, Some(Action::Ignore)),
            "optional" => return fixed(Action::Ok, Action::Ignore, None),
            "sufficient" => return fixed(Action::Done, Action::Ignore, None),
            _ => {}
        }
        let all_bad = Control([Action::Bad; 30]);
        // libpam reads a word without brackets the same way.
        let inner = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        let mut set: [Option<Action>; 30] = [None; 30];
        if inner.trim().is_empty() {
            return all_bad;
        }
        for word in inner.split_whitespace() {
            let Some((name, act)) = word.split_once('=') else {
                return all_bad;
            };
            let act = match act {
                "ignore" => Action::Ignore,
                "ok" => Action::Ok,
                "done" => Action::Done,
                "bad" => Action::Bad,
                "die" => Action::Die,
                "reset" => Action::Reset,
                n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    match n.parse::<u32>() {
                        Ok(0) => Action::Ignore,
                        Ok(j) => Action::Jump(j),
                        Err(_) => return all_bad,
                    }
                }
                _ => return all_bad,
            };
            if name == "default" {
                for s in set.iter_mut().filter(|s| s.is_none()) {
                    *s = Some(act);
                }
            } else if let Some(i) = RESULTS.iter().position(|r| *r == name) {
                set[i] = Some(act);
            } else {
                return all_bad;
            }
        }
        Control(set.map(|s| s.unwrap_or(Action::Bad)))
    }

    /// The action for result `r` (an unknown result is `bad`).
    pub fn action(&self, r: u8) -> Action {
        self.0.get(usize::from(r)).copied().unwrap_or(Action::Bad)
    }
}

/// Why a line of the chain did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Jumped over by the line at this index.
    JumpedBy(usize),
    /// After the line at this index ended its (sub)stack (`done` or `die`).
    EndedBy(usize),
    /// A substack marker (nothing runs for it).
    Marker,
}

/// One step of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The line ran, returned this result and the control took this action.
    Ran(u8, Action),
    Skipped(Skipped),
}

/// The outcome of one walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Per line of the chain, what happened to it.
    pub steps: Vec<Step>,
    /// The result of the stack (PAM_SUCCESS only when it succeeds).
    pub result: u8,
    /// The line whose action decided the result (the last that changed it or
    /// ended the walk), if any.
    pub decided_by: Option<usize>,
    /// A jump went past the end of its (sub)stack.
    pub bad_jump: Option<usize>,
}

impl Walk {
    /// Whether the line at `i` ran.
    pub fn ran(&self, i: usize) -> bool {
        matches!(self.steps.get(i), Some(Step::Ran(..)))
    }

    pub fn succeeded(&self) -> bool {
        self.result == SUCCESS
    }
}

/// Walks `chain` as libpam does; `result(i)` gives what the line at index `i`
/// returns when reached (called in walk order, at most once per line). Substack
/// markers are never asked.
pub fn walk(chain: &[&Handler], mut result: impl FnMut(usize) -> u8) -> Walk {
    #[derive(Clone, Copy, PartialEq)]
    enum Imp {
        Undef,
        Pos,
        Neg,
    }
    let n = chain.len();
    let mut steps: Vec<Option<Step>> = vec![None; n];
    let mut imp = Imp::Undef;
    let mut status = PERM_DENIED;
    // Per level: the impression and status when it was entered.
    let mut saved: Vec<(Imp, u8)> = vec![(Imp::Undef, PERM_DENIED)];
    let mut decided_by = None;
    let mut bad_jump = None;
    let mut prev_level = 0;
    let mut i = 0;
    while i < n {
        let h = chain[i];
        let level = h.level;
        if prev_level < level {
            if saved.len() <= level {
                saved.resize(level + 1, (Imp::Undef, PERM_DENIED));
            }
            saved[level] = (imp, status);
        }
        prev_level = level;
        let r = match &h.call {
            Call::Substack(_) => {
                steps[i] = Some(Step::Skipped(Skipped::Marker));
                i += 1;
                continue;
            }
            Call::Broken(_) => PERM_DENIED,
            Call::Missing(_) => MODULE_UNKNOWN,
            Call::Module(_) => result(i),
        };
        let action = Control::parse(&h.control).action(r);
        steps[i] = Some(Step::Ran(r, action));
        let mut end_level = false;
        match action {
            Action::Reset => {
                let (a, b) = saved
                    .get(level)
                    .copied()
                    .unwrap_or((Imp::Undef, PERM_DENIED));
                imp = a;
                status = b;
                decided_by = Some(i);
            }
            Action::Ok | Action::Done => {
                if imp == Imp::Undef || (imp == Imp::Pos && status == SUCCESS) {
                    imp = Imp::Pos;
                    status = r;
                    decided_by = Some(i);
                }
                if imp == Imp::Pos && action == Action::Done {
                    end_level = true;
                }
            }
            Action::Bad | Action::Die => {
                if imp != Imp::Neg {
                    imp = Imp::Neg;
                    status = if r == IGNORE { PERM_DENIED } else { r };
                    decided_by = Some(i);
                }
                if action == Action::Die {
                    end_level = true;
                }
            }
            Action::Ignore => {}
            Action::Jump(mut left) => {
                let mut j = i;
                while j + 1 < n && chain[j + 1].level >= level && left > 0 {
                    loop {
                        j += 1;
                        steps[j] = Some(Step::Skipped(Skipped::JumpedBy(i)));
                        if !(j + 1 < n && chain[j + 1].level > level) {
                            break;
                        }
                    }
                    left -= 1;
                }
                if left > 0 {
                    imp = Imp::Neg;
                    status = PERM_DENIED;
                    decided_by = Some(i);
                    bad_jump = Some(i);
                }
                i = j + 1;
                continue;
            }
        }
        if end_level {
            decided_by = Some(i);
            while i + 1 < n && chain[i + 1].level >= level {
                i += 1;
                steps[i] = Some(Step::Skipped(Skipped::EndedBy(decided_by.unwrap_or(i))));
            }
        }
        i += 1;
    }
    if status == SUCCESS && imp != Imp::Pos {
        status = PERM_DENIED;
    }
    Walk {
        steps: steps
            .into_iter()
            .map(|s| s.unwrap_or(Step::Skipped(Skipped::Marker)))
            .collect(),
        result: status,
        decided_by,
        bad_jump,
    }
}

/// `path:line module args` of a chain entry, for evidence.
pub fn describe_handler(h: &Handler, lines: &[crate::facts::pam::PamLine]) -> String {
    match &h.call {
        Call::Module(i) => match lines.get(*i) {
            Some(l) => {
                let mut s = format!("{} {} {}", l.source, l.control, l.module_name());
                for a in &l.args {
                    s.push(' ');
                    s.push_str(a);
                }
                s
            }
            None => h.source.clone(),
        },
        Call::Missing(m) => format!("{} {} {m} (not installed)", h.source, h.control),
        Call::Broken(why) => format!("{} ({why})", h.source),
        Call::Substack(name) => format!("{} substack {name}", h.source),
    }
}

/// The walk in words: what each line did, and why the others never ran.
pub fn describe(walk: &Walk, chain: &[&Handler], lines: &[crate::facts::pam::PamLine]) -> String {
    let mut parts = Vec::new();
    for (i, s) in walk.steps.iter().enumerate() {
        let h = describe_handler(chain[i], lines);
        match s {
            Step::Ran(r, a) => parts.push(format!("{h} → {} ({})", result_name(*r), a.name())),
            Step::Skipped(Skipped::JumpedBy(j)) => parts.push(format!(
                "{h}: never reached (jumped over by {})",
                chain[*j].source
            )),
            Step::Skipped(Skipped::EndedBy(j)) => parts.push(format!(
                "{h}: never reached (the walk ended at {})",
                chain[*j].source
            )),
            Step::Skipped(Skipped::Marker) => {}
        }
    }
    let end = if walk.succeeded() {
        "succeeds".to_string()
    } else {
        format!("fails with {}", result_name(walk.result))
    };
    let by = match walk.decided_by {
        Some(i) => format!(", decided at {}", chain[i].source),
        None => String::new(),
    };
    let jump = match walk.bad_jump {
        Some(i) => format!(" (the jump at {} goes past the end)", chain[i].source),
        None => String::new(),
    };
    format!("{}; the stack {end}{by}{jump}", parts.join("; "))
}

#[cfg(test)]
mod tests;
