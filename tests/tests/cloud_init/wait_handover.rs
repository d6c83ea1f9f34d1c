//! `wait-handover` against the real gate, and labels and project reaching the agent
//! verbatim.

use super::*;

/// A small Debian 12 tree with critical failures (a second UID 0 account, an empty
/// password), so that block mode blocks the handover.
fn blocking_root(dir: &Path) {
    let w = |p: &str, t: &str| {
        let h = dir.join(p);
        std::fs::create_dir_all(h.parent().unwrap()).unwrap();
        std::fs::write(h, t).unwrap();
    };
    w(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w("etc/hostname", "fixture\n");
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/bash\nguest:x:1001:1001::/home/guest:/bin/bash\n",
    );
    w(
        "etc/shadow",
        "root:!:19500:0:99999:7:::\ntoor:!:19500:0:99999:7:::\nguest::19500:0:99999:7:::\n",
    );
    w("etc/group", "root:x:0:\nshadow:x:42:\nguest:x:1001:\n");
}

fn wait_handover(
    c: &rampart_tests::cluster::Collector,
    token: &str,
    vm: &str,
    timeout: u32,
) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
        .env("RAMPART_API", format!("http://{}", c.rest))
        .env("RAMPART_TOKEN", token)
        .env("RAMPART_VM", vm)
        .env("RAMPART_TIMEOUT", timeout.to_string())
        .env("RAMPART_INTERVAL", "1");
    cmd
}

/// The Terraform example's poller against a real collector: a refused token fails at
/// once, an unknown VM times out, a blocked VM keeps it waiting until an admin releases it.
#[test]
fn wait_handover_polls_the_real_gate_until_released() {
    use rampart_tests::cluster::{wait_for, Agent, Collector};
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    blocking_root(&root);
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["mode"] = serde_json::json!("block"));
    let prov = c.user("pipeline", "provisioner");

    let out = wait_handover(&c, "rpt_wrong", "i-0123", 30)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));

    let out = wait_handover(&c, &prov, "i-0123", 1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("timed out"), "{stderr}");

    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, log) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &["project=web"]);
    assert!(ok, "enroll: {log}");
    a.run(&[]);
    let id = a.agent_id();
    let mut poller = wait_handover(&c, &prov, &id, 120)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let gate = wait_for("a blocked gate", 60, || {
        let g = c.admin("GET", &format!("/api/v1/handover/{id}"), None);
        (g["state"] == "blocked").then_some(g)
    });
    // Blocked: the poller is still waiting (it polls every second).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        poller.try_wait().unwrap().is_none(),
        "poller stopped while blocked"
    );
    let scan = gate["scan_id"].as_str().unwrap();
    c.admin("POST", &format!("/api/v1/scans/{scan}/release"), None);
    let status = wait_for("the poller to finish", 30, || poller.try_wait().unwrap());
    let out = poller.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("may be handed over (released)"), "{stdout}");
    assert!(
        stdout.contains("blocked"),
        "it saw the blocked state: {stdout}"
    );
    assert!(!stdout.contains(&prov), "the token is never printed");
    a.stop();
}

/// Labels and the project reach `rampart-agent enroll` verbatim, one argument each,
/// whatever they hold (values that would end a shell quote or the YAML block included):
/// the rendered user-data stays valid, and nothing in a value ever runs.
#[test]
fn hostile_labels_and_project_reach_the_agent_verbatim_and_never_run() {
    let sb = Sandbox::new();
    let t = sb.path().display().to_string();
    let project = format!("web';touch {t}/pwned-project;'");
    let labels = [
        format!("a=$(touch {t}/pwned-cmd)"),
        format!("b=x';touch {t}/pwned-quote;'y"),
        format!("c=`touch {t}/pwned-tick`"),
        "d=two words \"and\" a \\ backslash".to_string(),
        "e=*".to_string(),
    ];
    let mut vars = pinned_vars();
    vars.insert("terraform_project", project.clone());
    vars.insert("labels", labels.join(","));
    let out = sb.run(&vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let args: Vec<String> = sb.read("enroll.args").lines().map(String::from).collect();
    let mut want = vec!["--label".to_string(), format!("project={project}")];
    for l in &labels {
        want.extend(["--label".to_string(), l.clone()]);
    }
    assert_eq!(args[7..], want[..]);
    for f in ["pwned-project", "pwned-cmd", "pwned-quote", "pwned-tick"] {
        assert!(!sb.path().join(f).exists(), "{f}: a value was executed");
    }
    // A value with a newline and YAML cannot add a key to the cloud-config.
    let mut vars = pinned_vars();
    vars.insert(
        "labels",
        "a=b\nruncmd:\n  - [touch, /tmp/rampart-pwned]".to_string(),
    );
    let rendered = render(&std::fs::read_to_string(template("aws")).unwrap(), &vars);
    assert!(!rendered.contains("rampart-pwned"), "{rendered}");
    assert_eq!(rendered.matches("\nruncmd:").count(), 1);
    let file = sb.path().join("hostile.yaml");
    std::fs::write(&file, &rendered).unwrap();
    assert!(cloud_init_schema(&file).status.success());
    // ... and it reaches install.sh as one label, which refuses it by name.
    let out = sb.run(&vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a label cannot contain a newline"),
        "{stderr}"
    );
}

/// The poller trusts an answer only when it is about the VM it asked for.
#[test]
fn wait_handover_refuses_an_answer_about_another_vm() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("api/v1/handover");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("i-0123"),
        r#"{"agent_id":"ag-1","instance_id":"i-other","hostname":"x","allowed":true,"state":"allowed","reasons":[],"scan_id":null}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("i-0456"),
        r#"{"agent_id":"ag-2","instance_id":"i-0456","hostname":"x","allowed":true,"state":"allowed","reasons":[],"scan_id":null}"#,
    )
    .unwrap();
    let port = rampart_tests::cluster::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(t.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = |vm: &str| {
        Command::new("sh")
            .arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
            .env("RAMPART_API", format!("http://127.0.0.1:{port}"))
            .env("RAMPART_TOKEN", "rpt_secret")
            .env("RAMPART_VM", vm)
            .env("RAMPART_TIMEOUT", "20")
            .env("RAMPART_INTERVAL", "1")
            .output()
            .unwrap()
    };
    // Wait for the server, with the good answer.
    let mut ok = run("i-0456");
    for _ in 0..20 {
        if ok.status.code() == Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        ok = run("i-0456");
    }
    let other = run("i-0123");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("answered for another VM"),
        "{other:?}"
    );
}

/// The handover poller sends its token only over https, or plain http to this machine.
#[test]
fn wait_handover_refuses_plain_http_off_the_machine() {
    for api in [
        "http://collector.example:8080",
        "http://127.0.0.1.evil.example",
        "ftp://x",
    ] {
        let out = Command::new("sh")
            .arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
            .env("RAMPART_API", api)
            .env("RAMPART_TOKEN", "rpt_secret")
            .env("RAMPART_VM", "i-0123")
            .env("RAMPART_TIMEOUT", "1")
            .env("RAMPART_INTERVAL", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{api}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("must be https://"),
            "{api}"
        );
    }
}
