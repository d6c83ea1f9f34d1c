//! authselect (RHEL 9, Amazon Linux 2023 and other Fedora-family systems): the
//! profile that generates /etc/pam.d/system-auth, password-auth and the other
//! authselect-managed stacks.
//!
//! `/etc/authselect/authselect.conf` names the selected profile on its first line
//! (`sssd`, `local`, `minimal`, or `custom/NAME` for a profile the site created with
//! `authselect create-profile`), followed by the enabled features (`with-faillock`,
//! …). A custom profile's templates live in `/etc/authselect/custom/NAME/`; they hold
//! PAM lines with authselect's conditionals (`{include if "with-faillock"}`), so a
//! module is "in the profile" when a line of the template calls it, whatever the
//! conditional around it.

use crate::facts::pam::{logical_lines, tokens};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// Where authselect records the selected profile and features.
pub const AUTHSELECT_CONF: &str = "/etc/authselect/authselect.conf";
/// Where custom profiles live.
pub const CUSTOM_DIR: &str = "/etc/authselect/custom";

/// The selected profile: its ID and the line it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub id: String,
    pub line: usize,
}

/// The profile named by authselect.conf (the first line that is neither blank nor
/// a comment), or `None` when the file is missing or names none.
pub fn selected(facts: &Facts) -> Result<Option<Selected>, FactError> {
    let Some(text) = facts.read(AUTHSELECT_CONF)? else {
        return Ok(None);
    };
    Ok(text.lines().enumerate().find_map(|(i, l)| {
        let t = l.trim();
        (!t.is_empty() && !t.starts_with('#')).then(|| Selected {
            id: t.to_string(),
            line: i + 1,
        })
    }))
}

/// The selected profile is a custom one (`custom/NAME`), and each of its templates
/// `files` calls every module of `modules`.
pub fn profile(facts: &Facts, files: &[String], modules: &[String]) -> Result<Outcome, FactError> {
    let Some(sel) = selected(facts)? else {
        let why = if facts.read(AUTHSELECT_CONF)?.is_some() {
            format!("{AUTHSELECT_CONF} names no profile")
        } else {
            format!("{AUTHSELECT_CONF} does not exist: no authselect profile is selected")
        };
        return Ok(Outcome::fail(why));
    };
    let at = format!("{AUTHSELECT_CONF}:{}", sel.line);
    let Some(name) = sel
        .id
        .strip_prefix("custom/")
        .filter(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..")
    else {
        return Ok(Outcome::fail(format!(
            "{at}: the selected profile {} is not a custom profile (custom/NAME)",
            sel.id
        )));
    };
    let mut failures = Vec::new();
    let mut found = vec![format!("{at}: custom profile {} is selected", sel.id)];
    for f in files {
        let path = format!("{CUSTOM_DIR}/{name}/{f}");
        let Some(text) = facts.read(&path)? else {
            failures.push(format!("{path} does not exist"));
            continue;
        };
        let lines = logical_lines(&text);
        let mut missing = Vec::new();
        for m in modules {
            let hit = lines.iter().find(|(_, l)| {
                tokens(l)
                    .iter()
                    .any(|w| w == m || w.rsplit('/').next() == Some(m.as_str()))
            });
            match hit {
                Some((n, _)) => found.push(format!("{path}:{n}: calls {m}")),
                None => missing.push(m.as_str()),
            }
        }
        if !missing.is_empty() {
            failures.push(format!("{path}: no line calls {}", missing.join(", ")));
        }
    }
    if failures.is_empty() {
        return Ok(Outcome::new(Status::Pass, found));
    }
    failures.extend(found);
    Ok(Outcome::new(Status::Fail, failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> Outcome {
        let t = crate::checks::test_tree(files, &[]);
        let f = Facts::new(t.path(), false);
        let list = vec!["system-auth".to_string(), "password-auth".to_string()];
        let mods = vec!["pam_faillock.so".to_string(), "pam_unix.so".to_string()];
        profile(&f, &list, &mods).unwrap()
    }

    const TEMPLATE: &str =
        "auth required pam_faillock.so preauth silent {include if \"with-faillock\"}\n\
        auth sufficient pam_unix.so {if not \"without-nullok\":nullok}\n";

    #[test]
    fn custom_profile_with_modules() {
        let o = run(&[
            (
                "/etc/authselect/authselect.conf",
                "custom/cis\nwith-faillock\n",
            ),
            ("/etc/authselect/custom/cis/system-auth", TEMPLATE),
            ("/etc/authselect/custom/cis/password-auth", TEMPLATE),
        ]);
        assert_eq!(o.status, Status::Pass, "{:?}", o.evidence);
    }

    #[test]
    fn vendor_profile_or_missing_module_fails() {
        let o = run(&[("/etc/authselect/authselect.conf", "sssd\nwith-faillock\n")]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.evidence[0].contains("not a custom profile"));
        let o = run(&[
            ("/etc/authselect/authselect.conf", "custom/cis\n"),
            ("/etc/authselect/custom/cis/system-auth", TEMPLATE),
            (
                "/etc/authselect/custom/cis/password-auth",
                "# auth required pam_faillock.so\nauth sufficient pam_unix.so\n",
            ),
        ]);
        assert_eq!(o.status, Status::Fail);
        assert!(o.evidence[0].contains("password-auth: no line calls pam_faillock.so"));
        let o = run(&[]);
        assert_eq!(o.status, Status::Fail);
        let o = run(&[("/etc/authselect/authselect.conf", "custom/../x\n")]);
        assert_eq!(o.status, Status::Fail);
    }
}
