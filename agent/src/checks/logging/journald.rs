//! journald: its configuration with drop-ins, upload and forwarding.

use super::*;
use crate::facts::Fact;

// ---------------------------------------------------------------------------
// journald

/// journald's settings in reading order, and the files read.
pub type JournaldSettings = (Vec<Setting>, Vec<String>);

/// The `[Journal]` settings of journald in reading order (later wins), with the
/// files read.
pub fn journald_settings(facts: &Facts) -> Result<Arc<JournaldSettings>, FactError> {
    facts.get::<JournaldSettings>()
}

impl Fact for JournaldSettings {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let files = kv::systemd_daemon_files(facts, "journald.conf")?;
        let mut settings = Vec::new();
        let mut read = Vec::new();
        for (path, text) in files {
            settings.extend(parse_unit_ini(&text, &path, "Journal"));
            read.push(path);
        }
        Ok((settings, read))
    }
}

/// Reads one section of a systemd configuration file as systemd does: only lines
/// starting with `#` or `;` are comments (a `#` later in a line belongs to the
/// value; a comment line inside a continued line is skipped), a trailing backslash
/// that is not itself escaped continues the line, names and sections are
/// case-sensitive.
pub fn parse_unit_ini(text: &str, path: &str, section: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut pending = String::new();
    let mut start = 0;
    // Logical lines: (first physical line, text).
    let mut logical: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        // Comment lines are skipped even inside a continued line.
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if pending.is_empty() {
            start = n + 1;
        }
        // A trailing backslash continues the line unless it is itself escaped
        // (on the line as written: a blank after the backslash ends the line).
        let mut escaped = false;
        for c in pending.chars().chain(raw.chars()) {
            escaped = !escaped && c == '\\';
        }
        if escaped {
            pending.push_str(&raw[..raw.len() - 1]);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        logical.push((start, std::mem::take(&mut pending)));
    }
    // A line still continued at the end of the file counts as it is.
    if !pending.is_empty() {
        logical.push((start, pending));
    }
    for (start, full) in logical {
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

/// A size as systemd's `parse_size` reads it (base 1024): one or more parts, each a
/// number with an optional fraction, optional blanks, and one of the suffixes E, P,
/// T, G, M, K, B or none, in decreasing order (`1G 512M`, `1.5K`, `+4K`); `None`
/// when systemd would reject it (`4k`, `1KB`, `-1`, ``).
pub(crate) fn parse_size(v: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 8] = [
        ("E", 1 << 60),
        ("P", 1 << 50),
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
        ("B", 1),
        ("", 1),
    ];
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let mut rest = v;
    let mut total: u64 = 0;
    let mut start = 0;
    loop {
        rest = rest.trim_start_matches(blank);
        // strtoull: an optional sign; a minus is refused.
        let body = match rest.strip_prefix('+') {
            Some(b) => b,
            None if rest.starts_with('-') => return None,
            None => rest,
        };
        let digits = body
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(body.len());
        if digits == 0 {
            return None;
        }
        let whole: u64 = body[..digits].parse().ok()?;
        let mut after = &body[digits..];
        let mut frac = 0f64;
        if let Some(f) = after.strip_prefix('.') {
            let n = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
            if n > 0 {
                frac = format!("0.{}", &f[..n]).parse().ok()?;
            }
            after = &f[n..];
        }
        after = after.trim_start_matches(blank);
        let i = (start..UNITS.len()).find(|&i| after.starts_with(UNITS[i].0))?;
        let (suffix, mult) = UNITS[i];
        let part = whole
            .checked_mul(mult)?
            .checked_add((frac * mult as f64) as u64)?;
        total = total.checked_add(part)?;
        rest = &after[suffix.len()..];
        start = i + 1;
        if rest.is_empty() {
            return Some(total);
        }
    }
}

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
