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

#[test]
fn the_agent_fetches_each_providers_document_and_the_collector_verifies_it() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let imds = Imds::start(signers(), instances(), false);
    let root = scan_root(t.path());
    let tok = c.enrollment_token("web", 10, 3600);
    for (provider, instance, words) in [
        ("aws", AWS_ID, "AWS instance identity document"),
        ("gcp", GCP_ID, "GCP identity token"),
        ("azure", AZURE_ID, "Azure attested document"),
    ] {
        let a = Agent::new(&t.path().join(format!("agent-{provider}")));
        let idroot = identity_root(t.path(), provider);
        let url = imds.url();
        let mut extra = vec!["--identity-root", idroot.to_str().unwrap()];
        if provider == "azure" {
            // The URL from an agent.toml the image carries, not a flag.
            std::fs::write(a.config(), format!("metadata_url = \"{url}\"\n")).unwrap();
        } else {
            extra.extend(["--metadata-url", url.as_str()]);
        }
        let (ok, out) = a.enroll_with(&c.url(), &tok, &c.fingerprint, &root, &[], &extra);
        assert!(ok, "{provider}: {out}");
        let id = a.agent_id();
        let v = agent_json(&c, &id);
        assert_eq!(v["identity_verified"], true, "{provider}: {v}");
        assert_eq!(v["provider"], provider, "{v}");
        assert_eq!(v["instance_id"], instance, "{v}");
        assert!(
            v["identity_detail"].as_str().unwrap().contains(words),
            "{v}"
        );
        let gate = c.admin("GET", &format!("/api/v1/handover/{instance}"), None);
        assert_eq!(gate["agent_id"], id.as_str(), "{gate}");
        assert_eq!(gate["identity_verified"], true, "{gate}");
        // The document was asked for bound to this agent's key (GCP, Azure).
        let hash = key_sha256(&std::fs::read(a.dir.join("state/agent.key")).unwrap()).unwrap();
        let seen = imds.seen.lock().unwrap().clone();
        let binding = match provider {
            "gcp" => Some(format!("audience=urn%3Arampart%3Aenroll%3A{hash}")),
            "azure" => Some(format!("nonce={}", &hash[..32])),
            _ => None,
        };
        if let Some(b) = binding {
            assert!(seen.iter().any(|(_, p)| p.contains(&b)), "{b} in {seen:?}");
        }
    }
    // IMDSv2: the token was asked for with PUT before the document.
    let seen = imds.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        ("PUT".into(), "/latest/api/token".into()),
        "{seen:?}"
    );
    // The agent list says which identities are only what the VM said.
    let audit = c
        .admin("GET", "/api/v1/audit?per_page=50", None)
        .to_string();
    assert!(audit.contains("identity verified"), "{audit}");
}

#[test]
fn without_a_document_enrollment_goes_on_unverified() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let root = scan_root(t.path());
    let tok = c.enrollment_token("web", 10, 3600);
    // (case, provider of the host, metadata service, words of the reason)
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let huge = Imds::start(signers(), instances(), true);
    for (case, provider, url, words) in [
        (
            "metadata service down",
            "aws",
            dead.clone(),
            "no signed instance identity document",
        ),
        (
            "answer over the bound",
            "gcp",
            huge.url(),
            "no signed instance identity document",
        ),
        (
            "metadata service silent",
            "azure",
            silent_url.clone(),
            "no signed instance identity document",
        ),
        (
            "no cloud",
            "none",
            dead.clone(),
            "no signed instance identity document",
        ),
    ] {
        let a = Agent::new(&t.path().join(format!("agent-{provider}")));
        let idroot = identity_root(t.path(), provider);
        let t0 = std::time::Instant::now();
        let (ok, out) = a.enroll_with(
            &c.url(),
            &tok,
            &c.fingerprint,
            &root,
            &[],
            &[
                "--metadata-url",
                &url,
                "--identity-root",
                idroot.to_str().unwrap(),
            ],
        );
        assert!(ok, "{case}: {out}");
        assert!(
            t0.elapsed().as_secs() < 15,
            "{case}: the fetch is bounded in time"
        );
        if provider != "none" {
            assert!(out.contains("enrolling unverified"), "{case}: {out}");
        }
        let v = agent_json(&c, &a.agent_id());
        assert_eq!(v["identity_verified"], false, "{case}: {v}");
        assert!(
            v["identity_detail"].as_str().unwrap().contains(words),
            "{case}: {v}"
        );
        let gate = c.admin("GET", &format!("/api/v1/handover/{}", a.agent_id()), None);
        assert_eq!(gate["identity_verified"], false, "{case}: {gate}");
    }
}

#[test]
fn forged_foreign_stale_rebound_oversized_and_garbage_documents_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let s = signers();
    let pki = &s.pki;
    // Signers the collector does not trust.
    let rogue = pki.rsa_key("rogue");
    let rogue_root = pki.cert("rogue-root", &rogue, "Rogue Root", None, true, 30);
    let rogue_signer_key = pki.rsa_key("rogue-signer");
    let rogue_signer = pki.cert(
        "rogue-signer",
        &rogue_signer_key,
        "metadata.azure.com",
        Some((&rogue_root, &rogue)),
        false,
        30,
    );
    let self_signed = pki.cert(
        "self-signed",
        &rogue_signer_key,
        "metadata.azure.com",
        None,
        false,
        30,
    );
    // Chains to the configured root, but is not metadata.azure.com.
    let int_key = pki.dir.join("azure-int.key");
    let other_name = pki.cert(
        "other-name",
        &rogue_signer_key,
        "evil.example",
        Some((&s.azure_intermediate, &int_key)),
        false,
        30,
    );
    let k = key();
    let other = key();
    let aud = iid::gcp_audience(&k.hash);
    let nonce = iid::azure_nonce(&k.hash);
    let gcp = |key: &Path, kid: &str, claims: Value| doc("gcp", s.gcp(key, kid, &claims), vec![]);
    let azure = |signer: (&Path, &Path), chain: Option<&Path>, content: Value| {
        doc("azure", s.azure(signer, chain, &content), vec![])
    };
    let (aws_doc, aws_sig) = s.aws(&s.aws_key, AWS_ID);
    let good_jwt = s.gcp(&s.gcp_key, &s.gcp_kid, &gcp_claims(GCP_ID, &aud, now()));
    // The payload of a good token swapped for another instance's, signature kept.
    let forged_jwt = {
        let parts: Vec<&str> = good_jwt.split('.').collect();
        let claims = gcp_claims("999", &aud, now());
        format!(
            "{}.{}.{}",
            parts[0],
            rampart_tests::imds::b64url(claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let signer = (s.azure_signer.as_path(), s.azure_signer_key.as_path());
    let chain = Some(s.azure_intermediate.as_path());
    let long_kid = "K".repeat(5000);
    // (case, claimed provider, claimed instance, document, words of the refusal)
    let cases: Vec<(&str, &str, &str, InstanceIdentityDocument, &str)> = vec![
        (
            "aws: forged (document edited after signing)",
            "aws",
            "i-0fffffffffffffff0",
            doc("aws", aws_doc.replace(AWS_ID, "i-0fffffffffffffff0"), aws_sig.clone()),
            "none of the configured AWS certificates",
        ),
        (
            "aws: signed by a key that is not configured",
            "aws",
            AWS_ID,
            {
                let (d, sig) = s.aws(&rogue, AWS_ID);
                doc("aws", d, sig)
            },
            "none of the configured AWS certificates",
        ),
        (
            "aws: another instance's document",
            "aws",
            "i-0mine00000000000",
            doc("aws", aws_doc.clone(), aws_sig.clone()),
            "is for instance i-0123456789abcdef0, not i-0mine00000000000",
        ),
        (
            "aws: document of another provider than claimed",
            "gcp",
            AWS_ID,
            doc("aws", aws_doc.clone(), aws_sig.clone()),
            "from aws but the enrollment claims gcp",
        ),
        (
            "gcp: forged payload",
            "gcp",
            "999",
            doc("gcp", forged_jwt, vec![]),
            "signature does not verify",
        ),
        (
            "gcp: rogue key under the configured kid",
            "gcp",
            GCP_ID,
            gcp(&rogue, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now())),
            "signature does not verify",
        ),
        (
            "gcp: a key that is not in the JWKS",
            "gcp",
            GCP_ID,
            gcp(&rogue, "rogue-kid", gcp_claims(GCP_ID, &aud, now())),
            "not in the configured JWKS",
        ),
        (
            "gcp: another instance's token",
            "gcp",
            "1111",
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now())),
            "is for instance 4520681940389672914, not 1111",
        ),
        (
            "gcp: audience of another key",
            "gcp",
            GCP_ID,
            gcp(
                &s.gcp_key,
                &s.gcp_kid,
                gcp_claims(GCP_ID, &iid::gcp_audience(&other.hash), now()),
            ),
            "bound to another key",
        ),
        (
            "gcp: expired",
            "gcp",
            GCP_ID,
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now() - 7200)),
            "stale",
        ),
        (
            "gcp: issued in the future",
            "gcp",
            GCP_ID,
            gcp(&s.gcp_key, &s.gcp_kid, gcp_claims(GCP_ID, &aud, now() + 3600)),
            "in the future",
        ),
        (
            "gcp: a kid of 5000 bytes is quoted short",
            "gcp",
            GCP_ID,
            gcp(&rogue, &long_kid, gcp_claims(GCP_ID, &aud, now())),
            "not in the configured JWKS",
        ),
        (
            "azure: signer chaining to another root",
            "azure",
            AZURE_ID,
            azure(
                (&rogue_signer, &rogue_signer_key),
                Some(&rogue_root),
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "no configured root vouches",
        ),
        (
            "azure: self-signed signer",
            "azure",
            AZURE_ID,
            azure(
                (&self_signed, &rogue_signer_key),
                None,
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "no configured root vouches",
        ),
        (
            "azure: a signer of the right chain but another name",
            "azure",
            AZURE_ID,
            azure(
                (&other_name, &rogue_signer_key),
                chain,
                azure_content(AZURE_ID, &nonce, now()),
            ),
            "not metadata.azure.com",
        ),
        (
            "azure: nonce of another key",
            "azure",
            AZURE_ID,
            azure(
                signer,
                chain,
                azure_content(AZURE_ID, &iid::azure_nonce(&other.hash), now()),
            ),
            "bound to another key",
        ),
        (
            "azure: created two hours ago",
            "azure",
            AZURE_ID,
            azure(signer, chain, azure_content(AZURE_ID, &nonce, now() - 7200)),
            "stale",
        ),
        (
            "azure: another VM",
            "azure",
            "00000000-0000-0000-0000-000000000001",
            azure(signer, chain, azure_content(AZURE_ID, &nonce, now())),
            "is for instance",
        ),
        (
            "oversized document",
            "aws",
            AWS_ID,
            doc("aws", vec![b'{'; 13 * 1024], aws_sig.clone()),
            "the identity document is 13312 bytes; at most 12288",
        ),
        (
            "oversized signature",
            "aws",
            AWS_ID,
            doc("aws", aws_doc.clone(), vec![b'A'; 3000]),
            "signature is 3000 bytes; at most 2048",
        ),
        (
            "garbage aws signature",
            "aws",
            AWS_ID,
            doc("aws", aws_doc.clone(), b"\x00\x01not base64"),
            "unreadable identity document",
        ),
        (
            "garbage gcp token",
            "gcp",
            GCP_ID,
            doc("gcp", vec![0xff, 0xfe, 0x00, 0x2e], vec![]),
            "unreadable identity document",
        ),
        (
            "garbage azure document",
            "azure",
            AZURE_ID,
            doc(
                "azure",
                json!({"encoding": "pkcs7", "signature": rampart_tests::base64(&[0x30, 0x82, 0xff, 0xff, 1, 2, 3])}).to_string(),
                vec![],
            ),
            "PKCS#7",
        ),
        (
            "unknown provider",
            "ibm",
            "x",
            doc("ibm", "{}", vec![]),
            "provider `ibm` are not known",
        ),
    ];
    // One use only: no refusal may spend it.
    let tok = c.enrollment_token("web", 1, 3600);
    for (case, provider, instance, d, words) in cases {
        let st = enroll(&rt, &c, &tok, provider, instance, &k, Some(d)).unwrap_err();
        assert_eq!(st.code(), tonic::Code::InvalidArgument, "{case}: {st:?}");
        assert!(st.message().contains(words), "{case}: {}", st.message());
        assert!(st.message().len() < 400, "{case}: {}", st.message());
    }
    // Over the Enroll message bound: refused by the transport, nothing else hurt.
    let st = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &k,
        Some(doc("aws", vec![b'x'; 64 * 1024], vec![])),
    )
    .unwrap_err();
    assert_ne!(st.code(), tonic::Code::Ok, "{st:?}");
    // Refusals are audited for the token, never echoing more than a short prefix.
    let audit = c.admin(
        "GET",
        "/api/v1/audit?action=enrollment.refused&per_page=100",
        None,
    );
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    assert!(entries.len() >= 20, "{audit}");
    for e in &entries {
        let d = e["detail"].as_str().unwrap_or_default();
        assert!(d.len() < 500, "{d}");
        assert!(!d.contains(&"K".repeat(100)), "{d}");
    }
    let m = rampart_tests::cluster::http_raw("GET", &c.rest, "/metrics", None).text();
    assert!(
        m.contains("rampart_enrollment_refusals_total{reason=\"identity_document\"}"),
        "{m}"
    );
    // The token's one use is intact: the genuine document enrolls, verified.
    let id = enroll(
        &rt,
        &c,
        &tok,
        "gcp",
        GCP_ID,
        &k,
        Some(good("gcp", GCP_ID, &k)),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);
}

#[test]
fn a_document_cannot_be_replayed_for_another_key() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let imds = Imds::start(signers(), instances(), false);
    let tok = c.enrollment_token("web", 20, 3600);
    for (provider, instance) in [("gcp", GCP_ID), ("azure", AZURE_ID), ("aws", AWS_ID)] {
        // The genuine VM fetches its document with the agent's own code.
        let vm = key();
        let fetched = rt
            .block_on(iid::fetch(
                provider,
                &imds.url(),
                &vm.hash,
                iid::FETCH_TIMEOUT,
            ))
            .unwrap();
        let captured = doc(provider, fetched.document, fetched.signature);
        let victim = enroll(
            &rt,
            &c,
            &tok,
            provider,
            instance,
            &vm,
            Some(captured.clone()),
        )
        .unwrap();
        assert_eq!(
            agent_json(&c, &victim)["identity_verified"],
            true,
            "{provider}"
        );
        // Someone who captured it replays it with their own key, claiming the VM.
        let thief = key();
        let st = enroll(
            &rt,
            &c,
            &tok,
            provider,
            instance,
            &thief,
            Some(captured.clone()),
        )
        .unwrap_err();
        if provider == "aws" {
            // AWS signs nothing of ours: only the instance's uniqueness stops it.
            assert_eq!(st.code(), tonic::Code::FailedPrecondition, "{st:?}");
            assert!(st.message().contains("already enrolled"), "{st:?}");
        } else {
            assert_eq!(
                st.code(),
                tonic::Code::InvalidArgument,
                "{provider}: {st:?}"
            );
            assert!(st.message().contains("bound to another key"), "{st:?}");
        }
        // Even once the victim is revoked, the replay proves nothing.
        c.admin("POST", &format!("/api/v1/agents/{victim}/revoke"), None);
        match enroll(&rt, &c, &tok, provider, instance, &thief, Some(captured)) {
            Err(st) => {
                assert_ne!(provider, "aws");
                assert!(st.message().contains("bound to another key"), "{st:?}");
            }
            Ok(thief_id) => {
                assert_eq!(provider, "aws", "only AWS documents can be replayed at all");
                let v = agent_json(&c, &thief_id);
                assert_eq!(v["identity_verified"], false, "{v}");
                assert!(
                    v["identity_detail"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("already enrolled agent {victim}")),
                    "{v}"
                );
                c.admin("POST", &format!("/api/v1/agents/{thief_id}/revoke"), None);
            }
        }
    }
}

#[test]
fn a_project_or_the_fleet_can_require_a_verified_identity() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "require_verified_projects = [\"prod\"]\n");
    let rt = rt();
    let prod = c.enrollment_token("prod", 5, 3600);
    let dev = c.enrollment_token("dev", 5, 3600);
    // No document: refused for prod (the token's use kept), unverified for dev.
    let k = key();
    let st = enroll(&rt, &c, &prod, "aws", "i-0a", &k, None).unwrap_err();
    assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
    assert!(
        st.message()
            .contains("project prod requires a verified instance identity"),
        "{st:?}"
    );
    let id = enroll(&rt, &c, &dev, "aws", "i-0a", &k, None).unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], false);
    // A genuine document: accepted for prod.
    let k = key();
    let id = enroll(
        &rt,
        &c,
        &prod,
        "gcp",
        GCP_ID,
        &k,
        Some(good("gcp", GCP_ID, &k)),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);
    // A VM that could not tell its instance ID takes the verified one.
    let k = key();
    let id = enroll(
        &rt,
        &c,
        &prod,
        "azure",
        "",
        &k,
        Some(good("azure", AZURE_ID, &k)),
    )
    .unwrap();
    let v = agent_json(&c, &id);
    assert_eq!(
        (v["identity_verified"].clone(), v["instance_id"].clone()),
        (json!(true), json!(AZURE_ID)),
        "{v}"
    );

    // A signer that writes BER (indefinite lengths, the content in chunks) verifies too.
    let k = key();
    let s = signers();
    let ber = s.azure_encoded(
        (&s.azure_signer, &s.azure_signer_key),
        Some(&s.azure_intermediate),
        &azure_content(
            "0b9d3c3e-0000-4000-8000-000000000001",
            &iid::azure_nonce(&k.hash),
            now(),
        ),
        true,
    );
    let id = enroll(
        &rt,
        &c,
        &prod,
        "azure",
        "0b9d3c3e-0000-4000-8000-000000000001",
        &k,
        Some(doc("azure", ber, vec![])),
    )
    .unwrap();
    assert_eq!(agent_json(&c, &id)["identity_verified"], true);

    // Without anchors for a provider its documents cannot be checked: unverified,
    // and so refused where verification is required.
    let t2 = tempfile::tempdir().unwrap();
    let bare = Collector::start_with(
        &t2.path().join("collector"),
        None,
        None,
        Some("[instance_identity]\nrequire_verified = true\n"),
    );
    let tok = bare.enrollment_token("dev", 5, 3600);
    let k = key();
    let st = enroll(
        &rt,
        &bare,
        &tok,
        "aws",
        AWS_ID,
        &k,
        Some(good("aws", AWS_ID, &k)),
    )
    .unwrap_err();
    assert_eq!(st.code(), tonic::Code::PermissionDenied, "{st:?}");
    assert!(
        st.message()
            .contains("a verified instance identity is required")
            && st.message().contains("no aws trust anchors are configured"),
        "{st:?}"
    );
}

#[test]
fn an_agent_that_only_claimed_an_instance_gives_way_to_a_verified_one() {
    let t = tempfile::tempdir().unwrap();
    let c = collector(t.path(), "");
    let rt = rt();
    let tok = c.enrollment_token("web", 10, 3600);
    // A token holder enrolls first, claiming the AWS VM's instance ID.
    let squatter = enroll(&rt, &c, &tok, "aws", AWS_ID, &key(), None).unwrap();
    assert_eq!(agent_json(&c, &squatter)["identity_verified"], false);
    assert_eq!(
        c.admin("GET", &format!("/api/v1/handover/{AWS_ID}"), None)["agent_id"],
        squatter.as_str()
    );
    // A second mere claim is refused, as before.
    let st = enroll(&rt, &c, &tok, "aws", AWS_ID, &key(), None).unwrap_err();
    assert!(st.message().contains("already enrolled"), "{st:?}");
    // The VM itself, with the document AWS signed for it: the claim is revoked.
    let vm = key();
    let real = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &vm,
        Some(good("aws", AWS_ID, &vm)),
    )
    .unwrap();
    let v = agent_json(&c, &real);
    assert_eq!(
        (v["identity_verified"].clone(), v["revoked"].clone()),
        (json!(true), json!(false)),
        "{v}"
    );
    assert_eq!(agent_json(&c, &squatter)["revoked"], true);
    let g = c.admin("GET", &format!("/api/v1/handover/{AWS_ID}"), None);
    assert_eq!(g["agent_id"], real.as_str(), "{g}");
    let log = c.admin("GET", "/api/v1/audit?per_page=50", None);
    assert!(
        log.to_string().contains("agent.supersede"),
        "the supersession is audited: {log}"
    );
    // A verified holder is never displaced, even by another verified enrollment.
    let other = key();
    let st = enroll(
        &rt,
        &c,
        &tok,
        "aws",
        AWS_ID,
        &other,
        Some(good("aws", AWS_ID, &other)),
    )
    .unwrap_err();
    assert!(st.message().contains("already enrolled"), "{st:?}");
    assert_eq!(agent_json(&c, &real)["revoked"], false);
}
