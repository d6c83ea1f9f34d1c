//! The files of `sshd.files`: sshd's configuration files, and its host keys, private
//! and public, with their ownership and modes judged against the check's table.

use super::{FileSet, ModeRule};
use crate::checks::common::{describe_meta, id_allowed, parse_mode};
use crate::facts::accounts::accounts;
use crate::facts::sshd::{self as config, glob_in_root, SshdConfig};
use crate::facts::{FactError, Facts, FileKind, FileMeta};
use crate::model::Outcome;

/// Host keys sshd loads when no `HostKey` is configured.
const DEFAULT_HOST_KEYS: &[&str] = &[
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
];

/// The host keys sshd loads: every global `HostKey`, in order, or the defaults when
/// none is configured (as `sshd -T` lists them).
pub fn host_keys(cfg: &SshdConfig) -> Vec<String> {
    let configured: Vec<String> = cfg
        .all_global("HostKey")
        .iter()
        .map(|d| d.value().to_string())
        .collect();
    if configured.is_empty() {
        DEFAULT_HOST_KEYS.iter().map(|s| s.to_string()).collect()
    } else {
        configured
    }
}

/// The PEM and OpenSSH headers a private key file starts with (`ssh-keygen` reads
/// each; `file` calls them private keys).
const PRIVATE_KEY_HEADERS: &[&str] = &[
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN DSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
];
/// Files larger than this are not read as possible keys (a 16384-bit RSA key in PEM
/// is under 13 KiB).
const MAX_KEY_BYTES: u64 = 64 * 1024;
/// Directory levels below /etc/ssh searched for keys.
const MAX_KEY_DEPTH: usize = 8;

/// Every regular file under /etc/ssh (not through symlinks) whose content is a
/// private key, whatever its name: a key kept as `backup_rsa_key` is as secret as
/// `ssh_host_rsa_key`.
pub fn private_keys_by_content(facts: &Facts) -> Result<Vec<String>, FactError> {
    let mut out = Vec::new();
    let mut dirs = vec![("/etc/ssh".to_string(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        for name in facts.list_dir(&dir)? {
            let path = format!("{dir}/{name}");
            let Some(m) = facts.lstat(&path)? else {
                continue;
            };
            match m.kind {
                FileKind::Dir if depth < MAX_KEY_DEPTH => dirs.push((path, depth + 1)),
                FileKind::File if m.size <= MAX_KEY_BYTES => {
                    let text = facts.read(&path)?.unwrap_or_default();
                    let head = text.trim_start();
                    if PRIVATE_KEY_HEADERS.iter().any(|h| head.starts_with(h)) {
                        out.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files an `sshd.files` check of `set` judges, in order, each once.
pub fn file_set(facts: &Facts, cfg: &SshdConfig, set: FileSet) -> Result<Vec<String>, FactError> {
    let mut paths: Vec<String> = Vec::new();
    let push = |p: String, paths: &mut Vec<String>| {
        if !paths.contains(&p) {
            paths.push(p);
        }
    };
    match set {
        FileSet::Config => {
            for f in &cfg.files {
                push(f.clone(), &mut paths);
            }
            if cfg.main_exists && !cfg.files.iter().any(|f| f == config::MAIN) {
                push(config::MAIN.to_string(), &mut paths);
            }
            for f in glob_in_root(facts, "/etc/ssh/sshd_config.d/*.conf")? {
                push(f, &mut paths);
            }
        }
        FileSet::PrivateKeys | FileSet::PublicKeys => {
            let mut keys: Vec<String> = glob_in_root(facts, "/etc/ssh/ssh_host_*_key")?;
            keys.extend(host_keys(cfg));
            keys.extend(private_keys_by_content(facts)?);
            for k in keys {
                let p = if set == FileSet::PublicKeys {
                    format!("{k}.pub")
                } else {
                    k
                };
                push(p, &mut paths);
            }
        }
    }
    Ok(paths)
}

/// The files of `set` that exist as regular files (after symlinks), with their
/// metadata: what an `sshd.files` check judges.
pub fn judged(
    facts: &Facts,
    cfg: &SshdConfig,
    set: FileSet,
) -> Result<Vec<(String, FileMeta)>, FactError> {
    let mut out = Vec::new();
    for p in file_set(facts, cfg, set)? {
        if let Some(m) = facts.stat(&p)? {
            if m.kind == FileKind::File {
                out.push((p, m));
            }
        }
    }
    Ok(out)
}

/// Judges ownership and mode of every file of `set` that exists.
pub(super) fn files(
    facts: &Facts,
    cfg: &SshdConfig,
    set: FileSet,
    owner: &[String],
    modes: &[ModeRule],
    exclude: &[String],
) -> Result<Outcome, FactError> {
    let acc = accounts(facts).ok();
    let acc = acc.as_deref();
    let mut rules = Vec::new();
    for r in modes {
        match parse_mode(&r.max_mode) {
            Ok(m) => rules.push((r.group.clone(), m)),
            Err(e) => return Ok(Outcome::error(e)),
        }
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for (p, m) in judged(facts, cfg, set)? {
        if let Some(dir) = exclude.iter().find(|d| under(&p, d)) {
            skipped.push(format!(
                "{p}: not judged (under {dir}, outside this recommendation)"
            ));
            continue;
        }
        let desc = describe_meta(&m, acc);
        let (user, group) = match acc {
            Some(a) => (a.user_name(m.uid), a.group_name(m.gid)),
            None => (m.uid.to_string(), m.gid.to_string()),
        };
        let mut bad = Vec::new();
        if !id_allowed(owner, m.uid, &user) {
            bad.push(format!("owner is not {}", owner.join(" or ")));
        }
        let group_ok = rules.iter().find(|(g, _)| id_allowed(g, m.gid, &group));
        match group_ok {
            None => bad.push(format!(
                "group is not {}",
                rules
                    .iter()
                    .map(|(g, _)| g.join("/"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
            Some((_, max)) if m.mode & !max != 0 => bad.push(format!(
                "mode {:04o} is looser than {:04o} for group {group}",
                m.mode, max
            )),
            _ => {}
        }
        if bad.is_empty() {
            found.push(desc);
        } else {
            failures.push(format!("{desc}: {}", bad.join("; ")));
        }
    }
    if failures.is_empty() && found.is_empty() {
        let what = match set {
            FileSet::Config => "no sshd configuration file exists",
            FileSet::PrivateKeys => "no private host key file exists",
            FileSet::PublicKeys => "no public host key file exists",
        };
        let mut out = Outcome::not_applicable(what);
        out.evidence.extend(skipped);
        return Ok(out);
    }
    let mut out = Outcome::from_findings(failures, found);
    out.evidence.extend(skipped);
    Ok(out)
}

/// Whether `path` lies under the directory `dir` (given with or without a trailing slash).
fn under(path: &str, dir: &str) -> bool {
    let d = dir.trim_end_matches('/');
    !d.is_empty()
        && path
            .strip_prefix(d)
            .is_some_and(|rest| rest.starts_with('/'))
}
