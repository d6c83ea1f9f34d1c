//! The default umask: what login.defs, pam_umask and the system shell start-up files
//! set, and `umask` commands in given files.

use super::system_shell_files;
use crate::facts::pam::stack;
use crate::facts::shell::{commands, literal, Cond};
use crate::facts::{kv, FactError, Facts};
use crate::model::Outcome;

/// A umask setting found somewhere.
struct UmaskSetting {
    source: String,
    /// The mask, or why it cannot be read.
    mask: Result<u32, String>,
}

/// Parses a umask argument: octal (`027`, `0027`) or symbolic (`u=rwx,g=rx,o=`).
pub fn parse_umask(s: &str) -> Result<u32, String> {
    if !s.is_empty() && s.len() <= 4 && s.chars().all(|c| ('0'..='7').contains(&c)) {
        return u32::from_str_radix(s, 8).map_err(|e| e.to_string());
    }
    // Symbolic: every class must be given with '='; the mask is what is not allowed.
    let mut mask = 0o777u32;
    let mut seen = 0;
    for clause in s.split(',') {
        let Some((who, perms)) = clause.split_once('=') else {
            return Err(format!(
                "symbolic umask {s} is relative to the current mask"
            ));
        };
        let mut bits = 0;
        for p in perms.chars() {
            bits |= match p {
                'r' => 4,
                'w' => 2,
                'x' => 1,
                _ => return Err(format!("cannot read umask {s}")),
            };
        }
        let whos: Vec<u32> = match who {
            "a" | "" => vec![6, 3, 0],
            w => {
                let mut v = Vec::new();
                for c in w.chars() {
                    match c {
                        'u' => v.push(6),
                        'g' => v.push(3),
                        'o' => v.push(0),
                        'a' => v.extend([6, 3, 0]),
                        _ => return Err(format!("cannot read umask {s}")),
                    }
                }
                v
            }
        };
        for shift in whos {
            mask &= !(0o7 << shift);
            mask |= (0o7 & !bits) << shift;
            seen |= 0o7 << shift;
        }
    }
    if seen != 0o777 {
        return Err(format!("symbolic umask {s} leaves some classes unchanged"));
    }
    Ok(mask)
}

/// `umask` commands in a shell file: (line, argument, whether it is a fallback that
/// runs only while the umask is still 0).
fn umask_commands(text: &str) -> Vec<(usize, String, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for c in commands(text, &|_| Cond::Unknown) {
        if c.words[0] != "umask" {
            continue;
        }
        if let Some(arg) = c.words[1..].iter().find(|w| !w.starts_with('-')) {
            let fallback = c
                .line
                .checked_sub(1)
                .and_then(|i| lines.get(i))
                .is_some_and(|l| only_if_umask_zero(l));
            out.push((
                c.line,
                literal(arg).unwrap_or_else(|| arg.clone()),
                fallback,
            ));
        }
    }
    out
}

/// Whether `line` is `TEST && umask X` where TEST compares the current umask with 0,
/// as RHEL 9's /etc/bashrc does (`[ `umask` -eq 0 ] && umask 022`): the umask is
/// then set only when nothing before set one, so it never loosens a umask set by
/// login.defs, pam_umask or /etc/profile.
fn only_if_umask_zero(line: &str) -> bool {
    let Some((test, action)) = line.split_once("&&") else {
        return false;
    };
    if action.contains("&&") || line.contains("||") || line.contains(';') {
        return false;
    }
    let words = |s: &str| -> Option<Vec<String>> {
        let mut parts = crate::facts::shell::split(s);
        let (_, mut cmds) = parts.pop()?;
        (parts.is_empty() && cmds.len() == 1).then(|| cmds.remove(0))
    };
    let (Some(t), Some(a)) = (words(test), words(action)) else {
        return false;
    };
    if a.first().map(String::as_str) != Some("umask") {
        return false;
    }
    let unq = |w: &str| w.trim_matches('"').to_string();
    let is_umask = |w: &str| matches!(unq(w).as_str(), "`umask`" | "$(umask)");
    let is_zero = |w: &str| {
        let v = unq(w);
        !v.is_empty() && v.chars().all(|c| c == '0')
    };
    let body: Vec<&str> = match t.first().map(String::as_str) {
        Some("[") if t.last().map(String::as_str) == Some("]") => {
            t[1..t.len() - 1].iter().map(String::as_str).collect()
        }
        Some("[[") if t.last().map(String::as_str) == Some("]]") => {
            t[1..t.len() - 1].iter().map(String::as_str).collect()
        }
        Some("test") => t[1..].iter().map(String::as_str).collect(),
        _ => return false,
    };
    let [l, op, r] = body[..] else {
        return false;
    };
    matches!(op, "-eq" | "=" | "==") && ((is_umask(l) && is_zero(r)) || (is_zero(l) && is_umask(r)))
}

fn judge_umasks(settings: &[UmaskSetting], want: u32) -> (Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let mut good = Vec::new();
    for s in settings {
        match &s.mask {
            Ok(m) if m & want == want => good.push(format!("{}: umask {:04o}", s.source, m)),
            Ok(m) => failures.push(format!(
                "{}: umask {:04o} is looser than {:04o}",
                s.source, m, want
            )),
            Err(why) => failures.push(format!("{}: {why}", s.source)),
        }
    }
    (failures, good)
}

pub(super) fn default_umask(
    facts: &Facts,
    want: u32,
    bashrc: &str,
    pam_services: &[&str],
) -> Result<Outcome, FactError> {
    let mut settings = Vec::new();
    let mut notes = Vec::new();
    let defs = crate::facts::account_defaults::login_defs(facts)?;
    if let Some(s) = kv::last(&defs, "UMASK", false) {
        settings.push(UmaskSetting {
            source: format!("{} (UMASK)", s.source),
            mask: parse_umask(&s.value),
        });
    }
    for svc in pam_services.iter().copied() {
        let st = stack(facts, svc)?;
        for l in st.module_lines("pam_umask.so", Some("session")) {
            if let Some(v) = l
                .arg("umask")
                .and_then(|a| a.split_once('='))
                .map(|(_, v)| v)
            {
                settings.push(UmaskSetting {
                    source: format!("{} (pam_umask)", l.source),
                    mask: parse_umask(v),
                });
            }
        }
    }
    for f in system_shell_files(facts, bashrc)? {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for (line, arg, fallback) in umask_commands(&text) {
            if fallback {
                notes.push(format!(
                    "{f}:{line}: umask {arg} runs only while the umask is still 0; not judged"
                ));
                continue;
            }
            settings.push(UmaskSetting {
                source: format!("{f}:{line}"),
                mask: parse_umask(&arg),
            });
        }
    }
    let (mut failures, mut good) = judge_umasks(&settings, want);
    if good.is_empty() && failures.is_empty() {
        failures.push(format!(
            "no default umask is set in /etc/login.defs, pam_umask, /etc/profile, /etc/profile.d/*.sh or {bashrc}"
        ));
    } else if good.is_empty() {
        failures.push(format!(
            "no setting makes the default umask {want:04o} or stricter"
        ));
    }
    good.extend(notes);
    Ok(Outcome::from_findings(failures, good))
}

pub(super) fn umask_in_files(
    facts: &Facts,
    files: &[String],
    want: u32,
) -> Result<Outcome, FactError> {
    let mut settings = Vec::new();
    let mut read = Vec::new();
    for f in files {
        let Some(text) = facts.read(f)? else { continue };
        read.push(f.clone());
        for (line, arg, _) in umask_commands(&text) {
            settings.push(UmaskSetting {
                source: format!("{f}:{line}"),
                mask: parse_umask(&arg),
            });
        }
    }
    let (failures, mut good) = judge_umasks(&settings, want);
    if settings.is_empty() {
        good.push(if read.is_empty() {
            format!("none of {} exists", files.join(", "))
        } else {
            format!("no umask command in {}", read.join(", "))
        });
    }
    Ok(Outcome::from_findings(failures, good))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_garbage() {
        for s in [
            "",
            "=",
            ",",
            "u=",
            "a=rwxrwx",
            "u=r,,g=",
            "0",
            "7777",
            "77777",
            "é=r",
            "u=rwx,g=rx,o=,a+",
        ] {
            let _ = parse_umask(s);
        }
    }

    #[test]
    fn umask_fallback_guard() {
        assert!(only_if_umask_zero("    [ `umask` -eq 0 ] && umask 022"));
        assert!(only_if_umask_zero(
            "[ \"$(umask)\" = 0000 ] && umask 022 # x"
        ));
        assert!(only_if_umask_zero("test 0 -eq `umask` && umask 022"));
        assert!(!only_if_umask_zero("[ `umask` -eq 0 ] || umask 022"));
        assert!(!only_if_umask_zero("[ `umask` -ne 0 ] && umask 022"));
        assert!(!only_if_umask_zero(
            "[ `umask` -eq 0 ] && umask 077; umask 022"
        ));
        assert!(!only_if_umask_zero("[ $UID -gt 199 ] && umask 002"));
        assert!(!only_if_umask_zero("umask 022"));
        for (line, arg, fallback) in umask_commands("[ `umask` -eq 0 ] && umask 022\numask 027\n") {
            assert_eq!(fallback, line == 1, "{line} {arg}");
        }
    }

    #[test]
    fn umask_values() {
        assert_eq!(parse_umask("027"), Ok(0o027));
        assert_eq!(parse_umask("0077"), Ok(0o077));
        assert_eq!(parse_umask("u=rwx,g=rx,o="), Ok(0o027));
        assert_eq!(parse_umask("a=rx"), Ok(0o222));
        assert!(parse_umask("g-w").is_err());
        assert!(parse_umask("u=rwx").is_err());
        assert!(parse_umask("99").is_err());
    }
}
