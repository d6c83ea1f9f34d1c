//! limits: pam_limits' core-file size limit. The root's own libpam and pam_limits.so,
//! driven by `pamtester` (the host's binary, copied into the copy: the driver is ours,
//! the library and modules are the root's), open a session for each tested account
//! through a service whose `pam_exec` child prints `/proc/self/limits`: the limits
//! pam_limits set on pamtester, which its child inherits. The agent's per-account
//! values and its `sysctl.core_limit` verdict (`rampart-agent facts limits`) must
//! match: the verdict passes exactly when every account gets a hard core limit of 0.
//!
//! Every session starts from unlimited soft and hard core limits: the oracle runs as
//! PID 1 of its own PID namespace, and Debian's pam_limits starts from the limits of
//! PID 1 (as on a real system, where systemd leaves the hard core limit unlimited).
//!
//! The copy gains accounts that exercise the domains: `alice` (1001, a member of
//! `staff`), `bob` (1002, primary group `devs`), `carol` (1003, in no limits entry)
//! `toor` (a second account with uid 0) and `zed` (uid and gid 4294967294, in no
//! group and no entry: it stands for an account not listed locally, which the agent
//! judges as such an account).
//!
//! One documented difference is allowed and counted apart: the agent also fails
//! lines that could raise the limit of an account this system does not list (a
//! directory user named in an entry, or in a group or id range with no local
//! account), which no local session can show.
//!
//! Every benchmark's `coredumps_restricted` (debian-12, ubuntu-22.04, ubuntu-24.04)
//! runs the same `sysctl.core_limit` check, which has no parameters, so the verdict
//! compared is every benchmark's.

use std::collections::BTreeMap;
use std::path::Path;

use super::{agent_facts, Placed, Rng, RootCopy, Settings, Tally};

/// The accounts whose sessions are opened. The others in the copy's /etc/passwd (bin,
/// sys, ...) fall in the same domains as `daemon` or `sshd` for every generated entry.
const USERS: &[&str] = &[
    "root", "toor", "daemon", "sshd", "nobody", "debian", "alice", "bob", "carol", "zed",
];

/// Domains: names, groups (`@`), `%` (maxlogins only), uid and gid ranges, valid and not.
const DOMAINS: &[&str] = &[
    "*",
    "*",
    "*",
    "*",
    "root",
    "root",
    "toor",
    "debian",
    "alice",
    "bob",
    "carol",
    "ghost",
    "ROOT",
    "@root",
    "@staff",
    "@devs",
    "@alice",
    "@users",
    "@nogroup",
    "@ghosts",
    "%",
    "%staff",
    "0:",
    ":0",
    "1000:",
    ":1000",
    "1001:1002",
    "1000:60000",
    "@1000:",
    "@:50",
    "@100:100",
    "@2000:",
    "@0:0",
    "abc:",
    ":",
    "1000:x",
    "%1000:",
    "-1:",
];

const TYPES: &[&str] = &[
    "hard", "hard", "hard", "soft", "-", "-", "HARD", "Soft", "bogus",
];

const ITEMS: &[&str] = &[
    "core", "core", "core", "core", "CORE", "Core", "rtprio", "cores",
];

const VALUES: &[&str] = &[
    "0",
    "0",
    "0",
    "0",
    "unlimited",
    "UNLIMITED",
    "infinity",
    "-1",
    "-",
    "1000",
    "0x10",
    "1e3",
    "abc",
    "-5",
    "00",
    "+0",
    "99999999999999999999",
];

/// limits.d names: sorted around each other, hidden, not `.conf`, odd case.
const NAMES: &[&str] = &[
    "10-core.conf",
    "50-x.conf",
    "90-dev.conf",
    "99-z.conf",
    "A.conf",
    "core.conf.bak",
    "core.CONF",
    ".hidden.conf",
    "x.conf",
    "zz.conf~",
];

const D: &str = "/etc/security/limits.d";
const CONF: &str = "/etc/security/limits.conf";

fn line(rng: &mut Rng) -> String {
    let domain = *rng.pick(DOMAINS);
    let sep = |rng: &mut Rng| *rng.pick(&[" ", " ", "\t", "  \t ", "    "]);
    match rng.below(20) {
        0 => format!("# {domain} hard core unlimited"),
        1 => String::new(),
        2 => format!("{domain}{}-", sep(rng)),
        3 => format!("{domain}{}hard{}core", sep(rng), sep(rng)),
        4 => "not a limits line".to_string(),
        _ => {
            let lead = *rng.pick(&["", "", "", " ", "\t"]);
            let tail = *rng.pick(&["", "", "", " # note", "#x", " junk", "\t0", " "]);
            let (s1, s2, s3) = (sep(rng), sep(rng), sep(rng));
            format!(
                "{lead}{domain}{s1}{}{s2}{}{s3}{}{tail}",
                rng.pick(TYPES),
                rng.pick(ITEMS),
                rng.pick(VALUES)
            )
        }
    }
}

fn text(rng: &mut Rng) -> String {
    let n = rng.below(6);
    (0..n).map(|_| line(rng) + "\n").collect()
}

/// Builds one configuration in the copy; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy) -> String {
    let mut desc = String::new();
    copy.clear_dir(D);
    match rng.below(20) {
        0 => {
            copy.remove(CONF);
            desc += &format!("{CONF}: (missing)\n");
        }
        1 => {
            copy.write(CONF, "");
            desc += &format!("{CONF}: (empty)\n");
        }
        2 => {
            copy.link(CONF, "limits.d/10-core.conf");
            desc += &format!("{CONF} -> limits.d/10-core.conf\n");
        }
        _ => {
            // A CIS-style base most of the time, then whatever else.
            let mut t = String::new();
            if rng.chance(60) {
                t += "*               hard    core            0\n";
            }
            if rng.chance(40) {
                t += "root            hard    core            0\n";
            }
            t += &text(rng);
            copy.write(CONF, &t);
            desc += &format!("{CONF}:\n{t}");
        }
    }
    for _ in 0..rng.below(5) {
        let name = *rng.pick(NAMES);
        let path = format!("{D}/{name}");
        match rng.below(14) {
            0 => desc += &copy.place(&path, Placed::Empty),
            1 => {
                let target = *rng.pick(&[
                    "/dev/null",
                    "../limits.conf",
                    "90-dev.conf",
                    "/nonexistent.conf",
                    "x.conf",
                ]);
                desc += &copy.place(&path, Placed::Link(target));
            }
            2 => desc += &copy.place(&path, Placed::Dir),
            _ => {
                let t = text(rng);
                desc += &copy.place(&path, Placed::Text(&t));
            }
        }
    }
    desc
}

/// A core limit as /proc/self/limits shows it: bytes, `None` for unlimited.
type Limit = Option<u64>;

fn show(l: Limit) -> String {
    l.map_or("unlimited".to_string(), |n| n.to_string())
}

/// pamtester's answer per tested account: (soft, hard) of the session.
fn oracle(copy: &RootCopy) -> Result<BTreeMap<String, (Limit, Limit)>, String> {
    let users = USERS.join(" ");
    let inner = format!(
        "ulimit -c unlimited; for u in {users}; do echo \"@@ $u\"; pamtester rampart-limits $u open_session 2>&1; done"
    );
    let out = copy.chroot_sh(&inner, 60);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = BTreeMap::new();
    let mut user = None;
    for l in text.lines() {
        if let Some(u) = l.strip_prefix("@@ ") {
            user = Some(u.to_string());
        } else if let (Some(rest), Some(u)) = (l.strip_prefix("Max core file size"), &user) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |s: Option<&&str>| -> Result<Limit, String> {
                match s {
                    Some(&"unlimited") => Ok(None),
                    Some(n) => n.parse().map(Some).map_err(|e| format!("{n}: {e}")),
                    None => Err("short line".into()),
                }
            };
            found.insert(u.clone(), (num(f.first())?, num(f.get(1))?));
        }
    }
    if found.len() != USERS.len() {
        return Err(format!(
            "  pamtester gave the limits of {} of {} accounts: {out:?}",
            found.len(),
            USERS.len()
        ));
    }
    Ok(found)
}

/// The agent's answer: its verdict, evidence and, per tested account, (soft, hard).
struct Answer {
    verdict: String,
    /// The agent's lines that reach only accounts not listed here.
    unlisted: Vec<String>,
    evidence: String,
    users: Option<BTreeMap<String, (Limit, Limit)>>,
}

fn agent(copy: &RootCopy) -> Result<Answer, String> {
    let args: Vec<String> = USERS
        .iter()
        .flat_map(|u| ["--user".to_string(), u.to_string()])
        .collect();
    let v = agent_facts("limits", &copy.root, &args)?;
    let limit = |x: &serde_json::Value| -> Limit {
        // `null`: pam_limits leaves the session's starting (unlimited) value.
        x.as_u64().filter(|&n| n != u64::MAX)
    };
    let users = v["users"].as_object().map(|m| {
        m.iter()
            .map(|(name, e)| {
                let hard = limit(&e["hard"]);
                // The kernel keeps soft <= hard; pam_limits clamps it so too.
                let soft = match (limit(&e["soft"]), hard) {
                    (Some(s), Some(h)) => Some(s.min(h)),
                    (None, h) => h,
                    (s, None) => s,
                };
                (name.clone(), (soft, hard))
            })
            .collect()
    });
    Ok(Answer {
        verdict: v["verdict"].as_str().unwrap_or_default().to_string(),
        unlisted: v["unlisted"]
            .as_array()
            .map(|a| a.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default(),
        evidence: v["evidence"].to_string(),
        users,
    })
}

/// Copies the host's pamtester into the copy and sets up the accounts and service.
fn prepare(copy: &RootCopy) {
    copy.install_pamtester();
    copy.write(
        "/etc/pam.d/rampart-limits",
        "auth sufficient pam_permit.so\naccount sufficient pam_permit.so\nsession required pam_limits.so\nsession optional pam_exec.so stdout /bin/cat /proc/self/limits\n",
    );
    let passwd = std::fs::read_to_string(copy.path("/etc/passwd")).expect("read passwd");
    copy.write(
        "/etc/passwd",
        &format!(
            "{passwd}alice:x:1001:1001::/home/alice:/bin/sh\nbob:x:1002:2000::/home/bob:/bin/sh\ncarol:x:1003:100::/home/carol:/bin/sh\ntoor:x:0:0::/root:/bin/sh\nzed:x:4294967294:4294967294::/:/bin/sh\n"
        ),
    );
    let group = std::fs::read_to_string(copy.path("/etc/group")).expect("read group");
    let group: String = group
        .lines()
        .map(|l| {
            if l.starts_with("staff:") {
                "staff:x:50:alice\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    copy.write(
        "/etc/group",
        &format!("{group}alice:x:1001:\ndevs:x:2000:\n"),
    );
}

/// Runs the limits family: generate, open sessions with pamtester, compare.
pub fn run(original: &Path, settings: Settings) -> Tally {
    let copy = RootCopy::sharing_usr(original);
    prepare(&copy);
    let mut rng = Rng::new(settings.seed ^ 0x4c49_4d49_5453);
    let mut tally = Tally::new("limits", settings);
    let mut unlisted_only = 0;
    while tally.more() {
        let desc = generate(&mut rng, &copy);
        let result = oracle(&copy).and_then(|t| agent(&copy).map(|a| (t, a)));
        let (truth, ours) = match result {
            Ok(x) => x,
            Err(e) => {
                tally.differ(&desc, &e);
                tally.compared += 1;
                continue;
            }
        };
        let mut what = String::new();
        let all_zero = truth.values().all(|(_, h)| *h == Some(0));
        let pass = ours.verdict == "pass";
        let agent_zero = ours
            .users
            .as_ref()
            .is_some_and(|u| u.values().all(|(_, h)| *h == Some(0)));
        if all_zero && !pass && agent_zero && !ours.unlisted.is_empty() {
            unlisted_only += 1;
        } else if all_zero != pass {
            let hards: Vec<String> = truth
                .iter()
                .map(|(u, (_, h))| format!("{u}={}", show(*h)))
                .collect();
            what += &format!(
                "  verdict: pam_limits gives hard core {}, the agent says {} ({})\n",
                hards.join(" "),
                ours.verdict,
                ours.evidence
            );
        }
        match &ours.users {
            Some(users) => {
                for (u, t) in &truth {
                    let a = users.get(u);
                    if a != Some(t) {
                        what += &format!(
                            "  {u}: pam_limits sets soft {} hard {}, the agent says {}\n",
                            show(t.0),
                            show(t.1),
                            a.map_or("nothing".to_string(), |a| format!(
                                "soft {} hard {}",
                                show(a.0),
                                show(a.1)
                            ))
                        );
                    }
                }
            }
            None => what += "  the agent gave no per-account limits\n",
        }
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    println!(
        "differential limits: {unlisted_only} configuration(s) fail only for lines that reach accounts not listed here"
    );
    tally
}
