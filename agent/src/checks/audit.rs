//! `audit.*` checks: auditd (boot parameters, auditd.conf, the rules in
//! /etc/audit/rules.d, audit log permissions), AIDE (configuration and scheduling),
//! and the filesystem-wide permission rules fed by the shared walk (world-writable
//! and unowned files).

mod conf;
mod files;
pub mod rules;
pub mod schedule;
mod sudo;
mod walk;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use self::conf::auditd_conf_check;
use self::files::{aide_rules, log_files, privileged};
use self::rules::{find, task_never, Atom, Found, Requirement};
use self::sudo::sudo_log;
use self::walk::{unowned, world_writable};
use crate::checks::common::parse_mode;
use crate::facts::account_defaults::uid_min_kv;
use crate::facts::aide;
use crate::facts::audit::{canonical, loaded, ruleset, Kind, RuleSet, RULES_DIR};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// One auditd.conf setting and what it must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfRequirement {
    pub key: String,
    #[serde(default)]
    pub allowed: Vec<String>,
    pub min: Option<u64>,
}

/// What of the audit log location a [`Check::LogFiles`] judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogTarget {
    /// The regular files in the log directory.
    Files,
    /// The log directory itself.
    Directory,
}

/// The `audit.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Every `linux` line of /boot/grub/grub.cfg passes `name` with `value`, or
    /// with a number of at least `min`.
    #[serde(rename = "audit.kernel_param")]
    KernelParam {
        name: String,
        value: Option<String>,
        min: Option<u64>,
    },
    /// Each auditd.conf setting meets its requirement: the effective value (last
    /// line wins, keys and values case-insensitive, auditd's default when unset) is
    /// one of `allowed`, or a number of at least `min`.
    #[serde(rename = "audit.auditd_conf")]
    AuditdConf { settings: Vec<ConfRequirement> },
    /// The rules in /etc/audit/rules.d audit everything each requirement names.
    #[serde(rename = "audit.rules")]
    Rules { require: Vec<Requirement> },
    /// The rules watch the file sudo logs to (`Defaults logfile=` in sudoers).
    #[serde(rename = "audit.rules_sudo_log")]
    RulesSudoLog { perms: String },
    /// Every setuid/setgid file on filesystems mounted without nosuid/noexec has an
    /// execution rule (`-F path=… -F perm=x` with these filters, or looser).
    #[serde(rename = "audit.rules_privileged")]
    RulesPrivileged {
        #[serde(default)]
        filters: Vec<String>,
    },
    /// The last `-e` of the rules is `-e 2`: the configuration is locked until reboot.
    #[serde(rename = "audit.rules_immutable")]
    RulesImmutable {},
    /// The audit log directory (from auditd.conf `log_file`) or the files in it
    /// meet the limits; with `log_group`, auditd.conf's `log_group` is one of them.
    /// Not applicable when auditd is not installed or has no log directory yet.
    #[serde(rename = "audit.log_files")]
    LogFiles {
        target: LogTarget,
        max_mode: Option<String>,
        #[serde(default)]
        owner: Vec<String>,
        #[serde(default)]
        group: Vec<String>,
        #[serde(default)]
        log_group: Vec<String>,
    },
    /// A periodic AIDE check is scheduled: an enabled dailyaidecheck/aidecheck
    /// timer, or a cron entry running `aide --check` with cron enabled. The packaged
    /// daily check (dailyaidecheck, or aide-common's cron.daily script) does not
    /// count when /etc/default/aide sets CRON_DAILY_RUN to anything but `yes`.
    /// `cron` names the cron implementation whose files and service are judged
    /// (Debian's cron by default, or cronie).
    #[serde(rename = "audit.aide_scheduled")]
    AideScheduled {
        #[serde(default)]
        cron: schedule::Cron,
    },
    /// AIDE's configuration (`conf`, /etc/aide/aide.conf by default) selects each
    /// file (or its /usr-merged twin) with a rule whose attributes include all of
    /// `attributes`.
    #[serde(rename = "audit.aide_rules")]
    AideRules {
        paths: Vec<String>,
        attributes: Vec<String>,
        #[serde(default = "default_aide_conf")]
        conf: String,
    },
    /// The database named by `database_in` of AIDE's configuration (`conf`) exists
    /// and is not empty: AIDE has been initialised.
    #[serde(rename = "audit.aide_database")]
    AideDatabase {
        #[serde(default = "default_aide_conf")]
        conf: String,
    },
    /// No world-writable regular file, and no world-writable directory without the
    /// sticky bit, on the walked local filesystems (outside the exclusions).
    #[serde(rename = "audit.fs_world_writable")]
    FsWorldWritable {
        /// `find -path` style patterns (`*` matches anything, `/` included).
        #[serde(default)]
        exclude: Vec<String>,
        /// Filesystem types whose mounts are left out (live mounts, or fstab offline).
        #[serde(default)]
        skip_fstypes: Vec<String>,
        /// Mount points (patterns) left out when something is mounted there.
        #[serde(default)]
        skip_mounts: Vec<String>,
    },
    /// No file or directory whose owner or group is unknown to passwd/group.
    #[serde(rename = "audit.fs_unowned")]
    FsUnowned {
        #[serde(default)]
        exclude: Vec<String>,
        #[serde(default)]
        skip_fstypes: Vec<String>,
        #[serde(default)]
        skip_mounts: Vec<String>,
    },
}

fn default_aide_conf() -> String {
    aide::AIDE_CONF.to_string()
}

/// What a filesystem-walk check leaves out.
#[derive(Debug, Clone, Default)]
pub struct WalkScope {
    pub exclude: Vec<String>,
    pub skip_fstypes: Vec<String>,
    pub skip_mounts: Vec<String>,
}

impl WalkScope {
    fn of(exclude: &[String], skip_fstypes: &[String], skip_mounts: &[String]) -> WalkScope {
        WalkScope {
            exclude: exclude.to_vec(),
            skip_fstypes: skip_fstypes.to_vec(),
            skip_mounts: skip_mounts.to_vec(),
        }
    }
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        match self {
            Check::KernelParam { name, value, min } => {
                kernel_param(facts, name, value.as_deref(), *min)
            }
            Check::AuditdConf { settings } => auditd_conf_check(facts, settings),
            Check::Rules { require } => judge_requirements(facts, require, Vec::new()),
            Check::RulesSudoLog { perms } => sudo_log(facts, perms),
            Check::RulesPrivileged { filters } => privileged(facts, filters),
            Check::RulesImmutable {} => immutable(facts),
            Check::LogFiles {
                target,
                max_mode,
                owner,
                group,
                log_group,
            } => {
                let max = max_mode
                    .as_deref()
                    .map(parse_mode)
                    .transpose()
                    .map_err(|reason| FactError::Malformed {
                        path: "content".into(),
                        reason,
                    })?;
                log_files(facts, *target, max, owner, group, log_group)
            }
            Check::AideScheduled { cron } => {
                let (ok, ev) = schedule::scheduled(facts, *cron)?;
                Ok(Outcome::new(
                    if ok { Status::Pass } else { Status::Fail },
                    ev,
                ))
            }
            Check::AideDatabase { conf } => {
                let (ok, ev) = aide::database(facts, conf)?;
                Ok(Outcome::new(
                    if ok { Status::Pass } else { Status::Fail },
                    ev,
                ))
            }
            Check::AideRules {
                paths,
                attributes,
                conf,
            } => aide_rules(facts, conf, paths, attributes),
            Check::FsWorldWritable {
                exclude,
                skip_fstypes,
                skip_mounts,
            } => world_writable(facts, &WalkScope::of(exclude, skip_fstypes, skip_mounts)),
            Check::FsUnowned {
                exclude,
                skip_fstypes,
                skip_mounts,
            } => unowned(facts, &WalkScope::of(exclude, skip_fstypes, skip_mounts)),
        }
    }
}

// ---------------------------------------------------------------------------
// Kernel command line

const GRUB_CFG: &str = "/boot/grub/grub.cfg";

/// Whether `params` (kernel arguments) satisfy the requirement; returns the value found.
fn param_ok(
    params: &[&str],
    name: &str,
    value: Option<&str>,
    min: Option<u64>,
) -> (bool, Option<String>) {
    // The kernel uses the last occurrence of a parameter.
    let found = params.iter().rev().find_map(|p| match p.split_once('=') {
        Some((k, v)) if k == name => Some(v.to_string()),
        None if *p == name => Some(String::new()),
        _ => None,
    });
    let ok = match (&found, value, min) {
        (Some(v), Some(want), _) => v == want,
        (Some(v), None, Some(m)) => v.parse::<u64>().is_ok_and(|n| n >= m),
        (Some(_), None, None) => true,
        (None, _, _) => false,
    };
    (ok, found)
}

fn want_text(name: &str, value: Option<&str>, min: Option<u64>) -> String {
    match (value, min) {
        (Some(v), _) => format!("{name}={v}"),
        (None, Some(m)) => format!("{name}={m} or more"),
        _ => name.to_string(),
    }
}

fn kernel_param(
    facts: &Facts,
    name: &str,
    value: Option<&str>,
    min: Option<u64>,
) -> Result<Outcome, FactError> {
    let want = want_text(name, value, min);
    let Some(text) = facts.read(GRUB_CFG)? else {
        if facts.is_live() {
            if let Some(cmdline) = facts.read_runtime("/proc/cmdline")? {
                let params: Vec<&str> = cmdline.split_whitespace().collect();
                let (ok, found) = param_ok(&params, name, value, min);
                let ev = vec![
                    format!("{GRUB_CFG} not found; judged the running kernel's /proc/cmdline"),
                    format!(
                        "/proc/cmdline: {}",
                        found
                            .map(|v| format!("{name}={v}"))
                            .unwrap_or(format!("{name} not set"))
                    ),
                    format!("required: {want}"),
                ];
                return Ok(Outcome::new(
                    if ok { Status::Pass } else { Status::Fail },
                    ev,
                ));
            }
        }
        return Ok(Outcome::fail(format!(
            "{GRUB_CFG} not found: cannot confirm the kernel is booted with {want}"
        )));
    };
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let toks: Vec<&str> = raw.split_whitespace().collect();
        if !matches!(
            toks.first(),
            Some(&"linux") | Some(&"linux16") | Some(&"linuxefi")
        ) {
            continue;
        }
        let image = toks.get(1).copied().unwrap_or("?");
        let params = toks.get(2..).unwrap_or(&[]);
        let (ok, found) = param_ok(params, name, value, min);
        let what = found
            .map(|v| format!("{name}={v}"))
            .unwrap_or(format!("no {name}"));
        let line = format!("{GRUB_CFG}:{}: linux {image}: {what}", n + 1);
        if ok {
            good.push(line);
        } else {
            bad.push(format!("{line} (required: {want})"));
        }
    }
    if good.is_empty() && bad.is_empty() {
        return Ok(Outcome::fail(format!(
            "{GRUB_CFG} has no linux boot entries: cannot confirm {want}"
        )));
    }
    if facts.is_live() {
        if let Ok(Some(cmdline)) = facts.read_runtime("/proc/cmdline") {
            let params: Vec<&str> = cmdline.split_whitespace().collect();
            if !param_ok(&params, name, value, min).0 {
                good.push(format!(
                    "note: the running kernel was booted without {want} (a reboot applies it)"
                ));
            }
        }
    }
    Ok(Outcome::from_findings(bad, good))
}

// ---------------------------------------------------------------------------
// Audit rules

const NOT_LOADED: &str =
    "judged the rules in /etc/audit/rules.d as augenrules loads them; the rules loaded in the kernel were not examined";

fn rules_or_fail(facts: &Facts) -> Result<Result<Arc<RuleSet>, Outcome>, FactError> {
    let set = ruleset(facts)?;
    if set.files.is_empty() {
        return Ok(Err(Outcome::fail(format!(
            "no *.rules files in {}: no audit rules are loaded at boot",
            RULES_DIR
        ))));
    }
    Ok(Ok(set))
}

/// Groups missing atoms into suggested rules (syscalls of the same arch and
/// filters on one line).
fn suggest(missing: &[Atom]) -> Vec<String> {
    let mut grouped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for a in missing {
        match &a.syscall {
            Some(s) => {
                let key = Atom {
                    syscall: Some("\u{0}".into()),
                    ..a.clone()
                }
                .suggest();
                if !grouped.contains_key(&key) {
                    order.push(key.clone());
                }
                grouped.entry(key).or_default().push(s.clone());
            }
            None => {
                let key = a.suggest();
                if let std::collections::btree_map::Entry::Vacant(e) = grouped.entry(key) {
                    order.push(e.key().clone());
                    e.insert(Vec::new());
                }
            }
        }
    }
    order
        .into_iter()
        .map(|k| {
            let calls = &grouped[&k];
            let text = if calls.is_empty() {
                k.clone()
            } else {
                k.replace('\u{0}', &calls.join(","))
            };
            format!("missing: {text} (or an equivalent rule)")
        })
        .collect()
}

/// 64-bit system calls the arm64 kernel does not have (it offers only their `*at`
/// forms): auditctl rejects rules naming them there, so they are not required.
const NOT_ON_ARM64: [&str; 7] = [
    "open", "creat", "chmod", "chown", "lchown", "rename", "unlink",
];

/// The arm64 dynamic loader, present on 64-bit ARM systems (Graviton, for one).
const ARM64_LOADER: &str = "/lib/ld-linux-aarch64.so.1";
/// The x86-64 dynamic loader: with it present, the system is not judged arm64.
const X86_64_LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Whether the root is a 64-bit ARM system: it has arm64's dynamic loader and no
/// x86-64 one.
fn arm64(facts: &Facts) -> Result<bool, FactError> {
    Ok(facts.lstat(ARM64_LOADER)?.is_some() && facts.lstat(X86_64_LOADER)?.is_none())
}

/// Whether an atom names a 64-bit system call the arm64 kernel lacks.
fn absent_on_arm64(a: &Atom) -> bool {
    a.arch == "b64"
        && a.syscall
            .as_deref()
            .is_some_and(|s| NOT_ON_ARM64.contains(&s))
}

/// A requirement's atoms, with its path resolved as the rules' paths are; on
/// arm64, without the 64-bit system calls that kernel lacks.
fn atoms_of(facts: &Facts, r: &Requirement, uid_min: u32) -> Result<Vec<Atom>, FactError> {
    let mut atoms = r.atoms(uid_min).map_err(|reason| FactError::Malformed {
        path: "content".into(),
        reason,
    })?;
    for a in &mut atoms {
        if let Some(p) = &a.path {
            a.path = Some(canonical(facts, p));
        }
    }
    if atoms.iter().any(absent_on_arm64) && arm64(facts)? {
        atoms.retain(|a| !absent_on_arm64(a));
    }
    Ok(atoms)
}

fn judge_requirements(
    facts: &Facts,
    reqs: &[Requirement],
    mut lead: Vec<String>,
) -> Result<Outcome, FactError> {
    let set = match rules_or_fail(facts)? {
        Ok(s) => s,
        Err(o) => {
            lead.extend(o.evidence);
            return Ok(Outcome::new(Status::Fail, lead));
        }
    };
    let min = uid_min_kv(facts)?;
    let mut bad = Vec::new();
    let mut good: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    let lacking: Vec<&str> = NOT_ON_ARM64
        .iter()
        .copied()
        .filter(|s| reqs.iter().any(|r| r.syscalls.iter().any(|c| c == s)))
        .collect();
    if !lacking.is_empty() && arm64(facts)? {
        good.push(format!(
            "{ARM64_LOADER} present: an arm64 system, whose kernel has no 64-bit {}; those are required for arch=b32 only",
            lacking.join(", ")
        ));
    }
    if let Some(t) = task_never(&set) {
        bad.push(format!(
            "{}: this rule turns off syscall auditing for every process",
            t.describe()
        ));
    }
    for r in reqs {
        let atoms = atoms_of(facts, r, min)?;
        for a in atoms {
            match find(&set, &a) {
                Found::Covered(rule) => {
                    let d = rule.describe();
                    if !good.contains(&d) {
                        good.push(d);
                    }
                }
                Found::Suppressed { by, rule } => bad.push(format!(
                    "{} would audit {}, but {} comes first and suppresses it",
                    rule.describe(),
                    a.suggest(),
                    by.describe()
                )),
                Found::Missing => missing.push(a),
            }
        }
    }
    bad.extend(suggest(&missing));
    for b in &set.bad {
        good.push(format!("not understood: {b}"));
    }
    // On the live host the rules must also be loaded in the kernel.
    match loaded(facts).as_ref() {
        Ok(live) => {
            let mut not_loaded = Vec::new();
            for r in reqs {
                for a in atoms_of(facts, r, min)? {
                    if !matches!(find(live, &a), Found::Covered(_)) {
                        not_loaded.push(a);
                    }
                }
            }
            if not_loaded.is_empty() {
                good.push("the required rules are also loaded in the kernel (auditctl -l)".into());
            } else {
                for line in suggest(&not_loaded) {
                    bad.push(format!(
                        "not loaded in the kernel (auditctl -l): {}",
                        line.trim_start_matches("missing: ")
                    ));
                }
            }
        }
        Err(why) => good.push(format!(
            "judged the rules in /etc/audit/rules.d as augenrules loads them; {why}"
        )),
    }
    let mut o = Outcome::from_findings(bad, good);
    if !lead.is_empty() {
        lead.append(&mut o.evidence);
        o.evidence = lead;
    }
    Ok(o)
}

fn immutable(facts: &Facts) -> Result<Outcome, FactError> {
    let set = match rules_or_fail(facts)? {
        Ok(s) => s,
        Err(o) => return Ok(o),
    };
    Ok(match &set.enable {
        Some(r) if matches!(&r.kind, Kind::Enable(v) if v == "2") => Outcome::new(
            Status::Pass,
            vec![
                format!(
                    "{} (augenrules places the last -e at the end)",
                    r.describe()
                ),
                NOT_LOADED.into(),
            ],
        ),
        Some(r) => Outcome::new(
            Status::Fail,
            vec![
                format!(
                    "{}: the last -e must be `-e 2` to lock the audit configuration",
                    r.describe()
                ),
                NOT_LOADED.into(),
            ],
        ),
        None => Outcome::new(
            Status::Fail,
            vec![
                format!(
                    "no -e line in {}: the audit configuration is never locked",
                    set.files.join(", ")
                ),
                NOT_LOADED.into(),
            ],
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::files::usrmerge_twin;
    use super::walk::wildcard;
    use super::*;
    use crate::facts::auditd_conf::parse_auditd_conf;

    /// Garbage of every shape must never panic a parser.
    fn garbage() -> Vec<String> {
        let alphabet: Vec<char> = "-aFSwpke=!<>&,/ \t#@()[]{}*+?.$^|\\\"'0123456789xé\u{0}~:;%"
            .chars()
            .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut out = Vec::new();
        for len in 0..400 {
            let mut s = String::new();
            for _ in 0..(len % 60) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            out.push(s);
        }
        out.push("-a always,exit -F a0=170141183460469231731687303715884105727 -F a1>170141183460469231731687303715884105727".into());
        out.push("-F auid<-170141183460469231731687303715884105727".into());
        out
    }

    #[test]
    fn parsers_survive_garbage() {
        let q = crate::facts::audit::parse_filter("auid>=1000").unwrap();
        for g in garbage() {
            if let Ok((Kind::Rule { filters, .. }, _)) = crate::facts::audit::parse_line(&g) {
                for f in &filters {
                    let _ = rules::implied_by(std::slice::from_ref(&q), f);
                    let _ = rules::implied_by(std::slice::from_ref(f), &q);
                }
            }
            let _ = parse_auditd_conf(&g);
            let _ = wildcard(&g, "/a/b");
            let _ = crate::facts::audit::version_cmp(&g, "10-x.rules");
            if let Some(r) = aide::regex::Regex::new(&g) {
                let _ = r.matches_prefix("/usr/sbin/auditctl");
                let _ = r.matches_full(&g);
            }
            let _ = schedule::runs_aide_check(&g);
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("/run/user/*", "/run/user/1000/x"));
        assert!(wildcard("*/containerd/*", "/var/lib/containerd/io/x"));
        assert!(!wildcard("*/containerd/*", "/var/lib/containerd"));
        assert!(wildcard("/var/*/private/*", "/var/lib/private/x"));
        assert!(!wildcard("/snap/*", "/snapx"));
    }

    #[test]
    fn kernel_params() {
        let p = [
            "ro",
            "quiet",
            "audit=0",
            "audit=1",
            "audit_backlog_limit=8192",
        ];
        assert!(param_ok(&p, "audit", Some("1"), None).0);
        assert!(param_ok(&p, "audit_backlog_limit", None, Some(8192)).0);
        assert!(!param_ok(&p, "audit_backlog_limit", None, Some(16384)).0);
        assert!(!param_ok(&["audit=1", "audit=0"], "audit", Some("1"), None).0);
    }

    #[test]
    fn auditd_conf_parsing() {
        let (l, notes) = parse_auditd_conf(
            "# c\nMax_Log_File = 8\nspace_left_action=email\nspace_left_action = exec /x.sh\n",
        );
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].key, "max_log_file");
        assert_eq!(l[1].value, "exec");
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn usrmerge_twins() {
        assert_eq!(
            usrmerge_twin("/sbin/auditctl").as_deref(),
            Some("/usr/sbin/auditctl")
        );
        assert_eq!(
            usrmerge_twin("/usr/sbin/auditd").as_deref(),
            Some("/sbin/auditd")
        );
    }
}
