//! systemd-timesyncd: its server lists, read from timesyncd.conf and its drop-ins.

use crate::facts::journald::parse_unit_ini;
use crate::facts::kv::{self, Setting};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

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

pub(super) fn timesyncd_servers(facts: &Facts) -> Result<Outcome, FactError> {
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
}
