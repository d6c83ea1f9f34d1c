//! The cloud-init templates in `cloud-init/`: each renders the way Terraform's
//! templatefile() would, passes `cloud-init schema`, and its bootstrap script really
//! downloads, verifies, installs, enrolls and starts (run against stubs in a temp dir,
//! and with the real curl against `openssl s_server` for the first-boot trust: a man in
//! the middle who serves extra certificates beside the genuine CA gets nothing run).
//! The Terraform example's variables are checked structurally (no `terraform` binary
//! here): every input variable that reaches the template has a validation whose regex
//! accepts good values and refuses hostile ones.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_tests::render_template as render;
use rampart_tests::workspace;

const PROVIDERS: [&str; 6] = ["nocloud", "aws", "azure", "gcp", "vmware", "proxmox"];
const TOKEN: &str = "rpt_enroll_0123456789abcdef";
/// A collector's SSH public key, as `GET /api/v1/ssh` serves it.
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICWBfxEX6buFc6darzC3aAtB/NqTylSsk7uSLWVkTawt rampart-collector";

fn sample_vars() -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("download_base", "https://collector.example:8443".to_string()),
        ("install_sh_sha256", String::new()),
        ("collector_url", "https://collector.example:7443".to_string()),
        (
            "ca_fingerprint",
            "5f:1a:00:9c:3e:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44"
                .to_string(),
        ),
        ("enrollment_token", TOKEN.to_string()),
        ("terraform_project", "web".to_string()),
        ("labels", "env=prod,team=a".to_string()),
        ("ssh_user", "ubuntu".to_string()),
        ("ssh_public_key", String::new()),
    ])
}

fn template(provider: &str) -> PathBuf {
    workspace()
        .join("cloud-init")
        .join(provider)
        .join("user-data.yaml.tftpl")
}

fn cloud_init_schema(file: &Path) -> std::process::Output {
    match Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(file)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "the `cloud-init` command is missing: install the Debian package \
             (apt-get install -y cloud-init; scripts/test.sh does this)"
        ),
        Err(e) => panic!("cannot run cloud-init: {e}"),
    }
}

#[test]
fn every_template_renders_and_passes_cloud_init_schema() {
    let dir = tempfile::tempdir().unwrap();
    let vars = sample_vars();
    for p in PROVIDERS {
        let text = std::fs::read_to_string(template(p)).expect(p);
        assert!(text.starts_with("#cloud-config\n"), "{p}");
        assert!(
            workspace()
                .join("cloud-init")
                .join(p)
                .join("README.md")
                .is_file(),
            "{p} has a README"
        );
        let rendered = render(&text, &vars);
        let file = dir.path().join(format!("{p}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        let out = cloud_init_schema(&file);
        assert!(
            out.status.success(),
            "{p}: cloud-init schema rejected it:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // The token appears once: in the root-only file on tmpfs, nowhere else.
        assert_eq!(rendered.matches(TOKEN).count(), 1, "{p}");
        let at = rendered.find(TOKEN).unwrap();
        let entry = &rendered[rendered[..at].rfind("- path:").unwrap()..at];
        assert!(
            entry.contains("path: /run/rampart-bootstrap/token"),
            "{p}: {entry}"
        );
        assert!(entry.contains("permissions: '0600'"), "{p}: {entry}");
        assert!(entry.contains("owner: root:root"), "{p}: {entry}");
        // The agent comes from the collector's download path, through install.sh.
        assert!(rendered.contains("$REST/download/install.sh\""), "{p}");
        assert!(rendered.contains("--token-file \"$TOKEN_FILE\""), "{p}");
    }
}

#[test]
fn the_schema_check_rejects_a_broken_template() {
    let dir = tempfile::tempdir().unwrap();
    let text = render(
        &std::fs::read_to_string(template("nocloud")).unwrap(),
        &sample_vars(),
    );
    let broken = text.replace("runcmd:\n  - [", "runcmd:\n  bad: [");
    assert_ne!(broken, text);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    assert!(!cloud_init_schema(&file).status.success());
}

#[test]
#[should_panic(expected = "not a known variable")]
fn an_unknown_placeholder_is_an_error() {
    render("a: ${nope}\n", &sample_vars());
}

/// The bootstrap script of a rendered template, with its token path moved under `t`.
fn bootstrap_script(rendered: &str, t: &Path) -> String {
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

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The DER bytes behind the sandbox's `ca.pem` (any bytes do: only their hash counts).
const CA_DER: &[u8] = b"not really DER, but the pin is the SHA-256 of these bytes";
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGlu\r\nIGlzIHRoZSBTSEEtMjU2IG9mIHRoZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";
/// The trust anchor the scripts must rebuild from `CA_DER` alone (64-column base64).
const CA_REBUILT: &str = "-----BEGIN CERTIFICATE-----\nbm90IHJlYWxseSBERVIsIGJ1dCB0aGUgcGluIGlzIHRoZSBTSEEtMjU2IG9mIHRo\nZXNlIGJ5dGVz\n-----END CERTIFICATE-----\n";
const VERSION: &str = "9.9.9";

/// The pin of `CA_DER`, the way an operator pastes it: upper case with colons.
fn ca_pin() -> String {
    let hex = rampart_collector::ca::fingerprint(CA_DER).to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

fn sha256_hex(bytes: &[u8]) -> String {
    rampart_collector::ca::fingerprint(bytes)
}

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// A temp dir with a stub `curl` that serves `srv/` (the collector's `/ca.pem` and
    /// `/download/`: the real install.sh and a fake agent .deb) and logs how each URL was
    /// trusted, a `dpkg` that "installs" a stub agent under `dest/`, and a `systemctl`
    /// that logs. install.sh runs for real, rooted at `dest/` (RAMPART_DEST).
    fn new() -> Sandbox {
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
    fn serve(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path().join("srv").join(name), bytes).unwrap();
        std::fs::write(
            self.path().join("srv").join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(bytes)),
        )
        .unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, vars: &BTreeMap<&str, String>) -> std::process::Output {
        self.run_with_token(vars, TOKEN)
    }

    fn run_with_token(&self, vars: &BTreeMap<&str, String>, token: &str) -> std::process::Output {
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

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }
}

fn pinned_vars() -> BTreeMap<&'static str, String> {
    let mut v = sample_vars();
    v.insert("ca_fingerprint", ca_pin());
    v
}

#[test]
fn bootstrap_script_is_valid_sh() {
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
fn bootstrap_pins_the_ca_runs_install_sh_which_installs_enrolls_and_starts() {
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
fn bootstrap_refuses_a_wrong_ca_or_install_sh() {
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
fn bootstrap_skips_enrollment_when_already_enrolled() {
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
fn bootstrap_adds_the_collectors_ssh_key() {
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
fn bootstrap_refuses_hostile_ssh_values() {
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

/// The bootstrap runs above against the AWS template; the others carry the same body
/// (only their three header lines differ), so they are covered too.
#[test]
fn every_template_has_the_same_body() {
    let body = |p: &str| {
        let text = std::fs::read_to_string(template(p)).unwrap();
        text.lines().skip(3).collect::<Vec<_>>().join("\n")
    };
    let aws = body("aws");
    assert!(aws.contains("write_files:"));
    for p in PROVIDERS {
        assert_eq!(body(p), aws, "{p} differs from aws below its header");
    }
}

/// A small Debian 12 tree with critical failures (a second UID 0 account, an empty
/// password), so that block mode blocks the handover.
fn blocking_root(dir: &Path) {
    let w = |p: &str, t: &str| {
        let h = dir.join(p);
        std::fs::create_dir_all(h.parent().unwrap()).unwrap();
        std::fs::write(h, t).unwrap();
    };
    w(
        "etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    w("etc/hostname", "fixture\n");
    w(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/bash\nguest:x:1001:1001::/home/guest:/bin/bash\n",
    );
    w(
        "etc/shadow",
        "root:!:19500:0:99999:7:::\ntoor:!:19500:0:99999:7:::\nguest::19500:0:99999:7:::\n",
    );
    w("etc/group", "root:x:0:\nshadow:x:42:\nguest:x:1001:\n");
}

fn wait_handover(
    c: &rampart_tests::cluster::Collector,
    token: &str,
    vm: &str,
    timeout: u32,
) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
        .env("RAMPART_API", format!("http://{}", c.rest))
        .env("RAMPART_TOKEN", token)
        .env("RAMPART_VM", vm)
        .env("RAMPART_TIMEOUT", timeout.to_string())
        .env("RAMPART_INTERVAL", "1");
    cmd
}

/// The Terraform example's poller against a real collector: a refused token fails at
/// once, an unknown VM times out, a blocked VM keeps it waiting until an admin releases it.
#[test]
fn wait_handover_polls_the_real_gate_until_released() {
    use rampart_tests::cluster::{wait_for, Agent, Collector};
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    blocking_root(&root);
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| s["mode"] = serde_json::json!("block"));
    let prov = c.user("pipeline", "provisioner");

    let out = wait_handover(&c, "rpt_wrong", "i-0123", 30)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));

    let out = wait_handover(&c, &prov, "i-0123", 1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("timed out"), "{stderr}");

    let token = c.enrollment_token("web", 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, log) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &["project=web"]);
    assert!(ok, "enroll: {log}");
    a.run(&[]);
    let id = a.agent_id();
    let mut poller = wait_handover(&c, &prov, &id, 120)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let gate = wait_for("a blocked gate", 60, || {
        let g = c.admin("GET", &format!("/api/v1/handover/{id}"), None);
        (g["state"] == "blocked").then_some(g)
    });
    // Blocked: the poller is still waiting (it polls every second).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        poller.try_wait().unwrap().is_none(),
        "poller stopped while blocked"
    );
    let scan = gate["scan_id"].as_str().unwrap();
    c.admin("POST", &format!("/api/v1/scans/{scan}/release"), None);
    let status = wait_for("the poller to finish", 30, || poller.try_wait().unwrap());
    let out = poller.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("may be handed over (released)"), "{stdout}");
    assert!(
        stdout.contains("blocked"),
        "it saw the blocked state: {stdout}"
    );
    assert!(!stdout.contains(&prov), "the token is never printed");
    a.stop();
}

/// Labels and the project reach `rampart-agent enroll` verbatim, one argument each,
/// whatever they hold (values that would end a shell quote or the YAML block included):
/// the rendered user-data stays valid, and nothing in a value ever runs.
#[test]
fn hostile_labels_and_project_reach_the_agent_verbatim_and_never_run() {
    let sb = Sandbox::new();
    let t = sb.path().display().to_string();
    let project = format!("web';touch {t}/pwned-project;'");
    let labels = [
        format!("a=$(touch {t}/pwned-cmd)"),
        format!("b=x';touch {t}/pwned-quote;'y"),
        format!("c=`touch {t}/pwned-tick`"),
        "d=two words \"and\" a \\ backslash".to_string(),
        "e=*".to_string(),
    ];
    let mut vars = pinned_vars();
    vars.insert("terraform_project", project.clone());
    vars.insert("labels", labels.join(","));
    let out = sb.run(&vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let args: Vec<String> = sb.read("enroll.args").lines().map(String::from).collect();
    let mut want = vec!["--label".to_string(), format!("project={project}")];
    for l in &labels {
        want.extend(["--label".to_string(), l.clone()]);
    }
    assert_eq!(args[7..], want[..]);
    for f in ["pwned-project", "pwned-cmd", "pwned-quote", "pwned-tick"] {
        assert!(!sb.path().join(f).exists(), "{f}: a value was executed");
    }
    // A value with a newline and YAML cannot add a key to the cloud-config.
    let mut vars = pinned_vars();
    vars.insert(
        "labels",
        "a=b\nruncmd:\n  - [touch, /tmp/rampart-pwned]".to_string(),
    );
    let rendered = render(&std::fs::read_to_string(template("aws")).unwrap(), &vars);
    assert!(!rendered.contains("rampart-pwned"), "{rendered}");
    assert_eq!(rendered.matches("\nruncmd:").count(), 1);
    let file = sb.path().join("hostile.yaml");
    std::fs::write(&file, &rendered).unwrap();
    assert!(cloud_init_schema(&file).status.success());
    // ... and it reaches install.sh as one label, which refuses it by name.
    let out = sb.run(&vars);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a label cannot contain a newline"),
        "{stderr}"
    );
}

mod first_boot_tls {
    //! The rendered bootstrap with the real curl against `openssl s_server`: only the
    //! pinned CA is ever trusted.

    use super::*;
    use rampart_tests::tls::{Ca, WebServer};

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

    fn pin_of(ca: &Ca) -> String {
        sha256_hex(&ca.der())
    }

    impl Sandbox {
        /// Serves `/ca.pem` and `/download/` (`install.sh` as given, the agent's .deb,
        /// their sums) over TLS with a server certificate `issuer` signed; the stub curl
        /// goes, so the bootstrap and install.sh run the real curl.
        fn serve_over_tls(&self, issuer: &Ca, ca_pem: &str, install_sh: &str) -> WebServer {
            let www = self.path().join("www");
            std::fs::create_dir_all(www.join("download")).unwrap();
            std::fs::write(www.join("ca.pem"), ca_pem).unwrap();
            let deb = format!("rampart-agent_{VERSION}_amd64.deb");
            let deb_bytes = std::fs::read(self.path().join("srv").join(&deb)).unwrap();
            for (name, bytes) in [("install.sh", install_sh.as_bytes()), (&deb, &deb_bytes)] {
                std::fs::write(www.join("download").join(name), bytes).unwrap();
                std::fs::write(
                    www.join("download").join(format!("{name}.sha256")),
                    format!("{}  {name}\n", sha256_hex(bytes)),
                )
                .unwrap();
            }
            std::fs::remove_file(self.path().join("stubs/curl")).unwrap();
            let (cert, key) = issuer.issue_loopback_server("server");
            WebServer::start(&www, &cert, &key)
        }
    }

    fn tls_vars(server: &WebServer, pinned: &Ca) -> BTreeMap<&'static str, String> {
        let mut v = sample_vars();
        v.insert("download_base", server.url());
        v.insert("ca_fingerprint", pin_of(pinned));
        v
    }

    /// A man in the middle answers for the collector with the genuine CA and its own
    /// (and variants): the bootstrap refuses before it downloads anything; its install.sh
    /// never runs, and the token is deleted unread.
    #[test]
    fn a_man_in_the_middle_serving_extra_certificates_gets_nothing_run() {
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
            ("the attacker's CA alone", a.clone(), "has fingerprint"),
        ];
        for (what, ca_pem, why) in cases {
            let sb = Sandbox::new();
            let t = sb.path().display();
            let evil =
                format!("#!/bin/sh\ntouch {t}/pwned\ncat {t}/run/token > {t}/stolen-token\n");
            let server = sb.serve_over_tls(&cas.attacker, &ca_pem, &evil);
            let out = sb.run(&tls_vars(&server, &cas.genuine));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: {stderr}");
            assert!(stderr.contains("rampart-bootstrap:"), "{what}: {stderr}");
            assert!(stderr.contains(why), "{what}: {stderr}");
            assert!(!stderr.contains(TOKEN), "{what}");
            assert!(!sb.path().join("pwned").exists(), "{what}: install.sh ran");
            assert!(
                !sb.path().join("stolen-token").exists(),
                "{what}: token stolen"
            );
            assert!(sb.read("dpkg.log").is_empty(), "{what}");
            assert!(sb.read("enroll.args").is_empty(), "{what}");
            assert!(!sb.path().join("run/token").exists(), "{what}: token kept");
        }
    }

    /// The genuine collector over real TLS: the bootstrap and install.sh both trust the
    /// CA rebuilt from the pinned DER (served with CRLF line ends), and the agent enrolls.
    #[test]
    fn the_genuine_collector_is_trusted_through_the_pinned_ca_alone() {
        let cas = cas();
        let sb = Sandbox::new();
        let install = std::fs::read_to_string(workspace().join("packaging/install.sh"))
            .unwrap()
            .replace("@VERSION@", VERSION);
        let served = format!("\n{}\n", cas.genuine.pem().replace('\n', "\r\n"));
        let server = sb.serve_over_tls(&cas.genuine, &served, &install);
        let out = sb.run(&tls_vars(&server, &cas.genuine));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(
            sb.read("dpkg.log"),
            format!("dpkg -i rampart-agent_{VERSION}_amd64.deb\n")
        );
        let args: Vec<String> = sb.read("enroll.args").lines().map(String::from).collect();
        assert_eq!(args[4], pin_of(&cas.genuine));
        assert_eq!(sb.read("token.seen").trim(), TOKEN);
    }
}

/// The `variable "NAME" { … }` blocks of a Terraform file, by name. A small structural
/// parse (no `terraform` binary here): strings (with their escapes) and `#` comments are
/// skipped, and every brace must balance.
fn tf_variables(text: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let b = text.as_bytes();
    let (mut i, mut depth, mut start, mut name) = (0, 0usize, 0, None::<String>);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                if depth == 0 {
                    let head = text[..i].rsplit('\n').next().unwrap().trim();
                    name = head
                        .strip_prefix("variable \"")
                        .and_then(|h| h.strip_suffix('"'))
                        .map(String::from);
                    start = i;
                }
                depth += 1;
            }
            b'}' => {
                depth = depth.checked_sub(1).expect("unbalanced }");
                if depth == 0 {
                    if let Some(n) = name.take() {
                        blocks.insert(n, text[start..=i].to_string());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "unbalanced {{");
    blocks
}

/// The regexes of a block's validation conditions, HCL string escapes undone.
fn validation_regexes(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    for cond in block.split("validation {").skip(1) {
        let cond = &cond[..cond.find("error_message").expect("error_message")];
        assert!(cond.contains("condition"), "{cond}");
        for part in cond.split("regex(\"").skip(1) {
            let (mut re, mut chars) = (String::new(), part.chars());
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => re.push('\n'),
                        Some(e) => re.push(e),
                        None => panic!("dangling escape"),
                    },
                    c => re.push(c),
                }
            }
            out.push(re);
        }
    }
    out
}

/// Whether Terraform's regex() would match the whole of `value` (RE2; these patterns
/// use only what POSIX ERE shares with it, so `grep -Ez` decides: one NUL-ended record,
/// a newline is an ordinary, unmatched character).
fn matches(re: &str, value: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new("grep")
        .args(["-Ezq", "--", re])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut record = value.as_bytes().to_vec();
    record.push(0);
    child.stdin.take().unwrap().write_all(&record).unwrap();
    child.wait().unwrap().success()
}

/// Every variable of the Terraform example that reaches the VM has a validation that
/// accepts the collector's own forms and refuses shell, YAML and URL tricks.
#[test]
fn terraform_variables_are_validated() {
    let text =
        std::fs::read_to_string(workspace().join("cloud-init/terraform/variables.tf")).unwrap();
    let vars = tf_variables(&text);
    let hostile = [
        "$(touch /tmp/pwned)",
        "a;b",
        "`id`",
        "two words",
        "it's",
        "a\"b",
        "a,b",
        "a\nb",
        "",
    ];
    let pin = "ab".repeat(32);
    let colons = vec!["AB"; 32].join(":");
    let long_user = "a".repeat(33);
    let table: [(&str, usize, &[&str], &[&str]); 10] = [
        (
            "download_base",
            0,
            &[
                "https://collector.example:8443",
                "https://10.0.0.5:8443/",
                "https://[fd00::5]:8443",
            ],
            &[
                "http://collector.example:8443",
                "https://user@c.example",
                "https://c.example/x'",
            ],
        ),
        (
            "collector_url",
            0,
            &["https://collector.example:7443"],
            &["http://c.example"],
        ),
        ("ca_fingerprint", 0, &[&pin, &colons], &["ab", "zz"]),
        (
            "enrollment_token",
            0,
            &["rpt_enroll_0123456789abcdef"],
            &["short"],
        ),
        ("terraform_project", 0, &["web", "team-a.prod_1"], &["-web"]),
        ("labels", 0, &["env", "team/a"], &["-x"]),
        ("labels", 1, &["prod", "a:b/c@d+e", ""], &[]),
        (
            "ssh_user",
            0,
            &["ubuntu", "rampart-scan", "_svc1"],
            &["Ubuntu", "-x", "a.b", &long_user],
        ),
        (
            "ssh_public_key",
            0,
            &[SSH_KEY, &SSH_KEY[..80], ""],
            &[
                &format!("command=\"sh\" {SSH_KEY}"),
                &format!("{SSH_KEY}\n{SSH_KEY}"),
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            ],
        ),
        (
            "collector_api",
            0,
            &[
                "https://c.example:8443",
                "http://127.0.0.1:8080",
                "http://localhost:80",
                "http://[::1]:80",
            ],
            &[
                "http://c.example:8080",
                "http://127.0.0.1.evil.example",
                "ftp://c.example",
            ],
        ),
    ];
    for (var, idx, good, bad) in table {
        let block = vars
            .get(var)
            .unwrap_or_else(|| panic!("variable {var} missing"));
        let res = validation_regexes(block);
        let re = res
            .get(idx)
            .unwrap_or_else(|| panic!("{var}: no validation regex #{idx}"));
        for g in good {
            assert!(matches(re, g), "{var} refuses {g:?} ({re})");
        }
        // Values that may be empty meet every hostile value but the empty one.
        let also_hostile = if (var == "labels" && idx == 1) || var == "ssh_public_key" {
            &hostile[..8]
        } else {
            &hostile[..]
        };
        for b in bad.iter().chain(also_hostile) {
            assert!(!matches(re, b), "{var} accepts {b:?} ({re})");
        }
    }
    assert!(
        vars["labels"].contains("!contains(keys(var.labels), \"project\")"),
        "a label cannot override the project"
    );
    assert!(!validation_regexes(&vars["install_sh_sha256"]).is_empty());
    assert!(
        vars["ssh_user"].contains("var.ssh_user != \"root\""),
        "the SSH user cannot be root"
    );
    // The template receives every value but the token base64-encoded.
    let tpl = std::fs::read_to_string(template("aws")).unwrap();
    for v in [
        "download_base",
        "install_sh_sha256",
        "collector_url",
        "ca_fingerprint",
        "terraform_project",
        "labels",
        "ssh_user",
        "ssh_public_key",
    ] {
        assert!(tpl.contains(&format!("'${{base64encode({v})}}'")), "{v}");
        assert!(!tpl.contains(&format!("${{{v}}}")), "{v} is placed raw");
    }
}

/// The poller trusts an answer only when it is about the VM it asked for.
#[test]
fn wait_handover_refuses_an_answer_about_another_vm() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("api/v1/handover");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("i-0123"),
        r#"{"agent_id":"ag-1","instance_id":"i-other","hostname":"x","allowed":true,"state":"allowed","reasons":[],"scan_id":null}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("i-0456"),
        r#"{"agent_id":"ag-2","instance_id":"i-0456","hostname":"x","allowed":true,"state":"allowed","reasons":[],"scan_id":null}"#,
    )
    .unwrap();
    let port = rampart_tests::cluster::free_port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(t.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let run = |vm: &str| {
        Command::new("sh")
            .arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
            .env("RAMPART_API", format!("http://127.0.0.1:{port}"))
            .env("RAMPART_TOKEN", "rpt_secret")
            .env("RAMPART_VM", vm)
            .env("RAMPART_TIMEOUT", "20")
            .env("RAMPART_INTERVAL", "1")
            .output()
            .unwrap()
    };
    // Wait for the server, with the good answer.
    let mut ok = run("i-0456");
    for _ in 0..20 {
        if ok.status.code() == Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        ok = run("i-0456");
    }
    let other = run("i-0123");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("answered for another VM"),
        "{other:?}"
    );
}

/// The handover poller sends its token only over https, or plain http to this machine.
#[test]
fn wait_handover_refuses_plain_http_off_the_machine() {
    for api in [
        "http://collector.example:8080",
        "http://127.0.0.1.evil.example",
        "ftp://x",
    ] {
        let out = Command::new("sh")
            .arg(workspace().join("cloud-init/terraform/wait-handover.sh"))
            .env("RAMPART_API", api)
            .env("RAMPART_TOKEN", "rpt_secret")
            .env("RAMPART_VM", "i-0123")
            .env("RAMPART_TIMEOUT", "1")
            .env("RAMPART_INTERVAL", "1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{api}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("must be https://"),
            "{api}"
        );
    }
}
