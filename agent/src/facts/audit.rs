//! Audit rules as augenrules builds them from /etc/audit/rules.d, and as
//! `auditctl -l` lists them on the live host, parsed into structured rules.
//!
//! augenrules concatenates the `*.rules` files in version-sort order (`ls -v`),
//! drops comments and blank lines, keeps the last `-D`, `-b`, `-f` at the top and
//! the last `-e` at the very end. Rules are then loaded in that order. The rules
//! loaded in the kernel are read only by running `auditctl -l` on the live host (the
//! audit netlink socket is not used), the one program the agent runs.

use std::cmp::Ordering;

use std::time::{Duration, Instant};

use crate::facts::{FactError, Facts};

mod parse;

pub use parse::{normalise_path, parse_filter, parse_line, Filter, Kind, Op};
use std::sync::Arc;

use crate::facts::Fact;
pub(crate) use parse::{normalise_value, parse_num, ID_FIELDS};

pub const RULES_DIR: &str = "/etc/audit/rules.d";

/// One rule with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRule {
    pub kind: Kind,
    /// `path:line`.
    pub source: String,
    pub text: String,
}

impl AuditRule {
    pub fn describe(&self) -> String {
        format!("{}: {}", self.source, self.text)
    }
}

/// The rule set as augenrules would load it.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Rules in load order (`-A` rules first, as auditctl prepends them).
    pub rules: Vec<AuditRule>,
    /// The last `-e` line, which augenrules moves to the end.
    pub enable: Option<AuditRule>,
    /// Files read, in order.
    pub files: Vec<String>,
    /// Lines that could not be understood.
    pub bad: Vec<String>,
}

/// Version sort as `ls -v` does it: runs of digits compare as numbers.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| a.cmp(b))
}

/// The fixed program that lists the rules loaded in the kernel, and its fixed
/// argument. It is the only way to read them without netlink; nothing else is run.
const AUDITCTL: [&str; 2] = ["/sbin/auditctl", "/usr/sbin/auditctl"];

/// How long `auditctl -l` may take before it is killed and the check says so.
const AUDITCTL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most standard output of `auditctl -l` that is read (16 MiB); more is an error.
pub const MAX_AUDITCTL_OUTPUT: u64 = 16 * 1024 * 1024;
/// The most standard error kept for the message when the program fails.
const MAX_STDERR_KEPT: u64 = 4096;

/// Which pipe a reader thread drained.
enum Pipe {
    Out(std::io::Result<Vec<u8>>),
    Err(Vec<u8>),
}

/// Runs `program args` and returns its standard output. Both pipes are read by
/// threads while the program runs (a listing larger than the pipe buffer cannot
/// stall it); the output is capped at `max_bytes`; the program is killed when it
/// has not finished within `timeout`, or prints more than `max_bytes`. Production
/// runs only the fixed [`AUDITCTL`] with `-l`; tests pass another fixed program.
fn run_listing(
    program: &str,
    args: &[&str],
    timeout: Duration,
    max_bytes: u64,
) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::process::Stdio;
    let what = format!("{program} {}", args.join(" "));
    let deadline = Instant::now() + timeout;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = out.take(max_bytes + 1).read_to_end(&mut buf).map(|_| buf);
            let _ = tx.send(Pipe::Out(r));
        });
    }
    if let Some(mut err) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut err).take(MAX_STDERR_KEPT).read_to_end(&mut buf);
            // Keep draining so the program never blocks on a full stderr pipe.
            let _ = std::io::copy(&mut err, &mut std::io::sink());
            let _ = tx.send(Pipe::Err(buf));
        });
    }
    let give_up = |child: &mut std::process::Child, why: String| {
        let _ = child.kill();
        let _ = child.wait();
        Err(why)
    };
    let too_slow = format!("{what} did not answer within {} s", timeout.as_secs());
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Pipe::Out(Ok(buf))) if buf.len() as u64 > max_bytes => {
                return give_up(
                    &mut child,
                    format!("{what} printed more than {max_bytes} bytes"),
                )
            }
            Ok(Pipe::Out(Ok(buf))) => stdout = Some(buf),
            Ok(Pipe::Out(Err(e))) => return give_up(&mut child, format!("{what}: {e}")),
            Ok(Pipe::Err(buf)) => stderr = Some(buf),
            Err(_) => return give_up(&mut child, too_slow),
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => return give_up(&mut child, too_slow),
            Err(e) => return give_up(&mut child, format!("{what}: {e}")),
        }
    };
    if !status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&stderr.unwrap_or_default()).trim()
        ));
    }
    Ok(stdout.unwrap_or_default())
}

/// Parses `auditctl -l` output into a rule set (`No rules` gives an empty one).
pub fn parse_loaded(text: &str) -> RuleSet {
    let mut set = RuleSet {
        files: vec!["auditctl -l".into()],
        ..Default::default()
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line == "No rules" {
            continue;
        }
        let source = format!("loaded rule {}", n + 1);
        match parse_line(line) {
            Ok((kind, _)) => set.rules.push(AuditRule {
                kind,
                source,
                text: line.to_string(),
            }),
            Err(why) => set.bad.push(format!("{source}: {line} ({why})")),
        }
    }
    set
}

/// The rules loaded in the kernel, on the live host only: `Ok(None)` with the reason
/// when they cannot be read (offline root, auditctl absent, no permission).
pub fn loaded(facts: &Facts) -> Arc<Result<RuleSet, String>> {
    match facts.get::<LoadedRules>() {
        Ok(rules) => rules,
        Err(e) => Arc::new(Err(e.to_string())),
    }
}

/// The audit rules loaded in the kernel, or why they were not read, as a fact.
pub struct LoadedRules;

impl Fact for LoadedRules {
    type Value = Result<RuleSet, String>;
    fn read(facts: &Facts) -> Result<Self::Value, FactError> {
        Ok(read_loaded(facts))
    }
}

fn read_loaded(facts: &Facts) -> Result<RuleSet, String> {
    if !facts.is_live() || facts.root() != std::path::Path::new("/") {
        return Err("the rules loaded in the kernel were not examined (not the live host)".into());
    }
    let Some(bin) = AUDITCTL.iter().find(|p| std::path::Path::new(p).is_file()) else {
        return Err(
            "the rules loaded in the kernel were not examined (auditctl is not installed)".into(),
        );
    };
    let out = run_listing(bin, &["-l"], AUDITCTL_TIMEOUT, MAX_AUDITCTL_OUTPUT)?;
    let mut set = parse_loaded(&String::from_utf8_lossy(&out));
    set.rules = set
        .rules
        .into_iter()
        .map(|r| AuditRule {
            kind: canonical_kind(facts, r.kind),
            ..r
        })
        .collect();
    Ok(set)
}

/// Reads /etc/audit/rules.d once per scan.
pub fn ruleset(facts: &Facts) -> Result<Arc<RuleSet>, FactError> {
    facts.get::<RuleSet>()
}

impl Fact for RuleSet {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let mut names: Vec<String> = facts
            .list_dir(RULES_DIR)?
            .into_iter()
            .filter(|n| n.ends_with(".rules") && !n.starts_with('.'))
            .collect();
        names.sort_by(|a, b| version_cmp(a, b));
        let mut set = RuleSet::default();
        let mut prepended = Vec::new();
        let mut appended = Vec::new();
        for name in names {
            let path = format!("{RULES_DIR}/{name}");
            let Some(text) = facts.read(&path)? else {
                continue;
            };
            set.files.push(path.clone());
            for (n, raw) in text.lines().enumerate() {
                let line = raw.trim_end_matches('\r').trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let source = format!("{path}:{}", n + 1);
                match parse_line(line) {
                    Ok((kind, prepend)) => {
                        let r = AuditRule {
                            kind: canonical_kind(facts, kind),
                            source,
                            text: line.to_string(),
                        };
                        match &r.kind {
                            Kind::Enable(_) => set.enable = Some(r),
                            _ if prepend => prepended.push(r),
                            _ => appended.push(r),
                        }
                    }
                    Err(why) => set.bad.push(format!("{source}: {line} ({why})")),
                }
            }
        }
        prepended.reverse();
        set.rules = prepended.into_iter().chain(appended).collect();
        Ok(set)
    }
}

/// The path as the kernel resolves it when the rule is loaded: symlinks in the
/// directories leading to it followed (inside the scanned root), so `/bin/kmod`
/// and `/usr/bin/kmod` on a merged-/usr system are the same file.
pub fn canonical(facts: &Facts, path: &str) -> String {
    let p = normalise_path(path);
    let (dir, name) = match p.rsplit_once('/') {
        Some(("", n)) => ("/", n),
        Some((d, n)) => (d, n),
        None => return p,
    };
    if name.is_empty() {
        return p;
    }
    match facts.resolve(dir, true) {
        Ok(host) => {
            let d = facts.inner_path(&host);
            let d = d.trim_end_matches('/');
            normalise_path(&format!("{d}/{name}"))
        }
        Err(_) => p,
    }
}

fn canonical_kind(facts: &Facts, kind: Kind) -> Kind {
    match kind {
        Kind::Watch { path, perms } => Kind::Watch {
            path: canonical(facts, &path),
            perms,
        },
        Kind::Rule {
            list,
            action,
            syscalls,
            mut filters,
            compares,
        } => {
            for f in filters
                .iter_mut()
                .filter(|f| f.field == "path" || f.field == "dir")
            {
                f.value = canonical(facts, &f.value);
            }
            Kind::Rule {
                list,
                action,
                syscalls,
                filters,
                compares,
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;
