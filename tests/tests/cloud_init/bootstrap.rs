//! The bootstrap script run against stubs in a sandbox: it pins the CA, installs,
//! enrolls and starts, refuses a wrong CA or install.sh, and adds the collector's SSH
//! key once, refusing hostile values.

use super::*;

/// The bootstrap script of a rendered template, with its token path moved under `t`.
pub(crate) fn bootstrap_script(rendered: &str, t: &Path) -> String {
    let start = rendered
        .find("      #!/bin/sh\n")
        .expect("bootstrap script");
    let end = rendered.find("\nruncmd:").expect("runcmd");
    let mut script: String = rendered[start..end]
        .lines()
        .map(|l| l.strip_prefix("      ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    script.push('\n');
    script
        .replace("/run/rampart-bootstrap/", &format!("{}/run/", t.display()))
        .replace("/etc/sudoers.d/", &format!("{}/sudoers.d/", t.display()))
}

pub(crate) fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The DER bytes behind the sandbox's `ca.pem` (any bytes do: only their hash counts).
pub(crate) const CA_DER: &[u8] = b"not really DER, but the pin is the SHA-256 of these bytes";
pub(crate) const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGlu\r\nIGlzIHRoZSBTSEEtMjU2IG9mIHRoZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";
/// The trust anchor the scripts must rebuild from `CA_DER` alone (64-column base64).
pub(crate) const CA_REBUILT: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGluIGlzIHRoZSBTSEEtMjU2IG9mIHRo\nZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";
pub(crate) const VERSION: &str = "9.9.9";

/// The pin of `CA_DER`, the way an operator pastes it: upper case with colons.
pub(crate) fn ca_pin() -> String {
    let hex = rampart_collector::ca::fingerprint(CA_DER).to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    rampart_collector::ca::fingerprint(bytes)
}

pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

impl Sandbox {
    /// A temp dir with a stub `curl` that serves `srv/` (the collector's `/ca.pem` and
    /// `/download/`: the real install.sh and a fake agent .deb) and logs how each URL was
    /// trusted, a `dpkg` that "installs" a stub agent under `dest/`, and a `systemctl`
    /// that logs. install.sh runs for real, rooted at `dest/` (RAMPART_DEST).
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path();
        for d in [
            "stubs",
            "srv",
            "run",
            "sudoers.d",
            "home/ubuntu",
            "dest/var/lib/dpkg",
            "dest/usr/bin",
        ] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        std::fs::write(t.join("dest/var/lib/dpkg/status"), "").unwrap();
        std::fs::write(t.join("srv/ca.pem"), CA_PEM).unwrap();
        std::fs::write(t.join("ca.rebuilt"), CA_REBUILT).unwrap();
        let install = std::fs::read_to_string(workspace().join("packaging/install.sh"))
            .unwrap()
            .replace("@VERSION@", VERSION);
        let sb = Sandbox { dir };
        sb.serve("install.sh", install.as_bytes());
        sb.serve(
            &format!("rampart-agent_{VERSION}_amd64.deb"),
            b"a Debian package",
        );
        let t = sb.path().display();
        write_exec(
            &sb.path().join("stubs/curl"),
            &format!(
                r#"#!/bin/sh
out=; url=; how=verified-by-system-store; cacert=; capath=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift;;
    -k) how=insecure;;
    --cacert) cacert=$2; shift;;
    --capath) capath=$2; shift;;
    --connect-timeout|--retry|--retry-delay|--max-time|--proto|--max-filesize) shift;;
    -*) ;;
    *) url=$1;;
  esac
  shift
done
# "pinned-ca": the CA rebuilt from the pinned DER alone, and an empty --capath.
if [ -n "$cacert" ]; then
  how=other-ca
  if cmp -s "$cacert" {t}/ca.rebuilt && [ -d "$capath" ] && [ -z "$(ls -A "$capath")" ]; then how=pinned-ca; fi
fi
echo "$how $url" >> {t}/curl.log
cp {t}/srv/"$(basename "$url")" "$out"
"#
            ),
        );
        write_exec(
            &sb.path().join("stubs/dpkg"),
            &format!(
                "#!/bin/sh\necho \"dpkg $1 $(basename \"$2\")\" >> {t}/dpkg.log\n\
                 cmp -s \"$2\" {t}/srv/rampart-agent_{VERSION}_amd64.deb || exit 1\n\
                 cat > {t}/dest/usr/bin/rampart-agent <<'EOF'\n#!/bin/sh\n\
                 stat -c %a {t}/run/token > {t}/token.mode\n\
                 printf '%s\\n' \"$@\" > {t}/enroll.args\n\
                 head -n 1 {t}/run/token > {t}/token.seen\nEOF\n\
                 chmod 755 {t}/dest/usr/bin/rampart-agent\n"
            ),
        );
        write_exec(
            &sb.path().join("stubs/systemctl"),
            &format!("#!/bin/sh\necho \"$*\" >> {t}/systemctl.log\n"),
        );
        // Accounts for the SSH step: a passwd file of the sandbox (`ubuntu` exists),
        // a useradd that adds to it, a visudo that keeps what it checked.
        std::fs::write(
            sb.path().join("passwd"),
            format!("ubuntu:x:1000:1000::{t}/home/ubuntu:/bin/bash\n"),
        )
        .unwrap();
        write_exec(
            &sb.path().join("stubs/getent"),
            &format!(
                "#!/bin/sh\n[ \"$1\" = passwd ] || exit 2\ngrep \"^$2:\" {t}/passwd || exit 2\n"
            ),
        );
        write_exec(
            &sb.path().join("stubs/useradd"),
            &format!(
                "#!/bin/sh\necho \"$*\" >> {t}/useradd.log\nfor a; do name=$a; done\n\
                 echo \"$name:x:1001:1001::{t}/home/$name:/bin/sh\" >> {t}/passwd\n\
                 mkdir -p {t}/home/$name\n"
            ),
        );
        write_exec(
            &sb.path().join("stubs/visudo"),
            &format!("#!/bin/sh\necho \"$1 $(cat \"$2\")\" >> {t}/visudo.log\n"),
        );
        write_exec(
            &sb.path().join("stubs/id"),
            "#!/bin/sh\n[ \"$1\" = -gn ] && echo \"$2\"\n",
        );
        write_exec(
            &sb.path().join("stubs/chown"),
            &format!("#!/bin/sh\necho \"$*\" >> {t}/chown.log\n"),
        );
        sb
    }

    /// Puts a file in the download dir with its `.sha256`, as the collector serves it.
    pub(crate) fn serve(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path().join("srv").join(name), bytes).unwrap();
        std::fs::write(
            self.path().join("srv").join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(bytes)),
        )
        .unwrap();
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn run(&self, vars: &BTreeMap<&str, String>) -> std::process::Output {
        self.run_with_token(vars, TOKEN)
    }

    pub(crate) fn run_with_token(
        &self,
        vars: &BTreeMap<&str, String>,
        token: &str,
    ) -> std::process::Output {
        let t = self.path();
        let rendered = render(&std::fs::read_to_string(template("aws")).unwrap(), vars);
        // What cloud-init's write_files would have done.
        std::fs::write(t.join("run/token"), format!("{token}\n")).unwrap();
        std::fs::set_permissions(t.join("run/token"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        let script = bootstrap_script(&rendered, t);
        write_exec(&t.join("bootstrap"), &script);
        let path = format!(
            "{}:{}",
            t.join("stubs").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("sh")
            .arg(t.join("bootstrap"))
            .env("PATH", path)
            .env("RAMPART_DEST", t.join("dest"))
            .env("RAMPART_RETRY_DELAY", "0")
            .env("RAMPART_TRIES", "2")
            .output()
            .unwrap()
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }
}

pub(crate) fn pinned_vars() -> BTreeMap<&'static str, String> {
    let mut v = sample_vars();
    v.insert("ca_fingerprint", ca_pin());
    v
}

#[test]
pub(crate) fn bootstrap_script_is_valid_sh() {
    let rendered = render(
        &std::fs::read_to_string(template("aws")).unwrap(),
        &sample_vars(),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bootstrap");
    std::fs::write(&file, bootstrap_script(&rendered, dir.path())).unwrap();
    let out = Command::new("sh").arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The whole first boot against stubs: pinned CA, install.sh checked and run, the
/// package downloaded over the pinned CA and checked, enrollment with the token file,
/// enable and a non-blocking start.
#[test]
pub(crate) fn bootstrap_pins_the_ca_runs_install_sh_which_installs_enrolls_and_starts() {
    let sb = Sandbox::new();
    let out = sb.run(&pinned_vars());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    let base = "https://collector.example:8443";
    assert_eq!(
        sb.read("curl.log"),
        format!(
            "insecure {base}/ca.pem\n\
             pinned-ca {base}/download/install.sh\n\
             pinned-ca {base}/download/install.sh.sha256\n\
             insecure {base}/ca.pem\n\
             pinned-ca {base}/download/rampart-agent_{VERSION}_amd64.deb\n\
             pinned-ca {base}/download/rampart-agent_{VERSION}_amd64.deb.sha256\n"
        )
    );
    assert_eq!(
        sb.read("dpkg.log"),
        format!("dpkg -i rampart-agent_{VERSION}_amd64.deb\n")
    );
    let args: Vec<String> = sb.read("enroll.args").lines().map(String::from).collect();
    let v = pinned_vars();
    // The token reaches the agent through its root-only file, never the command line.
    assert_eq!(sb.read("token.seen").trim(), TOKEN);
    assert_eq!(sb.read("token.mode").trim(), "600");
    let token_path = format!("{}/run/token", sb.path().display());
    let pin = v["ca_fingerprint"].replace(':', "").to_lowercase();
    let want: Vec<String> = [
        "enroll",
        "--collector",
        &v["collector_url"],
        "--ca-fingerprint",
        &pin,
        "--token-file",
        &token_path,
        "--label",
        "project=web",
        "--label",
        "env=prod",
        "--label",
        "team=a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(args, want);
    assert!(!sb.path().join("run/token").exists(), "token file deleted");
    assert_eq!(
        sb.read("systemctl.log"),
        "daemon-reload\nenable rampart-agent.service\nstart --no-block rampart-agent.service\n"
    );
}

/// Each refusal stops before anything is installed, and the token file is gone.
#[test]
pub(crate) fn bootstrap_refuses_a_wrong_ca_or_install_sh() {
    let zeros = format!("{}  install.sh\n", "0".repeat(64));
    type Setup = Box<dyn Fn(&Sandbox, &mut BTreeMap<&str, String>)>;
    let cases: [(&str, Setup); 4] = [
        (
            ", not the pinned abab",
            Box::new(|_, v| {
                v.insert("ca_fingerprint", "ab".repeat(32));
            }),
        ),
        (
            "SHA-256 mismatch for install.sh",
            Box::new(move |sb, _| {
                std::fs::write(sb.path().join("srv/install.sh.sha256"), &zeros).unwrap();
            }),
        ),
        (
            "holds no SHA-256",
            Box::new(|sb, _| {
                std::fs::write(sb.path().join("srv/install.sh.sha256"), "nope\n").unwrap();
            }),
        ),
        (
            "not the pinned install_sh_sha256",
            Box::new(|_, v| {
                v.insert("install_sh_sha256", "1".repeat(64));
            }),
        ),
    ];
    for (why, setup) in cases {
        let sb = Sandbox::new();
        let mut vars = pinned_vars();
        setup(&sb, &mut vars);
        let out = sb.run(&vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{why}: {stderr}");
        assert!(stderr.contains("rampart-bootstrap:"), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(sb.read("dpkg.log").is_empty(), "{why}");
        assert!(sb.read("enroll.args").is_empty(), "{why}");
        assert!(sb.read("systemctl.log").is_empty(), "{why}");
        assert!(
            !sb.path().join("run/token").exists(),
            "{why}: token file deleted on failure"
        );
    }
    // A pinned install.sh hash that matches (in upper case) is accepted.
    let sb = Sandbox::new();
    let mut vars = pinned_vars();
    let real = sb.read("srv/install.sh.sha256");
    vars.insert(
        "install_sh_sha256",
        real.split_whitespace().next().unwrap().to_uppercase(),
    );
    let out = sb.run(&vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
pub(crate) fn bootstrap_skips_enrollment_when_already_enrolled() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("dest/etc/rampart")).unwrap();
    std::fs::write(
        sb.path().join("dest/etc/rampart/agent.toml"),
        "collector = \"x\"\n",
    )
    .unwrap();
    let out = sb.run(&pinned_vars());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sb.read("enroll.args").is_empty());
    assert!(!sb.path().join("run/token").exists());
    assert!(sb.read("systemctl.log").contains("start --no-block"));
}

/// The collector's SSH key reaches the SSH user's authorized_keys once: a missing user
/// is made with passwordless sudo (checked by visudo before it is put in place), an
/// existing one keeps its keys and its sudo rights; without a token the VM is set up
/// for scans over SSH only and nothing is downloaded.
#[test]
pub(crate) fn bootstrap_adds_the_collectors_ssh_key() {
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // A user the image lacks: made, with a sudo rule; the agent installed as well.
    let sb = Sandbox::new();
    let mut vars = pinned_vars();
    vars.insert("ssh_user", "rampart-scan".into());
    vars.insert("ssh_public_key", SSH_KEY.into());
    for _ in 0..2 {
        let out = sb.run(&vars);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        sb.read("useradd.log"),
        "--create-home --shell /bin/sh --comment Rampart scans over SSH rampart-scan\n",
        "made once"
    );
    let rule = sb.path().join("sudoers.d/90-rampart-ssh");
    assert_eq!(
        std::fs::read_to_string(&rule).unwrap(),
        "rampart-scan ALL=(root) NOPASSWD: ALL\n"
    );
    assert_eq!(mode(&rule), 0o440);
    assert!(!sb.path().join("sudoers.d/90-rampart-ssh.tmp").exists());
    assert!(sb
        .read("visudo.log")
        .starts_with("-cqf rampart-scan ALL=(root) NOPASSWD: ALL"));
    let home = sb.path().join("home/rampart-scan");
    let keys = home.join(".ssh/authorized_keys");
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        format!("{SSH_KEY}\n"),
        "added once"
    );
    assert_eq!(mode(&keys), 0o600);
    assert_eq!(mode(&home.join(".ssh")), 0o700);
    assert!(
        sb.read("chown.log").contains(&format!(
            "rampart-scan:rampart-scan {}/.ssh",
            home.display()
        )),
        "{}",
        sb.read("chown.log")
    );
    assert!(
        sb.read("enroll.args").contains("enroll"),
        "the agent is enrolled too"
    );

    // An existing user: the key is added beside the others; sudo is not touched.
    let sb = Sandbox::new();
    let keys = sb.path().join("home/ubuntu/.ssh/authorized_keys");
    std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
    std::fs::write(&keys, "ssh-ed25519 AAAAothers operator\n").unwrap();
    let mut vars = pinned_vars();
    vars.insert("ssh_public_key", SSH_KEY.into());
    let out = sb.run(&vars);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&keys).unwrap(),
        format!("ssh-ed25519 AAAAothers operator\n{SSH_KEY}\n")
    );
    assert!(sb.read("useradd.log").is_empty());
    assert!(!sb.path().join("sudoers.d/90-rampart-ssh").exists());

    // No token: SSH only. Nothing is downloaded or installed, and the other values may
    // be empty.
    let sb = Sandbox::new();
    let mut vars = sample_vars();
    for v in [
        "download_base",
        "collector_url",
        "ca_fingerprint",
        "terraform_project",
        "labels",
    ] {
        vars.insert(v, String::new());
    }
    vars.insert("ssh_public_key", SSH_KEY.into());
    let out = sb.run_with_token(&vars, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(sb.read("curl.log").is_empty(), "{}", sb.read("curl.log"));
    assert!(sb.read("dpkg.log").is_empty());
    assert!(sb.read("systemctl.log").is_empty());
    assert!(sb
        .read("home/ubuntu/.ssh/authorized_keys")
        .contains(SSH_KEY));
    assert!(!sb.path().join("run/token").exists());
    // ... and with no key either there is nothing to do: an error, not a silent boot.
    vars.insert("ssh_public_key", String::new());
    let out = sb.run_with_token(&vars, "");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("neither enrollment_token nor ssh_public_key is set"),
        "{stderr}"
    );
}

/// Hostile SSH values are refused by name before anything is written: a second key or
/// options smuggled in the key, another key type, root, and user names that are not one.
#[test]
pub(crate) fn bootstrap_refuses_hostile_ssh_values() {
    let cases: [(&str, &str, &str); 7] = [
        (
            "ubuntu",
            &format!("{SSH_KEY}\nssh-ed25519 AAAAC3Nz attacker"),
            "ssh_public_key must be one line",
        ),
        (
            "ubuntu",
            &format!("command=\"sh\",no-pty {SSH_KEY}"),
            "ssh_public_key must be the collector's key",
        ),
        (
            "ubuntu",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ collector",
            "ssh_public_key must be the collector's key",
        ),
        ("root", SSH_KEY, "ssh_user must not be root"),
        (
            "a;touch /tmp/pwned",
            SSH_KEY,
            "ssh_user must be a user name",
        ),
        ("-o", SSH_KEY, "ssh_user must be a user name"),
        ("ubuntu\nroot", SSH_KEY, "ssh_user must be one line"),
    ];
    for (user, key, why) in cases {
        let sb = Sandbox::new();
        let mut vars = pinned_vars();
        vars.insert("ssh_user", user.into());
        vars.insert("ssh_public_key", key.into());
        let out = sb.run(&vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{why}: {stderr}");
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(sb.read("useradd.log").is_empty(), "{why}");
        assert!(!sb.path().join("home/ubuntu/.ssh").exists(), "{why}");
        assert!(
            sb.read("dpkg.log").is_empty(),
            "{why}: stopped before installing"
        );
        assert!(
            !sb.path().join("run/token").exists(),
            "{why}: token file deleted"
        );
    }
}
