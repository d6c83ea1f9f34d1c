//! Ubuntu 22.04 and 24.04 scans of an Ubuntu-like root made from the real Debian 12
//! root: no Ubuntu archive is reachable here, so this proves benchmark selection from
//! os-release and that every Ubuntu rule evaluates on a real system's files without
//! error — not that Ubuntu's own package defaults are judged right (the fixtures do that).

use std::fs;
use std::path::Path;
use std::process::Command;

use rampart_tests::{agent_json, debian_root, statuses};

fn ubuntu_like(dir: &Path, version: &str, codename: &str) {
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(debian_root())
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let etc = dir.join("etc");
    let _ = fs::remove_file(etc.join("os-release"));
    fs::write(
        etc.join("os-release"),
        format!(
            "PRETTY_NAME=\"Ubuntu {version} LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"{version}\"\nVERSION=\"{version} LTS ({codename})\"\n\
             VERSION_CODENAME={codename}\nID=ubuntu\nID_LIKE=debian\n"
        ),
    )
    .unwrap();
    for f in ["issue", "issue.net"] {
        let _ = fs::remove_file(etc.join(f));
        fs::write(etc.join(f), format!("Ubuntu {version} LTS \\n \\l\n")).unwrap();
    }
}

#[test]
fn ubuntu_benchmarks_run_on_an_ubuntu_like_root() {
    for (version, codename, id) in [
        ("22.04", "jammy", "ubuntu-22.04"),
        ("24.04", "noble", "ubuntu-24.04"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        ubuntu_like(&root, version, codename);
        for profile in [
            "level1-server",
            "level2-server",
            "level1-workstation",
            "level2-workstation",
        ] {
            let v = agent_json(
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
            );
            assert_eq!(v["benchmark"]["id"], id, "chosen from os-release");
            let listed = agent_json(
                &[
                    "rules",
                    "--benchmark",
                    id,
                    "--profile",
                    profile,
                    "--format",
                    "json",
                ],
                0,
            );
            assert_eq!(
                v["results"].as_array().unwrap().len(),
                listed["rules"].as_array().unwrap().len()
            );
            let r = statuses(&v);
            let errors: Vec<_> = r
                .iter()
                .filter(|(_, (s, _))| s == "error")
                .map(|(id, (_, ev))| format!("{id}: {ev:?}"))
                .collect();
            assert!(errors.is_empty(), "{id} {profile}:\n{}", errors.join("\n"));
        }
        let all = agent_json(&["rules", "--benchmark", id, "--format", "json"], 0);
        let n = all["rules"].as_array().unwrap().len();
        assert_eq!(n, if id == "ubuntu-22.04" { 300 } else { 312 });
    }
}
