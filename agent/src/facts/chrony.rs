//! chrony's configuration as chronyd reads it (the main file, `include`, `confdir`
//! and `sourcedir` files, the daemon options), in Debian's or RHEL's layout, and the
//! chronyd processes running on a live host.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::facts::kv;
use crate::facts::{FactError, Facts, KeyedFact};

/// Where chrony keeps its files: Debian's layout (the default) or the one of RHEL,
/// its rebuilds and Amazon Linux.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
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
    /// The main configuration file.
    pub fn main(self) -> &'static str {
        match self {
            Layout::Debian => "/etc/chrony/chrony.conf",
            Layout::Rhel => "/etc/chrony.conf",
        }
    }
    /// The file of daemon options, and the variable holding them.
    pub fn options(self) -> (&'static str, &'static str) {
        match self {
            Layout::Debian => ("/etc/default/chrony", "DAEMON_OPTS"),
            Layout::Rhel => ("/etc/sysconfig/chronyd", "OPTIONS"),
        }
    }
    /// The user chronyd drops to when the configuration names none (built in).
    pub fn default_user(self) -> &'static str {
        match self {
            Layout::Debian => "_chrony",
            Layout::Rhel => "chrony",
        }
    }
}

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
pub fn chrony_config(facts: &Facts, layout: Layout) -> Result<Arc<ChronyConfig>, FactError> {
    facts.get_keyed::<ChronyConfig>(&layout)
}

impl KeyedFact for ChronyConfig {
    type Key = Layout;
    type Value = Self;
    fn read(facts: &Facts, layout: &Layout) -> Result<Self, FactError> {
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
    }
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

/// (pid, effective UID) of every chronyd process.
pub fn chronyd_processes(facts: &Facts) -> Result<Vec<(String, u32)>, FactError> {
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
        let cfg = chrony_config(&facts, Layout::Debian).unwrap();
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
