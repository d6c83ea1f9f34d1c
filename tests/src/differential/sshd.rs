//! sshd: the root's own OpenSSH 9.2 reads generated configurations (`sshd -T`, and
//! `sshd -T -C user=…,host=…,addr=…` for Match blocks) and `ssh-keygen` says which
//! files under /etc/ssh are private keys; the agent (`rampart-agent facts sshd`) must
//! agree:
//!
//! - sshd refuses the configuration exactly when the agent says it does;
//! - without connection details (`sshd -T`: `Match all` blocks apply, others do not)
//!   each keyword the rules read has the agent's effective value, `AllowUsers` and
//!   the like the same list, and `hostkey` the agent's host keys;
//! - for a connection a Match block covers, sshd's value is one the agent judges
//!   (the effective value or a Match block's);
//! - every private key under /etc/ssh (`ssh-keygen -y` reads it) is among the
//!   private key files the agent judges.
//!
//! The Ubuntu benchmarks' sshd rules read the configuration through the same reader,
//! so this comparison serves every benchmark (but for the compiled-in KexAlgorithms
//! of Ubuntu 22.04's OpenSSH 8.9, which ubuntu-22.04's `sshd_strong_kex` judges when
//! the keyword is unset and this 9.2 cannot show).

use std::collections::{BTreeMap, BTreeSet};

use super::{agent_facts, Rng, RootCopy, Settings, Tally};

/// Keywords with values sshd accepts (and, rarely, one it refuses).
const OPTIONS: &[(&str, &[&str])] = &[
    (
        "PermitRootLogin",
        &[
            "yes",
            "no",
            "prohibit-password",
            "without-password",
            "forced-commands-only",
        ],
    ),
    ("MaxAuthTries", &["3", "4", "6", "010", "3x"]),
    ("LoginGraceTime", &["60", "1m", "2m30s", "90s", "1h"]),
    ("LogLevel", &["INFO", "verbose", "DEBUG", "quiet"]),
    ("ClientAliveInterval", &["0", "15", "5m"]),
    ("ClientAliveCountMax", &["0", "3"]),
    ("MaxSessions", &["10", "4"]),
    ("MaxStartups", &["10:30:60", "5", "10:30:100", "20"]),
    (
        "Ciphers",
        &[
            "-aes128*",
            "+aes128-cbc",
            "aes256-ctr,aes128-ctr",
            "^aes256-ctr",
        ],
    ),
    (
        "MACs",
        &["-hmac-sha1*", "hmac-sha2-256,hmac-sha2-512", "+hmac-md5"],
    ),
    (
        "KexAlgorithms",
        &[
            "-diffie-hellman*",
            "curve25519-sha256",
            "+diffie-hellman-group14-sha1",
        ],
    ),
    ("PermitEmptyPasswords", &["yes", "no"]),
    ("HostbasedAuthentication", &["yes", "no"]),
    ("IgnoreRhosts", &["yes", "no", "shosts-only"]),
    ("GSSAPIAuthentication", &["yes", "no"]),
    ("DisableForwarding", &["yes", "no"]),
    ("UsePAM", &["yes", "no"]),
    ("Banner", &["none", "/etc/issue.net", "\"/etc/issue net\""]),
    ("PermitUserEnvironment", &["no", "yes"]),
    ("AllowUsers", &["alice", "bob carol", "*@10.0.0.*"]),
    ("DenyGroups", &["wheel"]),
];

/// Keywords sshd refuses inside a Match block.
const NOT_IN_MATCH: &[&str] = &[
    "Ciphers",
    "MACs",
    "KexAlgorithms",
    "LoginGraceTime",
    "MaxStartups",
    "PermitUserEnvironment",
    "UsePAM",
];

const MATCHES: &[&str] = &[
    "Match User alice",
    "Match User bob Address 192.168.1.*",
    "Match Address 10.0.0.0/8",
    "Match Host *.example.com",
    "Match Group admins",
    "Match all",
    "match user alice,carol",
];

/// Keywords whose values accumulate into a list (lower case, as `sshd -T` prints).
const LISTS: &[&str] = &[
    "allowusers",
    "allowgroups",
    "denyusers",
    "denygroups",
    "hostkey",
];

/// Connections to ask sshd about, besides none: `-C` specifications.
const CONNECTIONS: &[&str] = &[
    "user=alice,host=h.example.com,addr=10.1.2.3",
    "user=bob,host=x.example.org,addr=192.168.1.7",
    "user=carol,host=c.example.com,addr=172.16.0.1",
];

/// Where generated private keys go: names the host-key pattern does and does not match.
const KEY_PATHS: &[&str] = &[
    "/etc/ssh/ssh_host_extra_key",
    "/etc/ssh/keys/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ed25519_key.bak",
    "/etc/ssh/id_ed25519",
    "/etc/ssh/backup_rsa_key",
];

fn case(rng: &mut Rng, keyword: &str) -> String {
    match rng.below(5) {
        0 => keyword.to_ascii_lowercase(),
        1 => keyword.to_ascii_uppercase(),
        _ => keyword.to_string(),
    }
}

fn directive(rng: &mut Rng, in_match: bool) -> String {
    let (k, values) = loop {
        let o = rng.pick(OPTIONS);
        if !in_match || !NOT_IN_MATCH.contains(&o.0) || rng.chance(3) {
            break *o;
        }
    };
    let mut v = rng.pick(values).to_string();
    if rng.chance(10) && !v.contains(['"', ' ']) {
        v = format!("\"{v}\"");
    }
    let sep = *rng.pick(&[" ", "=", " = ", "\t", "  "]);
    let comment = if rng.chance(15) { " # set here" } else { "" };
    let indent = if in_match { "    " } else { "" };
    format!("{indent}{}{sep}{v}{comment}\n", case(rng, k))
}

/// A file's text: directives, comments, and (when allowed) Match blocks.
fn text(rng: &mut Rng, matches: bool) -> String {
    let mut t = String::new();
    for _ in 0..rng.below(6) {
        if rng.chance(10) {
            t += "# a comment line\n";
        }
        t += &directive(rng, false);
    }
    if matches && rng.chance(50) {
        for _ in 0..1 + rng.below(2) {
            t += *rng.pick(MATCHES);
            t += "\n";
            for _ in 0..1 + rng.below(3) {
                t += &directive(rng, true);
            }
        }
    }
    t
}

/// Builds one configuration in the copy; returns its description.
fn generate(rng: &mut Rng, copy: &RootCopy, keys: &[String]) -> String {
    let mut desc = String::new();
    copy.clear_dir("/etc/ssh/sshd_config.d");
    for p in KEY_PATHS {
        copy.remove(p);
    }
    copy.remove("/etc/ssh/extra.conf");
    let mut main = String::new();
    if rng.chance(20) {
        // Only keys that exist: with none loadable sshd does not start at all.
        main += "HostKey /etc/ssh/ssh_host_ed25519_key\n";
        if rng.chance(50) {
            main += "HostKey /etc/ssh/ssh_host_rsa_key\n";
        }
    }
    // Debian's line first, most of the time; sometimes later, relative or quoted.
    let include = *rng.pick(&[
        "Include /etc/ssh/sshd_config.d/*.conf",
        "Include sshd_config.d/*.conf",
        "include \"/etc/ssh/sshd_config.d/*.conf\"",
        "Include /etc/ssh/sshd_config.d/*.conf /etc/ssh/extra.conf",
    ]);
    if rng.chance(80) {
        main += &format!("{include}\n");
    }
    main += &text(rng, false);
    if rng.chance(30) {
        main += &format!("{include}\n");
    }
    main += "Subsystem sftp /usr/lib/openssh/sftp-server\n";
    main += &text(rng, true);
    copy.write("/etc/ssh/sshd_config", &main);
    desc += &format!("/etc/ssh/sshd_config:\n{main}");
    for _ in 0..rng.below(4) {
        let name = *rng.pick(&[
            "10-a.conf",
            "50-cloud-init.conf",
            "60-b.conf",
            "z.conf",
            "x.conf.bak",
        ]);
        let t = text(rng, true);
        let path = format!("/etc/ssh/sshd_config.d/{name}");
        copy.write(&path, &t);
        desc += &format!("{path}:\n{t}");
    }
    if rng.chance(20) {
        let t = text(rng, true);
        copy.write("/etc/ssh/extra.conf", &t);
        desc += &format!("/etc/ssh/extra.conf:\n{t}");
    }
    if rng.chance(40) {
        let path = *rng.pick(KEY_PATHS);
        copy.write(path, rng.pick(keys).as_str());
        std::fs::set_permissions(
            copy.path(path),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod a key in the copy");
        desc += &format!("{path}: a private key\n");
    }
    desc
}

/// `keyword value` lines of `sshd -T`, keyword → values in order.
fn parse_t(out: &str) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    m
}

fn sshd_t(
    copy: &RootCopy,
    connection: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut args = vec!["/usr/sbin/sshd", "-T"];
    if let Some(c) = connection {
        args.extend(["-C", c]);
    }
    let out = copy.chroot(&args);
    if out.status.success() {
        Ok(parse_t(&String::from_utf8_lossy(&out.stdout)))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Private keys under /etc/ssh as ssh-keygen reads them.
fn private_keys(copy: &RootCopy) -> BTreeSet<String> {
    let out = copy.chroot(&[
        "sh",
        "-c",
        "find /etc/ssh -type f | while read -r f; do ssh-keygen -y -P '' -f \"$f\" >/dev/null 2>&1 && echo \"$f\"; done",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Compares one configuration; returns the differences in words.
fn compare(copy: &RootCopy) -> String {
    let mut what = String::new();
    let agent = match agent_facts("sshd", &copy.root, &[]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let refused = agent["refused"].as_array().is_some_and(|r| !r.is_empty());
    let global = match sshd_t(copy, None) {
        Ok(g) => g,
        Err(e) => {
            if !refused {
                what += &format!("  sshd refuses the configuration ({e}), the agent accepts it\n");
            }
            return what;
        }
    };
    if refused {
        what += &format!(
            "  sshd accepts the configuration, the agent says it refuses it: {}\n",
            agent["refused"]
        );
        return what;
    }
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keywords = agent["keywords"].as_object().cloned().unwrap_or_default();
    for (k, a) in &keywords {
        let ours = strs(&a["value"]);
        let theirs = global.get(k).cloned().unwrap_or_default();
        if ours != theirs {
            what += &format!(
                "  {k}: sshd -T says {theirs:?}, the agent {ours:?} (from {})\n",
                a["source"]
            );
        }
    }
    let host_keys = strs(&agent["host_keys"]);
    let theirs = global.get("hostkey").cloned().unwrap_or_default();
    if host_keys != theirs {
        what += &format!("  hostkey: sshd -T says {theirs:?}, the agent {host_keys:?}\n");
    }
    for c in CONNECTIONS {
        let Ok(matched) = sshd_t(copy, Some(c)) else {
            what += &format!("  sshd -T -C {c} fails where sshd -T does not\n");
            continue;
        };
        for (k, a) in &keywords {
            // Lists (AllowUsers and the like) are compared without connections only.
            if LISTS.contains(&k.as_str()) {
                continue;
            }
            let Some(theirs) = matched.get(k).and_then(|v| v.first()) else {
                continue;
            };
            let mut judged = strs(&a["value"]);
            judged.extend(strs(&a["in_match"]));
            if !judged.contains(theirs) {
                what += &format!(
                    "  {k} for {c}: sshd -T -C says {theirs}, the agent judges only {judged:?}\n"
                );
            }
        }
    }
    let judged: BTreeSet<String> = strs(&agent["private_keys"]).into_iter().collect();
    for key in private_keys(copy) {
        if !judged.contains(&key) {
            what += &format!(
                "  {key} is a private key (ssh-keygen reads it), the agent does not judge it (it judges {judged:?})\n"
            );
        }
    }
    what
}

/// Runs the sshd family: generate, ask sshd and ssh-keygen, compare.
pub fn run(original: &std::path::Path, settings: Settings) -> Tally {
    let copy = RootCopy::new(original);
    copy.mkdir("/run/sshd");
    let mut keys = Vec::new();
    for (name, args) in [
        ("ed25519", ["-t", "ed25519", "-m", "RFC4716"]),
        ("rsa", ["-t", "rsa", "-m", "PEM"]),
    ] {
        let path = format!("/tmp/differential-{name}");
        copy.remove(&path);
        let out = copy.chroot(&[
            "ssh-keygen",
            "-q",
            "-N",
            "",
            "-b",
            "2048",
            args[0],
            args[1],
            args[2],
            args[3],
            "-f",
            &path,
        ]);
        assert!(out.status.success(), "ssh-keygen in the copy: {out:?}");
        keys.push(std::fs::read_to_string(copy.path(&path)).expect("read a generated key"));
    }
    let mut rng = Rng::new(settings.seed ^ 0x5353_4844);
    let mut tally = Tally::new("sshd", settings);
    while tally.more() {
        let desc = generate(&mut rng, &copy, &keys);
        let what = compare(&copy);
        if !what.is_empty() {
            tally.differ(&desc, &what);
        }
        tally.compared += 1;
    }
    tally
}
