//! GRUB: the generated configuration, its password and file permissions.

use super::*;
use crate::facts::KeyedFact;

// ---------------------------------------------------------------------------------
// GRUB

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

pub(super) fn no_grub(path: &str) -> Outcome {
    Outcome::not_applicable(format!(
        "{path} does not exist: GRUB is not the boot loader of this system"
    ))
}

pub(super) fn grub_password(facts: &Facts, path: &str) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let users: Vec<String> = match &cfg.superusers {
        Some((src, users)) if !users.is_empty() => {
            found.push(format!("{src}: set superusers=\"{}\"", users.join(" ")));
            users.clone()
        }
        Some((src, _)) => {
            failures.push(format!("{src}: superusers is set to an empty list"));
            Vec::new()
        }
        None => {
            failures.push(format!(
                "{path} does not set superusers: anyone at the console can edit boot entries"
            ));
            Vec::new()
        }
    };
    let hashed: Vec<&(String, String, String)> = cfg
        .passwords
        .iter()
        .filter(|(_, cmd, u)| cmd == "password_pbkdf2" && users.contains(u))
        .collect();
    for (src, _, u) in &hashed {
        found.push(format!("{src}: password_pbkdf2 {u} grub.pbkdf2.… (hashed)"));
    }
    for (src, cmd, u) in cfg.passwords.iter().filter(|(_, cmd, _)| cmd == "password") {
        found.push(format!(
            "{src}: {cmd} {u} … (plain-text password, not accepted)"
        ));
    }
    if !users.is_empty() && hashed.is_empty() {
        failures.push(format!(
            "no password_pbkdf2 entry in {path} for superuser(s) {}",
            users.join(", ")
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

/// `GRUB_CMDLINE_LINUX*` assignments in /etc/default/grub and /etc/default/grub.d.
pub(super) fn default_grub_cmdlines(
    facts: &Facts,
) -> Result<Vec<(String, String, String)>, FactError> {
    let mut files = vec!["/etc/default/grub".to_string()];
    files.extend(facts.dir_files("/etc/default/grub.d", ".cfg")?);
    let mut out = Vec::new();
    for f in files {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                if k == "GRUB_CMDLINE_LINUX" || k == "GRUB_CMDLINE_LINUX_DEFAULT" {
                    let v = grub_words(v).join(" ");
                    out.push((format!("{f}:{}", n + 1), k.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn kernel_param(
    facts: &Facts,
    params: &[String],
    path: &str,
) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    if cfg.kernels.is_empty() {
        return Ok(Outcome::fail(format!("{path} has no linux kernel lines")));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for k in &cfg.kernels {
        let mut missing = Vec::new();
        for p in params {
            let (name, want) = p.split_once('=').unwrap_or((p.as_str(), ""));
            match k.param(name) {
                Some(v) if v == want => {}
                Some(v) if want.is_empty() => missing.push(format!("{name} (found {name}={v})")),
                Some(v) => missing.push(format!("{p} (found {name}={v})")),
                None => missing.push(p.clone()),
            }
        }
        let image = k.args.first().map(String::as_str).unwrap_or("");
        if missing.is_empty() {
            found.push(format!(
                "{}: linux {image} … {}",
                k.source,
                params.join(" ")
            ));
        } else {
            failures.push(format!(
                "{}: linux {image} lacks {}",
                k.source,
                missing.join(", ")
            ));
        }
    }
    if !failures.is_empty() {
        for (src, key, v) in default_grub_cmdlines(facts)? {
            let words: BTreeSet<&str> = v.split_whitespace().collect();
            if params.iter().all(|p| words.contains(p.as_str())) {
                failures.push(format!(
                    "{src}: {key} has {} but {path} was not regenerated (run update-grub)",
                    params.join(" ")
                ));
            }
        }
    }
    Ok(Outcome::from_findings(failures, found))
}
