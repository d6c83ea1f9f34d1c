//! Agentless scans over SSH against a real OpenSSH server (`rampart_tests::sshd`):
//! the collector's key pair and `GET /api/v1/ssh`; a target registered through the
//! API is scanned on registration and on request, and its results equal a local
//! `check` of the same host; the host key is trusted on first use and audited; a
//! pinned key that differs, a user without passwordless sudo, a closed port, a
//! server that never answers and an agent that hangs each end as a failed scan with
//! its reason, within their time limits; a host key that changes after it was trusted
//! fails the scan until a person pins the new one; an agent for another machine,
//! output over the cap and the limit on scans at once hold; nothing is left on the
//! target.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rampart_tests::agent_json;
use rampart_tests::cluster::{free_port, Collector};
use rampart_tests::sshd::{stage_agent, Sshd, TestUser};
use serde_json::{json, Value};

/// Waits for the scan `id` to be final and returns it with its results.
fn final_scan(c: &Collector, id: &str, secs: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = c.admin("GET", &format!("/api/v1/scans/{id}"), None);
        if matches!(
            s["scan"]["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return s;
        }
        assert!(
            Instant::now() < until,
            "scan {id} not final after {secs} s: {s}\ncollector: {}",
            c.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn register(c: &Collector, body: Value) -> (String, String) {
    let v = c.admin("POST", "/api/v1/targets", Some(body));
    (
        v["target"]["id"].as_str().unwrap().to_string(),
        v["scan_id"].as_str().expect("a provision scan").to_string(),
    )
}

fn failure(s: &Value) -> String {
    assert_eq!(s["scan"]["status"], "failed", "{s}");
    s["scan"]["failure_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn scans_over_ssh() {
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("download");
    stage_agent(&dl);
    let config = format!(
        "download_dir = \"{}\"\nssh_allow_loopback = true\nssh_connect_timeout_secs = 5\nssh_step_timeout_secs = 30\nssh_check_timeout_secs = 300\n",
        dl.display()
    );
    let c = Collector::start_with(&t.path().join("collector"), None, None, Some(&config));

    // The key pair: made on first start, private, its public half served.
    let key_file = t.path().join("collector/ssh/id_ed25519");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let k = c.admin("GET", "/api/v1/ssh", None);
    let public = k["public_key"].as_str().unwrap().to_string();
    assert!(public.starts_with("ssh-ed25519 "), "{k}");

    let nosudo = TestUser::create("rampartns");
    let mut sshd = Sshd::start(&public, &["root", &nosudo.name]);

    // A successful scan, trusting the host key on first use.
    let started = Instant::now();
    let (target, scan) = register(
        &c,
        json!({"host": "127.0.0.1", "port": sshd.port, "user": "root", "project": "web"}),
    );
    let s = final_scan(&c, &scan, 240);
    assert_eq!(
        s["scan"]["status"],
        "completed",
        "{s}\nsshd: {}",
        sshd.log()
    );
    assert_eq!(s["scan"]["trigger"], "ssh");
    eprintln!("scan over SSH: {:?}", started.elapsed());
    let profile = s["scan"]["profile"].as_str().unwrap().to_string();
    let local = agent_json(&["check", "--format", "json", "--profile", &profile], 0);
    let statuses = |v: &Value, id: &str, st: &str| -> BTreeMap<String, String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[id].as_str().unwrap().into(),
                    r[st].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let remote = statuses(&s, "id", "status");
    let here = statuses(&local, "id", "status");
    assert_eq!(remote.len(), here.len());
    let differ: Vec<_> = here
        .iter()
        .filter(|(id, st)| remote.get(*id) != Some(st))
        .map(|(id, st)| format!("{id}: local {st}, over ssh {:?}", remote.get(id)))
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    let tg = c.admin("GET", &format!("/api/v1/targets/{target}"), None);
    assert_eq!(tg["host_key"], sshd.host_key.as_str(), "{tg}");
    assert_eq!(tg["host_key_pinned"], false);
    let audit = c
        .admin("GET", "/api/v1/audit?per_page=200", None)
        .to_string();
    for action in ["target.register", "target.host_key_recorded"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }

    // A scan on request, like an agent's.
    let v = c.admin("POST", "/api/v1/scans", Some(json!({"agent_id": target})));
    let again = final_scan(&c, v[0]["id"].as_str().unwrap(), 240);
    assert_eq!(again["scan"]["status"], "completed", "{again}");

    // A pinned key that is not the host's.
    let other = rampart_tests::sshd::host_key(&t.path().join("other_key"));
    let (_, scan) = register(
        &c,
        json!({"host": "127.0.0.1", "port": sshd.port, "user": "root", "host_key": other}),
    );
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(why.contains("host key mismatch"), "{why}");
    assert!(why.contains(&sshd.host_key), "{why}");

    // A user without passwordless sudo.
    let (_, scan) = register(
        &c,
        json!({"host": "127.0.0.1", "port": sshd.port, "user": nosudo.name, "host_key": sshd.host_key}),
    );
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(why.contains("sudo needs a password"), "{why}");

    // A user the server does not let in.
    let (_, scan) = register(
        &c,
        json!({"host": "127.0.0.1", "port": sshd.port, "user": "daemon"}),
    );
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(
        why.contains("authentication refused for user daemon"),
        "{why}"
    );

    // A closed port.
    let (_, scan) = register(&c, json!({"host": "127.0.0.1", "port": free_port()}));
    let why = failure(&final_scan(&c, &scan, 30));
    assert!(why.contains("connection refused"), "{why}");

    // The cloud metadata service: never reached, whoever registers it.
    let (_, scan) = register(&c, json!({"host": "169.254.169.254", "port": 22}));
    let why = failure(&final_scan(&c, &scan, 30));
    assert!(
        why.contains("169.254.169.254, a link-local address, which SSH scans may not reach"),
        "{why}"
    );

    // A server that accepts and never speaks: the connect limit (5 s) ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let (_, scan) = register(&c, json!({"host": "127.0.0.1", "port": port}));
    let why = failure(&final_scan(&c, &scan, 30));
    assert!(
        why.contains("timed out after 5 s while connecting"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    drop(silent);

    // The host key trusted on first use changes (a reinstalled host, or a man in the
    // middle): the scan fails saying so, the audit log has it, and the key on record
    // stays the first one until a person changes it.
    let first_key = sshd.host_key.clone();
    let new_key = sshd.change_host_key();
    let v = c.admin("POST", "/api/v1/scans", Some(json!({"agent_id": target})));
    let why = failure(&final_scan(&c, v[0]["id"].as_str().unwrap(), 60));
    assert!(why.contains("host key mismatch"), "{why}");
    assert!(why.contains(&first_key) && why.contains(&new_key), "{why}");
    let tg = c.admin("GET", &format!("/api/v1/targets/{target}"), None);
    assert_eq!(tg["host_key"], first_key.as_str(), "{tg}");
    let audit = c
        .admin("GET", "/api/v1/audit?per_page=200", None)
        .to_string();
    assert!(audit.contains("target.host_key_mismatch"), "{audit}");
    // A person accepts the new key: pinned, the next scan completes.
    c.admin(
        "PUT",
        &format!("/api/v1/targets/{target}"),
        Some(json!({"host": "127.0.0.1", "port": sshd.port, "user": "root", "host_key": new_key})),
    );
    let v = c.admin("POST", "/api/v1/scans", Some(json!({"agent_id": target})));
    let again = final_scan(&c, v[0]["id"].as_str().unwrap(), 240);
    assert_eq!(again["scan"]["status"], "completed", "{again}");

    // Removing a target: audited, no longer listed.
    c.admin("DELETE", &format!("/api/v1/targets/{target}"), None);
    let list = c.admin("GET", "/api/v1/targets", None);
    assert!(!list.to_string().contains(&target), "{list}");
    let (code, _) = c.api(
        "POST",
        "/api/v1/scans",
        Some(&c.admin),
        Some(json!({"agent_id": target})),
    );
    assert_ne!(code, 200, "a removed target is not scanned");
    assert_eq!(sshd.leftovers(), Vec::<String>::new(), "left on the target");
}

#[test]
fn a_hung_agent_fails_within_its_limit() {
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("download");
    std::fs::create_dir_all(&dl).unwrap();
    // An agent that never finishes.
    let agent = dl.join("rampart-agent");
    std::fs::write(&agent, "#!/bin/sh\nexec sleep 600\n").unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "download_dir = \"{}\"\nssh_allow_loopback = true\nssh_check_timeout_secs = 2\n",
        dl.display()
    );
    let c = Collector::start_with(&t.path().join("collector"), None, None, Some(&config));
    let public = c.ssh_public_key();
    let sshd = Sshd::start(&public, &["root"]);
    let started = Instant::now();
    let (_, scan) = register(
        &c,
        json!({"host": "127.0.0.1", "port": sshd.port, "user": "root"}),
    );
    let why = failure(&final_scan(&c, &scan, 30));
    assert!(
        why.contains("timed out after 2 s while the agent ran"),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(sshd.leftovers(), Vec::<String>::new(), "left on the target");
}

/// Writes an executable "agent" into the download directory.
fn fake_agent(dl: &Path, bytes: &[u8]) {
    let agent = dl.join("rampart-agent");
    std::fs::write(&agent, bytes).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The bounds, against a real server: an agent built for another machine, output over
/// the cap, an agent that exits with an error, and no more scans at once than the
/// limit.
#[test]
fn bounds_hold_against_a_real_server() {
    let t = tempfile::tempdir().unwrap();
    let dl = t.path().join("download");
    std::fs::create_dir_all(&dl).unwrap();
    let config = format!(
        "download_dir = \"{}\"\nssh_allow_loopback = true\nssh_max_output_bytes = 1048576\n\
         ssh_max_concurrent_scans = 1\n",
        dl.display()
    );
    let c = Collector::start_with(&t.path().join("collector"), None, None, Some(&config));
    let public = c.ssh_public_key();
    let sshd = Sshd::start(&public, &["root"]);
    let target = || json!({"host": "127.0.0.1", "port": sshd.port, "user": "root", "host_key": sshd.host_key});

    // An agent for aarch64 (its ELF header says so) is never run on this x86_64 host.
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(64, 0);
    elf[18] = 183;
    fake_agent(&dl, &elf);
    let (_, scan) = register(&c, target());
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(
        why.contains("unsupported architecture x86_64") && why.contains("aarch64"),
        "{why}"
    );

    // Output over the cap (1 MiB here) ends the scan; nothing of it is kept.
    fake_agent(&dl, b"#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' a\n");
    let (_, scan) = register(&c, target());
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(why.contains("output is over 1048576 bytes"), "{why}");

    // An agent that fails: its exit and what it said.
    fake_agent(
        &dl,
        b"#!/bin/sh\necho 'cannot read /etc/shadow' >&2\nexit 3\n",
    );
    let (_, scan) = register(&c, target());
    let why = failure(&final_scan(&c, &scan, 60));
    assert!(
        why.contains("the agent exited with")
            && why.contains("3")
            && why.contains("cannot read /etc/shadow"),
        "{why}"
    );

    // Three targets at once with a limit of one: never two running together.
    fake_agent(&dl, b"#!/bin/sh\nsleep 2\necho 'not a scan document'\n");
    let scans: Vec<String> = (0..3).map(|_| register(&c, target()).1).collect();
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let states: Vec<String> = scans
            .iter()
            .map(|id| {
                c.admin("GET", &format!("/api/v1/scans/{id}"), None)["scan"]["status"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        most = most.max(states.iter().filter(|s| *s == "running").count());
        if states.iter().all(|s| s == "failed") {
            break;
        }
        assert!(Instant::now() < until, "not done: {states:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(most, 1, "at most ssh_max_concurrent_scans run at once");
    for id in &scans {
        let why = failure(&final_scan(&c, id, 5));
        assert!(why.contains("not a scan document"), "{why}");
    }
    assert_eq!(sshd.leftovers(), Vec::<String>::new(), "left on the target");
}
