//! The default umask: what login.defs, pam_umask and the system shell start-up files
//! set, and `umask` commands in given files.

use super::*;

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

/// `umask` commands in a shell file: (line, argument).
fn umask_commands(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for c in commands(text, &|_| Cond::Unknown) {
        if c.words[0] != "umask" {
            continue;
        }
        if let Some(arg) = c.words[1..].iter().find(|w| !w.starts_with('-')) {
            out.push((c.line, literal(arg).unwrap_or_else(|| arg.clone())));
        }
    }
    out
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
    let defs = crate::facts::account_defaults::login_defs(facts);
    let defs = defs.as_ref().as_ref().map_err(Clone::clone)?;
    if let Some(s) = kv::last(defs, "UMASK", false) {
        settings.push(UmaskSetting {
            source: format!("{} (UMASK)", s.source),
            mask: parse_umask(&s.value),
        });
    }
    for svc in pam_services.iter().copied() {
        let st = stack(facts, svc);
        let st = st.as_ref().as_ref().map_err(Clone::clone)?;
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
        for (line, arg) in umask_commands(&text) {
            settings.push(UmaskSetting {
                source: format!("{f}:{line}"),
                mask: parse_umask(&arg),
            });
        }
    }
    let (mut failures, good) = judge_umasks(&settings, want);
    if good.is_empty() && failures.is_empty() {
        failures.push(format!(
            "no default umask is set in /etc/login.defs, pam_umask, /etc/profile, /etc/profile.d/*.sh or {bashrc}"
        ));
    } else if good.is_empty() {
        failures.push(format!(
            "no setting makes the default umask {want:04o} or stricter"
        ));
    }
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
        for (line, arg) in umask_commands(&text) {
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
