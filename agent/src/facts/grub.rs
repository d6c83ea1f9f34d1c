//! GRUB's generated configuration (grub.cfg): its kernel lines and boot-loader
//! authentication (`set superusers=`, `password_pbkdf2`), read once per path.

use std::sync::Arc;

use crate::facts::{FactError, Facts, KeyedFact};

/// Where Debian's GRUB reads its configuration (the EFI stub chains to it).
pub const GRUB_CFG: &str = "/boot/grub/grub.cfg";

/// A kernel line of grub.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLine {
    /// `path:line`.
    pub source: String,
    /// The kernel image and its arguments, unquoted.
    pub args: Vec<String>,
}

impl KernelLine {
    /// The value of the last `name=value` argument (`""` for a bare `name`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .skip(1)
            .rev()
            .find_map(|a| match a.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if a == name => Some(""),
                _ => None,
            })
    }
}

/// What grub.cfg says about kernels and boot-loader authentication.
#[derive(Debug, Clone, Default)]
pub struct GrubCfg {
    pub path: String,
    pub kernels: Vec<KernelLine>,
    /// The last `set superusers=` (source, users).
    pub superusers: Option<(String, Vec<String>)>,
    /// `password_pbkdf2` / `password` lines: (source, command, user).
    pub passwords: Vec<(String, String, String)>,
}

/// Splits a GRUB script line into words, honouring quotes and backslashes.
pub fn grub_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Parses grub.cfg text.
pub fn parse_grub(text: &str, path: &str) -> GrubCfg {
    let mut cfg = GrubCfg {
        path: path.to_string(),
        ..Default::default()
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let source = format!("{path}:{}", n + 1);
        let words = grub_words(line);
        let Some(cmd) = words.first() else { continue };
        match cmd.as_str() {
            "linux" | "linux16" | "linuxefi" => {
                // memtest86+ is booted with `linux16`/`linux` too, but it is not Linux.
                let image = words
                    .get(1)
                    .map(|w| w.rsplit('/').next().unwrap_or(w))
                    .unwrap_or("");
                if !image.starts_with("memtest") {
                    cfg.kernels.push(KernelLine {
                        source,
                        args: words[1..].to_vec(),
                    });
                }
            }
            "set" => {
                if let Some(v) = words.get(1).and_then(|w| w.strip_prefix("superusers=")) {
                    let users = v
                        .split([' ', ',', ';', '|', '&'])
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect();
                    cfg.superusers = Some((source, users));
                }
            }
            "password_pbkdf2" | "password" => {
                if let Some(user) = words.get(1) {
                    let ok = cmd == "password"
                        || words.get(2).is_some_and(|h| h.starts_with("grub.pbkdf2."));
                    if ok {
                        cfg.passwords.push((source, cmd.clone(), user.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    cfg
}

/// grub.cfg at `path`, parsed once per scan; `None` when it does not exist.
pub fn grub_config(facts: &Facts, path: &str) -> Result<Option<Arc<GrubCfg>>, FactError> {
    Ok((*facts.get_keyed::<GrubCfgAt>(path)?).clone())
}

/// grub.cfg at a path, parsed (`None` when it does not exist), as a fact.
struct GrubCfgAt;

impl KeyedFact for GrubCfgAt {
    type Key = str;
    type Value = Option<Arc<GrubCfg>>;
    fn read(facts: &Facts, path: &str) -> Result<Self::Value, FactError> {
        Ok(facts.read(path)?.map(|t| Arc::new(parse_grub(&t, path))))
    }
}
