//! `time.*` checks: which time synchronisation daemon is in use (chrony or
//! systemd-timesyncd), and the configuration of that daemon.
//!
//! A daemon is *in use* when its unit exists, is not masked, and starts at boot
//! (enabled, or pulled in by a package's own link) or (on a live system) runs. Checks about one daemon are not applicable when that daemon
//! is not in use — the other one is, or none is (which [`Check::SingleDaemon`]
//! reports as a failure).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::checks::logging::parse_unit_ini;
use crate::facts::kv::{self, Setting};
use crate::facts::packages::packages;
use crate::facts::units::{unit, UnitState};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// A time synchronisation daemon this benchmark accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    Chrony,
    Timesyncd,
}

impl Daemon {
    fn unit(self) -> &'static str {
        match self {
            Daemon::Chrony => "chrony.service",
            Daemon::Timesyncd => "systemd-timesyncd.service",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Daemon::Chrony => "chrony",
            Daemon::Timesyncd => "systemd-timesyncd",
        }
    }
}

/// Where chrony keeps its files: Debian's layout (the default) or the one of RHEL,
/// its rebuilds and Amazon Linux.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// /etc/chrony/chrony.conf, `DAEMON_OPTS` in /etc/default/chrony, chrony.service,
    /// user `_chrony`.
    #[default]
    Debian,
    /// /etc/chrony.conf, `OPTIONS` in /etc/sysconfig/chronyd, chronyd.service, user
    /// `chrony`; judged whenever the chrony package is installed.
    Rhel,
}

impl Layout {
    fn main(self) -> &'static str {
        match self {
            Layout::Debian => "/etc/chrony/chrony.conf",
            Layout::Rhel => "/etc/chrony.conf",
        }
    }
    /// The file of daemon options, and the variable holding them.
    fn options(self) -> (&'static str, &'static str) {
        match self {
            Layout::Debian => ("/etc/default/chrony", "DAEMON_OPTS"),
            Layout::Rhel => ("/etc/sysconfig/chronyd", "OPTIONS"),
        }
    }
    /// The user chronyd drops to when the configuration names none (built in).
    fn default_user(self) -> &'static str {
        match self {
            Layout::Debian => "_chrony",
            Layout::Rhel => "chrony",
        }
    }
}

/// The `time.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Exactly one of chrony and systemd-timesyncd is in use.
    #[serde(rename = "time.single_daemon")]
    SingleDaemon {},
    /// The daemon's unit is enabled and, on a live system, running. Not applicable
    /// when the daemon is not in use.
    #[serde(rename = "time.service_enabled")]
    ServiceEnabled { daemon: Daemon },
    /// systemd-timesyncd has servers configured with `NTP=` or `FallbackNTP=` in
    /// timesyncd.conf or its drop-ins. The compiled-in fallback list does not count.
    #[serde(rename = "time.timesyncd_servers")]
    TimesyncdServers {},
    /// chrony has at least one `server` or `pool` source in chrony.conf, its
    /// `confdir`/`include` files or its `sourcedir` `.sources` files.
    #[serde(rename = "time.chrony_sources")]
    ChronySources {
        #[serde(default)]
        layout: Layout,
    },
    /// chronyd does not run as root: no `user root` directive or `-u root` option,
    /// and (live) no chronyd process with effective UID 0.
    #[serde(rename = "time.chrony_user")]
    ChronyUser {
        #[serde(default)]
        layout: Layout,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        Ok(match self {
            Check::SingleDaemon {} => single_daemon(facts)?,
            Check::ServiceEnabled { daemon } => {
                let st = state(facts, *daemon)?;
                if !st.in_use {
                    return not_in_use(facts, *daemon);
                }
                let u = &st.unit;
                let ok = u.enabled() && u.active != Some(false);
                let mut ev = vec![u.describe()];
                if u.enabled() && u.active.is_none() {
                    ev.push(
                        "running state not examined (offline root or systemd not running)".into(),
                    );
                }
                Outcome::new(if ok { Status::Pass } else { Status::Fail }, ev)
            }
            Check::TimesyncdServers {} => {
                if !state(facts, Daemon::Timesyncd)?.in_use {
                    return not_in_use(facts, Daemon::Timesyncd);
                }
                timesyncd_servers(facts)?
            }
            Check::ChronySources { layout } => {
                if let Some(na) = chrony_not_applicable(facts, *layout)? {
                    return Ok(na);
                }
                chrony_sources(facts, *layout)?
            }
            Check::ChronyUser { layout } => {
                if let Some(na) = chrony_not_applicable(facts, *layout)? {
                    return Ok(na);
                }
                chrony_user(facts, *layout)?
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Which daemon is in use
// ---------------------------------------------------------------------------

/// Whether one daemon is in use, and its unit.
#[derive(Debug, Clone)]
pub struct DaemonState {
    pub unit: UnitState,
    pub in_use: bool,
}

/// The state of `daemon`'s unit, read once per scan.
pub fn state(facts: &Facts, daemon: Daemon) -> Result<DaemonState, FactError> {
    let u = unit(facts, daemon.unit());
    let u = u.as_ref().as_ref().map_err(Clone::clone)?.clone();
    let in_use = u.in_use();
    Ok(DaemonState { unit: u, in_use })
}

/// Time daemons the benchmark does not accept; named in evidence when enabled.
const OTHER_TIME_UNITS: [&str; 3] = ["ntpsec.service", "ntp.service", "openntpd.service"];

fn single_daemon(facts: &Facts) -> Result<Outcome, FactError> {
    let c = state(facts, Daemon::Chrony)?;
    let t = state(facts, Daemon::Timesyncd)?;
    let mut ev = vec![c.unit.describe(), t.unit.describe()];
    for name in OTHER_TIME_UNITS {
        let u = unit(facts, name);
        let u = u.as_ref().as_ref().map_err(Clone::clone)?;
        if u.in_use() {
            ev.push(format!(
                "{} (this benchmark accepts only chrony or systemd-timesyncd)",
                u.describe()
            ));
        }
    }
    Ok(match (c.in_use, t.in_use) {
        (true, false) => {
            ev.insert(0, "chrony is the time synchronisation daemon in use".into());
            Outcome::new(Status::Pass, ev)
        }
        (false, true) => {
            ev.insert(
                0,
                "systemd-timesyncd is the time synchronisation daemon in use".into(),
            );
            Outcome::new(Status::Pass, ev)
        }
        (true, true) => {
            ev.insert(
                0,
                "both chrony and systemd-timesyncd are in use; they would fight over the clock"
                    .into(),
            );
            Outcome::new(Status::Fail, ev)
        }
        (false, false) => {
            ev.insert(
                0,
                "neither chrony nor systemd-timesyncd is enabled or running".into(),
            );
            Outcome::new(Status::Fail, ev)
        }
    })
}

/// Why a chrony check does not apply: on Debian, chrony is not the time daemon in
/// use; in the RHEL layout, the chrony package is not installed (its own
/// recommendation reports that). `None` when it applies.
fn chrony_not_applicable(facts: &Facts, layout: Layout) -> Result<Option<Outcome>, FactError> {
    match layout {
        Layout::Debian => {
            if state(facts, Daemon::Chrony)?.in_use {
                Ok(None)
            } else {
                not_in_use(facts, Daemon::Chrony).map(Some)
            }
        }
        Layout::Rhel => {
            let pk = packages(facts);
            let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
            if pk.is_installed("chrony") {
                Ok(None)
            } else {
                Ok(Some(Outcome::not_applicable(pk.describe("chrony"))))
            }
        }
    }
}

fn not_in_use(facts: &Facts, daemon: Daemon) -> Result<Outcome, FactError> {
    let st = state(facts, daemon)?;
    let other = match daemon {
        Daemon::Chrony => Daemon::Timesyncd,
        Daemon::Timesyncd => Daemon::Chrony,
    };
    let reason = if state(facts, other)?.in_use {
        format!(
            "{} is not the time daemon in use ({} is)",
            daemon.name(),
            other.name()
        )
    } else {
        format!(
            "{} is not in use (no accepted time daemon is; see 2.3.1.1)",
            daemon.name()
        )
    };
    Ok(Outcome::new(
        Status::NotApplicable,
        vec![reason, st.unit.describe()],
    ))
}

// ---------------------------------------------------------------------------
// systemd-timesyncd
// ---------------------------------------------------------------------------

/// The effective server lists of timesyncd: each assignment adds to its list, an
/// empty assignment clears it, files read in systemd's order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TimesyncdServers {
    pub ntp: Vec<Setting>,
    pub fallback: Vec<Setting>,
    /// Every `NTP=`/`FallbackNTP=` line read, in order.
    pub lines: Vec<Setting>,
}

/// Applies `[Time]` settings read in order.
pub fn timesyncd_lists(settings: &[Setting]) -> TimesyncdServers {
    let mut out = TimesyncdServers::default();
    for s in settings {
        let list = match s.key.as_str() {
            "NTP" => &mut out.ntp,
            "FallbackNTP" => &mut out.fallback,
            _ => continue,
        };
        out.lines.push(s.clone());
        if s.value.trim().is_empty() {
            list.clear();
        } else {
            list.push(s.clone());
        }
    }
    out
}

/// The `[Time]` settings of timesyncd.conf and its drop-ins as systemd-timesyncd
/// reads them, and the files read.
pub fn timesyncd_settings(facts: &Facts) -> Result<(Vec<Setting>, Vec<String>), FactError> {
    let mut settings = Vec::new();
    let mut read = Vec::new();
    for (path, text) in kv::systemd_daemon_files(facts, "timesyncd.conf")? {
        settings.extend(parse_unit_ini(&text, &path, "Time"));
        read.push(path);
    }
    Ok((settings, read))
}

fn timesyncd_servers(facts: &Facts) -> Result<Outcome, FactError> {
    let (settings, files) = timesyncd_settings(facts)?;
    let l = timesyncd_lists(&settings);
    let mut ev: Vec<String> = l.lines.iter().map(Setting::describe).collect();
    if files.is_empty() {
        ev.push("/etc/systemd/timesyncd.conf and its drop-in directories: no file found".into());
    } else {
        ev.push(format!("read {}", files.join(", ")));
    }
    if l.ntp.is_empty() && l.fallback.is_empty() {
        ev.insert(
            0,
            "no NTP= or FallbackNTP= server is configured; timesyncd would rely on servers from the network \
             configuration or its compiled-in fallback list, which do not count as configured sources"
                .into(),
        );
        return Ok(Outcome::new(Status::Fail, ev));
    }
    let join = |v: &[Setting]| {
        v.iter()
            .map(|s| s.value.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut head = Vec::new();
    if !l.ntp.is_empty() {
        head.push(format!("effective NTP servers: {}", join(&l.ntp)));
    }
    if !l.fallback.is_empty() {
        head.push(format!(
            "effective FallbackNTP servers: {}",
            join(&l.fallback)
        ));
    }
    head.extend(ev);
    Ok(Outcome::new(Status::Pass, head))
}

// ---------------------------------------------------------------------------
// chrony
// ---------------------------------------------------------------------------

/// One chrony directive with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased: chrony compares directive names without regard to case.
    pub name: String,
    pub args: String,
    /// `path:line`.
    pub source: String,
}

impl Directive {
    pub fn describe(&self) -> String {
        format!("{}: {} {}", self.source, self.name, self.args)
            .trim_end()
            .to_string()
    }
}

/// chrony's configuration, with every file read.
#[derive(Debug, Default)]
pub struct ChronyConfig {
    /// The main file (the layout's, or the one named by `-f` in its options file).
    pub main: String,
    pub main_found: bool,
    pub directives: Vec<Directive>,
    /// Notes for evidence (runtime directories skipped, include depth reached, …).
    pub notes: Vec<String>,
    /// The `-u USER` option from the options file, if any, with its source.
    pub user_option: Option<(String, String)>,
}

const MAX_INCLUDE_DEPTH: u8 = 8;

/// chrony's configuration in `layout`, read once per scan.
pub fn chrony_config(facts: &Facts, layout: Layout) -> Arc<Result<ChronyConfig, FactError>> {
    let key = match layout {
        Layout::Debian => "chrony-config",
        Layout::Rhel => "chrony-config-rhel",
    };
    facts.memo(key, || {
        let mut cfg = ChronyConfig {
            main: layout.main().to_string(),
            ..Default::default()
        };
        let (options, var) = layout.options();
        if let Some(text) = facts.read(options)? {
            let s = kv::parse(&text, options, kv::Separator::Equals);
            if let Some(opts) = kv::last(&s, var, false) {
                let words: Vec<&str> = opts.value.split_whitespace().collect();
                for (i, w) in words.iter().enumerate() {
                    // getopt takes an option's argument as the next word or attached
                    // to it (`-u root`, `-uroot`).
                    match (*w, words.get(i + 1)) {
                        ("-f", Some(p)) => cfg.main = p.to_string(),
                        ("-u", Some(u)) => cfg.user_option = Some((u.to_string(), opts.describe())),
                        (w, _) if w.len() > 2 && w.starts_with("-f") => {
                            cfg.main = w[2..].to_string()
                        }
                        (w, _) if w.len() > 2 && w.starts_with("-u") => {
                            cfg.user_option = Some((w[2..].to_string(), opts.describe()))
                        }
                        _ => {}
                    }
                }
            }
        }
        let main = cfg.main.clone();
        if let Some(text) = facts.read(&main)? {
            cfg.main_found = true;
            read_chrony_file(facts, &main, &text, 0, &mut cfg)?;
        }
        Ok(cfg)
    })
}

fn read_chrony_file(
    facts: &Facts,
    path: &str,
    text: &str,
    depth: u8,
    cfg: &mut ChronyConfig,
) -> Result<(), FactError> {
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', '!', ';', '%']) {
            continue;
        }
        let (name, args) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n.to_ascii_lowercase(), a.trim().to_string()),
            None => (line.to_ascii_lowercase(), String::new()),
        };
        let d = Directive {
            name: name.clone(),
            args: args.clone(),
            source: format!("{path}:{}", n + 1),
        };
        cfg.directives.push(d);
        let nested = match name.as_str() {
            "include" => {
                let mut files = Vec::new();
                for pattern in args.split_whitespace() {
                    files.extend(facts.glob(pattern)?);
                }
                files
            }
            "confdir" => dir_files(facts, &args, ".conf", cfg)?,
            "sourcedir" => dir_files(facts, &args, ".sources", cfg)?,
            _ => continue,
        };
        if depth >= MAX_INCLUDE_DEPTH {
            cfg.notes.push(format!(
                "{path}:{}: include depth {MAX_INCLUDE_DEPTH} reached, not followed",
                n + 1
            ));
            continue;
        }
        for f in nested {
            if let Some(t) = facts.read(&f)? {
                read_chrony_file(facts, &f, &t, depth + 1, cfg)?;
            }
        }
    }
    Ok(())
}

/// Files of `confdir`/`sourcedir` directories: by name across the directories, a
/// name in an earlier directory hiding the same name in a later one.
fn dir_files(
    facts: &Facts,
    dirs: &str,
    suffix: &str,
    cfg: &mut ChronyConfig,
) -> Result<Vec<String>, FactError> {
    let mut by_name = BTreeMap::new();
    for dir in dirs.split_whitespace() {
        if !facts.is_live() && (dir == "/run" || dir.starts_with("/run/")) {
            cfg.notes.push(format!(
                "{dir}: runtime directory not examined (offline root)"
            ));
            continue;
        }
        for p in facts.dir_files(dir, suffix)? {
            let name = p.rsplit('/').next().unwrap_or_default().to_string();
            by_name.entry(name).or_insert(p);
        }
    }
    Ok(by_name.into_values().collect())
}

fn chrony_sources(facts: &Facts, layout: Layout) -> Result<Outcome, FactError> {
    let cfg = chrony_config(facts, layout);
    let cfg = cfg.as_ref().as_ref().map_err(Clone::clone)?;
    let sources: Vec<String> = cfg
        .directives
        .iter()
        .filter(|d| d.name == "server" || d.name == "pool")
        .map(Directive::describe)
        .collect();
    let mut ev = sources.clone();
    ev.extend(cfg.notes.iter().cloned());
    if !cfg.main_found {
        ev.insert(0, format!("{} not found", cfg.main));
    }
    if sources.is_empty() {
        ev.insert(
            0,
            format!(
                "no server or pool directive in {} or the files it includes",
                cfg.main
            ),
        );
        return Ok(Outcome::new(Status::Fail, ev));
    }
    ev.push("whether these sources are the site's approved ones is for the reviewer".into());
    Ok(Outcome::new(Status::Pass, ev))
}

fn chrony_user(facts: &Facts, layout: Layout) -> Result<Outcome, FactError> {
    let cfg = chrony_config(facts, layout);
    let cfg = cfg.as_ref().as_ref().map_err(Clone::clone)?;
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let directive = cfg.directives.iter().rev().find(|d| d.name == "user");
    // chronyd's -u option takes precedence over the `user` directive.
    let (user, line) = match (&cfg.user_option, directive) {
        (Some((u, src)), _) => (u.clone(), format!("{src} (-u {u})")),
        (None, Some(d)) => (
            d.args
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string(),
            d.describe(),
        ),
        (None, None) => (
            layout.default_user().to_string(),
            format!(
                "{}: user not set; chronyd's default is {}",
                cfg.main,
                layout.default_user()
            ),
        ),
    };
    if user == "root" || user == "0" {
        failures.push(format!("{line}: chronyd would keep root privileges"));
    } else {
        found.push(line);
    }
    if facts.is_live() {
        let procs = chronyd_processes(facts)?;
        if procs.is_empty() {
            found.push("no chronyd process found in /proc".into());
        }
        for (pid, uid) in procs {
            let line = format!("/proc/{pid}/status: chronyd runs with effective UID {uid}");
            if uid == 0 {
                failures.push(line);
            } else {
                found.push(line);
            }
        }
    } else {
        found.push("offline root: running chronyd process not examined".into());
    }
    Ok(Outcome::from_findings(failures, found))
}

/// (pid, effective UID) of every chronyd process.
fn chronyd_processes(facts: &Facts) -> Result<Vec<(String, u32)>, FactError> {
    let mut out = Vec::new();
    for pid in facts.list_dir("/proc")? {
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A process may exit while we look: unreadable entries are skipped.
        let Ok(Some(comm)) = facts.read_runtime(&format!("/proc/{pid}/comm")) else {
            continue;
        };
        if comm.trim() != "chronyd" {
            continue;
        }
        let Ok(Some(status)) = facts.read_runtime(&format!("/proc/{pid}/status")) else {
            continue;
        };
        if let Some(uid) = effective_uid(&status) {
            out.push((pid, uid));
        }
    }
    Ok(out)
}

/// The effective UID (second field of `Uid:`) from /proc/PID/status.
pub fn effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(key: &str, value: &str, n: usize) -> Setting {
        Setting {
            key: key.into(),
            value: value.into(),
            source: format!("/f:{n}"),
        }
    }

    #[test]
    fn timesyncd_lists_accumulate_and_reset() {
        let l = timesyncd_lists(&[
            s("NTP", "a b", 1),
            s("NTP", "c", 2),
            s("FallbackNTP", "x", 3),
        ]);
        assert_eq!(l.ntp.len(), 2);
        assert_eq!(l.fallback.len(), 1);
        let l = timesyncd_lists(&[s("NTP", "a", 1), s("NTP", "", 2), s("FallbackNTP", "", 3)]);
        assert!(l.ntp.is_empty() && l.fallback.is_empty());
        assert_eq!(l.lines.len(), 3);
        // Keys are case-sensitive in systemd.
        assert!(timesyncd_lists(&[s("ntp", "a", 1)]).ntp.is_empty());
    }

    #[test]
    fn status_uid() {
        assert_eq!(
            effective_uid("Name:\tchronyd\nUid:\t0\t104\t104\t104\n"),
            Some(104)
        );
        assert_eq!(effective_uid("Uid: x"), None);
        assert_eq!(effective_uid(""), None);
    }

    #[test]
    fn chrony_reads_confdir_sourcedir_and_include() {
        let t = tempfile::tempdir().unwrap();
        let w = |p: &str, c: &str| {
            let h = t.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(h.parent().unwrap()).unwrap();
            std::fs::write(h, c).unwrap();
        };
        w(
            "/etc/chrony/chrony.conf",
            "! comment\nconfdir /etc/chrony/conf.d /usr/share/chrony/conf.d\nsourcedir /run/chrony-dhcp /etc/chrony/sources.d\nInclude /etc/chrony/extra/*.conf\nUSER root\n",
        );
        w("/etc/chrony/conf.d/a.conf", "pool p.example iburst\n");
        w("/usr/share/chrony/conf.d/a.conf", "pool hidden.example\n");
        w("/usr/share/chrony/conf.d/b.conf", "server b.example\n");
        w("/etc/chrony/sources.d/x.sources", "server s.example\n");
        w(
            "/etc/chrony/extra/loop.conf",
            "include /etc/chrony/extra/*.conf\n",
        );
        let facts = Facts::new(t.path(), false);
        let cfg = chrony_config(&facts, Layout::Debian);
        let cfg = cfg.as_ref().as_ref().unwrap();
        let servers: Vec<&str> = cfg
            .directives
            .iter()
            .filter(|d| d.name == "server" || d.name == "pool")
            .map(|d| d.args.as_str())
            .collect();
        assert_eq!(servers, vec!["p.example iburst", "b.example", "s.example"]);
        assert!(cfg.notes.iter().any(|n| n.contains("/run/chrony-dhcp")));
        assert!(
            cfg.notes.iter().any(|n| n.contains("depth")),
            "include loops stop"
        );
        assert!(cfg
            .directives
            .iter()
            .any(|d| d.name == "user" && d.args == "root"));
    }
}
