//! The configurations of the pam family: common-auth (pam_faillock around
//! pam_unix), common-account, common-password (pam_pwhistory, pam_pwquality and
//! pam_unix's hash) and the files the modules read, built from the CIS layout and
//! mutated from a seed: controls and jumps, lines dropped, moved or added, includes
//! of files that are missing, empty or links, `-` and case on the type, bracketed
//! arguments, comments and continuations, /usr/lib/pam.d instead of /etc/pam.d;
//! and /etc/login.defs' ENCRYPT_METHOD, which pam_unix falls back to when its
//! password line names no algorithm (missing, repeated, commented, in another case,
//! quoted, after `=` or odd blanks, naming no algorithm).
//!
//! Every pam_unix line and every pam_faillock auth line carries `nodelay` (authsucc
//! too: a mutated stack can reach it on a failure): no rule judges it and it changes
//! no path, and it spares the oracle the two seconds pam_unix and pam_faillock ask
//! libpam to wait after a failed authentication or password change (pam_chauthtok
//! waits as pam_authenticate does: without it a configuration took about 4 s, with
//! it about 0.3 s). login.defs' FAIL_DELAY would not do: only pam_faildelay reads it,
//! and these stacks do not call it.

use super::super::login_defs::{GAPS, METHODS};
use super::super::{Placed, Rng, RootCopy};

/// One module line before it is written out.
#[derive(Clone)]
struct Line {
    kind: String,
    control: String,
    module: String,
    args: Vec<String>,
}

impl Line {
    fn new(kind: &str, control: &str, module: &str, args: &[&str]) -> Line {
        Line {
            kind: kind.into(),
            control: control.into(),
            module: module.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }
}

const CONTROLS: &[&str] = &[
    "required",
    "requisite",
    "sufficient",
    "optional",
    "[success=1 default=ignore]",
    "[success=2 default=ignore]",
    "[default=die]",
    "[success=ok default=bad]",
    "[success=done default=ignore]",
    "[default=ignore]",
    "Required",
    "[success=ok new_authtok_reqd=ok ignore=ignore default=bad]",
];

const INSERTED_CONTROLS: &[&str] = &[
    "sufficient",
    "optional",
    "[success=1 default=ignore]",
    "required",
];
const INSERTED_MODULES: &[&str] = &["pam_permit.so", "pam_permit.so", "pam_deny.so"];
const MISSING_CONTROLS: &[&str] = &["required", "optional"];

const DENY: &[&str] = &[
    "deny=1", "deny=2", "deny=3", "deny=4", "deny=5", "deny=6", "deny=0", "deny=4x", "Deny=2",
    "[deny=2]", "deny=-1", "deny=",
];

const FAILLOCK_CONF: &[&str] = &[
    "deny = 2",
    "deny = 4",
    "deny=5",
    "deny = 6",
    "deny = 1",
    "  deny  =  3  ",
    "deny = 0",
    "Deny = 2",
    "# deny = 1",
    "deny = 2 # two",
    "even_deny_root",
    "even_deny_root = yes",
    "unlock_time = 900",
    "root_unlock_time = 60",
    "silent",
    "nonsense here",
    "deny",
];

const REMEMBER: &[&str] = &[
    "remember=5",
    "remember=24",
    "remember=25",
    "remember=30",
    "remember=0",
    "remember=24x",
    "Remember=24",
    "[remember=26]",
    "remember=-3",
    "remember=",
];

const HASHES: &[&[&str]] = &[
    &["yescrypt"],
    &["yescrypt"],
    &["sha512"],
    &["sha512", "rounds=5000"],
    &["md5"],
    &["sha256"],
    &["blowfish"],
    &[],
    &["SHA512"],
    &["yescrypt", "md5"],
    &["md5", "yescrypt"],
    &["[sha512]"],
    &[],
    &[],
    &[],
    &["DES"],
    &["des"],
    &["sha512", "des"],
];

/// ENCRYPT_METHOD values beyond the shared [`METHODS`] that only pam_unix's reading
/// tells apart: its other algorithm names (a value names the first one it starts
/// with, case-insensitive) and near misses.
const PAM_METHODS: &[&str] = &[
    "BLOWFISH",
    "GOST_YESCRYPT",
    "des",
    "BIGCRYPT",
    "md5crypt",
    "SHA512x",
    "YESCRYPT\u{b}",
    "NONE",
];

/// Separators beyond the shared [`GAPS`]: `=` (which pam_modutil_search_key skips
/// like a blank) and the blanks C's `isspace` counts that are not a space or a tab.
const PAM_GAPS: &[&str] = &["=", " = ", "==", "\u{b}", " \u{c}", "\r"];

const KEY: &str = "ENCRYPT_METHOD";

/// One ENCRYPT_METHOD line (without its newline).
fn encrypt_method_line(rng: &mut Rng) -> String {
    let value = if rng.chance(70) {
        *rng.pick(METHODS)
    } else {
        *rng.pick(PAM_METHODS)
    };
    let gap = if rng.chance(60) {
        *rng.pick(GAPS)
    } else {
        *rng.pick(PAM_GAPS)
    };
    match rng.below(14) {
        0 => format!("# {KEY} {value}"),
        1 => format!("{}{gap}{value}", KEY.to_lowercase()),
        2 => format!("Encrypt_Method{gap}{value}"),
        3 => format!("  {KEY}{gap}{value}"),
        4 => format!("{KEY}{gap}{value}\r"),
        5 => format!("{KEY}\r"),
        6 => KEY.to_string(),
        7 => format!("\u{a0}{KEY}{gap}{value}"),
        8 => format!("\u{b}{KEY}{gap}{value}"),
        9 => format!("{KEY}{gap}{value}   "),
        10 => format!("{KEY}X{gap}{value}"),
        _ => format!("{KEY}{gap}{value}"),
    }
}

/// /etc/login.defs with 0 to 3 ENCRYPT_METHOD lines among settings no module of
/// these stacks reads (pam_unix reads SHA_CRYPT_MAX_ROUNDS only with a SHA method from
/// login.defs, and it is never written: its rounds change no hash prefix), or no file.
fn login_defs(rng: &mut Rng, copy: &RootCopy) -> String {
    let path = "/etc/login.defs";
    if rng.chance(10) {
        copy.remove(path);
        return format!("{path}: (missing)\n");
    }
    let mut lines: Vec<String> = ["# login.defs", "PASS_MAX_DAYS\t99999", "UMASK\t\t022"]
        .iter()
        .map(|l| l.to_string())
        .collect();
    for _ in 0..rng.below(4) {
        let at = rng.below(lines.len() + 1);
        lines.insert(at, encrypt_method_line(rng));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    copy.write(path, &text);
    let shown: String = lines
        .iter()
        .map(|l| format!("{}\n", l.escape_debug()))
        .collect();
    format!("{path} (escaped):\n{shown}")
}

/// The auth stack: the CIS faillock layout (70%) or Debian's default.
fn auth(rng: &mut Rng) -> Vec<Line> {
    let nullok: &[&str] = if rng.chance(40) { &["nullok"] } else { &[] };
    let mut unix = Line::new("auth", "[success=1 default=ignore]", "pam_unix.so", nullok);
    unix.args.push("nodelay".into());
    if !rng.chance(70) {
        return vec![
            unix,
            Line::new("auth", "requisite", "pam_deny.so", &[]),
            Line::new("auth", "required", "pam_permit.so", &[]),
        ];
    }
    let fl = |rng: &mut Rng, kind: &str| {
        let mut l = Line::new("auth", "requisite", "pam_faillock.so", &[kind, "nodelay"]);
        if rng.chance(30) {
            l.args.push(rng.pick(DENY).to_string());
        }
        if rng.chance(15) {
            l.args.push("even_deny_root".into());
        }
        l
    };
    let pre = fl(rng, "preauth");
    let mut fail = fl(rng, "authfail");
    fail.control = "[default=die]".into();
    let mut succ = Line::new(
        "auth",
        "sufficient",
        "pam_faillock.so",
        &["authsucc", "nodelay"],
    );
    if rng.chance(20) {
        succ.args.push(rng.pick(DENY).to_string());
    }
    vec![
        pre,
        unix,
        fail,
        succ,
        Line::new("auth", "requisite", "pam_deny.so", &[]),
        Line::new("auth", "required", "pam_permit.so", &[]),
    ]
}

/// The password stack: pam_pwhistory (60%) and pam_pwquality (20%) before or after
/// pam_unix.
fn password(rng: &mut Rng) -> Vec<Line> {
    let mut unix = Line::new(
        "password",
        "[success=1 default=ignore]",
        "pam_unix.so",
        &["obscure", "nodelay"],
    );
    unix.args
        .extend(rng.pick(HASHES).iter().map(|s| s.to_string()));
    let mut lines = Vec::new();
    if rng.chance(20) {
        lines.push(Line::new(
            "password",
            "requisite",
            "pam_pwquality.so",
            &["retry=3", "minlen=14"],
        ));
    }
    if rng.chance(60) {
        let mut h = Line::new("password", "requisite", "pam_pwhistory.so", &[]);
        if rng.chance(80) {
            h.args.push(rng.pick(REMEMBER).to_string());
        }
        if rng.chance(50) {
            h.args.push("enforce_for_root".into());
        }
        if rng.chance(50) {
            h.args.push("use_authtok".into());
        }
        if rng.chance(70) {
            lines.push(h);
            if rng.chance(50) {
                unix.args.push("use_authtok".into());
            }
            lines.push(unix);
        } else {
            // After pam_unix: reached only if pam_unix's jump lands on it.
            lines.push(unix);
            lines.push(h);
        }
    } else {
        lines.push(unix);
    }
    lines.push(Line::new("password", "requisite", "pam_deny.so", &[]));
    lines.push(Line::new("password", "required", "pam_permit.so", &[]));
    lines
}

/// Applies 0 to 2 mutations to a stack.
fn mutate(rng: &mut Rng, lines: &mut Vec<Line>, kind: &str) {
    for _ in 0..rng.below(3) {
        if lines.is_empty() {
            return;
        }
        let i = rng.below(lines.len());
        match rng.below(9) {
            0 => lines[i].control = rng.pick(CONTROLS).to_string(),
            1 => {
                let (control, module) = (*rng.pick(INSERTED_CONTROLS), *rng.pick(INSERTED_MODULES));
                lines.insert(i, Line::new(kind, control, module, &[]));
            }
            2 => {
                lines.remove(i);
            }
            3 if i + 1 < lines.len() => lines.swap(i, i + 1),
            4 => lines[i].kind = format!("-{}", lines[i].kind),
            5 => lines[i].kind = lines[i].kind.to_uppercase(),
            6 => {
                let kind = format!("{}{kind}", rng.pick(&["", "-"]));
                let control = *rng.pick(MISSING_CONTROLS);
                lines.insert(i, Line::new(&kind, control, "pam_nothere.so", &[]));
            }
            7 => {
                let m = lines[i].module.clone();
                lines[i].module = format!("/lib/x86_64-linux-gnu/security/{m}");
            }
            _ => {}
        }
    }
}

/// Writes one line: tabs or spaces, sometimes a trailing comment or a continuation.
fn render(rng: &mut Rng, l: &Line) -> String {
    let sep = *rng.pick(&[" ", "\t", "  ", "\t\t"]);
    let control = &l.control;
    let mut s = format!("{}{sep}{control}{sep}{}", l.kind, l.module);
    for a in &l.args {
        if rng.chance(5) {
            s += " \\\n    ";
        } else {
            s += " ";
        }
        s += a;
    }
    if rng.chance(8) {
        s += " # note";
    }
    s + "\n"
}

const INC: &str = "rampart-inc";

/// Writes a stack as `service`, maybe moving some of its lines into an included file;
/// returns the description.
fn write_stack(rng: &mut Rng, copy: &RootCopy, service: &str, lines: &[Line]) -> String {
    let mut desc = String::new();
    let mut main = String::from("# generated\n");
    let mut inc = String::new();
    let split = if lines.len() > 1 && rng.chance(25) {
        Some(rng.below(lines.len()))
    } else {
        None
    };
    for (i, l) in lines.iter().enumerate() {
        let text = render(rng, l);
        match split {
            Some(s) if i >= s && i < s + 2 => {
                if i == s {
                    let kind = l.kind.trim_start_matches('-').to_lowercase();
                    main += &match rng.below(3) {
                        0 => format!("@include {INC}\n"),
                        1 => format!("{kind} include {INC}\n"),
                        _ => format!("{kind} substack {INC}\n"),
                    };
                }
                inc += &text;
            }
            _ => main += &text,
        }
    }
    if split.is_some() {
        let path = format!("/etc/pam.d/{INC}");
        match rng.below(8) {
            0 => {
                copy.remove(&path);
                desc += &format!("{path}: (missing)\n");
            }
            1 => desc += &copy.place(&path, Placed::Empty),
            2 => {
                copy.write("/etc/pam.d/rampart-real", &inc);
                copy.link(&path, "rampart-real");
                desc += &format!("{path} -> rampart-real:\n{inc}");
            }
            3 => {
                copy.remove(&path);
                copy.write(&format!("/usr/lib/pam.d/{INC}"), &inc);
                desc += &format!("/usr/lib/pam.d/{INC}:\n{inc}");
            }
            _ => {
                copy.write(&path, &inc);
                desc += &format!("{path}:\n{inc}");
            }
        }
    }
    let etc = format!("/etc/pam.d/{service}");
    let usr = format!("/usr/lib/pam.d/{service}");
    match rng.below(20) {
        0 => {
            copy.remove(&etc);
            copy.write(&usr, &main);
            desc += &format!("{usr}:\n{main}");
        }
        1 => {
            copy.write(&etc, &main);
            copy.write(&usr, "# vendor\n");
            desc += &format!("{etc}:\n{main}{usr}: (a comment)\n");
        }
        _ => {
            copy.write(&etc, &main);
            desc += &format!("{etc}:\n{main}");
        }
    }
    desc
}

fn conf(rng: &mut Rng, copy: &RootCopy, path: &str, pool: &[&str]) -> String {
    if rng.chance(30) {
        copy.remove(path);
        return format!("{path}: (missing)\n");
    }
    let t: String = (0..rng.below(4))
        .map(|_| format!("{}\n", rng.pick(pool)))
        .collect();
    copy.write(path, &t);
    format!("{path}:\n{t}")
}

/// Builds one configuration in the copy; returns its description.
pub fn generate(rng: &mut Rng, copy: &RootCopy) -> String {
    for d in [
        "/usr/lib/pam.d/common-auth",
        "/usr/lib/pam.d/common-password",
    ] {
        copy.remove(d);
    }
    for f in [INC, "rampart-real"] {
        copy.remove(&format!("/etc/pam.d/{f}"));
        copy.remove(&format!("/usr/lib/pam.d/{f}"));
    }
    let mut desc = String::new();
    let mut a = auth(rng);
    mutate(rng, &mut a, "auth");
    desc += &write_stack(rng, copy, "common-auth", &a);
    let mut p = password(rng);
    mutate(rng, &mut p, "password");
    desc += &write_stack(rng, copy, "common-password", &p);
    let account = if rng.chance(60) {
        "account\trequired\tpam_faillock.so\naccount\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\naccount\trequisite\tpam_deny.so\naccount\trequired\tpam_permit.so\n"
    } else {
        "account\t[success=1 new_authtok_reqd=done default=ignore]\tpam_unix.so\naccount\trequisite\tpam_deny.so\naccount\trequired\tpam_permit.so\n"
    };
    copy.write("/etc/pam.d/common-account", account);
    desc += &conf(rng, copy, "/etc/security/faillock.conf", FAILLOCK_CONF);
    desc += &conf(
        rng,
        copy,
        "/etc/security/pwhistory.conf",
        &["remember = 24", "remember = 3", "enforce_for_root"],
    );
    desc += &login_defs(rng, copy);
    desc
}
