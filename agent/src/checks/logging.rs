//! `logging.*` checks: which logger the host uses (rsyslog or journald), the
//! effective journald settings, rsyslog's configuration, and the permissions of the
//! files under /var/log.
//!
//! The logger in use decides which half of the logging recommendations applies:
//! rsyslog is the logger when `rsyslog.service` is enabled (or, live, running);
//! otherwise journald is. [`Check::WhenLogger`] wraps any check so that it is
//! not applicable under the other logger.

pub mod journald;
pub mod rsyslog;
mod varlog;

use serde::Deserialize;

use self::journald::{journal_upload_package, journald_check, JournaldDefaults};
use self::rsyslog::{rsyslog_file_mode, rsyslog_forwards, rsyslog_no_network_input};
use self::varlog::var_log_perms;
use crate::checks::common::parse_mode;
use crate::facts::logger::{logger, Logger};
use crate::facts::units::unit;
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

/// The `logging.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// One logger is in use: rsyslog (enabled) or journald (present, not masked).
    #[serde(rename = "logging.logger_in_use")]
    LoggerInUse {},
    /// Evaluates `check` only when `logger` is the logger in use; otherwise not
    /// applicable, naming the logger that is.
    #[serde(rename = "logging.when_logger")]
    WhenLogger {
        logger: Logger,
        check: Box<super::Check>,
    },
    /// The effective value of a `[Journal]` setting of journald (journald.conf and
    /// its drop-ins, later files winning; Debian's defaults when unset) equals
    /// `value`. Booleans are compared as booleans (`yes`/`no`). `defaults` names
    /// whose defaults apply to unset keys (Debian's unless `upstream`).
    #[serde(rename = "logging.journald")]
    Journald {
        key: String,
        value: String,
        #[serde(default)]
        defaults: JournaldDefaults,
    },
    /// Every file-creation mode rsyslog is given (`$FileCreateMode`,
    /// `fileCreateMode=` of omfile) is no looser than `max_mode`; unset means
    /// rsyslog's default 0644.
    #[serde(rename = "logging.rsyslog_file_mode")]
    RsyslogFileMode { max_mode: String },
    /// rsyslog loads no network input module (imtcp, imudp, imrelp, imptcp) and
    /// starts no network listener.
    #[serde(rename = "logging.rsyslog_no_network_input")]
    RsyslogNoNetworkInput {},
    /// rsyslog sends messages to another host: an omfwd or omrelp action with a
    /// target, or a legacy selector line whose action is `@host` or `@@host`.
    #[serde(rename = "logging.rsyslog_forwards")]
    RsyslogForwards {},
    /// When journald is set up to ship logs (systemd-journal-remote installed, or
    /// `URL=` in journal-upload.conf), the systemd-journal-remote package is
    /// installed; not applicable when journald ships nothing.
    #[serde(rename = "logging.journal_upload_package")]
    JournalUploadPackage {},
    /// Every regular file under /var/log is within the per-file allowances of mode,
    /// owner and group (see [`var_log_class`]).
    #[serde(rename = "logging.var_log_perms")]
    VarLogPerms {},
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
            Check::LoggerInUse {} => logger_in_use(facts)?,
            Check::WhenLogger {
                logger: want,
                check,
            } => {
                let l = logger(facts)?;
                if l.logger != *want {
                    let mut ev = l.evidence.clone();
                    ev.push(format!(
                        "{} is the logger in use, so this {} recommendation does not apply",
                        l.logger.name(),
                        want.name()
                    ));
                    return Ok(Outcome::new(Status::NotApplicable, ev));
                }
                let mut o = check.eval(facts);
                let mut ev = vec![format!("{} is the logger in use", want.name())];
                ev.append(&mut o.evidence);
                o.evidence = ev;
                o
            }
            Check::Journald {
                key,
                value,
                defaults,
            } => journald_check(facts, key, value, *defaults)?,
            Check::RsyslogFileMode { max_mode } => {
                let max = parse_mode(max_mode).map_err(|reason| FactError::Malformed {
                    path: "content".into(),
                    reason,
                })?;
                rsyslog_file_mode(facts, max)?
            }
            Check::RsyslogNoNetworkInput {} => rsyslog_no_network_input(facts)?,
            Check::RsyslogForwards {} => rsyslog_forwards(facts)?,
            Check::VarLogPerms {} => var_log_perms(facts)?,
            Check::JournalUploadPackage {} => journal_upload_package(facts)?,
        })
    }
}

// ---------------------------------------------------------------------------
// Which logger is in use

fn logger_in_use(facts: &Facts) -> Result<Outcome, FactError> {
    let l = logger(facts)?;
    let mut ev = l.evidence.clone();
    if l.logger == Logger::Rsyslog {
        ev.push("rsyslog is the logger in use: the rsyslog recommendations apply, the journald ones do not".into());
        return Ok(Outcome::new(Status::Pass, ev));
    }
    let j = unit(facts, "systemd-journald.service")?;
    ev.push(j.describe());
    if j.exists() && !j.masked && j.active != Some(false) {
        ev.push("journald is the logger in use: the journald recommendations apply, the rsyslog ones do not".into());
        Ok(Outcome::new(Status::Pass, ev))
    } else {
        ev.push("neither rsyslog nor journald is in use: no logger could be determined".into());
        Ok(Outcome::new(Status::Fail, ev))
    }
}

#[cfg(test)]
mod tests {
    use super::journald::{journald_value, KeyKind};
    use super::rsyslog::{forwards, module_name};
    use super::varlog::var_log_class;
    use crate::facts::journald::{parse_size, parse_unit_ini};
    use crate::facts::rsyslog::{
        include_target, legacy_directive, rainer_object, split_statements,
    };

    #[test]
    fn statements_join_objects_and_drop_comments() {
        let t = "# comment\n$FileCreateMode 0640 # trailing\nmodule(load=\"imtcp\" # c\n  MaxSessions=\"5\")\n\
                 input(type=\"imudp\"\n port=\"514\")\n/* block\n $ModLoad imtcp\n*/\n*.* /var/log/syslog\n";
        let s = split_statements(t, "/r");
        let texts: Vec<&str> = s.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "$FileCreateMode 0640",
                "module(load=\"imtcp\" MaxSessions=\"5\")",
                "input(type=\"imudp\" port=\"514\")",
                "*.* /var/log/syslog"
            ]
        );
        assert_eq!(s[1].source, "/r:3");
        let (n, p) = rainer_object(&s[1].text).unwrap();
        assert_eq!(n, "module");
        assert_eq!(p[0], ("load".into(), "imtcp".into()));
        assert_eq!(p[1], ("maxsessions".into(), "5".into()));
        assert_eq!(
            legacy_directive("$ModLoad  imtcp.so"),
            Some(("modload".into(), "imtcp.so"))
        );
        assert_eq!(module_name("/usr/lib/rsyslog/imudp.so"), "imudp");
    }

    #[test]
    fn forwarding_actions() {
        assert!(forwards(
            "*.* action(type=\"omfwd\" target=\"log.example\" port=\"514\" protocol=\"tcp\")"
        ));
        assert!(forwards("*.* @@log.example:514"));
        assert!(forwards("auth.* @10.0.0.1"));
        assert!(forwards("*.* :omrelp:log.example:2514"));
        assert!(!forwards("*.* action(type=\"omfile\" file=\"/var/log/x\")"));
        assert!(!forwards("*.* action(type=\"omfwd\")"));
        assert!(!forwards("*.* /var/log/messages"));
        assert!(!forwards("*.* -/var/log/messages"));
        assert!(!forwards("$ActionQueueType LinkedList"));
        assert!(!forwards("*.* @"));
    }

    #[test]
    fn include_targets() {
        assert_eq!(
            include_target("$IncludeConfig /etc/rsyslog.d/*.conf").as_deref(),
            Some("/etc/rsyslog.d/*.conf")
        );
        assert_eq!(
            include_target("include(file=\"/etc/rsyslog.d/*.conf\" mode=\"optional\")").as_deref(),
            Some("/etc/rsyslog.d/*.conf")
        );
        assert_eq!(include_target("*.* /var/log/syslog"), None);
    }

    #[test]
    fn systemd_ini_comments_and_continuations() {
        let s = parse_unit_ini(
            "[Journal]\n# ForwardToSyslog=yes\nForwardToSyslog=no # off\nStorage=\\\n  persistent\n[Upload]\nURL=x\n",
            "/j",
            "Journal",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, "no # off");
        assert_eq!(s[1].value, "persistent");
        assert_eq!(s[1].source, "/j:4");
    }

    #[test]
    fn journald_values() {
        assert_eq!(journald_value(KeyKind::Bool, "On").as_deref(), Some("yes"));
        assert_eq!(journald_value(KeyKind::Bool, "maybe"), None);
        assert_eq!(
            journald_value(KeyKind::BoolOrSize, "1K").as_deref(),
            Some("yes")
        );
        assert_eq!(
            journald_value(KeyKind::BoolOrSize, "0").as_deref(),
            Some("no")
        );
        assert_eq!(
            journald_value(KeyKind::Enum(&["auto", "persistent"]), "Persistent"),
            None
        );
        assert_eq!(parse_size("1.5M"), Some(1572864));
    }

    #[test]
    fn parsers_survive_garbage() {
        let alphabet: Vec<char> = "$#()\"=/*. \nimtcp\\é\u{0}[]".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..400 {
            let mut s = String::new();
            for _ in 0..(len % 80) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            for st in split_statements(&s, "/g") {
                let _ = rainer_object(&st.text);
                let _ = legacy_directive(&st.text);
                let _ = include_target(&st.text);
                let _ = module_name(&st.text);
                let _ = forwards(&st.text);
            }
            let _ = parse_unit_ini(&s, "/g", "Journal");
            let _ = parse_size(&s);
            let _ = var_log_class(&s);
        }
    }

    #[test]
    fn log_classes() {
        assert_eq!(var_log_class("wtmp.1").mask, 0o113);
        assert_eq!(var_log_class("auth.log").mask, 0o137);
        assert!(!var_log_class("auth.log").service_owned_ok);
        assert!(var_log_class("dpkg.log").service_owned_ok);
        assert_eq!(
            var_log_class("system@abc.journal~").groups,
            vec!["root", "systemd-journal"]
        );
        assert_eq!(var_log_class("cloud-init.log.1").mask, 0o133);
    }
}
