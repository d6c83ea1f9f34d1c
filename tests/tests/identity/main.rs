//! Signed instance identity documents (issue 10, finding 2): an enrollment that
//! carries the provider's signed document about the VM gets `identity_verified`;
//! a forged, foreign, stale, rebound, oversized or garbage document is refused.
//!
//! Real metadata services cannot run here. `rampart_tests::imds` plays AWS's,
//! GCP's and Azure's on loopback, signing with test keys and certificates made by
//! `openssl`, and the collector is configured with those test anchors instead of the
//! providers' real ones: that is the one mock. Everything else is real: the agent
//! binary fetches the document and enrolls, the collector binary verifies it, and
//! the attacks are hand-made Enroll calls over real TLS, as an attacker would send.

mod fetch;
mod policy;
mod refused;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rampart_agent::daemon::{iid, key_sha256, new_key_and_csr, tls};
use rampart_proto::v1::enrollment_client::EnrollmentClient;
use rampart_proto::v1::{EnrollRequest, InstanceIdentityDocument};
use rampart_tests::cluster::{Agent, Collector};
use rampart_tests::imds::{azure_content, gcp_claims, now, Imds, Instances, Signers};
use serde_json::{json, Value};

const AWS_ID: &str = "i-0123456789abcdef0";
const GCP_ID: &str = "4520681940389672914";
const AZURE_ID: &str = "8e5b9b3c-1d2a-4f3b-9c4d-5e6f7a8b9c0d";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn instances() -> Instances {
    Instances {
        aws: AWS_ID.into(),
        gcp: GCP_ID.into(),
        azure: AZURE_ID.into(),
    }
}

/// Signers are slow to make (RSA keys): one set per test process.
fn signers() -> Arc<Signers> {
    static S: std::sync::OnceLock<(tempfile::TempDir, Arc<Signers>)> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(Signers::new(&d.path().join("pki")));
        (d, s)
    })
    .1
    .clone()
}

/// A collector trusting the test signers, with more `[instance_identity]` lines
/// (and enrollment rates high enough for a table of attempts from one address).
fn collector(dir: &Path, identity: &str) -> Collector {
    let config = format!(
        "[limits]\nenroll_per_source_per_minute = 1000\nenroll_per_second = 1000\n\n\
         [instance_identity]\n{}{identity}\n",
        signers().anchor_lines()
    );
    let c = Collector::start_with(&dir.join("collector"), None, None, Some(&config));
    c.set_settings(|s| s["scan_on_provision"] = json!(false));
    c
}

/// A host tree with the DMI (and cloud-init data) of a VM of `provider`.
fn identity_root(dir: &Path, provider: &str) -> PathBuf {
    let root = dir.join(format!("identity-{provider}"));
    let dmi = root.join("sys/class/dmi/id");
    std::fs::create_dir_all(&dmi).unwrap();
    std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        root.join("proc/sys/kernel/hostname"),
        format!("vm-{provider}\n"),
    )
    .unwrap();
    let files: &[(&str, &str)] = match provider {
        "aws" => &[("sys_vendor", "Amazon EC2"), ("board_asset_tag", AWS_ID)],
        "gcp" => &[
            ("sys_vendor", "Google"),
            ("product_name", "Google Compute Engine"),
        ],
        "azure" => &[
            ("sys_vendor", "Microsoft Corporation"),
            ("chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"),
            ("product_uuid", "8E5B9B3C-1D2A-4F3B-9C4D-5E6F7A8B9C0D"),
        ],
        _ => &[],
    };
    for (name, value) in files {
        std::fs::write(dmi.join(name), format!("{value}\n")).unwrap();
    }
    if provider == "gcp" {
        let run = root.join("run/cloud-init");
        std::fs::create_dir_all(&run).unwrap();
        let data = json!({"v1": {"cloud_name": "gce", "platform": "gce", "instance_id": GCP_ID, "region": "europe-west1"}});
        std::fs::write(run.join("instance-data.json"), data.to_string()).unwrap();
    }
    root
}

fn scan_root(dir: &Path) -> PathBuf {
    let r = dir.join("root");
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::write(r.join("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
    r
}

fn agent_json(c: &Collector, id: &str) -> Value {
    c.agents()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("agent {id} is listed"))
        .clone()
}

/// A key and CSR, and the hash that binds documents to the key.
struct Key {
    key: Vec<u8>,
    csr: Vec<u8>,
    hash: String,
}

fn key() -> Key {
    let (key, csr) = new_key_and_csr("raw").unwrap();
    let hash = key_sha256(&key).unwrap();
    Key { key, csr, hash }
}

fn doc(
    provider: &str,
    document: impl Into<Vec<u8>>,
    signature: impl Into<Vec<u8>>,
) -> InstanceIdentityDocument {
    InstanceIdentityDocument {
        provider: provider.into(),
        document: document.into(),
        signature: signature.into(),
    }
}

/// A hand-made Enroll: the agent ID, or the refusal.
fn enroll(
    rt: &tokio::runtime::Runtime,
    c: &Collector,
    token: &str,
    provider: &str,
    instance_id: &str,
    k: &Key,
    d: Option<InstanceIdentityDocument>,
) -> Result<String, tonic::Status> {
    let _ = &k.key;
    rt.block_on(async {
        let cfg = tls::client_config(&c.fingerprint, None).unwrap();
        let ch = tls::channel(&c.url(), cfg).unwrap();
        let r = EnrollmentClient::new(ch)
            .enroll(EnrollRequest {
                token: token.into(),
                csr_der: k.csr.clone(),
                hostname: "raw-host".into(),
                labels: Default::default(),
                instance_id: instance_id.into(),
                provider: provider.into(),
                identity_document: d,
            })
            .await?
            .into_inner();
        Ok(r.agent_id)
    })
}

/// Good documents for `k`, signed by the configured signers.
fn good(provider: &str, instance: &str, k: &Key) -> InstanceIdentityDocument {
    let s = signers();
    match provider {
        "aws" => {
            let (d, sig) = s.aws(&s.aws_key, instance);
            doc("aws", d, sig)
        }
        "gcp" => {
            let claims = gcp_claims(instance, &iid::gcp_audience(&k.hash), now());
            doc("gcp", s.gcp(&s.gcp_key, &s.gcp_kid, &claims), vec![])
        }
        _ => {
            let content = azure_content(instance, &iid::azure_nonce(&k.hash), now());
            let d = s.azure(
                (&s.azure_signer, &s.azure_signer_key),
                Some(&s.azure_intermediate),
                &content,
            );
            doc("azure", d, vec![])
        }
    }
}
