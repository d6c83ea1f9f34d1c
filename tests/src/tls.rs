//! Real TLS for the first-boot tests (install.sh and the cloud-init bootstrap): throwaway
//! CAs made with the `openssl` command, and `openssl s_server -WWW` serving a directory
//! over HTTPS on loopback, standing in for the collector's REST port or for a man in the
//! middle who answers in its place.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("the `openssl` command is missing: apt-get install -y openssl")
        }
        Err(e) => panic!("cannot run openssl: {e}"),
    };
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The genuine collector CA and a man in the middle's own CA, for tests that a
/// download trusts only the pinned one. Their files live as long as this.
pub struct MitmCas {
    _dir: tempfile::TempDir,
    pub genuine: Ca,
    pub attacker: Ca,
}

impl MitmCas {
    pub fn new() -> MitmCas {
        let dir = tempfile::tempdir().expect("temporary directory");
        MitmCas {
            genuine: Ca::new(dir.path(), "collector-ca"),
            attacker: Ca::new(dir.path(), "mitm-ca"),
            _dir: dir,
        }
    }
}

impl MitmCas {
    /// What a man in the middle may serve as `/ca.pem` beside (or instead of) the
    /// genuine CA, each with the words of the refusal: (case, body, refusal).
    pub fn forged_ca_bodies(&self) -> Vec<(&'static str, String, &'static str)> {
        let (g, a) = (self.genuine.pem(), self.attacker.pem());
        let one = "is not exactly one PEM certificate";
        vec![
            ("genuine CA, then the attacker's", format!("{g}{a}"), one),
            (
                "the attacker's CA, then the genuine one",
                format!("{a}{g}"),
                one,
            ),
            (
                "genuine CA, then trailing data",
                format!("{g}trailing garbage\n"),
                one,
            ),
            ("the genuine CA twice", format!("{g}{g}"), one),
            ("the attacker's CA alone", a, "has fingerprint"),
        ]
    }
}

impl Default for MitmCas {
    fn default() -> Self {
        Self::new()
    }
}

/// A self-signed P-256 CA: `NAME.pem` and `NAME.key` in its directory.
pub struct Ca {
    dir: PathBuf,
    name: String,
}

impl Ca {
    /// Makes a new CA with the common name `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        std::fs::create_dir_all(dir).expect("CA directory");
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &key,
                "-out",
                &pem,
            ],
            dir,
        );
        Ca {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.pem", self.name))).expect("CA PEM")
    }

    /// The certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        openssl(
            &[
                "x509",
                "-in",
                &format!("{}.pem", self.name),
                "-outform",
                "DER",
            ],
            &self.dir,
        )
    }

    /// Issues a server certificate for 127.0.0.1; returns the paths of (cert, key).
    pub fn issue_loopback_server(&self, name: &str) -> (PathBuf, PathBuf) {
        let (csr, key, crt) = (
            format!("{name}.csr"),
            format!("{name}.key"),
            format!("{name}.pem"),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
            &self.dir,
        );
        let ext = format!("{name}.ext");
        std::fs::write(self.dir.join(&ext), "subjectAltName=IP:127.0.0.1\n").expect("ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
            &self.dir,
        );
        (self.dir.join(crt), self.dir.join(key))
    }
}

/// `openssl s_server -WWW` on 127.0.0.1: `GET /a/b` answers the file `ROOT/a/b`.
/// Stopped when dropped.
pub struct WebServer {
    child: Child,
    port: u16,
}

impl WebServer {
    /// Serves `root` with the given server certificate and key.
    pub fn start(root: &Path, cert: &Path, key: &Path) -> WebServer {
        let mut child = Command::new("openssl")
            .args(["s_server", "-accept", "127.0.0.1:0", "-WWW", "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let stdout = child.stdout.take().expect("s_server stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = match lines.next() {
                Some(Ok(l)) => l,
                _ => {
                    let _ = child.kill();
                    panic!("openssl s_server exited before listening");
                }
            };
            if let Some(addr) = line.strip_prefix("ACCEPT ") {
                let port = addr.rsplit(':').next().and_then(|p| p.parse().ok());
                break port.expect("s_server's ACCEPT line names a port");
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        WebServer { child, port }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
