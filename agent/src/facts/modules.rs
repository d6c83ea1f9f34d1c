//! Kernel modules: the installed kernels' module indexes (modules.dep, modules.builtin,
//! modules.alias, …), the loaded modules (/proc/modules), and modprobe configuration
//! as kmod 30 (Debian 12's) reads it. The `kmod.*` checks judge from these;
//! `rampart-agent facts modules` prints them, through the same functions.
//!
//! kmod's reading, as the differential tests found it (`tests/src/differential/`):
//!
//! - files: the entries of its directories whose names end in `.conf` or `.alias` and
//!   do not start with `.`; a directory (also through a link) is left out before
//!   names are compared, so it hides nothing; otherwise the first directory with a
//!   name wins, and the files are read sorted by name across directories, with the
//!   kernel's own `modules.softdep` sorted in among them. A link to /dev/null or one
//!   that leads nowhere is read as empty and still hides the name.
//! - lines: a backslash before a newline joins the next line with nothing in between;
//!   a backslash before any other character stands for that character; a carriage
//!   return is an ordinary character (part of the last word of a CRLF line). A line
//!   starting with `#` is a comment; words are separated by spaces and tabs only.
//! - names: `-` reads as `_` outside `[...]`; a name with an unmatched `]` or `[`, an
//!   `install`, `remove`, `options` or `softdep` line with nothing after its name, and
//!   an `alias` without a module are refused. The rest of an `install` line after one
//!   separator is its command, as written.
//! - modules: the first `install` and the first `softdep` line whose pattern matches
//!   apply; `blacklist` names match exactly. A module with soft dependencies that
//!   modprobe finds (`softdep m pre: a post: b`) has its install command ignored:
//!   modprobe loads the module itself.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{fnmatch, FactError, Facts, FileKind};

/// Directories kmod reads, highest precedence first.
pub const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

/// `usb-storage` and `usb_storage` are the same module.
pub fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// A module name or pattern as kmod normalises it (`underscores`, `alias_normalize`):
/// `-` becomes `_` outside brackets; `None` for an unmatched `]` or `[`.
pub fn underscores(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '-' => out.push('_'),
            ']' => return None,
            '[' => {
                out.push('[');
                loop {
                    let c = chars.next()?;
                    out.push(c);
                    if c == ']' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    Some(out)
}

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
    fn command_named(&self, name: &str) -> Option<&Directive> {
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
) -> Arc<Result<ModprobeConfig, FactError>> {
    let key = format!("modules-modprobe-config:{}", kernel.unwrap_or_default());
    facts.memo(&key, || {
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
    })
}

/// The `softdep` line whose soft dependencies make modprobe ignore `module`'s install
/// command in kernel `version` and load the module itself: the first `softdep` line
/// matching it, when one of its `pre:` or `post:` names finds a module.
pub fn install_ignored_by<'c>(
    facts: &Facts,
    cfg: &'c ModprobeConfig,
    kernels: &Kernels,
    version: &str,
    module: &str,
) -> Result<Option<&'c Directive>, FactError> {
    let Some(d) = cfg.softdep(module) else {
        return Ok(None);
    };
    let (pre, post) = softdep_names(&d.rest);
    for name in pre.into_iter().chain(post) {
        if !lookup(facts, cfg, kernels, version, name)?.is_empty() {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// The modules the installed kernels provide.
#[derive(Debug, Clone, Default)]
pub struct Kernels {
    /// Per kernel version: whether its modules.dep was found.
    pub versions: Vec<(String, bool)>,
    /// The running kernel (live only).
    pub running: Option<String>,
    /// module → (kernel, object path) where it is available as a loadable module.
    pub available: BTreeMap<String, Vec<(String, String)>>,
    /// module → kernels into which it is compiled.
    pub builtin: BTreeMap<String, Vec<String>>,
}

impl Kernels {
    /// The object path of `module` in kernel `version`, if it is loadable there.
    pub fn path_in(&self, module: &str, version: &str) -> Option<&str> {
        self.available
            .get(module)?
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, p)| p.as_str())
    }

    /// Whether `module` is compiled into kernel `version`.
    pub fn builtin_in(&self, module: &str, version: &str) -> bool {
        self.builtin
            .get(module)
            .is_some_and(|vs| vs.iter().any(|v| v == version))
    }
}

/// Reads modules.dep and modules.builtin of every kernel under /lib/modules (and, on
/// a live system, notes the running kernel).
pub fn kernels(facts: &Facts) -> Arc<Result<Kernels, FactError>> {
    facts.memo("modules-kernels", || {
        let mut k = Kernels::default();
        if facts.is_live() {
            k.running = facts
                .read_runtime("/proc/sys/kernel/osrelease")?
                .map(|v| v.trim().to_string());
        }
        let mut versions: BTreeSet<String> = BTreeSet::new();
        for v in facts.list_dir("/lib/modules")? {
            // A kernel is installed when its directory has modules.dep or a kernel/
            // tree; leftovers of removed kernels (e.g. an empty updates/) are not.
            let base = format!("/lib/modules/{v}");
            let is_dir = |p: &str| -> Result<bool, FactError> {
                Ok(facts.stat(p)?.is_some_and(|m| m.kind == FileKind::Dir))
            };
            if is_dir(&base)?
                && (facts.stat(&format!("{base}/modules.dep"))?.is_some()
                    || is_dir(&format!("{base}/kernel"))?)
            {
                versions.insert(v);
            }
        }
        for v in versions {
            let base = format!("/lib/modules/{v}");
            let dep = facts.read(&format!("{base}/modules.dep"))?;
            k.versions.push((v.clone(), dep.is_some()));
            if let Some(dep) = dep {
                for line in dep.lines() {
                    let Some((obj, _)) = line.split_once(':') else {
                        continue;
                    };
                    k.available
                        .entry(canonical(object_name(obj)))
                        .or_default()
                        .push((v.clone(), obj.to_string()));
                }
            }
            if let Some(b) = facts.read(&format!("{base}/modules.builtin"))? {
                for line in b.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    k.builtin
                        .entry(canonical(object_name(line)))
                        .or_default()
                        .push(v.clone());
                }
            }
        }
        Ok(k)
    })
}

/// The module name of an object path (`kernel/fs/udf/udf.ko.xz` → `udf`).
fn object_name(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file)
}

/// The names kernel `version`'s indexes resolve to modules: (pattern or name, module).
#[derive(Debug, Clone, Default)]
pub struct KernelAliases {
    /// modules.alias: the modules' own aliases (patterns).
    pub aliases: Vec<(String, String)>,
    /// modules.symbols: `symbol:NAME` for each exported symbol.
    pub symbols: Vec<(String, String)>,
    /// The aliases of built-in modules (modules.builtin.modinfo, patterns).
    pub builtin: Vec<(String, String)>,
}

/// Reads kernel `version`'s alias indexes (their text forms).
pub fn kernel_aliases(facts: &Facts, version: &str) -> Arc<Result<KernelAliases, FactError>> {
    facts.memo(&format!("modules-aliases:{version}"), || {
        let base = format!("/lib/modules/{version}");
        let alias_lines = |file: &str| -> Result<Vec<(String, String)>, FactError> {
            let text = facts.read(&format!("{base}/{file}"))?;
            Ok(text
                .as_deref()
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    // depmod indexes the aliases as kmod normalises names.
                    let mut w = l.split_whitespace();
                    (w.next() == Some("alias"))
                        .then(|| Some((underscores(w.next()?)?, canonical(w.next()?))))
                        .flatten()
                })
                .collect())
        };
        let modinfo = facts.read(&format!("{base}/modules.builtin.modinfo"))?;
        let builtin = modinfo
            .as_deref()
            .unwrap_or_default()
            .split('\0')
            .filter_map(|e| {
                let (key, value) = e.split_once('=')?;
                let (module, field) = key.rsplit_once('.')?;
                (field == "alias").then(|| Some((underscores(value)?, canonical(module))))?
            })
            .collect();
        Ok(KernelAliases {
            aliases: alias_lines("modules.alias")?,
            symbols: alias_lines("modules.symbols")?,
            builtin,
        })
    })
}

/// How modprobe finds a module for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// An `alias` line of modprobe configuration (its source).
    ConfigAlias(String),
    /// The kernel's modules.dep.
    ModulesDep,
    /// An `install` or `remove` line naming it exactly (its source).
    Command(String),
    /// The kernel's modules.alias.
    KernelAlias,
    /// The kernel's modules.builtin.
    Builtin,
}

/// A module modprobe finds for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub module: String,
    pub via: Via,
    /// The alias it was found by (a configuration alias's pattern, or the name asked
    /// for when an index alias finds it): modprobe then applies `blacklist` to it, and
    /// `options` lines naming the alias too.
    pub alias: Option<String>,
}

/// The modules `modprobe NAME` acts on in kernel `version` (what `modprobe -R`
/// prints), looked up in kmod's order, the first that knows the name answering:
/// configuration aliases, modules.dep, modules.symbols (`symbol:` names), `install`
/// and `remove` lines naming it, modules.alias, modules.builtin, built-in modules'
/// aliases. A name kmod refuses (an unmatched bracket) finds nothing.
pub fn lookup(
    facts: &Facts,
    cfg: &ModprobeConfig,
    kernels: &Kernels,
    version: &str,
    name: &str,
) -> Result<Vec<Found>, FactError> {
    let Some(name) = underscores(name) else {
        return Ok(Vec::new());
    };
    let from_config: Vec<Found> = cfg
        .aliases(&name)
        .into_iter()
        .map(|d| Found {
            module: d.rest.clone(),
            via: Via::ConfigAlias(d.source.clone()),
            alias: Some(d.module.clone()),
        })
        .collect();
    if !from_config.is_empty() {
        return Ok(from_config);
    }
    let one = |via| {
        Ok(vec![Found {
            module: name.clone(),
            via,
            alias: None,
        }])
    };
    if !name.contains(':') && kernels.path_in(&name, version).is_some() {
        return one(Via::ModulesDep);
    }
    let indexes = kernel_aliases(facts, version);
    let indexes = indexes.as_ref().as_ref().map_err(Clone::clone)?;
    let matching = |table: &[(String, String)], glob: bool| -> Vec<Found> {
        table
            .iter()
            .filter(|(p, _)| if glob { fnmatch(p, &name) } else { *p == name })
            .map(|(_, m)| Found {
                module: m.clone(),
                via: Via::KernelAlias,
                alias: Some(name.clone()),
            })
            .collect()
    };
    if name.starts_with("symbol:") {
        let found = matching(&indexes.symbols, false);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    if let Some(d) = cfg.command_named(&name) {
        return one(Via::Command(d.source.clone()));
    }
    let found = matching(&indexes.aliases, true);
    if !found.is_empty() {
        return Ok(found);
    }
    if kernels.builtin_in(&name, version) {
        return one(Via::Builtin);
    }
    let found = matching(&indexes.builtin, true);
    Ok(found
        .into_iter()
        .map(|f| Found {
            via: Via::Builtin,
            ..f
        })
        .collect())
}

/// Loaded modules from /proc/modules (live only).
pub fn loaded(facts: &Facts) -> Result<BTreeSet<String>, FactError> {
    let text = facts.read_runtime("/proc/modules")?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(canonical)
        .collect())
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
