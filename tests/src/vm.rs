//! Real Debian 12 VMs under qemu for end-to-end tests: the cached image
//! (tests/fixtures/build-vm-image.sh), a NoCloud seed disk, and a booted VM whose only
//! way out is to named loopback ports of this host.
//!
//! The guest gets qemu's user network with `restrict=on`: it can reach nothing but the
//! `guestfwd` relays, each of which connects `10.0.2.2:PORT` in the guest to
//! `127.0.0.1:PORT` here (one `socat` per connection). `hostfwd` ports go the other
//! way: this host's `127.0.0.1:PORT` to a port of the guest (its sshd). The host has no working KVM for
//! guests, so qemu runs with TCG; boots take tens of seconds, so everything polls.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::workspace;

/// The address under which the guest reaches this host's forwarded loopback ports.
pub const HOST_IP: &str = "10.0.2.2";

/// A built VM image: an ext4 root filesystem image plus the kernel and initrd to boot it.
#[derive(Clone, Debug)]
pub struct Image {
    pub root: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The cached Debian 12 VM image. `RAMPART_VM_IMAGE` names an already built one
/// (scripts/test.sh sets it); otherwise tests/fixtures/build-vm-image.sh builds it.
pub fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = match std::env::var_os("RAMPART_VM_IMAGE") {
            Some(p) => PathBuf::from(p),
            None => {
                let started = Instant::now();
                let out = Command::new("bash")
                    .arg(workspace().join("tests/fixtures/build-vm-image.sh"))
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run build-vm-image.sh");
                assert!(
                    out.status.success(),
                    "building the VM image failed (tests/fixtures/build-vm-image.sh, as root)"
                );
                println!("vm image ready after {} s", started.elapsed().as_secs());
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        let image = Image {
            root: dir.join("root.raw"),
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
        };
        for f in [&image.root, &image.kernel, &image.initrd] {
            assert!(
                f.is_file(),
                "the VM image in {} lacks {}: build it with \
                 `bash tests/fixtures/build-vm-image.sh` and set RAMPART_VM_IMAGE to the \
                 directory it prints",
                dir.display(),
                f.display()
            );
        }
        image
    })
}

/// Runs a helper program, failing with its output and a hint at the package it needs.
fn run(program: &str, args: &[&str], package: &str) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): apt-get install {package} (scripts/test.sh does)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a NoCloud seed disk (vfat, labelled `cidata`) holding `user-data` and a
/// `meta-data` with this instance id and host name; returns its path.
pub fn nocloud_seed(dir: &Path, user_data: &str, instance_id: &str, hostname: &str) -> PathBuf {
    let files = dir.join("seed");
    std::fs::create_dir_all(&files).unwrap();
    let ud = files.join("user-data");
    let md = files.join("meta-data");
    std::fs::write(&ud, user_data).unwrap();
    std::fs::write(
        &md,
        format!("instance-id: {instance_id}\nlocal-hostname: {hostname}\n"),
    )
    .unwrap();
    let img = dir.join("seed.img");
    let _ = std::fs::remove_file(&img);
    let img_s = img.to_str().unwrap();
    run(
        "mkfs.vfat",
        &["-n", "CIDATA", "-C", img_s, "2048"],
        "dosfstools",
    );
    let (ud_s, md_s) = (ud.to_str().unwrap(), md.to_str().unwrap());
    run("mcopy", &["-i", img_s, ud_s, md_s, "::"], "mtools");
    img
}

/// What to boot.
pub struct VmConfig<'a> {
    pub image: &'a Image,
    /// The NoCloud seed disk (see `nocloud_seed`).
    pub seed: &'a Path,
    /// Loopback ports of this host the guest may reach, as `10.0.2.2:PORT`.
    pub forwards: &'a [u16],
    /// Ports of the guest this host reaches: `(host, guest)` connects
    /// `127.0.0.1:host` here to the guest's `guest` port.
    pub host_forwards: &'a [(u16, u16)],
    /// Where the overlay disk, QMP socket and serial log go (a test's temp dir).
    pub dir: &'a Path,
    pub memory_mb: u32,
    pub cpus: u32,
}

/// A running qemu. Dropping it kills qemu, so a panicking test leaves no VM behind.
pub struct Vm {
    child: Option<Child>,
    qmp: PathBuf,
    serial: PathBuf,
    /// When qemu was started.
    pub started: Instant,
}

impl Vm {
    /// Boots the image from a copy-on-write overlay (the cached image never changes).
    pub fn boot(cfg: &VmConfig) -> Vm {
        let overlay = cfg.dir.join("overlay.qcow2");
        let _ = std::fs::remove_file(&overlay);
        run(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                "-b",
                cfg.image.root.to_str().unwrap(),
                "-F",
                "raw",
                overlay.to_str().unwrap(),
            ],
            "qemu-utils",
        );
        let qmp = cfg.dir.join("qmp.sock");
        let serial = cfg.dir.join("serial.log");
        let mut netdev = "user,id=net0,restrict=on,host=10.0.2.1".to_string();
        for port in cfg.forwards {
            netdev.push_str(&format!(
                ",guestfwd=tcp:{HOST_IP}:{port}-cmd:socat - TCP:127.0.0.1:{port}"
            ));
        }
        for (host, guest) in cfg.host_forwards {
            netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        let drive = |file: &Path, format: &str, extra: &str| {
            format!("file={},if=virtio,format={format}{extra}", file.display())
        };
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-accel", "tcg", "-cpu", "max", "-machine", "q35"])
            .args(["-m", &cfg.memory_mb.to_string()])
            .args(["-smp", &cfg.cpus.to_string()])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()))
            .arg("-kernel")
            .arg(&cfg.image.kernel)
            .arg("-initrd")
            .arg(&cfg.image.initrd)
            .args(["-append", "root=/dev/vda rw console=ttyS0 quiet"])
            .arg("-drive")
            .arg(drive(&overlay, "qcow2", ""))
            .arg("-drive")
            .arg(drive(cfg.seed, "raw", ",readonly=on"))
            .args(["-netdev", &netdev, "-device", "virtio-net-pci,netdev=net0"])
            .args(["-device", "virtio-rng-pci"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(cfg.dir.join("qemu.err")).unwrap(),
            ));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start qemu-system-x86_64 ({e}): apt-get install -t bookworm-backports \
                 qemu-system-x86 (scripts/test.sh does)"
            )
        });
        Vm {
            child: Some(child),
            qmp,
            serial,
            started: Instant::now(),
        }
    }

    /// qemu's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Where the guest's serial console is logged.
    pub fn serial_log(&self) -> &Path {
        &self.serial
    }

    /// The serial console so far.
    pub fn serial(&self) -> String {
        let raw = std::fs::read(&self.serial).unwrap_or_default();
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// The last `n` lines of the serial console, for failure messages.
    pub fn serial_tail(&self, n: usize) -> String {
        let s = self.serial();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Panics (with the console's tail) if qemu has exited.
    pub fn assert_running(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!(
                    "qemu exited ({st}) after {} s\n--- serial console ---\n{}",
                    self.started.elapsed().as_secs(),
                    self.serial_tail(60)
                );
            }
        }
    }

    /// Polls `f` every 500 ms until it returns `Some`; panics with the console's tail
    /// if qemu exits or `secs` pass.
    pub fn wait_for<T>(&mut self, what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what} ({} s since boot); serial log {}\n\
                 --- serial console ---\n{}",
                self.started.elapsed().as_secs(),
                self.serial.display(),
                self.serial_tail(60)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Sends a QMP command (after the capabilities handshake).
    fn qmp(&self, command: &str) -> std::io::Result<()> {
        let s = UnixStream::connect(&self.qmp)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut w = s;
        let mut line = String::new();
        r.read_line(&mut line)?; // greeting
        for cmd in ["qmp_capabilities", command] {
            writeln!(w, "{{\"execute\":\"{cmd}\"}}")?;
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.contains("\"return\"") {
                    break;
                }
                if line.contains("\"error\"") {
                    return Err(std::io::Error::other(line.clone()));
                }
            }
        }
        Ok(())
    }

    /// Presses the ACPI power button and waits up to `secs` for the guest to shut down;
    /// kills qemu after that. Returns whether the guest shut down by itself.
    pub fn power_off(&mut self, secs: u64) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let asked = self.qmp("system_powerdown").is_ok();
        let deadline = Instant::now() + Duration::from_secs(secs);
        while asked && Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return st.success();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Waits for qemu to exit by itself (e.g. the guest powered off).
    pub fn wait_exit(&mut self, secs: u64) -> Option<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
