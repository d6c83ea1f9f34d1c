//! Privileged programs covered by audit rules, audit log file permissions, and AIDE's coverage of the audit tools.

use super::conf::{auditd_value, judge_setting};
use super::rules::{find, Found, Requirement};
use super::{atoms_of, rules_or_fail, ConfRequirement, LogTarget, NOT_LOADED};
use crate::checks::common::{describe_meta, judge_meta, MAX_LISTED};
use crate::facts::account_defaults::uid_min_kv;
use crate::facts::accounts::accounts;
use crate::facts::aide;
use crate::facts::auditd_conf::AUDITD_CONF;
use crate::facts::mounts::{self, Mount};
use crate::facts::packages::packages;
use crate::facts::walk::walk;
use crate::facts::{FactError, Facts, FileKind, FileMeta};
use crate::model::Outcome;

// ---------------------------------------------------------------------------
// Privileged commands

/// The mount holding `path`: live mounts when live, else /etc/fstab.
pub(super) fn mount_table(facts: &Facts) -> Result<Vec<Mount>, FactError> {
    let m = if facts.is_live() {
        mounts::live(facts)
    } else {
        mounts::fstab(facts)
    };
    Ok(Vec::clone(&*m?))
}

pub(super) fn mount_of<'a>(table: &'a [Mount], path: &str) -> Option<&'a Mount> {
    table
        .iter()
        .filter(|m| {
            m.target == "/"
                || path == m.target
                || path.starts_with(&format!("{}/", m.target.trim_end_matches('/')))
        })
        .max_by_key(|m| m.target.len())
}

pub(super) fn privileged(facts: &Facts, filters: &[String]) -> Result<Outcome, FactError> {
    let w = walk(facts)?;
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
    let min = uid_min_kv(facts)?;
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
            match find(&set, a) {
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

/// The packages that ship auditd: Debian's and Ubuntu's, then RHEL's and Amazon Linux's.
const AUDITD_PACKAGES: [&str; 2] = ["auditd", "audit"];

pub(super) fn log_files(
    facts: &Facts,
    target: LogTarget,
    max: Option<u32>,
    owner: &[String],
    group: &[String],
    log_group: &[String],
) -> Result<Outcome, FactError> {
    let pk = packages(facts)?;
    // auditd comes in Debian's `auditd` package, in RHEL's and Amazon Linux's `audit`.
    if !AUDITD_PACKAGES.iter().any(|p| pk.is_present(p)) {
        let none: Vec<String> = AUDITD_PACKAGES.iter().map(|p| pk.describe(p)).collect();
        return Ok(Outcome::not_applicable(format!(
            "{}: there are no audit logs to judge",
            none.join("; ")
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
    let acc = accounts(facts).ok();
    let acc = acc.as_deref();
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
            let b = judge_meta(&dmeta, max, owner, group, acc);
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
                let b = judge_meta(m, max, owner, group, acc);
                if b.is_empty() {
                    good.push(describe_meta(m, acc));
                }
                bad.extend(b);
            }
        }
    }
    Ok(Outcome::from_findings(bad, good))
}

pub(super) fn collect_files(
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
pub(super) fn usrmerge_twin(p: &str) -> Option<String> {
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

pub(super) fn aide_rules(
    facts: &Facts,
    conf_path: &str,
    paths: &[String],
    attributes: &[String],
) -> Result<Outcome, FactError> {
    let conf = aide::aide_conf(facts, conf_path)?;
    if conf.files.is_empty() {
        return Ok(Outcome::fail(format!(
            "{conf_path} not found: AIDE is not installed or not configured"
        )));
    }
    let mut bad = Vec::new();
    let mut good = Vec::new();
    for p in paths {
        let mut tried = Vec::new();
        let mut ok_line = None;
        for cand in std::iter::once(p.clone()).chain(usrmerge_twin(p)) {
            match aide::verdict(&conf, &cand) {
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
