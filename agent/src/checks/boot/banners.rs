//! Login banners: /etc/motd, /etc/issue and /etc/issue.net.

use std::collections::BTreeSet;

use crate::facts::{strip_comment, FactError, Facts, FileKind};
use crate::model::Outcome;

// ---------------------------------------------------------------------------------
// Banners

/// The os-release `ID` of the root (lower case), if known.
pub fn os_id(facts: &Facts) -> Result<Option<String>, FactError> {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(text) = facts.read(p)? {
            for line in text.lines() {
                if let Some(v) = line.trim().strip_prefix("ID=") {
                    let v = v.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
                    return Ok((!v.is_empty()).then_some(v));
                }
            }
            return Ok(None);
        }
    }
    Ok(None)
}

/// The operating system names a banner must not mention: `names` and the
/// os-release `ID`, lower case.
pub(super) fn os_names(facts: &Facts, names: &[String]) -> Result<Vec<String>, FactError> {
    let mut out: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(id) = os_id(facts)? {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Lines of banner text that identify the system: `\m \r \s \v` escapes (with
/// `escapes`) or an operating system name.
pub(super) fn identifying_lines(
    text: &str,
    path: &str,
    names: &[String],
    escapes: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let found: Vec<String> = b
            .windows(2)
            .filter(|w| {
                escapes
                    && w[0] == b'\\'
                    && matches!(w[1].to_ascii_lowercase(), b'm' | b'r' | b's' | b'v')
            })
            .map(|w| format!("\\{}", w[1] as char))
            .collect();
        if !found.is_empty() {
            failures.push(format!(
                "{path}:{}: {} shows system information ({})",
                n + 1,
                line.trim(),
                found.join(" ")
            ));
        }
        let lower = line.to_ascii_lowercase();
        if let Some(id) = names.iter().find(|n| names_word(&lower, n)) {
            failures.push(format!(
                "{path}:{}: {} names the operating system ({id})",
                n + 1,
                line.trim()
            ));
        }
    }
    failures
}

/// Whether `text` mentions `name` as a word of its own: not inside a longer word, so
/// that Oracle Linux's ID `ol` is not found in "control" or "policy". Digits may
/// touch the name (`rhel9`, `Ubuntu22.04`).
pub(super) fn names_word(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let letter = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphabetic());
    text.match_indices(name).any(|(i, m)| {
        !letter(text[..i].chars().next_back()) && !letter(text[i + m.len()..].chars().next())
    })
}

pub(super) fn banner(
    facts: &Facts,
    path: &str,
    require_text: bool,
    names: &[String],
    dirs: &[String],
) -> Result<Outcome, FactError> {
    let os_names = os_names(facts, names)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    match facts.read(path)? {
        None if require_text => {
            failures.push(format!("{path} does not exist: no warning banner is shown"))
        }
        None => found.push(format!("{path} does not exist")),
        Some(text) if text.trim().is_empty() => {
            if require_text {
                failures.push(format!("{path} is empty: no warning banner is shown"));
            } else {
                found.push(format!("{path} is empty"));
            }
        }
        Some(text) => judge_banner_text(&text, path, &os_names, &mut failures, &mut found),
    }
    for dir in dirs {
        let dir = dir.trim_end_matches('/');
        let mut judged = 0;
        for name in facts.list_dir(dir)? {
            if name.starts_with('.') {
                continue;
            }
            let file = format!("{dir}/{name}");
            if !facts.stat(&file)?.is_some_and(|m| m.kind == FileKind::File) {
                continue;
            }
            judged += 1;
            match facts.read(&file)? {
                Some(text) if !text.trim().is_empty() => {
                    judge_banner_text(&text, &file, &os_names, &mut failures, &mut found)
                }
                _ => found.push(format!("{file} is empty")),
            }
        }
        if judged == 0 {
            found.push(format!("no file in {dir}"));
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

/// Judges one file of banner text: its identifying lines are failures, else one
/// line of evidence that it holds none.
fn judge_banner_text(
    text: &str,
    path: &str,
    os_names: &[String],
    failures: &mut Vec<String>,
    found: &mut Vec<String>,
) {
    let bad = identifying_lines(text, path, os_names, true);
    if bad.is_empty() {
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        found.push(format!(
            "{path}: {lines} line(s) of text without operating system identification"
        ));
    }
    failures.extend(bad);
}

pub(super) const UPDATE_MOTD_DIR: &str = "/etc/update-motd.d";
pub(super) const MOTD_DYNAMIC: &str = "/run/motd.dynamic";

/// Words in an update-motd script that mean it prints system identification.
pub(super) const IDENTIFYING_COMMANDS: [&str; 6] = [
    "uname",
    "lsb_release",
    "lsb-release",
    "os-release",
    "distrib_",
    "/proc/version",
];

/// Whether run-parts (`--lsbsysinit`, as pam_motd calls it) runs a file of this
/// name: Debian's cron-script names (`[A-Za-z0-9_-]+`), or LSB hierarchical names
/// (`_?([a-z0-9_.]+-)+[a-z0-9]+`), never dpkg's leftovers.
pub(super) fn run_parts_name(name: &str) -> bool {
    if [".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return false;
    }
    let cron = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if cron {
        return true;
    }
    let lsb = name.strip_prefix('_').unwrap_or(name);
    let Some((groups, last)) = lsb.rsplit_once('-') else {
        return false;
    };
    let low = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !last.is_empty()
        && last.bytes().all(low)
        && groups
            .split('-')
            .all(|g| !g.is_empty() && g.bytes().all(|b| low(b) || b == b'_' || b == b'.'))
}

/// pam_motd lines that run the update-motd scripts (no `noupdate` argument).
pub(super) fn pam_motd_updaters(facts: &Facts) -> Result<Vec<String>, FactError> {
    let mut out = Vec::new();
    for path in ["/etc/pam.d/login", "/etc/pam.d/sshd"] {
        let Some(text) = facts.read(path)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(i) = words
                .iter()
                .position(|w| w.rsplit('/').next() == Some("pam_motd.so"))
            else {
                continue;
            };
            if !words[i + 1..].contains(&"noupdate") {
                out.push(format!("{path}:{}: {}", n + 1, words.join(" ")));
            }
        }
    }
    Ok(out)
}

pub(super) fn dynamic_motd(facts: &Facts, names: &[String]) -> Result<Outcome, FactError> {
    let updaters = pam_motd_updaters(facts)?;
    if updaters.is_empty() {
        return Ok(Outcome::pass(format!(
            "no pam_motd line in /etc/pam.d/login or /etc/pam.d/sshd runs the scripts of {UPDATE_MOTD_DIR} (absent, or with noupdate): no dynamic message of the day is generated"
        )));
    }
    let os_names = os_names(facts, names)?;
    let mut failures = Vec::new();
    let mut found = updaters
        .iter()
        .map(|u| format!("{u}: runs the scripts of {UPDATE_MOTD_DIR} at login"))
        .collect::<Vec<_>>();
    let mut judged = 0;
    for name in facts.list_dir(UPDATE_MOTD_DIR)? {
        if !run_parts_name(&name) {
            continue;
        }
        let path = format!("{UPDATE_MOTD_DIR}/{name}");
        let Some(m) = facts.stat(&path)? else {
            continue;
        };
        if m.kind != FileKind::File || m.mode & 0o111 == 0 {
            continue;
        }
        judged += 1;
        let text = facts.read(&path)?.unwrap_or_default();
        let mut hits: BTreeSet<String> = BTreeSet::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') {
                continue;
            }
            let lower = t.to_ascii_lowercase();
            let words = IDENTIFYING_COMMANDS
                .iter()
                .copied()
                .chain(os_names.iter().map(String::as_str));
            for w in words {
                if lower.contains(w) {
                    hits.insert(w.to_string());
                }
            }
        }
        if hits.is_empty() {
            found.push(format!(
                "{path} (mode {:04o}) prints no operating system identification",
                m.mode
            ));
        } else {
            failures.push(format!(
                "{path} (mode {:04o}) runs at login and prints system identification (uses {})",
                m.mode,
                hits.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if judged == 0 {
        found.push(format!("no executable script in {UPDATE_MOTD_DIR}"));
    }
    if facts.is_live() {
        match facts.read_runtime(MOTD_DYNAMIC)? {
            Some(text) => {
                let bad = identifying_lines(&text, MOTD_DYNAMIC, &os_names, false);
                if bad.is_empty() {
                    found.push(format!(
                        "{MOTD_DYNAMIC} (the last generated message) names no operating system"
                    ));
                }
                failures.extend(bad);
            }
            None => found.push(format!("{MOTD_DYNAMIC} does not exist")),
        }
    } else {
        found.push(format!(
            "{MOTD_DYNAMIC} (generated at login) not examined: offline root; the scripts that generate it were judged"
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}
