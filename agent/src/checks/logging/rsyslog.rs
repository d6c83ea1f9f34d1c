//! rsyslog: configuration, includes, file modes and remote logging.

use super::*;
use crate::facts::Fact;

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
pub fn rsyslog(facts: &Facts) -> Result<Arc<Rsyslog>, FactError> {
    facts.get::<Rsyslog>()
}

impl Fact for Rsyslog {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut r = Rsyslog::default();
        let mut seen = HashSet::new();
        read_rsyslog_file(facts, "/etc/rsyslog.conf", 0, &mut seen, &mut r)?;
        Ok(r)
    }
}

pub(super) const MAX_INCLUDE_DEPTH: usize = 16;

pub(super) fn read_rsyslog_file(
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
pub(super) fn include_target(text: &str) -> Option<String> {
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
pub(super) fn expand_include(facts: &Facts, target: &str) -> Result<Vec<String>, FactError> {
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

pub(super) fn rsyslog_file_mode(facts: &Facts, max: u32) -> Result<Outcome, FactError> {
    let r = rsyslog(facts)?;
    if r.files.is_empty() {
        return Ok(Outcome::fail("/etc/rsyslog.conf not found"));
    }
    // A mode set for every file (the omfile module's parameter, or $FileCreateMode
    // before the first file action: the legacy directive only reaches actions after it)
    // can make the rule pass; one set on a single action can only make it fail.
    let mut found = Vec::new(); // (source, mode, text, covers every file)
    let mut file_action_seen = false;
    for st in &r.statements {
        if let Some((d, arg)) = legacy_directive(&st.text) {
            if d == "filecreatemode" {
                found.push((
                    st.source.clone(),
                    arg.split_whitespace().next().unwrap_or("").to_string(),
                    st.text.clone(),
                    !file_action_seen,
                ));
            }
        } else if let Some((name, params)) = rainer_object(&st.text) {
            let omfile = params
                .iter()
                .any(|(k, v)| k == "type" && v.eq_ignore_ascii_case("omfile"));
            if name == "action" && omfile {
                file_action_seen = true;
            }
            if name == "module" || name == "action" {
                for (_, v) in params.iter().filter(|(k, _)| k == "filecreatemode") {
                    found.push((
                        st.source.clone(),
                        v.clone(),
                        st.text.clone(),
                        name == "module",
                    ));
                }
            }
        } else if writes_file(&st.text) {
            file_action_seen = true;
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
    let mut covered = false;
    for (src, mode, text, global) in found {
        match crate::checks::file::parse_mode(&mode) {
            Ok(m) if m & !max == 0 => {
                covered |= global;
                let scope = if global { "" } else { " (this action only)" };
                good.push(format!("{src}: {text}{scope}"));
            }
            Ok(m) => bad.push(format!(
                "{src}: {text} (mode {m:04o} is looser than {max:04o})"
            )),
            Err(_) => bad.push(format!("{src}: {text} (not an octal mode)")),
        }
    }
    if !covered && bad.is_empty() {
        bad.push(format!(
            "no mode covers every log file: the settings found apply to single actions, or \
             $FileCreateMode comes after file actions it does not reach; the others are \
             created with rsyslog's default 0644, looser than {max:04o}"
        ));
    }
    Ok(Outcome::from_findings(bad, good))
}

/// Whether a legacy selector line writes to a file (`auth.* /var/log/auth.log`, `-/path`).
fn writes_file(text: &str) -> bool {
    let t = text.trim();
    if t.starts_with(['$', '#']) || t.contains('(') {
        return false;
    }
    t.split_whitespace()
        .nth(1)
        .is_some_and(|a| a.starts_with('/') || a.starts_with("-/"))
}

/// Network input modules: loading one lets rsyslog receive logs from other hosts.
pub(super) const NET_INPUTS: [&str; 5] = ["imtcp", "imudp", "imrelp", "imptcp", "imgssapi"];
/// Legacy directives that start a network listener.
pub(super) const NET_LISTENERS: [&str; 6] = [
    "inputtcpserverrun",
    "udpserverrun",
    "inputudpserverrun",
    "inputrelpserverrun",
    "inputptcpserverrun",
    "inputgssserverrun",
];

pub(super) fn module_name(v: &str) -> String {
    let first = v.split_whitespace().next().unwrap_or("");
    let base = first
        .trim_matches('"')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    base.strip_suffix(".so").unwrap_or(&base).to_string()
}

pub(super) fn rsyslog_no_network_input(facts: &Facts) -> Result<Outcome, FactError> {
    let r = rsyslog(facts)?;
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

/// Output modules that send messages to another host.
pub(super) const NET_OUTPUTS: [&str; 2] = ["omfwd", "omrelp"];

/// Whether a statement sends messages to another host: an `action(type="omfwd"
/// target=…)` (or omrelp) with a target, or a legacy selector whose action is
/// `@host` (UDP), `@@host` (TCP) or `:omrelp:host`.
pub(super) fn forwards(text: &str) -> bool {
    if let Some((name, params)) = rainer_object(text) {
        if name == "action" {
            let kind = params
                .iter()
                .find(|(k, _)| k == "type")
                .map(|(_, v)| module_name(v));
            let target = params
                .iter()
                .any(|(k, v)| k == "target" && !v.trim().is_empty());
            return kind.is_some_and(|k| NET_OUTPUTS.contains(&k.as_str())) && target;
        }
        return false;
    }
    if text.starts_with('$') {
        return false;
    }
    let mut toks = text.split_whitespace();
    let (Some(_selector), Some(action)) = (toks.next(), toks.next()) else {
        return false;
    };
    let action = action.trim_start_matches('-');
    let host = action
        .strip_prefix("@@")
        .or_else(|| action.strip_prefix('@'))
        .or_else(|| action.strip_prefix(":omrelp:"));
    host.is_some_and(|h| {
        let h = h.trim_start_matches(['(', '@']);
        !h.is_empty() && !h.starts_with(':')
    })
}

pub(super) fn rsyslog_forwards(facts: &Facts) -> Result<Outcome, FactError> {
    let r = rsyslog(facts)?;
    if r.files.is_empty() {
        return Ok(Outcome::fail(
            "/etc/rsyslog.conf not found: rsyslog sends no logs to a log host",
        ));
    }
    let hits: Vec<String> = r
        .statements
        .iter()
        .filter(|st| forwards(&st.text))
        .map(|st| format!("{}: {}", st.source, st.text))
        .collect();
    if hits.is_empty() {
        return Ok(Outcome::fail(format!(
            "no forwarding action (omfwd or omrelp with a target, or a selector sending to @host) in {}",
            r.files.join(", ")
        )));
    }
    Ok(Outcome::new(Status::Pass, hits))
}
