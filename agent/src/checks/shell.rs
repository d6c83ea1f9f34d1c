//! `shell.*` checks: the login shell environment, read statically from the files
//! shells and PAM read at login (see [`script`] for how shell files are read).
//!
//! Root's PATH is reconstructed without running a shell: the PATH assignments that
//! can apply to root are followed in login order — /etc/environment (pam_env, no
//! expansion), `ENV_SUPATH` of /etc/login.defs, /etc/profile, /etc/profile.d/*.sh,
//! the system bashrc (/etc/bash.bashrc on Debian and Ubuntu, /etc/bashrc on RHEL
//! and Amazon Linux: a check's `bashrc`), the first of /root/.bash_profile,
//! .bash_login and .profile, then /root/.bashrc — expanding `$PATH` to the value so far and `$HOME` to /root.
//! Branches of `if [ "$(id -u)" -eq 0 ]`-style tests are resolved for root, and
//! `[ -d DIR ]` tests against the scanned root; other conditional assignments are
//! judged as if they applied. Every value root may end up with is judged.

mod umask;

pub use self::umask::parse_umask;
use self::umask::{default_umask, umask_in_files};

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::checks::common::parse_mode;
use crate::facts::accounts::{is_nologin, shell_lines};
use crate::facts::shell::{
    commands, expand, expand_lossy, literal, root_test, Applies, Command, Cond, UNKNOWN,
};
use crate::facts::{kv, FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// The system-wide bashrc bash reads on Debian and Ubuntu (RHEL's is /etc/bashrc).
const DEBIAN_BASHRC: &str = "/etc/bash.bashrc";
/// The PAM services whose session stack may set the umask with pam_umask on Debian.
const DEBIAN_SESSION_SERVICES: &[&str] = &["common-session", "common-session-noninteractive"];

/// The PATH login(1) gives root when nothing else sets one (shadow's built-in).
const BUILTIN_SUPATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin";

/// How `shell.root_path` judges a PATH entry that does not exist.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MissingDir {
    /// A missing directory fails, as the CIS audit reads it.
    #[default]
    Fail,
    /// A missing directory passes (and is reported) when every existing directory
    /// above it is owned by root and not writable by group or others, so that only
    /// root could create it; otherwise it fails.
    SafeParent,
}

/// The `shell.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every PATH root may get has no empty, `.` or relative entry, and every entry
    /// is an existing directory owned by root and not writable by group or others.
    /// `missing` says how entries that do not exist are judged (default: they fail).
    /// `bashrc` is the system-wide bashrc (default /etc/bash.bashrc).
    #[serde(rename = "shell.root_path")]
    RootPath {
        #[serde(default)]
        missing: MissingDir,
        bashrc: Option<String>,
    },
    /// TMOUT is set to 1..=`max` seconds, readonly and exported, in /etc/profile,
    /// /etc/profile.d/*.sh or the system bashrc (`bashrc`, default
    /// /etc/bash.bashrc), and never set to anything else there.
    #[serde(rename = "shell.tmout")]
    Tmout { max: i64, bashrc: Option<String> },
    /// The default umask is at least as strict as `mask` (octal): set that strictly
    /// in /etc/login.defs UMASK, a pam_umask argument in the session stack of
    /// `pam_services` (default common-session and common-session-noninteractive),
    /// /etc/profile, /etc/profile.d/*.sh or the system bashrc (`bashrc`, default
    /// /etc/bash.bashrc), and set looser in none of them.
    #[serde(rename = "shell.default_umask")]
    DefaultUmask {
        mask: String,
        bashrc: Option<String>,
        pam_services: Option<Vec<String>>,
    },
    /// No `umask` command in `files` sets a mask looser than `mask` (none set passes).
    #[serde(rename = "shell.umask_in_files")]
    UmaskInFiles { files: Vec<String>, mask: String },
    /// /etc/shells lists no nologin shell.
    #[serde(rename = "shell.shells_no_nologin")]
    ShellsNoNologin,
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        match self {
            Check::RootPath { missing, bashrc } => root_path(facts, *missing, bashrc_of(bashrc)),
            Check::Tmout { max, bashrc } => tmout(facts, *max, bashrc_of(bashrc)),
            Check::DefaultUmask {
                mask,
                bashrc,
                pam_services,
            } => match parse_mode(mask) {
                Ok(m) => {
                    let services: Vec<&str> = match pam_services {
                        Some(l) => l.iter().map(String::as_str).collect(),
                        None => DEBIAN_SESSION_SERVICES.to_vec(),
                    };
                    default_umask(facts, m, bashrc_of(bashrc), &services)
                }
                Err(e) => Ok(Outcome::error(e)),
            },
            Check::UmaskInFiles { files, mask } => match parse_mode(mask) {
                Ok(m) => umask_in_files(facts, files, m),
                Err(e) => Ok(Outcome::error(e)),
            },
            Check::ShellsNoNologin => {
                let list = shell_lines(facts)?;
                if facts.read("/etc/shells")?.is_none() {
                    return Ok(Outcome::pass("/etc/shells does not exist"));
                }
                let bad: Vec<String> = list
                    .iter()
                    .filter(|(_, s)| is_nologin(s))
                    .map(|(n, s)| format!("/etc/shells:{n}: {s} (nologin listed as a shell)"))
                    .collect();
                let list: Vec<&str> = list.iter().map(|(_, s)| s.as_str()).collect();
                Ok(if bad.is_empty() {
                    Outcome::pass(format!(
                        "/etc/shells lists no nologin shell ({})",
                        list.join(", ")
                    ))
                } else {
                    Outcome::new(Status::Fail, bad)
                })
            }
        }
    }
}

fn bashrc_of(bashrc: &Option<String>) -> &str {
    bashrc.as_deref().unwrap_or(DEBIAN_BASHRC)
}

/// The system-wide shell start-up files, in the order a login shell reads them.
fn system_shell_files(facts: &Facts, bashrc: &str) -> Result<Vec<String>, FactError> {
    let mut files = vec!["/etc/profile".to_string()];
    files.extend(facts.dir_files("/etc/profile.d", ".sh")?);
    files.push(bashrc.to_string());
    Ok(files)
}

/// Condition reader for root: uid tests, and `[ -d DIR ]` / `[ -e DIR ]` against the root.
fn root_cond<'a>(
    facts: &'a Facts,
    vars: &'a BTreeMap<String, String>,
) -> impl Fn(&[String]) -> Cond + 'a {
    move |words: &[String]| {
        let c = root_test(words);
        if c != Cond::Unknown {
            return c;
        }
        // [ -d "$HOME/bin" ] / test -d …
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        let core: Vec<&str> = match w.as_slice() {
            ["[", rest @ .., "]"] => rest.to_vec(),
            ["test", rest @ ..] => rest.to_vec(),
            _ => return Cond::Unknown,
        };
        if let [op @ ("-d" | "-e"), arg] = core.as_slice() {
            if let Ok(p) = expand(arg, vars) {
                if p.starts_with('/') {
                    return match facts.stat(&p) {
                        Ok(Some(m)) if *op == "-e" || m.kind == FileKind::Dir => Cond::True,
                        Ok(_) => Cond::False,
                        Err(_) => Cond::Unknown,
                    };
                }
            }
        }
        Cond::Unknown
    }
}

/// A PATH value root may get, and where it was set. Parts that cannot be evaluated
/// statically are wrapped in [`UNKNOWN`] markers.
struct PathValue {
    value: String,
    source: String,
    maybe: bool,
}

fn root_path(facts: &Facts, missing: MissingDir, bashrc: &str) -> Result<Outcome, FactError> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("HOME".into(), "/root".into());
    let mut values: Vec<PathValue> = Vec::new();
    // pam_env's /etc/environment: KEY=VALUE, no expansion.
    if let Some(t) = facts.read("/etc/environment")? {
        for (i, line) in t.lines().enumerate() {
            let l = line.trim();
            let l = l.strip_prefix("export ").unwrap_or(l).trim();
            if let Some(v) = l.strip_prefix("PATH=") {
                let v = v.trim().trim_matches(['"', '\'']).to_string();
                vars.insert("PATH".into(), v.clone());
                values.push(PathValue {
                    value: v,
                    source: format!("/etc/environment:{}", i + 1),
                    maybe: false,
                });
            }
        }
    }
    let defs = crate::facts::account_defaults::login_defs(facts)?;
    if let Some(s) = kv::last(&defs, "ENV_SUPATH", false) {
        let v = s
            .value
            .strip_prefix("PATH=")
            .unwrap_or(&s.value)
            .to_string();
        vars.insert("PATH".into(), v.clone());
        values.push(PathValue {
            value: v,
            source: format!("{} (ENV_SUPATH)", s.source),
            maybe: false,
        });
    }
    vars.entry("PATH".into())
        .or_insert_with(|| BUILTIN_SUPATH.to_string());
    let mut files = system_shell_files(facts, bashrc)?;
    for f in ["/root/.bash_profile", "/root/.bash_login", "/root/.profile"] {
        if facts.read(f)?.is_some() {
            files.push(f.to_string());
            break;
        }
    }
    files.push("/root/.bashrc".to_string());
    for f in &files {
        let Some(text) = facts.read(f)? else { continue };
        // Conditions are read with the variables as they stand when the file starts.
        let snapshot = vars.clone();
        let cmds = commands(&text, &root_cond(facts, &snapshot));
        for c in cmds.iter().filter(|c| c.applies != Applies::No) {
            for (name, raw) in assignments(c) {
                let value = expand_lossy(&raw, &vars);
                vars.insert(name.clone(), value.clone());
                if name == "PATH" {
                    values.push(PathValue {
                        value,
                        source: format!("{f}:{}", c.line),
                        maybe: c.applies == Applies::Maybe,
                    });
                }
            }
        }
    }
    if values.is_empty() {
        values.push(PathValue {
            value: BUILTIN_SUPATH.to_string(),
            source: "no PATH assignment found; login's built-in root PATH".into(),
            maybe: false,
        });
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut judged: BTreeMap<String, Verdict> = BTreeMap::new();
    for pv in &values {
        let note = if pv.maybe {
            " (in a conditional block; judged as if it applies)"
        } else {
            ""
        };
        let v = &pv.value;
        let mut bad = Vec::new();
        let mut unknown = Vec::new();
        let mut remarks = Vec::new();
        let entries: Vec<&str> = v.split(':').collect();
        if v.is_empty() || entries.iter().any(|e| e.is_empty()) {
            bad.push("has an empty entry (the current directory)".to_string());
        }
        for e in entries.iter().filter(|e| !e.is_empty()) {
            if e.contains(UNKNOWN) {
                unknown.push(e.replace(UNKNOWN, ""));
                continue;
            }
            if !e.starts_with('/') {
                bad.push(format!("entry {e} is relative"));
                continue;
            }
            let verdict = match judged.get(*e) {
                Some(v) => v.clone(),
                None => {
                    let v = match judge_dir(facts, e)? {
                        None => Verdict::Ok,
                        Some(why)
                            if missing == MissingDir::SafeParent && why.ends_with(MISSING) =>
                        {
                            safe_parent(facts, e)?
                        }
                        Some(why) => Verdict::Bad(why),
                    };
                    judged.insert(e.to_string(), v.clone());
                    v
                }
            };
            match verdict {
                Verdict::Ok => {}
                Verdict::Remark(r) => remarks.push(r),
                Verdict::Bad(why) => bad.push(why),
            }
        }
        let shown = v.replace(UNKNOWN, "");
        let mut line = format!("{}: PATH={shown}{note}", pv.source);
        if !unknown.is_empty() {
            line.push_str(&format!(
                " (entries {} cannot be evaluated statically and are not judged)",
                unknown.join(", ")
            ));
        }
        if !remarks.is_empty() {
            line.push_str(&format!(" ({})", remarks.join("; ")));
        }
        if bad.is_empty() {
            found.push(line);
        } else {
            failures.push(format!("{line}: {}", bad.join("; ")));
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

/// The variable assignments of a command (`A=…`, `export A=…`), as (name, raw value).
fn assignments(c: &Command) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut words = c.words.iter();
    let first = c.words.first().map(String::as_str).unwrap_or("");
    let builtin = ["export", "readonly", "declare", "typeset", "local"].contains(&first);
    if builtin {
        words.next();
    }
    for w in words {
        match w.split_once('=') {
            Some((name, v)) if is_name(name) => out.push((name.to_string(), v.to_string())),
            _ if builtin => {}
            _ => break,
        }
    }
    out
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// How one PATH entry was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ok,
    /// Acceptable, with something worth reporting.
    Remark(String),
    Bad(String),
}

/// The ending of [`judge_dir`]'s reason for a directory that does not exist.
const MISSING: &str = " does not exist";

/// A missing PATH directory under `MissingDir::SafeParent`: acceptable when every
/// existing directory above it is owned by root and not writable by group or others.
fn safe_parent(facts: &Facts, dir: &str) -> Result<Verdict, FactError> {
    let mut nearest: Option<String> = None;
    let mut cur = dir.trim_end_matches('/');
    while let Some((parent, _)) = cur.rsplit_once('/') {
        let p = if parent.is_empty() { "/" } else { parent };
        if facts.stat(p)?.is_some() {
            if nearest.is_none() {
                nearest = Some(p.to_string());
            }
            if let Some(why) = judge_dir(facts, p)? {
                return Ok(Verdict::Bad(format!(
                    "{dir}{MISSING} and could be created by others: {why}"
                )));
            }
        }
        if p == "/" {
            break;
        }
        cur = parent;
    }
    Ok(Verdict::Remark(format!(
        "{dir}{MISSING}; only root can create it under {}",
        nearest.unwrap_or_else(|| "/".into())
    )))
}

/// `None` when the directory is fine for root's PATH, else why not.
fn judge_dir(facts: &Facts, dir: &str) -> Result<Option<String>, FactError> {
    Ok(match facts.stat(dir)? {
        None => Some(format!("{dir}{MISSING}")),
        Some(m) if m.kind != FileKind::Dir => Some(format!("{dir} is not a directory")),
        Some(m) if m.uid != 0 => Some(format!("{dir} is owned by UID {}", m.uid)),
        Some(m) if m.mode & 0o022 != 0 => Some(format!(
            "{dir} has mode {:04o} (group or world writable)",
            m.mode
        )),
        Some(_) => None,
    })
}

/// One TMOUT-related command found in a file.
#[derive(Default)]
struct TmoutFile {
    assignments: Vec<(usize, String)>,
    readonly: bool,
    exported: bool,
}

fn tmout(facts: &Facts, max: i64, bashrc: &str) -> Result<Outcome, FactError> {
    let mut per_file: Vec<(String, TmoutFile)> = Vec::new();
    for f in system_shell_files(facts, bashrc)? {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        let mut tf = TmoutFile::default();
        for c in commands(&text, &|_| Cond::Unknown) {
            let first = c.words[0].as_str();
            let (builtin, rest) =
                if ["export", "readonly", "declare", "typeset", "local"].contains(&first) {
                    (Some(first), &c.words[1..])
                } else {
                    (None, &c.words[..])
                };
            let mut flags = String::new();
            for w in rest {
                if builtin.is_some() && w.starts_with('-') {
                    flags.push_str(&w[1..]);
                    continue;
                }
                let (name, value) = match w.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (w.as_str(), None),
                };
                if builtin.is_none() && value.is_none() {
                    break; // a command word, not an assignment
                }
                if name != "TMOUT" {
                    continue;
                }
                if let Some(v) = value {
                    tf.assignments.push((c.line, v.to_string()));
                }
                match builtin {
                    Some("export") => tf.exported = true,
                    Some("readonly") => {
                        tf.readonly = true;
                        tf.exported |= flags.contains('x');
                    }
                    Some("declare" | "typeset" | "local") => {
                        tf.readonly |= flags.contains('r');
                        tf.exported |= flags.contains('x');
                    }
                    _ => {}
                }
            }
        }
        if !tf.assignments.is_empty() || tf.readonly || tf.exported {
            per_file.push((f, tf));
        }
    }
    let mut invalid = Vec::new();
    let mut incomplete = Vec::new();
    let mut found = Vec::new();
    let mut good_file = false;
    for (f, tf) in &per_file {
        let mut good_here = false;
        for (line, raw) in &tf.assignments {
            match literal(raw).and_then(|v| v.parse::<i64>().ok()) {
                Some(n) if (1..=max).contains(&n) => {
                    good_here = true;
                    found.push(format!("{f}:{line}: TMOUT={n}"));
                }
                Some(n) => {
                    invalid.push(format!("{f}:{line}: TMOUT={n} is not between 1 and {max}"))
                }
                None => invalid.push(format!(
                    "{f}:{line}: TMOUT={raw} is not a plain number of seconds"
                )),
            }
        }
        if good_here {
            if tf.readonly && tf.exported {
                good_file = true;
                found.push(format!("{f}: TMOUT is made readonly and exported"));
            } else {
                let mut miss = Vec::new();
                if !tf.readonly {
                    miss.push("readonly");
                }
                if !tf.exported {
                    miss.push("exported");
                }
                incomplete.push(format!("{f}: TMOUT is set but not {}", miss.join(" or ")));
            }
        }
    }
    let mut failures = invalid;
    if !good_file {
        if per_file.is_empty() {
            failures.push(format!(
                "TMOUT is not set in /etc/profile, /etc/profile.d/*.sh or {bashrc}"
            ));
        } else if incomplete.is_empty() && failures.is_empty() {
            failures.push("no file sets TMOUT to a valid value".into());
        }
        failures.extend(incomplete);
    }
    Ok(Outcome::from_findings(failures, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_dirs_under_a_safe_parent() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for d in ["usr/bin", "opt/open"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::set_permissions(
            t.path().join("opt/open"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/environment"),
            "PATH=\"/usr/bin:/snap/bin\"\n",
        )
        .unwrap();
        let facts = Facts::new(t.path(), false);
        let strict = root_path(&facts, MissingDir::Fail, DEBIAN_BASHRC).unwrap();
        assert_eq!(strict.status, Status::Fail, "{:?}", strict.evidence);
        let lenient = root_path(&facts, MissingDir::SafeParent, DEBIAN_BASHRC).unwrap();
        assert_eq!(lenient.status, Status::Pass, "{:?}", lenient.evidence);
        assert!(lenient
            .evidence
            .iter()
            .any(|e| e.contains("only root can create it under /")));
        std::fs::write(
            t.path().join("etc/environment"),
            "PATH=\"/usr/bin:/opt/open/bin\"\n",
        )
        .unwrap();
        let facts = Facts::new(t.path(), false);
        let o = root_path(&facts, MissingDir::SafeParent, DEBIAN_BASHRC).unwrap();
        assert_eq!(o.status, Status::Fail, "{:?}", o.evidence);
        assert!(o
            .evidence
            .iter()
            .any(|e| e.contains("could be created by others")));
    }

    #[test]
    fn assignment_words() {
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        let c = Command {
            line: 1,
            words: vec!["export".into(), "-n".into(), "PATH=/a:$PATH".into()],
            applies: Applies::Yes,
        };
        assert_eq!(assignments(&c), vec![pair("PATH", "/a:$PATH")]);
        let c = Command {
            line: 1,
            words: vec!["A=1".into(), "PATH=/x".into(), "cmd".into()],
            applies: Applies::Yes,
        };
        assert_eq!(assignments(&c), vec![pair("A", "1"), pair("PATH", "/x")]);
        let c = Command {
            line: 1,
            words: vec!["echo".into(), "PATH=/x".into()],
            applies: Applies::Yes,
        };
        assert!(assignments(&c).is_empty());
    }
}
