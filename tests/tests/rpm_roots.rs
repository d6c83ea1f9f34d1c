//! Scans of roots laid out like minimal cloud images of RHEL 9.4 and Amazon Linux 2023
//! (tests/fixtures/build-rpm-root.sh, cached): a real rpm database written by Debian's
//! rpm, every other file written from the distributions' documented defaults. The
//! agent reads the database as rpm lists it, every profile of each distribution's
//! benchmark runs without `error`, and `--benchmark auto` picks the benchmark from
//! os-release, for the RHEL rebuilds too. What such roots do not prove:
//! tests/fixtures/README-rpm-roots.md.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use rampart_tests::{agent_json, rpm_root, statuses};

const PROFILES: [&str; 4] = [
    "level1-server",
    "level2-server",
    "level1-workstation",
    "level2-workstation",
];

/// The two roots and their benchmarks.
const DISTROS: [&str; 2] = ["rhel-9", "al2023"];

/// Where the agent says it read the packages.
const RPMDB: &str = "/var/lib/rpm/rpmdb.sqlite";

fn scan(root: &Path, benchmark: &str, profile: &str) -> serde_json::Value {
    agent_json(
        &[
            "check",
            "--root",
            root.to_str().unwrap(),
            "--benchmark",
            benchmark,
            "--profile",
            profile,
            "--format",
            "json",
        ],
        0,
    )
}

/// What rpm itself lists in the root: name → versions as the agent writes them
/// (`[EPOCH:]VERSION-RELEASE`). rpm reads a copy of the database: it leaves -shm and
/// -wal files beside a database it opened, and the cached root is shared.
fn rpm_lists(root: &Path) -> BTreeMap<String, Vec<String>> {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("var/lib/rpm");
    fs::create_dir_all(&db).unwrap();
    fs::copy(
        root.join("var/lib/rpm/rpmdb.sqlite"),
        db.join("rpmdb.sqlite"),
    )
    .unwrap();
    let out = Command::new("rpm")
        .arg("--root")
        .arg(t.path())
        .args(["--dbpath", "/var/lib/rpm", "-qa", "--qf"])
        .arg("%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n")
        .output()
        .expect("these tests need Debian's rpm (apt-get install rpm)");
    assert!(
        out.status.success(),
        "rpm -qa: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut list: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (name, evr) = line.split_once(' ').unwrap();
        list.entry(name.into()).or_default().push(evr.into());
    }
    list
}

/// Every package the scan's evidence names from the rpm database must be as rpm lists
/// it: installed at that version, or not installed. Returns how many it named.
fn evidence_agrees_with_rpm(
    scan: &serde_json::Value,
    rpm: &BTreeMap<String, Vec<String>>,
) -> usize {
    let mut named = 0;
    let mut wrong = Vec::new();
    for (id, (_, evidence)) in statuses(scan) {
        for e in evidence {
            let Some(rest) = e.strip_prefix("package ") else {
                continue;
            };
            let Some(rest) = rest.strip_suffix(&format!(" ({RPMDB})")) else {
                continue;
            };
            named += 1;
            if let Some(name) = rest.strip_suffix(" is not installed") {
                if rpm.contains_key(name) {
                    wrong.push(format!("{id}: {e} — rpm lists {name} {:?}", rpm[name]));
                }
            } else if let Some(nv) = rest.strip_suffix(" is installed") {
                let (name, version) = nv.split_once(' ').unwrap();
                if !rpm
                    .get(name)
                    .is_some_and(|v| v.iter().any(|x| x == version))
                {
                    wrong.push(format!("{id}: {e} — rpm lists {:?}", rpm.get(name)));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "evidence unlike rpm's list:\n{}",
        wrong.join("\n")
    );
    named
}

fn errors(v: &serde_json::Value) -> Vec<String> {
    statuses(v)
        .into_iter()
        .filter(|(_, (s, _))| s == "error")
        .map(|(id, (_, ev))| format!("{id}: {ev:?}"))
        .collect()
}

fn os_release(root: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(root.join("etc/os-release"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

/// The roots are what the script promises: the images' os-release, their packages
/// in a database rpm reads (and not those the images lack), root's files with RHEL's
/// modes.
#[test]
fn the_roots_look_like_the_images() {
    let running_as_root = fs::metadata("/proc/self").unwrap().uid() == 0;
    for distro in DISTROS {
        let root = rpm_root(distro);
        let os = os_release(root);
        let rpm = rpm_lists(root);
        let (id, version_id, platform, user, sshd, selinux) = if distro == "rhel-9" {
            (
                "rhel",
                "9.4",
                "platform:el9",
                "cloud-user",
                "8.7p1-38.el9",
                "enforcing",
            )
        } else {
            (
                "amzn",
                "2023",
                "platform:al2023",
                "ec2-user",
                "8.7p1-8.amzn2023.0.11",
                "permissive",
            )
        };
        assert_eq!(os["ID"], id, "{distro}");
        assert_eq!(os["VERSION_ID"], version_id, "{distro}");
        assert_eq!(os["ID_LIKE"], "fedora", "{distro}");
        assert_eq!(os["PLATFORM_ID"], platform, "{distro}");
        assert!(root.join("etc/system-release").exists(), "{distro}");

        assert_eq!(rpm["openssh-server"], [sshd], "{distro}");
        assert_eq!(rpm["kernel"].len(), 1, "{distro}");
        for present in [
            "sudo",
            "chrony",
            "audit",
            "shadow-utils",
            "pam",
            "authselect",
            "crypto-policies",
            "selinux-policy-targeted",
            "grub2-tools",
            "cloud-init",
            "dnf",
        ] {
            assert!(
                rpm.contains_key(present),
                "{distro}: {present} is not listed"
            );
        }
        for absent in ["firewalld", "aide", "nftables", "ufw", "apparmor"] {
            assert!(!rpm.contains_key(absent), "{distro}: {absent} is listed");
        }
        assert_eq!(rpm.contains_key("rsyslog"), distro == "rhel-9", "{distro}");
        assert_eq!(rpm.contains_key("cronie"), distro == "rhel-9", "{distro}");
        assert!(rpm.len() > 80, "{distro}: only {} packages", rpm.len());

        let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap_or_else(|| panic!("{distro}: no {user}"));
        assert!(
            line.ends_with(&format!(":/home/{user}:/bin/bash")),
            "{line}"
        );
        assert!(root.join("home").join(user).is_dir());
        for (file, mode) in [
            ("etc/shadow", 0o000),
            ("etc/gshadow", 0o000),
            ("etc/passwd", 0o644),
            ("etc/group", 0o644),
            ("etc/ssh/sshd_config", 0o600),
            ("boot/grub2/grub.cfg", 0o600),
            ("boot/grub2/grubenv", 0o600),
            ("etc/sudoers", 0o440),
        ] {
            let m = fs::metadata(root.join(file)).unwrap();
            assert_eq!(m.mode() & 0o7777, mode, "{distro}: {file}");
            if running_as_root {
                assert_eq!((m.uid(), m.gid()), (0, 0), "{distro}: {file}");
            }
        }
        assert_eq!(
            fs::read(root.join("boot/grub2/grubenv")).unwrap().len(),
            1024
        );
        let sshd_config = fs::read_to_string(root.join("etc/ssh/sshd_config")).unwrap();
        assert!(sshd_config.contains("\nInclude /etc/ssh/sshd_config.d/*.conf\n"));
        // The crypto policy's server configuration, through its absolute link.
        let link =
            fs::read_link(root.join("etc/crypto-policies/back-ends/opensshserver.config")).unwrap();
        let policy = fs::read_to_string(root.join(link.strip_prefix("/").unwrap())).unwrap();
        assert!(policy.starts_with("Ciphers "), "{policy}");
        let selinux_config = fs::read_to_string(root.join("etc/selinux/config")).unwrap();
        assert!(
            selinux_config.contains(&format!("\nSELINUX={selinux}\n")),
            "{distro}"
        );
        assert!(
            selinux_config.contains("\nSELINUXTYPE=targeted\n"),
            "{distro}"
        );
        assert!(root
            .join("etc/systemd/system/multi-user.target.wants/sshd.service")
            .symlink_metadata()
            .is_ok());
        let entries: Vec<_> = fs::read_dir(root.join("boot/loader/entries"))
            .unwrap()
            .collect();
        assert_eq!(entries.len(), 1, "{distro}: one BLS entry");
    }
}

/// The agent reads each root's rpm database as rpm lists it. Through the Debian 12
/// benchmark, whose sudo rule asks the package database whether sudo is installed:
/// that rule reads the root's rpm database whatever the benchmark.
#[test]
fn the_agent_reads_the_rpm_database() {
    for distro in DISTROS {
        let root = rpm_root(distro);
        let rpm = rpm_lists(root);
        let v = scan(root, "debian-12", "level1-server");
        let sudo = format!("package sudo {} is installed ({RPMDB})", rpm["sudo"][0]);
        assert!(
            statuses(&v).values().any(|(_, ev)| ev.contains(&sudo)),
            "{distro}: no evidence says {sudo:?}"
        );
        assert!(evidence_agrees_with_rpm(&v, &rpm) > 0);
        let errors: Vec<String> = errors(&v)
            .into_iter()
            .filter(|e| e.contains("rpm"))
            .collect();
        assert!(errors.is_empty(), "{distro}: {}", errors.join("\n"));
    }
}

/// Every profile of each distribution's own benchmark runs on its root without
/// `error`, with all the profile's rules, and the packages its evidence names are
/// as rpm lists them. A profile the benchmark does not have (CIS Amazon Linux 2023
/// has no workstation profiles) scans no rule; the server profiles have rules.
#[test]
fn every_profile_scans_without_errors() {
    for distro in DISTROS {
        let root = rpm_root(distro);
        let rpm = rpm_lists(root);
        for profile in PROFILES {
            let v = scan(root, distro, profile);
            assert_eq!(v["benchmark"]["id"], distro, "{profile}");
            assert_eq!(v["live"], false);
            let listed = agent_json(
                &[
                    "rules",
                    "--benchmark",
                    distro,
                    "--profile",
                    profile,
                    "--format",
                    "json",
                ],
                0,
            );
            let listed = listed["rules"].as_array().unwrap().len();
            assert_eq!(
                v["results"].as_array().unwrap().len(),
                listed,
                "{distro} {profile}"
            );
            assert!(
                listed > 0 || profile.ends_with("-workstation"),
                "{distro} {profile}: no rules"
            );
            let errors = errors(&v);
            assert!(
                errors.is_empty(),
                "{distro} {profile}: rules ended in error:\n{}",
                errors.join("\n")
            );
            evidence_agrees_with_rpm(&v, &rpm);
        }
    }
}

/// A copy of the RHEL root with another os-release (its /etc/os-release links to
/// /usr/lib/os-release, which is rewritten).
fn rebuild(dir: &Path, os_release: &str) {
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(rpm_root("rhel-9"))
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(dir.join("usr/lib/os-release"), os_release).unwrap();
}

/// `--benchmark auto` picks the benchmark from os-release: rhel-9 for RHEL 9 and the
/// rebuilds that say they are like it, al2023 for Amazon Linux 2023.
#[test]
fn auto_picks_the_benchmark_from_os_release() {
    let picked = |root: &Path| {
        scan(root, "auto", "level1-server")["benchmark"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(picked(rpm_root("rhel-9")), "rhel-9");
    assert_eq!(picked(rpm_root("al2023")), "al2023");
    let rebuilds = [
        (
            "rocky",
            "NAME=\"Rocky Linux\"\nVERSION=\"9.4 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n\
             VERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"Rocky Linux 9.4 (Blue Onyx)\"\n",
        ),
        (
            "almalinux",
            "NAME=\"AlmaLinux\"\nVERSION=\"9.4 (Seafoam Ocelot)\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\n\
             VERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"AlmaLinux 9.4 (Seafoam Ocelot)\"\n",
        ),
        (
            "ol",
            "NAME=\"Oracle Linux Server\"\nVERSION=\"9.4\"\nID=\"ol\"\nID_LIKE=\"fedora\"\nVARIANT=\"Server\"\n\
             VARIANT_ID=\"server\"\nVERSION_ID=\"9.4\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"Oracle Linux Server 9.4\"\n",
        ),
        (
            "centos",
            "NAME=\"CentOS Stream\"\nVERSION=\"9\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"9\"\n\
             PLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"CentOS Stream 9\"\n",
        ),
    ];
    for (id, text) in rebuilds {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        rebuild(&root, text);
        assert_eq!(os_release(&root)["ID"], id);
        assert_eq!(picked(&root), "rhel-9", "{id}");
        let v = scan(&root, "auto", "level2-server");
        let errors = errors(&v);
        assert!(errors.is_empty(), "{id}:\n{}", errors.join("\n"));
    }
}

/// An agent enrolled on each root streams its scan to a real collector, which scores
/// it under the distribution's benchmark like any other: the API's results are the
/// rules `check` gives for the same root and profile; the HTML, JSON and ARF reports
/// carry every rule with the benchmark's title (the ARF accepted by the published
/// schemas and by OpenSCAP); the console's scan page names the benchmark.
#[test]
fn scans_of_rpm_roots_reach_the_collector_reports_and_console() {
    use rampart_tests::cluster::{http_raw, Agent, Collector};
    use rampart_tests::console_http::Console;
    use rampart_tests::scap::{check_arf, rule_result, xccdf_status};

    let t = tempfile::tempdir().unwrap();
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.console_user("ada", "admin", "ada's long password");
    let mut ui = Console::new(&c.rest);
    assert_eq!(ui.sign_in("ada", "ada's long password").status, 303);
    for (n, distro) in DISTROS.into_iter().enumerate() {
        let root = rpm_root(distro);
        let title = match distro {
            "rhel-9" => "CIS Red Hat Enterprise Linux 9 Benchmark",
            _ => "CIS Amazon Linux 2023 Benchmark",
        };
        let token = c.enrollment_token(&format!("vm{n}"), 1, 3600);
        let mut a = Agent::new(&t.path().join(format!("agent-{distro}")));
        let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, root, &[]);
        assert!(ok, "{distro}: enroll failed: {out}");
        a.run(&[]);
        let stored = c.completed_scan(&a.agent_id(), 90);
        let sid = stored["id"].as_str().unwrap().to_string();
        let profile = stored["profile"].as_str().unwrap().to_string();
        let detail = c.admin("GET", &format!("/api/v1/scans/{sid}"), None);
        let api: BTreeMap<String, String> = detail["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let local: BTreeMap<String, String> = statuses(&scan(root, distro, &profile))
            .into_iter()
            .map(|(id, (status, _))| (id, status))
            .collect();
        assert_eq!(api, local, "{distro}: the collector holds what check gives");
        assert!(
            api.values().any(|s| s == "fail") && api.values().any(|s| s == "pass"),
            "{distro}: a default image passes some rules and fails others"
        );

        let get = |kind: &str| {
            let r = http_raw(
                "GET",
                &c.rest,
                &format!("/api/v1/scans/{sid}/report.{kind}"),
                Some(&c.admin),
            );
            assert_eq!(r.status, 200, "{distro} {kind}: {}", r.text());
            r
        };
        let html = get("html").text();
        assert!(html.contains(title), "{distro}: HTML names {title}");
        for id in api.keys() {
            assert!(html.contains(&format!(">{id}<")), "{distro}: {id} in HTML");
        }
        let doc: serde_json::Value = serde_json::from_slice(&get("json").body).unwrap();
        assert_eq!(doc["benchmark"]["id"], distro);
        assert_eq!(doc["benchmark"]["title"], title);
        assert_eq!(doc["results"].as_array().unwrap().len(), api.len());
        let arf = get("arf.xml");
        let xml = arf.text();
        for (id, status) in &api {
            assert_eq!(
                rule_result(&xml, id).as_deref(),
                Some(xccdf_status(status)),
                "{distro}: ARF {id}"
            );
        }
        let arf_file = t.path().join(format!("{distro}.arf.xml"));
        fs::write(&arf_file, &arf.body).unwrap();
        check_arf(&arf_file, t.path()).unwrap_or_else(|e| panic!("{distro}: {e}"));

        let page = ui.get(&format!("/ui/scans/{sid}"));
        assert_eq!(page.status, 200, "{distro}");
        assert!(
            page.text().contains(title),
            "{distro}: the console names {title}"
        );
    }
}
