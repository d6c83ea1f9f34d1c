//! The algorithm pam_unix hashes new passwords with, as Linux-PAM (1.4 to 1.5)
//! decides it: the last algorithm argument on the module line (an argument names the
//! first algorithm it starts with, case-sensitive; `des` is one), else login.defs'
//! `ENCRYPT_METHOD` (the first line naming it, as `pam_modutil_search_key` reads it;
//! its value names the first algorithm it starts with, case-insensitive: `BCRYPT`
//! names none), else DES. RHEL 9's and Amazon Linux 2023's Linux-PAM 1.5.1 has the
//! same code as Debian's and Ubuntu's; if it is built with libeconf, that library
//! reads login.defs instead, which this does not model.

use crate::facts::account_defaults::login_defs_pam_key;
use crate::facts::pam::PamLine;
use crate::facts::{FactError, Facts};

/// pam_unix's algorithm arguments, in the order of its option table.
const ALGORITHMS: &[&str] = &[
    "md5",
    "bigcrypt",
    "sha256",
    "sha512",
    "blowfish",
    "des",
    "gost_yescrypt",
    "yescrypt",
];

/// The algorithm of one pam_unix line (lower case, pam_unix's argument names) and
/// where it comes from.
pub fn algorithm(facts: &Facts, line: &PamLine) -> Result<(String, String), FactError> {
    let named = |v: &str| ALGORITHMS.iter().find(|a| v.starts_with(*a)).copied();
    if let Some((arg, alg)) = line
        .args
        .iter()
        .rev()
        .find_map(|a| named(a).map(|alg| (a, alg)))
    {
        return Ok((
            alg.to_string(),
            format!("the last algorithm argument, {arg}"),
        ));
    }
    let path = "/etc/login.defs";
    let found = login_defs_pam_key(facts, "ENCRYPT_METHOD")?;
    Ok(match found {
        Some((n, v)) => {
            let alg = named(&v.to_ascii_lowercase()).unwrap_or("des");
            (
                alg.to_string(),
                format!("no algorithm argument: {path}:{n}: ENCRYPT_METHOD {v} gives {alg}"),
            )
        }
        None => (
            "des".into(),
            format!("no algorithm argument and no ENCRYPT_METHOD in {path}: DES"),
        ),
    })
}
