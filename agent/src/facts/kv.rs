//! Small parsers shared by many probes: `key value` and `key = value` files, and
//! drop-in directories read in the order their programs read them.

use super::{strip_comment, FactError, Facts};

/// C's `isspace` in the C locale: a vertical tab and a form feed are blanks, a
/// no-break space is not (how the C programs whose files we read split them).
pub fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// One setting found in a configuration file, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: String,
    /// `path:line` where the setting was read.
    pub source: String,
}

impl Setting {
    /// `path:line: key value` for evidence.
    pub fn describe(&self) -> String {
        format!("{}: {} = {}", self.source, self.key, self.value)
    }
}

/// How keys and values are separated in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Separator {
    /// `KEY VALUE` (login.defs, sshd_config).
    Whitespace,
    /// `key = value` (pwquality.conf, auditd.conf, journald.conf).
    Equals,
}

/// Parses every setting in `text`. Lines without a key are skipped; `[section]`
/// headers are ignored (use [`parse_ini`] when sections matter).
pub fn parse(text: &str, path: &str, sep: Separator) -> Vec<Setting> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.is_empty() || line.starts_with('[') || line.starts_with(';') {
            continue;
        }
        let (key, value) = match sep {
            Separator::Whitespace => match line.split_once(|c: char| c.is_whitespace()) {
                Some((k, v)) => (k, v.trim()),
                None => (line, ""),
            },
            Separator::Equals => match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (line, ""),
            },
        };
        out.push(Setting {
            key: key.to_string(),
            value: unquote(value).to_string(),
            source: format!("{path}:{}", n + 1),
        });
    }
    out
}

/// Parses an INI-style file, keeping only the keys of `[section]` (case-sensitive).
pub fn parse_ini(text: &str, path: &str, section: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut current = String::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            current = line[1..line.len() - 1].trim().to_string();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push(Setting {
                key: k.trim().to_string(),
                value: unquote(v.trim()).to_string(),
                source: format!("{path}:{}", n + 1),
            });
        }
    }
    out
}

fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2
        && ((b[0] == b'"' && b[b.len() - 1] == b'"') || (b[0] == b'\'' && b[b.len() - 1] == b'\''))
    {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Reads `main` (if present) and then every `*suffix` file of each drop-in directory,
/// in systemd's order: drop-ins sorted by file name across directories, a name in an
/// earlier directory hiding the same name in a later one. Returns (path, text) pairs
/// in reading order.
pub fn read_with_dropins(
    facts: &Facts,
    main: &[&str],
    dropin_dirs: &[&str],
    suffix: &str,
) -> Result<Vec<(String, std::sync::Arc<str>)>, FactError> {
    let mut out = Vec::new();
    for m in main {
        if let Some(t) = read_unless_masked(facts, m)? {
            out.push((m.to_string(), t));
            break;
        }
    }
    for path in dropin_files(facts, dropin_dirs, suffix)? {
        if let Some(t) = read_unless_masked(facts, &path)? {
            out.push((path, t));
        }
    }
    Ok(out)
}

/// A configuration file's text, empty when it is a link to `/dev/null` (or another
/// device): systemd's way of masking a file, read as empty, never opened.
fn read_unless_masked(facts: &Facts, path: &str) -> Result<Option<std::sync::Arc<str>>, FactError> {
    match facts.stat(path)? {
        Some(m) if m.kind == super::FileKind::Other => Ok(Some(std::sync::Arc::from(""))),
        _ => facts.read(path),
    }
}

/// The files a systemd daemon reads for `conf` (`journald.conf`, `coredump.conf`,
/// `timesyncd.conf`, …), in its order: the main file only from /etc/systemd (systemd
/// 252 looks nowhere else for it, although `systemd-analyze cat-config` also shows
/// one in /usr/lib), then the `conf.d` drop-ins of /etc, /run (live hosts only: an
/// offline root's /run is empty at boot), /usr/local/lib, /usr/lib and /lib.
pub fn systemd_daemon_files(
    facts: &Facts,
    conf: &str,
) -> Result<Vec<(String, std::sync::Arc<str>)>, FactError> {
    let dirs: Vec<String> = ["/etc", "/run", "/usr/local/lib", "/usr/lib", "/lib"]
        .iter()
        .filter(|d| facts.is_live() || **d != "/run")
        .map(|d| format!("{d}/systemd/{conf}.d"))
        .collect();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    read_with_dropins(facts, &[&format!("/etc/systemd/{conf}")], &dirs, ".conf")
}

/// Files ending in `suffix` across drop-in directories, in systemd's (and kmod's)
/// order: sorted by file name, a name in an earlier directory hiding the same name
/// in a later one.
pub fn dropin_files(facts: &Facts, dirs: &[&str], suffix: &str) -> Result<Vec<String>, FactError> {
    let mut by_name: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for dir in dirs {
        for path in facts.dir_files(dir, suffix)? {
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            by_name.entry(name).or_insert(path);
        }
    }
    Ok(by_name.into_values().collect())
}

/// The last value of `key` over settings read in order (later wins), compared
/// with `key_eq` (case-insensitive when `ci`).
pub fn last<'a>(settings: &'a [Setting], key: &str, ci: bool) -> Option<&'a Setting> {
    settings.iter().rev().find(|s| {
        if ci {
            s.key.eq_ignore_ascii_case(key)
        } else {
            s.key == key
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_separators_and_comments() {
        let s = parse(
            "PASS_MAX_DAYS\t365 # yearly\n# x\nUMASK 027\n",
            "/etc/login.defs",
            Separator::Whitespace,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, "365");
        assert_eq!(s[1].source, "/etc/login.defs:3");
        let s = parse("minlen = 14\ndictcheck=1\n", "/p", Separator::Equals);
        assert_eq!(last(&s, "dictcheck", false).unwrap().value, "1");
    }

    #[test]
    fn ini_sections() {
        let s = parse_ini(
            "[Journal]\nStorage=persistent\n[Other]\nStorage=volatile\n",
            "/j",
            "Journal",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].value, "persistent");
    }
}
