//! install.sh against stubs: each host kind (dpkg, rpm, neither), retries, refusals,
//! no second enrollment, labels passed verbatim.

use super::*;

#[test]
fn install_sh_is_posix_sh() {
    let out = Command::new("sh")
        .arg("-n")
        .arg(workspace().join("packaging/install.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn on_a_dpkg_host_it_installs_the_deb_over_the_pinned_ca() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
    std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
    ok(&sb.run(&sb.args(), &[]));
    let deb = format!("rampart-agent_{VERSION}_amd64.deb");
    assert_eq!(
        sb.read("curl.log"),
        format!(
            "insecure {REST}/ca.pem\npinned-ca {REST}/download/{deb}\npinned-ca {REST}/download/{deb}.sha256\n"
        )
    );
    assert_eq!(sb.read("pm.log"), format!("dpkg -i {deb}\n"));
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=web", "env=prod"])
    );
    assert_eq!(sb.read("token.seen").trim(), TOKEN);
    assert_eq!(sb.read("token.mode").trim(), "600");
    assert_eq!(
        sb.read("systemctl.log"),
        "daemon-reload\nenable rampart-agent.service\nstart --no-block rampart-agent.service\n"
    );
}

#[test]
fn on_an_rpm_host_it_installs_the_rpm_and_takes_its_settings_from_the_environment() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/rpm")).unwrap();
    let pin = sha256_hex(CA_DER);
    let token = sb.token_file();
    ok(&sb.run(
        &[],
        &[
            ("RAMPART_REST", &format!("{REST}/")),
            ("RAMPART_COLLECTOR", GRPC),
            ("RAMPART_CA_FINGERPRINT", &pin),
            ("RAMPART_TOKEN_FILE", &token),
            ("RAMPART_LABELS", "project=db,,team=a"),
        ],
    ));
    assert_eq!(
        sb.read("pm.log"),
        format!("rpm -U rampart-agent-{VERSION}-1.x86_64.rpm\n")
    );
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=db", "team=a"])
    );
    assert!(sb.read("systemctl.log").contains("start --no-block"));
}

#[test]
fn without_a_package_manager_it_installs_the_static_binary_and_its_unit() {
    let sb = Sandbox::new();
    ok(&sb.run(&sb.args(), &[]));
    assert_eq!(sb.read("pm.log"), "");
    let bin = sb.path().join("dest/usr/local/bin/rampart-agent");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let unit = sb.read("dest/etc/systemd/system/rampart-agent.service");
    assert!(
        unit.contains(
            "\nExecStart=/usr/local/bin/rampart-agent run --config /etc/rampart/agent.toml\n"
        ),
        "{unit}"
    );
    assert!(unit.contains("ProtectSystem=strict"));
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=web", "env=prod"])
    );
    assert!(sb.read("curl.log").contains(
        "pinned-ca https://collector.example:8080/download/rampart-agent.service.sha256"
    ));
}

#[test]
fn it_retries_while_the_collector_is_unreachable_and_then_gives_up() {
    // Unreachable for two attempts, then up: installed.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("curl.fail"), "2").unwrap();
    std::fs::write(sb.path().join("enroll.fail"), "2").unwrap();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
    std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
    // dpkg's lock is held at first (unattended-upgrades): retried too.
    std::fs::write(sb.path().join("pm.fail"), "1").unwrap();
    let stderr = ok(&sb.run(&sb.args(), &[]));
    assert!(stderr.contains("attempt 2 of 3"), "{stderr}");
    assert!(
        stderr.contains("dpkg -i rampart-agent_9.9.9_amd64.deb failed (attempt 1 of 3"),
        "{stderr}"
    );
    assert_eq!(sb.read("pm.log").lines().count(), 2);
    assert!(
        stderr.contains("enrollment failed (attempt 2 of 3)"),
        "{stderr}"
    );
    assert!(!sb.enroll_args().is_empty());
    // Unreachable for longer than the tries: a clear failure, nothing installed.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("curl.fail"), "100").unwrap();
    let out = sb.run(&sb.args(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot fetch https://collector.example:8080/ca.pem"),
        "{stderr}"
    );
    assert!(sb.read("systemctl.log").is_empty());
    // Enrollment that keeps failing stops too, before the unit is started.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("enroll.fail"), "100").unwrap();
    let out = sb.run(&sb.args(), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enrollment failed 3 times"));
    assert!(sb.read("systemctl.log").is_empty());
}

#[test]
fn it_refuses_a_wrong_ca_a_bad_download_and_bad_arguments() {
    let deb = format!("rampart-agent_{VERSION}_amd64.deb");
    type Setup = Box<dyn Fn(&Sandbox, &mut Vec<String>)>;
    let cases: Vec<(&str, Setup)> = vec![
        ("has fingerprint", Box::new(|_, a| a[5] = "ab".repeat(32))),
        (
            "SHA-256 mismatch for rampart-agent_",
            Box::new(move |sb, _| {
                std::fs::write(sb.path().join("srv").join(&deb), "tampered").unwrap();
            }),
        ),
        (
            "holds no SHA-256",
            Box::new(|sb, _| {
                std::fs::write(sb.path().join("srv/rampart-agent.sha256"), "<html>").unwrap();
            }),
        ),
        (
            "--rest must be https://",
            Box::new(|_, a| a[1] = "http://collector.example:8080".into()),
        ),
        (
            "--ca-fingerprint must be a SHA-256",
            Box::new(|_, a| a[5] = "abc".into()),
        ),
        (
            "unknown argument: --tokn",
            Box::new(|_, a| a.push("--tokn".into())),
        ),
        (
            "this is the unbuilt install.sh",
            Box::new(|sb, _| {
                std::fs::copy(
                    workspace().join("packaging/install.sh"),
                    sb.path().join("install.sh"),
                )
                .unwrap();
            }),
        ),
    ];
    for (why, setup) in cases {
        let sb = Sandbox::new();
        if why.contains("mismatch") {
            std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
            std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
        }
        let mut args = sb.args();
        setup(&sb, &mut args);
        let out = sb.run(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert_eq!(sb.read("pm.log"), "", "{why}");
        assert!(
            !sb.path().join("dest/usr/local/bin/rampart-agent").exists(),
            "{why}"
        );
        assert!(sb.enroll_args().is_empty(), "{why}");
        assert!(sb.read("systemctl.log").is_empty(), "{why}");
        if why == "has fingerprint" {
            assert!(
                !sb.read("curl.log").contains("pinned-ca"),
                "nothing is fetched once the CA is refused"
            );
        }
    }
}

#[test]
fn an_enrolled_host_is_not_enrolled_again() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/etc/rampart")).unwrap();
    std::fs::write(sb.path().join("dest/etc/rampart/agent.toml"), "x = 1\n").unwrap();
    let stderr = ok(&sb.run(&sb.args(), &[]));
    assert!(stderr.contains("already enrolled"), "{stderr}");
    assert!(sb.enroll_args().is_empty());
    assert!(sb.read("systemctl.log").contains("start --no-block"));
}

/// Labels reach `rampart-agent enroll` verbatim, one argument each, whatever they hold:
/// nothing in them is ever evaluated, split again or globbed.
#[test]
fn labels_with_shell_metacharacters_reach_the_agent_verbatim() {
    let sb = Sandbox::new();
    let t = sb.path().display().to_string();
    let hostile = [
        format!("cmd=$(touch {t}/pwned-cmd)"),
        format!("semi=x; touch {t}/pwned-semi"),
        format!("tick=`touch {t}/pwned-tick`"),
        "space=two words".to_string(),
        r#"quotes=it's "quoted""#.to_string(),
        "glob=*".to_string(),
        r"backslash=a\nb\c".to_string(),
    ];
    let mut args = sb.args();
    for l in &hostile {
        args.push("--label".into());
        args.push(l.clone());
    }
    let env_label = format!("env=$(touch {t}/pwned-env)");
    ok(&sb.run(&args, &[("RAMPART_LABELS", &env_label)]));
    let mut want: Vec<&str> = vec![&env_label, "project=web", "env=prod"];
    want.extend(hostile.iter().map(String::as_str));
    assert_eq!(sb.enroll_args(), want_enroll(&sb, &want));
    for f in ["pwned-cmd", "pwned-semi", "pwned-tick", "pwned-env"] {
        assert!(!sb.path().join(f).exists(), "{f}: a label was executed");
    }
    // A newline cannot be one argument of a "k=v,k=v" list: refused, nothing runs.
    let sb = Sandbox::new();
    let mut args = sb.args();
    args.extend(["--label".to_string(), "a=b\nc=d".to_string()]);
    let out = sb.run(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a label cannot contain a newline"),
        "{stderr}"
    );
    assert!(sb.read("curl.log").is_empty() && sb.enroll_args().is_empty());
}
