//! The effective settings of PAM modules that read a configuration file as well as
//! their arguments, resolved the way each module does:
//!
//! - pam_faillock (Linux-PAM 1.4.0 to 1.5.3 alike): `/etc/security/faillock.conf`
//!   (or `conf=`), later lines win, then the module arguments; names are
//!   case-sensitive; `root_unlock_time` defaults to `unlock_time`; `never` means 0;
//!   times above 604800 seconds (7 days) are rejected and the previous value kept.
//! - pam_pwquality (libpwquality 1.4.4 and 1.4.5 alike): `/etc/security/pwquality.conf.d/*.conf`
//!   in name order, then `/etc/security/pwquality.conf` (so the main file wins over
//!   the drop-ins), then the module arguments; names are case-insensitive; a bad line
//!   stops the reading of the configuration; `minlen` is never below 6, and is
//!   resolved as the shortest length accepted: less the positive credits
//!   (`dcredit` … `ocredit`), but at least half of it.
//! - pam_pwhistory: before Linux-PAM 1.5.3 (Debian 12 ships 1.5.2, Ubuntu 22.04
//!   1.4.0) it has only module arguments. From 1.5.3 on (Ubuntu 24.04) it first reads
//!   `/etc/security/pwhistory.conf` (or `conf=`), where the first line naming a
//!   setting wins and names are case-insensitive, then the arguments. Which applies
//!   is decided by the installed version of the package that ships the module
//!   ([`PwhistoryConf`]: libpam-modules 1.5.3 on Debian and Ubuntu by default; a
//!   check names another package and release where a distribution backported the
//!   file, such as RHEL 9's `pam`).

use crate::facts::packages::packages;
use crate::facts::pam::PamLine;
use crate::facts::FileKind;
use crate::facts::{FactError, Facts};

/// pam_faillock's MAX_TIME_INTERVAL: the longest unlock_time, root_unlock_time or
/// fail_interval it accepts, in seconds.
const FAILLOCK_MAX_TIME: i64 = 604800;

/// A module whose options can be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    Faillock,
    Pwquality,
    Pwhistory,
}

impl Module {
    pub fn from_name(name: &str) -> Option<Module> {
        match name {
            "pam_faillock.so" => Some(Module::Faillock),
            "pam_pwquality.so" => Some(Module::Pwquality),
            "pam_pwhistory.so" => Some(Module::Pwhistory),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Module::Faillock => "pam_faillock",
            Module::Pwquality => "pam_pwquality",
            Module::Pwhistory => "pam_pwhistory",
        }
    }

    /// The compiled-in default of a numeric option (None: a flag, off by default).
    fn default(self, option: &str) -> Option<i64> {
        Some(match (self, option) {
            (Module::Faillock, "deny") => 3,
            (Module::Faillock, "unlock_time") => 600,
            (Module::Faillock, "fail_interval") => 900,
            (Module::Pwquality, "difok") => 1,
            (Module::Pwquality, "minlen") => 8,
            (Module::Pwquality, "dcredit" | "ucredit" | "lcredit" | "ocredit") => 0,
            (Module::Pwquality, "minclass" | "maxrepeat" | "maxclassrepeat" | "maxsequence") => 0,
            (Module::Pwquality, "gecoscheck" | "usersubstr") => 0,
            (Module::Pwquality, "dictcheck" | "usercheck" | "enforcing" | "retry") => 1,
            (Module::Pwhistory, "remember") => 10,
            (Module::Pwhistory, "retry") => 1,
            _ => return None,
        })
    }

    fn is_flag(self, option: &str) -> bool {
        match self {
            Module::Faillock => [
                "even_deny_root",
                "audit",
                "silent",
                "no_log_info",
                "local_users_only",
                "nodelay",
            ]
            .contains(&option),
            Module::Pwquality => ["enforce_for_root", "local_users_only"].contains(&option),
            Module::Pwhistory => ["enforce_for_root", "debug", "use_authtok"].contains(&option),
        }
    }

    fn is_pwquality_setting(name: &str) -> bool {
        [
            "difok",
            "minlen",
            "dcredit",
            "ucredit",
            "lcredit",
            "ocredit",
            "minclass",
            "maxrepeat",
            "maxclassrepeat",
            "maxsequence",
            "gecoscheck",
            "dictcheck",
            "usercheck",
            "usersubstr",
            "enforcing",
            "badwords",
            "dictpath",
            "retry",
            "enforce_for_root",
            "local_users_only",
        ]
        .contains(&name)
    }
}

/// From which release of which package pam_pwhistory reads its configuration file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PwhistoryConf {
    /// The package that ships pam_pwhistory (`libpam-modules`, `pam`).
    pub package: String,
    /// The first version (in the package manager's order) that reads the file.
    pub version: String,
}

impl Default for PwhistoryConf {
    fn default() -> Self {
        PwhistoryConf {
            package: "libpam-modules".into(),
            version: "1.5.3".into(),
        }
    }
}

/// An option's effective value on one module line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// For numeric options the number; for flags 1 (set) or 0 (not set).
    pub value: Option<i64>,
    /// The raw text when set explicitly.
    pub raw: Option<String>,
    /// Where it came from: `file:line`, `argument`, or `default`.
    pub from: String,
    /// Whether it was set explicitly (file or argument), not left to the default.
    pub explicit: bool,
}

/// One `name value` setting with its origin.
#[derive(Debug, Clone)]
struct Set {
    name: String,
    value: String,
    from: String,
    /// Given as a module argument (not read from a configuration file).
    arg: bool,
}

/// Parses a faillock.conf / pwquality.conf style file: `#` comments, `name`,
/// `name value` or `name = value`.
fn parse_conf(text: &str, path: &str) -> Vec<Set> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find('#') {
            Some(p) => &raw[..p],
            None => raw,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let end = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let name = &line[..end];
        let mut rest = &line[end..];
        let mut eq = false;
        if let Some(r) = rest.strip_prefix('=') {
            eq = true;
            rest = r;
        }
        rest = rest.trim_start();
        if !eq {
            if let Some(r) = rest.strip_prefix('=') {
                rest = r.trim_start();
            }
        }
        out.push(Set {
            name: name.to_string(),
            value: rest.to_string(),
            from: format!("{path}:{}", i + 1),
            arg: false,
        });
    }
    out
}

/// Reads the settings that apply to `line` in order (files, then arguments).
/// Returns the settings and remarks for evidence.
fn settings(
    facts: &Facts,
    module: Module,
    line: &PamLine,
    pwhistory: &PwhistoryConf,
) -> Result<(Vec<Set>, Vec<String>), FactError> {
    let mut sets = Vec::new();
    let mut notes = Vec::new();
    let arg_from = format!("argument on {}", line.source);
    match module {
        Module::Faillock => {
            let conf = line
                .args
                .iter()
                .find_map(|a| a.strip_prefix("conf="))
                .unwrap_or("/etc/security/faillock.conf");
            match facts.read(conf)? {
                Some(t) => sets.extend(parse_conf(&t, conf)),
                None if conf != "/etc/security/faillock.conf" => {
                    notes.push(format!("{conf} does not exist; pam_faillock fails"));
                }
                None => {}
            }
            for a in &line.args {
                if a.starts_with("conf=")
                    || ["preauth", "authfail", "authsucc"].contains(&a.as_str())
                {
                    continue;
                }
                let (n, v) = a.split_once('=').unwrap_or((a, ""));
                sets.push(Set {
                    name: n.to_string(),
                    value: v.to_string(),
                    from: arg_from.clone(),
                    arg: true,
                });
            }
        }
        Module::Pwquality => {
            let dir = "/etc/security/pwquality.conf.d";
            let mut files: Vec<String> = facts
                .list_dir(dir)?
                .into_iter()
                .filter(|n| n.find(".conf").is_some_and(|p| p + 5 == n.len()))
                .map(|n| format!("{dir}/{n}"))
                .collect();
            files.sort();
            files.push("/etc/security/pwquality.conf".to_string());
            'files: for f in files {
                // fopen succeeds on a directory and reading it gives nothing.
                if facts.stat(&f)?.is_some_and(|m| m.kind == FileKind::Dir) {
                    continue;
                }
                let Some(t) = facts.read(&f)? else { continue };
                for s in parse_conf(&t, &f) {
                    let name = s.name.to_ascii_lowercase();
                    if !Module::is_pwquality_setting(&name) {
                        notes.push(format!("{}: unknown setting {}; libpwquality stops reading its configuration here", s.from, s.name));
                        break 'files;
                    }
                    if Module::Pwquality.default(&name).is_some()
                        && pwquality_int(&s.value).is_none()
                    {
                        notes.push(format!("{}: {} = {} is not a number; libpwquality stops reading its configuration here", s.from, s.name, s.value));
                        break 'files;
                    }
                    sets.push(Set {
                        name,
                        value: s.value,
                        from: s.from,
                        arg: false,
                    });
                }
            }
            for a in &line.args {
                let (n, v) = a.split_once('=').unwrap_or((a, ""));
                let n = n.to_ascii_lowercase();
                if Module::is_pwquality_setting(&n) {
                    sets.push(Set {
                        name: n,
                        value: v.to_string(),
                        from: arg_from.clone(),
                        arg: true,
                    });
                }
            }
        }
        Module::Pwhistory => {
            let pk = packages(facts);
            let (installed, new_enough) = match pk.as_ref() {
                Ok(p) => {
                    let v = p.version(&pwhistory.package).map(String::from);
                    let ok = v
                        .as_deref()
                        .is_some_and(|v| p.compare_versions(v, &pwhistory.version).is_ge());
                    (v, ok)
                }
                Err(_) => (None, false),
            };
            let conf = line
                .args
                .iter()
                .find_map(|a| a.strip_prefix("conf="))
                .unwrap_or("/etc/security/pwhistory.conf");
            if new_enough {
                if let Some(t) = facts.read(conf)? {
                    // pam_modutil_search_key: the first line naming a setting wins.
                    let mut seen = std::collections::HashSet::new();
                    for s in parse_conf(&t, conf) {
                        let name = s.name.to_ascii_lowercase();
                        if seen.insert(name.clone()) {
                            sets.push(Set { name, ..s });
                        } else {
                            notes.push(format!(
                                "{}: {} is set again; pam_pwhistory uses the first line naming it",
                                s.from, s.name
                            ));
                        }
                    }
                }
            } else if let Some(t) = facts.read(conf)? {
                if !parse_conf(&t, conf).is_empty() {
                    let name = &pwhistory.package;
                    let which = match &installed {
                        Some(v) => format!("{name} {v} is installed"),
                        None => format!("{name} is not installed"),
                    };
                    notes.push(format!(
                        "{conf} has settings, but pam_pwhistory before {name} {} does not read it ({which}); only module arguments count",
                        pwhistory.version
                    ));
                }
            }
            for a in &line.args {
                let (n, v) = a.split_once('=').unwrap_or((a, ""));
                sets.push(Set {
                    name: n.to_ascii_lowercase(),
                    value: v.to_string(),
                    from: arg_from.clone(),
                    arg: true,
                });
            }
        }
    }
    Ok((sets, notes))
}

/// A number as libpwquality reads one (`strtol`, the whole value, and strictly
/// between INT_MIN and INT_MAX).
fn pwquality_int(s: &str) -> Option<i64> {
    s.trim_start()
        .parse::<i64>()
        .ok()
        .filter(|n| *n > i64::from(i32::MIN) && *n < i64::from(i32::MAX))
}

/// Leading digits as C's `strtol`/`sscanf("%u")` read them (after blanks and a sign).
fn leading_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let n: i64 = digits[..end].parse().unwrap_or(i64::MAX);
    Some(if neg { -n } else { n })
}

/// Resolves `option` for one module line. `Ok((resolved, notes))`.
pub fn resolve(
    facts: &Facts,
    module: Module,
    line: &PamLine,
    option: &str,
    pwhistory: &PwhistoryConf,
) -> Result<(Resolved, Vec<String>), FactError> {
    let (sets, notes) = settings(facts, module, line, pwhistory)?;
    let option_lc = option.to_ascii_lowercase();
    let matches = |s: &Set| match module {
        Module::Faillock => s.name == option,
        _ => s.name == option_lc,
    };
    if module.is_flag(&option_lc) {
        let hit = sets.iter().rev().find(|s| matches(s));
        return Ok((
            match hit {
                Some(s) => Resolved {
                    value: Some(1),
                    raw: Some(s.name.clone()),
                    from: s.from.clone(),
                    explicit: true,
                },
                None => Resolved {
                    value: Some(0),
                    raw: None,
                    from: "default".into(),
                    explicit: false,
                },
            },
            notes,
        ));
    }
    // Numeric: apply in order, keeping the previous value when one does not parse.
    let mut value = module.default(&option_lc);
    let mut raw = None;
    let mut from = "default".to_string();
    let mut explicit = false;
    let mut notes = notes;
    if module == Module::Faillock && option == "root_unlock_time" {
        let (u, _) = resolve(facts, module, line, "unlock_time", pwhistory)?;
        value = u.value;
        from = format!("not set; defaults to unlock_time ({})", u.from);
    }
    for s in sets.iter().filter(|s| matches(s)) {
        let parsed = match (module, option_lc.as_str()) {
            (Module::Faillock, "unlock_time" | "root_unlock_time") if s.value == "never" => Some(0),
            // sscanf("%hu") wraps a negative deny into a huge one.
            (Module::Faillock, "deny") => leading_int(&s.value).map(|n| n.rem_euclid(65536)),
            // Times longer than MAX_TIME_INTERVAL (7 days) are refused.
            (Module::Faillock, "unlock_time" | "root_unlock_time" | "fail_interval") => {
                leading_int(&s.value).filter(|n| (0..=FAILLOCK_MAX_TIME).contains(n))
            }
            (Module::Faillock, _) => leading_int(&s.value).filter(|n| *n >= 0),
            (Module::Pwquality, _) => pwquality_int(&s.value),
            // Arguments go through strtol and are clamped; pwhistory.conf values
            // through sscanf("%u"), a bad one being ignored.
            (Module::Pwhistory, _) if s.arg => {
                leading_int(&s.value).or(Some(0)).map(|n| n.clamp(0, 400))
            }
            (Module::Pwhistory, _) => leading_int(&s.value),
        };
        match parsed {
            Some(n) => {
                value = Some(n);
                raw = Some(s.value.clone());
                from = s.from.clone();
                explicit = true;
            }
            None => {
                let too_long = module == Module::Faillock
                    && leading_int(&s.value).is_some_and(|n| n > FAILLOCK_MAX_TIME);
                let why = if too_long {
                    format!("is longer than {FAILLOCK_MAX_TIME} seconds (7 days)")
                } else {
                    "is not a valid number".to_string()
                };
                notes.push(format!(
                    "{}: {} = {} {why}; {} ignores it",
                    s.from,
                    s.name,
                    s.value,
                    module.name()
                ))
            }
        }
    }
    if module == Module::Pwquality && option_lc == "minlen" {
        value = value.map(|v| v.max(6));
        if let Some(v) = value {
            let (shortest, note) = credited(facts, line, v, pwhistory)?;
            notes.extend(note);
            value = Some(shortest);
        }
    }
    Ok((
        Resolved {
            value,
            raw,
            from,
            explicit,
        },
        notes,
    ))
}

/// `option = value (where)` or `option not set; pam_x default N` for evidence.
pub fn describe(module: Module, option: &str, r: &Resolved) -> String {
    match (&r.raw, r.explicit) {
        (Some(raw), true) if raw == option => format!("{option} set ({})", r.from),
        (Some(raw), true) => format!("{option} = {raw} ({})", r.from),
        _ => match r.value {
            Some(0) if module.is_flag(&option.to_ascii_lowercase()) => {
                format!("{option} not set ({} default: off)", module.name())
            }
            Some(v) if r.from == "default" => {
                format!("{option} not set; {} default {v}", module.name())
            }
            Some(v) => format!("{option} {} = {v}", r.from),
            None => format!("{option} not set"),
        },
    }
}

/// The shortest password pam_pwquality accepts with `minlen` on `line`, and a note
/// when positive credits lower it. libpwquality's `simple`: each character of a
/// class whose credit is positive counts one more, up to the credit, so the shortest
/// is minlen less the positive credits (at most one per character).
fn credited(
    facts: &Facts,
    line: &PamLine,
    minlen: i64,
    pwhistory: &PwhistoryConf,
) -> Result<(i64, Option<String>), FactError> {
    let mut credits = Vec::new();
    let mut sum = 0;
    for c in ["dcredit", "ucredit", "lcredit", "ocredit"] {
        let (r, _) = resolve(facts, Module::Pwquality, line, c, pwhistory)?;
        if let Some(n) = r.value.filter(|n| *n > 0) {
            credits.push(format!("{c} = {n} ({})", r.from));
            sum += n;
        }
    }
    if credits.is_empty() {
        return Ok((minlen, None));
    }
    let shortest = (minlen - sum).max((minlen + 1) / 2);
    Ok((
        shortest,
        Some(format!(
            "{}: pam_pwquality accepts a password of {shortest} characters with enough of each class, so the effective minimum length is {shortest}",
            credits.join(", ")
        )),
    ))
}

#[cfg(test)]
mod tests;
