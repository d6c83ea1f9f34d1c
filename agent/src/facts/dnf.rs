//! dnf's configuration: the `[main]` section of /etc/dnf/dnf.conf and the repository
//! definitions dnf reads (sections of `*.repo` files in the `reposdir` directories,
//! by default /etc/yum.repos.d, /etc/yum/repos.d and /etc/distro.repos.d, and any
//! section of dnf.conf other than `[main]`).
//!
//! Files are INI text as libdnf reads them (see [`parse_sections`]). Within a section
//! the last setting of a key wins. Booleans are what libdnf accepts, in any case:
//! `1 yes true on` and `0 no false off`; anything else is invalid (libdnf then
//! ignores the value and keeps the default or the inherited one).

use std::sync::Arc;

use super::kv::Setting;
use super::{FactError, Facts, FileKind};
use crate::facts::Fact;

/// dnf's main configuration file.
pub const DNF_CONF: &str = "/etc/dnf/dnf.conf";

/// Where dnf looks for `.repo` files when `reposdir` is not set.
pub const DEFAULT_REPOSDIRS: [&str; 3] = [
    "/etc/yum.repos.d",
    "/etc/yum/repos.d",
    "/etc/distro.repos.d",
];

/// One section of an INI file, with its settings in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    /// `path:line` of the section header.
    pub source: String,
    pub settings: Vec<Setting>,
}

impl Section {
    /// The last setting of `key` in the section (later lines win).
    pub fn get(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().rev().find(|s| s.key == key)
    }
}

/// What dnf reads: its main settings and the repositories defined.
#[derive(Debug, Clone, Default)]
pub struct DnfConfig {
    /// Whether /etc/dnf/dnf.conf exists.
    pub conf_exists: bool,
    /// The `[main]` settings of dnf.conf.
    pub main: Vec<Setting>,
    /// Every repository section, in reading order.
    pub repos: Vec<Section>,
    /// The repository files read.
    pub repo_files: Vec<String>,
    /// The directories searched for repository files.
    pub reposdirs: Vec<String>,
}

impl DnfConfig {
    /// The last `[main]` setting of `key`.
    pub fn main_get(&self, key: &str) -> Option<&Setting> {
        self.main.iter().rev().find(|s| s.key == key)
    }
}

/// A boolean as libdnf reads it: `Some(true)`, `Some(false)`, or `None` if invalid.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Parses INI text into sections as libdnf's parser reads it: a comment is a line
/// whose first character is `#` or `;`; an indented line after a setting continues
/// its value (joined with a newline, so `gpgcheck=1` followed by an indented line is
/// no longer a boolean); a section name is the text between `[` and the first `]`,
/// untrimmed. Lines libdnf refuses (a setting before any section, a line without
/// `=`) are skipped.
pub fn parse_sections(text: &str, path: &str) -> Vec<Section> {
    let blank = [' ', '\t', '\r'];
    let mut out: Vec<Section> = Vec::new();
    let mut after_setting = false;
    for (n, raw) in text.lines().enumerate() {
        let raw = if n == 0 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        if raw.starts_with('#') || raw.starts_with(';') {
            continue;
        }
        let line = raw.trim_matches(blank);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            after_setting = false;
            if let Some(end) = rest.find(']') {
                out.push(Section {
                    name: rest[..end].to_string(),
                    source: format!("{path}:{}", n + 1),
                    settings: Vec::new(),
                });
            }
            continue;
        }
        let Some(section) = out.last_mut() else {
            continue;
        };
        if raw.starts_with(blank) {
            if after_setting {
                if let Some(last) = section.settings.last_mut() {
                    last.value.push('\n');
                    last.value.push_str(line);
                }
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = k.trim_end_matches([' ', '\t']);
        if key.is_empty() {
            continue;
        }
        section.settings.push(Setting {
            key: key.to_string(),
            value: v.trim_matches(blank).to_string(),
            source: format!("{path}:{}", n + 1),
        });
        after_setting = true;
    }
    out
}

/// Reads dnf's configuration once per scan.
pub fn dnf_config(facts: &Facts) -> Result<Arc<DnfConfig>, FactError> {
    facts.get::<DnfConfig>()
}

impl Fact for DnfConfig {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut cfg = DnfConfig::default();
        if let Some(text) = facts.read(DNF_CONF)? {
            cfg.conf_exists = true;
            for s in parse_sections(&text, DNF_CONF) {
                if s.name == "main" {
                    cfg.main.extend(s.settings);
                } else {
                    cfg.repos.push(s);
                }
            }
        }
        cfg.reposdirs = match cfg.main_get("reposdir") {
            Some(s) => s
                .value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|d| !d.is_empty())
                .map(|d| d.trim_end_matches('/').to_string())
                .collect(),
            None => DEFAULT_REPOSDIRS.iter().map(|d| d.to_string()).collect(),
        };
        // RHEL links /etc/yum/repos.d to /etc/yum.repos.d: each file is read once.
        let mut seen = std::collections::BTreeSet::new();
        for dir in cfg.reposdirs.clone() {
            for path in facts.dir_files(&dir, ".repo")? {
                if !facts.stat(&path)?.is_some_and(|m| m.kind == FileKind::File)
                    || !seen.insert(facts.resolve(&path, true)?)
                {
                    continue;
                }
                let Some(text) = facts.read(&path)? else {
                    continue;
                };
                cfg.repos.extend(parse_sections(&text, &path));
                cfg.repo_files.push(path);
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_and_booleans() {
        let s = parse_sections(
            "stray=1\n[main]\ngpgcheck=True\n# gpgcheck=0\n; x=y\n[baseos]\nbaseurl=http://a/\n  http://b/\n  gpgcheck = 0\ngpgcheck = 1 \r\n[ x ]\ngpgcheck=1\n\n  more\n",
            "/etc/dnf/dnf.conf",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].get("gpgcheck").unwrap().value, "True");
        assert_eq!(s[1].name, "baseos");
        // Indented lines continue the value before them; they are no settings.
        assert_eq!(
            s[1].get("baseurl").unwrap().value,
            "http://a/\nhttp://b/\ngpgcheck = 0"
        );
        assert_eq!(s[1].get("gpgcheck").unwrap().value, "1");
        assert_eq!(s[1].get("gpgcheck").unwrap().source, "/etc/dnf/dnf.conf:10");
        assert_eq!(s[2].name, " x ");
        assert_eq!(parse_bool(&s[2].get("gpgcheck").unwrap().value), None);
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool(" off "), Some(false));
        assert_eq!(parse_bool("2"), None);
    }

    #[test]
    fn hostile_text_is_read_without_panicking() {
        for a in crate::checks::NASTY_INPUTS {
            for b in crate::checks::NASTY_INPUTS {
                for text in [format!("{a}{b}"), format!("[{a}]\n{b}={a}\n")] {
                    let _ = parse_sections(&text, "/etc/yum.repos.d/x.repo");
                }
            }
        }
    }
}
