//! The system-wide cryptographic policy of RHEL-family systems (crypto-policies):
//! the configured policy (`/etc/crypto-policies/config`, `POLICY[:SUBPOLICY...]`),
//! the policy `update-crypto-policies` last applied (`/etc/crypto-policies/state/
//! current`), the full resolved policy it wrote (`state/CURRENT.pol`, `key = value`
//! lines, scoped keys as `key@scope`), and the configuration it generated for each
//! library (`back-ends/*.config`).

use super::{strip_comment, FactError, Facts};

/// The configured policy.
pub const CONFIG: &str = "/etc/crypto-policies/config";
/// The policy last applied by update-crypto-policies.
pub const STATE_CURRENT: &str = "/etc/crypto-policies/state/current";
/// The resolved policy last applied.
pub const CURRENT_POL: &str = "/etc/crypto-policies/state/CURRENT.pol";
/// Generated configuration of OpenSSH's server.
pub const BACKEND_SSHD: &str = "/etc/crypto-policies/back-ends/opensshserver.config";
/// Generated configuration of OpenSSH's client.
pub const BACKEND_SSH: &str = "/etc/crypto-policies/back-ends/openssh.config";
/// Generated configuration of libssh.
pub const BACKEND_LIBSSH: &str = "/etc/crypto-policies/back-ends/libssh.config";

/// A policy name as configured: the base policy and its subpolicy modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyName {
    /// `path:line` it was read from.
    pub source: String,
    /// The whole string, e.g. `DEFAULT:NO-SHA1`.
    pub full: String,
    pub base: String,
    pub modules: Vec<String>,
}

/// The first policy name in a config/state file (the first non-comment word).
pub fn parse_policy_name(text: &str, path: &str) -> Option<PolicyName> {
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let mut parts = word.split(':');
        let base = parts.next().unwrap_or_default().to_string();
        return Some(PolicyName {
            source: format!("{path}:{}", n + 1),
            full: word.to_string(),
            base,
            modules: parts.filter(|m| !m.is_empty()).map(String::from).collect(),
        });
    }
    None
}

/// The configured policy name (`/etc/crypto-policies/config`), `None` when the
/// file does not exist or names none.
pub fn configured(facts: &Facts) -> Result<Option<PolicyName>, FactError> {
    Ok(facts
        .read(CONFIG)?
        .and_then(|t| parse_policy_name(&t, CONFIG)))
}

/// The policy name last applied (`state/current`), `None` when it does not exist.
pub fn applied(facts: &Facts) -> Result<Option<PolicyName>, FactError> {
    Ok(facts
        .read(STATE_CURRENT)?
        .and_then(|t| parse_policy_name(&t, STATE_CURRENT)))
}

/// One `key[@scope] = values` line of CURRENT.pol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLine {
    pub source: String,
    pub key: String,
    /// The scope after `@` (as written), `None` for a baseline value.
    pub scope: Option<String>,
    pub values: Vec<String>,
}

/// Parses CURRENT.pol (or a policy module): `key[@scope] = value value ...`.
pub fn parse_pol(text: &str, path: &str) -> Vec<PolicyLine> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let Some((lhs, rhs)) = line.split_once('=') else {
            continue;
        };
        let lhs = lhs.trim();
        if lhs.is_empty() {
            continue;
        }
        let (key, scope) = match lhs.split_once('@') {
            Some((k, s)) => (k.trim(), Some(s.trim().to_string())),
            None => (lhs, None),
        };
        out.push(PolicyLine {
            source: format!("{path}:{}", n + 1),
            key: key.to_ascii_lowercase(),
            scope,
            values: rhs.split_whitespace().map(String::from).collect(),
        });
    }
    out
}

/// The resolved policy (CURRENT.pol), `None` when it does not exist.
pub fn current_pol(facts: &Facts) -> Result<Option<Vec<PolicyLine>>, FactError> {
    Ok(facts.read(CURRENT_POL)?.map(|t| parse_pol(&t, CURRENT_POL)))
}

/// One `Keyword value` line of an OpenSSH-style back-end file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendLine {
    pub source: String,
    pub keyword: String,
    /// The comma-separated list, split.
    pub names: Vec<String>,
}

/// Parses an OpenSSH or libssh back-end: `Keyword value` (or `Keyword=value`,
/// `Keyword value` after `Host *`), keywords as written.
pub fn parse_ssh_backend(text: &str, path: &str) -> Vec<BackendLine> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = strip_comment(raw);
        let mut it = line.splitn(2, |c: char| c.is_whitespace() || c == '=');
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let v = v.trim().trim_start_matches('=').trim().trim_matches('"');
        out.push(BackendLine {
            source: format!("{path}:{}", n + 1),
            keyword: k.to_string(),
            names: v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        let p = parse_policy_name("# comment\n\nDEFAULT:NO-SHA1:NO-SSHCBC\n", "/c").unwrap();
        assert_eq!(p.base, "DEFAULT");
        assert_eq!(p.modules, ["NO-SHA1", "NO-SSHCBC"]);
        assert_eq!(p.source, "/c:3");
        assert!(parse_policy_name("# none\n", "/c").is_none());
        let pol = parse_pol(
            "# Policy dump\nhash = SHA2-256 SHA1\ncipher@openssh-server = AES-256-GCM AES-256-CBC\nsha1_in_certs = 0\n",
            "/p",
        );
        assert_eq!(pol.len(), 3);
        assert_eq!(pol[1].key, "cipher");
        assert_eq!(pol[1].scope.as_deref(), Some("openssh-server"));
        assert_eq!(pol[2].values, ["0"]);
        let b = parse_ssh_backend(
            "Ciphers aes256-gcm@openssh.com,aes256-cbc\nMACs=hmac-sha2-256-etm@openssh.com\n",
            "/b",
        );
        assert_eq!(b[0].names, ["aes256-gcm@openssh.com", "aes256-cbc"]);
        assert_eq!(b[1].keyword, "MACs");
        assert_eq!(b[1].names, ["hmac-sha2-256-etm@openssh.com"]);
        for s in crate::checks::NASTY_INPUTS {
            let _ = parse_policy_name(s, "/x");
            let _ = parse_pol(s, "/x");
            let _ = parse_ssh_backend(s, "/x");
        }
    }
}
