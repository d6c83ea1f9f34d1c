//! `logging.*` checks: which logger the host uses (rsyslog or journald), the
//! effective journald settings, rsyslog's configuration, and the permissions of the
//! files under /var/log.
//!
//! The logger in use decides which half of the logging recommendations applies:
//! rsyslog is the logger when `rsyslog.service` is enabled (or, live, running);
//! otherwise journald is. [`Check::WhenLogger`] wraps any check so that it is
//! not applicable under the other logger.

use std::collections::HashSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::facts::accounts::{accounts, Accounts};
use crate::facts::kv::{self, Separator, Setting};
use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::walk::walk;
use crate::facts::{FactError, Facts, FileKind, FileMeta};
use crate::model::{Outcome, Status};

/// The two loggers a CIS Debian or Ubuntu host can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Logger {
    Journald,
    Rsyslog,
}

impl Logger {
    fn name(self) -> &'static str {
        match self {
            Logger::Journald => "journald",
            Logger::Rsyslog => "rsyslog",
        }
    }
}

/// The `logging.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// One logger is in use: rsyslog (enabled) or journald (present, not masked).
    #[serde(rename = "logging.logger_in_use")]
    LoggerInUse {},
    /// Evaluates `check` only when `logger` is the logger in use; otherwise not
    /// applicable, naming the logger that is.
    #[serde(rename = "logging.when_logger")]
    WhenLogger {
        logger: Logger,
        check: Box<super::Check>,
    },
    /// The effective value of a `[Journal]` setting of journald (journald.conf and
    /// its drop-ins, later files winning; Debian's defaults when unset) equals
    /// `value`. Booleans are compared as booleans (`yes`/`no`).
    #[serde(rename = "logging.journald")]
    Journald { key: String, value: String },
    /// Every file-creation mode rsyslog is given (`$FileCreateMode`,
    /// `fileCreateMode=` of omfile) is no looser than `max_mode`; unset means
    /// rsyslog's default 0644.
    #[serde(rename = "logging.rsyslog_file_mode")]
    RsyslogFileMode { max_mode: String },
    /// rsyslog loads no network input module (imtcp, imudp, imrelp, imptcp) and
    /// starts no network listener.
    #[serde(rename = "logging.rsyslog_no_network_input")]
    RsyslogNoNetworkInput {},
    /// When journald is set up to ship logs (systemd-journal-remote installed, or
    /// `URL=` in journal-upload.conf), the systemd-journal-remote package is
    /// installed; not applicable when journald ships nothing.
    #[serde(rename = "logging.journal_upload_package")]
    JournalUploadPackage {},
    /// Every regular file under /var/log is within the per-file allowances of mode,
    /// owner and group (see [`var_log_class`]).
    #[serde(rename = "logging.var_log_perms")]
    VarLogPerms {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        Ok(match self {
            Check::LoggerInUse {} => logger_in_use(facts)?,
            Check::WhenLogger {
                logger: want,
                check,
            } => {
                let l = logger(facts);
                let l = l.as_ref().as_ref().map_err(Clone::clone)?;
                if l.logger != *want {
                    let mut ev = l.evidence.clone();
                    ev.push(format!(
                        "{} is the logger in use, so this {} recommendation does not apply",
                        l.logger.name(),
                        want.name()
                    ));
                    return Ok(Outcome::new(Status::NotApplicable, ev));
                }
                let mut o = check.eval(facts);
                let mut ev = vec![format!("{} is the logger in use", want.name())];
                ev.append(&mut o.evidence);
                o.evidence = ev;
                o
            }
            Check::Journald { key, value } => journald_check(facts, key, value)?,
            Check::RsyslogFileMode { max_mode } => {
                let max =
                    super::file::parse_mode(max_mode).map_err(|reason| FactError::Malformed {
                        path: "content".into(),
                        reason,
                    })?;
                rsyslog_file_mode(facts, max)?
            }
            Check::RsyslogNoNetworkInput {} => rsyslog_no_network_input(facts)?,
            Check::VarLogPerms {} => var_log_perms(facts)?,
            Check::JournalUploadPackage {} => journal_upload_package(facts)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Which logger is in use

/// The logger in use and why.
#[derive(Debug, Clone)]
pub struct LoggerChoice {
    pub logger: Logger,
    pub evidence: Vec<String>,
}

/// Decides once per scan which logger is in use.
pub fn logger(facts: &Facts) -> Arc<Result<LoggerChoice, FactError>> {
    facts.memo("logging-logger", || {
        let u = unit(facts, "rsyslog.service");
        let u = u.as_ref().as_ref().map_err(Clone::clone)?;
        let mut evidence = vec![u.describe()];
        if let Ok(pk) = packages(facts).as_ref() {
            evidence.push(pk.describe("rsyslog"));
        }
        // A dangling `.wants` link (package removed, not purged) does not count.
        let on = u.exists() && !u.masked && (u.enabled() || u.active == Some(true));
        let logger = if on {
            Logger::Rsyslog
        } else {
            Logger::Journald
        };
        Ok(LoggerChoice { logger, evidence })
    })
}

fn logger_in_use(facts: &Facts) -> Result<Outcome, FactError> {
    let l = logger(facts);
    let l = l.as_ref().as_ref().map_err(Clone::clone)?;
    let mut ev = l.evidence.clone();
    if l.logger == Logger::Rsyslog {
        ev.push("rsyslog is the logger in use: the rsyslog recommendations apply, the journald ones do not".into());
        return Ok(Outcome::new(Status::Pass, ev));
    }
    let j = unit(facts, "systemd-journald.service");
    let j = j.as_ref().as_ref().map_err(Clone::clone)?;
    ev.push(j.describe());
    if j.exists() && !j.masked && j.active != Some(false) {
        ev.push("journald is the logger in use: the journald recommendations apply, the rsyslog ones do not".into());
        Ok(Outcome::new(Status::Pass, ev))
    } else {
        ev.push("neither rsyslog nor journald is in use: no logger could be determined".into());
        Ok(Outcome::new(Status::Fail, ev))
    }
}

// ---------------------------------------------------------------------------
// journald

/// Drop-in directories of journald.conf, in systemd's order of precedence.
const JOURNALD_DROPINS: [&str; 5] = [
    "/etc/systemd/journald.conf.d",
    "/run/systemd/journald.conf.d",
    "/usr/local/lib/systemd/journald.conf.d",
    "/usr/lib/systemd/journald.conf.d",
    "/lib/systemd/journald.conf.d",
];

/// The `[Journal]` settings of journald in reading order (later wins), with the
/// files read.
pub fn journald_settings(facts: &Facts) -> Arc<Result<(Vec<Setting>, Vec<String>), FactError>> {
    facts.memo("logging-journald", || {
        let dirs: Vec<&str> = JOURNALD_DROPINS
            .iter()
            .copied()
            .filter(|d| facts.is_live() || !d.starts_with("/run/"))
            .collect();
        let files = kv::read_with_dropins(facts, &["/etc/systemd/journald.conf"], &dirs, ".conf")?;
        let mut settings = Vec::new();
        let mut read = Vec::new();
        for (path, text) in files {
            settings.extend(parse_unit_ini(&text, &path, "Journal"));
            read.push(path);
        }
        Ok((settings, read))
    })
}

/// Reads one section of a systemd configuration file as systemd does: only lines
/// starting with `#` or `;` are comments (a `#` later in a line belongs to the
/// value), a trailing backslash continues the line, names and sections are
/// case-sensitive.
pub fn parse_unit_ini(text: &str, path: &str, section: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if pending.is_empty() {
            if line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            start = n + 1;
        }
        if let Some(body) = line.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let full = full.trim();
        if full.is_empty() {
            continue;
        }
        if full.starts_with('[') && full.ends_with(']') {
            current = full[1..full.len() - 1].to_string();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = full.split_once('=') {
            out.push(Setting {
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                source: format!("{path}:{start}"),
            });
        }
    }
    out
}

/// systemd's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// A size such as `512`, `4K`, `1.5M` (systemd's parse_size suffixes).
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024f64.powi(4),
        "P" => 1024f64.powi(5),
        "E" => 1024f64.powi(6),
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// How journald understands one key: its kind and Debian 12's default (Ubuntu
/// 22.04 and 24.04 build systemd from the same packaging and share them).
fn journald_key(key: &str) -> (KeyKind, Option<&'static str>) {
    match key {
        // Debian's packaging (and so Ubuntu's) patches systemd to keep forwarding
        // to syslog on by default.
        "ForwardToSyslog" => (KeyKind::Bool, Some("yes")),
        "ForwardToKMsg" | "ForwardToConsole" => (KeyKind::Bool, Some("no")),
        "ForwardToWall" => (KeyKind::Bool, Some("yes")),
        "Compress" => (KeyKind::BoolOrSize, Some("yes")),
        "Seal" => (KeyKind::Bool, Some("yes")),
        "Storage" => (
            KeyKind::Enum(&["volatile", "persistent", "auto", "none"]),
            Some("auto"),
        ),
        _ => (KeyKind::Text, None),
    }
}

#[derive(Clone, Copy)]
enum KeyKind {
    Bool,
    BoolOrSize,
    Enum(&'static [&'static str]),
    Text,
}

/// Normalises one assignment; `None` when journald would reject it (and keep the
/// previous value).
fn journald_value(kind: KeyKind, v: &str) -> Option<String> {
    match kind {
        KeyKind::Bool => parse_bool(v).map(|b| if b { "yes" } else { "no" }.to_string()),
        KeyKind::BoolOrSize => match parse_bool(v) {
            Some(b) => Some(if b { "yes" } else { "no" }.to_string()),
            None => parse_size(v).map(|_| "yes".to_string()),
        },
        KeyKind::Enum(vals) => vals.iter().find(|x| **x == v).map(|x| x.to_string()),
        KeyKind::Text => Some(v.to_string()),
    }
}

/// The effective value of `key` with evidence lines.
pub fn journald_effective(
    facts: &Facts,
    key: &str,
) -> Result<(Option<String>, Vec<String>), FactError> {
    let s = journald_settings(facts);
    let (settings, read) = s.as_ref().as_ref().map_err(Clone::clone)?;
    let (kind, default) = journald_key(key);
    let mut ev = Vec::new();
    let mut value: Option<(String, &Setting)> = None;
    for st in settings.iter().filter(|s| s.key == key) {
        // An empty assignment resets the key to its default.
        if st.value.is_empty() {
            value = None;
            continue;
        }
        match journald_value(kind, &st.value) {
            Some(v) => value = Some((v, st)),
            None => ev.push(format!(
                "{}: {}={} is not a valid value; journald ignores it",
                st.source, key, st.value
            )),
        }
    }
    if read.is_empty() {
        ev.push("no journald.conf or drop-in found".into());
    }
    Ok(match value {
        Some((v, st)) => {
            ev.insert(0, format!("{}: {}={}", st.source, key, st.value));
            (Some(v), ev)
        }
        None => {
            let d = default
                .map(|d| format!("default {d}"))
                .unwrap_or_else(|| "no default".into());
            ev.insert(
                0,
                format!(
                    "{key} not set in {}; {d}",
                    files_read(read, "journald.conf")
                ),
            );
            (default.map(String::from), ev)
        }
    })
}

fn files_read(read: &[String], what: &str) -> String {
    if read.is_empty() {
        format!("any {what}")
    } else {
        read.join(", ")
    }
}

fn journald_check(facts: &Facts, key: &str, want: &str) -> Result<Outcome, FactError> {
    let (kind, _) = journald_key(key);
    let want_n = journald_value(kind, want).unwrap_or_else(|| want.to_string());
    let (value, mut ev) = journald_effective(facts, key)?;
    let ok = match value.as_deref() {
        Some(v) if v == want_n => true,
        // Storage=auto keeps the journal on disk exactly when /var/log/journal exists.
        Some("auto") if key == "Storage" && want_n == "persistent" => {
            match facts.stat("/var/log/journal")? {
                Some(m) if m.kind == FileKind::Dir => {
                    ev.push(
                        "Storage=auto with /var/log/journal present: the journal is kept on disk"
                            .into(),
                    );
                    true
                }
                _ => {
                    ev.push(
                        "Storage=auto without /var/log/journal: the journal is kept in memory only"
                            .into(),
                    );
                    false
                }
            }
        }
        _ => false,
    };
    if !ok {
        ev.push(format!("{key} must be {want_n}"));
    }
    Ok(Outcome::new(
        if ok { Status::Pass } else { Status::Fail },
        ev,
    ))
}

/// Drop-in directories of journal-upload.conf, in systemd's order of precedence.
const UPLOAD_DROPINS: [&str; 5] = [
    "/etc/systemd/journal-upload.conf.d",
    "/run/systemd/journal-upload.conf.d",
    "/usr/local/lib/systemd/journal-upload.conf.d",
    "/usr/lib/systemd/journal-upload.conf.d",
    "/lib/systemd/journal-upload.conf.d",
];

fn journal_upload_package(facts: &Facts) -> Result<Outcome, FactError> {
    let pk = packages(facts);
    let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
    let pkg = "systemd-journal-remote";
    if pk.is_installed(pkg) {
        return Ok(Outcome::pass(pk.describe(pkg)));
    }
    let dirs: Vec<&str> = UPLOAD_DROPINS
        .iter()
        .copied()
        .filter(|d| facts.is_live() || !d.starts_with("/run/"))
        .collect();
    let files =
        kv::read_with_dropins(facts, &["/etc/systemd/journal-upload.conf"], &dirs, ".conf")?;
    let mut url: Option<Setting> = None;
    for (path, text) in &files {
        for st in parse_unit_ini(text, path, "Upload")
            .into_iter()
            .filter(|s| s.key == "URL")
        {
            url = if st.value.is_empty() { None } else { Some(st) };
        }
    }
    Ok(match url {
        Some(st) => Outcome::new(
            Status::Fail,
            vec![
                format!("{}: URL={}", st.source, st.value),
                format!(
                    "{}: journal upload is configured but cannot run",
                    pk.describe(pkg)
                ),
            ],
        ),
        None => Outcome::not_applicable(format!(
            "{} and no journal upload URL is configured: journald ships no logs to a remote host",
            pk.describe(pkg)
        )),
    })
}

// ---------------------------------------------------------------------------
// rsyslog

/// One rsyslog statement (a legacy `$Directive`, a RainerScript object such as
/// `module(...)`, or a selector line), joined across lines, comments removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    /// `path:line` of its first line.
    pub source: String,
}

/// The rsyslog configuration: statements in the order rsyslog reads them, with
/// include files expanded in place.
#[derive(Debug, Clone, Default)]
pub struct Rsyslog {
    pub statements: Vec<Statement>,
    pub files: Vec<String>,
    pub notes: Vec<String>,
}

/// Reads /etc/rsyslog.conf and its includes once per scan.
pub fn rsyslog(facts: &Facts) -> Arc<Result<Rsyslog, FactError>> {
    facts.memo("logging-rsyslog", || {
        let mut r = Rsyslog::default();
        let mut seen = HashSet::new();
        read_rsyslog_file(facts, "/etc/rsyslog.conf", 0, &mut seen, &mut r)?;
        Ok(r)
    })
}

const MAX_INCLUDE_DEPTH: usize = 16;

fn read_rsyslog_file(
    facts: &Facts,
    path: &str,
    depth: usize,
    seen: &mut HashSet<String>,
    r: &mut Rsyslog,
) -> Result<(), FactError> {
    if depth > MAX_INCLUDE_DEPTH || !seen.insert(path.to_string()) {
        r.notes.push(format!(
            "{path}: include loop or nesting too deep; not read again"
        ));
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        return Ok(());
    };
    r.files.push(path.to_string());
    for st in split_statements(&text, path) {
        match include_target(&st.text) {
            Some(target) => {
                for f in expand_include(facts, &target)? {
                    read_rsyslog_file(facts, &f, depth + 1, seen, r)?;
                }
            }
            None => r.statements.push(st),
        }
    }
    Ok(())
}

/// The path named by `$IncludeConfig` or `include(file=...)`, if `text` is one.
fn include_target(text: &str) -> Option<String> {
    if let Some((d, arg)) = legacy_directive(text) {
        return (d == "includeconfig").then(|| arg.trim().to_string());
    }
    let (name, params) = rainer_object(text)?;
    if name != "include" {
        return None;
    }
    params
        .into_iter()
        .find(|(k, _)| k == "file")
        .map(|(_, v)| v)
}

/// Files an include names: a glob, a directory (all its files), or one file.
fn expand_include(facts: &Facts, target: &str) -> Result<Vec<String>, FactError> {
    if !target.starts_with('/') {
        return Ok(Vec::new());
    }
    let hidden = |p: &String| p.rsplit('/').next().is_some_and(|n| n.starts_with('.'));
    if target.contains(['*', '?', '[']) {
        let mut v = facts.glob(target)?;
        v.retain(|p| !hidden(p));
        return Ok(v);
    }
    match facts.stat(target)? {
        Some(m) if m.kind == FileKind::Dir => facts.dir_files(target, ""),
        Some(_) => Ok(vec![target.to_string()]),
        None => Ok(Vec::new()),
    }
}

/// `$Directive args` → (lower-case directive, args).
pub fn legacy_directive(text: &str) -> Option<(String, &str)> {
    let rest = text.strip_prefix('$')?;
    let (d, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    Some((d.to_ascii_lowercase(), arg.trim()))
}

/// `name(k="v" k2="v2")` → (lower-case name, [(lower-case key, value)]).
pub fn rainer_object(text: &str) -> Option<(String, Vec<(String, String)>)> {
    let open = text.find('(')?;
    // `*.* action(...)` and `if … then action(...)`: the object is the last word.
    let name = text[..open].split_whitespace().last()?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    let body = text[open + 1..].trim_end();
    let body = body.strip_suffix(')').unwrap_or(body);
    let mut params = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.push((key, value));
        rest = tail;
    }
    Some((name.to_ascii_lowercase(), params))
}

/// Splits rsyslog text into statements: `#` comments (outside quotes) and `/* */`
/// comments removed, RainerScript objects joined until their parenthesis closes,
/// backslash continuations joined.
pub fn split_statements(text: &str, path: &str) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    let mut depth: i32 = 0;
    let mut in_block_comment = false;
    for (n, raw) in text.lines().enumerate() {
        let mut line = String::new();
        let mut in_quote = false;
        let chars: Vec<char> = raw.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if in_block_comment {
                if c == '*' && chars.get(i + 1) == Some(&'/') {
                    in_block_comment = false;
                    i += 1;
                }
                i += 1;
                continue;
            }
            if !in_quote && c == '/' && chars.get(i + 1) == Some(&'*') {
                in_block_comment = true;
                i += 2;
                continue;
            }
            if c == '"' && (i == 0 || chars[i - 1] != '\\') {
                in_quote = !in_quote;
            }
            if !in_quote && c == '#' {
                break;
            }
            if !in_quote {
                if c == '(' {
                    depth += 1;
                } else if c == ')' {
                    depth -= 1;
                }
            }
            line.push(c);
            i += 1;
        }
        let trimmed = line.trim();
        if cur.is_empty() {
            if trimmed.is_empty() {
                depth = depth.max(0);
                continue;
            }
            start = n + 1;
        } else if !trimmed.is_empty() {
            cur.push(' ');
        }
        let continued = trimmed.ends_with('\\') && depth <= 0;
        cur.push_str(trimmed.trim_end_matches('\\').trim_end());
        if depth <= 0 && !continued {
            depth = 0;
            out.push(Statement {
                text: std::mem::take(&mut cur),
                source: format!("{path}:{start}"),
            });
        }
    }
    if !cur.trim().is_empty() {
        out.push(Statement {
            text: cur,
            source: format!("{path}:{start}"),
        });
    }
    out
}

fn rsyslog_file_mode(facts: &Facts, max: u32) -> Result<Outcome, FactError> {
    let r = rsyslog(facts);
    let r = r.as_ref().as_ref().map_err(Clone::clone)?;
    if r.files.is_empty() {
        return Ok(Outcome::fail("/etc/rsyslog.conf not found"));
    }
    let mut found = Vec::new();
    for st in &r.statements {
        if let Some((d, arg)) = legacy_directive(&st.text) {
            if d == "filecreatemode" {
                found.push((
                    st.source.clone(),
                    arg.split_whitespace().next().unwrap_or("").to_string(),
                    st.text.clone(),
                ));
            }
        } else if let Some((name, params)) = rainer_object(&st.text) {
            if name == "module" || name == "action" {
                for (_, v) in params.iter().filter(|(k, _)| k == "filecreatemode") {
                    found.push((st.source.clone(), v.clone(), st.text.clone()));
                }
            }
        }
    }
    if found.is_empty() {
        return Ok(Outcome::fail(format!(
            "no $FileCreateMode or fileCreateMode= in {}; rsyslog default 0644 is looser than {max:04o}",
            r.files.join(", ")
        )));
    }
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for (src, mode, text) in found {
        match super::file::parse_mode(&mode) {
            Ok(m) if m & !max == 0 => good.push(format!("{src}: {text}")),
            Ok(m) => bad.push(format!(
                "{src}: {text} (mode {m:04o} is looser than {max:04o})"
            )),
            Err(_) => bad.push(format!("{src}: {text} (not an octal mode)")),
        }
    }
    Ok(Outcome::from_findings(bad, good))
}

/// Network input modules: loading one lets rsyslog receive logs from other hosts.
const NET_INPUTS: [&str; 5] = ["imtcp", "imudp", "imrelp", "imptcp", "imgssapi"];
/// Legacy directives that start a network listener.
const NET_LISTENERS: [&str; 6] = [
    "inputtcpserverrun",
    "udpserverrun",
    "inputudpserverrun",
    "inputrelpserverrun",
    "inputptcpserverrun",
    "inputgssserverrun",
];

fn module_name(v: &str) -> String {
    let first = v.split_whitespace().next().unwrap_or("");
    let base = first
        .trim_matches('"')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    base.strip_suffix(".so").unwrap_or(&base).to_string()
}

fn rsyslog_no_network_input(facts: &Facts) -> Result<Outcome, FactError> {
    let r = rsyslog(facts);
    let r = r.as_ref().as_ref().map_err(Clone::clone)?;
    if r.files.is_empty() {
        return Ok(Outcome::not_applicable("/etc/rsyslog.conf not found"));
    }
    let mut bad = Vec::new();
    for st in &r.statements {
        if let Some((d, arg)) = legacy_directive(&st.text) {
            let loads = d == "modload" && NET_INPUTS.contains(&module_name(arg).as_str());
            if loads || NET_LISTENERS.contains(&d.as_str()) {
                bad.push(format!("{}: {}", st.source, st.text));
            }
        } else if let Some((name, params)) = rainer_object(&st.text) {
            let hit = params.iter().any(|(k, v)| {
                (name == "module" && k == "load" || name == "input" && k == "type")
                    && NET_INPUTS.contains(&module_name(v).as_str())
            });
            if hit {
                bad.push(format!("{}: {}", st.source, st.text));
            }
        }
    }
    if bad.is_empty() {
        Ok(Outcome::pass(format!(
            "no network input module or listener in {}",
            r.files.join(", ")
        )))
    } else {
        bad.push("rsyslog accepts logs from the network; only a central log host should".into());
        Ok(Outcome::new(Status::Fail, bad))
    }
}

// ---------------------------------------------------------------------------
// /var/log permissions

/// The allowance for one log file: the mode bits that must be clear and the
/// accepted owners and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowance {
    pub mask: u32,
    pub owners: Vec<&'static str>,
    pub groups: Vec<&'static str>,
    /// Service-owned files may keep their own owner and group (see [`var_log_perms`]).
    pub service_owned_ok: bool,
}

/// The allowance for a file under /var/log, by its base name.
pub fn var_log_class(name: &str) -> Allowance {
    let a = |mask, owners: &[&'static str], groups: &[&'static str], svc| Allowance {
        mask,
        owners: owners.to_vec(),
        groups: groups.to_vec(),
        service_owned_ok: svc,
    };
    let starts = |p: &str| {
        name == p || name.starts_with(&format!("{p}.")) || name.starts_with(&format!("{p}-"))
    };
    if starts("lastlog") || starts("wtmp") || starts("btmp") || name == "README" {
        a(0o113, &["root"], &["root", "utmp"], false)
    } else if name.starts_with("cloud-init.log")
        || name.starts_with("localmessages")
        || name.starts_with("waagent.log")
    {
        a(0o133, &["root", "syslog"], &["root", "adm"], false)
    } else if starts("secure") || name == "auth.log" || name == "syslog" || name == "messages" {
        a(0o137, &["root", "syslog"], &["root", "adm"], false)
    } else if name == "SSSD" || name == "sssd" {
        a(0o117, &["root", "SSSD"], &["root", "SSSD"], false)
    } else if name == "gdm" || name == "gdm3" {
        a(0o117, &["root"], &["root", "gdm", "gdm3"], false)
    } else if name.ends_with(".journal") || name.ends_with(".journal~") {
        a(0o137, &["root"], &["root", "systemd-journal"], false)
    } else {
        a(0o137, &["root", "syslog"], &["root", "adm"], true)
    }
}

/// UID_MIN from /etc/login.defs (last setting wins; default 1000).
pub fn uid_min(facts: &Facts) -> Result<u32, FactError> {
    let Some(text) = facts.read("/etc/login.defs")? else {
        return Ok(1000);
    };
    let s = kv::parse(&text, "/etc/login.defs", Separator::Whitespace);
    Ok(kv::last(&s, "UID_MIN", false)
        .and_then(|s| s.value.parse().ok())
        .unwrap_or(1000))
}

/// Judges one file; returns the reasons it is outside its allowance.
fn judge_log_file(m: &FileMeta, acc: &Accounts, uid_min: u32) -> Vec<String> {
    let name = m.path.rsplit('/').next().unwrap_or("");
    let al = var_log_class(name);
    let user = acc.user_name(m.uid);
    let group = acc.group_name(m.gid);
    let mut owners: Vec<String> = al.owners.iter().map(|s| s.to_string()).collect();
    let mut groups: Vec<String> = al.groups.iter().map(|s| s.to_string()).collect();
    // A file owned by a system account whose group lists no members belongs to a
    // service: its owner is accepted, and so is its group unless it is the primary
    // group of an interactive user.
    if al.service_owned_ok && m.uid < uid_min {
        let grp_has_members = acc
            .group_by_gid(m.gid)
            .is_some_and(|g| !g.members.is_empty());
        if !grp_has_members {
            owners.push(user.clone());
            if !acc.users.iter().any(|u| u.gid == m.gid && u.uid >= uid_min) {
                groups.push(group.clone());
            }
        }
    }
    let mut bad = Vec::new();
    if m.mode & 0o777 & al.mask != 0 {
        bad.push(format!(
            "mode {:04o} is looser than {:04o}",
            m.mode & 0o7777,
            0o777 & !al.mask
        ));
    }
    if !owners.contains(&user) {
        bad.push(format!("owner {user} is not {}", owners.join(" or ")));
    }
    if !groups.contains(&group) {
        bad.push(format!("group {group} is not {}", groups.join(" or ")));
    }
    bad
}

/// Evidence lines listed in full before the rest is counted.
pub const MAX_LISTED: usize = 50;

fn var_log_perms(facts: &Facts) -> Result<Outcome, FactError> {
    let acc = accounts(facts);
    let acc = acc.as_ref().as_ref().map_err(Clone::clone)?;
    let min = uid_min(facts)?;
    let w = walk(facts);
    let w = w.as_ref().as_ref().map_err(Clone::clone)?;
    let mut files: Vec<&FileMeta> = w
        .var_log
        .iter()
        .filter(|m| m.kind == FileKind::File)
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.is_empty() {
        return Ok(Outcome::not_applicable("no files under /var/log"));
    }
    let mut bad = Vec::new();
    for m in &files {
        let reasons = judge_log_file(m, acc, min);
        if !reasons.is_empty() {
            bad.push(format!(
                "{}: mode {:04o}, owner {}, group {}: {}",
                m.path,
                m.mode,
                acc.user_name(m.uid),
                acc.group_name(m.gid),
                reasons.join("; ")
            ));
        }
    }
    let total = files.len();
    let errors: Vec<&String> = w
        .errors
        .iter()
        .filter(|e| e.starts_with("/var/log"))
        .collect();
    let mut ev = Vec::new();
    let n_bad = bad.len();
    if n_bad > MAX_LISTED {
        let more = n_bad - MAX_LISTED;
        bad.truncate(MAX_LISTED);
        bad.push(format!("… and {more} more"));
    }
    ev.extend(bad);
    ev.push(format!(
        "{total} files under /var/log examined, {n_bad} outside their allowance (log files: at most 0640, owner root, group root or adm; login records: 0664, group utmp; journal files: group systemd-journal)"
    ));
    for e in errors {
        ev.push(format!("could not read {e}"));
    }
    Ok(Outcome::new(
        if n_bad == 0 {
            Status::Pass
        } else {
            Status::Fail
        },
        ev,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_join_objects_and_drop_comments() {
        let t = "# comment\n$FileCreateMode 0640 # trailing\nmodule(load=\"imtcp\" # c\n  MaxSessions=\"5\")\n\
                 input(type=\"imudp\"\n port=\"514\")\n/* block\n $ModLoad imtcp\n*/\n*.* /var/log/syslog\n";
        let s = split_statements(t, "/r");
        let texts: Vec<&str> = s.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "$FileCreateMode 0640",
                "module(load=\"imtcp\" MaxSessions=\"5\")",
                "input(type=\"imudp\" port=\"514\")",
                "*.* /var/log/syslog"
            ]
        );
        assert_eq!(s[1].source, "/r:3");
        let (n, p) = rainer_object(&s[1].text).unwrap();
        assert_eq!(n, "module");
        assert_eq!(p[0], ("load".into(), "imtcp".into()));
        assert_eq!(p[1], ("maxsessions".into(), "5".into()));
        assert_eq!(
            legacy_directive("$ModLoad  imtcp.so"),
            Some(("modload".into(), "imtcp.so"))
        );
        assert_eq!(module_name("/usr/lib/rsyslog/imudp.so"), "imudp");
    }

    #[test]
    fn include_targets() {
        assert_eq!(
            include_target("$IncludeConfig /etc/rsyslog.d/*.conf").as_deref(),
            Some("/etc/rsyslog.d/*.conf")
        );
        assert_eq!(
            include_target("include(file=\"/etc/rsyslog.d/*.conf\" mode=\"optional\")").as_deref(),
            Some("/etc/rsyslog.d/*.conf")
        );
        assert_eq!(include_target("*.* /var/log/syslog"), None);
    }

    #[test]
    fn systemd_ini_comments_and_continuations() {
        let s = parse_unit_ini(
            "[Journal]\n# ForwardToSyslog=yes\nForwardToSyslog=no # off\nStorage=\\\n  persistent\n[Upload]\nURL=x\n",
            "/j",
            "Journal",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, "no # off");
        assert_eq!(s[1].value, "persistent");
        assert_eq!(s[1].source, "/j:4");
    }

    #[test]
    fn journald_values() {
        assert_eq!(journald_value(KeyKind::Bool, "On").as_deref(), Some("yes"));
        assert_eq!(journald_value(KeyKind::Bool, "maybe"), None);
        assert_eq!(
            journald_value(KeyKind::BoolOrSize, "1K").as_deref(),
            Some("yes")
        );
        assert_eq!(
            journald_value(KeyKind::BoolOrSize, "0").as_deref(),
            Some("no")
        );
        assert_eq!(
            journald_value(KeyKind::Enum(&["auto", "persistent"]), "Persistent"),
            None
        );
        assert_eq!(parse_size("1.5M"), Some(1572864));
    }

    #[test]
    fn parsers_survive_garbage() {
        let alphabet: Vec<char> = "$#()\"=/*. \nimtcp\\é\u{0}[]".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400 {
            let mut s = String::new();
            for _ in 0..(len % 80) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            for st in split_statements(&s, "/g") {
                let _ = rainer_object(&st.text);
                let _ = legacy_directive(&st.text);
                let _ = include_target(&st.text);
                let _ = module_name(&st.text);
            }
            let _ = parse_unit_ini(&s, "/g", "Journal");
            let _ = parse_size(&s);
            let _ = var_log_class(&s);
        }
    }

    #[test]
    fn log_classes() {
        assert_eq!(var_log_class("wtmp.1").mask, 0o113);
        assert_eq!(var_log_class("auth.log").mask, 0o137);
        assert!(!var_log_class("auth.log").service_owned_ok);
        assert!(var_log_class("dpkg.log").service_owned_ok);
        assert_eq!(
            var_log_class("system@abc.journal~").groups,
            vec!["root", "systemd-journal"]
        );
        assert_eq!(var_log_class("cloud-init.log.1").mask, 0o133);
    }
}
