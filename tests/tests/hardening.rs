//! Hardening a copy of the real Debian 12 root flips exactly the rules concerned
//! from fail to pass, and changes nothing else.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use rampart_tests::{agent_json, debian_root, statuses};

fn write(root: &Path, p: &str, text: &str, mode: u32) {
    let h = root.join(p.trim_start_matches('/'));
    fs::create_dir_all(h.parent().unwrap()).unwrap();
    fs::write(&h, text).unwrap();
    fs::set_permissions(&h, fs::Permissions::from_mode(mode)).unwrap();
}

fn chmod(root: &Path, p: &str, mode: u32) {
    fs::set_permissions(
        root.join(p.trim_start_matches('/')),
        fs::Permissions::from_mode(mode),
    )
    .unwrap();
}

fn edit(root: &Path, p: &str, f: impl Fn(&str) -> String) {
    let h = root.join(p.trim_start_matches('/'));
    let text = fs::read_to_string(&h).unwrap();
    fs::write(&h, f(&text)).unwrap();
}

/// What an administrator would change, file by file, as the remediation texts say.
fn harden(root: &Path) {
    // Kernel parameters, persisted (1.5.x, 3.3.x).
    write(
        root,
        "/etc/sysctl.d/60-cis.conf",
        "kernel.randomize_va_space = 2\nkernel.yama.ptrace_scope = 1\nfs.suid_dumpable = 0\n\
         net.ipv4.ip_forward = 0\nnet.ipv6.conf.all.forwarding = 0\n\
         net.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.default.send_redirects = 0\n\
         net.ipv4.icmp_ignore_bogus_error_responses = 1\nnet.ipv4.icmp_echo_ignore_broadcasts = 1\n\
         net.ipv4.conf.all.accept_redirects = 0\nnet.ipv4.conf.default.accept_redirects = 0\n\
         net.ipv6.conf.all.accept_redirects = 0\nnet.ipv6.conf.default.accept_redirects = 0\n\
         net.ipv4.conf.all.secure_redirects = 0\nnet.ipv4.conf.default.secure_redirects = 0\n\
         net.ipv4.conf.all.rp_filter = 1\nnet.ipv4.conf.default.rp_filter = 1\n\
         net.ipv4.conf.all.accept_source_route = 0\nnet.ipv4.conf.default.accept_source_route = 0\n\
         net.ipv6.conf.all.accept_source_route = 0\nnet.ipv6.conf.default.accept_source_route = 0\n\
         net.ipv4.conf.all.log_martians = 1\nnet.ipv4.conf.default.log_martians = 1\n\
         net.ipv4.tcp_syncookies = 1\nnet.ipv6.conf.all.accept_ra = 0\nnet.ipv6.conf.default.accept_ra = 0\n",
        0o644,
    );
    write(
        root,
        "/etc/security/limits.d/60-cis.conf",
        "* hard core 0\nroot hard core 0\n",
        0o644,
    );
    // Filesystem modules blocked (1.1.1.x).
    let mut modprobe = String::new();
    for m in [
        "cramfs",
        "freevxfs",
        "hfs",
        "hfsplus",
        "jffs2",
        "usb-storage",
    ] {
        modprobe.push_str(&format!("install {m} /bin/false\nblacklist {m}\n"));
    }
    write(root, "/etc/modprobe.d/60-cis.conf", &modprobe, 0o644);
    // /tmp and /dev/shm as separate mounts with restrictive options (1.1.2.1.x, 1.1.2.2.x).
    edit(root, "/etc/fstab", |t| {
        format!(
            "{t}tmpfs /tmp tmpfs rw,nosuid,nodev,noexec,relatime 0 0\ntmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec 0 0\n"
        )
    });
    // Banners without system details (1.6.1–1.6.3).
    for p in ["/etc/issue", "/etc/issue.net", "/etc/motd"] {
        let h = root.join(p.trim_start_matches('/'));
        let _ = fs::remove_file(&h);
        write(
            root,
            p,
            "Authorised use only. Activity on this system is monitored.\n",
            0o644,
        );
    }
    // SSH server (5.1.x).
    write(
        root,
        "/etc/ssh/sshd_config.d/60-cis.conf",
        "PermitRootLogin no\nMaxAuthTries 4\nLoginGraceTime 60\nClientAliveInterval 15\nClientAliveCountMax 3\n\
         MaxStartups 10:30:60\nLogLevel VERBOSE\nBanner /etc/issue.net\nAllowGroups sudo\n",
        0o600,
    );
    chmod(root, "/etc/ssh/sshd_config", 0o600);
    // cron (2.4.1.x).
    chmod(root, "/etc/crontab", 0o600);
    for d in [
        "/etc/cron.hourly",
        "/etc/cron.daily",
        "/etc/cron.weekly",
        "/etc/cron.monthly",
        "/etc/cron.d",
    ] {
        chmod(root, d, 0o700);
    }
    // sudo (5.2.2, 5.2.3).
    write(
        root,
        "/etc/sudoers.d/60-cis",
        "Defaults use_pty\nDefaults logfile=\"/var/log/sudo.log\"\n",
        0o440,
    );
    // Password ageing (5.4.1.1).
    edit(root, "/etc/login.defs", |t| {
        t.lines()
            .map(|l| {
                if l.starts_with("PASS_MAX_DAYS") {
                    "PASS_MAX_DAYS\t365".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    });
}

/// The rules the hardening above remediates at level1-server, with their status
/// before; after hardening each must pass. Rules whose mount did not exist before
/// were not applicable, not failing.
const EXPECTED_FLIPS: &[(&str, &str)] = &[
    ("1.1.2.1.1", "fail"),
    ("1.1.2.1.2", "not_applicable"),
    ("1.1.2.1.3", "not_applicable"),
    ("1.1.2.1.4", "not_applicable"),
    ("1.1.2.2.4", "fail"),
    ("1.5.1", "fail"),
    ("1.5.2", "fail"),
    ("1.5.3", "fail"),
    ("1.6.1", "fail"),
    ("1.6.2", "fail"),
    ("1.6.3", "fail"),
    ("2.4.1.2", "fail"),
    ("2.4.1.3", "fail"),
    ("2.4.1.4", "fail"),
    ("2.4.1.5", "fail"),
    ("2.4.1.6", "fail"),
    ("2.4.1.7", "fail"),
    ("3.3.1", "fail"),
    ("3.3.2", "fail"),
    ("3.3.3", "fail"),
    ("3.3.4", "fail"),
    ("3.3.5", "fail"),
    ("3.3.6", "fail"),
    ("3.3.7", "fail"),
    ("3.3.8", "fail"),
    ("3.3.9", "fail"),
    ("3.3.10", "fail"),
    ("3.3.11", "fail"),
    ("5.1.1", "fail"),
    ("5.1.4", "fail"),
    ("5.1.5", "fail"),
    ("5.1.7", "fail"),
    ("5.1.13", "fail"),
    ("5.1.16", "fail"),
    ("5.1.18", "fail"),
    ("5.1.20", "fail"),
    ("5.2.3", "fail"),
    ("5.4.1.1", "fail"),
];

#[test]
fn hardening_flips_exactly_the_rules_concerned() {
    let original = debian_root();
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("root");
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(original)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success(), "copying the Debian root failed");
    harden(&copy);
    let scan = |root: &Path| {
        statuses(&agent_json(
            &[
                "check",
                "--root",
                root.to_str().unwrap(),
                "--profile",
                "level1-server",
                "--format",
                "json",
            ],
            0,
        ))
    };
    let before = scan(original);
    let after = scan(&copy);
    let mut changed = Vec::new();
    for (id, (b, _)) in &before {
        let (a, ev) = &after[id];
        if a != b {
            changed.push((id.clone(), b.clone(), a.clone(), ev.clone()));
        }
    }
    let mut problems = Vec::new();
    for (id, b, a, ev) in &changed {
        match EXPECTED_FLIPS.iter().find(|(x, _)| x == id) {
            None => problems.push(format!("{id} changed unexpectedly: {b} -> {a} {ev:?}")),
            Some((_, want)) if (b.as_str(), a.as_str()) != (*want, "pass") => problems.push(
                format!("{id}: expected {want} -> pass, got {b} -> {a} {ev:?}"),
            ),
            Some(_) => {}
        }
    }
    for (id, _) in EXPECTED_FLIPS {
        if !changed.iter().any(|c| c.0 == *id) {
            problems.push(format!("{id} did not change: still {:?}", after[*id]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
