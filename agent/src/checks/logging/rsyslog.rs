//! rsyslog: the modes of the files it writes, and remote logging.

use crate::checks::common::parse_mode;
use crate::facts::rsyslog::{legacy_directive, rainer_object, rsyslog};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

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
        match parse_mode(&mode) {
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
