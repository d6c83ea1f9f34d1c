//! The collector's OCI image (`packaging/oci/build.sh`) and a private podman to run it.
//!
//! [`Podman`] keeps everything in a temporary directory — image storage, container
//! state, network definitions — through its own `containers.conf` and `storage.conf`
//! (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`), so a test neither reads nor changes
//! the host's containers, images or volumes, and removes what it made when dropped,
//! failed test or not. The settings are the ones that work for root on a plain
//! Debian 12 machine and in a sandbox alike:
//! - storage driver `vfs`: no kernel overlay or FUSE needed (the image is one small
//!   layer, so copying it is cheap);
//! - runtime `runc`: crun 1.8 refuses hosts with hybrid cgroup hierarchies
//!   ("cgroups in hybrid mode not supported"), runc runs on v1, v2 and hybrid;
//! - `cgroupfs` and events in a file: no systemd or journald needed;
//! - explicit `nofile` and `nproc` limits at most the test's own: podman as root
//!   otherwise raises both to 1048576, which needs CAP_SYS_RESOURCE;
//! - the default bridge network (netavark) with ports published on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::workspace;

/// The image's name once loaded (`podman load` takes it from the archive's index).
pub fn image_name() -> String {
    format!("localhost/rampart-collector:{}", env!("CARGO_PKG_VERSION"))
}

/// Runs `packaging/oci/build.sh` once per test process into `<target>/oci` and returns
/// the OCI archive it wrote.
pub fn image_archive() -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        let dir = target.join("oci");
        let out = Command::new("bash")
            .arg(workspace().join("packaging/oci/build.sh"))
            .arg(&dir)
            .output()
            .expect("run packaging/oci/build.sh");
        assert!(
            out.status.success(),
            "packaging/oci/build.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let archive = dir.join(format!(
            "rampart-collector-{}.oci.tar",
            env!("CARGO_PKG_VERSION")
        ));
        assert!(archive.is_file(), "no {}", archive.display());
        archive
    })
}

/// A podman whose storage, state and configuration live in a temporary directory.
pub struct Podman {
    dir: tempfile::TempDir,
}

/// A limit from `/proc/self/limits` ("Max open files" …): its hard value.
fn hard_limit(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with(name))?;
    let hard = line[name.len()..].split_whitespace().nth(1)?;
    hard.parse().ok()
}

impl Podman {
    pub fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("rampart-podman-")
            .tempdir()
            .unwrap();
        let p = |s: &str| dir.path().join(s).display().to_string();
        let nofile = hard_limit("Max open files").unwrap_or(1024).min(65_536);
        let nproc = hard_limit("Max processes").unwrap_or(4096).min(4096);
        std::fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[containers]\n\
                 default_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n\
                 [engine]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 runtime = \"runc\"\n\
                 tmp_dir = \"{}\"\n\
                 [network]\n\
                 network_config_dir = \"{}\"\n",
                p("tmp"),
                p("networks")
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                p("storage"),
                p("run")
            ),
        )
        .unwrap();
        Podman { dir }
    }

    /// `podman` with this instance's configuration.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            );
        c
    }

    /// Runs `podman args…` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run podman {args:?}: {e}"))
    }

    /// Runs `podman args…`, which must succeed; its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} exited {:?}: {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl Drop for Podman {
    /// Removes every container (stopping it at once), volume and image of this
    /// instance's storage — the configuration scopes `--all` to it — then the
    /// directory goes with the `TempDir`.
    fn drop(&mut self) {
        for args in [
            &["rm", "--all", "--force", "--time", "0"][..],
            &["volume", "rm", "--all", "--force"],
            &["rmi", "--all", "--force"],
        ] {
            let _ = self.run(args);
        }
    }
}
