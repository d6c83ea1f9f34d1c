//! A real Debian 12 VM under qemu (tests/src/vm.rs) provisioned the way a fleet is: the
//! generic NoCloud template (cloud-init/nocloud/) as its user-data fetches the pinned CA
//! and install.sh from a collector on this host (REST over TLS), installs the agent's
//! .deb, enrolls and starts it; the collector then shows the VM by its host name with a
//! completed scan, and the handover gate answers for it. The VM is powered off at the end.
//!
//! The guest reaches nothing but the collector's two loopback ports (see tests/src/vm.rs).

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
    let (grpc, rest) = (free_port(), free_port());
    let config = format!(
        "rest_tls = true\nserver_names = [\"localhost\", \"127.0.0.1\", \"{HOST_IP}\"]\n\
         download_dir = \"{}\"\n",
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
    ]);
    let template = workspace().join("cloud-init/nocloud/user-data.yaml.tftpl");
    let user_data = render_template(&std::fs::read_to_string(template).unwrap(), &vars);
    let seed = vm::nocloud_seed(t.path(), &user_data, &host, &host);

    let mut vm = Vm::boot(&VmConfig {
        image,
        seed: &seed,
        forwards: &[rest, grpc],
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
