//! A throwaway OpenSSH server for the tests of scans over SSH: Debian's
//! `/usr/sbin/sshd` (installed by scripts/test.sh), run in the foreground on a free
//! loopback port with its own host key, configuration and `authorized_keys` files in
//! a temporary directory — never the system's sshd or its configuration — and
//! killed when dropped. A [`TestUser`] is an OS user without sudo rights, removed
//! when dropped.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cluster::free_port;

/// Puts the agent binary a collector copies to targets in the download directory
/// `dir`, smaller without debug information.
pub fn stage_agent(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let to = dir.join("rampart-agent");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&to)
        .arg(crate::binary("rampart-agent"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(crate::binary("rampart-agent"), &to).unwrap();
    }
}

/// A running sshd, killed when dropped.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The host key's fingerprint, `SHA256:…`.
    pub host_key: String,
    dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new ed25519 key pair at `path` (and `path.pub`); its SHA-256 fingerprint.
pub fn host_key(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path));
    let line = run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(path.with_extension("pub")));
    line.split_whitespace().nth(1).unwrap().to_string()
}

impl Sshd {
    /// Starts sshd accepting the public key `authorized` for the users `users`.
    pub fn start(authorized: &str, users: &[&str]) -> Sshd {
        // sshd insists on its privilege separation directory (packaging makes it
        // at boot; a container may have none).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The sessions' TMPDIR is in here: what a scan leaves behind is seen here,
        // and nothing reaches the host's /tmp. Every user may traverse it.
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(d.join("tmp")).unwrap();
        std::fs::set_permissions(d.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let key = d.join("host_ed25519");
        let host_key = host_key(&key);
        std::fs::create_dir(d.join("keys")).unwrap();
        for u in users {
            std::fs::write(d.join("keys").join(u), format!("{authorized}\n")).unwrap();
        }
        let port = free_port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\n\
                 AuthorizedKeysFile {keys}/%u\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nAllowUsers {users}\n\
                 MaxStartups 100\nLogLevel VERBOSE\nSetEnv TMPDIR={tmp}\n",
                key = key.display(),
                pid = d.join("sshd.pid").display(),
                keys = d.join("keys").display(),
                users = users.join(" "),
                tmp = d.join("tmp").display(),
            ),
        )
        .unwrap();
        let child = spawn(d);
        let s = Sshd {
            child,
            port,
            host_key,
            dir,
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&self) {
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server and starts it again on the same port with a new host key
    /// (a reinstalled host, or a man in the middle); returns its fingerprint.
    pub fn change_host_key(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let d = self.dir.path();
        let key = d.join("host_ed25519");
        std::fs::remove_file(&key).unwrap();
        std::fs::remove_file(key.with_extension("pub")).unwrap();
        self.host_key = host_key(&key);
        self.child = spawn(d);
        self.wait_listening();
        self.host_key.clone()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// What the sessions left in their TMPDIR.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// Runs sshd in the foreground with the configuration in `dir`, logging to its file.
fn spawn(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sshd.log"))
        .unwrap();
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run /usr/sbin/sshd (scripts/test.sh installs openssh-server)")
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An OS user with a shell, no password and no sudo rights; removed when dropped.
pub struct TestUser {
    pub name: String,
}

impl TestUser {
    pub fn create(prefix: &str) -> TestUser {
        let name = format!("{prefix}{}", std::process::id());
        let _ = Command::new("userdel").arg(&name).output();
        run(Command::new("useradd")
            .args(["-M", "-d", "/nonexistent", "-s", "/bin/sh"])
            .arg(&name));
        // Not locked (`!`), so that sshd lets it in with a key; no password either.
        run(Command::new("usermod").args(["-p", "*"]).arg(&name));
        TestUser { name }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}
