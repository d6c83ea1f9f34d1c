//! What each fuzz target does with one input. The cargo-fuzz targets in `fuzz/` are
//! one line each (`rampart_fuzz_harness::run("sshd", data)`), and the stable test
//! `tests/replay.rs` runs every committed corpus and regression file through the same
//! functions, so a crash once found stays fixed without a nightly toolchain.
//!
//! The property is that a reader of untrusted text never panics, never hangs and
//! never grows without bound, whatever the input; where a cheap invariant exists
//! (a round trip, an order that must be total) it is asserted too.
//!
//! Readers that read files under the scan root are driven the way the checks drive
//! them: the input is written as the files of a throwaway root and the same memoised
//! fact function is called on a fresh [`Facts`]. An input holds several files
//! separated by NUL bytes: the first is the main file, the others its drop-ins or
//! includes, at the names each target lists ([`split`]).

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use rampart_agent::checks::audit::rules;
use rampart_agent::checks::sysctl::limits as core_limit;
use rampart_agent::facts::accounts::{accounts, Accounts};
use rampart_agent::facts::pam::path::{self, history, lockout};
use rampart_agent::facts::{
    self, account_defaults, aide, audit as audit_rules, grub, iptables as ipt, journald, limits,
    mounts, nftables as nft, packages, pam as stack, rpmdb, rsyslog, sshd, sudoers, Facts,
};

/// One fuzz target: its name (the file name under `fuzz/fuzz_targets/` and the
/// corpus directory) and what it does with one input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "sshd_config",
        run: sshd_config,
    },
    Target {
        name: "pam",
        run: pam,
    },
    Target {
        name: "sudoers",
        run: sudoers,
    },
    Target {
        name: "login_defs",
        run: login_defs,
    },
    Target {
        name: "sysctl",
        run: sysctl,
    },
    Target {
        name: "modprobe",
        run: modprobe,
    },
    Target {
        name: "mounts",
        run: mounts_tables,
    },
    Target {
        name: "audit_rules",
        run: audit_rules,
    },
    Target {
        name: "nftables",
        run: nftables,
    },
    Target {
        name: "iptables",
        run: iptables,
    },
    Target {
        name: "firewalld",
        run: firewalld,
    },
    Target {
        name: "grub",
        run: grub_cfg,
    },
    Target {
        name: "aide",
        run: aide_conf,
    },
    Target {
        name: "journald",
        run: journald_conf,
    },
    Target {
        name: "rsyslog",
        run: rsyslog_conf,
    },
    Target {
        name: "pam_limits",
        run: pam_limits,
    },
    Target {
        name: "os_release",
        run: os_release,
    },
    Target {
        name: "dpkg_status",
        run: dpkg_status,
    },
    Target {
        name: "rpm_header",
        run: rpm_header,
    },
    Target {
        name: "rpmdb_sqlite",
        run: rpmdb_sqlite,
    },
    Target {
        name: "agent_message",
        run: agent_message,
    },
];

/// Runs the target called `name` on one input.
///
/// # Panics
/// If no target has that name, or (the finding) if the reader panics.
pub fn run(name: &str, data: &[u8]) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target named {name}"));
    (target.run)(data)
}

/// The files of one input: split at NUL bytes, at most `max` parts (the last part
/// keeps any further NULs).
pub fn split(data: &[u8], max: usize) -> Vec<&[u8]> {
    data.splitn(max, |b| *b == 0).collect()
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Writes `files` (paths inside the root) into a fresh root and runs `f` on its facts.
fn with_root(files: &[(String, &[u8])], live: bool, f: impl FnOnce(&Facts)) {
    let dir = tempfile::Builder::new()
        .prefix("rampart-fuzz-")
        .tempdir_in(scratch())
        .expect("create a scratch root");
    for (path, content) in files {
        let host = dir.path().join(path.trim_start_matches('/'));
        if let Some(parent) = host.parent() {
            fs::create_dir_all(parent).expect("create a directory in the scratch root");
        }
        fs::write(&host, content).expect("write a file in the scratch root");
    }
    f(&Facts::new(dir.path(), live));
}

/// Where scratch roots go: memory when the machine has /dev/shm (thousands of roots a
/// second), else the temporary directory.
fn scratch() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    })
}

/// The main file at `main`, the other parts at `dropin(i)` for i = 1, 2, ….
fn files<'a>(
    data: &'a [u8],
    max: usize,
    main: &str,
    dropin: impl Fn(usize) -> String,
) -> Vec<(String, &'a [u8])> {
    split(data, max)
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let path = if i == 0 { main.to_string() } else { dropin(i) };
            (path, part)
        })
        .collect()
}

/// sshd_config and files it includes (`/etc/ssh/sshd_config.d/N.conf`), then every
/// lookup the checks make: global, effective and Match values.
pub fn sshd_config(data: &[u8]) {
    let files = files(data, 8, sshd::MAIN, |i| {
        format!("/etc/ssh/sshd_config.d/{i}.conf")
    });
    with_root(&files, false, |facts| {
        if let Ok(cfg) = sshd::sshd_config(facts).as_ref() {
            for d in &cfg.directives {
                let _ = cfg.global(&d.keyword);
                let _ = cfg.effective(&d.keyword);
                let _ = cfg.in_match(&d.keyword);
                let _ = d.describe();
            }
        }
    });
    for line in text(data).lines() {
        let _ = sshd::split_line(line);
        let _ = sshd::argv_split(line);
    }
}

/// PAM services: the first part is `sshd`; the others are the files stacks include
/// or substack (`common-auth`, `system-auth`, …).
pub fn pam(data: &[u8]) {
    const NAMES: &[&str] = &[
        "sshd",
        "common-auth",
        "common-password",
        "common-account",
        "system-auth",
        "password-auth",
        "su",
        "login",
    ];
    let files: Vec<(String, &[u8])> = split(data, NAMES.len())
        .into_iter()
        .zip(NAMES)
        .map(|(part, name)| (format!("{}/{name}", stack::PAM_D), part))
        .collect();
    with_root(&files, false, |facts| {
        for name in NAMES {
            let Ok(st) = stack::stack(facts, name) else {
                continue;
            };
            // libpam's walks of the stack, as the lockout and nullok rules take them,
            // with the deny of a line read from its own arguments.
            let settings = |i: usize| {
                let l = &st.lines[i];
                lockout::Faillock {
                    deny: l
                        .args
                        .iter()
                        .find_map(|a| a.strip_prefix("deny=")?.parse().ok())
                        .unwrap_or(3),
                    even_deny_root: l.args.iter().any(|a| a == "even_deny_root"),
                    fail_interval: 900,
                }
            };
            for root in [false, true] {
                let _ = lockout::lockout(&st, root, &settings);
            }
            let _ = lockout::account_runs_faillock(&st);
            for pw in [lockout::Password::Wrong, lockout::Password::Empty] {
                let _ = lockout::refuses(&st, &settings, pw);
            }
            // The password change's walk, as the pwhistory rules take it.
            let kept = |i: usize| {
                let l = &st.lines[i];
                history::History {
                    remember: l
                        .args
                        .iter()
                        .find_map(|a| a.strip_prefix("remember=")?.parse().ok())
                        .unwrap_or(10),
                    enforce_for_root: l.args.iter().any(|a| a == "enforce_for_root"),
                }
            };
            // The same walk as the pwquality rules take it: the line's enforcing,
            // retry and enforce_for_root read from its own arguments.
            let quality = |i: usize| {
                let l = &st.lines[i];
                let has = |a: &str| l.args.iter().any(|x| x == a);
                let retry: i64 = l
                    .args
                    .iter()
                    .find_map(|a| a.strip_prefix("retry=")?.parse().ok())
                    .unwrap_or(1);
                history::Refusal {
                    active: !has("enforcing=0"),
                    inactive: path::SUCCESS,
                    refused: if retry > 1 {
                        path::MAXTRIES
                    } else {
                        path::AUTHTOK_ERR
                    },
                    enforce_for_root: has("enforce_for_root"),
                }
            };
            for root in [false, true] {
                let _ = history::refuses_reuse(&st, root, &kept);
                let _ =
                    history::refuses(&st, root, "pam_pwquality.so", "a weak password", &quality);
            }
        }
    });
}

/// /etc/sudoers and /etc/sudoers.d/N.
pub fn sudoers(data: &[u8]) {
    let files = files(data, 8, "/etc/sudoers", |i| format!("/etc/sudoers.d/{i}"));
    with_root(&files, false, |facts| {
        let _ = sudoers::sudoers(facts);
    });
}

/// /etc/login.defs, and the UID_MIN the checks derive from it.
pub fn login_defs(data: &[u8]) {
    let _ = account_defaults::parse_login_defs(&text(data), "/etc/login.defs");
    with_root(&[("/etc/login.defs".into(), data)], false, |facts| {
        let _ = account_defaults::login_defs(facts);
        let _ = account_defaults::uid_min(facts);
    });
}

/// sysctl.conf and sysctl.d: the parser, then the persisted values as the checks
/// merge them (parts 1.. are /etc/sysctl.d/N.conf).
pub fn sysctl(data: &[u8]) {
    let t = text(data);
    for e in facts::sysctl::parse_sysctl(&t, "/etc/sysctl.conf") {
        let _ = e.is_glob();
    }
    for line in t.lines() {
        let _ = facts::sysctl::kernel_int(line);
        let _ = facts::sysctl::normalize(line);
        let _ = facts::sysctl::glob_match(line, "net.ipv4.ip_forward");
    }
    let files = files(data, 4, "/etc/sysctl.conf", |i| {
        format!("/usr/lib/sysctl.d/{i}.conf")
    });
    with_root(&files, false, |facts| {
        if let Ok(entries) = facts::sysctl::persisted(facts).as_ref() {
            let _ = facts::sysctl::persisted_value(entries, "net.ipv4.ip_forward");
            let _ = facts::sysctl::persisted_value(entries, "kernel.randomize_va_space");
        }
    });
}

/// modprobe.d: the parser, then the configuration and lookups the checks make.
pub fn modprobe(data: &[u8]) {
    let t = text(data);
    for d in facts::modules::parse_modprobe(&t, "/etc/modprobe.d/x.conf") {
        let _ = d.describe();
    }
    for line in t.lines() {
        let _ = facts::modules::softdep_names(line);
    }
}

/// /etc/fstab (first part) and PID 1's mountinfo (second part).
pub fn mounts_tables(data: &[u8]) {
    let parts = split(data, 2);
    let mut files = vec![("/etc/fstab".to_string(), parts[0])];
    if let Some(info) = parts.get(1) {
        files.push(("/proc/1/mountinfo".to_string(), *info));
    }
    with_root(&files, true, |facts| {
        let _ = mounts::fstab(facts);
        let _ = mounts::live(facts);
        for target in ["/tmp", "/var/tmp", "/dev/shm", "/home"] {
            let _ = mounts::mount_unit(facts, target);
        }
    });
}

/// Audit rules: files in /etc/audit/rules.d as augenrules reads them, and the
/// same text as `auditctl -l` prints it.
pub fn audit_rules(data: &[u8]) {
    let t = text(data);
    let _ = audit_rules::parse_loaded(&t);
    for line in t.lines() {
        let _ = audit_rules::parse_line(line);
        let _ = audit_rules::parse_filter(line);
        let _ = audit_rules::normalise_path(line);
    }
    let files = files(data, 4, "/etc/audit/rules.d/10.rules", |i| {
        format!("/etc/audit/rules.d/{}.rules", 10 + i)
    });
    with_root(&files, false, |facts| {
        if let Ok(set) = audit_rules::ruleset(facts).as_ref() {
            let _ = rules::task_never(set);
        }
    });
}

/// /etc/nftables.conf and files it includes (/etc/nftables.d/N.nft).
pub fn nftables(data: &[u8]) {
    let files = files(data, 6, "/etc/nftables.conf", |i| {
        format!("/etc/nftables.d/{i}.nft")
    });
    with_root(&files, false, |facts| {
        let _ = nft::load(facts, "/etc/nftables.conf");
    });
}

/// firewalld.conf and zone files, alternately in /etc/firewalld/zones and
/// /usr/lib/firewalld/zones (the same names, so /etc's hide the packaged ones):
/// the configuration as the checks read it, and every part through the XML reader.
pub fn firewalld(data: &[u8]) {
    let files = files(data, 8, facts::firewalld::CONF, |i| {
        let dir = facts::firewalld::ZONE_DIRS[i % 2];
        format!("{dir}/z{}.xml", i / 2)
    });
    for (_, part) in &files {
        let _ = facts::firewalld::parse_xml(&text(part));
    }
    with_root(&files, false, |facts| {
        let _ = facts::firewalld::config(facts);
    });
}

/// iptables-save output (/etc/iptables/rules.v4): policies and reachable rules.
pub fn iptables(data: &[u8]) {
    let rs = ipt::parse(&text(data), "/etc/iptables/rules.v4");
    for chain in ["INPUT", "OUTPUT", "FORWARD"] {
        let _ = rs.policy(chain);
        for r in rs.reachable(chain, false) {
            let _ = r.accepts_loopback_in();
            let _ = r.accepts_loopback_out();
            let _ = r.drops_source(&["127.0.0.0/8", "::1"]);
            let _ = r.covers_port("tcp", 22);
        }
    }
}

/// grub.cfg.
pub fn grub_cfg(data: &[u8]) {
    let t = text(data);
    let _ = grub::parse_grub(&t, "/boot/grub/grub.cfg");
    for line in t.lines() {
        let _ = grub::grub_words(line);
    }
}

/// /etc/aide/aide.conf and files it includes (/etc/aide/aide.conf.d/N), then the
/// verdict the checks ask for on a few paths.
pub fn aide_conf(data: &[u8]) {
    let files = files(data, 6, aide::AIDE_CONF, |i| {
        format!("/etc/aide/aide.conf.d/{i}")
    });
    with_root(&files, false, |facts| {
        if let Ok(conf) = aide::aide_conf(facts, aide::AIDE_CONF).as_ref() {
            for path in ["/sbin/auditctl", "/etc/passwd", "/var/log/x", "/"] {
                let _ = aide::verdict(conf, path);
            }
        }
    });
}

/// journald.conf and /etc/systemd/journald.conf.d/N.conf.
pub fn journald_conf(data: &[u8]) {
    let t = text(data);
    let _ = journald::parse_unit_ini(&t, "/etc/systemd/journald.conf", "Journal");
    for line in t.lines() {
        let _ = journald::parse_bool(line);
    }
    let files = files(data, 4, "/etc/systemd/journald.conf", |i| {
        format!("/etc/systemd/journald.conf.d/{i}.conf")
    });
    with_root(&files, false, |facts| {
        let _ = journald::journald_settings(facts);
    });
}

/// rsyslog.conf and /etc/rsyslog.d/N.conf.
pub fn rsyslog_conf(data: &[u8]) {
    let t = text(data);
    for s in rsyslog::split_statements(&t, "/etc/rsyslog.conf") {
        let _ = rsyslog::legacy_directive(&s.text);
        let _ = rsyslog::rainer_object(&s.text);
    }
    let files = files(data, 4, "/etc/rsyslog.conf", |i| {
        format!("/etc/rsyslog.d/{i}.conf")
    });
    with_root(&files, false, |facts| {
        let _ = rsyslog::rsyslog(facts);
    });
}

/// The accounts every pam_limits input is judged for: root, two users (one a member
/// of a supplementary group) and a system account.
const LIMITS_PASSWD: &str = "root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\n\
    bob:x:1001:50::/home/bob:/bin/sh\nsys:x:100:65534::/:/usr/sbin/nologin\n";
const LIMITS_GROUP: &str = "root:x:0:\nstaff:x:50:ann\nann:x:1000:\nnogroup:x:65534:\n";

/// pam_limits: /etc/security/limits.conf (first part) and
/// /etc/security/limits.d/N.conf, with a fixed /etc/passwd and /etc/group. The
/// parser, then the configuration as the module reads it, each account's core limit
/// and the ids at the edges, and the `sysctl.core_limit` verdict with what
/// `rampart-agent facts limits` prints.
pub fn pam_limits(data: &[u8]) {
    let mut lines = Vec::new();
    limits::parse(&text(data), limits::CONF, &mut lines);
    let mut files = files(data, 4, limits::CONF, |i| {
        format!("{}/{i}.conf", limits::DIR)
    });
    files.push(("/etc/passwd".into(), LIMITS_PASSWD.as_bytes()));
    files.push(("/etc/group".into(), LIMITS_GROUP.as_bytes()));
    with_root(&files, false, |facts| {
        let Ok(config) = limits::pam_limits(facts) else {
            return;
        };
        let acc = accounts(facts).map_or_else(|_| Accounts::default(), |a| (*a).clone());
        let mut who: Vec<(&str, u32, u32)> = acc
            .users
            .iter()
            .map(|u| (u.name.as_str(), u.uid, u.gid))
            .collect();
        who.extend([
            ("", u32::MAX, u32::MAX),
            ("", u32::MAX - 1, 0),
            ("x", 0, u32::MAX),
        ]);
        for (name, uid, gid) in who {
            let l = limits::evaluate(
                &config,
                &limits::Who {
                    name,
                    uid,
                    gid,
                    acc: &acc,
                },
            );
            assert!(!l.how.is_empty(), "no reason given for {name}'s limit");
        }
        let _ = core_limit::core_limit(facts);
        let _ = core_limit::facts(facts, &[]);
    });
}

/// /etc/os-release, as the engine reads it to choose a benchmark.
pub fn os_release(data: &[u8]) {
    with_root(&[("/etc/os-release".into(), data)], false, |facts| {
        let _ = rampart_agent::engine::os_release(facts);
    });
}

/// dpkg's status file; Debian's version order must be a total order on the versions
/// it names (reflexive, antisymmetric).
pub fn dpkg_status(data: &[u8]) {
    let Ok(pkgs) = packages::parse_status(&text(data), "/var/lib/dpkg/status") else {
        return;
    };
    let versions: Vec<&String> = pkgs.installed.values().take(16).collect();
    for a in &versions {
        assert_eq!(
            packages::compare_versions(a, a),
            std::cmp::Ordering::Equal,
            "{a:?} is not equal to itself"
        );
        for b in &versions {
            assert_eq!(
                packages::compare_versions(a, b),
                packages::compare_versions(b, a).reverse(),
                "{a:?} and {b:?} compare differently each way round"
            );
        }
    }
}

/// One RPM header blob, as each row of rpm's database is decoded.
pub fn rpm_header(data: &[u8]) {
    if let Ok(p) = rpmdb::package(data) {
        let v = format!("{}-{}", p.version, p.release);
        assert_eq!(
            rpmdb::compare_rpm_versions(&v, &v),
            std::cmp::Ordering::Equal
        );
    }
}

/// rpm's SQLite database file (/var/lib/rpm/rpmdb.sqlite), read without SQLite; the
/// second part, when there is one, is its write-ahead log.
pub fn rpmdb_sqlite(data: &[u8]) {
    let parts = split(data, 2);
    let mut files = vec![(rpmdb::RPMDB.to_string(), parts[0])];
    if let Some(wal) = parts.get(1) {
        files.push((format!("{}-wal", rpmdb::RPMDB), *wal));
    }
    with_root(&files, false, |facts| {
        let _ = rpmdb::read(facts);
    });
}

/// What the collector decodes from an agent: an `AgentMessage` on the stream, or an
/// `EnrollRequest`, then the limits it applies to their fields, the client
/// certificate's agent ID, and the CSR of an enrolment or a renewal. Whatever decodes
/// must encode back to a message that decodes to the same value.
pub fn agent_message(data: &[u8]) {
    use rampart_collector::limits;
    use rampart_proto::prost::Message;
    use rampart_proto::v1::{agent_message::Body, AgentMessage, EnrollRequest};

    let _ = rampart_collector::grpc::agent_id_of(data);
    if let Ok(m) = AgentMessage::decode(data) {
        let again = AgentMessage::decode(m.encode_to_vec().as_slice())
            .expect("an encoded AgentMessage decodes");
        assert_eq!(m, again, "AgentMessage does not survive a round trip");
        match m.body {
            Some(Body::Hello(h)) => {
                let labels = rampart_collector::app::labels_of(h.labels.clone());
                let _ = limits::hello(&limits::HelloClaims::of_hello(&h, &labels));
            }
            Some(Body::Results(b)) => {
                let _ = limits::scan_id(&b.scan_id);
                for r in &b.results {
                    let _ = limits::result(&r.rule_id, &r.evidence);
                    let _ = rampart_proto::domain::rule_status(r.status);
                }
            }
            Some(Body::ScanStarted(s)) => {
                let _ = limits::scan_id(&s.scan_id);
            }
            Some(Body::ScanFinished(f)) => {
                let _ = limits::scan_id(&f.scan_id);
            }
            Some(Body::ScanFailed(f)) => {
                let _ = limits::scan_id(&f.scan_id);
                let _ = limits::echo(&f.reason);
            }
            Some(Body::Renew(r)) => sign(&r.csr_der),
            Some(Body::Catalog(_)) | None => {}
        }
    }
    if let Ok(r) = EnrollRequest::decode(data) {
        let labels = rampart_collector::app::labels_of(r.labels.clone());
        let _ = limits::enroll(&limits::EnrollClaims::of_request(&r, &labels));
        sign(&r.csr_der);
    }
}

/// Signs a CSR with a CA made once per process, as enrolment and renewal do.
fn sign(csr_der: &[u8]) {
    use rampart_collector::ca::Ca;
    static CA: OnceLock<(tempfile::TempDir, Ca)> = OnceLock::new();
    let (_, ca) = CA.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a directory for the fuzzing CA");
        let ca = Ca::open_or_create(dir.path()).expect("create the fuzzing CA");
        (dir, ca)
    });
    let _ = ca.sign_agent(csr_der, "fuzz", time::Duration::days(1));
}
