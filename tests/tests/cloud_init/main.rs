//! The cloud-init templates in `cloud-init/`: each renders the way Terraform's
//! templatefile() would, passes `cloud-init schema`, and its bootstrap script really
//! downloads, verifies, installs, enrolls and starts (run against stubs in a temp dir,
//! and with the real curl against `openssl s_server` for the first-boot trust: a man in
//! the middle who serves extra certificates beside the genuine CA gets nothing run).
//! The Terraform example's variables are checked structurally (no `terraform` binary
//! here): every input variable that reaches the template has a validation whose regex
//! accepts good values and refuses hostile ones.

mod bootstrap;
mod first_boot_tls;
mod terraform;
mod wait_handover;

use bootstrap::*;

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
