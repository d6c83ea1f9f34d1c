//! `packaging/install.sh`, the agent installer the collector serves, run by `sh` (dash
//! on Debian) against stubs in a temporary directory: curl serves a fake collector's
//! `/ca.pem` and `/download/`, dpkg, rpm and systemctl log, and the "agent" logs how it
//! was enrolled. Everything it installs lands under `dest/` (RAMPART_DEST). The first-boot
//! trust tests use the real curl and wget against `openssl s_server` instead: a collector,
//! or a man in the middle who serves extra certificates beside the genuine CA.

mod first_boot_tls;
mod installs;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use rampart_tests::workspace;

const VERSION: &str = "9.9.9";
const TOKEN: &str = "rpt_enroll_fedcba9876543210";
const REST: &str = "https://collector.example:8080";
const GRPC: &str = "https://collector.example:8443";
const CA_DER: &[u8] = b"not really DER, but the pin is the SHA-256 of these bytes";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGlu\nIGlzIHRoZSBTSEEtMjU2IG9mIHRoZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";
/// The trust anchor install.sh must rebuild from `CA_DER` alone (64-column base64).
const CA_REBUILT: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGluIGlzIHRoZSBTSEEtMjU2IG9mIHRo\nZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";

fn sha256_hex(bytes: &[u8]) -> String {
    rampart_collector::ca::fingerprint(bytes)
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The agent the stub package managers "install": logs its enroll arguments, the token
/// file's mode and first line; fails while `enroll.fail` holds a positive count.
fn agent_stub(t: &Path) -> String {
    let t = t.display();
    format!(
        "#!/bin/sh\nn=$(cat {t}/enroll.fail 2>/dev/null || echo 0)\n\
         if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > {t}/enroll.fail; echo 'collector unreachable' >&2; exit 1; fi\n\
         stat -c %a \"$7\" > {t}/token.mode\nhead -n 1 \"$7\" > {t}/token.seen\n\
         printf '%s\\n' \"$@\" > {t}/enroll.args\n"
    )
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sb = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        let t = sb.path();
        for d in ["stubs", "srv", "run", "dest"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(t.join("srv/ca.pem"), CA_PEM).unwrap();
        std::fs::write(t.join("ca.rebuilt"), CA_REBUILT).unwrap();
        sb.serve(
            &format!("rampart-agent_{VERSION}_amd64.deb"),
            b"a Debian package",
        );
        sb.serve(
            &format!("rampart-agent-{VERSION}-1.x86_64.rpm"),
            b"an RPM package",
        );
        sb.serve("rampart-agent", agent_stub(t).as_bytes());
        sb.serve(
            "rampart-agent.service",
            std::fs::read_to_string(workspace().join("packaging/systemd/rampart-agent.service"))
                .unwrap()
                .as_bytes(),
        );
        std::fs::write(
            t.join("install.sh"),
            std::fs::read_to_string(workspace().join("packaging/install.sh"))
                .unwrap()
                .replace("@VERSION@", VERSION),
        )
        .unwrap();
        let agent = agent_stub(t);
        let t = t.display();
        // curl fails while `curl.fail` holds a positive count (an unreachable collector).
        // "pinned-ca": the CA rebuilt from the pinned DER alone, and an empty --capath
        // (not the system's CA directory).
        write_exec(
            &sb.path().join("stubs/curl"),
            &format!(
                r#"#!/bin/sh
n=$(cat {t}/curl.fail 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > {t}/curl.fail; echo "curl: (7) Failed to connect" >&2; exit 7; fi
out=; url=; how=verified-by-system-store; cacert=; capath=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift;;
    -k) how=insecure;;
    --cacert) cacert=$2; shift;;
    --capath) capath=$2; shift;;
    --connect-timeout|--max-time|--proto|--max-filesize) shift;;
    -*) ;;
    *) url=$1;;
  esac
  shift
done
if [ -n "$cacert" ]; then
  how=other-ca
  if cmp -s "$cacert" {t}/ca.rebuilt && [ -d "$capath" ] && [ -z "$(ls -A "$capath")" ]; then how=pinned-ca; fi
fi
echo "$how $url" >> {t}/curl.log
[ -f {t}/srv/"$(basename "$url")" ] || {{ echo "curl: (22) 404" >&2; exit 22; }}
cp {t}/srv/"$(basename "$url")" "$out"
"#
            ),
        );
        for pm in ["dpkg", "rpm"] {
            write_exec(
                &sb.path().join("stubs").join(pm),
                &format!(
                    "#!/bin/sh\nfor a; do last=$a; done\necho \"{pm} $1 $(basename \"$last\")\" >> {t}/pm.log\n\
                     n=$(cat {t}/pm.fail 2>/dev/null || echo 0)\n\
                     if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > {t}/pm.fail; echo \"{pm}: lock held\" >&2; exit 2; fi\n\
                     mkdir -p {t}/dest/usr/bin\ncat > {t}/dest/usr/bin/rampart-agent <<'EOF'\n{agent}EOF\n\
                     chmod 755 {t}/dest/usr/bin/rampart-agent\n"
                ),
            );
        }
        write_exec(
            &sb.path().join("stubs/systemctl"),
            &format!("#!/bin/sh\necho \"$*\" >> {t}/systemctl.log\n"),
        );
        std::fs::write(sb.path().join("run/token"), format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(
            sb.path().join("run/token"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        sb
    }

    fn serve(&self, name: &str, bytes: &[u8]) {
        let srv = self.path().join("srv");
        std::fs::write(srv.join(name), bytes).unwrap();
        std::fs::write(
            srv.join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(bytes)),
        )
        .unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn token_file(&self) -> String {
        self.path().join("run/token").display().to_string()
    }

    /// The usual arguments: flags for everything.
    fn args(&self) -> Vec<String> {
        let pin = sha256_hex(CA_DER).to_uppercase();
        [
            "--rest",
            REST,
            "--collector",
            GRPC,
            "--ca-fingerprint",
            &pin,
            "--token-file",
            &self.token_file(),
            "--label",
            "project=web",
            "--label",
            "env=prod",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    fn run(&self, args: &[String], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.path().join("stubs").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("sh");
        cmd.arg(self.path().join("install.sh"))
            .args(args)
            .env("PATH", path)
            .env("RAMPART_DEST", self.path().join("dest"))
            .env("RAMPART_RETRY_DELAY", "0")
            .env("RAMPART_TRIES", "3");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains(TOKEN), "install.sh printed the token: {all}");
        assert!(
            !self.path().join("run/token").exists(),
            "the token file outlived install.sh: {all}"
        );
        out
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    fn enroll_args(&self) -> Vec<String> {
        self.read("enroll.args").lines().map(String::from).collect()
    }
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn want_enroll(sb: &Sandbox, labels: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "enroll",
        "--collector",
        GRPC,
        "--ca-fingerprint",
        &sha256_hex(CA_DER),
        "--token-file",
        &sb.token_file(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for l in labels {
        v.push("--label".into());
        v.push(l.to_string());
    }
    v
}
