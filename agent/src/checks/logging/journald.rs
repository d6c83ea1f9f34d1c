//! journald: its configuration with drop-ins, upload and forwarding.

use serde::Deserialize;

use crate::facts::journald::{journald_settings, parse_bool, parse_size, parse_unit_ini};
use crate::facts::kv::{self, Setting};
use crate::facts::packages::packages;
use crate::facts::{FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

// ---------------------------------------------------------------------------
// journald

/// Whose built-in journald defaults apply to keys left unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournaldDefaults {
    /// Debian's packaging, shared by Ubuntu: forwarding to syslog stays on.
    #[default]
    Debian,
    /// systemd as released upstream, as RHEL 9 and Amazon Linux 2023 ship it:
    /// forwarding to syslog is off (since systemd 228).
    Upstream,
}

/// How journald understands one key: its kind and its default under `defaults`
/// (Debian 12's: Ubuntu 22.04 and 24.04 build systemd from the same packaging).
pub(super) fn journald_key(
    key: &str,
    defaults: JournaldDefaults,
) -> (KeyKind, Option<&'static str>) {
    match key {
        // Debian's packaging (and so Ubuntu's) patches systemd to keep forwarding
        // to syslog on by default; upstream turned it off.
        "ForwardToSyslog" => match defaults {
            JournaldDefaults::Debian => (KeyKind::Bool, Some("yes")),
            JournaldDefaults::Upstream => (KeyKind::Bool, Some("no")),
        },
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
pub(super) enum KeyKind {
    Bool,
    BoolOrSize,
    Enum(&'static [&'static str]),
    Text,
}

/// Normalises one assignment; `None` when journald would reject it (and keep the
/// previous value).
pub(super) fn journald_value(kind: KeyKind, v: &str) -> Option<String> {
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
    defaults: JournaldDefaults,
) -> Result<(Option<String>, Vec<String>), FactError> {
    let s = journald_settings(facts)?;
    let (settings, read) = &*s;
    let (kind, default) = journald_key(key, defaults);
    let mut ev = Vec::new();
    let mut value: Option<(String, &Setting)> = None;
    for st in settings.iter().filter(|s| s.key == key) {
        // An empty assignment resets Compress (and keys read as text) to the
        // default; journald 252 rejects it for a boolean or Storage, keeping the
        // previous value.
        if st.value.is_empty() && matches!(kind, KeyKind::BoolOrSize | KeyKind::Text) {
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

pub(super) fn files_read(read: &[String], what: &str) -> String {
    if read.is_empty() {
        format!("any {what}")
    } else {
        read.join(", ")
    }
}

pub fn journald_check(
    facts: &Facts,
    key: &str,
    want: &str,
    defaults: JournaldDefaults,
) -> Result<Outcome, FactError> {
    let (kind, _) = journald_key(key, defaults);
    let want_n = journald_value(kind, want).unwrap_or_else(|| want.to_string());
    let (value, mut ev) = journald_effective(facts, key, defaults)?;
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
pub(super) const UPLOAD_DROPINS: [&str; 5] = [
    "/etc/systemd/journal-upload.conf.d",
    "/run/systemd/journal-upload.conf.d",
    "/usr/local/lib/systemd/journal-upload.conf.d",
    "/usr/lib/systemd/journal-upload.conf.d",
    "/lib/systemd/journal-upload.conf.d",
];

pub(super) fn journal_upload_package(facts: &Facts) -> Result<Outcome, FactError> {
    let pk = packages(facts)?;
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
