//! pam_pwquality judged on the paths libpam takes through a password change
//! ([`crate::facts::pam::path::history::refuses`]): a setting is enforced only where
//! every path that reaches pam_unix's write passes a pam_pwquality line that refuses
//! the password first and stops the write. Each line acts as its settings say
//! ([`super::options`]): enforcing 0 accepts everything, `retry` above 1 makes a
//! refusal PAM_MAXTRIES rather than PAM_AUTHTOK_ERR, and root's own change is
//! refused only with `enforce_for_root`.

use super::lockout::{per_line, where_};
use super::options::{Module, PwhistoryConf};
use crate::facts::pam::path::history::{refuses, Refusal};
use crate::facts::pam::path::{AUTHTOK_ERR, MAXTRIES, SUCCESS};
use crate::facts::pam::Stack;
use crate::facts::{FactError, Facts};

/// `Ok(None)` when every path of `st`'s password stack refuses what pam_pwquality
/// refuses (in a change made by root with `root`) before pam_unix writes it, else
/// `Ok(Some(why))`. Notes from resolving the lines' settings are added to `notes`.
pub fn unenforced(
    facts: &Facts,
    st: &Stack,
    root: bool,
    notes: &mut Vec<String>,
) -> Result<Option<String>, FactError> {
    let pwquality = (Module::Pwquality, "pam_pwquality.so");
    let (set, found) = per_line(facts, st, pwquality, &PwhistoryConf::default(), |value| {
        let enforcing = value("enforcing")? != 0;
        let retry = value("retry")?;
        Ok(Some(Refusal {
            active: enforcing,
            inactive: SUCCESS,
            refused: if retry > 1 { MAXTRIES } else { AUTHTOK_ERR },
            enforce_for_root: value("enforce_for_root")? != 0,
        }))
    })?;
    for x in found {
        if !notes.contains(&x) {
            notes.push(x);
        }
    }
    let of = |i: usize| {
        set.get(i).copied().flatten().unwrap_or(Refusal {
            active: false,
            inactive: SUCCESS,
            refused: AUTHTOK_ERR,
            enforce_for_root: false,
        })
    };
    let who = if root { "root's own" } else { "an account's" };
    Ok(
        match refuses(
            st,
            root,
            "pam_pwquality.so",
            "a password pam_pwquality rejects",
            &of,
        ) {
            Ok(_) => None,
            Err((why, walk)) => {
                let mut s = format!("{}: {why}, in {who} change", where_(st));
                if !walk.is_empty() {
                    s += &format!(" ({walk})");
                }
                Some(s)
            }
        },
    )
}
