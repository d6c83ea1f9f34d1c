//! pam_pwhistory as libpam runs it in a password change: whether a password the
//! history holds can be written again by pam_unix.
//!
//! A change walks the password stack twice; the first walk (PAM_PRELIM_CHECK) writes
//! nothing and pam_pwhistory lets it through, so what decides is the second
//! (PAM_UPDATE_AUTHTOK). There pam_pwhistory (Linux-PAM 1.5) returns PAM_IGNORE when
//! its remember is 0 or less; otherwise, given a password its history holds, it
//! refuses it unless the change is made by root without `enforce_for_root`: it drops
//! the new password (PAM_AUTHTOK) and returns PAM_MAXTRIES; root is only told, and
//! gets PAM_SUCCESS. pam_unix writes the new password whenever it runs and gets
//! one: with `use_authtok` it takes the one held, so after a refusal it has none and
//! returns PAM_AUTHTOK_ERR; without, it asks again, and the same password comes back.
//! A module whose result is not modelled may ask for the password again too.
//! pam_permit returns success and pam_deny PAM_AUTHTOK_ERR.
//!
//! pam_pwquality is walked the same way ([`refuses`]): enforcing 0 makes it return
//! PAM_SUCCESS whatever the password; otherwise it refuses a password its settings
//! reject, unless root changes a password without `enforce_for_root`, drops it and
//! returns PAM_AUTHTOK_ERR, or PAM_MAXTRIES with more than one try (`retry`).
//!
//! So the history holds only where every path ends before a pam_unix line that would
//! get the password runs: a refusal whose control ends the walk, or jumps past
//! pam_unix, or leaves it without a password.

use super::unmodelled::{assignments, assuming, too_many, unmodelled, MAX_UNKNOWN};
use super::{describe, walk, AUTHTOK_ERR, IGNORE, MAXTRIES, SUCCESS};
use crate::facts::pam::{Call, PamLine, Stack};

/// The settings of one pam_pwhistory line that decide a refusal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// Passwords kept (0 or less: none, the module returns at once).
    pub remember: i64,
    pub enforce_for_root: bool,
}

/// How a line of a module that can refuse the new password acts in the decisive walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Whether it refuses the password at all.
    pub active: bool,
    /// What it returns when not active.
    pub inactive: u8,
    /// What it returns when it refuses (having dropped the password).
    pub refused: u8,
    /// Whether it refuses in a change made by root too (otherwise root is only told,
    /// and it returns PAM_SUCCESS).
    pub enforce_for_root: bool,
}

/// Whether `st`'s password stack refuses a password pam_pwhistory's history holds,
/// in a change made by root with `root`, with the settings of each pam_pwhistory
/// line from `settings` by the line's index in `st`: `Ok(walk)`, or
/// `Err((why, walk))` for a path on which pam_unix writes it.
pub fn refuses_reuse(
    st: &Stack,
    root: bool,
    settings: &dyn Fn(usize) -> History,
) -> Result<String, (String, String)> {
    let of = |i: usize| {
        let h = settings(i);
        Refusal {
            active: h.remember > 0,
            inactive: IGNORE,
            refused: MAXTRIES,
            enforce_for_root: h.enforce_for_root,
        }
    };
    refuses(
        st,
        root,
        "pam_pwhistory.so",
        "a password the history holds",
        &of,
    )
}

/// Whether `st`'s password stack refuses a password that the lines calling `module`
/// refuse (each acting as `settings` says, by the line's index in `st`), in a change
/// made by root with `root`, on every path: `Ok(walk)`, or `Err((why, walk))` for a
/// path on which pam_unix writes it. `what` names the password in the reason.
pub fn refuses(
    st: &Stack,
    root: bool,
    module: &str,
    what: &str,
    settings: &dyn Fn(usize) -> Refusal,
) -> Result<String, (String, String)> {
    let modelled = |l: &PamLine| {
        ["pam_unix.so", module, "pam_permit.so", "pam_deny.so"]
            .iter()
            .any(|m| l.is(m))
    };
    let chain = st.chain("password");
    let idx = unmodelled(st, &chain, modelled);
    if idx.len() > MAX_UNKNOWN {
        return Err((too_many("password", idx.len()), String::new()));
    }
    let unix = chain
        .iter()
        .any(|h| matches!(h.call, Call::Module(i) if st.lines[i].is("pam_unix.so")));
    if !unix && idx.is_empty() {
        return Ok(
            "no password line calls pam_unix.so or another module that could write a password"
                .into(),
        );
    }
    if !unix {
        return Err((
            "no password line calls pam_unix.so: how the other modules write a password is not modelled"
                .into(),
            String::new(),
        ));
    }
    let mut first = None;
    for a in assignments(&idx) {
        // Whether the password is held (none dropped it since it was last asked for)
        // and whether pam_unix wrote it.
        let mut held = true;
        let mut wrote = None;
        let w = walk(&chain, |i| {
            if let Some((_, r)) = a.iter().find(|(j, _)| *j == i) {
                if *r != IGNORE {
                    held = true;
                }
                return *r;
            }
            let Call::Module(li) = chain[i].call else {
                return AUTHTOK_ERR;
            };
            let l = &st.lines[li];
            match l.module_name() {
                m if m == module => {
                    let h = settings(li);
                    if !h.active {
                        h.inactive
                    } else if root && !h.enforce_for_root {
                        SUCCESS
                    } else {
                        held = false;
                        h.refused
                    }
                }
                "pam_unix.so" if l.arg("use_authtok").is_some() && !held => AUTHTOK_ERR,
                "pam_unix.so" => {
                    wrote.get_or_insert(i);
                    SUCCESS
                }
                "pam_permit.so" => SUCCESS,
                _ => AUTHTOK_ERR,
            }
        });
        let text = format!(
            "{}{}",
            describe(&w, &chain, &st.lines),
            assuming(st, &chain, &a)
        );
        if let Some(i) = wrote {
            return Err((format!("{} writes {what}", chain[i].source), text));
        }
        first.get_or_insert(text);
    }
    Ok(first.unwrap_or_default())
}
