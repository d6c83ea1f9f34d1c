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

mod modprobe;

use crate::facts::{Fact, KeyedFact};
pub use modprobe::{
    modprobe_config, parse_modprobe, softdep_names, Directive, Keyword, ModprobeConfig,
    MODPROBE_DIRS,
};

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
pub fn kernels(facts: &Facts) -> Result<Arc<Kernels>, FactError> {
    facts.get::<Kernels>()
}

impl Fact for Kernels {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
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
    }
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
pub fn kernel_aliases(facts: &Facts, version: &str) -> Result<Arc<KernelAliases>, FactError> {
    facts.get_keyed::<KernelAliases>(version)
}

impl KeyedFact for KernelAliases {
    type Key = str;
    type Value = Self;
    fn read(facts: &Facts, version: &str) -> Result<Self, FactError> {
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
    }
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
    let indexes = kernel_aliases(facts, version)?;
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

/// Loaded modules from /proc/modules (live only).
pub fn loaded(facts: &Facts) -> Result<BTreeSet<String>, FactError> {
    let text = facts.read_runtime("/proc/modules")?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(canonical)
        .collect())
}
