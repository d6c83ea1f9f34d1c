//! `audit.*` checks: auditd (boot parameters, auditd.conf, the rules in
//! /etc/audit/rules.d, audit log permissions), AIDE (configuration and scheduling),
//! and the filesystem-wide permission rules fed by the shared walk (world-writable
//! and unowned files).

mod aide;
mod regex;
pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use self::rules::{
    canonical, find, loaded, ruleset, task_never, Atom, Found, Kind, Requirement, RuleSet,
};
use super::file::{describe_meta, judge, parse_mode};
use super::logging::{uid_min, MAX_LISTED};
use crate::facts::accounts::accounts;
use crate::facts::mounts::{self, Mount};
use crate::facts::packages::packages;
use crate::facts::walk::walk;
use crate::facts::{FactError, Facts, FileKind, FileMeta};
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
    #[serde(rename = "audit.aide_scheduled")]
    AideScheduled {},
    /// AIDE's configuration selects each file (or its /usr-merged twin) with a rule
    /// whose attributes include all of `attributes`.
    #[serde(rename = "audit.aide_rules")]
    AideRules {
        paths: Vec<String>,
        attributes: Vec<String>,
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
            Check::AideScheduled {} => {
                let (ok, ev) = aide::scheduled(facts)?;
                Ok(Outcome::new(
                    if ok { Status::Pass } else { Status::Fail },
                    ev,
                ))
            }
            Check::AideRules { paths, attributes } => aide_rules(facts, paths, attributes),
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
// auditd.conf

const AUDITD_CONF: &str = "/etc/audit/auditd.conf";

/// One `key = value [option]` of auditd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfLine {
    pub key: String,
    pub value: String,
    pub source: String,
    pub text: String,
}

/// auditd.conf as auditd reads it (`None` when missing), with notes on lines it
/// would reject.
fn auditd_conf(facts: &Facts) -> Arc<Result<Option<(Vec<ConfLine>, Vec<String>)>, FactError>> {
    facts.memo("auditd-conf", || {
        let Some(text) = facts.read(AUDITD_CONF)? else {
            return Ok(None);
        };
        Ok(Some(parse_auditd_conf(&text)))
    })
}

/// auditd splits each line on blanks and wants exactly `name = value [option]`.
pub fn parse_auditd_conf(text: &str) -> (Vec<ConfLine>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let toks: Vec<&str> = raw.split_whitespace().collect();
        if toks.is_empty() || toks[0].starts_with('#') {
            continue;
        }
        let source = format!("{AUDITD_CONF}:{}", n + 1);
        if toks.len() < 3 || toks[1] != "=" || toks.len() > 4 {
            notes.push(format!(
                "{source}: `{}` is not `name = value`; auditd rejects it",
                raw.trim()
            ));
            continue;
        }
        out.push(ConfLine {
            key: toks[0].to_ascii_lowercase(),
            value: toks[2].to_string(),
            source,
            text: raw.trim().to_string(),
        });
    }
    (out, notes)
}

/// auditd's built-in values for the keys the benchmark names.
fn auditd_default(key: &str) -> Option<&'static str> {
    Some(match key {
        "log_file" => "/var/log/audit/audit.log",
        "log_group" => "root",
        "max_log_file_action" => "ignore",
        "space_left_action" => "ignore",
        "admin_space_left_action" => "ignore",
        "disk_full_action" => "ignore",
        "disk_error_action" => "syslog",
        _ => return None,
    })
}

/// The effective value of `key` with its evidence line; `None` when auditd.conf
/// is missing.
fn auditd_value(facts: &Facts, key: &str) -> Result<Option<(Option<String>, String)>, FactError> {
    let c = auditd_conf(facts);
    let Some((lines, _)) = c.as_ref().as_ref().map_err(Clone::clone)? else {
        return Ok(None);
    };
    let key = key.to_ascii_lowercase();
    Ok(Some(match lines.iter().rev().find(|l| l.key == key) {
        Some(l) => (Some(l.value.clone()), format!("{}: {}", l.source, l.text)),
        None => match auditd_default(&key) {
            Some(d) => (
                Some(d.to_string()),
                format!("{key} not set in {AUDITD_CONF}; auditd default {d}"),
            ),
            None => (None, format!("{key} not set in {AUDITD_CONF}")),
        },
    }))
}

fn auditd_conf_check(facts: &Facts, settings: &[ConfRequirement]) -> Result<Outcome, FactError> {
    let c = auditd_conf(facts);
    let Some((_, notes)) = c.as_ref().as_ref().map_err(Clone::clone)? else {
        return Ok(Outcome::fail(format!(
            "{AUDITD_CONF} not found (auditd is not installed or not configured)"
        )));
    };
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for req in settings {
        let (ok, lines) = judge_setting(facts, req)?;
        if ok {
            good.extend(lines);
        } else {
            bad.extend(lines);
        }
    }
    good.extend(notes.iter().cloned());
    Ok(Outcome::from_findings(bad, good))
}

/// Judges one setting of an existing auditd.conf: (met, evidence).
fn judge_setting(facts: &Facts, req: &ConfRequirement) -> Result<(bool, Vec<String>), FactError> {
    let key = req.key.as_str();
    let Some((value, line)) = auditd_value(facts, key)? else {
        return Ok((false, vec![format!("{AUDITD_CONF} not found")]));
    };
    let Some(v) = value else {
        return Ok((false, vec![line, format!("{key} must be set")]));
    };
    let mut shown = v.clone();
    if key.eq_ignore_ascii_case("log_group") {
        if let Ok(gid) = v.parse::<u32>() {
            if let Ok(acc) = accounts(facts).as_ref() {
                shown = acc.group_name(gid);
            }
        }
    }
    let ok_allowed =
        req.allowed.is_empty() || req.allowed.iter().any(|a| a.eq_ignore_ascii_case(&shown));
    let ok_min = match req.min {
        Some(m) => v.chars().all(|c| c.is_ascii_digit()) && v.parse::<u64>().is_ok_and(|n| n >= m),
        None => true,
    };
    if ok_allowed && ok_min {
        return Ok((true, vec![line]));
    }
    let mut need = Vec::new();
    if !req.allowed.is_empty() {
        need.push(format!("one of {}", req.allowed.join(", ")));
    }
    if let Some(m) = req.min {
        need.push(format!("a number of at least {m}"));
    }
    Ok((
        false,
        vec![
            line,
            format!("{key} is {shown}; it must be {}", need.join(" and ")),
        ],
    ))
}

// ---------------------------------------------------------------------------
// Audit rules

const NOT_LOADED: &str =
    "judged the rules in /etc/audit/rules.d as augenrules loads them; the rules loaded in the kernel were not examined";

fn rules_or_fail(
    facts: &Facts,
) -> Result<Result<Arc<Result<RuleSet, FactError>>, Outcome>, FactError> {
    let set = ruleset(facts);
    let files = set.as_ref().as_ref().map_err(Clone::clone)?.files.len();
    if files == 0 {
        return Ok(Err(Outcome::fail(format!(
            "no *.rules files in {}: no audit rules are loaded at boot",
            rules::RULES_DIR
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
                if !grouped.contains_key(&key) {
                    order.push(key.clone());
                    grouped.insert(key, Vec::new());
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

/// A requirement's atoms, with its path resolved as the rules' paths are.
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
    let set = set.as_ref().as_ref().map_err(Clone::clone)?;
    let min = uid_min(facts)?;
    let mut bad = Vec::new();
    let mut good: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    if let Some(t) = task_never(set) {
        bad.push(format!(
            "{}: this rule turns off syscall auditing for every process",
            t.describe()
        ));
    }
    for r in reqs {
        let atoms = atoms_of(facts, r, min)?;
        for a in atoms {
            match find(set, &a) {
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
    let set = set.as_ref().as_ref().map_err(Clone::clone)?;
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

// ---------------------------------------------------------------------------
// sudo's log file

/// The `logfile` sudo uses: the last global `Defaults logfile=` (or `!logfile`)
/// across /etc/sudoers and its includes. Outer `None`: no /etc/sudoers.
pub fn sudo_logfile(facts: &Facts) -> Result<Option<(Option<String>, String)>, FactError> {
    if facts.read("/etc/sudoers")?.is_none() {
        return Ok(None);
    }
    let mut found: Option<(Option<String>, String)> = None;
    let mut seen = std::collections::HashSet::new();
    read_sudoers(facts, "/etc/sudoers", 0, &mut seen, &mut found)?;
    Ok(Some(found.unwrap_or((
        None,
        "no Defaults logfile= in /etc/sudoers or its includes".into(),
    ))))
}

fn read_sudoers(
    facts: &Facts,
    path: &str,
    depth: usize,
    seen: &mut std::collections::HashSet<String>,
    found: &mut Option<(Option<String>, String)>,
) -> Result<(), FactError> {
    if depth > 8 || !seen.insert(path.to_string()) {
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        return Ok(());
    };
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
    let mut pending = String::new();
    let mut start = 0;
    for (n, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = n + 1;
        }
        if let Some(s) = raw.strip_suffix('\\') {
            pending.push_str(s);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let line = line.trim();
        let source = format!("{path}:{start}");
        let directive = line.strip_prefix('#').or_else(|| line.strip_prefix('@'));
        if let Some(d) = directive {
            let (word, arg) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
            let arg = arg.trim().trim_matches('"');
            let abs = |a: &str| {
                if a.starts_with('/') {
                    a.to_string()
                } else {
                    format!("{dir}/{a}")
                }
            };
            match word {
                "include" if !arg.is_empty() => {
                    read_sudoers(facts, &abs(arg), depth + 1, seen, found)?
                }
                "includedir" if !arg.is_empty() => {
                    let d = abs(arg);
                    for name in facts.list_dir(&d)? {
                        if name.ends_with('~') || name.contains('.') {
                            continue;
                        }
                        read_sudoers(facts, &format!("{d}/{name}"), depth + 1, seen, found)?;
                    }
                }
                _ => {}
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("Defaults") else {
            continue;
        };
        if !rest.starts_with(char::is_whitespace) {
            continue; // Defaults:user, Defaults@host, … apply to some sessions only
        }
        let rest = strip_sudo_comment(rest);
        for param in split_commas(rest) {
            let p = param.trim();
            if p == "!logfile" {
                *found = Some((None, format!("{source}: {}", line.trim())));
            } else if let Some(v) = p.strip_prefix("logfile") {
                if let Some(v) = v.trim_start().strip_prefix('=') {
                    let v = v.trim().trim_matches('"').to_string();
                    *found = Some((Some(v), format!("{source}: {}", line.trim())));
                }
            }
        }
    }
    Ok(())
}

fn strip_sudo_comment(s: &str) -> &str {
    let mut in_q = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_q = !in_q,
            '#' if !in_q => return &s[..i],
            _ => {}
        }
    }
    s
}

fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_q = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_q = !in_q,
            ',' if !in_q => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn sudo_log(facts: &Facts, perms: &str) -> Result<Outcome, FactError> {
    let Some((file, line)) = sudo_logfile(facts)? else {
        return Ok(Outcome::not_applicable(
            "/etc/sudoers not found: sudo is not installed",
        ));
    };
    let Some(file) = file else {
        return Ok(Outcome::fail(format!("{line}: sudo keeps no log file of its own to audit (see the sudo log file recommendation)")));
    };
    let req = Requirement {
        path: Some(file),
        perms: Some(perms.to_string()),
        syscalls: vec![],
        arch: vec![],
        filters: vec![],
        compare: vec![],
    };
    judge_requirements(facts, &[req], vec![line])
}

// ---------------------------------------------------------------------------
// Privileged commands

/// The mount holding `path`: live mounts when live, else /etc/fstab.
fn mount_table(facts: &Facts) -> Result<Vec<Mount>, FactError> {
    let m = if facts.is_live() {
        mounts::live(facts)
    } else {
        mounts::fstab(facts)
    };
    Ok(m.as_ref().as_ref().map_err(Clone::clone)?.clone())
}

fn mount_of<'a>(table: &'a [Mount], path: &str) -> Option<&'a Mount> {
    table
        .iter()
        .filter(|m| {
            m.target == "/"
                || path == m.target
                || path.starts_with(&format!("{}/", m.target.trim_end_matches('/')))
        })
        .max_by_key(|m| m.target.len())
}

fn privileged(facts: &Facts, filters: &[String]) -> Result<Outcome, FactError> {
    let w = walk(facts);
    let w = w.as_ref().as_ref().map_err(Clone::clone)?;
    let table = mount_table(facts)?;
    let mut files: Vec<&FileMeta> = Vec::new();
    let mut skipped = 0;
    for m in &w.suid_sgid {
        match mount_of(&table, &m.path) {
            Some(mt) if mt.has_option("nosuid") || mt.has_option("noexec") => skipped += 1,
            _ => files.push(m),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    if files.is_empty() {
        return Ok(Outcome::pass(format!(
            "no setuid or setgid files found on filesystems mounted with setuid and exec allowed ({} entries walked)",
            w.entries
        )));
    }
    let set = match rules_or_fail(facts)? {
        Ok(s) => s,
        Err(o) => return Ok(o),
    };
    let set = set.as_ref().as_ref().map_err(Clone::clone)?;
    let min = uid_min(facts)?;
    let mut bad = Vec::new();
    let mut covered = 0;
    for f in &files {
        let req = Requirement {
            path: Some(f.path.clone()),
            perms: Some("x".into()),
            syscalls: vec![],
            arch: vec![],
            filters: filters.to_vec(),
            compare: vec![],
        };
        let atoms = atoms_of(facts, &req, min)?;
        let mut ok = true;
        for a in &atoms {
            match find(set, a) {
                Found::Covered(_) => {}
                Found::Suppressed { by, .. } => {
                    ok = false;
                    bad.push(format!("{}: suppressed by {}", f.path, by.describe()));
                    break;
                }
                Found::Missing => {
                    ok = false;
                    bad.push(format!(
                        "{} (mode {:04o}): missing: {}",
                        f.path,
                        f.mode,
                        a.suggest()
                    ));
                    break;
                }
            }
        }
        if ok {
            covered += 1;
        }
    }
    let n_bad = bad.len();
    if n_bad > MAX_LISTED {
        let more = n_bad - MAX_LISTED;
        bad.truncate(MAX_LISTED);
        bad.push(format!("… and {more} more"));
    }
    let mut good = vec![format!(
        "{} setuid/setgid files found, {covered} with an execution audit rule{}",
        files.len(),
        if skipped > 0 {
            format!("; {skipped} on nosuid/noexec mounts not counted")
        } else {
            String::new()
        }
    )];
    good.push(NOT_LOADED.into());
    Ok(Outcome::from_findings(bad, good))
}

// ---------------------------------------------------------------------------
// Audit log files

fn log_files(
    facts: &Facts,
    target: LogTarget,
    max: Option<u32>,
    owner: &[String],
    group: &[String],
    log_group: &[String],
) -> Result<Outcome, FactError> {
    let pk = packages(facts);
    let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
    if !pk.is_installed("auditd") {
        return Ok(Outcome::not_applicable(format!(
            "{}: there are no audit logs to judge",
            pk.describe("auditd")
        )));
    }
    let (file, line) = auditd_value(facts, "log_file")?.unwrap_or((
        Some("/var/log/audit/audit.log".into()),
        format!("{AUDITD_CONF} not found; auditd default log_file"),
    ));
    let file = file.unwrap_or_else(|| "/var/log/audit/audit.log".into());
    let dir = match file.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((d, _)) => d.to_string(),
    };
    let acc = accounts(facts);
    let acc = acc.as_ref().as_ref().ok();
    let mut good = vec![line];
    let mut bad = Vec::new();
    if !log_group.is_empty() {
        let req = ConfRequirement {
            key: "log_group".into(),
            allowed: log_group.to_vec(),
            min: None,
        };
        let (ok, lines) = judge_setting(facts, &req)?;
        if ok {
            good.extend(lines);
        } else {
            bad.extend(lines);
        }
    }
    let Some(dmeta) = facts.stat(&dir)? else {
        return Ok(Outcome::not_applicable(format!(
            "audit log directory {dir} does not exist (auditd has not run)"
        )));
    };
    match target {
        LogTarget::Directory => {
            let b = judge(&dmeta, max, owner, group, acc);
            if b.is_empty() {
                good.push(describe_meta(&dmeta, acc));
            }
            bad.extend(b);
        }
        LogTarget::Files => {
            let mut files = Vec::new();
            collect_files(facts, &dir, 0, &mut files)?;
            if files.is_empty() && bad.is_empty() {
                return Ok(Outcome::not_applicable(format!(
                    "no audit log files in {dir} yet"
                )));
            }
            for m in &files {
                let b = judge(m, max, owner, group, acc);
                if b.is_empty() {
                    good.push(describe_meta(m, acc));
                }
                bad.extend(b);
            }
        }
    }
    Ok(Outcome::from_findings(bad, good))
}

fn collect_files(
    facts: &Facts,
    dir: &str,
    depth: usize,
    out: &mut Vec<FileMeta>,
) -> Result<(), FactError> {
    if depth > 4 {
        return Ok(());
    }
    for name in facts.list_dir(dir)? {
        let p = format!("{}/{name}", dir.trim_end_matches('/'));
        let Some(m) = facts.lstat(&p)? else { continue };
        match m.kind {
            FileKind::File => out.push(m),
            FileKind::Dir => collect_files(facts, &p, depth + 1, out)?,
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// AIDE rules

/// The same file under the other half of the /usr merge (`/sbin/x` ↔ `/usr/sbin/x`).
fn usrmerge_twin(p: &str) -> Option<String> {
    for d in ["/sbin/", "/bin/", "/lib/"] {
        if let Some(rest) = p.strip_prefix(d) {
            return Some(format!("/usr{d}{rest}"));
        }
        if let Some(rest) = p.strip_prefix(&format!("/usr{d}")) {
            return Some(format!("{d}{rest}"));
        }
    }
    None
}

fn aide_rules(
    facts: &Facts,
    paths: &[String],
    attributes: &[String],
) -> Result<Outcome, FactError> {
    let c = aide::aide_conf(facts);
    let conf = c.as_ref().as_ref().map_err(Clone::clone)?;
    if conf.files.is_empty() {
        return Ok(Outcome::fail(format!(
            "{} not found: AIDE is not installed or not configured",
            aide::AIDE_CONF
        )));
    }
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for p in paths {
        let mut tried = Vec::new();
        let mut ok_line = None;
        for cand in std::iter::once(p.clone()).chain(usrmerge_twin(p)) {
            match aide::verdict(conf, &cand) {
                aide::Verdict::Rule(r) => {
                    let lacking: Vec<&str> = attributes
                        .iter()
                        .filter(|a| !r.attrs.contains(a.as_str()))
                        .map(String::as_str)
                        .collect();
                    if lacking.is_empty() {
                        ok_line = Some(format!("{cand}: selected by {}: {}", r.source, r.text));
                        break;
                    }
                    let unk = if r.unknown.is_empty() {
                        String::new()
                    } else {
                        format!("; unknown names {}", r.unknown.join(", "))
                    };
                    tried.push(format!(
                        "{cand}: selected by {}: {} — lacks {}{unk}",
                        r.source,
                        r.text,
                        lacking.join("+")
                    ));
                }
                aide::Verdict::Excluded(r) => {
                    tried.push(format!("{cand}: excluded by {}: {}", r.source, r.text))
                }
                aide::Verdict::NotSelected => {
                    tried.push(format!("{cand}: no AIDE rule selects it"))
                }
            }
        }
        match ok_line {
            Some(l) => good.push(l),
            None => bad.extend(tried),
        }
    }
    if !bad.is_empty() {
        bad.push(format!(
            "each audit tool needs a rule with {}",
            attributes.join("+")
        ));
        bad.extend(conf.notes.iter().cloned());
    }
    good.push(format!("read {}", conf.files.join(", ")));
    Ok(Outcome::from_findings(bad, good))
}

// ---------------------------------------------------------------------------
// Filesystem walk: world-writable and unowned files

/// `find -path` matching: `*` matches any run of characters, `/` included.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

struct Scope {
    patterns: Vec<String>,
    prefixes: Vec<String>,
    notes: Vec<String>,
}

impl Scope {
    fn new(facts: &Facts, s: &WalkScope) -> Result<Scope, FactError> {
        let table = mount_table(facts)?;
        let mut prefixes = Vec::new();
        let mut notes = Vec::new();
        for m in &table {
            if m.target == "/" {
                continue;
            }
            let by_type = s
                .skip_fstypes
                .iter()
                .any(|t| m.fstype == *t || m.fstype.starts_with(&format!("{t}.")));
            let by_mount = s.skip_mounts.iter().any(|p| wildcard(p, &m.target));
            if by_type || by_mount {
                prefixes.push(m.target.trim_end_matches('/').to_string());
                notes.push(format!("{} ({}) left out", m.target, m.fstype));
            }
        }
        Ok(Scope {
            patterns: s.exclude.clone(),
            prefixes,
            notes,
        })
    }

    fn excluded(&self, path: &str) -> bool {
        self.patterns.iter().any(|p| wildcard(p, path))
            || self
                .prefixes
                .iter()
                .any(|x| path == x || path.starts_with(&format!("{x}/")))
    }
}

fn list_findings(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    let n = items.len();
    if n > MAX_LISTED {
        items.truncate(MAX_LISTED);
        items.push(format!("… and {} more", n - MAX_LISTED));
    }
    items
}

fn walk_summary(w: &crate::facts::walk::WalkResult, scope: &Scope, ev: &mut Vec<String>) {
    let mut s = format!("{} entries walked on local filesystems", w.entries);
    if !w.skipped.is_empty() {
        s.push_str(&format!(
            "; pseudo, network and memory filesystems skipped: {}",
            w.skipped.len()
        ));
    }
    ev.push(s);
    ev.extend(scope.notes.iter().cloned());
    let errs: Vec<&String> = w
        .errors
        .iter()
        .filter(|e| !scope.excluded(e.split(':').next().unwrap_or("")))
        .collect();
    if !errs.is_empty() {
        ev.push(format!(
            "{} directories could not be read and were not examined (first: {})",
            errs.len(),
            errs[0]
        ));
    }
}

fn world_writable(facts: &Facts, s: &WalkScope) -> Result<Outcome, FactError> {
    let w = walk(facts);
    let w = w.as_ref().as_ref().map_err(Clone::clone)?;
    let scope = Scope::new(facts, s)?;
    let mut bad = Vec::new();
    for m in w
        .world_writable_files
        .iter()
        .filter(|m| !scope.excluded(&m.path))
    {
        bad.push(format!(
            "{}: world-writable file (mode {:04o})",
            m.path, m.mode
        ));
    }
    for m in w
        .world_writable_dirs_without_sticky
        .iter()
        .filter(|m| !scope.excluded(&m.path))
    {
        bad.push(format!(
            "{}: world-writable directory without the sticky bit (mode {:04o})",
            m.path, m.mode
        ));
    }
    let mut ev = list_findings(bad);
    let failed = !ev.is_empty();
    walk_summary(w, &scope, &mut ev);
    if !failed {
        ev.insert(
            0,
            "no world-writable files, and every world-writable directory has the sticky bit".into(),
        );
    }
    Ok(Outcome::new(
        if failed { Status::Fail } else { Status::Pass },
        ev,
    ))
}

fn unowned(facts: &Facts, s: &WalkScope) -> Result<Outcome, FactError> {
    let w = walk(facts);
    let w = w.as_ref().as_ref().map_err(Clone::clone)?;
    let scope = Scope::new(facts, s)?;
    let mut bad = Vec::new();
    for m in w.unowned.iter().filter(|m| !scope.excluded(&m.path)) {
        bad.push(format!(
            "{}: owner UID {} is not in /etc/passwd",
            m.path, m.uid
        ));
    }
    for m in w.ungrouped.iter().filter(|m| !scope.excluded(&m.path)) {
        bad.push(format!(
            "{}: group GID {} is not in /etc/group",
            m.path, m.gid
        ));
    }
    let mut ev = list_findings(bad);
    let failed = !ev.is_empty();
    walk_summary(w, &scope, &mut ev);
    if !failed {
        ev.insert(
            0,
            "every file and directory has an owner and group known to passwd and group".into(),
        );
    }
    Ok(Outcome::new(
        if failed { Status::Fail } else { Status::Pass },
        ev,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let q = rules::parse_filter("auid>=1000").unwrap();
        for g in garbage() {
            if let Ok((kind, _)) = rules::parse_line(&g) {
                if let Kind::Rule { filters, .. } = &kind {
                    for f in filters {
                        let _ = rules::implied_by(std::slice::from_ref(&q), f);
                        let _ = rules::implied_by(std::slice::from_ref(f), &q);
                    }
                }
            }
            let _ = parse_auditd_conf(&g);
            let _ = split_commas(&g);
            let _ = strip_sudo_comment(&g);
            let _ = wildcard(&g, "/a/b");
            let _ = rules::version_cmp(&g, "10-x.rules");
            if let Some(r) = regex::Regex::new(&g) {
                let _ = r.matches_prefix("/usr/sbin/auditctl");
                let _ = r.matches_full(&g);
            }
            let _ = aide::runs_aide_check(&g);
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
    fn sudo_defaults() {
        assert_eq!(
            split_commas("use_pty, logfile=\"/a,b\", !lecture"),
            vec!["use_pty", " logfile=\"/a,b\"", " !lecture"]
        );
        assert_eq!(strip_sudo_comment(" logfile=/x # note"), " logfile=/x ");
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
