//! SELinux: the persisted configuration (`/etc/selinux/config`), and on a running
//! system the kernel's mode (`/sys/fs/selinux/enforce`) and the security context
//! of each process (`/proc/PID/attr/current`).

use super::{strip_comment, FactError, Facts};

/// Where SELinux's boot-time mode and policy are configured.
pub const SELINUX_CONFIG: &str = "/etc/selinux/config";
/// The kernel's current mode on a running system: `1` enforcing, `0` permissive.
/// Absent when SELinux is not enabled (selinuxfs is not mounted).
pub const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

/// One `KEY=value` assignment of the SELinux configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// `path:line`.
    pub source: String,
    pub value: String,
}

/// What /etc/selinux/config says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelinuxConfig {
    /// Every `SELINUX=` assignment, in file order.
    pub mode: Vec<Assignment>,
    /// Every `SELINUXTYPE=` assignment, in file order.
    pub policy_type: Vec<Assignment>,
}

/// Parses the text of /etc/selinux/config: `KEY=value` lines, `#` comments, values
/// optionally quoted. Keys are matched as written (libselinux's are upper case).
pub fn parse_config(text: &str, path: &str) -> SelinuxConfig {
    let mut cfg = SelinuxConfig::default();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']).to_string();
        let a = Assignment {
            source: format!("{path}:{}", n + 1),
            value,
        };
        match key.trim() {
            "SELINUX" => cfg.mode.push(a),
            "SELINUXTYPE" => cfg.policy_type.push(a),
            _ => {}
        }
    }
    cfg
}

/// /etc/selinux/config, `None` when it does not exist.
pub fn selinux_config(facts: &Facts) -> Result<Option<SelinuxConfig>, FactError> {
    Ok(facts
        .read(SELINUX_CONFIG)?
        .map(|t| parse_config(&t, SELINUX_CONFIG)))
}

/// The running kernel's mode on a live system: `Some(true)` enforcing,
/// `Some(false)` permissive, `None` when SELinux is not enabled. An offline root
/// gives [`FactError::RuntimeOnly`].
pub fn runtime_enforcing(facts: &Facts) -> Result<Option<bool>, FactError> {
    let Some(text) = facts.read_runtime(SELINUX_ENFORCE)? else {
        return Ok(None);
    };
    match text.trim() {
        "1" => Ok(Some(true)),
        "0" => Ok(Some(false)),
        other => Err(FactError::Malformed {
            path: SELINUX_ENFORCE.into(),
            reason: format!("expected 0 or 1, found {other:?}"),
        }),
    }
}

/// A process and the type of its SELinux context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessContext {
    pub pid: String,
    /// The command name (`/proc/PID/comm`), `?` when it cannot be read.
    pub comm: String,
    /// The full context, e.g. `system_u:system_r:unconfined_service_t:s0`.
    pub context: String,
}

impl ProcessContext {
    /// The type field of the context (the third of `user:role:type:level`).
    pub fn context_type(&self) -> Option<&str> {
        context_type(&self.context)
    }
}

/// The type field of an SELinux context `user:role:type[:level]`.
pub fn context_type(context: &str) -> Option<&str> {
    let mut parts = context.splitn(4, ':');
    parts.next()?;
    parts.next()?;
    parts.next().filter(|t| !t.is_empty())
}

/// The SELinux context of every process of a running system whose context can be
/// read (kernel threads included; processes that vanish meanwhile are skipped). An
/// offline root gives [`FactError::RuntimeOnly`].
pub fn process_contexts(facts: &Facts) -> Result<Vec<ProcessContext>, FactError> {
    if !facts.is_live() {
        return Err(FactError::RuntimeOnly {
            what: "/proc/*/attr/current".into(),
        });
    }
    let mut out = Vec::new();
    for pid in facts
        .list_dir("/proc")?
        .into_iter()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let context = match facts.read(&format!("/proc/{pid}/attr/current")) {
            Ok(Some(c)) => c.trim_end_matches(['\0', '\n', ' ']).to_string(),
            _ => continue,
        };
        let comm = match facts.read(&format!("/proc/{pid}/comm")) {
            Ok(Some(c)) => c.trim().to_string(),
            _ => "?".to_string(),
        };
        out.push(ProcessContext { pid, comm, context });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_contexts() {
        let c = parse_config(
            "# SELINUX=disabled\nSELINUX=enforcing # set\n SELINUXTYPE = \"targeted\"\nSETLOCALDEFS=0\n",
            "/c",
        );
        assert_eq!(c.mode.len(), 1);
        assert_eq!(c.mode[0].value, "enforcing");
        assert_eq!(c.mode[0].source, "/c:2");
        assert_eq!(c.policy_type[0].value, "targeted");
        assert_eq!(
            context_type("system_u:system_r:unconfined_service_t:s0"),
            Some("unconfined_service_t")
        );
        assert_eq!(
            context_type("system_u:system_r:sshd_t:s0-s0:c0.c1023"),
            Some("sshd_t")
        );
        assert_eq!(context_type("unconfined"), None);
        assert_eq!(context_type("kernel"), None);
        for s in crate::checks::NASTY_INPUTS {
            let _ = parse_config(s, "/x");
            let _ = context_type(s);
        }
    }
}
