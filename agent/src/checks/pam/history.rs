//! `pam.pwhistory_refuses_reuse`: pam_pwhistory judged on the paths libpam takes
//! through a password change ([`crate::facts::pam::path::history`]), each
//! pam_pwhistory line with its settings resolved as the module reads them
//! ([`super::options`]). A line that no path reaches before pam_unix writes the
//! password refuses nothing, whatever it says.

use super::lockout::{judged, per_line, where_};
use super::options::{Module, PwhistoryConf};
use crate::facts::pam::path::history::{refuses_reuse, History};
use crate::facts::pam::stack;
use crate::facts::{FactError, Facts};
use crate::model::Outcome;

/// `service`'s password stack refuses a password pam_pwhistory's history holds (in a
/// change made by root with `root`), on every path libpam takes.
pub fn reuse(
    facts: &Facts,
    service: &str,
    root: bool,
    conf: &PwhistoryConf,
) -> Result<Outcome, FactError> {
    let st = stack(facts, service)?;
    let pwhistory = (Module::Pwhistory, "pam_pwhistory.so");
    let (set, notes) = per_line(facts, &st, pwhistory, conf, |value| {
        Ok(History {
            remember: value("remember")?,
            enforce_for_root: value("enforce_for_root")? != 0,
        })
    })?;
    let of = |i: usize| set.get(i).copied().unwrap_or_default();
    let at = where_(&st);
    let who = if root { "root's" } else { "an account's" };
    let mut out = judged(
        refuses_reuse(&st, root, &of),
        format!(
            "{at}: every path refuses {who} password the history holds before pam_unix writes it"
        ),
        |why| format!("{at}: {why}, for {who} change"),
        &st,
    );
    out.evidence.extend(notes);
    Ok(out)
}
