//! Scans of a real Debian 12 root filesystem built with debootstrap (cached):
//! every profile runs without `error`, and dozens of rules agree with what an
//! independent reading of the root's own files says.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rampart_tests::{agent_json, debian_root, statuses};

const PROFILES: [&str; 4] = [
    "level1-server",
    "level2-server",
    "level1-workstation",
    "level2-workstation",
];

fn scan(root: &Path, profile: &str) -> serde_json::Value {
    agent_json(
        &[
            "check",
            "--root",
            root.to_str().unwrap(),
            "--profile",
            profile,
            "--format",
            "json",
        ],
        0,
    )
}

#[test]
fn every_profile_scans_without_errors() {
    let root = debian_root();
    for profile in PROFILES {
        let v = scan(root, profile);
        assert_eq!(
            v["benchmark"]["id"], "debian-12",
            "chosen from the root's os-release"
        );
        assert_eq!(v["live"], false);
        let listed = agent_json(&["rules", "--profile", profile, "--format", "json"], 0);
        assert_eq!(
            v["results"].as_array().unwrap().len(),
            listed["rules"].as_array().unwrap().len(),
            "{profile}"
        );
        let errors: Vec<String> = statuses(&v)
            .into_iter()
            .filter(|(_, (s, _))| s == "error")
            .map(|(id, (_, ev))| format!("{id}: {ev:?}"))
            .collect();
        assert!(
            errors.is_empty(),
            "{profile}: rules ended in error:\n{}",
            errors.join("\n")
        );
        let s = &v["summary"];
        assert!(
            s["passed"].as_u64().unwrap() > 0 && s["failed"].as_u64().unwrap() > 0,
            "{profile}: {s}"
        );
    }
}

/// What a plain reading of the root says a rule's status must be.
struct Oracle<'a> {
    root: &'a Path,
    dpkg: BTreeMap<String, String>,
}

impl Oracle<'_> {
    fn path(&self, p: &str) -> std::path::PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> String {
        fs::read_to_string(self.path(p)).unwrap_or_default()
    }

    fn installed(&self, pkg: &str) -> bool {
        self.dpkg
            .get(pkg)
            .is_some_and(|s| s.ends_with(" installed"))
    }

    fn perms(&self, p: &str, max: u32, groups: &[u32]) -> Option<&'static str> {
        let m = fs::metadata(self.path(p)).ok()?;
        let ok = m.mode() & 0o7777 & !max == 0 && m.uid() == 0 && groups.contains(&m.gid());
        Some(if ok { "pass" } else { "fail" })
    }

    /// The first uncommented value of an sshd keyword in sshd_config (sshd: first wins).
    fn sshd(&self, key: &str) -> Option<String> {
        let mut files = vec!["/etc/ssh/sshd_config".to_string()];
        // Debian's sshd_config includes sshd_config.d/*.conf first.
        let mut d: Vec<_> = fs::read_dir(self.path("/etc/ssh/sshd_config.d"))
            .map(|r| {
                r.flatten()
                    .map(|e| format!("/etc/ssh/sshd_config.d/{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default();
        d.sort();
        files.splice(0..0, d.into_iter().filter(|f| f.ends_with(".conf")));
        for f in files {
            for line in self.read(&f).lines() {
                let line = line.trim();
                let mut w = line.split_whitespace();
                if w.next().is_some_and(|k| k.eq_ignore_ascii_case(key)) {
                    return w.next().map(str::to_string);
                }
            }
        }
        None
    }
}

fn dpkg_status(root: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let get = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if let (Some(p), Some(s)) = (get("Package:"), get("Status:")) {
            out.insert(p, s);
        }
    }
    out
}

#[test]
fn rules_agree_with_the_roots_own_files() {
    let root = debian_root();
    let o = Oracle {
        root,
        dpkg: dpkg_status(root),
    };
    let mut expect: Vec<(&str, &'static str, String)> = Vec::new();
    let shadow_gid = o
        .read("/etc/group")
        .lines()
        .find(|l| l.starts_with("shadow:"))
        .and_then(|l| l.split(':').nth(2)?.parse().ok())
        .unwrap_or(0);
    for (id, path, max, groups) in [
        ("7.1.1", "/etc/passwd", 0o644, vec![0]),
        ("7.1.2", "/etc/passwd-", 0o644, vec![0]),
        ("7.1.3", "/etc/group", 0o644, vec![0]),
        ("7.1.4", "/etc/group-", 0o644, vec![0]),
        ("7.1.5", "/etc/shadow", 0o640, vec![0, shadow_gid]),
        ("7.1.6", "/etc/shadow-", 0o640, vec![0, shadow_gid]),
        ("7.1.7", "/etc/gshadow", 0o640, vec![0, shadow_gid]),
        ("7.1.8", "/etc/gshadow-", 0o640, vec![0, shadow_gid]),
        ("7.1.9", "/etc/shells", 0o644, vec![0]),
        ("2.4.1.2", "/etc/crontab", 0o600, vec![0]),
        ("2.4.1.3", "/etc/cron.hourly", 0o700, vec![0]),
        ("2.4.1.4", "/etc/cron.daily", 0o700, vec![0]),
        ("2.4.1.5", "/etc/cron.weekly", 0o700, vec![0]),
        ("2.4.1.6", "/etc/cron.monthly", 0o700, vec![0]),
        ("2.4.1.7", "/etc/cron.d", 0o700, vec![0]),
        ("1.6.5", "/etc/issue", 0o644, vec![0]),
        ("1.6.6", "/etc/issue.net", 0o644, vec![0]),
    ] {
        if let Some(s) = o.perms(path, max, &groups) {
            expect.push((id, s, format!("{path} mode/owner")));
        }
    }
    for (id, pkgs) in [
        ("2.1.1", &["autofs"][..]),
        ("2.1.2", &["avahi-daemon"]),
        ("2.1.3", &["isc-dhcp-server"]),
        ("2.1.4", &["bind9"]),
        ("2.1.5", &["dnsmasq"]),
        ("2.1.6", &["vsftpd"]),
        ("2.1.7", &["slapd"]),
        ("2.1.8", &["dovecot-imapd", "dovecot-pop3d"]),
        ("2.1.9", &["nfs-kernel-server"]),
        ("2.1.10", &["ypserv"]),
        ("2.1.11", &["cups"]),
        ("2.1.12", &["rpcbind"]),
        ("2.1.14", &["samba"]),
        ("2.1.15", &["snmpd"]),
        ("2.1.16", &["tftpd-hpa"]),
        ("2.1.17", &["squid"]),
        ("2.1.18", &["apache2", "nginx"]),
        ("2.1.19", &["xinetd"]),
        ("2.2.1", &["nis"]),
        ("2.2.2", &["rsh-client"]),
        ("2.2.3", &["talk"]),
        ("2.2.5", &["ldap-utils"]),
    ] {
        if pkgs.iter().all(|p| !o.installed(p)) {
            expect.push((id, "pass", format!("{pkgs:?} not installed")));
        }
    }
    for (id, pkgs) in [
        ("5.2.1", &["sudo"][..]),
        ("6.3.1", &["aide", "aide-common"]),
        ("6.2.1.1", &["auditd", "audispd-plugins"]),
        ("5.3.1.3", &["libpam-pwquality"]),
    ] {
        let s = if pkgs.iter().all(|p| o.installed(p)) {
            "pass"
        } else {
            "fail"
        };
        expect.push((id, s, format!("{pkgs:?} installed?")));
    }
    let passwd: Vec<Vec<String>> = o
        .read("/etc/passwd")
        .lines()
        .map(|l| l.split(':').map(String::from).collect())
        .collect();
    let uid0 = passwd.iter().filter(|f| f[2] == "0").count();
    expect.push((
        "5.4.2.1",
        if uid0 == 1 { "pass" } else { "fail" },
        "UID 0 accounts".into(),
    ));
    expect.push((
        "7.2.1",
        if passwd.iter().all(|f| f[1] == "x") {
            "pass"
        } else {
            "fail"
        },
        "shadowed passwords".into(),
    ));
    let uids: Vec<&String> = passwd.iter().map(|f| &f[2]).collect();
    let dup = |v: &[&String]| v.iter().enumerate().any(|(i, a)| v[..i].contains(a));
    expect.push((
        "7.2.5",
        if dup(&uids) { "fail" } else { "pass" },
        "duplicate UIDs".into(),
    ));
    let names: Vec<&String> = passwd.iter().map(|f| &f[0]).collect();
    expect.push((
        "7.2.7",
        if dup(&names) { "fail" } else { "pass" },
        "duplicate user names".into(),
    ));
    let empty_pw = o
        .read("/etc/shadow")
        .lines()
        .any(|l| l.split(':').nth(1) == Some(""));
    expect.push((
        "7.2.2",
        if empty_pw { "fail" } else { "pass" },
        "empty shadow passwords".into(),
    ));
    // sshd: OpenSSH's defaults when unset are PermitRootLogin prohibit-password and MaxAuthTries 6.
    let prl = o
        .sshd("PermitRootLogin")
        .unwrap_or_else(|| "prohibit-password".into());
    expect.push((
        "5.1.20",
        if prl == "no" { "pass" } else { "fail" },
        format!("PermitRootLogin {prl}"),
    ));
    let mat: u32 = o
        .sshd("MaxAuthTries")
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    expect.push((
        "5.1.16",
        if mat <= 4 { "pass" } else { "fail" },
        format!("MaxAuthTries {mat}"),
    ));
    let pam = o.sshd("UsePAM").unwrap_or_else(|| "no".into());
    expect.push((
        "5.1.22",
        if pam.eq_ignore_ascii_case("yes") {
            "pass"
        } else {
            "fail"
        },
        format!("UsePAM {pam}"),
    ));
    let pe = o
        .sshd("PermitEmptyPasswords")
        .unwrap_or_else(|| "no".into());
    expect.push((
        "5.1.19",
        if pe == "no" { "pass" } else { "fail" },
        format!("PermitEmptyPasswords {pe}"),
    ));

    let results = statuses(&scan(root, "level2-server"));
    let mut wrong = Vec::new();
    for (id, want, why) in &expect {
        match results.get(*id) {
            Some((got, _)) if got == want => {}
            Some((got, ev)) => {
                wrong.push(format!("{id}: expected {want} ({why}), got {got}: {ev:?}"))
            }
            None => wrong.push(format!("{id}: not in the level2-server results")),
        }
    }
    assert!(
        expect.len() >= 30,
        "only {} rules cross-checked",
        expect.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {} rules disagree with the root's files:\n{}",
        wrong.len(),
        expect.len(),
        wrong.join("\n")
    );
}
