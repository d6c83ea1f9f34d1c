//! journald's configuration (journald.conf and its drop-ins, read as systemd reads
//! them), and systemd's INI syntax, boolean and size values that other systemd
//! configuration shares.

use crate::facts::kv::{self, Setting};
use crate::facts::{Fact, FactError, Facts};
use std::sync::Arc;

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
pub fn parse_size(v: &str) -> Option<u64> {
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
