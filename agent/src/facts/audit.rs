//! Audit rules as augenrules builds them from /etc/audit/rules.d, and as
//! `auditctl -l` lists them on the live host, parsed into structured rules.
//!
//! augenrules concatenates the `*.rules` files in version-sort order (`ls -v`),
//! drops comments and blank lines, keeps the last `-D`, `-b`, `-f` at the top and
//! the last `-e` at the very end. Rules are then loaded in that order. The rules
//! loaded in the kernel are read only by running `auditctl -l` on the live host (the
//! audit netlink socket is not used), the one program the agent runs.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::facts::{FactError, Facts};

pub const RULES_DIR: &str = "/etc/audit/rules.d";

/// A comparison operator of `-F` / `-C`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    BitAnd,
    BitTest,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::BitAnd => "&",
            Op::BitTest => "&=",
        }
    }
}

/// One `-F field op value` (or `-C field op field`), normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub op: Op,
    pub value: String,
}

impl Filter {
    pub fn text(&self) -> String {
        format!("{}{}{}", self.field, self.op.text(), self.value)
    }
}

/// Splits `auid>=1000` into a normalised filter.
pub fn parse_filter(s: &str) -> Option<Filter> {
    const OPS: [(&str, Op); 8] = [
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("&=", Op::BitTest),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("&", Op::BitAnd),
    ];
    let idx = s.find(['=', '!', '<', '>', '&'])?;
    let (field, rest) = s.split_at(idx);
    let (op, value) = OPS
        .iter()
        .find_map(|(t, op)| rest.strip_prefix(t).map(|v| (*op, v)))?;
    if field.is_empty() {
        return None;
    }
    let field = match field.to_ascii_lowercase().as_str() {
        "loginuid" => "auid".to_string(),
        f => f.to_string(),
    };
    let value = normalise_value(&field, value);
    Some(Filter { field, op, value })
}

pub(crate) const ID_FIELDS: [&str; 12] = [
    "auid", "uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "obj_uid", "obj_gid",
    "ouid",
];

pub(crate) fn normalise_value(field: &str, v: &str) -> String {
    let v = v.trim();
    match field {
        "arch" => match v.to_ascii_lowercase().as_str() {
            "b64" | "x86_64" | "aarch64" | "ppc64" | "ppc64le" | "s390x" | "riscv64" => {
                "b64".into()
            }
            "b32" | "i386" | "i486" | "i586" | "i686" | "arm" | "armeb" | "armv7l" | "ppc"
            | "s390" => "b32".into(),
            other => other.into(),
        },
        "exit" => {
            let neg = v.starts_with('-');
            let name = v.trim_start_matches('-');
            match errno(name) {
                Some(n) => format!("-{n}"),
                None => match parse_num(v) {
                    Some(n) => (n as i64).to_string(),
                    None => format!("{}{}", if neg { "-" } else { "" }, name),
                },
            }
        }
        "path" | "dir" => normalise_path(v),
        "perm" => {
            let set: BTreeSet<char> = v.to_ascii_lowercase().chars().collect();
            set.into_iter().collect()
        }
        f if ID_FIELDS.contains(&f) => {
            if v.eq_ignore_ascii_case("unset") || v == "-1" || v == "4294967295" {
                "unset".into()
            } else {
                parse_num(v)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| v.to_string())
            }
        }
        _ => parse_num(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| v.to_string()),
    }
}

fn errno(name: &str) -> Option<i64> {
    Some(match name.to_ascii_uppercase().as_str() {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EACCES" => 13,
        "EEXIST" => 17,
        "EROFS" => 30,
        _ => return None,
    })
}

pub(crate) fn parse_num(v: &str) -> Option<i128> {
    let (neg, body) = match v.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, v),
    };
    let n = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i128::from_str_radix(h, 16).ok()?
    } else {
        body.parse::<i128>().ok()?
    };
    Some(if neg { -n } else { n })
}

/// Trailing slashes dropped and /var/run read as /run (a symlink on Debian).
pub fn normalise_path(p: &str) -> String {
    let mut s = p.trim().to_string();
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    if s == "/var/run" {
        return "/run".into();
    }
    if let Some(rest) = s.strip_prefix("/var/run/") {
        return format!("/run/{rest}");
    }
    s
}

/// What a parsed line of the rules files is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `-w path [-p perms]`: a watch (a file, or a directory tree).
    Watch { path: String, perms: String },
    /// `-a`/`-A` on a filter list.
    Rule {
        list: String,
        action: String,
        syscalls: Vec<String>,
        filters: Vec<Filter>,
        compares: Vec<Filter>,
    },
    /// `-e N`.
    Enable(String),
    /// Any other control line (`-D`, `-b`, `-f`, `--backlog_wait_time`, `-W`, …).
    Control,
}

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
pub fn loaded(facts: &Facts) -> std::sync::Arc<Result<RuleSet, String>> {
    facts.memo("audit-loaded-rules", || {
        if !facts.is_live() || facts.root() != std::path::Path::new("/") {
            return Err(
                "the rules loaded in the kernel were not examined (not the live host)".into(),
            );
        }
        let Some(bin) = AUDITCTL.iter().find(|p| std::path::Path::new(p).is_file()) else {
            return Err(
                "the rules loaded in the kernel were not examined (auditctl is not installed)"
                    .into(),
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
    })
}

/// Reads /etc/audit/rules.d once per scan.
pub fn ruleset(facts: &Facts) -> std::sync::Arc<Result<RuleSet, FactError>> {
    facts.memo("audit-rules", || {
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
    })
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

/// Splits a token such as `-Farch=b64` into option and attached argument.
fn split_opt(tok: &str) -> (&str, Option<&str>) {
    if tok.starts_with("--") {
        return match tok.split_once('=') {
            Some((o, v)) => (o, Some(v)),
            None => (tok, None),
        };
    }
    if tok.starts_with('-') && tok.len() > 2 && tok.is_char_boundary(2) {
        (&tok[..2], Some(&tok[2..]))
    } else {
        (tok, None)
    }
}

/// Parses one auditctl line; the flag says whether it was `-A` (prepend).
pub fn parse_line(line: &str) -> Result<(Kind, bool), String> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let mut i = 0;
    let mut watch: Option<String> = None;
    let mut perms: Option<String> = None;
    let mut list_action: Option<(String, String, bool)> = None;
    let mut syscalls = Vec::new();
    let mut filters = Vec::new();
    let mut compares = Vec::new();
    let mut enable = None;
    let mut control = false;
    while i < toks.len() {
        let (opt, attached) = split_opt(toks[i]);
        let takes_arg = matches!(
            opt,
            "-w" | "-W"
                | "-p"
                | "-a"
                | "-A"
                | "-d"
                | "-S"
                | "-F"
                | "-C"
                | "-k"
                | "-e"
                | "-b"
                | "-f"
                | "-r"
        ) || (opt.starts_with("--")
            && !matches!(opt, "--loginuid-immutable" | "--reset-lost" | "--signal"));
        let arg = if takes_arg {
            match attached {
                Some(a) => Some(a.to_string()),
                None => {
                    i += 1;
                    match toks.get(i) {
                        Some(a) => Some(a.to_string()),
                        None if opt.starts_with("--") => None,
                        None => return Err(format!("option {opt} needs an argument")),
                    }
                }
            }
        } else {
            None
        };
        let arg_s = arg.clone().unwrap_or_default();
        match opt {
            "-w" => watch = Some(normalise_path(&arg_s)),
            "-p" => {
                let set: BTreeSet<char> = arg_s.to_ascii_lowercase().chars().collect();
                if set.iter().any(|c| !"rwxa".contains(*c)) {
                    return Err(format!("bad permission set {arg_s}"));
                }
                perms = Some(set.into_iter().collect());
            }
            "-a" | "-A" => {
                let (x, y) = arg_s
                    .split_once(',')
                    .ok_or_else(|| format!("bad list,action {arg_s}"))?;
                let (x, y) = (x.trim().to_ascii_lowercase(), y.trim().to_ascii_lowercase());
                let lists = [
                    "exit",
                    "task",
                    "user",
                    "exclude",
                    "filesystem",
                    "io_uring",
                    "entry",
                ];
                let (list, action) = if lists.contains(&x.as_str()) {
                    (x, y)
                } else {
                    (y, x)
                };
                if !lists.contains(&list.as_str()) || !matches!(action.as_str(), "always" | "never")
                {
                    return Err(format!("bad list,action {arg_s}"));
                }
                list_action = Some((list, action, opt == "-A"));
            }
            "-S" => syscalls.extend(
                arg_s
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.trim().to_ascii_lowercase()),
            ),
            "-F" => {
                let f = parse_filter(&arg_s).ok_or_else(|| format!("bad field {arg_s}"))?;
                if f.field == "key" {
                    i += 1;
                    continue;
                }
                if f.field == "arch" && !matches!(f.value.as_str(), "b64" | "b32") {
                    return Err(format!("unknown arch {}", f.value));
                }
                filters.push(f);
            }
            "-C" => {
                let mut f =
                    parse_filter(&arg_s).ok_or_else(|| format!("bad comparison {arg_s}"))?;
                f.value = f.value.to_ascii_lowercase();
                // euid!=uid and uid!=euid are the same comparison.
                if matches!(f.op, Op::Eq | Op::Ne) && f.value < f.field {
                    std::mem::swap(&mut f.field, &mut f.value);
                }
                compares.push(f);
            }
            "-k" => {}
            "-e" => enable = Some(arg_s.clone()),
            "-d" | "-W" | "-D" | "-b" | "-f" | "-r" | "-c" | "-i" | "-l" | "-s" | "-v" => {
                control = true
            }
            o if o.starts_with("--") => control = true,
            other => return Err(format!("unknown option {other}")),
        }
        i += 1;
    }
    if let Some(e) = enable {
        return Ok((Kind::Enable(e), false));
    }
    if let Some(path) = watch {
        if list_action.is_some() {
            return Err("-w cannot be combined with -a".into());
        }
        return Ok((
            Kind::Watch {
                path,
                perms: perms.unwrap_or_else(|| "arwx".into()),
            },
            false,
        ));
    }
    if let Some((list, action, prepend)) = list_action {
        return Ok((
            Kind::Rule {
                list,
                action,
                syscalls,
                filters,
                compares,
            },
            prepend,
        ));
    }
    if control || !toks.is_empty() {
        return Ok((Kind::Control, false));
    }
    Err("empty".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing far larger than a pipe's 64 KiB buffer is read while the program
    /// runs: it arrives whole, well before the timeout.
    #[test]
    fn a_listing_larger_than_the_pipe_buffer_is_read_whole() {
        let t0 = Instant::now();
        let out = run_listing(
            "/bin/sh",
            &[
                "-c",
                "yes -- '-w /etc/passwd -p wa -k identity' | head -c 200000",
            ],
            Duration::from_secs(5),
            MAX_AUDITCTL_OUTPUT,
        )
        .unwrap();
        assert_eq!(out.len(), 200_000);
        assert!(out.starts_with(b"-w /etc/passwd -p wa -k identity\n"));
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    }

    #[test]
    fn listing_output_time_and_failure_are_bounded() {
        let err = run_listing(
            "/bin/sh",
            &["-c", "yes | head -c 300000"],
            Duration::from_secs(5),
            100_000,
        )
        .unwrap_err();
        assert!(err.contains("printed more than 100000 bytes"), "{err}");
        let t0 = Instant::now();
        let err = run_listing(
            "/bin/sh",
            &["-c", "exec sleep 30"],
            Duration::from_millis(500),
            MAX_AUDITCTL_OUTPUT,
        )
        .unwrap_err();
        assert!(err.contains("did not answer within"), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let err = run_listing(
            "/bin/sh",
            &["-c", "echo no permission >&2; exit 3"],
            Duration::from_secs(5),
            MAX_AUDITCTL_OUTPUT,
        )
        .unwrap_err();
        assert!(err.ends_with("failed: no permission"), "{err}");
    }

    #[test]
    fn auditctl_listing_parses_like_rule_files() {
        let set = parse_loaded(
            "-w /etc/group -p wa -k identity\n-a always,exit -F arch=b64 -S adjtimex,settimeofday -F key=time-change\n-e 2\nbogus line\n",
        );
        assert_eq!(set.rules.len(), 3);
        assert_eq!(set.bad.len(), 1);
        assert!(parse_loaded("No rules\n").rules.is_empty());
    }

    #[test]
    fn parses_watches_rules_and_controls() {
        let (k, _) = parse_line("-w /etc/sudoers.d/ -p wa -k scope").unwrap();
        assert_eq!(
            k,
            Kind::Watch {
                path: "/etc/sudoers.d".into(),
                perms: "aw".into()
            }
        );
        let (k, pre) = parse_line(
            "-A exit,always -F arch=x86_64 -S chmod,fchmod -Fauid>=1000 -F auid!=-1 -F key=x",
        )
        .unwrap();
        assert!(pre);
        match k {
            Kind::Rule {
                list,
                action,
                syscalls,
                filters,
                ..
            } => {
                assert_eq!((list.as_str(), action.as_str()), ("exit", "always"));
                assert_eq!(syscalls, vec!["chmod", "fchmod"]);
                assert_eq!(
                    filters.iter().map(Filter::text).collect::<Vec<_>>(),
                    vec!["arch=b64", "auid>=1000", "auid!=unset"]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_line("-e 2").unwrap().0, Kind::Enable("2".into()));
        assert_eq!(
            parse_line("--backlog_wait_time 60000").unwrap().0,
            Kind::Control
        );
        assert!(parse_line("-a always,bogus -S open").is_err());
        assert!(parse_line("-w /x -p z").is_err());
        assert_eq!(parse_filter("exit=-EACCES").unwrap().value, "-13");
        assert_eq!(parse_filter("exit=-13").unwrap().value, "-13");
    }

    #[test]
    fn version_sort_is_natural() {
        let mut v = vec!["10-b.rules", "9-a.rules", "50-x.rules", "099-z.rules"];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(
            v,
            vec!["9-a.rules", "10-b.rules", "50-x.rules", "099-z.rules"]
        );
    }
}
