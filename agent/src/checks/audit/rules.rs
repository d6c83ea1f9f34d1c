//! Audit rules as augenrules builds them from /etc/audit/rules.d, parsed into
//! structured rules, and semantic matching of what a recommendation requires
//! against them.
//!
//! augenrules concatenates the `*.rules` files in version-sort order (`ls -v`),
//! drops comments and blank lines, keeps the last `-D`, `-b`, `-f` at the top and
//! the last `-e` at the very end. Rules are then loaded in that order. The rules
//! loaded in the kernel are not read (that needs the audit netlink socket).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde::Deserialize;

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

const ID_FIELDS: [&str; 12] = [
    "auid", "uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid", "obj_uid", "obj_gid",
    "ouid",
];

fn normalise_value(field: &str, v: &str) -> String {
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

fn parse_num(v: &str) -> Option<i128> {
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

// ---------------------------------------------------------------------------
// Requirements

/// What a recommendation needs audited, as written in the content.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// A file or directory whose accesses are audited (`-w` or `-F path=`/`dir=`).
    #[serde(default)]
    pub path: Option<String>,
    /// Access types for `path` (`r`, `w`, `x`, `a`).
    #[serde(default)]
    pub perms: Option<String>,
    /// System calls audited (each, for each `arch`).
    #[serde(default)]
    pub syscalls: Vec<String>,
    /// Architectures: `b64`, `b32`. Default both.
    #[serde(default)]
    pub arch: Vec<String>,
    /// Filters every matching event meets, e.g. `auid>=UID_MIN`, `auid!=unset`,
    /// `exit=-EACCES`. A rule with fewer (or looser) filters also covers.
    #[serde(default)]
    pub filters: Vec<String>,
    /// Field comparisons (`-C`), e.g. `euid!=uid`.
    #[serde(default)]
    pub compare: Vec<String>,
}

/// A requirement resolved for one architecture and (optionally) one syscall.
#[derive(Debug, Clone)]
pub struct Atom {
    pub arch: String,
    pub syscall: Option<String>,
    pub path: Option<String>,
    pub perms: Option<String>,
    pub filters: Vec<Filter>,
    pub compares: Vec<Filter>,
}

impl Requirement {
    /// Expands into atoms with `UID_MIN` substituted.
    pub fn atoms(&self, uid_min: u32) -> Result<Vec<Atom>, String> {
        let arches: Vec<String> = if self.arch.is_empty() {
            vec!["b64".into(), "b32".into()]
        } else {
            self.arch.clone()
        };
        let mut filters = Vec::new();
        for f in &self.filters {
            let s = f.replace("UID_MIN", &uid_min.to_string());
            filters.push(parse_filter(&s).ok_or_else(|| format!("bad filter {f} in content"))?);
        }
        let mut compares = Vec::new();
        for c in &self.compare {
            let mut f = parse_filter(c).ok_or_else(|| format!("bad comparison {c} in content"))?;
            if matches!(f.op, Op::Eq | Op::Ne) && f.value < f.field {
                std::mem::swap(&mut f.field, &mut f.value);
            }
            compares.push(f);
        }
        let path = self.path.as_deref().map(normalise_path);
        let perms = self
            .perms
            .as_ref()
            .map(|p| p.chars().collect::<BTreeSet<char>>().into_iter().collect());
        let mut out = Vec::new();
        for arch in &arches {
            let base = Atom {
                arch: normalise_value("arch", arch),
                syscall: None,
                path: path.clone(),
                perms: perms.clone(),
                filters: filters.clone(),
                compares: compares.clone(),
            };
            if self.syscalls.is_empty() {
                out.push(base);
            } else {
                for s in &self.syscalls {
                    out.push(Atom {
                        syscall: Some(s.to_ascii_lowercase()),
                        ..base.clone()
                    });
                }
            }
        }
        Ok(out)
    }
}

impl Atom {
    /// The rule that would meet this atom, in auditctl syntax.
    pub fn suggest(&self) -> String {
        let f: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!(" -F {}", f.text()))
            .collect();
        let c: Vec<String> = self
            .compares
            .iter()
            .map(|f| format!(" -C {}", f.text()))
            .collect();
        match (&self.syscall, &self.path) {
            (None, Some(p)) if self.filters.is_empty() && self.compares.is_empty() => {
                format!("-w {p} -p {}", self.perms.as_deref().unwrap_or("rwxa"))
            }
            (None, Some(p)) => format!(
                "-a always,exit -F path={p}{}{}{}",
                self.perms
                    .as_deref()
                    .map(|x| format!(" -F perm={x}"))
                    .unwrap_or_default(),
                f.concat(),
                c.concat()
            ),
            (Some(s), _) => format!(
                "-a always,exit -F arch={} -S {s}{}{}",
                self.arch,
                c.concat(),
                f.concat()
            ),
            (None, None) => format!(
                "-a always,exit -F arch={}{}{}",
                self.arch,
                c.concat(),
                f.concat()
            ),
        }
    }
}

fn is_ancestor_or_self(dir: &str, path: &str) -> bool {
    dir == path
        || dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn superset(have: &str, want: &str) -> bool {
    want.chars().all(|c| have.contains(c))
}

fn num(v: &str) -> Option<i128> {
    if v == "unset" {
        return Some(4294967295);
    }
    parse_num(v)
}

/// Whether every event meeting `q` also meets `r` (so a rule filtering on `r`
/// misses none of the required events).
pub fn implies(q: &Filter, r: &Filter) -> bool {
    if q.field != r.field {
        return false;
    }
    if q.op == r.op && q.value == r.value {
        return true;
    }
    let (Some(qv), Some(rv)) = (num(&q.value), num(&r.value)) else {
        return false;
    };
    // The set of values q admits, as an inclusive range (None: not a range).
    let range = |op: Op, v: i128| -> Option<(i128, i128)> {
        Some(match op {
            Op::Eq => (v, v),
            Op::Ge => (v, i128::MAX),
            Op::Gt => (v.saturating_add(1), i128::MAX),
            Op::Le => (i128::MIN, v),
            Op::Lt => (i128::MIN, v.saturating_sub(1)),
            _ => return None,
        })
    };
    match (range(q.op, qv), r.op) {
        (Some((lo, hi)), Op::Ne) => rv < lo || rv > hi,
        (Some((lo, hi)), op) => match range(op, rv) {
            Some((rlo, rhi)) => rlo <= lo && hi <= rhi,
            None => false,
        },
        // q excludes one value: only r excluding the same value is implied.
        (None, _) => false,
    }
}

/// Whether every event meeting all of `qs` also meets `r`. Numeric filters on the
/// same field are combined, so `auid>=1000 auid!=unset` implies `auid<4294967295`
/// (IDs are 32-bit, `unset` being the largest).
pub fn implied_by(qs: &[Filter], r: &Filter) -> bool {
    let same: Vec<&Filter> = qs.iter().filter(|q| q.field == r.field).collect();
    if same.iter().any(|q| implies(q, r)) {
        return true;
    }
    let Some(rv) = num(&r.value) else {
        return false;
    };
    let (mut lo, mut hi) = if ID_FIELDS.contains(&r.field.as_str()) {
        (0i128, 4294967295i128)
    } else {
        (i128::MIN, i128::MAX)
    };
    let mut excluded = Vec::new();
    for q in &same {
        let Some(v) = num(&q.value) else { return false };
        match q.op {
            Op::Eq => {
                lo = lo.max(v);
                hi = hi.min(v);
            }
            Op::Ge => lo = lo.max(v),
            Op::Gt => lo = lo.max(v.saturating_add(1)),
            Op::Le => hi = hi.min(v),
            Op::Lt => hi = hi.min(v.saturating_sub(1)),
            Op::Ne => excluded.push(v),
            _ => return false,
        }
    }
    // Exclusions at the edges of the range narrow it.
    while lo <= hi {
        if excluded.contains(&lo) || excluded.contains(&hi) {
            if lo == hi {
                return true; // nothing is left: vacuous
            }
            if excluded.contains(&lo) {
                lo += 1;
            } else {
                hi -= 1;
            }
            continue;
        }
        break;
    }
    if lo > hi {
        return true; // nothing is required on this field: vacuous
    }
    match r.op {
        Op::Eq => lo == rv && hi == rv,
        Op::Ne => rv < lo || rv > hi || excluded.contains(&rv),
        Op::Ge => lo >= rv,
        Op::Gt => lo > rv,
        Op::Le => hi <= rv,
        Op::Lt => hi < rv,
        _ => false,
    }
}

/// Whether rule `r` (ignoring its action) matches every event the atom describes.
pub fn covers(r: &Kind, a: &Atom) -> bool {
    match r {
        Kind::Watch { path, perms } => {
            let Some(ap) = &a.path else { return false };
            a.syscall.is_none()
                && a.compares.is_empty()
                && is_ancestor_or_self(path, ap)
                && superset(perms, a.perms.as_deref().unwrap_or(""))
        }
        Kind::Rule {
            list,
            syscalls,
            filters,
            compares,
            ..
        } => {
            if list != "exit" {
                return false;
            }
            let all_syscalls = syscalls.is_empty() || syscalls.iter().any(|s| s == "all");
            // Arch: an explicit filter must match; without one, named syscalls are
            // the native (64-bit) ones, while rules on all syscalls match any arch.
            let arch = filters.iter().find(|f| f.field == "arch");
            let arch_ok = match arch {
                Some(f) => f.op == Op::Eq && f.value == a.arch,
                None => all_syscalls || a.arch == "b64",
            };
            if !arch_ok {
                return false;
            }
            match &a.syscall {
                Some(s) => {
                    if !all_syscalls && !syscalls.contains(s) {
                        return false;
                    }
                }
                None => {
                    if !all_syscalls {
                        return false;
                    }
                }
            }
            for f in filters {
                let ok = match f.field.as_str() {
                    "arch" => true,
                    "path" => f.op == Op::Eq && a.path.as_deref() == Some(f.value.as_str()),
                    "dir" => {
                        f.op == Op::Eq
                            && a.path
                                .as_deref()
                                .is_some_and(|p| is_ancestor_or_self(&f.value, p))
                    }
                    "perm" => {
                        f.op == Op::Eq && superset(&f.value, a.perms.as_deref().unwrap_or("rwxa"))
                    }
                    _ => implied_by(&a.filters, f),
                };
                if !ok {
                    return false;
                }
            }
            // A rule without a path filter must not stand in for a path requirement
            // unless it audits every syscall (handled above) — it then matches more.
            compares.iter().all(|c| a.compares.iter().any(|q| q == c))
        }
        _ => false,
    }
}

/// The result of looking for one atom in the rule set.
pub enum Found<'a> {
    Covered(&'a AuditRule),
    /// Covered by a rule, but an earlier `never` rule takes the events first.
    Suppressed {
        by: &'a AuditRule,
        rule: &'a AuditRule,
    },
    Missing,
}

/// Finds the first `always` rule covering `a`, unless a `never` rule before it
/// also covers it.
pub fn find<'a>(set: &'a RuleSet, a: &Atom) -> Found<'a> {
    let mut never: Option<&AuditRule> = None;
    for r in &set.rules {
        let is_never = matches!(&r.kind, Kind::Rule { action, .. } if action == "never");
        if !covers(&r.kind, a) {
            continue;
        }
        if is_never {
            never.get_or_insert(r);
            continue;
        }
        return match never {
            Some(n) => Found::Suppressed { by: n, rule: r },
            None => Found::Covered(r),
        };
    }
    Found::Missing
}

/// A `never` rule on the task list without filters: no syscall is audited at all.
pub fn task_never(set: &RuleSet) -> Option<&AuditRule> {
    set.rules.iter().find(|r| {
        matches!(&r.kind, Kind::Rule { list, action, filters, syscalls, .. }
            if list == "task" && action == "never" && filters.is_empty() && syscalls.is_empty())
    })
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

    fn set(text: &str) -> RuleSet {
        let mut s = RuleSet::default();
        for (n, l) in text.lines().enumerate() {
            if let Ok((kind, _)) = parse_line(l) {
                s.rules.push(AuditRule {
                    kind,
                    source: format!("t:{}", n + 1),
                    text: l.into(),
                });
            }
        }
        s
    }

    fn req(toml_text: &str) -> Requirement {
        toml::from_str(toml_text).unwrap()
    }

    fn all_covered(s: &RuleSet, r: &Requirement) -> bool {
        r.atoms(1000)
            .unwrap()
            .iter()
            .all(|a| matches!(find(s, a), Found::Covered(_)))
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

    #[test]
    fn implication_of_filters() {
        let f = |s: &str| parse_filter(s).unwrap();
        assert!(implies(&f("auid>=1000"), &f("auid>=500")));
        assert!(!implies(&f("auid>=500"), &f("auid>=1000")));
        assert!(implies(&f("auid>=1000"), &f("auid>999")));
        assert!(implies(&f("auid!=unset"), &f("auid!=4294967295")));
        assert!(implies(&f("auid=0"), &f("auid!=unset")));
        assert!(!implies(&f("auid>=1000"), &f("auid!=unset")));
        assert!(!implies(&f("auid>=1000"), &f("uid>=1000")));
        let q = [f("auid>=1000"), f("auid!=unset")];
        assert!(implied_by(&q, &f("auid<4294967295")));
        assert!(implied_by(&q, &f("auid<=4294967294")));
        assert!(implied_by(&q, &f("auid!=-1")));
        assert!(!implied_by(&q, &f("auid<4294967294")));
        assert!(!implied_by(&[f("auid>=1000")], &f("auid<4294967295")));
        assert!(!implied_by(&q, &f("uid=0")));
    }

    #[test]
    fn syscall_requirements_match_semantically() {
        let r = req("syscalls = ['chmod', 'fchmod']\nfilters = ['auid>=UID_MIN', 'auid!=unset']");
        let s = set(
            "-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=unset -k perm_mod\n\
                     -a always,exit -F arch=b32 -S chmod -F auid>=1000 -F auid!=-1 -k perm_mod\n\
                     -a exit,always -F arch=b32 -S fchmod -F auid>=1000 -k other",
        );
        assert!(all_covered(&s, &r));
        // Only b64: the 32-bit syscalls are missing.
        let s = set("-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F auid!=unset");
        assert!(!all_covered(&s, &r));
        // A narrower rule (extra uid filter) does not cover.
        let s = set(
            "-a always,exit -F arch=b64 -S chmod,fchmod -F auid>=1000 -F uid=0\n\
                     -a always,exit -F arch=b32 -S chmod,fchmod -F auid>=1000",
        );
        assert!(!all_covered(&s, &r));
        // No arch: the syscall names are the native ones only.
        let s = set("-a always,exit -S chmod,fchmod -F auid>=1000");
        assert!(!all_covered(&s, &r));
        // A never rule first takes the events.
        let s = set(
            "-a never,exit -F arch=b64 -S chmod\n-a always,exit -F arch=b64 -S chmod,fchmod\n\
                     -a always,exit -F arch=b32 -S chmod,fchmod",
        );
        let atoms = r.atoms(1000).unwrap();
        assert!(matches!(find(&s, &atoms[0]), Found::Suppressed { .. }));
        assert!(matches!(find(&s, &atoms[1]), Found::Covered(_)));
    }

    #[test]
    fn watch_requirements() {
        let r = req("path = '/etc/sudoers.d/'\nperms = 'wa'");
        assert!(all_covered(&set("-w /etc/sudoers.d -p wa -k scope"), &r));
        assert!(all_covered(&set("-w /etc/ -p rwa"), &r));
        assert!(all_covered(&set("-w /etc/sudoers.d/"), &r));
        assert!(!all_covered(&set("-w /etc/sudoers.d -p w"), &r));
        assert!(!all_covered(&set("-w /etc/sudoers -p wa"), &r));
        assert!(all_covered(
            &set("-a always,exit -F dir=/etc/sudoers.d -F perm=wa -k scope"),
            &r
        ));
        assert!(!all_covered(
            &set("-a always,exit -F arch=b64 -F dir=/etc/sudoers.d -F perm=wa"),
            &r
        ));
        let r = req("path = '/var/run/utmp'\nperms = 'wa'");
        assert!(all_covered(&set("-w /run/utmp -p wa"), &r));
        let r =
            req("path = '/usr/bin/chcon'\nperms = 'x'\nfilters = ['auid>=UID_MIN', 'auid!=unset']");
        assert!(all_covered(&set("-a always,exit -F path=/usr/bin/chcon -F perm=x -F auid>=1000 -F auid!=unset -k perm_chng"), &r));
        assert!(all_covered(&set("-w /usr/bin/chcon -p x"), &r));
        assert!(!all_covered(
            &set("-a always,exit -F path=/usr/bin/chcon -F perm=x -F auid>=1001"),
            &r
        ));
        assert!(!all_covered(
            &set("-a always,exit -F path=/usr/bin/chcon -F perm=w -F auid>=1000"),
            &r
        ));
    }

    #[test]
    fn comparisons() {
        let r = req("syscalls = ['execve']\ncompare = ['euid!=uid']\nfilters = ['auid!=unset']");
        let s = set("-a always,exit -F arch=b64 -C euid!=uid -F auid!=unset -S execve -k user_emulation\n\
                     -a always,exit -F arch=b32 -C uid!=euid -F auid!=-1 -S execve -k user_emulation");
        assert!(all_covered(&s, &r));
        let s = set("-a always,exit -F arch=b64 -F auid!=unset -S execve\n-a always,exit -F arch=b32 -S execve");
        assert!(
            all_covered(&s, &r),
            "a rule without the comparison audits more"
        );
    }
}
