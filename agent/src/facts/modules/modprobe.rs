//! modprobe configuration as kmod reads it: files, logical lines, directives, and
//! the lookups the checks and `facts modules` make in it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::underscores;
use crate::facts::KeyedFact;
use crate::facts::{fnmatch, FactError, Facts, FileKind};

/// Directories kmod reads, highest precedence first.
pub const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

/// The commands of modprobe configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Alias,
    Blacklist,
    Options,
    Install,
    Remove,
    Softdep,
}

impl Keyword {
    fn parse(word: &str) -> Option<Keyword> {
        Some(match word {
            "alias" => Keyword::Alias,
            "blacklist" => Keyword::Blacklist,
            "options" => Keyword::Options,
            "install" => Keyword::Install,
            "remove" => Keyword::Remove,
            "softdep" => Keyword::Softdep,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Alias => "alias",
            Keyword::Blacklist => "blacklist",
            Keyword::Options => "options",
            Keyword::Install => "install",
            Keyword::Remove => "remove",
            Keyword::Softdep => "softdep",
        }
    }
}

/// One directive of modprobe configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub keyword: Keyword,
    /// The module name or (glob) pattern, with `-` read as `_` (for `alias`: the
    /// alias pattern).
    pub module: String,
    /// The rest of the line: the command of an `install`/`remove`, the options, the
    /// soft dependencies, the module an `alias` names.
    pub rest: String,
    /// `path:line`.
    pub source: String,
    /// The line as written (continuations joined).
    pub text: String,
}

impl Directive {
    /// `path:line: text`, for evidence.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.source, self.text)
    }
}

/// The lines of a modprobe configuration file as kmod reads them (see the module
/// documentation), each with the number of its first physical line. A backslash at
/// the very end of the file reads as a byte no name has (kmod stores `EOF` there).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut line = String::new();
    let (mut number, mut start) = (1, 1);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                out.push((start, std::mem::take(&mut line)));
                number += 1;
                start = number;
            }
            '\\' => match chars.next() {
                Some('\n') => number += 1,
                Some(c) => line.push(c),
                None => line.push(char::REPLACEMENT_CHARACTER),
            },
            c => line.push(c),
        }
    }
    if !line.is_empty() {
        out.push((start, line));
    }
    out
}

/// The next word of `rest` as `strtok(…, " \t")` takes it: leading separators
/// skipped, and the one separator after the word consumed.
fn next_word<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let s = rest.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        *rest = s;
        return None;
    }
    match s.find([' ', '\t']) {
        Some(i) => {
            *rest = &s[i + 1..];
            Some(&s[..i])
        }
        None => {
            *rest = "";
            Some(s)
        }
    }
}

/// A line as evidence shows it: words joined by one space, control characters
/// (a carriage return) escaped.
fn shown(line: &str) -> String {
    line.split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Parses one modprobe configuration file into the directives kmod accepts.
pub fn parse_modprobe(text: &str, path: &str) -> Vec<Directive> {
    logical_lines(text)
        .into_iter()
        .filter_map(|(n, line)| directive(&line, &format!("{path}:{n}")))
        .collect()
}

fn directive(line: &str, source: &str) -> Option<Directive> {
    if line.starts_with('#') {
        return None;
    }
    let mut rest = line;
    let keyword = Keyword::parse(next_word(&mut rest)?)?;
    let module = underscores(next_word(&mut rest)?)?;
    let rest = match keyword {
        Keyword::Blacklist => String::new(),
        Keyword::Alias => underscores(next_word(&mut rest)?)?,
        Keyword::Options => Some(rest).filter(|r| !r.is_empty())?.replace('\t', " "),
        Keyword::Install | Keyword::Remove | Keyword::Softdep => {
            Some(rest).filter(|r| !r.is_empty())?.to_string()
        }
    };
    Some(Directive {
        keyword,
        module,
        rest,
        source: source.to_string(),
        text: shown(line),
    })
}

/// The names of a `softdep` line: (`pre:` names, `post:` names). Words before either
/// label are ignored; words are separated by any white space.
pub fn softdep_names(rest: &str) -> (Vec<&str>, Vec<&str>) {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut mode = 0;
    for w in rest.split(|c: char| c.is_ascii_whitespace() || c == '\x0b') {
        match w {
            "" => {}
            "pre:" => mode = 1,
            "post:" => mode = 2,
            w if mode == 1 => pre.push(w),
            w if mode == 2 => post.push(w),
            _ => {}
        }
    }
    (pre, post)
}

/// The root's modprobe configuration.
#[derive(Debug, Clone, Default)]
pub struct ModprobeConfig {
    /// The files read, in reading order.
    pub files: Vec<String>,
    /// Their directives, in reading order.
    pub directives: Vec<Directive>,
}

impl ModprobeConfig {
    fn of(&self, keyword: Keyword) -> impl Iterator<Item = &Directive> {
        self.directives.iter().filter(move |d| d.keyword == keyword)
    }

    /// The `install` line modprobe runs for `module`: the first whose pattern matches.
    pub fn install(&self, module: &str) -> Option<&Directive> {
        self.of(Keyword::Install)
            .find(|d| fnmatch(&d.module, module))
    }

    /// The first `blacklist` line naming `module`.
    pub fn blacklist(&self, module: &str) -> Option<&Directive> {
        self.of(Keyword::Blacklist).find(|d| d.module == module)
    }

    /// The `options` lines of `module`, in order.
    pub fn options(&self, module: &str) -> Vec<&Directive> {
        self.of(Keyword::Options)
            .filter(|d| d.module == module)
            .collect()
    }

    /// The options modprobe passes to `module`, every `options` line's in order; for a
    /// module found by an alias, the alias's `options` lines count too.
    pub fn options_text(&self, module: &str, alias: Option<&str>) -> String {
        self.of(Keyword::Options)
            .filter(|d| d.module == module || Some(d.module.as_str()) == alias)
            .map(|d| d.rest.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The `alias` lines whose pattern matches `name`, in order.
    pub fn aliases(&self, name: &str) -> Vec<&Directive> {
        self.of(Keyword::Alias)
            .filter(|d| fnmatch(&d.module, name))
            .collect()
    }

    /// The first `softdep` line whose pattern matches `module`.
    pub fn softdep(&self, module: &str) -> Option<&Directive> {
        self.of(Keyword::Softdep)
            .find(|d| fnmatch(&d.module, module))
    }

    /// The first `install` line naming `name` exactly (no pattern).
    pub fn install_named(&self, name: &str) -> Option<&Directive> {
        self.of(Keyword::Install).find(|d| d.module == name)
    }

    /// The first `install` line, then the first `remove` line, naming `name` exactly:
    /// how modprobe finds a module no kernel index knows.
    pub(super) fn command_named(&self, name: &str) -> Option<&Directive> {
        self.install_named(name)
            .or_else(|| self.of(Keyword::Remove).find(|d| d.module == name))
    }
}

/// Whether kmod lists a directory entry of this name (before looking at what it is).
fn listed_name(name: &str) -> bool {
    !name.starts_with('.')
        && name.len() >= 6
        && (name.ends_with(".conf") || name.ends_with(".alias"))
}

/// The configuration files kmod reads for kernel `kernel` (`None`: the modprobe.d
/// directories only), as (name, path) in reading order.
fn config_files(facts: &Facts, kernel: Option<&str>) -> Result<Vec<String>, FactError> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    if let Some(v) = kernel {
        by_name.insert(
            "modules.softdep".into(),
            format!("/lib/modules/{v}/modules.softdep"),
        );
    }
    for dir in MODPROBE_DIRS {
        for name in facts.list_dir(dir)? {
            if !listed_name(&name) {
                continue;
            }
            let path = format!("{dir}/{name}");
            // A directory (also through a link) is left out before names are compared.
            let is_dir = match facts.stat(&path) {
                Err(FactError::SymlinkLoop { .. }) => false,
                other => other?.is_some_and(|m| m.kind == FileKind::Dir),
            };
            if !is_dir {
                by_name.entry(name).or_insert(path);
            }
        }
    }
    Ok(by_name.into_values().collect())
}

/// Every directive of the root's modprobe configuration for kernel `kernel` (`None`:
/// the modprobe.d directories without a kernel's modules.softdep), in kmod's order.
pub fn modprobe_config(
    facts: &Facts,
    kernel: Option<&str>,
) -> Result<Arc<ModprobeConfig>, FactError> {
    facts.get_keyed::<ModprobeConfig>(kernel.unwrap_or_default())
}

/// Keyed by the kernel version, empty for none.
impl KeyedFact for ModprobeConfig {
    type Key = str;
    type Value = Self;
    fn read(facts: &Facts, kernel: &str) -> Result<Self, FactError> {
        let kernel = Some(kernel).filter(|k| !k.is_empty());
        let mut cfg = ModprobeConfig::default();
        for path in config_files(facts, kernel)? {
            // /dev/null, a dangling or looping link: read as nothing (the name is
            // still taken). Only regular files are opened.
            let regular = match facts.stat(&path) {
                Err(FactError::SymlinkLoop { .. }) => false,
                other => other?.is_some_and(|m| m.kind == FileKind::File),
            };
            if regular {
                if let Some(text) = facts.read(&path)? {
                    cfg.directives.extend(parse_modprobe(&text, &path));
                }
            }
            // A kernel without modules.softdep is no file read.
            if regular || !path.starts_with("/lib/modules/") {
                cfg.files.push(path);
            }
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_as_kmod_does() {
        let text = "# install cramfs /bin/true\ninstall usb-storage \\\n  /bin/false\n  blacklist\tusb-storage # x\n\
                    options foo bar=1\tbaz\ninstall\ninstall cram\\\nfs /bin/fal\\se\r\nblacklist x\\";
        let d = parse_modprobe(text, "/etc/modprobe.d/a.conf");
        assert_eq!(d.len(), 5, "{d:?}");
        assert_eq!(d[0].keyword, Keyword::Install);
        assert_eq!(d[0].module, "usb_storage");
        assert_eq!(d[0].rest, "  /bin/false");
        assert_eq!(d[0].source, "/etc/modprobe.d/a.conf:2");
        assert_eq!(d[1].keyword, Keyword::Blacklist);
        assert_eq!(d[1].module, "usb_storage");
        assert_eq!(d[1].source, "/etc/modprobe.d/a.conf:4");
        assert_eq!(d[2].keyword, Keyword::Options);
        assert_eq!(d[2].rest, "bar=1 baz");
        assert_eq!(
            (d[3].module.as_str(), d[3].rest.as_str()),
            ("cramfs", "/bin/false\r")
        );
        assert_eq!(d[3].text, "install cramfs /bin/false\\r");
        assert_eq!(d[4].module, "x\u{fffd}");
    }

    #[test]
    fn refuses_what_kmod_refuses() {
        for line in [
            "install cramfs",
            "install cramfs ",
            "options cramfs",
            "softdep cramfs",
            "alias cramfs",
            "blacklist",
            "install x] /bin/false",
            "blacklist [x",
            "Install cramfs /bin/false",
            "include /etc/x.conf",
        ] {
            assert!(parse_modprobe(line, "f").is_empty(), "{line:?}");
        }
        let d = parse_modprobe("install cramfs  \ninstall usb[-_]st-orage x", "f");
        assert_eq!(d[0].rest, " ");
        assert_eq!(d[1].module, "usb[-_]st_orage");
    }

    #[test]
    fn softdep_lists() {
        assert_eq!(
            softdep_names("a pre:  b\tc post: d pre: e"),
            (vec!["b", "c", "e"], vec!["d"])
        );
        assert_eq!(softdep_names("squashfs"), (vec![], vec![]));
        assert_eq!(softdep_names("pre:x"), (vec![], vec![]));
    }
}
