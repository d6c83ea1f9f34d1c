//! A real Debian 12 VM under qemu (tests/src/vm.rs) provisioned the way a fleet is: the
//! generic NoCloud template (cloud-init/nocloud/) as its user-data fetches the pinned CA
//! and install.sh from a collector on this host (REST over TLS), installs the agent's
//! .deb, enrolls and starts it; the collector then shows the VM by its host name with a
//! completed scan, and the handover gate answers for it. The same user-data gives the
//! collector's SSH key to a scan user it makes; the VM, registered as an SSH target,
//! is then scanned over SSH too (its sshd reached through a qemu host forward), with the
//! results the agent found. The VM is powered off at the end.
//!
//! The guest reaches nothing but the collector's two loopback ports (see tests/src/vm.rs);
//! this host reaches the guest's port 22 only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_tests::cluster::{free_port, Collector};
use rampart_tests::vm::{self, Vm, VmConfig, HOST_IP};
use rampart_tests::{packages, render_template, workspace};
use serde_json::Value;

/// The SHA-256 that packaging/build.sh recorded for `name` in SHA256SUMS.
fn recorded_sha256(dir: &Path, name: &str) -> String {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
    sums.lines()
        .find_map(|l| {
            let (sum, file) = l.split_once("  ")?;
            (file.trim() == name).then(|| sum.to_string())
        })
        .unwrap_or_else(|| panic!("SHA256SUMS lists no {name}"))
}

/// The user the VM's user-data makes for scans over SSH.
const SCAN_USER: &str = "rampart-scan";

/// The ED25519 host key fingerprint cloud-init printed on the console, if it did
/// (`256 SHA256:… root@host (ED25519)` between its fingerprint markers).
fn ed25519_fingerprint(console: &str) -> Option<String> {
    let block = console.split("BEGIN SSH HOST KEY FINGERPRINTS").nth(1)?;
    let block = block.split("END SSH HOST KEY FINGERPRINTS").next()?;
    block
        .lines()
        .filter(|l| l.trim_end().ends_with("(ED25519)"))
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("SHA256:")))
        .map(str::to_string)
}

/// The agent the collector knows by this host name, if any.
fn agent_named(c: &Collector, host: &str) -> Option<Value> {
    let agents = c.agents();
    agents
        .as_array()?
        .iter()
        .find(|a| a["hostname"] == host)
        .cloned()
}

#[test]
fn a_debian_12_vm_installs_the_agent_via_cloud_init_enrolls_and_is_scanned() {
    let image = vm::image();
    let packages = packages();
    let t = tempfile::tempdir().unwrap();
    let (grpc, rest, ssh) = (free_port(), free_port(), free_port());
    // The VM's sshd is reached on a loopback port of this host: allowed here only.
    let config = format!(
        "rest_tls = true\nserver_names = [\"localhost\", \"127.0.0.1\", \"{HOST_IP}\"]\n\
         download_dir = \"{}\"\nssh_allow_loopback = true\nssh_connect_timeout_secs = 60\n",
        packages.display()
    );
    let c = Collector::start_with(
        &t.path().join("collector"),
        Some((grpc, rest)),
        None,
        Some(&config),
    );
    assert!(c.rest_ca.is_some(), "the collector serves REST over TLS");
    let token = c.enrollment_token("vm-test", 1, 3600);
    let ssh_key = c.ssh_public_key();

    // A host name of this run only: the collector must show this VM, not an old one.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let host = format!("rampart-vm-{}-{nanos:x}", std::process::id());
    let vars = BTreeMap::from([
        ("download_base", format!("https://{HOST_IP}:{rest}")),
        ("install_sh_sha256", recorded_sha256(packages, "install.sh")),
        ("collector_url", format!("https://{HOST_IP}:{grpc}")),
        ("ca_fingerprint", c.fingerprint.clone()),
        ("enrollment_token", token),
        ("terraform_project", "vm-test".to_string()),
        ("labels", "suite=vm".to_string()),
        ("ssh_user", SCAN_USER.to_string()),
        ("ssh_public_key", ssh_key),
    ]);
    let template = workspace().join("cloud-init/nocloud/user-data.yaml.tftpl");
    let user_data = render_template(&std::fs::read_to_string(template).unwrap(), &vars);
    let seed = vm::nocloud_seed(t.path(), &user_data, &host, &host);

    let mut vm = Vm::boot(&VmConfig {
        image,
        seed: &seed,
        forwards: &[rest, grpc],
        host_forwards: &[(ssh, 22)],
        dir: t.path(),
        memory_mb: 1024,
        cpus: 2,
    });
    println!("vm {host}: serial console in {}", vm.serial_log().display());

    let agent = vm.wait_for("the VM's agent to enroll", 600, || agent_named(&c, &host));
    let enrolled = vm.started.elapsed().as_secs();
    println!("boot to enrolled: {enrolled} s");
    assert_eq!(agent["project"], "vm-test", "{agent}");
    assert_eq!(agent["revoked"], false, "{agent}");
    let id = agent["id"].as_str().expect("agent id").to_string();

    // Enrollment creates a scan (scan on provision); the agent runs it.
    let scan = vm.wait_for("a completed scan of the VM", 600, || {
        let scans = c.admin("GET", &format!("/api/v1/scans?agent_id={id}"), None);
        let scans = scans["scans"].as_array()?.clone();
        if let Some(f) = scans.iter().find(|s| s["status"] == "failed") {
            panic!("the VM's scan failed: {f}");
        }
        scans.into_iter().find(|s| s["status"] == "completed")
    });
    println!(
        "boot to scan complete: {} s (score {}, {} passed, {} failed)",
        vm.started.elapsed().as_secs(),
        scan["score"],
        scan["passed"],
        scan["failed"]
    );
    assert_eq!(scan["hostname"], host.as_str(), "{scan}");
    assert!(scan["score"].is_number(), "{scan}");
    assert!(scan["passed"].as_u64().unwrap() > 0, "{scan}");

    // The handover gate answers for the VM (audit mode, the default: allowed).
    let gate = c.admin("GET", &format!("/api/v1/handover/{id}"), None);
    assert!(gate["allowed"].is_boolean(), "{gate}");
    assert!(gate["state"].is_string(), "{gate}");
    if gate["allowed"] == false {
        assert!(
            !gate["reasons"].as_array().unwrap().is_empty(),
            "a closed gate says why: {gate}"
        );
    }
    println!("handover gate: {gate}");

    // The same VM as an SSH target: the user-data made the scan user with the
    // collector's key. The host key is pinned from the fingerprints cloud-init printed
    // on the console when it printed them, else trusted on first use.
    let pinned = ed25519_fingerprint(&vm.serial());
    let mut target = serde_json::json!({
        "host": "127.0.0.1", "port": ssh, "user": SCAN_USER,
        "project": "vm-test", "instance_id": format!("{host}-ssh"),
    });
    if let Some(fp) = &pinned {
        target["host_key"] = fp.clone().into();
    }
    println!(
        "ssh target, host key {}",
        pinned.as_deref().unwrap_or("trusted on first use")
    );
    let reg = c.admin("POST", "/api/v1/targets", Some(target));
    let target_id = reg["target"]["id"].as_str().expect("target id").to_string();
    let scan_id = reg["scan_id"]
        .as_str()
        .expect("a provision scan")
        .to_string();
    let over_ssh = vm.wait_for("a completed scan of the VM over SSH", 600, || {
        let s = c.admin("GET", &format!("/api/v1/scans/{scan_id}"), None);
        match s["scan"]["status"].as_str() {
            Some("completed") => Some(s),
            Some("failed" | "cancelled") => panic!("the scan over SSH did not complete: {s}"),
            _ => None,
        }
    });
    println!(
        "scan over SSH complete {} s after boot (score {})",
        vm.started.elapsed().as_secs(),
        over_ssh["scan"]["score"]
    );
    assert_eq!(over_ssh["scan"]["trigger"], "ssh", "{over_ssh}");
    assert_eq!(over_ssh["scan"]["agent_id"], target_id.as_str());
    assert_eq!(
        over_ssh["scan"]["hostname"],
        host.as_str(),
        "the VM's own name"
    );
    let tg = c.admin("GET", &format!("/api/v1/targets/{target_id}"), None);
    assert!(
        tg["host_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("SHA256:")),
        "{tg}"
    );
    // Same engine, same VM, same profile: the results the agent reported.
    let by_agent = c.admin(
        "GET",
        &format!("/api/v1/scans/{}", scan["id"].as_str().unwrap()),
        None,
    );
    let statuses = |v: &Value| -> BTreeMap<String, String> {
        v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().into(),
                    r["status"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let (agent_statuses, ssh_statuses) = (statuses(&by_agent), statuses(&over_ssh));
    assert_eq!(over_ssh["scan"]["profile"], by_agent["scan"]["profile"]);
    assert!(!ssh_statuses.is_empty());
    let differ: Vec<String> = agent_statuses
        .iter()
        .filter(|(id, st)| ssh_statuses.get(*id) != Some(*st))
        .map(|(id, st)| format!("{id}: agent {st}, over SSH {:?}", ssh_statuses.get(id)))
        .collect();
    assert!(
        differ.is_empty() && agent_statuses.len() == ssh_statuses.len(),
        "the agent and the scan over SSH disagree: {differ:#?}"
    );

    let clean = vm.power_off(180);
    println!(
        "powered off {} s after boot (by the guest: {clean})",
        vm.started.elapsed().as_secs()
    );
    assert!(
        clean,
        "the guest did not power off on the ACPI power button\n{}",
        vm.serial_tail(40)
    );
}

#[test]
fn a_dropped_vm_leaves_no_qemu_behind() {
    let image = vm::image();
    let t = tempfile::tempdir().unwrap();
    let seed = vm::nocloud_seed(t.path(), "#cloud-config\n", "drop-test", "drop-test");
    let mut vm = Vm::boot(&VmConfig {
        image,
        seed: &seed,
        forwards: &[free_port()],
        host_forwards: &[],
        dir: t.path(),
        memory_mb: 256,
        cpus: 1,
    });
    let pid = vm.pid().expect("qemu runs");
    // qemu answers on its QMP socket once it is up; then a panic unwinds through Drop.
    vm.wait_for("qemu to start", 60, || {
        t.path().join("qmp.sock").exists().then_some(())
    });
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _vm = vm;
        panic!("a failing test");
    }));
    assert!(unwound.is_err());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "qemu {pid} outlived its Vm"
    );
}
