//! Account defaults: the root's own shadow suite (Debian's shadow 4.13) reads
//! generated /etc/login.defs and /etc/default/useradd files, chrooted in a private
//! mount namespace; the agent (`rampart-agent facts accounts`) must agree on each
//! value the rules judge, and on the verdicts:
//!
//! - `useradd -D` prints the INACTIVE default new accounts get;
//! - `useradd` creates an account, whose /etc/shadow entry holds the PASS_MAX_DAYS
//!   and PASS_WARN_AGE the tools read from login.defs (an empty field is -1, the
//!   default they use for a value they cannot read);
//! - `chgpasswd` sets a password on a new group, hashed with the
//!   ENCRYPT_METHOD the tools read (`$6$` SHA512, `$y$` YESCRYPT, `$5$` SHA256,
//!   `$1$` MD5, no `$` DES: the tools fall back to DES for a method they do not know).
//!
//! The verdicts are recomputed from those answers with each benchmark's own bounds
//! ([`BOUNDS`]), and the agent is asked once per benchmark (`--benchmark`):
//! debian-12, ubuntu-22.04 and ubuntu-24.04 judge these keys with the same checks
//! (Ubuntu ships the same shadow suite), so one run of the tools serves all three.
//! The account databases are put back after each configuration.
//!
//! What the oracle cannot see: how PAM's modules read login.defs (pam_unix's
//! ENCRYPT_METHOD, pam_umask's UMASK) — other readers with other rules; UMASK is left
//! to a later family.

use super::login_defs::{GAPS, METHODS};
use super::{agent_facts, for_benchmark, per_benchmark, Rng, RootCopy, Settings, Tally};

/// The keys generated in login.defs (PASS_MIN_DAYS only as noise between them).
const KEYS: &[&str] = &[
    "PASS_MAX_DAYS",
    "PASS_WARN_AGE",
    "ENCRYPT_METHOD",
    "PASS_MIN_DAYS",
];

/// Numbers as an administrator might write them, and as the shadow tools might read
/// them otherwise: octal and hexadecimal prefixes, signs, out of range, comments.
const NUMBERS: &[&str] = &[
    "7",
    "30",
    "365",
    "366",
    "99999",
    "0",
    "1",
    "-1",
    "-5",
    "+7",
    "07",
    "08",
    "010",
    "0400",
    "0x10",
    "0X1e",
    "1e2",
    "30 # monthly",
    "30#",
    "\"30\"",
    "\"30",
    "3\"0",
    "\" 30 \"",
    "' 30'",
    "2147483647",
    "2147483648",
    "99999999999",
    "",
    "thirty",
    "30\u{a0}",
    "30\u{b}",
];

/// INACTIVE values in /etc/default/useradd.
const INACTIVE: &[&str] = &[
    "30",
    "45",
    "46",
    "0",
    "-1",
    "-2",
    "+30",
    "030",
    "060",
    "0x1e",
    " 30",
    "\t30",
    "30 ",
    "\"30\"",
    "'30'",
    "30 # days",
    "",
    "x",
    "99999999999",
    "1e1",
];

fn login_defs_line(rng: &mut Rng) -> String {
    let key = *rng.pick(KEYS);
    let value = if key == "ENCRYPT_METHOD" {
        *rng.pick(METHODS)
    } else {
        *rng.pick(NUMBERS)
    };
    let gap = *rng.pick(GAPS);
    match rng.below(12) {
        0 => format!("# {key} {value}"),
        1 => format!("{}{gap}{value}", key.to_lowercase()),
        2 => format!("  {key}{gap}{value}"),
        3 => format!("{key}{gap}{value}\r"),
        4 => format!("{key}{gap}{value}   "),
        5 => key.to_string(),
        6 => format!("{key}={value}"),
        _ => format!("{key}{gap}{value}"),
    }
}

fn useradd_line(rng: &mut Rng) -> String {
    let value = *rng.pick(INACTIVE);
    match rng.below(10) {
        0 => format!("# INACTIVE={value}"),
        1 => format!("INACTIVE = {value}"),
        2 => format!(" INACTIVE={value}"),
        3 => format!("INACTIVE={value}\r"),
        4 => format!("inactive={value}"),
        5 => format!("INACTIVEX={value}"),
        6 => "INACTIVE".to_string(),
        _ => format!("INACTIVE={value}"),
    }
}

/// Builds one configuration in the copy; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy, debian_defs: &str, debian_useradd: &str) -> String {
    let mut desc = String::new();
    // login.defs: Debian's own (with its PASS_* and ENCRYPT_METHOD lines, some of
    // them dropped), or nothing of it; generated lines before and after.
    let mut lines: Vec<String> = Vec::new();
    for _ in 0..rng.below(3) {
        lines.push(login_defs_line(rng));
    }
    if rng.chance(75) {
        for l in debian_defs.lines() {
            if KEYS.iter().any(|k| l.starts_with(k)) && rng.chance(30) {
                continue;
            }
            lines.push(l.to_string());
        }
    }
    for _ in 0..rng.below(5) {
        lines.push(login_defs_line(rng));
    }
    let mut defs = lines.join("\n");
    if !lines.is_empty() && rng.chance(90) {
        defs.push('\n');
    }
    copy.write("/etc/login.defs", &defs);
    let generated: Vec<&String> = lines
        .iter()
        .filter(|l| !debian_defs.lines().any(|d| d == l.as_str()))
        .collect();
    desc += &format!("/etc/login.defs: generated lines {generated:?}\n");
    // /etc/default/useradd: Debian's (SHELL=/bin/sh and comments) or not, INACTIVE lines.
    let mut text = String::new();
    if rng.chance(70) {
        text += debian_useradd;
    }
    for _ in 0..rng.below(4) {
        text += &useradd_line(rng);
        text.push('\n');
    }
    if rng.chance(10) {
        text.pop();
    }
    copy.write("/etc/default/useradd", &text);
    let own: Vec<&str> = text
        .split('\n')
        .filter(|l| l.to_ascii_uppercase().contains("INACTIVE"))
        .collect();
    desc += &format!("/etc/default/useradd: INACTIVE lines {own:?}\n");
    desc
}

/// The bounds some benchmarks' rules apply to these keys, and the benchmarks that
/// apply them.
struct Bounds {
    /// The benchmarks (by id) whose rules apply these bounds.
    ids: &'static [&'static str],
    /// `pass_max_days`: PASS_MAX_DAYS in this range.
    max_days: (i64, i64),
    /// `pass_warn_age`: PASS_WARN_AGE at least this.
    warn_age: i64,
    /// `password_hashing_algorithm`: ENCRYPT_METHOD one of these.
    methods: &'static [&'static str],
    /// `account_inactive_after_expiry`: INACTIVE in this range.
    inactive: (i64, i64),
}

/// The benchmarks whose rules judge these keys through the shadow tools' files (the
/// same bounds today: CIS 5.4.1.1, 5.4.1.3, 5.4.1.4 and 5.4.1.5 in all three).
const BOUNDS: &[Bounds] = &[Bounds {
    ids: &["debian-12", "ubuntu-22.04", "ubuntu-24.04"],
    max_days: (1, 365),
    warn_age: 7,
    methods: &["SHA512", "YESCRYPT"],
    inactive: (0, 45),
}];

/// What the shadow tools did with one configuration.
#[derive(Debug)]
struct Truth {
    inactive: Option<i64>,
    max_days: i64,
    warn_age: i64,
    method: &'static str,
}

/// The probe run in the copy: `useradd -D`, `useradd` (`-N`: without
/// USERGROUPS_ENAB, which a generated login.defs may lack, no group of its own would
/// be made), `groupadd` and `chgpasswd`, each answer on a line of its own.
const PROBE: &str = "useradd -D 2>/dev/null | sed -n 's/^INACTIVE=/inactive=/p'
useradd -N rampartprobe >/dev/null 2>&1
sed -n 's/^rampartprobe:/shadow=/p' /etc/shadow
groupadd rampartprobe >/dev/null 2>&1
echo rampartprobe:secret | chgpasswd >/dev/null 2>&1
sed -n 's/^rampartprobe:/gshadow=/p' /etc/gshadow
";

/// The account databases as the root has them, put back after each probe.
const DATABASES: &[&str] = &["/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"];

fn oracle(copy: &RootCopy, databases: &[(&str, Vec<u8>)]) -> Result<Truth, String> {
    let out = copy.chroot(&["/bin/sh", "-c", PROBE]);
    for (path, bytes) in databases {
        std::fs::write(copy.path(path), bytes).expect("put an account database back");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .ok_or_else(|| format!("  the probe printed no {prefix} line: {out:?}"))
    };
    let shadow = field("shadow=")?;
    let f: Vec<&str> = shadow.split(':').collect();
    let num = |i: usize| -> i64 {
        f.get(i)
            .filter(|v| !v.is_empty())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    let hash = field("gshadow=")?;
    let hash = hash.split(':').next().unwrap_or_default();
    let method = match hash.split('$').nth(1) {
        _ if !hash.starts_with('$') => "DES",
        Some("6") => "SHA512",
        Some("y") => "YESCRYPT",
        Some("5") => "SHA256",
        Some("1") => "MD5",
        _ => "other",
    };
    Ok(Truth {
        inactive: field("inactive=").ok().and_then(|v| v.parse().ok()),
        max_days: num(3),
        warn_age: num(4),
        method,
    })
}

/// Compares the agent's reading of one key with the tools' number and the verdict
/// the rule should give.
fn compare_key(
    v: &serde_json::Value,
    table: &str,
    key: &str,
    rule: &str,
    truth: Option<i64>,
    pass: bool,
    what: &mut String,
) {
    let e = &v[table][key];
    let number = e["number"].as_i64().unwrap_or(-1);
    let verdict = e["verdicts"][rule].as_str().unwrap_or("missing");
    let evidence = e["evidence"].to_string();
    if let Some(t) = truth {
        if t != number {
            *what += &format!(
                "  {key}: the shadow tools read {t}, the agent {number} (value {}; {evidence})\n",
                e["value"]
            );
        }
    }
    let want = if pass { "pass" } else { "fail" };
    if verdict != want {
        *what += &format!(
            "  {rule} ({key}): the shadow tools' value makes it {want}, the agent says {verdict} ({evidence})\n"
        );
    }
}

/// Compares the agent's answer for benchmark `id`, whose rules apply `b`, with the
/// tools'.
fn compare(copy: &RootCopy, truth: &Truth, id: &str, b: &Bounds) -> String {
    let v = match agent_facts("accounts", &copy.root, &["--benchmark".into(), id.into()]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut what = String::new();
    let t = truth;
    let within = |n: i64, (lo, hi): (i64, i64)| (lo..=hi).contains(&n);
    compare_key(
        &v,
        "login_defs",
        "PASS_MAX_DAYS",
        "pass_max_days",
        Some(t.max_days),
        within(t.max_days, b.max_days),
        &mut what,
    );
    compare_key(
        &v,
        "login_defs",
        "PASS_WARN_AGE",
        "pass_warn_age",
        Some(t.warn_age),
        t.warn_age >= b.warn_age,
        &mut what,
    );
    compare_key(
        &v,
        "login_defs",
        "ENCRYPT_METHOD",
        "password_hashing_algorithm",
        None,
        b.methods.contains(&t.method),
        &mut what,
    );
    let inactive = t.inactive.unwrap_or(-1);
    compare_key(
        &v,
        "useradd",
        "INACTIVE",
        "account_inactive_after_expiry",
        Some(inactive),
        within(inactive, b.inactive),
        &mut what,
    );
    what
}

/// Runs the account-defaults family: generate, probe with the shadow tools, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    let databases: Vec<(&str, Vec<u8>)> = DATABASES
        .iter()
        .map(|p| {
            (
                *p,
                std::fs::read(copy.path(p)).expect("read an account database"),
            )
        })
        .collect();
    let debian_defs =
        std::fs::read_to_string(copy.path("/etc/login.defs")).expect("read Debian's login.defs");
    let debian_useradd = std::fs::read_to_string(copy.path("/etc/default/useradd"))
        .expect("read Debian's /etc/default/useradd");
    let mut rng = Rng::new(settings.seed ^ 0x4c4f_4749_4e44);
    let mut tally = Tally::new("accounts", settings);
    while tally.more() {
        let desc = generate(&mut rng, &copy, &debian_defs, &debian_useradd);
        let what = match oracle(&copy, &databases) {
            Ok(truth) => {
                let what: String = per_benchmark(|id| {
                    let b = BOUNDS
                        .iter()
                        .find(|b| b.ids.contains(&id))
                        .unwrap_or_else(|| panic!("no account-default bounds for {id}"));
                    compare(&copy, &truth, id, b)
                })
                .into_iter()
                .map(|(id, what)| for_benchmark(id, &what))
                .collect();
                if what.is_empty() {
                    what
                } else {
                    format!("{what}  (the tools: {truth:?})\n")
                }
            }
            Err(e) => e,
        };
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    tally
}
