//! A real Debian 12 VM under qemu (tests/src/vm.rs): boots the cached image with a
//! NoCloud seed, and its cloud-init reaches this host's loopback services through the
//! restricted user network, and nothing else.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rampart_tests::vm::{self, Vm, VmConfig, HOST_IP};

/// A loopback HTTP listener that records the request lines it is sent.
fn recorder() -> (u16, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let mut line = String::new();
            let mut r = BufReader::new(&conn);
            if r.read_line(&mut line).is_ok() {
                s.lock().unwrap().push(line.trim().to_string());
            }
            let _ = (&conn).write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        }
    });
    (port, seen)
}

#[test]
fn a_vm_boots_from_a_nocloud_seed_and_reaches_only_forwarded_loopback_ports() {
    let image = vm::image();
    let t = tempfile::tempdir().unwrap();
    let (port, seen) = recorder();
    // A listener the guest is not given: it must not be reachable.
    let (hidden, hidden_seen) = recorder();
    let host = format!("rampart-vm-{}", std::process::id());
    let user_data = format!(
        "#cloud-config\nruncmd:\n  - [sh, -c, 'curl -fsS -m 60 \"http://{HOST_IP}:{port}/hello/$(hostname)\"; \
         if curl -fsS -m 5 http://{HOST_IP}:{hidden}/ ; then r=reached; else r=unreachable; fi; \
         curl -fsS -m 60 \"http://{HOST_IP}:{port}/hidden/$r\"']\n"
    );
    let seed = vm::nocloud_seed(t.path(), &user_data, &host, &host);
    let mut vm = Vm::boot(&VmConfig {
        image,
        seed: &seed,
        forwards: &[port],
        dir: t.path(),
        memory_mb: 1024,
        cpus: 2,
    });
    println!("serial console: {}", vm.serial_log().display());
    let hello = format!("GET /hello/{host} ");
    vm.wait_for("the guest's first request", 600, || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with(&hello))
            .then_some(())
    });
    println!(
        "boot to first request: {} s",
        vm.started.elapsed().as_secs()
    );
    let verdict = vm.wait_for("the guest's verdict on the hidden port", 120, || {
        seen.lock()
            .unwrap()
            .iter()
            .find_map(|l| l.strip_prefix("GET /hidden/").map(|v| v.to_string()))
    });
    assert!(verdict.starts_with("unreachable "), "{verdict}");
    assert!(hidden_seen.lock().unwrap().is_empty());
    let clean = vm.power_off(120);
    println!(
        "powered off after {} s (clean: {clean})",
        vm.started.elapsed().as_secs()
    );
    assert!(
        clean,
        "the guest did not power off on the ACPI button\n{}",
        vm.serial_tail(40)
    );
}
