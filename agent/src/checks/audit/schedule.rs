//! Whether a periodic AIDE check is scheduled: an enabled systemd timer, or a cron
//! entry (system crontab, cron.d, per-user crontabs, run-parts directories) with the
//! cron service enabled, for Debian's cron or for cronie.

use crate::facts::units::unit;
use crate::facts::{FactError, Facts, FileKind};

/// Timers that run AIDE's check.
const TIMERS: [&str; 2] = ["dailyaidecheck.timer", "aidecheck.timer"];

/// Where periodic AIDE runs can be scheduled: crontab-format files (with a user
/// field), per-user crontabs, and run-parts script directories.
const SYSTEM_CRONTABS: [&str; 1] = ["/etc/crontab"];
const CRON_D: &str = "/etc/cron.d";
const SCRIPT_DIRS: [&str; 4] = [
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
];

/// The cron implementation that runs scheduled jobs on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cron {
    /// Debian's and Ubuntu's cron: `cron.service`, per-user crontabs in
    /// /var/spool/cron/crontabs; cron.d and run-parts skip names with dots.
    #[default]
    Debian,
    /// cronie (RHEL, Amazon Linux): `crond.service`, per-user crontabs in
    /// /var/spool/cron; cron.d and run-parts skip dot files and editor or
    /// package-manager leftovers only.
    Cronie,
}

impl Cron {
    fn service(self) -> &'static str {
        match self {
            Cron::Debian => "cron.service",
            Cron::Cronie => "crond.service",
        }
    }

    fn user_crontabs(self) -> &'static str {
        match self {
            Cron::Debian => "/var/spool/cron/crontabs",
            Cron::Cronie => "/var/spool/cron",
        }
    }

    /// Whether cron (in cron.d) and run-parts (in cron.daily …) read a file of this name.
    fn reads(self, n: &str) -> bool {
        match self {
            Cron::Debian => run_parts_name(n),
            Cron::Cronie => {
                const SKIPPED: [&str; 7] = [
                    "~", ",v", ".rpmsave", ".rpmorig", ".rpmnew", ".swp", ".cfsaved",
                ];
                !n.is_empty()
                    && !n.starts_with('.')
                    && !n.starts_with('#')
                    && !SKIPPED.iter().any(|s| n.ends_with(s))
            }
        }
    }
}

/// Names Debian's cron and run-parts accept (they ignore files with dots).
fn run_parts_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether a command line runs an AIDE check (`aide --check`, `aide -C`,
/// `aide.wrapper --update`, `aide $AIDEARGS`).
pub fn runs_aide_check(cmd: &str) -> bool {
    let toks: Vec<&str> = cmd
        .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        .collect();
    let mut seen_aide = false;
    for t in toks {
        let t = t.trim_matches(|c| c == '"' || c == '\'' || c == '(' || c == ')' || c == '`');
        if t.is_empty() {
            continue;
        }
        let base = t.rsplit('/').next().unwrap_or(t);
        if base == "aide" || base == "aide.wrapper" {
            seen_aide = true;
            continue;
        }
        if seen_aide
            && (matches!(
                t,
                "--check" | "-C" | "--update" | "-u" | "$AIDEARGS" | "${AIDEARGS}"
            ) || t.starts_with("--check")
                || t.starts_with("--update"))
        {
            return true;
        }
    }
    false
}

/// The settings file of Debian's and Ubuntu's packaged daily check (the
/// dailyaidecheck service and the aide-common cron.daily script read it).
const AIDE_DEFAULTS: &str = "/etc/default/aide";

/// `Some(line)` when /etc/default/aide turns the packaged daily run off: its
/// (last) CRON_DAILY_RUN is anything but `yes`. Unset means yes.
fn daily_run_off(facts: &Facts) -> Result<Option<String>, FactError> {
    let Some(text) = facts.read(AIDE_DEFAULTS)? else {
        return Ok(None);
    };
    let mut last = None;
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        let l = l.strip_prefix("export ").unwrap_or(l).trim_start();
        if let Some(v) = l.strip_prefix("CRON_DAILY_RUN=") {
            let v = v.split('#').next().unwrap_or("").trim();
            let v = v.trim_matches(|c| c == '"' || c == '\'');
            last = Some((n + 1, v.to_string()));
        }
    }
    Ok(match last {
        Some((n, v)) if v != "yes" => Some(format!("{AIDE_DEFAULTS}:{n}: CRON_DAILY_RUN={v}")),
        _ => None,
    })
}

/// Whether a cron.daily script is the packaged one that obeys /etc/default/aide.
fn obeys_defaults(text: &str) -> bool {
    text.contains("CRON_DAILY_RUN")
        || text.contains(AIDE_DEFAULTS)
        || text.contains("dailyaidecheck")
}

/// Finds a scheduled AIDE check run by systemd or by `cron`: (found, evidence).
pub fn scheduled(facts: &Facts, cron: Cron) -> Result<(bool, Vec<String>), FactError> {
    let mut ev = Vec::new();
    let off = daily_run_off(facts)?;
    for t in TIMERS {
        let u = unit(facts, t)?;
        if u.exists() {
            ev.push(u.describe());
        }
        if u.exists() && u.enabled() && u.active != Some(false) {
            match (&off, t) {
                (Some(line), "dailyaidecheck.timer") => ev.push(format!(
                    "{line}: dailyaidecheck exits without checking, so the timer does not count"
                )),
                _ => return Ok((true, ev)),
            }
        }
    }
    if ev.is_empty() {
        ev.push(format!("no {} unit found", TIMERS.join(" or ")));
    }
    let mut hits = Vec::new();
    for f in SYSTEM_CRONTABS {
        crontab(facts, f, true, &mut hits)?;
    }
    for f in facts.dir_files(CRON_D, "")? {
        if cron.reads(f.rsplit('/').next().unwrap_or("")) {
            crontab(facts, &f, true, &mut hits)?;
        }
    }
    for f in facts.dir_files(cron.user_crontabs(), "")? {
        crontab(facts, &f, false, &mut hits)?;
    }
    for d in SCRIPT_DIRS {
        for f in facts.dir_files(d, "")? {
            if !cron.reads(f.rsplit('/').next().unwrap_or("")) || is_dir(facts, &f)? {
                continue;
            }
            if let Some(text) = facts.read(&f)? {
                let mut hit = false;
                for (n, l) in text.lines().enumerate() {
                    let l = l.trim();
                    if !l.starts_with('#') && runs_aide_check(l) {
                        match &off {
                            Some(_) if obeys_defaults(&text) => hit = true,
                            _ => hits.push(format!("{f}:{}: {l}", n + 1)),
                        }
                    }
                }
                if let (true, Some(line)) = (hit, &off) {
                    ev.push(format!(
                        "{f} runs aide, but {line} makes it exit without checking"
                    ));
                }
            }
        }
    }
    if hits.is_empty() {
        ev.push("no cron entry runs aide --check".into());
        return Ok((false, ev));
    }
    let service = unit(facts, cron.service())?;
    let cron_on = service.exists() && service.enabled() && service.active != Some(false);
    ev.extend(hits);
    ev.push(service.describe());
    if !cron_on {
        ev.push("cron is not enabled, so the cron entry does not run".into());
    }
    Ok((cron_on, ev))
}

/// Directories in cron's directories (cronie's /var/spool/cron may hold some) are
/// not jobs.
fn is_dir(facts: &Facts, path: &str) -> Result<bool, FactError> {
    Ok(facts.stat(path)?.is_some_and(|m| m.kind == FileKind::Dir))
}

fn crontab(
    facts: &Facts,
    path: &str,
    has_user: bool,
    hits: &mut Vec<String>,
) -> Result<(), FactError> {
    if is_dir(facts, path)? {
        return Ok(());
    }
    let Some(text) = facts.read(path)? else {
        return Ok(());
    };
    for (n, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let toks: Vec<&str> = l.split_whitespace().collect();
        // Environment assignments are not jobs.
        if toks
            .first()
            .is_some_and(|t| t.contains('=') && !t.starts_with('@'))
            && toks.len() < 6
        {
            continue;
        }
        let skip = if toks.first().is_some_and(|t| t.starts_with('@')) {
            1
        } else {
            5
        } + usize::from(has_user);
        if toks.len() <= skip {
            continue;
        }
        let cmd = toks[skip..].join(" ");
        if runs_aide_check(&cmd) {
            hits.push(format!("{path}:{}: {l}", n + 1));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaged_daily_run_switch() {
        let t = tempfile::tempdir().unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(daily_run_off(&facts).unwrap(), None);
        std::fs::create_dir_all(t.path().join("etc/default")).unwrap();
        for (text, off) in [
            ("#CRON_DAILY_RUN=yes\nCOMMAND=update\n", false),
            ("CRON_DAILY_RUN=yes\n", false),
            ("CRON_DAILY_RUN=\"yes\" # on\n", false),
            ("CRON_DAILY_RUN=no\n", true),
            ("CRON_DAILY_RUN=yes\nexport CRON_DAILY_RUN='no'\n", true),
            ("CRON_DAILY_RUN=true\n", true),
        ] {
            std::fs::write(t.path().join("etc/default/aide"), text).unwrap();
            let facts = Facts::new(t.path(), false);
            assert_eq!(daily_run_off(&facts).unwrap().is_some(), off, "{text:?}");
        }
        assert!(obeys_defaults(
            "if [ \"$CRON_DAILY_RUN\" != yes ]; then exit 0; fi"
        ));
        assert!(!obeys_defaults("/usr/bin/aide --check"));
    }

    #[test]
    fn cron_file_names() {
        assert!(Cron::Debian.reads("aide"));
        assert!(!Cron::Debian.reads("aide.sh"));
        assert!(Cron::Cronie.reads("aide.sh"));
        assert!(Cron::Cronie.reads("aide"));
        for skipped in ["aide.rpmnew", "aide~", ".aide", "#aide", "aide.swp", ""] {
            assert!(!Cron::Cronie.reads(skipped), "{skipped}");
        }
    }

    #[test]
    fn cron_commands() {
        assert!(runs_aide_check(
            "/usr/bin/aide --config /etc/aide/aide.conf --check"
        ));
        assert!(runs_aide_check("aide.wrapper --update"));
        assert!(runs_aide_check("nice aide -C >/dev/null"));
        assert!(!runs_aide_check("aide --init"));
        assert!(!runs_aide_check("echo --check aide"));
    }
}
