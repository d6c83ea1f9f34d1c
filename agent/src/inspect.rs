//! `rampart-agent facts`: a debug command that prints, as JSON, what some check
//! families judge, read by the very readers and functions those checks use (never a
//! second reading). The differential tests (`tests/tests/differential.rs`) compare it
//! with the answers of the real programs run on the same root.
//!
//! The DTOs here derive `Serialize` on purpose: they are a debug boundary, whose
//! shape may change between releases.

pub mod mounts;
pub mod packages;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::checks::sshd::keys::{host_keys, judged};
use crate::checks::sshd::keywords::{self, canonical, Assign, KEYWORDS};
use crate::checks::sshd::FileSet;
use crate::engine::open_root;
use crate::error::AgentError;
use crate::facts::modules::{
    self, install_ignored_by, kernels, lookup, modprobe_config, Found, Via,
};
use crate::facts::sshd::sshd_config;
use crate::facts::sysctl::{
    applied_files, kernel_int, persisted, persisted_value, to_slash, Persisted,
};
use crate::facts::Facts;

/// The sysctl facts of a root: the files systemd-sysctl would read at boot, in order,
/// and the persisted value of each key asked for.
#[derive(Debug, Serialize)]
pub struct SysctlFacts {
    pub files: Vec<SysctlFile>,
    /// Per key as asked (dotted or slash form): its persisted value, or `null` when
    /// no applied file sets it.
    pub values: BTreeMap<String, Option<SysctlValue>>,
    /// Whether IP forwarding is on after boot, as ufw's routed-policy rule judges it.
    pub forwarding: Forwarding,
}

/// IP forwarding after boot.
#[derive(Debug, Serialize)]
pub struct Forwarding {
    pub on: bool,
    pub evidence: String,
}

/// One entry of the sysctl.d directories.
#[derive(Debug, Serialize)]
pub struct SysctlFile {
    pub listed: String,
    /// The file it really is; `null` when it applies nothing (masked, dangling).
    pub real: Option<String>,
}

/// A persisted sysctl value and where it comes from.
#[derive(Debug, Serialize)]
pub struct SysctlValue {
    /// As written after `=`, blanks trimmed (what systemd-sysctl writes).
    pub value: String,
    /// The integer the kernel takes from it, `null` when it refuses it.
    pub kernel: Option<i64>,
    pub source: String,
    /// The glob pattern that set it, if one did.
    pub glob: Option<String>,
}

/// The sshd facts of a root: the configuration as the sshd checks read it.
#[derive(Debug, Serialize)]
pub struct SshdFacts {
    /// Every configuration file read, in order.
    pub files: Vec<String>,
    /// The lines that make sshd refuse the configuration (empty when it accepts it).
    pub refused: Vec<String>,
    /// Per keyword of the rules (lower case): the value every connection gets and the
    /// values Match blocks set, as `sshd -T` would print them.
    pub keywords: BTreeMap<String, SshdKeyword>,
    /// The host keys sshd loads (`HostKey`, or the defaults).
    pub host_keys: Vec<String>,
    /// The private key files the private-key permission rule judges.
    pub private_keys: Vec<String>,
}

/// One keyword's effective value.
#[derive(Debug, Serialize)]
pub struct SshdKeyword {
    /// Single-valued keywords: the one value (the default when unset). Keywords whose
    /// values accumulate (`AllowUsers`): every value every connection gets.
    pub value: Vec<String>,
    /// The line that sets it, `null` for the compiled-in default.
    pub source: Option<String>,
    /// Values set inside Match blocks other than `Match all`, as the checks judge them.
    pub in_match: Vec<String>,
}

/// The kernel-module facts of a root: modprobe configuration as kmod reads it, and
/// per module the kmod rules ask about, what `modprobe <name>` does and the rule's
/// verdict.
#[derive(Debug, Serialize)]
pub struct ModulesFacts {
    /// The modprobe configuration files read, in kmod's order.
    pub files: Vec<String>,
    /// The installed kernels (under /lib/modules).
    pub kernels: Vec<String>,
    /// Per module name as asked.
    pub modules: BTreeMap<String, ModuleFacts>,
}

/// One module as modprobe configuration and the installed kernels leave it.
#[derive(Debug, Serialize)]
pub struct ModuleFacts {
    /// The name with `-` read as `_`.
    pub name: String,
    /// The `install` line modprobe runs for the module (`path:line: text`), if any.
    pub install: Option<String>,
    /// That line's command, as modprobe runs it.
    pub install_command: Option<String>,
    /// The `blacklist` line naming the module, if any.
    pub blacklist: Option<String>,
    /// The options modprobe passes to the module.
    pub options: String,
    /// Per installed kernel.
    pub kernels: BTreeMap<String, ModuleInKernel>,
    /// The `kmod.disabled` verdict: `pass` or `fail` (`error`: a fact was unreadable).
    pub verdict: String,
    pub evidence: Vec<String>,
}

/// One module in one kernel.
#[derive(Debug, Serialize)]
pub struct ModuleInKernel {
    /// `available` (modules.dep), `builtin` (modules.builtin) or `absent`.
    pub state: String,
    /// The modules `modprobe -R <name>` names (empty: modprobe finds none).
    pub lookup: Vec<String>,
    /// How each was found (`alias PATH:LINE`, `modules.dep`, `command PATH:LINE`,
    /// `modules.alias`, `modules.builtin`).
    pub via: Vec<String>,
    /// The `softdep` line that makes modprobe ignore the module's install command.
    pub install_ignored_by: Option<String>,
    /// What `modprobe -n -v <name>` prints for the module itself, when the name finds
    /// the module alone: `install COMMAND OPTIONS`, `insmod PATH OPTIONS`, or nothing
    /// (`""`); `null` when the name leads elsewhere, to several modules or nowhere.
    pub by_name: Option<String>,
}

/// pam_limits' core limit of `root` for `users` (default: every account).
pub fn limits(
    root: &Path,
    users: &[String],
) -> Result<crate::checks::sysctl::limits::LimitsFacts, AgentError> {
    Ok(crate::checks::sysctl::limits::facts(
        &facts_of(root)?,
        users,
    )?)
}

/// The PAM facts of `root` for `services`, judged by the rules of each of
/// `benchmarks`.
pub fn pam(
    root: &Path,
    services: &[String],
    benchmarks: &[String],
) -> Result<crate::checks::pam::inspect::PamFacts, AgentError> {
    crate::checks::pam::inspect::facts(&facts_of(root)?, services, benchmarks)
}

fn facts_of(root: &Path) -> Result<Facts, AgentError> {
    let (root, live) = open_root(root)?;
    Ok(Facts::new(&root, live))
}

/// The sysctl facts of `root` for `keys`.
pub fn sysctl(root: &Path, keys: &[String]) -> Result<SysctlFacts, AgentError> {
    let facts = facts_of(root)?;
    let files = applied_files(&facts)?
        .into_iter()
        .map(|f| SysctlFile {
            listed: f.listed,
            real: f.real,
        })
        .collect();
    let entries = persisted(&facts)?;
    let values = keys
        .iter()
        .map(|k| {
            let v = match persisted_value(&entries, &to_slash(k)) {
                Persisted::Set {
                    value,
                    source,
                    glob,
                } => Some(SysctlValue {
                    kernel: kernel_int(&value),
                    value,
                    source,
                    glob,
                }),
                Persisted::Unset(_) => None,
            };
            (k.clone(), v)
        })
        .collect();
    let (on, evidence) = crate::checks::firewall::ip_forwarding(&facts)?;
    Ok(SysctlFacts {
        files,
        values,
        forwarding: Forwarding { on, evidence },
    })
}

/// The sshd facts of `root`.
pub fn sshd(root: &Path) -> Result<SshdFacts, AgentError> {
    let facts = facts_of(root)?;
    let cfg = sshd_config(&facts)?;
    let mut out = BTreeMap::new();
    for k in KEYWORDS {
        let in_match = cfg
            .in_match(k.name)
            .into_iter()
            .filter(|d| !d.match_all)
            .filter_map(|d| canonical(k.name, &d.args))
            .collect();
        let (value, source) = match k.assign {
            // The keys sshd loads: the configured ones or its defaults.
            Assign::Accumulate if k.name == "HostKey" => (
                host_keys(&cfg),
                cfg.all_global(k.name).first().map(|d| d.source.clone()),
            ),
            // A `Match all` block's list replaces the global one for every connection.
            Assign::Accumulate => {
                let in_all: Vec<_> = cfg
                    .in_match(k.name)
                    .into_iter()
                    .filter(|d| d.match_all)
                    .collect();
                let ds = if in_all.is_empty() {
                    cfg.all_global(k.name)
                } else {
                    in_all
                };
                let source = ds.first().map(|d| d.source.clone());
                (ds.iter().flat_map(|d| d.args.clone()).collect(), source)
            }
            _ if k.name == "MaxStartups" => match keywords::max_startups(&cfg) {
                Some((v, d)) => (vec![v], Some(d.source.clone())),
                None => (default_value(k.name), None),
            },
            _ => match keywords::effective(&cfg, k.name) {
                Some(d) => (
                    canonical(k.name, &d.args).into_iter().collect(),
                    Some(d.source.clone()),
                ),
                None => (default_value(k.name), None),
            },
        };
        out.insert(
            k.name.to_ascii_lowercase(),
            SshdKeyword {
                value,
                source,
                in_match,
            },
        );
    }
    let private_keys = judged(&facts, &cfg, FileSet::PrivateKeys)?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    Ok(SshdFacts {
        files: cfg.files.clone(),
        refused: keywords::refusals(&cfg),
        keywords: out,
        host_keys: host_keys(&cfg),
        private_keys,
    })
}

/// The compiled-in default of a keyword, as `sshd -T` prints it (none for the
/// keywords without one, such as `AllowUsers`).
fn default_value(name: &str) -> Vec<String> {
    crate::checks::sshd::default_of(name)
        .and_then(|d| canonical(name, &[d.to_string()]))
        .into_iter()
        .collect()
}

/// The modules of the compiled-in content's `kmod.disabled` rules, in order.
pub fn rule_modules() -> Result<Vec<String>, AgentError> {
    use crate::checks::{kmod, Check};
    fn walk(c: &Check, out: &mut Vec<String>) {
        match c {
            Check::All(cs) | Check::Any(cs) => cs.iter().for_each(|c| walk(c, out)),
            Check::Kmod(kmod::Check::Disabled { module }) if !out.contains(module) => {
                out.push(module.clone())
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for b in crate::content::benchmarks()? {
        for r in &b.rules {
            if let Some(c) = &r.check {
                walk(c, &mut out);
            }
        }
    }
    Ok(out)
}

/// The kernel-module facts of `root` for `names` (default: [`rule_modules`]).
pub fn modules(root: &Path, names: &[String]) -> Result<ModulesFacts, AgentError> {
    let facts = facts_of(root)?;
    let names = if names.is_empty() {
        rule_modules()?
    } else {
        names.to_vec()
    };
    let cfg = modprobe_config(&facts, None)?;
    let k = kernels(&facts)?;
    let mut out = BTreeMap::new();
    for asked in names {
        let m = modules::canonical(&asked);
        let install = cfg.install(&m);
        let mut per_kernel = BTreeMap::new();
        for (v, _) in &k.versions {
            let state = if k.path_in(&m, v).is_some() {
                "available"
            } else if k.builtin_in(&m, v) {
                "builtin"
            } else {
                "absent"
            };
            let kcfg = modprobe_config(&facts, Some(v))?;
            let found = lookup(&facts, &kcfg, &k, v, &m)?;
            per_kernel.insert(
                v.clone(),
                ModuleInKernel {
                    state: state.to_string(),
                    lookup: found.iter().map(|f| f.module.clone()).collect(),
                    via: found.iter().map(via_text).collect(),
                    install_ignored_by: install_ignored_by(&facts, &kcfg, &k, v, &m)?
                        .map(|d| d.describe()),
                    by_name: by_name(&facts, &kcfg, &k, v, &m, &found)?,
                },
            );
        }
        let (verdict, evidence) = match crate::checks::kmod::judge_module(&facts, &asked) {
            Ok((true, ev)) => ("pass", ev),
            Ok((false, ev)) => ("fail", ev),
            Err(e) => ("error", vec![e.to_string()]),
        };
        out.insert(
            asked.clone(),
            ModuleFacts {
                name: m.clone(),
                install: install.map(|d| d.describe()),
                install_command: install.map(|d| d.rest.clone()),
                blacklist: cfg.blacklist(&m).map(|d| d.describe()),
                options: cfg.options_text(&m, None),
                kernels: per_kernel,
                verdict: verdict.to_string(),
                evidence,
            },
        );
    }
    Ok(ModulesFacts {
        files: cfg.files.clone(),
        kernels: k.versions.iter().map(|(v, _)| v.clone()).collect(),
        modules: out,
    })
}

fn via_text(f: &Found) -> String {
    match &f.via {
        Via::ConfigAlias(s) => format!("alias {s}"),
        Via::ModulesDep => "modules.dep".into(),
        Via::Command(s) => format!("command {s}"),
        Via::KernelAlias => "modules.alias".into(),
        Via::Builtin => "modules.builtin".into(),
    }
}

/// What `modprobe -n -v` prints for module `m` of kernel `v` asked for by its own
/// name (see [`ModuleInKernel::by_name`]).
fn by_name(
    facts: &crate::facts::Facts,
    cfg: &modules::ModprobeConfig,
    k: &modules::Kernels,
    v: &str,
    m: &str,
    found: &[Found],
) -> Result<Option<String>, AgentError> {
    let [f] = found else {
        return Ok(None);
    };
    if f.module != m {
        return Ok(None);
    }
    // modprobe does nothing with a module compiled into the kernel, nor with a
    // blacklisted one found by an alias.
    if k.builtin_in(m, v) || (f.alias.is_some() && cfg.blacklist(m).is_some()) {
        return Ok(Some(String::new()));
    }
    // modprobe passes the options with a space after them.
    let mut options = cfg.options_text(m, f.alias.as_deref());
    if !options.is_empty() {
        options.push(' ');
    }
    // A module found through a command line runs the first install line naming it.
    let install = match f.via {
        Via::Command(_) => cfg.install_named(m).or_else(|| cfg.install(m)),
        _ => cfg.install(m),
    };
    if let Some(d) = install {
        if install_ignored_by(facts, cfg, k, v, m)?.is_none() {
            return Ok(Some(format!("install {} {options}", d.rest)));
        }
    }
    Ok(Some(match k.path_in(m, v) {
        Some(path) => format!("insmod /lib/modules/{v}/{path} {options}"),
        None => String::new(),
    }))
}

/// The account-default facts of a root: per login.defs key and /etc/default/useradd
/// key that a `users.login_defs` or `users.useradd_default` check of a benchmark
/// judges, the setting as the check reads it and each check's verdict.
#[derive(Debug, Serialize)]
pub struct AccountsFacts {
    /// Per login.defs key (`PASS_MAX_DAYS`, `ENCRYPT_METHOD`, …).
    pub login_defs: BTreeMap<String, AccountDefault>,
    /// Per /etc/default/useradd key (`INACTIVE`).
    pub useradd: BTreeMap<String, AccountDefault>,
}

/// One account default as a check reads it.
#[derive(Debug, Serialize)]
pub struct AccountDefault {
    /// The setting's value as read (`null`: not set).
    pub value: Option<String>,
    /// The number the shadow tools take from it (`null`: unset or not a number).
    pub number: Option<i64>,
    /// Per rule of the benchmark that judges it (by slug): `pass`, `fail` or `error`.
    pub verdicts: BTreeMap<String, String>,
    pub evidence: Vec<String>,
}

/// The account-default facts of `root`, judged by the checks of `benchmark`.
pub fn accounts(root: &Path, benchmark: &str) -> Result<AccountsFacts, AgentError> {
    use crate::checks::{users, Check};
    fn walk<'a>(c: &'a Check, out: &mut Vec<&'a users::Check>) {
        match c {
            Check::All(cs) | Check::Any(cs) => cs.iter().for_each(|c| walk(c, out)),
            Check::Users(
                u @ (users::Check::LoginDefs { .. } | users::Check::UseraddDefault { .. }),
            ) => out.push(u),
            _ => {}
        }
    }
    let facts = facts_of(root)?;
    let mut out = AccountsFacts {
        login_defs: BTreeMap::new(),
        useradd: BTreeMap::new(),
    };
    let b = crate::engine::choose_benchmark(&facts, Some(benchmark))?;
    for r in &b.rules {
        let mut checks = Vec::new();
        if let Some(c) = &r.check {
            walk(c, &mut checks);
        }
        for c in checks {
            let (map, key, read) = match c {
                users::Check::LoginDefs { key, .. } => (
                    &mut out.login_defs,
                    key,
                    crate::facts::account_defaults::login_defs_value(&facts, key),
                ),
                users::Check::UseraddDefault { key, .. } => (
                    &mut out.useradd,
                    key,
                    crate::facts::account_defaults::useradd_default(&facts, key),
                ),
                _ => continue,
            };
            let entry = map.entry(key.clone()).or_insert_with(|| {
                let (value, number) = match read {
                    Ok(d) => (d.value, d.number),
                    Err(_) => (None, None),
                };
                AccountDefault {
                    value,
                    number,
                    verdicts: BTreeMap::new(),
                    evidence: Vec::new(),
                }
            });
            let o = c.eval(&facts);
            entry.verdicts.insert(
                r.slug.clone().unwrap_or_else(|| r.id.clone()),
                o.status.as_str().to_string(),
            );
            entry.evidence.extend(o.evidence);
        }
    }
    Ok(out)
}

/// One unit as the checks read it (`facts::units::unit`).
#[derive(Debug, Serialize)]
pub struct UnitFacts {
    /// Where the unit file was found, `null` when nowhere.
    pub path: Option<String>,
    /// The entry that leads nowhere and hides the unit, if any.
    pub unresolved: Option<String>,
    pub masked: bool,
    /// The unit this name is an alias of, if it is one.
    pub alias_of: Option<String>,
    /// What systemctl is-enabled calls enabled: not masked, not an alias, and linked
    /// (under its name or an [Install] alias) from a `.wants` or `.requires`
    /// directory of /etc/systemd/system or /run.
    pub enabled: bool,
    pub enabled_by: Vec<String>,
    /// Links that start it at boot without systemctl counting them.
    pub pulled_in_by: Vec<String>,
    pub is_static: bool,
    /// A generator's output or a transient unit.
    pub generated: bool,
    pub evidence: String,
}

/// The unit facts of `root` for `names`.
pub fn units(root: &Path, names: &[String]) -> Result<BTreeMap<String, UnitFacts>, AgentError> {
    let facts = facts_of(root)?;
    let mut out = BTreeMap::new();
    for name in names {
        let u = crate::facts::units::unit(&facts, name)?;
        out.insert(
            name.clone(),
            UnitFacts {
                path: u.path.clone(),
                unresolved: u.unresolved.clone(),
                masked: u.masked,
                alias_of: u.alias_of.clone(),
                enabled: u.enabled(),
                enabled_by: u.enabled_by.clone(),
                pulled_in_by: u.pulled_in_by.clone(),
                is_static: u.is_static,
                generated: u.generated,
                evidence: u.describe(),
            },
        );
    }
    Ok(out)
}

/// The journald, systemd-coredump and systemd-timesyncd settings the checks judge,
/// as their readers compute them (`null`: not set, the daemon's default applies).
#[derive(Debug, Serialize)]
pub struct SystemdConfFacts {
    /// `Storage`, `Compress`, `ForwardToSyslog`: journald's effective value under
    /// Debian's defaults, normalised as the checks compare it (`yes`/`no` for the
    /// booleans), with the evidence.
    pub journald: BTreeMap<String, ConfValue>,
    /// The verdict of `logging.journald` for `Storage=persistent`: whether the
    /// journal is kept on disk.
    pub journald_persistent: bool,
    /// `Storage`, `ProcessSizeMax`: the assignment systemd-coredump applies.
    pub coredump: BTreeMap<String, ConfValue>,
    /// The server names timesyncd is given by `NTP=` and `FallbackNTP=`, in order.
    pub timesyncd_ntp: Vec<String>,
    pub timesyncd_fallback: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ConfValue {
    pub value: Option<String>,
    pub evidence: Vec<String>,
}

/// The systemd daemons' configuration facts of `root`.
pub fn systemd_conf(root: &Path) -> Result<SystemdConfFacts, AgentError> {
    use crate::checks::logging::journald::{journald_check, journald_effective, JournaldDefaults};
    let facts = facts_of(root)?;
    let mut journald = BTreeMap::new();
    for key in ["Storage", "Compress", "ForwardToSyslog"] {
        let (value, evidence) = journald_effective(&facts, key, JournaldDefaults::Debian)?;
        journald.insert(key.to_string(), ConfValue { value, evidence });
    }
    let persistent = journald_check(&facts, "Storage", "persistent", JournaldDefaults::Debian)?;
    let settings = crate::checks::sysctl::coredump::coredump_settings(&facts)?;
    let mut coredump = BTreeMap::new();
    for key in ["Storage", "ProcessSizeMax"] {
        let (s, evidence) = crate::checks::sysctl::coredump::coredump_effective(&settings, key);
        coredump.insert(
            key.to_string(),
            ConfValue {
                value: s.map(|s| s.value.clone()),
                evidence,
            },
        );
    }
    let (settings, _) = crate::checks::time::timesyncd_settings(&facts)?;
    let lists = crate::checks::time::timesyncd_lists(&settings);
    let words = |l: &[crate::facts::kv::Setting]| -> Vec<String> {
        l.iter()
            .flat_map(|s| s.value.split_whitespace().map(String::from))
            .collect()
    };
    Ok(SystemdConfFacts {
        journald,
        journald_persistent: persistent.status == crate::model::Status::Pass,
        coredump,
        timesyncd_ntp: words(&lists.ntp),
        timesyncd_fallback: words(&lists.fallback),
    })
}

/// The sudoers policy as the sudo checks read it: the files read, in order, and the
/// last global `Defaults` setting of each option asked for (`on`, `off`, or
/// `=VALUE`; absent when not set); why sudo refuses /etc/sudoers, if it does; the
/// options the checks leave undecided (an error, never a pass); the rule lines
/// carrying NOPASSWD.
#[derive(Debug, Serialize)]
pub struct SudoFacts {
    pub files: Vec<String>,
    pub global: BTreeMap<String, String>,
    pub refused: Option<String>,
    pub undecided: BTreeMap<String, String>,
    pub nopasswd: Vec<String>,
    pub notes: Vec<String>,
}

/// The sudo facts of `root` for `options`.
pub fn sudo(root: &Path, options: &[String]) -> Result<SudoFacts, AgentError> {
    use crate::facts::sudoers::{sudoers, Op};
    let facts = facts_of(root)?;
    let s = sudoers(&facts)?;
    let mut global = BTreeMap::new();
    let mut undecided = BTreeMap::new();
    for o in options {
        if let Some(why) = s.undecided(o) {
            undecided.insert(o.clone(), why);
        }
        if let Some(d) = s.global(o) {
            let v = match &d.op {
                Op::On => "on".to_string(),
                Op::Off => "off".to_string(),
                Op::Value(v) => format!("={v}"),
            };
            global.insert(o.clone(), v);
        }
    }
    Ok(SudoFacts {
        files: s.files.clone(),
        global,
        refused: s.refused.clone(),
        undecided,
        nopasswd: s
            .tagged("NOPASSWD")
            .iter()
            .map(|r| format!("{}: {}", r.source, r.text))
            .collect(),
        notes: s.notes.clone(),
    })
}
