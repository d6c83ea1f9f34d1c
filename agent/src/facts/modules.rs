//! Kernel modules: the installed kernels' module indexes (modules.dep, modules.builtin,
//! modules.alias), the loaded modules (/proc/modules), and modprobe configuration as
//! kmod reads it. The `kmod.*` checks judge from these; `rampart-agent facts modules`
//! prints them (through the same functions).
//!
//! modprobe configuration is read as kmod reads it: `*.conf` files from its
//! directories, sorted by file name across directories (a name in an earlier
//! directory hides the same name in a later one), lines joined on a trailing
//! backslash. `-` and `_` in module names are the same.

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

/// Parses one modprobe configuration file into its directives.
pub fn parse_modprobe(text: &str, path: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = n + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        if let Some(d) = directive(&line, &format!("{path}:{start}")) {
            out.push(d);
        }
    }
    if !pending.is_empty() {
        if let Some(d) = directive(&pending, &format!("{path}:{start}")) {
            out.push(d);
        }
    }
    out
}

fn directive(line: &str, source: &str) -> Option<Directive> {
    let trimmed = line.trim();
    if trimmed.starts_with('#') {
        return None;
    }
    let mut words = trimmed.splitn(2, [' ', '\t']);
    let keyword = Keyword::parse(words.next()?)?;
    let rest = words.next()?.trim_start();
    let mut words = rest.splitn(2, [' ', '\t']);
    let module = words.next().filter(|m| !m.is_empty())?;
    let rest = words.next().unwrap_or("").trim();
    let rest = match keyword {
        Keyword::Alias => canonical(rest.split([' ', '\t']).next().unwrap_or("")),
        _ => rest.to_string(),
    };
    Some(Directive {
        keyword,
        module: canonical(module),
        rest,
        source: source.to_string(),
        text: trimmed.split_whitespace().collect::<Vec<_>>().join(" "),
    })
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

    /// The options modprobe passes to `module`, every `options` line's in order.
    pub fn options_text(&self, module: &str) -> String {
        self.options(module)
            .iter()
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

/// Every directive of the root's modprobe configuration, in kmod's reading order.
pub fn modprobe_config(facts: &Facts) -> Arc<Result<ModprobeConfig, FactError>> {
    facts.memo("modules-modprobe-config", || {
        let mut cfg = ModprobeConfig::default();
        for path in super::kv::dropin_files(facts, &MODPROBE_DIRS, ".conf")? {
            // A directory named *.conf is not a configuration file.
            if facts.stat(&path)?.is_some_and(|m| m.kind == FileKind::Dir) {
                continue;
            }
            if let Some(text) = facts.read(&path)? {
                cfg.directives.extend(parse_modprobe(&text, &path));
                cfg.files.push(path);
            }
        }
        Ok(cfg)
    })
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

/// The aliases kernel `version`'s modules declare (modules.alias): (pattern, module).
pub fn kernel_aliases(
    facts: &Facts,
    version: &str,
) -> Arc<Result<Vec<(String, String)>, FactError>> {
    facts.memo(&format!("modules-aliases:{version}"), || {
        let text = facts.read(&format!("/lib/modules/{version}/modules.alias"))?;
        Ok(text
            .as_deref()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("alias"))
                    .then(|| Some((w.next()?.to_string(), w.next()?.to_string())))
                    .flatten()
            })
            .collect())
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
}

/// The modules `modprobe NAME` acts on in kernel `version` (what `modprobe -R`
/// prints), looked up in kmod's order: configuration aliases, modules.dep, install
/// and remove commands, modules.alias, modules.builtin; the first that knows the
/// name answers.
pub fn lookup(
    facts: &Facts,
    cfg: &ModprobeConfig,
    kernels: &Kernels,
    version: &str,
    name: &str,
) -> Result<Vec<Found>, FactError> {
    let name = canonical(name);
    let from_config: Vec<Found> = cfg
        .aliases(&name)
        .into_iter()
        .map(|d| Found {
            module: d.rest.clone(),
            via: Via::ConfigAlias(d.source.clone()),
        })
        .collect();
    if !from_config.is_empty() {
        return Ok(from_config);
    }
    let one = |via| {
        Ok(vec![Found {
            module: name.clone(),
            via,
        }])
    };
    if kernels.path_in(&name, version).is_some() {
        return one(Via::ModulesDep);
    }
    if let Some(d) = cfg.command_named(&name) {
        return one(Via::Command(d.source.clone()));
    }
    let aliases = kernel_aliases(facts, version);
    let aliases = aliases.as_ref().as_ref().map_err(Clone::clone)?;
    let from_kernel: Vec<Found> = aliases
        .iter()
        .filter(|(p, _)| fnmatch(p, &name))
        .map(|(_, m)| Found {
            module: m.clone(),
            via: Via::KernelAlias,
        })
        .collect();
    if !from_kernel.is_empty() {
        return Ok(from_kernel);
    }
    if kernels.builtin_in(&name, version) {
        return one(Via::Builtin);
    }
    Ok(Vec::new())
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
    fn parses_directives_with_continuations_and_comments() {
        let text = "# install cramfs /bin/true\ninstall usb-storage \\\n  /bin/false\n  blacklist\tusb-storage # x\n\
                    options foo bar=1\ninstall\n";
        let d = parse_modprobe(text, "/etc/modprobe.d/a.conf");
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].keyword, Keyword::Install);
        assert_eq!(d[0].module, "usb_storage");
        assert_eq!(d[0].rest, "/bin/false");
        assert_eq!(d[0].source, "/etc/modprobe.d/a.conf:2");
        assert_eq!(d[1].keyword, Keyword::Blacklist);
        assert_eq!(d[1].module, "usb_storage");
        assert_eq!(d[1].source, "/etc/modprobe.d/a.conf:4");
        assert_eq!(d[2].keyword, Keyword::Options);
        assert_eq!(d[2].rest, "bar=1");
    }
}
