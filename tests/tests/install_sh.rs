//! `packaging/install.sh`, the agent installer the collector serves, run by `sh` (dash
//! on Debian) against stubs in a temporary directory: curl serves a fake collector's
//! `/ca.pem` and `/download/`, dpkg, rpm and systemctl log, and the "agent" logs how it
//! was enrolled. Everything it installs lands under `dest/` (RAMPART_DEST). The first-boot
//! trust tests use the real curl and wget against `openssl s_server` instead: a collector,
//! or a man in the middle who serves extra certificates beside the genuine CA.

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

#[test]
fn install_sh_is_posix_sh() {
    let out = Command::new("sh")
        .arg("-n")
        .arg(workspace().join("packaging/install.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn on_a_dpkg_host_it_installs_the_deb_over_the_pinned_ca() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
    std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
    ok(&sb.run(&sb.args(), &[]));
    let deb = format!("rampart-agent_{VERSION}_amd64.deb");
    assert_eq!(
        sb.read("curl.log"),
        format!(
            "insecure {REST}/ca.pem\npinned-ca {REST}/download/{deb}\npinned-ca {REST}/download/{deb}.sha256\n"
        )
    );
    assert_eq!(sb.read("pm.log"), format!("dpkg -i {deb}\n"));
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=web", "env=prod"])
    );
    assert_eq!(sb.read("token.seen").trim(), TOKEN);
    assert_eq!(sb.read("token.mode").trim(), "600");
    assert_eq!(
        sb.read("systemctl.log"),
        "daemon-reload\nenable rampart-agent.service\nstart --no-block rampart-agent.service\n"
    );
}

#[test]
fn on_an_rpm_host_it_installs_the_rpm_and_takes_its_settings_from_the_environment() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/rpm")).unwrap();
    let pin = sha256_hex(CA_DER);
    let token = sb.token_file();
    ok(&sb.run(
        &[],
        &[
            ("RAMPART_REST", &format!("{REST}/")),
            ("RAMPART_COLLECTOR", GRPC),
            ("RAMPART_CA_FINGERPRINT", &pin),
            ("RAMPART_TOKEN_FILE", &token),
            ("RAMPART_LABELS", "project=db,,team=a"),
        ],
    ));
    assert_eq!(
        sb.read("pm.log"),
        format!("rpm -U rampart-agent-{VERSION}-1.x86_64.rpm\n")
    );
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=db", "team=a"])
    );
    assert!(sb.read("systemctl.log").contains("start --no-block"));
}

#[test]
fn without_a_package_manager_it_installs_the_static_binary_and_its_unit() {
    let sb = Sandbox::new();
    ok(&sb.run(&sb.args(), &[]));
    assert_eq!(sb.read("pm.log"), "");
    let bin = sb.path().join("dest/usr/local/bin/rampart-agent");
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let unit = sb.read("dest/etc/systemd/system/rampart-agent.service");
    assert!(
        unit.contains(
            "\nExecStart=/usr/local/bin/rampart-agent run --config /etc/rampart/agent.toml\n"
        ),
        "{unit}"
    );
    assert!(unit.contains("ProtectSystem=strict"));
    assert_eq!(
        sb.enroll_args(),
        want_enroll(&sb, &["project=web", "env=prod"])
    );
    assert!(sb.read("curl.log").contains(
        "pinned-ca https://collector.example:8080/download/rampart-agent.service.sha256"
    ));
}

#[test]
fn it_retries_while_the_collector_is_unreachable_and_then_gives_up() {
    // Unreachable for two attempts, then up: installed.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("curl.fail"), "2").unwrap();
    std::fs::write(sb.path().join("enroll.fail"), "2").unwrap();
    std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
    std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
    // dpkg's lock is held at first (unattended-upgrades): retried too.
    std::fs::write(sb.path().join("pm.fail"), "1").unwrap();
    let stderr = ok(&sb.run(&sb.args(), &[]));
    assert!(stderr.contains("attempt 2 of 3"), "{stderr}");
    assert!(
        stderr.contains("dpkg -i rampart-agent_9.9.9_amd64.deb failed (attempt 1 of 3"),
        "{stderr}"
    );
    assert_eq!(sb.read("pm.log").lines().count(), 2);
    assert!(
        stderr.contains("enrollment failed (attempt 2 of 3)"),
        "{stderr}"
    );
    assert!(!sb.enroll_args().is_empty());
    // Unreachable for longer than the tries: a clear failure, nothing installed.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("curl.fail"), "100").unwrap();
    let out = sb.run(&sb.args(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot fetch https://collector.example:8080/ca.pem"),
        "{stderr}"
    );
    assert!(sb.read("systemctl.log").is_empty());
    // Enrollment that keeps failing stops too, before the unit is started.
    let sb = Sandbox::new();
    std::fs::write(sb.path().join("enroll.fail"), "100").unwrap();
    let out = sb.run(&sb.args(), &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("enrollment failed 3 times"));
    assert!(sb.read("systemctl.log").is_empty());
}

#[test]
fn it_refuses_a_wrong_ca_a_bad_download_and_bad_arguments() {
    let deb = format!("rampart-agent_{VERSION}_amd64.deb");
    type Setup = Box<dyn Fn(&Sandbox, &mut Vec<String>)>;
    let cases: Vec<(&str, Setup)> = vec![
        ("has fingerprint", Box::new(|_, a| a[5] = "ab".repeat(32))),
        (
            "SHA-256 mismatch for rampart-agent_",
            Box::new(move |sb, _| {
                std::fs::write(sb.path().join("srv").join(&deb), "tampered").unwrap();
            }),
        ),
        (
            "holds no SHA-256",
            Box::new(|sb, _| {
                std::fs::write(sb.path().join("srv/rampart-agent.sha256"), "<html>").unwrap();
            }),
        ),
        (
            "--rest must be https://",
            Box::new(|_, a| a[1] = "http://collector.example:8080".into()),
        ),
        (
            "--ca-fingerprint must be a SHA-256",
            Box::new(|_, a| a[5] = "abc".into()),
        ),
        (
            "unknown argument: --tokn",
            Box::new(|_, a| a.push("--tokn".into())),
        ),
        (
            "this is the unbuilt install.sh",
            Box::new(|sb, _| {
                std::fs::copy(
                    workspace().join("packaging/install.sh"),
                    sb.path().join("install.sh"),
                )
                .unwrap();
            }),
        ),
    ];
    for (why, setup) in cases {
        let sb = Sandbox::new();
        if why.contains("mismatch") {
            std::fs::create_dir_all(sb.path().join("dest/var/lib/dpkg")).unwrap();
            std::fs::write(sb.path().join("dest/var/lib/dpkg/status"), "").unwrap();
        }
        let mut args = sb.args();
        setup(&sb, &mut args);
        let out = sb.run(&args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert_eq!(sb.read("pm.log"), "", "{why}");
        assert!(
            !sb.path().join("dest/usr/local/bin/rampart-agent").exists(),
            "{why}"
        );
        assert!(sb.enroll_args().is_empty(), "{why}");
        assert!(sb.read("systemctl.log").is_empty(), "{why}");
        if why == "has fingerprint" {
            assert!(
                !sb.read("curl.log").contains("pinned-ca"),
                "nothing is fetched once the CA is refused"
            );
        }
    }
}

#[test]
fn an_enrolled_host_is_not_enrolled_again() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/etc/rampart")).unwrap();
    std::fs::write(sb.path().join("dest/etc/rampart/agent.toml"), "x = 1\n").unwrap();
    let stderr = ok(&sb.run(&sb.args(), &[]));
    assert!(stderr.contains("already enrolled"), "{stderr}");
    assert!(sb.enroll_args().is_empty());
    assert!(sb.read("systemctl.log").contains("start --no-block"));
}

/// Labels reach `rampart-agent enroll` verbatim, one argument each, whatever they hold:
/// nothing in them is ever evaluated, split again or globbed.
#[test]
fn labels_with_shell_metacharacters_reach_the_agent_verbatim() {
    let sb = Sandbox::new();
    let t = sb.path().display().to_string();
    let hostile = [
        format!("cmd=$(touch {t}/pwned-cmd)"),
        format!("semi=x; touch {t}/pwned-semi"),
        format!("tick=`touch {t}/pwned-tick`"),
        "space=two words".to_string(),
        r#"quotes=it's "quoted""#.to_string(),
        "glob=*".to_string(),
        r"backslash=a\nb\c".to_string(),
    ];
    let mut args = sb.args();
    for l in &hostile {
        args.push("--label".into());
        args.push(l.clone());
    }
    let env_label = format!("env=$(touch {t}/pwned-env)");
    ok(&sb.run(&args, &[("RAMPART_LABELS", &env_label)]));
    let mut want: Vec<&str> = vec![&env_label, "project=web", "env=prod"];
    want.extend(hostile.iter().map(String::as_str));
    assert_eq!(sb.enroll_args(), want_enroll(&sb, &want));
    for f in ["pwned-cmd", "pwned-semi", "pwned-tick", "pwned-env"] {
        assert!(!sb.path().join(f).exists(), "{f}: a label was executed");
    }
    // A newline cannot be one argument of a "k=v,k=v" list: refused, nothing runs.
    let sb = Sandbox::new();
    let mut args = sb.args();
    args.extend(["--label".to_string(), "a=b\nc=d".to_string()]);
    let out = sb.run(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a label cannot contain a newline"),
        "{stderr}"
    );
    assert!(sb.read("curl.log").is_empty() && sb.enroll_args().is_empty());
}

mod first_boot_tls {
    //! The real curl and wget against `openssl s_server`: only the pinned CA is trusted.

    use super::*;
    use rampart_tests::tls::{Ca, WebServer};

    /// The genuine collector CA and a man in the middle's own CA.
    struct Cas {
        _dir: tempfile::TempDir,
        genuine: Ca,
        attacker: Ca,
    }

    fn cas() -> Cas {
        let dir = tempfile::tempdir().unwrap();
        Cas {
            genuine: Ca::new(dir.path(), "collector-ca"),
            attacker: Ca::new(dir.path(), "mitm-ca"),
            _dir: dir,
        }
    }

    /// What the man in the middle serves as the agent: it would run as root and keep
    /// the enrollment token.
    fn thief(t: &Path) -> String {
        let t = t.display();
        format!("#!/bin/sh\ntouch {t}/pwned\ncat \"$7\" > {t}/stolen-token 2>/dev/null\n")
    }

    impl Sandbox {
        /// Serves `/ca.pem` and the static agent with its unit (and their sums) over TLS
        /// with a server certificate `issuer` signed, on loopback; the stub curl goes, so
        /// install.sh runs the real curl (or wget).
        fn serve_over_tls(&self, issuer: &Ca, ca_pem: &str, agent: &str) -> WebServer {
            let www = self.path().join("www");
            std::fs::create_dir_all(www.join("download")).unwrap();
            std::fs::write(www.join("ca.pem"), ca_pem).unwrap();
            let unit = std::fs::read(self.path().join("srv/rampart-agent.service")).unwrap();
            for (name, bytes) in [
                ("rampart-agent", agent.as_bytes()),
                ("rampart-agent.service", &unit[..]),
            ] {
                std::fs::write(www.join("download").join(name), bytes).unwrap();
                std::fs::write(
                    www.join("download").join(format!("{name}.sha256")),
                    format!("{}  {name}\n", sha256_hex(bytes)),
                )
                .unwrap();
            }
            let _ = std::fs::remove_file(self.path().join("stubs/curl"));
            let (cert, key) = issuer.issue_loopback_server("server");
            WebServer::start(&www, &cert, &key)
        }

        fn tls_args(&self, server: &WebServer, pinned: &Ca) -> Vec<String> {
            let mut a = self.args();
            a[1] = server.url();
            a[5] = sha256_hex(&pinned.der());
            a
        }

        /// A PATH without curl (for wget): links to everything else on this one.
        fn path_without_curl(&self) -> String {
            let dir = self.path().join("no-curl");
            std::fs::create_dir_all(&dir).unwrap();
            let path = std::env::var("PATH").unwrap_or_default();
            for d in std::env::split_paths(&path) {
                for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                    let name = e.file_name();
                    if name != "curl" && !dir.join(&name).exists() {
                        let _ = std::os::unix::fs::symlink(e.path(), dir.join(&name));
                    }
                }
            }
            format!("{}:{}", self.path().join("stubs").display(), dir.display())
        }
    }

    /// A man in the middle answers for the collector: whatever it serves beside (or
    /// instead of) the genuine CA, install.sh refuses before it downloads anything, and
    /// nothing it serves runs or sees the token.
    #[test]
    fn a_man_in_the_middle_serving_extra_certificates_gets_nothing() {
        let cas = cas();
        let (g, a) = (cas.genuine.pem(), cas.attacker.pem());
        let one = "is not exactly one PEM certificate";
        let cases = [
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
            (
                "genuine CA, then a private key",
                format!("{g}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                one,
            ),
            (
                "genuine CA, then a NUL byte",
                format!("{g}\0"),
                "cannot be part of a PEM",
            ),
            ("the attacker's CA alone", a.clone(), "has fingerprint"),
        ];
        for (what, ca_pem, why) in cases {
            let sb = Sandbox::new();
            let server = sb.serve_over_tls(&cas.attacker, &ca_pem, &thief(sb.path()));
            let out = sb.run(&sb.tls_args(&server, &cas.genuine), &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: {stderr}");
            assert!(stderr.contains(why), "{what}: {stderr}");
            assert!(
                !sb.path().join("pwned").exists(),
                "{what}: the attacker's agent ran"
            );
            assert!(
                !sb.path().join("stolen-token").exists(),
                "{what}: token stolen"
            );
            assert!(
                !sb.path().join("dest/usr/local/bin/rampart-agent").exists(),
                "{what}: installed"
            );
            assert!(sb.read("systemctl.log").is_empty(), "{what}");
        }
        // The genuine CA alone, but the server's certificate is the attacker's: the real
        // curl refuses every download (the trust anchor is the pinned CA, and only it).
        let sb = Sandbox::new();
        let server = sb.serve_over_tls(&cas.attacker, &g, &thief(sb.path()));
        let out = sb.run(&sb.tls_args(&server, &cas.genuine), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("cannot download"), "{stderr}");
        assert!(!sb.path().join("pwned").exists());
    }

    /// The genuine collector (its CA with CRLF line ends and blank lines, as some
    /// proxies rewrite it): the real curl, and wget where curl is missing, download over
    /// the rebuilt CA, and the agent enrolls.
    #[test]
    fn the_pinned_ca_alone_is_enough_for_curl_and_wget() {
        let cas = cas();
        let served = format!("\n{}\n\n", cas.genuine.pem().replace('\n', "\r\n"));
        for tool in ["curl", "wget"] {
            let sb = Sandbox::new();
            let server = sb.serve_over_tls(&cas.genuine, &served, &agent_stub(sb.path()));
            let mut args = sb.tls_args(&server, &cas.genuine);
            args.extend(["--label".into(), "note=a b".into()]);
            let path = sb.path_without_curl();
            let env: &[(&str, &str)] = if tool == "wget" {
                &[("PATH", &path)]
            } else {
                &[]
            };
            ok(&sb.run(&args, env));
            assert_eq!(
                sb.enroll_args()[4],
                sha256_hex(&cas.genuine.der()),
                "{tool}"
            );
            assert_eq!(
                sb.enroll_args().last().map(String::as_str),
                Some("note=a b"),
                "{tool}"
            );
            assert_eq!(sb.read("token.seen").trim(), TOKEN, "{tool}");
        }
    }
}

/// The real collector (REST over TLS, serving the agent from its download directory):
/// install.sh pins its CA, trusts the rebuilt copy alone, downloads and enrolls. A man in
/// the middle who relays that genuine `/ca.pem` with his own CA appended is refused.
#[test]
fn the_real_collector_is_pinned_and_a_relay_with_an_extra_ca_is_refused() {
    use rampart_tests::cluster::Collector;
    use rampart_tests::tls::{Ca, WebServer};
    let t = tempfile::tempdir().unwrap();
    let sb = Sandbox::new();
    let dl = t.path().join("download");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("rampart-agent"), agent_stub(sb.path())).unwrap();
    std::fs::copy(
        sb.path().join("srv/rampart-agent.service"),
        dl.join("rampart-agent.service"),
    )
    .unwrap();
    let config = format!(
        "rest_tls = true\nserver_names = [\"127.0.0.1\"]\ndownload_dir = \"{}\"\n",
        dl.display()
    );
    let c = Collector::start_with(&t.path().join("collector"), None, None, Some(&config));
    std::fs::remove_file(sb.path().join("stubs/curl")).unwrap();
    let mut args = sb.args();
    args[1] = format!("https://{}", c.rest);
    args[5] = c.fingerprint.clone();
    ok(&sb.run(&args, &[]));
    assert_eq!(sb.enroll_args()[4], c.fingerprint);
    assert_eq!(sb.read("token.seen").trim(), TOKEN);

    // The relay: the collector's own /ca.pem, then the attacker's CA, which signed the
    // relay's server certificate; it serves its own agent.
    let attacker = Ca::new(&t.path().join("mitm"), "mitm-ca");
    let genuine = c.fetch_ca_pem();
    let sb = Sandbox::new();
    let www = t.path().join("www");
    std::fs::create_dir_all(www.join("download")).unwrap();
    std::fs::write(www.join("ca.pem"), format!("{genuine}{}", attacker.pem())).unwrap();
    let thief = format!("#!/bin/sh\ntouch {}/pwned\n", sb.path().display());
    for (name, bytes) in [
        ("rampart-agent", thief.into_bytes()),
        (
            "rampart-agent.service",
            std::fs::read(dl.join("rampart-agent.service")).unwrap(),
        ),
    ] {
        std::fs::write(
            www.join("download").join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(&bytes)),
        )
        .unwrap();
        std::fs::write(www.join("download").join(name), bytes).unwrap();
    }
    let (cert, key) = attacker.issue_loopback_server("relay");
    let relay = WebServer::start(&www, &cert, &key);
    std::fs::remove_file(sb.path().join("stubs/curl")).unwrap();
    let mut args = sb.args();
    args[1] = relay.url();
    args[5] = c.fingerprint.clone();
    let out = sb.run(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not exactly one PEM certificate"),
        "{stderr}"
    );
    assert!(!sb.path().join("pwned").exists(), "the relay's agent ran");
    assert!(sb.enroll_args().is_empty());
}
