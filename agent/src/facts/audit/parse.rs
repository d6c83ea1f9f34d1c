//! One line of an audit rules file (or of `auditctl -l`) parsed into a [`Kind`],
//! with its `-F`/`-C` filters normalised as the kernel compares them.

use std::collections::BTreeSet;

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
