//! Kernel arguments of GRUB 2 on RHEL-family systems (RHEL 9, Amazon Linux 2023):
//! Boot Loader Specification entries (`/boot/loader/entries/*.conf`, whose `options`
//! lines hold the arguments, possibly through `$kernelopts`-style variables kept in
//! `/boot/grub2/grubenv`), and `/etc/default/grub`, which grub2-mkconfig and new
//! kernels take their arguments from.

use super::grub::grub_config;
use super::{strip_comment, FactError, Facts};

/// Where BLS entries live.
pub const BLS_DIR: &str = "/boot/loader/entries";
/// GRUB's environment block: variables the BLS `options` lines may refer to.
pub const GRUBENV: &str = "/boot/grub2/grubenv";
/// RHEL 9's and Amazon Linux 2023's generated GRUB configuration.
pub const GRUB2_CFG: &str = "/boot/grub2/grub.cfg";

/// At most this many entries are read (a host keeps a handful of kernels).
pub const MAX_ENTRIES: usize = 256;

/// One boot entry and the kernel arguments it passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// The entry file (or `path:line` of a grub.cfg kernel line).
    pub source: String,
    /// Its `title` (or the kernel image), for evidence.
    pub title: String,
    /// The arguments after variable expansion.
    pub args: Vec<String>,
    /// Variables the options refer to that grubenv does not set (they expand to nothing).
    pub unset_vars: Vec<String>,
}

impl BootEntry {
    /// The value of the last `name=value` argument (`""` for a bare `name`).
    pub fn param(&self, name: &str) -> Option<&str> {
        param_in(&self.args, name)
    }
}

/// The value of the last `name=value` argument in `args` (`""` for a bare `name`).
pub fn param_in<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().rev().find_map(|a| match a.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        None if a == name => Some(""),
        _ => None,
    })
}

/// Parses grubenv: `name=value` lines; `#` lines are comments and padding.
pub fn parse_grubenv(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Expands `$name` / `${name}` words of an options string against `env`; returns
/// the arguments and the names that were not set.
pub fn expand_options(options: &[String], env: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut args = Vec::new();
    let mut unset = Vec::new();
    for word in options.iter().flat_map(|o| o.split_whitespace()) {
        let var = word
            .strip_prefix("${")
            .and_then(|w| w.strip_suffix('}'))
            .or_else(|| word.strip_prefix('$'));
        match var {
            Some(name) if !name.is_empty() => match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => args.extend(v.split_whitespace().map(String::from)),
                None => unset.push(name.to_string()),
            },
            _ => args.push(word.to_string()),
        }
    }
    (args, unset)
}

/// Parses one BLS entry file.
pub fn parse_bls(text: &str, path: &str, env: &[(String, String)]) -> BootEntry {
    let mut title = String::new();
    let mut linux = String::new();
    let mut options = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        match key {
            "title" => title = value.to_string(),
            "linux" => linux = value.to_string(),
            "options" => options.push(value.to_string()),
            _ => {}
        }
    }
    let (args, unset_vars) = expand_options(&options, env);
    BootEntry {
        source: path.to_string(),
        title: if title.is_empty() { linux } else { title },
        args,
        unset_vars,
    }
}

/// The grubenv variables, empty when grubenv does not exist.
pub fn grubenv(facts: &Facts) -> Result<Vec<(String, String)>, FactError> {
    Ok(facts
        .read(GRUBENV)?
        .map(|t| parse_grubenv(&t))
        .unwrap_or_default())
}

/// The BLS entries under /boot/loader/entries (sorted by file name, at most
/// [`MAX_ENTRIES`]); empty when there are none.
pub fn bls_entries(facts: &Facts) -> Result<Vec<BootEntry>, FactError> {
    let files = facts.dir_files(BLS_DIR, ".conf")?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let env = grubenv(facts)?;
    let mut out = Vec::new();
    for f in files.into_iter().take(MAX_ENTRIES) {
        if let Some(text) = facts.read(&f)? {
            out.push(parse_bls(&text, &f, &env));
        }
    }
    Ok(out)
}

/// `GRUB_CMDLINE_LINUX` and `GRUB_CMDLINE_LINUX_DEFAULT` in /etc/default/grub:
/// (`path:line`, key, words).
pub fn default_grub_cmdline(
    facts: &Facts,
) -> Result<Vec<(String, String, Vec<String>)>, FactError> {
    let path = "/etc/default/grub";
    let Some(text) = facts.read(path)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k == "GRUB_CMDLINE_LINUX" || k == "GRUB_CMDLINE_LINUX_DEFAULT" {
            let v = v.trim().trim_matches(['"', '\'']);
            out.push((
                format!("{path}:{}", n + 1),
                k.to_string(),
                v.split_whitespace().map(String::from).collect(),
            ));
        }
    }
    Ok(out)
}

/// The boot entries GRUB 2 on RHEL-family systems boots, and where they were read: BLS
/// entries, else the kernel lines of /boot/grub2/grub.cfg; none when neither exists.
pub fn boot_entries(facts: &Facts) -> Result<(Vec<BootEntry>, String), FactError> {
    let bls = bls_entries(facts)?;
    if !bls.is_empty() {
        return Ok((bls, format!("{BLS_DIR}/*.conf")));
    }
    let Some(cfg) = grub_config(facts, GRUB2_CFG)? else {
        return Ok((Vec::new(), String::new()));
    };
    let env = grubenv(facts)?;
    let out = cfg
        .kernels
        .iter()
        .map(|k| {
            let (args, unset_vars) = expand_options(&k.args[1.min(k.args.len())..], &env);
            BootEntry {
                source: k.source.clone(),
                title: k.args.first().cloned().unwrap_or_default(),
                args,
                unset_vars,
            }
        })
        .collect();
    Ok((out, GRUB2_CFG.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bls_and_grubenv() {
        let env = parse_grubenv(
            "# GRUB Environment Block\nsaved_entry=abc\nkernelopts=root=/dev/vda1 ro audit=1\n####\n",
        );
        let e = parse_bls(
            "title Red Hat Enterprise Linux (5.14.0) 9.4\nversion 5.14.0\nlinux /vmlinuz-5.14.0\noptions $kernelopts $tuned_params\noptions audit_backlog_limit=8192\n",
            "/boot/loader/entries/x.conf",
            &env,
        );
        assert_eq!(e.param("audit"), Some("1"));
        assert_eq!(e.param("audit_backlog_limit"), Some("8192"));
        assert_eq!(e.param("ro"), Some(""));
        assert_eq!(e.unset_vars, ["tuned_params"]);
        assert!(e.title.starts_with("Red Hat"));
        let (a, u) = expand_options(&["${kernelopts} x=1".into()], &env);
        assert!(a.contains(&"x=1".to_string()) && a.contains(&"audit=1".to_string()));
        assert!(u.is_empty());
        for s in crate::checks::NASTY_INPUTS {
            let _ = parse_grubenv(s);
            let _ = parse_bls(s, "/x", &env);
            let _ = expand_options(&[s.to_string()], &env);
        }
    }
}
