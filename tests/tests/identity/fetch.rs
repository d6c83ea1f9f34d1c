//! The agent binary fetches each provider's document and the collector verifies it;
//! without one, enrollment goes on unverified.

use super::*;

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
